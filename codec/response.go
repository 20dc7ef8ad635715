package codec

import (
	"crypto/sha1"
	"encoding/base64"
)

// acceptGUID is appended to the client's key before hashing (RFC 6455 §1.3,
// §4.2.2 item 5.4).
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey returns the Sec-WebSocket-Accept value for the client's
// Sec-WebSocket-Key: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
// (§4.2.2 item 5.4). AcceptKey is pure.
func AcceptKey(key string) string {
	var buf [28]byte // base64 of a 20-byte digest
	return string(appendAcceptKey(buf[:0], key))
}

// appendAcceptKey appends AcceptKey(key) to dst without allocating when dst
// has room and key is a normal 24-byte key.
func appendAcceptKey(dst []byte, key string) []byte {
	var in [24 + len(acceptGUID)]byte
	b := append(in[:0], key...)
	b = append(b, acceptGUID...)
	sum := sha1.Sum(b) // SHA-1 is mandated by §4.2.2; it is not used for security here.
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// AppendUpgradeResponse appends the server's handshake answer (§4.2.2 item 5):
// "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
// Sec-WebSocket-Accept computed from key and, if protocol is not empty,
// Sec-WebSocket-Protocol: protocol. protocol must be one of the tokens the
// client offered (§4.2.2 item 5.4 /subprotocol/); any byte that cannot appear
// in a header value is dropped, so a bad argument cannot split the response.
// It does not allocate when dst has room. AppendUpgradeResponse is pure.
func AppendUpgradeResponse(dst []byte, key, protocol string) []byte {
	return AppendUpgradeResponseExt(dst, key, protocol, "")
}

// AppendUpgradeResponseExt is AppendUpgradeResponse with a
// Sec-WebSocket-Extensions header (RFC 6455 §4.2.2 item 5, §9.1) carrying
// extensions, the negotiated extensions (NegotiateDeflate's Response),
// when it is not empty. Pure; it does not allocate when dst has room.
func AppendUpgradeResponseExt(dst []byte, key, protocol, extensions string) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\n"+
		"Upgrade: websocket\r\n"+
		"Connection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "...)
	dst = appendAcceptKey(dst, key)
	dst = append(dst, "\r\n"...)
	if protocol != "" {
		dst = append(dst, "Sec-WebSocket-Protocol: "...)
		dst = appendHeaderValue(dst, protocol)
		dst = append(dst, "\r\n"...)
	}
	if extensions != "" {
		dst = append(dst, "Sec-WebSocket-Extensions: "...)
		dst = appendHeaderValue(dst, extensions)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendHTTPError appends a complete HTTP/1.1 error response: the status line
// with the standard reason phrase, Content-Type: text/plain; charset=utf-8,
// Content-Length, Connection: close, the extra headers, and the body
// reason + "\n". A status outside 100..599 is written as 500. An extra header
// whose name is not an HTTP token is skipped, and bytes that cannot appear in
// a header value are dropped, so no argument can split the response (the
// extra headers come from HandshakeError.Header, which is ours, but the
// guard costs nothing). The connection is meant to be closed after it is
// written. It does not allocate when dst has room. AppendHTTPError is pure.
func AppendHTTPError(dst []byte, status int, reason string, header ...[2]string) []byte {
	return appendHTTPError(dst, status, reason, true, header)
}

// appendHeaderValue appends v without the control characters (other than
// HTAB) that RFC 7230 §3.2 forbids in a field value, CR and LF in particular.
func appendHeaderValue(dst []byte, v string) []byte {
	for i := range len(v) {
		if c := v[i]; c >= ' ' && c != 0x7f || c == '\t' {
			dst = append(dst, c)
		}
	}
	return dst
}
