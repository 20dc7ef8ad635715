package codec

import (
	"encoding/json"
	"strconv"
)

// Durable topics (docs/protocol.md §3): every push on a topic that keeps a
// history carries "offset" and "epoch", and a client that reconnects names
// the last position it saw to get what it missed.

// Position is a place in a durable topic's history: the offset of the last
// message a client saw, and the epoch (the identity of the history) it
// belongs to. Offset 0 means "before the oldest stored message"; its Epoch
// may be empty.
type Position struct {
	Offset uint64
	Epoch  string
}

// Limits on positions and history reads. MaxOffset is the largest integer
// a JavaScript number holds exactly (2^53-1), so every offset pushd sends
// or accepts survives JSON.parse in a browser.
const (
	MaxOffset           = 1<<53 - 1
	MaxEpochLen         = 64
	MaxHistoryLimit     = 1000
	DefaultHistoryLimit = 100
)

// MaxHistoryBytes bounds the payload bytes of one history reply (the
// history command's and GET /v1/history's), well under the default
// outbound cap (1 MiB) so a reply never makes its own connection a slow
// consumer; past it the reply is cut short with "more":true (at least one
// message is always sent).
const MaxHistoryBytes = 256 << 10

// Reasons a subscription with a position was not recovered: the "reasons"
// of a subscribe ok (docs/protocol.md §3).
const (
	ReasonEpochChanged = "epoch_changed" // the history the position belongs to is gone (recreated or lost)
	ReasonTrimmed      = "trimmed"       // the history no longer holds the message at the position
	ReasonLimit        = "limit"         // more messages were missed than the server replays
	ReasonNotDurable   = "not_durable"   // the topic keeps no history
	ReasonUnavailable  = "unavailable"   // the history could not be read in time; nothing was replayed
)

// Error codes of the history command and durable-topic failures.
const (
	CodeNotDurable   = "not_durable"   // history asked of a topic that keeps none
	CodeEpochChanged = "epoch_changed" // history asked with a position of another epoch
	CodeUnavailable  = "unavailable"   // the history could not be read; the client may retry
)

// ValidEpoch reports whether e can be an epoch: 1 to MaxEpochLen bytes of
// A-Z a-z 0-9 _ -. Pure; safe for concurrent use.
func ValidEpoch(e string) bool {
	if len(e) == 0 || len(e) > MaxEpochLen {
		return false
	}
	for i := 0; i < len(e); i++ {
		if !topicByte(e[i]) {
			return false
		}
	}
	return true
}

// topicByte reports whether c may appear inside a topic token or an epoch.
func topicByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// parsePosition decodes a position object {"offset":N,"epoch":"E"}. what
// names the field in error messages.
func parsePosition(raw json.RawMessage, what string) (Position, error) {
	var p Position
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return p, &ProtoError{CodeBadJSON, what + " must be an object"}
	}
	off, ok := present(fields, "offset")
	if !ok {
		return p, &ProtoError{CodeBadRequest, what + ": missing offset"}
	}
	n, perr := parseOffset(off)
	if perr != nil {
		return p, perr
	}
	p.Offset = n
	if e, ok := present(fields, "epoch"); ok {
		if err := json.Unmarshal(e, &p.Epoch); err != nil {
			return p, &ProtoError{CodeBadJSON, what + ": epoch must be a string"}
		}
		if !ValidEpoch(p.Epoch) {
			return p, &ProtoError{CodeBadRequest, what + ": invalid epoch"}
		}
	} else if p.Offset != 0 {
		return p, &ProtoError{CodeBadRequest, what + ": missing epoch"}
	}
	return p, nil
}

