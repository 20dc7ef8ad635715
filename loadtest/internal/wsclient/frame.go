package wsclient

import (
	"encoding/binary"
	"errors"
)

// Opcode is a WebSocket frame opcode (RFC 6455 §5.2).
type Opcode byte

// The opcodes of RFC 6455 §5.2.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode (§5.5: the high bit of
// the 4-bit opcode is set). Pure.
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

// header is a parsed frame header.
type header struct {
	fin    bool
	op     Opcode
	length int64 // payload length
	size   int   // bytes the header itself used
}

var (
	// errNeedMore means p ends inside the header; it is not a failure.
	errNeedMore = errors.New("wsclient: need more bytes")
	// errMasked: a server must not mask the frames it sends (§5.1).
	errMasked = errors.New("wsclient: masked server frame")
	// errReserved: RSV bits without a negotiated extension (§5.2), or a
	// reserved opcode.
	errReserved = errors.New("wsclient: reserved bits or opcode")
	// errControl: a control frame over 125 bytes or fragmented (§5.5).
	errControl = errors.New("wsclient: bad control frame")
	// errTooBig: a frame over the configured limit.
	errTooBig = errors.New("wsclient: frame too big")
)

// parseHeader decodes the server frame header at the start of p (§5.2).
// It returns errNeedMore if p ends inside the header, and checks the rules a
// client must enforce on what a server sends. Pure.
func parseHeader(p []byte, maxPayload int64) (header, error) {
	if len(p) < 2 {
		return header{}, errNeedMore
	}
	h := header{fin: p[0]&0x80 != 0, op: Opcode(p[0] & 0x0f), size: 2}
	if p[0]&0x70 != 0 {
		return h, errReserved
	}
	switch h.op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return h, errReserved
	}
	if p[1]&0x80 != 0 {
		return h, errMasked
	}
	switch l := p[1] & 0x7f; l {
	case 126:
		if len(p) < 4 {
			return h, errNeedMore
		}
		h.length = int64(binary.BigEndian.Uint16(p[2:4]))
		h.size = 4
	case 127:
		if len(p) < 10 {
			return h, errNeedMore
		}
		u := binary.BigEndian.Uint64(p[2:10])
		if u>>63 != 0 { // §5.2: the most significant bit MUST be 0
			return h, errTooBig
		}
		h.length = int64(u)
		h.size = 10
	default:
		h.length = int64(l)
	}
	if h.op.IsControl() && (h.length > 125 || !h.fin) {
		return h, errControl
	}
	if h.length > maxPayload {
		return h, errTooBig
	}
	return h, nil
}

// appendFrame appends one complete, final, masked client frame (§5.2, §5.3)
// carrying payload to dst and returns the extended slice. mask is the
// 4-byte masking key. Pure.
func appendFrame(dst []byte, op Opcode, payload []byte, mask [4]byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= mask[i&3]
	}
	return dst
}

// closePayload builds a close frame body: a 2-byte status code in network
// order (§5.5.1). Pure.
func closePayload(code int) []byte {
	return []byte{byte(code >> 8), byte(code)}
}

// closeCode reads the status code of a close frame body: 1005 (no status,
// §7.4.1) when the body is empty. Pure.
func closeCode(p []byte) int {
	if len(p) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(p))
}
