package codec

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/gobwas/ws"
)

// ErrShortHeader means the bytes seen so far end inside a frame header. It is
// a normal answer on a non-blocking socket: keep the bytes and parse again
// when more arrive.
var ErrShortHeader = errors.New("codec: short header")

// Bits of the first two header bytes (RFC 6455 §5.2).
const (
	bitFin    = 0x80 // byte 0: final fragment
	maskRsv   = 0x70 // byte 0: RSV1..RSV3
	maskOp    = 0x0f // byte 0: opcode
	bitMasked = 0x80 // byte 1: MASK
	maskLen7  = 0x7f // byte 1: 7-bit payload length

	len16Marker = 126 // 7-bit length value announcing a 16-bit length
	len64Marker = 127 // 7-bit length value announcing a 64-bit length

	// maxLen7 and maxLen16 are the largest payloads whose length fits the
	// 7-bit and 16-bit forms.
	maxLen7  = 125
	maxLen16 = 0xffff
)

// ParseHeader decodes the frame header at the start of p and reports how many
// bytes it used (2 to 14). The payload starts at p[n].
//
// It returns ErrShortHeader if p ends inside the header (including an empty
// p), and ErrLengthOverflow if the 64-bit length has its most significant bit
// set, which §5.2 forbids. The overflow is reported as soon as the eight
// length bytes are present, even if the masking key is still missing, because
// such a frame can never become valid. On error n is 0 and h is the zero
// Header.
//
// It does no other validation (see CheckClientHeader). In particular it
// accepts a length that is not in the minimal form: §5.2 obliges the sender to
// use the minimal form but gives the receiver no rule, and rejecting it would
// buy nothing since the length is still unambiguous.
//
// ParseHeader is pure and never allocates.
func ParseHeader(p []byte) (h ws.Header, n int, err error) {
	if len(p) < ws.MinHeaderSize {
		return ws.Header{}, 0, ErrShortHeader
	}
	b0, b1 := p[0], p[1]
	n = ws.MinHeaderSize
	switch l := b1 & maskLen7; l {
	case len16Marker:
		if len(p) < n+2 {
			return ws.Header{}, 0, ErrShortHeader
		}
		h.Length = int64(binary.BigEndian.Uint16(p[n:]))
		n += 2
	case len64Marker:
		if len(p) < n+8 {
			return ws.Header{}, 0, ErrShortHeader
		}
		u := binary.BigEndian.Uint64(p[n:])
		if u>>63 != 0 {
			return ws.Header{}, 0, ErrLengthOverflow
		}
		h.Length = int64(u)
		n += 8
	default:
		h.Length = int64(l)
	}
	if b1&bitMasked != 0 {
		if len(p) < n+4 {
			return ws.Header{}, 0, ErrShortHeader
		}
		h.Masked = true
		copy(h.Mask[:], p[n:n+4])
		n += 4
	}
	h.Fin = b0&bitFin != 0
	h.Rsv = (b0 & maskRsv) >> 4
	h.OpCode = ws.OpCode(b0 & maskOp)
	return h, n, nil
}

// CheckClientHeader validates the header of a frame a client sent to the
// server. inMessage reports whether a fragmented data message is open, i.e.
// a text or binary frame without FIN arrived and its final continuation has
// not. The rules, checked in this order, are:
//
//   - the frame must be masked (§5.1, §5.3): ErrUnmasked;
//   - RSV1..RSV3 must be zero on a connection without an extension (§5.2;
//     CheckClientHeaderDeflate allows RSV1 where permessage-deflate was
//     negotiated):
//     ErrReservedBits;
//   - the opcode must be 0x0, 0x1, 0x2, 0x8, 0x9 or 0xA (§5.2, §11.8):
//     ErrReservedOpcode;
//   - a control frame must carry at most 125 bytes (§5.5): ErrControlTooLong,
//     and must not be fragmented (§5.5): ErrControlFragmented;
//   - a continuation frame needs an open message (§5.4): ErrUnexpectedCont,
//     and a text or binary frame must not start while one is open (§5.4):
//     ErrExpectedCont. Control frames may arrive in the middle of a
//     fragmented message (§5.4) and are not affected by inMessage.
//
// It returns one of those shared *CloseError values or nil; all of them call
// for closing with 1002 (§7.4.1). Limits on frame and message size are the
// caller's (ErrFrameTooBig, ErrMessageTooBig), since they are policy, not
// protocol.
//
// CheckClientHeader is pure and never allocates.
func CheckClientHeader(h ws.Header, inMessage bool) error {
	if !h.Masked {
		return ErrUnmasked
	}
	if h.Rsv != 0 {
		return ErrReservedBits
	}
	switch h.OpCode {
	case ws.OpText, ws.OpBinary:
		if inMessage {
			return ErrExpectedCont
		}
	case ws.OpContinuation:
		if !inMessage {
			return ErrUnexpectedCont
		}
	case ws.OpClose, ws.OpPing, ws.OpPong:
		if h.Length > ws.MaxControlFramePayloadSize {
			return ErrControlTooLong
		}
		if !h.Fin {
			return ErrControlFragmented
		}
	default:
		return ErrReservedOpcode
	}
	return nil
}

