package codec

import "errors"

// The Engine.IO relay: how a pushd node that receives a long-polling
// request for a session another node owns hands it to the owner (over the
// broker's mailboxes, docs/architecture.md "Mailboxes instead of sticky
// sessions"), and how the owner answers. A relay message is one bus
// message, whole; it is pushd's own format between nodes, never seen by
// clients.
//
// A request is one op byte, then for a POST the request body verbatim:
//
//	G          a poll (GET): the answer is the next payload
//	P<body>    a POST with its Engine.IO payload
//
// A reply is one kind byte, then its data:
//
//	D<payload> the payload that answers a poll (packets joined by EIOSeparator)
//	K          a POST was taken: answer 200 "ok"
//	E<digit>   an Engine.IO error code (EIOErrorBody): answer it
//
// Nodes of one cluster may run different pushd versions during a rolling
// upgrade: an op or kind a node does not know is an error, never a guess.

// Relay request ops.
const (
	EIORelayPoll byte = 'G'
	EIORelayPost byte = 'P'
)

// Relay reply kinds.
const (
	EIORelayPayload byte = 'D'
	EIORelayOK      byte = 'K'
	EIORelayError   byte = 'E'
)

// Engine.IO error codes (engine.io server.ts Server.errors), as carried by
// a relay error reply; EIOErrorBody maps each onto its HTTP answer.
const (
	EIOCodeUnknownTransport = iota
	EIOCodeUnknownSID
	EIOCodeBadHandshakeMethod
	EIOCodeBadRequest
	EIOCodeForbidden
	EIOCodeUnsupportedProtocolVersion
)

// ErrEIORelay is a relay message that is empty, has an unknown op or
// kind, or an error reply whose code is not one digit 0..5.
var ErrEIORelay = errors.New("codec: malformed Engine.IO relay message")

// EIOErrorBody returns the HTTP status and JSON body that answer Engine.IO
// error code code (EIOCode*): 403 for EIOCodeForbidden, 400 otherwise, with
// the reference server's bodies (EIOErr*). An unknown code gets the body of
// EIOCodeBadRequest. Pure; any goroutine.
func EIOErrorBody(code int) (status int, body string) {
	switch code {
	case EIOCodeUnknownTransport:
		return 400, EIOErrUnknownTransport
	case EIOCodeUnknownSID:
		return 400, EIOErrUnknownSID
	case EIOCodeBadHandshakeMethod:
		return 400, EIOErrBadHandshakeMethod
	case EIOCodeForbidden:
		return 403, EIOErrForbidden
	case EIOCodeUnsupportedProtocolVersion:
		return 400, EIOErrUnsupportedProtocolVersion
	}
	return 400, EIOErrBadRequest
}

// AppendEIORelayRequest appends a relay request: op (EIORelayPoll or
// EIORelayPost) and, for a POST, its body. It does not allocate when dst
// has room. Pure; any goroutine.
func AppendEIORelayRequest(dst []byte, op byte, body []byte) []byte {
	return append(append(dst, op), body...)
}

// ParseEIORelayRequest splits a relay request into its op and body (nil
// for a poll, the rest of p, aliasing it, for a POST). A poll with bytes
// after its op, an unknown op or an empty p is ErrEIORelay. It does not
// allocate. Pure; any goroutine.
func ParseEIORelayRequest(p []byte) (op byte, body []byte, err error) {
	if len(p) == 0 {
		return 0, nil, ErrEIORelay
	}
	switch p[0] {
	case EIORelayPoll:
		if len(p) != 1 {
			return 0, nil, ErrEIORelay
		}
		return EIORelayPoll, nil, nil
	case EIORelayPost:
		return EIORelayPost, p[1:], nil
	}
	return 0, nil, ErrEIORelay
}

// AppendEIORelayPayload appends the reply that answers a poll with
// payload. It does not allocate when dst has room. Pure; any goroutine.
func AppendEIORelayPayload(dst, payload []byte) []byte {
	return append(append(dst, EIORelayPayload), payload...)
}

// AppendEIORelayOK appends the reply to a POST that was taken. Pure; any
// goroutine.
func AppendEIORelayOK(dst []byte) []byte { return append(dst, EIORelayOK) }

// AppendEIORelayError appends an error reply with Engine.IO error code
// code (EIOCode*, 0..5). Pure; any goroutine.
func AppendEIORelayError(dst []byte, code int) []byte {
	return append(dst, EIORelayError, '0'+byte(code))
}

// EIORelayReply is a decoded relay reply.
type EIORelayReply struct {
	Kind    byte   // EIORelayPayload, EIORelayOK or EIORelayError
	Payload []byte // for EIORelayPayload; aliases the message
	Code    int    // for EIORelayError: an EIOCode*
}

// ParseEIORelayReply decodes a relay reply. An OK with bytes after it, an
// error whose code is not a single digit 0..5, an unknown kind or an empty
// p is ErrEIORelay. It does not allocate. Pure; any goroutine.
func ParseEIORelayReply(p []byte) (EIORelayReply, error) {
	if len(p) == 0 {
		return EIORelayReply{}, ErrEIORelay
	}
	switch p[0] {
	case EIORelayPayload:
		return EIORelayReply{Kind: EIORelayPayload, Payload: p[1:]}, nil
	case EIORelayOK:
		if len(p) == 1 {
			return EIORelayReply{Kind: EIORelayOK}, nil
		}
	case EIORelayError:
		if len(p) == 2 && p[1] >= '0' && p[1] <= '0'+EIOCodeUnsupportedProtocolVersion {
			return EIORelayReply{Kind: EIORelayError, Code: int(p[1] - '0')}, nil
		}
	}
	return EIORelayReply{}, ErrEIORelay
}
