package codec

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// maxCloseReason is the longest close reason that fits a control frame: 125
// bytes of payload (§5.5) minus the 2-byte status code (§5.5.1).
const maxCloseReason = ws.MaxControlFramePayloadSize - 2

// ValidCloseCode reports whether code may appear in a close frame on the wire
// (§7.4): 1000–1003 and 1007–1014 (defined by §7.4.1 or registered with IANA
// under §11.7), and 3000–4999 (libraries and applications, §7.4.2).
// Everything else is invalid: 0–999 are unused, 1004 is reserved, 1005, 1006
// and 1015 must never be sent, and 1016–2999 are reserved for future
// revisions of the protocol, so a receiver cannot know what they mean.
//
// ValidCloseCode is pure.
func ValidCloseCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClosePayload decodes the body of a close frame (§5.5.1): an optional
// 2-byte big-endian status code followed by an optional UTF-8 reason.
//
// An empty body means the peer gave no code; it returns StatusNoStatus
// (§7.1.5) and a nil reason. A 1-byte body returns ErrBadCloseLength, a code
// that ValidCloseCode rejects returns ErrBadCloseCode, and a reason that is not
// valid UTF-8 returns ErrInvalidUTF8 (§5.5.1, §8.1). On error code is 0 and
// reason is nil. On success reason aliases p (p[2:]).
//
// It does not check the 125-byte limit of control frames; CheckClientHeader
// does that before the payload is read.
//
// ParseClosePayload is pure and never allocates.
func ParseClosePayload(p []byte) (code StatusCode, reason []byte, err error) {
	switch len(p) {
	case 0:
		return StatusNoStatus, nil, nil
	case 1:
		return 0, nil, ErrBadCloseLength
	}
	code = StatusCode(binary.BigEndian.Uint16(p))
	if !ValidCloseCode(code) {
		return 0, nil, ErrBadCloseCode
	}
	reason = p[2:]
	if !utf8.Valid(reason) {
		return 0, nil, ErrInvalidUTF8
	}
	return code, reason, nil
}

// AppendClosePayload appends a close frame body (§5.5.1): code as 2 bytes
// big-endian, then reason. The reason is cut so the body fits a control frame
// (at most 125 bytes, §5.5) and is valid UTF-8 (§5.5.1): it keeps the longest
// prefix of reason that is at most 123 bytes and made of whole, valid UTF-8
// sequences. So a long reason loses its tail at a code point boundary, and
// anything from the first invalid byte on is dropped rather than sent to make
// the peer fail the connection with 1007.
//
// code should satisfy ValidCloseCode; it is written as given.
//
// AppendClosePayload is pure; it does not allocate when dst has 125 bytes of
// spare capacity.
func AppendClosePayload(dst []byte, code StatusCode, reason string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason[:closeReasonLen(reason)]...)
}

// AppendCloseFrame appends a whole unmasked server close frame (§5.5.1) whose
// body is AppendClosePayload(code, reason), or an empty body when code is
// StatusNoStatus, which means "no code" and must not be sent (§7.4.1).
//
// AppendCloseFrame is pure; it does not allocate when dst has 127 bytes of
// spare capacity.
func AppendCloseFrame(dst []byte, code StatusCode, reason string) []byte {
	if code == StatusNoStatus {
		return AppendFrameHeader(dst, ws.OpClose, true, 0)
	}
	// The body is at most 125 bytes, so the header is always the 2-byte form;
	// write it with a zero length and patch the length in afterwards.
	dst = AppendFrameHeader(dst, ws.OpClose, true, 0)
	start := len(dst)
	dst = AppendClosePayload(dst, code, reason)
	dst[start-1] = byte(len(dst) - start)
	return dst
}

// closeReasonLen returns the length of the longest prefix of reason that is at
// most maxCloseReason bytes and consists of whole, valid UTF-8 sequences.
func closeReasonLen(reason string) int {
	n := 0
	for n < len(reason) {
		size := 1
		if reason[n] >= utf8.RuneSelf {
			r, sz := utf8.DecodeRuneInString(reason[n:])
			if r == utf8.RuneError && sz == 1 {
				break // invalid byte; a literal U+FFFD decodes with size 3
			}
			size = sz
		}
		if n+size > maxCloseReason {
			break
		}
		n += size
	}
	return n
}
