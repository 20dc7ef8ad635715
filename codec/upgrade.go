package codec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
)

// ErrNeedMore means the bytes seen so far hold no complete request head yet.
// It is a normal answer on a non-blocking socket: keep the bytes and call
// ParseRequest again when more arrive.
var ErrNeedMore = errors.New("codec: need more bytes")

// Default limits of RequestLimits.
const (
	DefaultMaxHeaderBytes = 8192
	DefaultMaxHeaders     = 64
)

// HandshakeError is a rejected upgrade request (or, as HTTPError, any
// request ParseRequest rejects): the HTTP status to answer with, a short
// reason for the response body and logs, and extra response headers. Reason never contains request header values, which may be secret.
// Write the answer with AppendHTTPError(dst, e.Status, e.Reason, e.Header...).
type HandshakeError struct {
	Status int
	Reason string
	Header [][2]string // e.g. {"Sec-WebSocket-Version", "13"} on 426
}

// Error implements error. It is safe for concurrent use.
func (e *HandshakeError) Error() string {
	return "codec: handshake rejected: " + strconv.Itoa(e.Status) + " " + e.Reason
}

func badRequest(reason string) *HandshakeError {
	return &HandshakeError{Status: 400, Reason: reason}
}

// scanHead walks the request head at the start of p line by line for
// ParseRequest: it hands the request line to requestLine
// and each header line to header as soon as the line is complete, so a
// request that is already wrong is answered without waiting for the rest.
// On reaching the blank line it returns the number of header fields and the
// length of the head; the checks that need the whole head are the caller's.
//
// It returns ErrNeedMore while the first maxBytes bytes of p hold no complete
// head and len(p) <= maxBytes, a 431 when the head is longer than maxBytes or
// has more than maxHeaders fields, a 400 for a line not ended by CRLF, and
// whatever requestLine or header return. The callbacks must not keep line
// beyond the call, except as slices of p the caller copies before returning.
func scanHead(p []byte, maxBytes, maxHeaders int, requestLine, header func(line []byte) *HandshakeError) (fields, n int, err error) {
	w := p
	if len(w) > maxBytes {
		w = w[:maxBytes]
	}
	// incomplete is the answer when w holds no complete head.
	incomplete := error(ErrNeedMore)
	if len(p) > maxBytes {
		incomplete = &HandshakeError{Status: 431, Reason: "request header too large"}
	}

	pos := 0
	for lineNo := 0; ; lineNo++ {
		i := bytes.IndexByte(w[pos:], '\n')
		if i < 0 {
			if lineNo == 0 && !methodPrefixOK(w) {
				// Not HTTP at all (a TLS ClientHello, say): answer now rather
				// than wait for a line end that may never come.
				return 0, 0, errMalformedRequestLine()
			}
			return 0, 0, incomplete
		}
		end := pos + i // index of the '\n'
		if i == 0 || w[end-1] != '\r' {
			if lineNo == 0 {
				// The same answer methodPrefixOK's check gives for this line.
				return 0, 0, errMalformedRequestLine()
			}
			return 0, 0, badRequest("line not terminated by CRLF")
		}
		line := w[pos : end-1]
		pos = end + 1
		switch {
		case lineNo == 0:
			if herr := requestLine(line); herr != nil {
				return 0, 0, herr
			}
		case len(line) == 0:
			return lineNo - 1, pos, nil
		case lineNo > maxHeaders:
			return 0, 0, &HandshakeError{Status: 431, Reason: "too many header fields"}
		default:
			if herr := header(line); herr != nil {
				return 0, 0, herr
			}
		}
	}
}

// methodPrefixOK reports whether the incomplete request line b may still
// become valid: its bytes up to the first space must all be token characters,
// as the method is. A byte that fails makes requestLine answer
// errMalformedRequestLine whatever follows, so answering that early does not
// depend on how the stream was split.
func methodPrefixOK(b []byte) bool {
	for _, c := range b {
		if c == ' ' {
			return true
		}
		if !isTokenChar(c) {
			return false
		}
	}
	return true
}

func errMalformedRequestLine() *HandshakeError { return badRequest("malformed request line") }

// parseTarget checks an origin-form request-target (RFC 7230 §5.3.1) and
// splits it at the first '?' into the path and the undecoded query.
func parseTarget(target []byte) (path, query []byte, herr *HandshakeError) {
	if len(target) == 0 || target[0] != '/' {
		return nil, nil, badRequest("request target must be a path")
	}
	for _, c := range target {
		// RFC 3986 characters are all visible ASCII; '#' never reaches a server.
		if c <= ' ' || c >= 0x7f || c == '#' {
			return nil, nil, badRequest("invalid character in request target")
		}
	}
	path, query, _ = bytes.Cut(target, []byte{'?'})
	if !validEscapes(path) {
		// RFC 3986 §2.1. The query is left to the caller's parser, which can
		// reject or tolerate a stray '%' per parameter.
		return nil, nil, badRequest("malformed percent-encoding in path")
	}
	return path, query, nil
}

// validEscapes reports whether every '%' in b starts a "%XX" escape.
func validEscapes[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// splitHeaderLine checks one header line (RFC 7230 §3.2) and returns its
// name and its value without surrounding whitespace.
func splitHeaderLine(line []byte) (name, value []byte, herr *HandshakeError) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		// Also rejects obsolete line folding (a line starting with SP or HT),
		// which RFC 7230 §3.2.4 tells servers to reject.
		return nil, nil, badRequest("malformed header line")
	}
	name = line[:colon]
	if !isToken(name) {
		// Includes whitespace before the colon, RFC 7230 §3.2.4.
		return nil, nil, badRequest("malformed header name")
	}
	value = trimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, badRequest("invalid character in header value")
		}
	}
	return name, value, nil
}

// repeated returns name if seen, else "". The reason then names the header
// in its canonical form rather than echoing the client's bytes.
func repeated(seen bool, name string) string {
	if seen {
		return name
	}
	return ""
}

// validKey reports whether key is a valid Sec-WebSocket-Key: base64 that
// decodes to exactly 16 bytes (§4.1 item 7, §4.2.1 item 5).
func validKey[T string | []byte](key T) bool {
	const encodedLen = 24 // base64 of 16 bytes, with "==" padding
	if len(key) != encodedLen {
		return false
	}
	var buf [18]byte // base64.StdEncoding.DecodedLen(24)
	var in [encodedLen]byte
	copy(in[:], key)
	n, err := base64.StdEncoding.Decode(buf[:], in[:])
	return err == nil && n == 16
}

// listHasToken reports whether the comma-separated list value holds token,
// compared case-insensitively; token must be lower case.
func listHasToken(value []byte, token string) bool {
	for elem := range bytes.SplitSeq(value, []byte{','}) {
		if equalFoldLower(trimOWS(elem), token) {
			return true
		}
	}
	return false
}

// equalFoldLower reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case in b.
func equalFoldLower(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// trimOWS removes optional whitespace (SP and HTAB, RFC 7230 §3.2.3) around b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// isToken reports whether b is a non-empty RFC 7230 §3.2.6 token.
func isToken[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !isTokenChar(b[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c is an RFC 7230 tchar.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
