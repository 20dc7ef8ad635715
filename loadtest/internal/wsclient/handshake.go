package wsclient

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
)

// acceptGUID is the fixed GUID of RFC 6455 §1.3 that the server appends to
// Sec-WebSocket-Key before hashing.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxResponseHeader bounds how much of a handshake response the client
// buffers before giving up on it.
const maxResponseHeader = 8 << 10

// appendRequest appends the opening handshake (§4.1) for path on host to
// dst. key is the base64 nonce; extra holds complete header lines, each
// ending in CRLF. Pure.
func appendRequest(dst []byte, path, host string, key []byte, extra string) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	dst = append(dst, "\r\nSec-WebSocket-Version: 13\r\n"...)
	dst = append(dst, extra...)
	return append(dst, "\r\n"...)
}

// acceptFor computes the Sec-WebSocket-Accept value a server must return
// for key (§4.2.2 step 5.4). Pure.
func acceptFor(key []byte) []byte {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(acceptGUID))
	var sum [sha1.Size]byte
	out := make([]byte, base64.StdEncoding.EncodedLen(sha1.Size))
	base64.StdEncoding.Encode(out, h.Sum(sum[:0]))
	return out
}

// responseError is a handshake that the server answered but did not accept.
// Kind is the error kind the harness counts it under.
type responseError struct{ Kind string }

// Error implements error.
func (e *responseError) Error() string { return "wsclient: handshake failed: " + e.Kind }

var errHeaderTooBig = &responseError{"bad_handshake"}

// parseResponse looks for a complete handshake response at the start of p.
// It returns the number of bytes the response used (frames may follow in
// the same read), or 0 and a nil error if more bytes are needed. It checks
// what §4.1 requires the client to check: status 101, an Upgrade header of
// "websocket", and the Sec-WebSocket-Accept value for key. Pure.
func parseResponse(p, key []byte) (int, error) {
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		if len(p) > maxResponseHeader {
			return 0, errHeaderTooBig
		}
		return 0, nil
	}
	head := p[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) || len(line) < 12 {
		return 0, &responseError{"bad_handshake"}
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, &responseError{"bad_handshake"}
	}
	if code != 101 {
		return 0, &responseError{"http_" + strconv.Itoa(code)}
	}
	var upgrade, accept bool
	want := acceptFor(key)
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			accept = bytes.Equal(value, want)
		}
	}
	if !upgrade || !accept {
		return 0, &responseError{"bad_handshake"}
	}
	return end + 4, nil
}