// parseOffset decodes an offset: a JSON integer from 0 to MaxOffset, written
// without sign, fraction or exponent.
func parseOffset(raw json.RawMessage) (uint64, *ProtoError) {
	n, code := parseCount(raw, MaxOffset)
	switch code {
	case countOK:
		return n, nil
	case countNotNumber:
		return 0, &ProtoError{CodeBadJSON, "offset must be a number"}
	case countNegative:
		return 0, &ProtoError{CodeBadRequest, "offset must not be negative"}
	case countNotInteger:
		return 0, &ProtoError{CodeBadRequest, "offset must be an integer"}
	default:
		return 0, &ProtoError{CodeBadRequest, "offset too large"}
	}
}

// parseLimit decodes a history limit: an integer from 1 to MaxHistoryLimit.
func parseLimit(raw json.RawMessage) (int, *ProtoError) {
	n, code := parseCount(raw, MaxHistoryLimit)
	switch {
	case code == countNotNumber:
		return 0, &ProtoError{CodeBadJSON, "limit must be a number"}
	case code != countOK || n == 0:
		return 0, &ProtoError{CodeBadRequest, "limit must be an integer from 1 to " + strconv.Itoa(MaxHistoryLimit)}
	}
	return int(n), nil
}

// Outcomes of parseCount.
const (
	countOK = iota
	countNotNumber
	countNegative
	countNotInteger
	countTooLarge
)

// parseCount decodes raw, which encoding/json has already checked is one
// JSON value, as a non-negative integer of at most max.
func parseCount(raw json.RawMessage, max uint64) (uint64, int) {
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, countNotNumber
	}
	if raw[0] == '-' {
		return 0, countNegative
	}
	var n uint64
	for i, c := range raw {
		if c < '0' || c > '9' {
			return 0, countNotInteger // a fraction or an exponent
		}
		if n > (max-uint64(c-'0'))/10 {
			// Keep scanning: 1e400 is "not an integer", not "too large".
			for _, d := range raw[i:] {
				if d < '0' || d > '9' {
					return 0, countNotInteger
				}
			}
			return 0, countTooLarge
		}
		n = n*10 + uint64(c-'0')
	}
	return n, countOK
}

// parseSince decodes the "since" object of a subscribe: topic → position.
// Every key must be one of topics.
func parseSince(raw json.RawMessage, topics []string) (map[string]Position, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, &ProtoError{CodeBadJSON, "since must be an object"}
	}
	since := make(map[string]Position, len(fields))
	for topic, v := range fields {
		if len(v) == 0 || string(v) == "null" {
			continue
		}
		if !contains(topics, topic) {
			return nil, &ProtoError{CodeBadRequest, "since names a topic that is not in topics"}
		}
		p, err := parsePosition(v, "since")
		if err != nil {
			return nil, err
		}
		since[topic] = p
	}
	return since, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// AppendPushAt appends a push on a durable topic:
// {"type":"message","topic":"a.b","seq":1234,"offset":98,"epoch":"E","data":<data>}.
// data is written as AppendPush writes it; epoch is escaped like topic. It
// does not allocate when dst has room. Pure; safe for concurrent use.
func AppendPushAt(dst []byte, topic string, seq, offset uint64, epoch string, data []byte) []byte {
	dst = appendPushHead(dst, topic, seq)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	dst = append(dst, `,"epoch":`...)
	dst = appendJSONString(dst, epoch)
	return appendPushData(dst, data)
}

// Recovery is the outcome of one topic's position in a subscribe: whether
// every message after it is replayed, or why not (a Reason* constant).
type Recovery struct {
	Topic     string
	Recovered bool
	Reason    string // "" when Recovered
}

// Live is where a durable topic's subscription went live without a
// replay (subscribed without a position, or one that did not recover):
// every message stored after At reaches it.
type Live struct {
	Topic string
	At    Position
}

