package codec

import (
	"net/http"
	"strconv"
)

// ContinueResponse is the interim answer to a request with ExpectContinue,
// written before reading its body (RFC 7231 §5.1.1, §6.2.1).
const ContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n"

// AppendResponseHead appends a response head: the status line with the
// standard reason phrase, the headers and the blank line, with no body
// framing of its own. The caller adds Content-Length (or uses
// AppendResponseHeadLen), or lets the end of the connection end the body as
// an SSE stream does (RFC 7230 §3.3.3 item 7). A status outside 100..599 is
// written as 500. A header whose name is not an HTTP token is skipped and
// bytes that cannot appear in a header value are dropped, so no argument can
// split the response. It does not allocate when dst has room.
// AppendResponseHead is pure and may be called from any goroutine.
func AppendResponseHead(dst []byte, status int, header ...[2]string) []byte {
	dst = appendStatusLine(dst, status)
	dst = appendHeaderFields(dst, header)
	return append(dst, "\r\n"...)
}

// AppendResponseHeadLen is AppendResponseHead with "Content-Length:
// contentLength" as the first header, for a body the caller writes next (or
// omits, answering HEAD, RFC 7231 §4.3.2). A negative contentLength is
// written as 0. It does not allocate when dst has room.
// AppendResponseHeadLen is pure and may be called from any goroutine.
func AppendResponseHeadLen(dst []byte, status int, contentLength int64, header ...[2]string) []byte {
	dst = appendStatusLine(dst, status)
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, max(contentLength, 0), 10)
	dst = append(dst, "\r\n"...)
	dst = appendHeaderFields(dst, header)
	return append(dst, "\r\n"...)
}

// AppendResponse appends a complete response with a small body: the status
// line, Content-Type (unless contentType is ""), Content-Length, the headers,
// the blank line and body. It suits keep-alive answers such as an Engine.IO
// "ok" or error body. It does not allocate when dst has room.
// AppendResponse is pure and may be called from any goroutine.
func AppendResponse(dst []byte, status int, contentType, body string, header ...[2]string) []byte {
	dst = appendStatusLine(dst, status)
	if contentType != "" {
		dst = append(dst, "Content-Type: "...)
		dst = appendHeaderValue(dst, contentType)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n"...)
	dst = appendHeaderFields(dst, header)
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// AppendHTTPErrorKeepAlive is AppendHTTPError without "Connection: close",
// for an error the application gives to a request that parsed well (404, an
// unknown session), after which the connection can carry the next request.
// An error from ParseRequest or CheckUpgrade still needs AppendHTTPError and
// a close: the stream cannot be trusted past a bad head. It does not
// allocate when dst has room. AppendHTTPErrorKeepAlive is pure and may be
// called from any goroutine.
func AppendHTTPErrorKeepAlive(dst []byte, status int, reason string, header ...[2]string) []byte {
	return appendHTTPError(dst, status, reason, false, header)
}

// appendHTTPError writes AppendHTTPError's response, with
// "Connection: close" if close is set.
func appendHTTPError(dst []byte, status int, reason string, close bool, header [][2]string) []byte {
	dst = appendStatusLine(dst, status)
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(reason)+1), 10)
	dst = append(dst, "\r\n"...)
	if close {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = appendHeaderFields(dst, header)
	dst = append(dst, "\r\n"...)
	dst = append(dst, reason...)
	return append(dst, '\n')
}

// appendStatusLine appends "HTTP/1.1 <status> <reason phrase>\r\n"; a status
// outside 100..599 is written as 500.
func appendStatusLine(dst []byte, status int) []byte {
	if status < 100 || status > 599 {
		status = http.StatusInternalServerError
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Unknown"
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, text...)
	return append(dst, "\r\n"...)
}

// appendHeaderFields appends "name: value\r\n" for each header whose name is
// an HTTP token, dropping bytes no header value may hold.
func appendHeaderFields(dst []byte, header [][2]string) []byte {
	for _, kv := range header {
		if !isToken(kv[0]) {
			continue
		}
		dst = append(dst, kv[0]...)
		dst = append(dst, ": "...)
		dst = appendHeaderValue(dst, kv[1])
		dst = append(dst, "\r\n"...)
	}
	return dst
}
