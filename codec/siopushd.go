package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// pushd's events over Socket.IO (docs/protocol.md, "Socket.IO"). A client
// joins the main namespace with CONNECT, optionally carrying {"token"} (and
// the pid and offset of connection state recovery), then emits subscribe,
// unsubscribe and publish events, each with an ack callback; pushes arrive as
// message events. The events map onto the commands of protocol v1, so the
// same session code serves both.

// Event names of pushd's Socket.IO protocol.
const (
	SIOEventMessage     = "message"     // server → client: one push, {"topic","data"[,"offset","epoch"]}
	SIOEventError       = "error"       // server → client: the refusal of an event sent without an ack callback
	SIOEventSubscribe   = "subscribe"   // client → server: topics as an array, a string or {"topics":[…]}
	SIOEventUnsubscribe = "unsubscribe" // client → server: as subscribe
	SIOEventPublish     = "publish"     // client → server: {"topic","data"}
)

// Error codes that only Socket.IO clients see, in the data of a
// CONNECT_ERROR (docs/protocol.md, "Socket.IO").
const (
	CodeUnauthorized     = "unauthorized"      // CONNECT without a valid token where one is required
	CodeInvalidNamespace = "invalid_namespace" // CONNECT to a namespace other than "/"
)

// SIOAuth is the auth payload of a client's CONNECT: {"token":"…"}, plus
// the pid and offset socket.io-client adds when it tries to recover its
// previous session (connection state recovery). Empty strings mean absent.
type SIOAuth struct {
	Token  string
	PID    string
	Offset string
}

// ParseSIOAuth decodes the data of a CONNECT packet (SIOPacket.Data of a
// packet that ParseSIOPacket accepted: nil or a JSON object). token, pid and
// offset must be strings when present (null counts as absent); other fields
// are ignored, as the reference server passes them to the application. It
// returns a *ProtoError with CodeBadJSON otherwise. CONNECTs are rare, so it
// uses encoding/json and allocates. ParseSIOAuth is pure and may be called
// from any goroutine.
func ParseSIOAuth(data []byte) (SIOAuth, error) {
	var a SIOAuth
	if len(data) == 0 {
		return a, nil
	}
	if !utf8.Valid(data) {
		return a, &ProtoError{CodeBadJSON, "invalid UTF-8"}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return a, &ProtoError{CodeBadJSON, "the auth payload must be a JSON object"}
	}
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"token", &a.Token}, {"pid", &a.PID}, {"offset", &a.Offset}} {
		raw, ok := present(fields, f.name)
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return SIOAuth{}, &ProtoError{CodeBadJSON, f.name + " must be a string"}
		}
	}
	return a, nil
}

// ParseSIOEvent decodes the data of an EVENT (SIOPacket.Data of a packet
// that ParseSIOPacket accepted) as a pushd command, the event name giving
// its type:
//
//	["subscribe", ["a","b"]]           Command{Type: CmdSubscribe, Topics: [a b]}
//	["subscribe", "a"]                 the same with one topic
//	["subscribe", {"topics":["a"]}]    the same as an object
//	["unsubscribe", …]                 as subscribe, Type CmdUnsubscribe
//	["publish", {"topic":"a","data":…}] Command{Type: CmdPublish, Topic: a, Data: raw JSON}
//
// Arguments after the first are ignored. Errors are *ProtoError:
// CodeUnknownCommand for another event name (its first 32 bytes echoed),
// CodeBadRequest for a missing or empty argument, CodeBadJSON for one of
// the wrong type. Topic names are not validated here (the session checks
// each with ValidTopic). The Command never aliases data. Events are rare
// next to pushes, so it uses encoding/json and allocates. ParseSIOEvent is
// pure and may be called from any goroutine.
func ParseSIOEvent(data []byte) (Command, error) {
	var cmd Command
	name, args, err := SIOEventName(data)
	if err != nil {
		return cmd, &ProtoError{CodeBadJSON, "an event must be a JSON array starting with its name"}
	}
	arg, _ := args.Next()
	switch string(name) {
	case SIOEventSubscribe, SIOEventUnsubscribe:
		cmd.Type = string(name)
		cmd.Topics, err = sioTopics(arg)
		return cmd, err
	case SIOEventPublish:
		cmd.Type = CmdPublish
		err = sioPublish(arg, &cmd)
		return cmd, err
	}
	n := string(name)
	if len(n) > maxEchoType {
		n = n[:maxEchoType] + "..."
	}
	return cmd, &ProtoError{CodeUnknownCommand, "unknown event " + strconv.Quote(n)}
}

