package codec

import (
	"bytes"
	"strconv"
	"strings"
	"unsafe"
)

// Server-Sent Events (WHATWG HTML §9.2, "Server-sent events"): a response
// of type text/event-stream whose body is a stream of events, each a block
// of "field: value" lines ended by a blank line. Browsers split lines at CR,
// LF or CRLF, strip one space after the colon, ignore lines starting with
// ':', join "data" lines with LF, and remember the last "id" to send back as
// Last-Event-ID when they reconnect (§9.2.6).

// AppendSSEResponseHead appends the head of an event-stream response:
// 200 OK, Content-Type: text/event-stream (an EventSource accepts nothing
// else), Cache-Control: no-store, X-Accel-Buffering: no (so nginx passes
// each event on instead of buffering the stream), then the extra headers (for
// example Access-Control-Allow-Origin). There is no Content-Length: the body
// ends when the connection closes (RFC 7230 §3.3.3 item 7). Do not compress
// the stream, and write each event as soon as it is appended. Headers are
// sanitised as in AppendResponseHead. It does not allocate when dst has room.
// AppendSSEResponseHead is pure and may be called from any goroutine.
func AppendSSEResponseHead(dst []byte, header ...[2]string) []byte {
	dst = append(dst, "HTTP/1.1 200 OK\r\n"+
		"Content-Type: text/event-stream\r\n"+
		"Cache-Control: no-store\r\n"+
		"X-Accel-Buffering: no\r\n"...)
	dst = appendHeaderFields(dst, header)
	return append(dst, "\r\n"...)
}

// AppendSSEEvent appends one event: an "id" line if id is not empty, an
// "event" line if event is not empty (the client's default type is
// "message"), one "data" line per line of data, and the blank line that
// dispatches it. data is split at CR, LF and CRLF, which the client reads as
// line ends, so it arrives with every line end turned into LF; empty data
// still makes one empty "data" line, so every call fires an event.
//
// An id holding CR, LF or NUL cannot be sent (the line would split, or the
// client would ignore it): its line is left out, so the client keeps its
// previous last event id and a reconnect replays from there rather than
// skipping. CR and LF are dropped from event so no argument can inject a
// field. It does not allocate when dst has room. AppendSSEEvent is pure and
// may be called from any goroutine.
func AppendSSEEvent(dst []byte, id []byte, event string, data []byte) []byte {
	if len(id) > 0 && !bytes.ContainsAny(id, "\r\n\x00") {
		dst = append(dst, "id: "...)
		dst = append(dst, id...)
		dst = append(dst, '\n')
	}
	if event != "" {
		dst = append(dst, "event: "...)
		for i := range len(event) {
			if c := event[i]; c != '\r' && c != '\n' {
				dst = append(dst, c)
			}
		}
		dst = append(dst, '\n')
	}
	dst = appendSSELines(dst, "data: ", data)
	return append(dst, '\n')
}

