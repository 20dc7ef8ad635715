package codec

import "strconv"

// StatusCode is a WebSocket close status code (RFC 6455 §7.4).
type StatusCode uint16

// Close status codes used by pushd. The 1xxx codes are RFC 6455 §7.4.1 and the
// IANA registry; the 4xxx codes are pushd's own (docs/protocol.md):
// 4000–4499 mean "reconnect (with backoff)", 4500–4999 mean "do not reconnect
// without fixing something first".
const (
	StatusNormal          StatusCode = 1000
	StatusGoingAway       StatusCode = 1001
	StatusProtocolError   StatusCode = 1002
	StatusUnsupportedData StatusCode = 1003
	StatusNoStatus        StatusCode = 1005 // never on the wire
	StatusAbnormal        StatusCode = 1006 // never on the wire
	StatusInvalidPayload  StatusCode = 1007
	StatusPolicyViolation StatusCode = 1008
	StatusMessageTooBig   StatusCode = 1009
	StatusMandatoryExt    StatusCode = 1010
	StatusInternalError   StatusCode = 1011
	StatusServiceRestart  StatusCode = 1012
	StatusTryAgainLater   StatusCode = 1013

	// Reconnect range.
	StatusSlowConsumer     StatusCode = 4000 // outbound buffer over its cap
	StatusHeartbeatTimeout StatusCode = 4001 // no pong within the pong timeout
	StatusTokenExpired     StatusCode = 4002 // refresh the token and reconnect
	StatusHistoryLost      StatusCode = 4003 // a durable topic's live stream lost messages: reconnect and resume

	// Do-not-reconnect range.
	StatusUnauthorized StatusCode = 4500 // token missing or invalid
	StatusForbidden    StatusCode = 4501 // token does not allow this
)

// Reconnect reports whether a client closed with c may reconnect without
// changing anything. It is false for pushd's 4500–4999 range and for
// protocol faults that would repeat.
func (c StatusCode) Reconnect() bool {
	switch {
	case c >= 4500 && c <= 4999:
		return false
	case c == StatusProtocolError, c == StatusUnsupportedData, c == StatusInvalidPayload,
		c == StatusPolicyViolation, c == StatusMessageTooBig, c == StatusMandatoryExt:
		return false
	}
	return true
}

// CloseError is a reason to close a connection: the code to send and a short
// reason (at most 123 bytes of UTF-8, so the close payload fits a control
// frame, §5.5). It implements error.
type CloseError struct {
	Code   StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return "codec: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// Close errors returned by the frame checks. They are shared values: compare
// with errors.Is or ==, never modify them.
var (
	ErrUnmasked          = &CloseError{StatusProtocolError, "unmasked client frame"}
	ErrReservedBits      = &CloseError{StatusProtocolError, "reserved bits set"}
	ErrReservedOpcode    = &CloseError{StatusProtocolError, "reserved opcode"}
	ErrControlTooLong    = &CloseError{StatusProtocolError, "control frame over 125 bytes"}
	ErrControlFragmented = &CloseError{StatusProtocolError, "fragmented control frame"}
	ErrUnexpectedCont    = &CloseError{StatusProtocolError, "continuation frame with no message open"}
	ErrExpectedCont      = &CloseError{StatusProtocolError, "new data frame inside a fragmented message"}
	ErrLengthOverflow    = &CloseError{StatusProtocolError, "64-bit length with the top bit set"}
	ErrBadCloseLength    = &CloseError{StatusProtocolError, "close payload of 1 byte"}
	ErrBadCloseCode      = &CloseError{StatusProtocolError, "invalid close code"}
	ErrInvalidUTF8       = &CloseError{StatusInvalidPayload, "invalid UTF-8 in text"}
	ErrFrameTooBig       = &CloseError{StatusMessageTooBig, "frame too big"}
	ErrMessageTooBig     = &CloseError{StatusMessageTooBig, "message too big"}
)