// sioTopics decodes subscribe's argument: an array of strings, one string,
// or {"topics":[…]}.
func sioTopics(arg []byte) ([]string, error) {
	if len(arg) == 0 || string(arg) == "null" {
		return nil, &ProtoError{CodeBadRequest, "missing topics"}
	}
	var topics []string
	switch arg[0] {
	case '"':
		var t string
		if err := json.Unmarshal(arg, &t); err != nil {
			return nil, &ProtoError{CodeBadJSON, "invalid topic string"}
		}
		topics = []string{t}
	case '{':
		var obj struct {
			Topics json.RawMessage `json:"topics"`
		}
		if err := json.Unmarshal(arg, &obj); err != nil {
			return nil, &ProtoError{CodeBadJSON, "invalid topics object"}
		}
		if len(obj.Topics) == 0 || obj.Topics[0] == '{' {
			return nil, &ProtoError{CodeBadRequest, "missing topics"}
		}
		return sioTopics(obj.Topics)
	default:
		if err := json.Unmarshal(arg, &topics); err != nil {
			return nil, &ProtoError{CodeBadJSON, "topics must be an array of strings"}
		}
	}
	if len(topics) == 0 {
		return nil, &ProtoError{CodeBadRequest, "topics is empty"}
	}
	return topics, nil
}

