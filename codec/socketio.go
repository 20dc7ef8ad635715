package codec

import (
	"bytes"
	"errors"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Socket.IO protocol 5 (github.com/socketio/socket.io-protocol; the
// reference parser is socket.io-parser's Decoder.decodeString and
// isPacketValid). A packet is
//
//	<type>[<nsp>,][<ack id>][<JSON data>]
//
// carried as the data of an Engine.IO message packet. Every function here
// works on the whole Engine.IO packet, "4" prefix included: the encoders
// write it and ParseSIOPacket expects it, so what they produce and take is
// exactly one WebSocket text frame, or one element of a polling payload,
// and a broadcast is encoded once for both transports.

// SIOType is a Socket.IO packet type.
type SIOType byte

// Socket.IO packet types (socket.io-protocol "Packet types").
const (
	SIOConnect      SIOType = iota // client: join a namespace (data: auth object); server: accepted (data: {"sid"})
	SIODisconnect                  // leave a namespace
	SIOEvent                       // data: ["name", args...]
	SIOAck                         // data: [args...], answering the EVENT with the same ack id
	SIOConnectError                // server: namespace refused (data: {"message"})
	SIOBinaryEvent                 // EVENT with binary attachments: refused, see ErrSIOBinary
	SIOBinaryAck                   // ACK with binary attachments: refused, see ErrSIOBinary
)

// String returns the name socket.io-parser gives the type, or "UNKNOWN".
func (t SIOType) String() string {
	names := [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}
	if int(t) < len(names) {
		return names[t]
	}
	return "UNKNOWN"
}

// SIOPacket is a decoded Socket.IO packet.
type SIOPacket struct {
	Type      SIOType
	Namespace string // "/" for the main namespace
	AckID     int64  // -1 if none
	Data      []byte // raw JSON, aliasing the parsed bytes; nil if absent
}

// Socket.IO decoding errors. Each means the client broke the protocol; the
// reference server closes the connection on any of them.
var (
	// ErrSIOPacket is a packet that is not an Engine.IO message, has an
	// unknown type, a namespace that is not valid UTF-8 or holds control
	// characters, a bad ack id, or an ack id where the type has none.
	ErrSIOPacket = errors.New("codec: malformed Socket.IO packet")
	// ErrSIOPayload is data that is not valid JSON or not what the type
	// carries (see ParseSIOPacket), including an event with a reserved name.
	ErrSIOPayload = errors.New("codec: invalid Socket.IO payload")
	// ErrSIOBinary is a BINARY_EVENT or BINARY_ACK. pushd carries text only:
	// refuse it by closing the session.
	ErrSIOBinary = errors.New("codec: binary Socket.IO packet not supported")
)

// sioReserved are the event names a client may not send (socket.io-parser
// RESERVED_EVENTS): the library itself emits them.
var sioReserved = [...]string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

// maxReservedLen is the length of the longest reserved name; a JSON string
// escapes each byte in at most 6, which bounds the raw names worth decoding.
const maxReservedLen = len("removeListener")

// ParseSIOPacket decodes the Socket.IO packet in the Engine.IO message
// packet p ("4" followed by the Socket.IO packet), by socket.io-parser's
// rules: the type digit; a namespace if the next byte is '/', running to the
// first ',' (or to the end); an ack id if digits follow; then the JSON data,
// which must be valid JSON in valid UTF-8 and, by type,
//   - CONNECT: absent or an object (the auth payload);
//   - DISCONNECT: absent;
//   - EVENT: an array whose first element is a string that is not a reserved
//     name (connect, connect_error, disconnect, disconnecting, newListener,
//     removeListener) or a number;
//   - ACK: an array;
//   - CONNECT_ERROR: a string or an object.
//
// It is stricter than the reference where the reference's reading is an
// accident: an EVENT, ACK or CONNECT_ERROR must carry data (the reference
// checks the payload only when there is one); an ACK must carry an ack id
// and the types other than EVENT must not; the data must not start with
// whitespace (the reference would read a space as ack id 0); the namespace
// must be valid UTF-8 without control characters. It returns ErrSIOBinary for BINARY_EVENT and
// BINARY_ACK, ErrSIOPacket or ErrSIOPayload otherwise. Data aliases p; the
// Namespace is "/" for the main namespace and a copy (the one allocation)
// for any other. ParseSIOPacket is pure and may be called from any
// goroutine.
func ParseSIOPacket(p []byte) (SIOPacket, error) {
	if len(p) < 2 || p[0] != '0'+byte(EIOMessage) {
		return SIOPacket{}, ErrSIOPacket
	}
	switch c := p[1]; {
	case c == '0'+byte(SIOBinaryEvent) || c == '0'+byte(SIOBinaryAck):
		return SIOPacket{}, ErrSIOBinary
	case c < '0' || c > '0'+byte(SIOConnectError):
		return SIOPacket{}, ErrSIOPacket
	}
	pkt := SIOPacket{Type: SIOType(p[1] - '0'), Namespace: "/", AckID: -1}
	i := 2
	if i < len(p) && p[i] == '/' {
		nsp := p[i:]
		if j := bytes.IndexByte(nsp, ','); j >= 0 {
			nsp = nsp[:j]
			i++ // the comma
		}
		i += len(nsp)
		if !validNamespace(nsp) {
			return SIOPacket{}, ErrSIOPacket
		}
		if string(nsp) != "/" {
			pkt.Namespace = string(nsp)
		}
	}
	if j := skipDigits(p, i); j > i {
		id, ok := parseAckID(p[i:j])
		if !ok {
			return SIOPacket{}, ErrSIOPacket
		}
		pkt.AckID, i = id, j
	}
	switch {
	case pkt.Type == SIOAck && pkt.AckID < 0:
		return SIOPacket{}, ErrSIOPacket // nothing to acknowledge
	case pkt.Type != SIOAck && pkt.Type != SIOEvent && pkt.AckID >= 0:
		return SIOPacket{}, ErrSIOPacket
	}
	if i < len(p) {
		pkt.Data = p[i:]
	}
	if !validSIOData(pkt.Type, pkt.Data) {
		return SIOPacket{}, ErrSIOPayload
	}
	return pkt, nil
}

// validNamespace reports whether nsp (starting with '/') is valid UTF-8 with
// no control characters, which AppendSIO* could not write back.
func validNamespace(nsp []byte) bool {
	for _, c := range nsp {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(nsp)
}

// parseAckID parses the digits of an ack id; it fails on int64 overflow.
func parseAckID(digits []byte) (int64, bool) {
	var n int64
	for _, c := range digits {
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// validSIOData applies ParseSIOPacket's rules for the data of each type.
func validSIOData(typ SIOType, data []byte) bool {
	if len(data) == 0 {
		return typ == SIOConnect || typ == SIODisconnect
	}
	if isJSONSpace(data[0]) || !validJSON(data) {
		return false
	}
	switch typ {
	case SIOConnect:
		return data[0] == '{'
	case SIOConnectError:
		return data[0] == '{' || data[0] == '"'
	case SIOAck:
		return data[0] == '['
	case SIOEvent:
		_, _, err := sioEventName(data, make([]byte, 0, 6*maxReservedLen))
		return err == nil
	}
	return false // DISCONNECT carries nothing
}

// SIOArgs iterates over the elements of a JSON array that has been
// validated, as raw JSON values aliasing the array. The zero SIOArgs is
// empty.
type SIOArgs struct {
	rest []byte // the array after '[' or after the last element returned
}

// Next returns the next element, without surrounding whitespace, and true,
// or nil and false after the last. It does not allocate. Next is pure; an
// SIOArgs is a value owned by its caller.
func (a *SIOArgs) Next() (arg []byte, ok bool) {
	i := skipJSONSpace(a.rest, 0)
	if i < len(a.rest) && a.rest[i] == ',' {
		i = skipJSONSpace(a.rest, i+1)
	}
	if i >= len(a.rest) || a.rest[i] == ']' {
		a.rest = nil
		return nil, false
	}
	end := jsonValueEnd(a.rest, i)
	arg, a.rest = a.rest[i:end], a.rest[end:]
	return arg, true
}

// ParseSIOArgs checks that data is one JSON array (valid JSON in valid
// UTF-8, as in an ACK) and returns an iterator over its elements. It returns
// ErrSIOPayload otherwise. It does not allocate. ParseSIOArgs is pure and may
// be called from any goroutine.
func ParseSIOArgs(data []byte) (SIOArgs, error) {
	i := skipJSONSpace(data, 0)
	if i >= len(data) || data[i] != '[' || !validJSON(data) {
		return SIOArgs{}, ErrSIOPayload
	}
	return SIOArgs{rest: data[i+1:]}, nil
}

// SIOEventName splits the data of an EVENT into the event name and an
// iterator over the arguments after it. The data must be a JSON array
// whose first element is a string that is not a reserved name, or a
// number, as ParseSIOPacket requires; otherwise it returns ErrSIOPayload.
// For a string, name is its decoded text: a slice of data when the string
// has no escapes (no allocation), a new slice when it has. For a number,
// name is the number as written (socket.io's EventEmitter keys 5 and "5"
// alike). Compare with switch string(name) { case "subscribe": ... }, which
// does not allocate. SIOEventName is pure and may be called from any
// goroutine.
func SIOEventName(data []byte) (name []byte, args SIOArgs, err error) {
	return sioEventName(data, nil)
}

// sioEventName is SIOEventName decoding an escaped name into buf.
func sioEventName(data, buf []byte) (name []byte, args SIOArgs, err error) {
	args, err = ParseSIOArgs(data)
	if err != nil {
		return nil, SIOArgs{}, err
	}
	first, ok := args.Next()
	if !ok {
		return nil, SIOArgs{}, ErrSIOPayload
	}
	switch c := first[0]; {
	case c == '-' || isDigit(c):
		return first, args, nil
	case c != '"':
		return nil, SIOArgs{}, ErrSIOPayload
	}
	raw := first[1 : len(first)-1]
	name = raw
	if bytes.IndexByte(raw, '\\') >= 0 {
		if buf != nil && len(raw) > 6*maxReservedLen {
			// Too long to be a reserved name, and the caller only wants
			// to know that.
			return nil, args, nil
		}
		name = appendJSONUnquote(buf, raw)
	}
	if len(name) <= maxReservedLen {
		for _, r := range sioReserved {
			if string(name) == r {
				return nil, SIOArgs{}, ErrSIOPayload
			}
		}
	}
	return name, args, nil
}

// jsonValueEnd returns the index after the JSON value starting at p[i],
// which must be part of valid JSON.
func jsonValueEnd(p []byte, i int) int {
	switch p[i] {
	case '"':
		return jsonStringEnd(p, i)
	case '[', '{':
		depth := 0
		for ; i < len(p); i++ {
			switch p[i] {
			case '"':
				i = jsonStringEnd(p, i) - 1
			case '[', '{':
				depth++
			case ']', '}':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	// A number, true, false or null ends at a delimiter.
	for i < len(p) && p[i] != ',' && p[i] != ']' && p[i] != '}' && !isJSONSpace(p[i]) {
		i++
	}
	return i
}

// jsonStringEnd returns the index after the closing quote of the valid JSON
// string whose opening quote is p[i].
func jsonStringEnd(p []byte, i int) int {
	for i++; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(p)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendJSONUnquote appends the text of the JSON string body s (between the
// quotes, valid JSON in valid UTF-8), decoding its escapes the way
// encoding/json does: a surrogate that is not half of a valid pair becomes
// U+FFFD.
func appendJSONUnquote(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...)
		}
		dst = append(dst, s[i:i+j]...)
		i += j
		c := s[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if d := utf16.DecodeRune(r, hex4(s[i+2:])); d != unicode.ReplacementChar {
						dst = utf8.AppendRune(dst, d)
						i += 6
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst
}

// hex4 decodes the four hex digits at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendSIOHead appends "4", the type digit, the namespace unless it is the
// main one, and the ack id if it is not negative.
func appendSIOHead(dst []byte, typ SIOType, nsp string, ackID int64) []byte {
	dst = append(dst, '0'+byte(EIOMessage), '0'+byte(typ))
	if nsp != "" && nsp != "/" {
		if nsp[0] != '/' {
			dst = append(dst, '/')
		}
		// Drop what would end the namespace early or break the framing.
		for i := range len(nsp) {
			if c := nsp[i]; c != ',' && c >= ' ' && c != 0x7f {
				dst = append(dst, c)
			}
		}
		dst = append(dst, ',')
	}
	if ackID >= 0 {
		dst = strconv.AppendInt(dst, ackID, 10)
	}
	return dst
}

// appendJSONArg appends arg verbatim if it is valid JSON in valid UTF-8,
// else as a JSON string of its bytes, so the packet is always valid JSON.
func appendJSONArg(dst, arg []byte) []byte {
	if validJSON(arg) {
		return append(dst, arg...)
	}
	// A view, not a copy: appendJSONString only reads it.
	return appendJSONString(dst, unsafe.String(unsafe.SliceData(arg), len(arg)))
}

// AppendSIOConnect appends the server's answer to a CONNECT, the namespace
// accepted: 40{"sid":"…"} for the main namespace, 40/admin,{"sid":"…"} for
// another, with ,"pid":"…" after the sid when pid is not empty (connection
// state recovery; socket.io socket.ts _onconnect). nsp is "" or "/" for the
// main namespace and otherwise should be one ParseSIOPacket returned: a
// missing leading '/' is added and commas and control characters are dropped
// so the packet always parses. It does not allocate when dst has room.
// AppendSIOConnect is pure and may be called from any goroutine.
func AppendSIOConnect(dst []byte, nsp, sid, pid string) []byte {
	dst = appendSIOHead(dst, SIOConnect, nsp, -1)
	dst = append(dst, `{"sid":`...)
	dst = appendJSONString(dst, sid)
	if pid != "" {
		dst = append(dst, `,"pid":`...)
		dst = appendJSONString(dst, pid)
	}
	return append(dst, '}')
}

// AppendSIOConnectError appends a refusal of a CONNECT:
// 44{"message":"…"} (socket.io client.ts answers an unknown namespace with
// "Invalid namespace"); the client does not reconnect after it. nsp as in
// AppendSIOConnect. It does not allocate when dst has room.
// AppendSIOConnectError is pure and may be called from any goroutine.
func AppendSIOConnectError(dst []byte, nsp, message string) []byte {
	dst = appendSIOHead(dst, SIOConnectError, nsp, -1)
	dst = append(dst, `{"message":`...)
	dst = appendJSONString(dst, message)
	return append(dst, '}')
}

// AppendSIOEventHead appends the start of an EVENT up to and including its
// name: 42["name (4212["name with ack id 12, 42/admin,["name in another
// namespace). The caller appends each argument as ',' followed by raw JSON,
// then ']'. It exists so a broadcast can write its arguments with its own
// encoder straight into the frame. A negative ackID means none. The name
// must not be a reserved name (see ParseSIOPacket): the client would reject
// the packet. nsp as in AppendSIOConnect. It does not allocate when dst has
// room. AppendSIOEventHead is pure and may be called from any goroutine.
func AppendSIOEventHead(dst []byte, nsp string, ackID int64, name string) []byte {
	dst = appendSIOHead(dst, SIOEvent, nsp, ackID)
	dst = append(dst, '[')
	return appendJSONString(dst, name)
}

// AppendSIOEvent appends a complete EVENT: AppendSIOEventHead, then each arg
// and the closing bracket. An arg that is valid JSON in valid UTF-8 is
// written verbatim; anything else is written as a JSON string of its bytes
// (invalid UTF-8 becoming U+FFFD), so the packet is always valid. It does
// not allocate when dst has room. AppendSIOEvent is pure and may be called
// from any goroutine.
func AppendSIOEvent(dst []byte, nsp string, ackID int64, name string, args ...[]byte) []byte {
	dst = AppendSIOEventHead(dst, nsp, ackID, name)
	for _, a := range args {
		dst = appendJSONArg(append(dst, ','), a)
	}
	return append(dst, ']')
}

// AppendSIOAck appends the answer to an EVENT that carried ack id ackID:
// 43<ackID>[args...] (43/admin,<ackID>[...] in another namespace), args as
// in AppendSIOEvent. A negative ackID writes none, which the client ignores.
// nsp as in AppendSIOConnect. It does not allocate when dst has room.
// AppendSIOAck is pure and may be called from any goroutine.
func AppendSIOAck(dst []byte, nsp string, ackID int64, args ...[]byte) []byte {
	dst = appendSIOHead(dst, SIOAck, nsp, ackID)
	dst = append(dst, '[')
	for i, a := range args {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONArg(dst, a)
	}
	return append(dst, ']')
}

// AppendSIODisconnect appends a DISCONNECT for the namespace: 41, or
// 41/admin, for another. Sent by the server, it ends the client's socket for
// good (no reconnection). nsp as in AppendSIOConnect. Pure; any goroutine.
func AppendSIODisconnect(dst []byte, nsp string) []byte {
	return appendSIOHead(dst, SIODisconnect, nsp, -1)
}
