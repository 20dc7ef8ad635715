package codec

import (
	"bytes"
	"errors"
	"strconv"
)

// Engine.IO protocol 4 (github.com/socketio/engine.io-protocol, the
// reference implementation in engine.io-parser and engine.io). A packet is
// one type digit followed by its data; on WebSocket each text frame holds one
// packet, on HTTP long-polling a body holds several joined by EIOSeparator.

// EIOType is an Engine.IO packet type.
type EIOType byte

// Engine.IO packet types (engine.io-protocol README, "Packet types"; the
// wire form is the digit '0'+type).
const (
	EIOOpen    EIOType = iota // server → client: the handshake, see AppendEIOOpen
	EIOClose                  // either way: close the transport
	EIOPing                   // server → client in protocol 4 (and "2probe" from a client upgrading)
	EIOPong                   // client → server answer to ping (and "3probe" from the server)
	EIOMessage                // either way: carries a Socket.IO packet
	EIOUpgrade                // client → server: switch to the probed WebSocket
	EIONoop                   // server → client: lets a pending poll return during an upgrade
)

// EIOSeparator joins the packets of a long-polling payload: the ASCII record
// separator (engine.io-parser SEPARATOR; engine.io-protocol "Packet
// encoding", HTTP long-polling).
const EIOSeparator = 0x1e

// EIOProbe is the data of the ping and pong that test a WebSocket before an
// upgrade: the client sends "2probe", the server answers "3probe".
const EIOProbe = "probe"

// Engine.IO error bodies, the JSON the reference server answers a bad
// handshake or polling request with (engine.io server.ts Server.errors and
// errorMessages, abortRequest): status 403 for EIOErrForbidden, 400 for the
// rest, Content-Type application/json.
const (
	EIOErrUnknownTransport           = `{"code":0,"message":"Transport unknown"}`
	EIOErrUnknownSID                 = `{"code":1,"message":"Session ID unknown"}`
	EIOErrBadHandshakeMethod         = `{"code":2,"message":"Bad handshake method"}`
	EIOErrBadRequest                 = `{"code":3,"message":"Bad request"}`
	EIOErrForbidden                  = `{"code":4,"message":"Forbidden"}`
	EIOErrUnsupportedProtocolVersion = `{"code":5,"message":"Unsupported protocol version"}`
)

// ErrEIOPacket is a packet that is empty or does not start with a type digit
// 0..6 (engine.io-parser decodePacket answers these with its error packet).
var ErrEIOPacket = errors.New("codec: malformed Engine.IO packet")

// ErrEIOBinary is a base64 binary packet ("b" + base64, the polling form of a
// binary message). pushd carries text only: refuse it by closing the
// session.
var ErrEIOBinary = errors.New("codec: binary Engine.IO packet not supported")

// String returns the name engine.io-parser gives the type, or "unknown".
func (t EIOType) String() string {
	names := [...]string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}
	if int(t) < len(names) {
		return names[t]
	}
	return "unknown"
}

// ParseEIOPacket splits one text packet into its type and data: p[0] is the
// type digit and data is the rest (nil when there is none), aliasing p. It
// returns ErrEIOBinary for a base64 binary packet and ErrEIOPacket for an
// empty packet or an unknown type. It checks no more: what the data of each
// type may be is the session's business. It does not allocate. ParseEIOPacket
// is pure and may be called from any goroutine.
func ParseEIOPacket(p []byte) (typ EIOType, data []byte, err error) {
	if len(p) == 0 {
		return 0, nil, ErrEIOPacket
	}
	c := p[0]
	switch {
	case c == 'b':
		return 0, nil, ErrEIOBinary
	case c < '0' || c > '0'+byte(EIONoop):
		return 0, nil, ErrEIOPacket
	}
	if len(p) > 1 {
		data = p[1:]
	}
	return EIOType(c - '0'), data, nil
}

// NextEIOPacket returns the first packet of a long-polling payload and the
// rest after its separator, aliasing payload. more reports whether a
// separator followed pkt, that is whether rest holds at least one more
// packet (possibly empty, which ParseEIOPacket refuses as the reference
// parser does). It splits as strings.Split(payload, "\x1e") does, one
// element per call:
//
//	for p := body; ; {
//		pkt, rest, more := codec.NextEIOPacket(p)
//		typ, data, err := codec.ParseEIOPacket(pkt)
//		...
//		if !more {
//			break
//		}
//		p = rest
//	}
//
// It does not allocate. NextEIOPacket is pure and may be called from any
// goroutine.
func NextEIOPacket(payload []byte) (pkt, rest []byte, more bool) {
	i := bytes.IndexByte(payload, EIOSeparator)
	if i < 0 {
		return payload, nil, false
	}
	return payload[:i], payload[i+1:], true
}

// AppendEIOOpen appends the open packet that answers a handshake
// (engine.io-protocol "Handshake"; engine.io socket.ts onOpen):
//
//	0{"sid":"…","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}
//
// sid and upgrades are JSON-escaped; a nil upgrades is written as []. It does
// not allocate when dst has room. AppendEIOOpen is pure and may be called from
// any goroutine.
func AppendEIOOpen(dst []byte, sid string, upgrades []string, pingIntervalMs, pingTimeoutMs, maxPayload int) []byte {
	dst = append(dst, `0{"sid":`...)
	dst = appendJSONString(dst, sid)
	dst = append(dst, `,"upgrades":[`...)
	for i, u := range upgrades {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, u)
	}
	dst = append(dst, `],"pingInterval":`...)
	dst = strconv.AppendInt(dst, int64(pingIntervalMs), 10)
	dst = append(dst, `,"pingTimeout":`...)
	dst = strconv.AppendInt(dst, int64(pingTimeoutMs), 10)
	dst = append(dst, `,"maxPayload":`...)
	dst = strconv.AppendInt(dst, int64(maxPayload), 10)
	return append(dst, '}')
}

// AppendEIOClose appends a close packet, "1". Pure; any goroutine.
func AppendEIOClose(dst []byte) []byte { return append(dst, '0'+byte(EIOClose)) }

// AppendEIOPing appends the server's heartbeat, "2" (protocol 4: the server
// pings, the client answers). Pure; any goroutine.
func AppendEIOPing(dst []byte) []byte { return append(dst, '0'+byte(EIOPing)) }

// AppendEIOPong appends "3", a pong without data. Pure; any goroutine.
func AppendEIOPong(dst []byte) []byte { return append(dst, '0'+byte(EIOPong)) }

// AppendEIOProbePong appends "3probe", the server's answer to a client's
// "2probe" on the WebSocket it is about to upgrade to. Pure; any goroutine.
func AppendEIOProbePong(dst []byte) []byte {
	return append(append(dst, '0'+byte(EIOPong)), EIOProbe...)
}

// AppendEIONoop appends "6", which the server sends to a pending poll so the
// client can finish an upgrade. Pure; any goroutine.
func AppendEIONoop(dst []byte) []byte { return append(dst, '0'+byte(EIONoop)) }

// AppendEIOMessage appends a message packet, "4" followed by data verbatim.
// The Socket.IO encoders (AppendSIO*) include the "4" themselves. It does
// not allocate when dst has room. Pure; any goroutine.
func AppendEIOMessage(dst, data []byte) []byte {
	return append(append(dst, '0'+byte(EIOMessage)), data...)
}