// sioPublish decodes publish's argument {"topic":"…","data":…} into cmd.
func sioPublish(arg []byte, cmd *Command) error {
	if len(arg) == 0 || arg[0] != '{' {
		return &ProtoError{CodeBadJSON, `publish takes one object: {"topic":…,"data":…}`}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(arg, &fields); err != nil {
		return &ProtoError{CodeBadJSON, "invalid JSON"}
	}
	raw, ok := present(fields, "topic")
	if !ok {
		return &ProtoError{CodeBadRequest, "missing topic"}
	}
	if err := json.Unmarshal(raw, &cmd.Topic); err != nil {
		return &ProtoError{CodeBadJSON, "topic must be a string"}
	}
	data, ok := fields["data"]
	if !ok {
		return &ProtoError{CodeBadRequest, "missing data"}
	}
	cmd.Data = data
	return nil
}

// ParseSIOBinaryHead decodes the head of a BINARY_EVENT or BINARY_ACK
// (the packets ParseSIOPacket refuses with ErrSIOBinary), so that the
// refusal can answer the event's ack id: "4", the type digit 5 or 6, the
// attachment count and '-', then the namespace and ack id as in
// ParseSIOPacket. The data after them is returned as is, not validated
// (pushd refuses the packet whatever it holds). It returns ErrSIOPacket
// for anything else. It does not allocate for the main namespace.
// ParseSIOBinaryHead is pure and may be called from any goroutine.
func ParseSIOBinaryHead(p []byte) (pkt SIOPacket, attachments int, err error) {
	if len(p) < 4 || p[0] != '0'+byte(EIOMessage) || (p[1] != '0'+byte(SIOBinaryEvent) && p[1] != '0'+byte(SIOBinaryAck)) {
		return SIOPacket{}, 0, ErrSIOPacket
	}
	pkt = SIOPacket{Type: SIOType(p[1] - '0'), Namespace: "/", AckID: -1}
	i := skipDigits(p, 2)
	if i == 2 || i >= len(p) || p[i] != '-' || i-2 > 6 {
		return SIOPacket{}, 0, ErrSIOPacket // a count, at most 6 digits, then '-'
	}
	attachments, _ = strconv.Atoi(string(p[2:i]))
	i++
	if i < len(p) && p[i] == '/' {
		nsp := p[i:]
		if j := bytes.IndexByte(nsp, ','); j >= 0 {
			nsp = nsp[:j]
			i++
		}
		i += len(nsp)
		if !validNamespace(nsp) {
			return SIOPacket{}, 0, ErrSIOPacket
		}
		if string(nsp) != "/" {
			pkt.Namespace = string(nsp)
		}
	}
	if j := skipDigits(p, i); j > i {
		id, ok := parseAckID(p[i:j])
		if !ok {
			return SIOPacket{}, 0, ErrSIOPacket
		}
		pkt.AckID, i = id, j
	}
	if pkt.Type == SIOBinaryAck && pkt.AckID < 0 {
		return SIOPacket{}, 0, ErrSIOPacket
	}
	if i < len(p) {
		pkt.Data = p[i:]
	}
	return pkt, attachments, nil
}

// AppendSIOPush appends one push as a message event (an EVENT without ack
// id in the main namespace, "4" prefix included):
//
//	42["message",{"topic":"a.b","data":<data>}]
//	42["message",{"topic":"a.b","offset":12,"epoch":"E","data":<data>},"a.b:E:12"]
//
// offset and epoch are written when epoch is not empty (a durable topic).
// A push on a durable topic also carries its position as a last, string
// argument, the SSE event id (AppendEventID), when topic and epoch are
// valid and offset is at least 1: socket.io-client keeps the last string
// argument of the events it receives and sends it back as "offset" when it
// recovers its session (connection state recovery, docs/protocol.md §14).
// data is written as AppendPush writes it: verbatim when it is valid JSON
// in valid UTF-8, as a JSON string when it is other valid UTF-8, and
// otherwise as a base64 string followed by "encoding":"base64". topic is
// escaped. It does not allocate when dst has room. AppendSIOPush is pure
// and may be called from any goroutine.
func AppendSIOPush(dst []byte, topic string, data []byte, offset uint64, epoch string) []byte {
	dst = append(dst, `42["message",{"topic":`...)
	dst = appendJSONString(dst, topic)
	if epoch != "" {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, offset, 10)
		dst = append(dst, `,"epoch":`...)
		dst = appendJSONString(dst, epoch)
	}
	dst = append(dst, `,"data":`...)
	switch {
	case validJSON(data):
		dst = append(dst, data...)
	case !utf8.Valid(data):
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, data)
		dst = append(dst, `","encoding":"base64"`...)
	default:
		dst = appendJSONString(dst, unsafe.String(unsafe.SliceData(data), len(data)))
	}
	dst = append(dst, '}')
	if offset >= 1 && offset <= MaxOffset && ValidEpoch(epoch) && ValidTopic(topic) == nil {
		// Neither holds a byte JSON escapes.
		dst = append(dst, `,"`...)
		dst = AppendEventID(dst, topic, epoch, offset)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// AppendSIOResult appends the answer to a client's event: with an ack id
// (ackID ≥ 0), the ACK 43<id>[{"ok":true}] or, when perr is not nil,
// 43<id>[{"error":{"code":"…","message":"…"}}]; without one, the refusal
// as an error event 42["error",{"error":{…}}], or nothing for a success.
// nsp as in AppendSIOConnect. It does not allocate when dst has room.
// AppendSIOResult is pure and may be called from any goroutine.
func AppendSIOResult(dst []byte, nsp string, ackID int64, perr *ProtoError) []byte {
	switch {
	case ackID >= 0:
		dst = appendSIOHead(dst, SIOAck, nsp, ackID)
		dst = append(dst, '[')
	case perr == nil:
		return dst
	default:
		dst = AppendSIOEventHead(dst, nsp, -1, SIOEventError)
		dst = append(dst, ',')
	}
	if perr == nil {
		return append(dst, `{"ok":true}]`...)
	}
	dst = append(dst, `{"error":{"code":`...)
	dst = appendJSONString(dst, perr.Code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, perr.Message)
	return append(dst, "}}]"...)
}

// AppendSIOPublishAck appends the ACK of a publish to a durable topic once
// its history stored the message: 43<id>[{"ok":true,"offset":N,"epoch":"E"}].
// Without an ack id (ackID < 0) a success gets nothing, as in
// AppendSIOResult. nsp as in AppendSIOConnect. It does not allocate when
// dst has room. AppendSIOPublishAck is pure and may be called from any
// goroutine.
func AppendSIOPublishAck(dst []byte, nsp string, ackID int64, offset uint64, epoch string) []byte {
	if ackID < 0 {
		return dst
	}
	dst = appendSIOHead(dst, SIOAck, nsp, ackID)
	dst = append(dst, `[{"ok":true,"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	dst = append(dst, `,"epoch":`...)
	dst = appendJSONString(dst, epoch)
	return append(dst, "}]"...)
}

// AppendSIOConnectRefusal appends a CONNECT_ERROR that carries a machine-
// readable code beside the message, the shape of an error a socket.io
// middleware passes to next() with data:
//
//	44{"message":"Invalid namespace","data":{"code":"invalid_namespace"}}
//
// socket.io-client hands it to connect_error listeners as an Error whose
// message is message and whose data is {"code"}. nsp as in
// AppendSIOConnect. It does not allocate when dst has room.
// AppendSIOConnectRefusal is pure and may be called from any goroutine.
func AppendSIOConnectRefusal(dst []byte, nsp, code, message string) []byte {
	dst = appendSIOHead(dst, SIOConnectError, nsp, -1)
	dst = append(dst, `{"message":`...)
	dst = appendJSONString(dst, message)
	dst = append(dst, `,"data":{"code":`...)
	dst = appendJSONString(dst, code)
	return append(dst, "}}"...)
}