// AppendSubscribeOK appends the success reply to a subscribe:
// {"type":"ok","id":<id>,"recovered":{"a":true,"b":false},"reasons":{"b":"trimmed"},
// "positions":{"b":{"offset":N,"epoch":"E"},"c":{…}}}. "recovered" holds
// the topics that named a position (recs), "reasons" those that did not
// recover, "positions" the durable topics that went live without a
// replay (live). Each is left out when empty; with neither recs nor live
// the reply is AppendOK's. It does not allocate when dst has room. Pure;
// safe for concurrent use.
func AppendSubscribeOK(dst []byte, id []byte, recs []Recovery, live []Live) []byte {
	dst = AppendOK(dst, id)
	if len(recs) > 0 {
		dst = appendRecovered(dst[:len(dst)-1], recs)
		dst = append(dst, '}')
	}
	if len(live) > 0 {
		dst = append(dst[:len(dst)-1], `,"positions":{`...)
		for i, l := range live {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, l.Topic)
			dst = append(dst, `:{"offset":`...)
			dst = strconv.AppendUint(dst, l.At.Offset, 10)
			dst = append(dst, `,"epoch":`...)
			dst = appendJSONString(dst, l.At.Epoch)
			dst = append(dst, '}')
		}
		dst = append(dst, "}}"...)
	}
	return dst
}

// appendRecovered appends the "recovered" and "reasons" members of a
// subscribe's reply, each after a comma.
func appendRecovered(dst []byte, recs []Recovery) []byte {
	dst = append(dst, `,"recovered":{`...)
	failed := false
	for i, r := range recs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, r.Topic)
		if r.Recovered {
			dst = append(dst, ":true"...)
		} else {
			dst = append(dst, ":false"...)
			failed = true
		}
	}
	dst = append(dst, '}')
	if failed {
		dst = append(dst, `,"reasons":{`...)
		first := true
		for _, r := range recs {
			if r.Recovered {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, r.Topic)
			dst = append(dst, ':')
			dst = appendJSONString(dst, r.Reason)
		}
		dst = append(dst, '}')
	}
	return dst
}

// HistoryMessage is one stored message in a history reply.
type HistoryMessage struct {
	Topic  string
	Seq    uint64
	Offset uint64
	Epoch  string
	Data   []byte
}

// AppendHistoryOK appends the success reply to a history command:
// {"type":"ok","id":<id>,"epoch":"E","messages":[<push>,…],"more":true,"trimmed":true}.
// Each push is AppendPushAt's object. "id" is left out when id is empty
// (the HTTP API's answer), "epoch" when empty,
// "more" (the limit cut the answer short) and "trimmed" (the history no
// longer holds the message at the position asked for, so messages may be
// missing before the first one) when false. It does not allocate when dst
// has room. Pure; safe for concurrent use.
func AppendHistoryOK(dst []byte, id []byte, epoch string, msgs []HistoryMessage, more, trimmed bool) []byte {
	dst = append(dst, `{"type":"ok"`...)
	if len(id) != 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	if epoch != "" {
		dst = append(dst, `,"epoch":`...)
		dst = appendJSONString(dst, epoch)
	}
	dst = append(dst, `,"messages":[`...)
	for i := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		m := &msgs[i]
		dst = AppendPushAt(dst, m.Topic, m.Seq, m.Offset, m.Epoch, m.Data)
	}
	dst = append(dst, ']')
	if more {
		dst = append(dst, `,"more":true`...)
	}
	if trimmed {
		dst = append(dst, `,"trimmed":true`...)
	}
	return append(dst, '}')
}

// AppendPublishOK appends the success reply to a publish command on a
// durable topic, once the history stored the message:
// {"type":"ok","id":<id>,"offset":N,"epoch":"E"}. It does not allocate
// when dst has room. Pure; safe for concurrent use.
func AppendPublishOK(dst []byte, id []byte, offset uint64, epoch string) []byte {
	dst = AppendOK(dst, id)
	dst = append(dst[:len(dst)-1], `,"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	dst = append(dst, `,"epoch":`...)
	dst = appendJSONString(dst, epoch)
	return append(dst, '}')
}
