package codec

import (
	"bytes"
	"errors"
	"strconv"
)

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
//	R          to a Socket.IO pid's mailbox: the state its session left
//	           for connection state recovery (taken: asked once)
//	X          the client dropped a poll relayed to this session before
//	           its answer reached it: the session ends, as with a held
//	           poll dropped on the owner (answered K)
//
// A reply is one kind byte, then its data:
//
//	D<payload> the payload that answers a poll (packets joined by EIOSeparator)
//	K          a POST was taken: answer 200 "ok"
//	E<digit>   an Engine.IO error code (EIOErrorBody): answer it
//	S<state>   the state a session left: 'a' (anonymous) or 'u', the
//	           subject's length in decimal, a colon, the subject, then its
//	           topics joined by commas
//
// Nodes of one cluster may run different pushd versions during a rolling
// upgrade: an op or kind a node does not know is an error, never a guess.

// Relay request ops.
const (
	EIORelayPoll    byte = 'G'
	EIORelayPost    byte = 'P'
	EIORelayRecover byte = 'R'
	EIORelayDropped byte = 'X'
)

// Relay reply kinds.
const (
	EIORelayPayload byte = 'D'
	EIORelayOK      byte = 'K'
	EIORelayError   byte = 'E'
	EIORelayState   byte = 'S'
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
// for a poll, a recovery or a dropped poll, the rest of p, aliasing it,
// for a POST). Any of those three with bytes after its op, an unknown op
// or an empty p is ErrEIORelay. It does not
// allocate. Pure; any goroutine.
func ParseEIORelayRequest(p []byte) (op byte, body []byte, err error) {
	if len(p) == 0 {
		return 0, nil, ErrEIORelay
	}
	switch p[0] {
	case EIORelayPoll, EIORelayRecover, EIORelayDropped:
		if len(p) != 1 {
			return 0, nil, ErrEIORelay
		}
		return p[0], nil, nil
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

// AppendEIORelayState appends the reply that hands over the state a
// Socket.IO session left for recovery: whether it was anonymous, its
// subject, and its topics (valid topic names, which hold no comma). It
// does not allocate when dst has room. Pure; any goroutine.
func AppendEIORelayState(dst []byte, anonymous bool, subject string, topics []string) []byte {
	dst = append(dst, EIORelayState)
	if anonymous {
		dst = append(dst, 'a')
	} else {
		dst = append(dst, 'u')
	}
	dst = strconv.AppendInt(dst, int64(len(subject)), 10)
	dst = append(dst, ':')
	dst = append(dst, subject...)
	for i, t := range topics {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, t...)
	}
	return dst
}

// EIORelayReply is a decoded relay reply.
type EIORelayReply struct {
	Kind    byte   // EIORelayPayload, EIORelayOK, EIORelayError or EIORelayState
	Payload []byte // for EIORelayPayload; aliases the message
	Code    int    // for EIORelayError: an EIOCode*

	// For EIORelayState.
	Anonymous bool
	Subject   string
	Topics    []string
}

// ParseEIORelayReply decodes a relay reply. An OK with bytes after it, an
// error whose code is not a single digit 0..5, a state whose subject length
// is not what follows or whose topics are not valid names (ValidTopic), an
// unknown kind or an empty p is ErrEIORelay. It allocates only for a state
// (its subject and topics). Pure; any goroutine.
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
	case EIORelayState:
		return parseRelayState(p[1:])
	}
	return EIORelayReply{}, ErrEIORelay
}

// maxRelaySubject bounds a state's subject (its length has at most 5 digits).
const maxRelaySubject = 99999

// parseRelayState decodes the data of a state reply.
func parseRelayState(p []byte) (EIORelayReply, error) {
	if len(p) < 3 || p[0] != 'a' && p[0] != 'u' {
		return EIORelayReply{}, ErrEIORelay
	}
	r := EIORelayReply{Kind: EIORelayState, Anonymous: p[0] == 'a'}
	colon := bytes.IndexByte(p, ':')
	if colon < 2 || colon > 6 || p[1] == '0' && colon > 2 {
		return EIORelayReply{}, ErrEIORelay
	}
	n := 0
	for _, c := range p[1:colon] {
		if c < '0' || c > '9' {
			return EIORelayReply{}, ErrEIORelay
		}
		n = n*10 + int(c-'0')
	}
	rest := p[colon+1:]
	if n > len(rest) || n > maxRelaySubject {
		return EIORelayReply{}, ErrEIORelay
	}
	r.Subject, rest = string(rest[:n]), rest[n:]
	for len(rest) > 0 {
		t := rest
		if i := bytes.IndexByte(rest, ','); i >= 0 {
			t, rest = rest[:i], rest[i+1:]
			if len(rest) == 0 {
				return EIORelayReply{}, ErrEIORelay // a trailing comma
			}
		} else {
			rest = nil
		}
		if ValidTopic(string(t)) != nil {
			return EIORelayReply{}, ErrEIORelay
		}
		r.Topics = append(r.Topics, string(t))
	}
	return r, nil
}