// ServerHeaderLen returns the size of the unmasked header that
// AppendFrameHeader and PutFrameHeader write for a payload of n bytes: 2, 4
// or 10 (§5.2, minimal length form). It panics if n is negative.
//
// ServerHeaderLen is pure.
func ServerHeaderLen(n int) int {
	switch {
	case n < 0:
		panic("codec: negative payload length")
	case n <= maxLen7:
		return 2
	case n <= maxLen16:
		return 4
	default:
		return 10
	}
}

// AppendFrameHeader appends the header of an unmasked server frame (servers
// must not mask, §5.1) with opcode op, FIN set if fin, zero RSV bits and
// payload length n in its minimal form (§5.2), and returns the extended
// slice. op must be a 4-bit opcode; higher bits are dropped so they cannot
// spill into the RSV bits. It panics if n is negative.
//
// AppendFrameHeader is pure; it does not allocate when dst has 10 bytes of
// spare capacity.
func AppendFrameHeader(dst []byte, op ws.OpCode, fin bool, n int) []byte {
	b0 := serverFirstByte(op, fin)
	switch ServerHeaderLen(n) {
	case 2:
		return append(dst, b0, byte(n))
	case 4:
		return append(dst, b0, len16Marker, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, len64Marker), uint64(n))
	}
}

// PutFrameHeader writes the same header as AppendFrameHeader into the end of
// dst: the ServerHeaderLen(n) bytes ending at len(dst). It returns the index
// where the header starts, so dst[start:] followed by the payload is the frame.
//
// This lets a caller that does not know the payload length in advance reserve
// 10 bytes (the longest server header), append the payload after them, and
// then write the header just in front of the payload without moving it:
//
//	buf = append(buf[:0], make([]byte, 10)...) // room for any header
//	buf = appendPayload(buf)                    // e.g. a JSON encoder
//	start := codec.PutFrameHeader(buf[:10], ws.OpText, true, len(buf)-10)
//	frame := buf[start:]
//
// It panics if len(dst) < ServerHeaderLen(n) or n is negative.
//
// PutFrameHeader is pure and never allocates.
func PutFrameHeader(dst []byte, op ws.OpCode, fin bool, n int) (start int) {
	hl := ServerHeaderLen(n)
	start = len(dst) - hl
	if start < 0 {
		panic("codec: PutFrameHeader: dst shorter than the header")
	}
	h := dst[start:]
	h[0] = serverFirstByte(op, fin)
	switch hl {
	case 2:
		h[1] = byte(n)
	case 4:
		h[1] = len16Marker
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = len64Marker
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	return start
}

// AppendFrame appends a whole unmasked server frame (header and payload) and
// returns the extended slice. See AppendFrameHeader for op and fin.
//
// AppendFrame is pure; it does not allocate when dst has room for
// ServerHeaderLen(len(payload))+len(payload) more bytes, and grows dst at most
// once otherwise.
func AppendFrame(dst []byte, op ws.OpCode, fin bool, payload []byte) []byte {
	dst = slices.Grow(dst, ServerHeaderLen(len(payload))+len(payload))
	dst = AppendFrameHeader(dst, op, fin, len(payload))
	return append(dst, payload...)
}

// serverFirstByte builds header byte 0: FIN, zero RSV bits, opcode (§5.2).
func serverFirstByte(op ws.OpCode, fin bool) byte {
	b := byte(op) & maskOp
	if fin {
		b |= bitFin
	}
	return b
}

// MaxServerHeaderLen is the longest unmasked server frame header: 2 bytes
// plus a 64-bit extended payload length (§5.2).
const MaxServerHeaderLen = 10

var headerRoom [MaxServerHeaderLen]byte

// AppendFrameRoom appends MaxServerHeaderLen bytes of room for a frame
// header, to be filled in by FinishFrame once the payload after it is
// complete. Together they build a frame whose payload is encoded straight
// into the buffer, with no copy:
//
//	at := len(buf)
//	buf = codec.AppendFrameRoom(buf)
//	buf = codec.AppendPush(buf, topic, seq, data)
//	start := codec.FinishFrame(buf, at, ws.OpText)
//	frame := buf[start:]
//
// AppendFrameRoom is pure; it does not allocate when dst has room.
func AppendFrameRoom(dst []byte) []byte { return append(dst, headerRoom[:]...) }

// FinishFrame writes the header of a final (FIN) unmasked frame with opcode
// op in front of the payload b[at+MaxServerHeaderLen:], inside the room that
// AppendFrameRoom appended at index at, and returns the index where the
// frame starts. It panics if b is shorter than at+MaxServerHeaderLen.
//
// FinishFrame is pure and never allocates.
func FinishFrame(b []byte, at int, op ws.OpCode) (start int) {
	end := at + MaxServerHeaderLen
	return at + PutFrameHeader(b[at:end], op, true, len(b)-end)
}