// appendSSELines appends prefix+line+"\n" for each line of text, split at
// CR, LF and CRLF; empty text is one empty line.
func appendSSELines(dst []byte, prefix string, text []byte) []byte {
	for {
		i := indexLineEnd(text)
		dst = append(dst, prefix...)
		if i < 0 {
			dst = append(dst, text...)
			return append(dst, '\n')
		}
		dst = append(dst, text[:i]...)
		dst = append(dst, '\n')
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
}

// indexLineEnd returns the index of the first CR or LF in s, or -1. Two
// IndexByte scans beat one byte loop: most data holds neither.
func indexLineEnd(s []byte) int {
	lf := bytes.IndexByte(s, '\n')
	if lf < 0 {
		return bytes.IndexByte(s, '\r')
	}
	if cr := bytes.IndexByte(s[:lf], '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// AppendSSEComment appends text as comment lines, ": text", which the
// client ignores: a heartbeat that keeps proxies from timing the stream out
// (the spec suggests one every 15 seconds or so). Each line of text gets its
// own ':' and empty text is a bare ":". It does not allocate when dst has
// room. AppendSSEComment is pure and may be called from any goroutine.
func AppendSSEComment(dst []byte, text string) []byte {
	if text == "" {
		return append(dst, ":\n"...)
	}
	// A view, not a copy: appendSSELines only reads it.
	return appendSSELines(dst, ": ", unsafe.Slice(unsafe.StringData(text), len(text)))
}

// AppendSSERetry appends "retry: ms", which sets the client's reconnection
// delay in milliseconds (the default is a few seconds, 3000 in Chromium). A
// negative ms is written as 0. It takes effect at once, between events or
// inside one. It does not allocate when dst has room. AppendSSERetry is pure
// and may be called from any goroutine.
func AppendSSERetry(dst []byte, ms int) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, int64(max(ms, 0)), 10)
	return append(dst, '\n')
}

// Event ids of pushes on durable topics (docs/protocol.md §12). An id names
// the position of the push in its topic's history: topic ":" epoch ":"
// offset, for example "orders.eu:E8x2:1234". Neither a topic nor an epoch
// holds ':', so the id splits without escaping, and every byte of it is
// printable ASCII, which a browser sends back unchanged in Last-Event-ID.

// maxEventOffset is the largest offset an id may carry: the largest integer a
// JavaScript number holds exactly (2^53-1), the bound on every offset pushd
// sends.
const maxEventOffset = 1<<53 - 1

// maxEventEpoch bounds an id's epoch.
const maxEventEpoch = 64

// AppendEventID appends the SSE event id of a push on a durable topic:
// topic ":" epoch ":" offset in decimal. The caller passes a valid topic, an
// epoch of 1 to 64 bytes of A-Z a-z 0-9 _ - and an offset of at least 1; the
// result then reads back with ParseEventID. It does not allocate when dst has
// room. AppendEventID is pure and may be called from any goroutine.
func AppendEventID(dst []byte, topic, epoch string, offset uint64) []byte {
	dst = append(dst, topic...)
	dst = append(dst, ':')
	dst = append(dst, epoch...)
	dst = append(dst, ':')
	return strconv.AppendUint(dst, offset, 10)
}

// ParseEventID decodes an id written by AppendEventID, as a client sends it
// back in Last-Event-ID. ok is false unless id is exactly a valid topic
// (ValidTopic), ':', an epoch of 1 to 64 bytes of A-Z a-z 0-9 _ -, ':', and
// an offset from 1 to 2^53-1 in decimal without sign or leading zeros. The
// strings returned are substrings of id. ParseEventID is pure, never
// panics, and may be called from any goroutine.
func ParseEventID(id string) (topic, epoch string, offset uint64, ok bool) {
	topic, rest, ok1 := strings.Cut(id, ":")
	epoch, num, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || ValidTopic(topic) != nil || !eventEpochOK(epoch) {
		return "", "", 0, false
	}
	if len(num) == 0 || len(num) > 16 || num[0] == '0' {
		return "", "", 0, false
	}
	for i := range len(num) {
		if !isDigit(num[i]) {
			return "", "", 0, false
		}
		offset = offset*10 + uint64(num[i]-'0')
	}
	if offset > maxEventOffset {
		return "", "", 0, false
	}
	return topic, epoch, offset, true
}

// eventEpochOK reports whether e can be the epoch of an event id: 1 to 64
// bytes of A-Z a-z 0-9 _ -, the bytes of a topic token.
func eventEpochOK(e string) bool {
	if len(e) == 0 || len(e) > maxEventEpoch {
		return false
	}
	for i := range len(e) {
		c := e[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// AppendSSEClose appends the last event of a stream the server ends: type
// "close", whose data is {"type":"close","code":<code>,"reason":<reason>}
// with code a pushd close code (docs/protocol.md §6) and reason escaped as a
// JSON string. A client reads it the way a WebSocket client reads a close
// frame: the code says whether to reconnect. It does not allocate when dst
// has room. AppendSSEClose is pure and may be called from any goroutine.
func AppendSSEClose(dst []byte, code StatusCode, reason string) []byte {
	dst = append(dst, "event: close\ndata: {\"type\":\"close\",\"code\":"...)
	dst = strconv.AppendUint(dst, uint64(code), 10)
	dst = append(dst, `,"reason":`...)
	dst = appendJSONString(dst, reason)
	return append(dst, "}\n\n"...)
}
