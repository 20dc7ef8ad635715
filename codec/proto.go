package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Protocol error codes: the "code" of an error reply (docs/protocol.md).
const (
	CodeBadJSON        = "bad_json"        // not a JSON object, syntax error, or a field of the wrong type
	CodeBadRequest     = "bad_request"     // a required field is missing or has an invalid value
	CodeUnknownCommand = "unknown_command" // type is not a command of protocol v1
	CodeInvalidTopic   = "invalid_topic"   // a topic fails ValidTopic
	CodeTooManyTopics  = "too_many_topics" // the connection's subscription limit would be exceeded
	CodeForbidden      = "forbidden"       // the token does not allow this
	CodeRateLimited    = "rate_limited"    // too many commands or publishes
	CodeInternal       = "internal"        // a server fault; the client may retry
	CodeNotSubscribed  = "not_subscribed"  // unsubscribe from a topic the connection is not subscribed to
)

// Command types of protocol v1.
const (
	CmdSubscribe   = "subscribe"
	CmdUnsubscribe = "unsubscribe"
	CmdPing        = "ping"
	CmdPublish     = "publish"
	CmdHistory     = "history"
)

// Command is one decoded client command (protocol v1):
//
//	{"id":1,"type":"subscribe","topics":["a","b.c"]}
//	{"id":2,"type":"unsubscribe","topics":["a"]}
//	{"id":3,"type":"ping"}
//	{"id":4,"type":"publish","topic":"a","data":<any JSON>}
//	{"id":5,"type":"subscribe","topics":["a"],"since":{"a":{"offset":12,"epoch":"E"}}}
//	{"id":6,"type":"history","topic":"a","since":{"offset":12,"epoch":"E"},"limit":100}
//
// Topic names are not validated here: the caller checks each with ValidTopic
// so it can apply its own limits and report the offending name. Positions
// are: offsets are integers from 0 to MaxOffset, epochs pass ValidEpoch, and
// an offset above 0 needs an epoch.
type Command struct {
	ID     []byte   // raw JSON of the id (a number or a string), a copy; echo it back verbatim
	Type   string   // one of the Cmd* constants
	Topics []string // subscribe, unsubscribe: at least one
	Topic  string   // publish, history
	Data   []byte   // publish: raw JSON of data, a copy; nil if absent
	// Since holds the positions a subscribe resumes from, by topic; every
	// key is in Topics. nil when the command names none.
	Since map[string]Position
	// HistorySince is the position a history command reads after; nil
	// means from the oldest stored message.
	HistorySince *Position
	// Limit is the history command's limit, from 1 to MaxHistoryLimit; 0
	// when absent (the caller applies DefaultHistoryLimit).
	Limit int
}

// ProtoError is a command the server rejects: Code is one of the Code*
// constants and Message a short explanation for the client. It implements
// error.
type ProtoError struct {
	Code    string
	Message string
}

// Error implements error. It is safe for concurrent use.
func (e *ProtoError) Error() string { return "codec: " + e.Code + ": " + e.Message }

// maxEchoType bounds how much of an unknown command type is echoed back in an
// error message, so a client cannot make the server reflect large strings.
const maxEchoType = 32

// ParseCommand decodes one client command from the payload of a text frame.
// Errors are *ProtoError with Code CodeBadJSON (not a JSON object, a syntax
// error, invalid UTF-8, or a field of the wrong type), CodeBadRequest (id or
// type missing, id neither a number nor a string, the field the type needs
// missing or empty, or a position or limit out of range) or
// CodeUnknownCommand. Whenever a valid id was read, it is
// returned in the Command even with an error, so the caller can reply with
// it. Field names match exactly; unknown fields are ignored; a field set to
// null counts as absent, except data, where null is a valid payload. Commands
// are rare, so it uses encoding/json and allocates. Pure; safe for concurrent
// use.
func ParseCommand(p []byte) (Command, error) {
	var cmd Command
	if !utf8.Valid(p) {
		// A text frame is already valid UTF-8 (§8.1); checking again keeps
		// every id echoed back from this Command safe to put in a text frame.
		return cmd, &ProtoError{CodeBadJSON, "invalid UTF-8"}
	}
	trimmed := bytes.TrimLeft(p, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return cmd, &ProtoError{CodeBadJSON, "a command must be a JSON object"}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(p, &fields); err != nil {
		return cmd, &ProtoError{CodeBadJSON, "invalid JSON"}
	}

	// json.RawMessage.UnmarshalJSON copies, so the raw values do not alias p.
	id, ok := present(fields, "id")
	if !ok {
		return cmd, &ProtoError{CodeBadRequest, "missing id"}
	}
	if id[0] != '"' && id[0] != '-' && (id[0] < '0' || id[0] > '9') {
		return cmd, &ProtoError{CodeBadRequest, "id must be a number or a string"}
	}
	cmd.ID = id

	typ, ok := present(fields, "type")
	if !ok {
		return cmd, &ProtoError{CodeBadRequest, "missing type"}
	}
	if err := json.Unmarshal(typ, &cmd.Type); err != nil {
		return cmd, &ProtoError{CodeBadJSON, "type must be a string"}
	}

	switch cmd.Type {
	case CmdPing:
		return cmd, nil
	case CmdSubscribe, CmdUnsubscribe:
		raw, ok := present(fields, "topics")
		if !ok {
			return cmd, &ProtoError{CodeBadRequest, "missing topics"}
		}
		if err := json.Unmarshal(raw, &cmd.Topics); err != nil {
			return cmd, &ProtoError{CodeBadJSON, "topics must be an array of strings"}
		}
		if len(cmd.Topics) == 0 {
			return cmd, &ProtoError{CodeBadRequest, "topics is empty"}
		}
		if raw, ok := present(fields, "since"); ok && cmd.Type == CmdSubscribe {
			since, err := parseSince(raw, cmd.Topics)
			if err != nil {
				return cmd, err
			}
			if len(since) > 0 {
				cmd.Since = since
			}
		}
		return cmd, nil
	case CmdHistory:
		raw, ok := present(fields, "topic")
		if !ok {
			return cmd, &ProtoError{CodeBadRequest, "missing topic"}
		}
		if err := json.Unmarshal(raw, &cmd.Topic); err != nil {
			return cmd, &ProtoError{CodeBadJSON, "topic must be a string"}
		}
		if raw, ok := present(fields, "since"); ok {
			p, err := parsePosition(raw, "since")
			if err != nil {
				return cmd, err
			}
			cmd.HistorySince = &p
		}
		if raw, ok := present(fields, "limit"); ok {
			n, err := parseLimit(raw)
			if err != nil {
				return cmd, err
			}
			cmd.Limit = n
		}
		return cmd, nil
	case CmdPublish:
		raw, ok := present(fields, "topic")
		if !ok {
			return cmd, &ProtoError{CodeBadRequest, "missing topic"}
		}
		if err := json.Unmarshal(raw, &cmd.Topic); err != nil {
			return cmd, &ProtoError{CodeBadJSON, "topic must be a string"}
		}
		data, ok := fields["data"]
		if !ok {
			return cmd, &ProtoError{CodeBadRequest, "missing data"}
		}
		cmd.Data = data
		return cmd, nil
	}
	t := cmd.Type
	if len(t) > maxEchoType {
		t = t[:maxEchoType] + "..."
	}
	return cmd, &ProtoError{CodeUnknownCommand, "unknown command type " + strconv.Quote(t)}
}

// present returns the raw value of the field key and whether it is there and
// not null.
func present(fields map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	v, ok := fields[key]
	if !ok || len(v) == 0 || string(v) == "null" {
		return nil, false
	}
	return v, true
}

// AppendWelcome appends the message the server sends first on every new
// connection: {"type":"welcome","session":"<id>","ping_interval":25}. It does
// not allocate when dst has room. Pure; safe for concurrent use.
func AppendWelcome(dst []byte, session string, pingIntervalSeconds int) []byte {
	dst = append(dst, `{"type":"welcome","session":`...)
	dst = appendJSONString(dst, session)
	dst = append(dst, `,"ping_interval":`...)
	dst = strconv.AppendInt(dst, int64(pingIntervalSeconds), 10)
	return append(dst, '}')
}

// AppendOK appends the success reply to a command: {"type":"ok","id":<id>}.
// id is the raw JSON id from ParseCommand, written verbatim; an empty id is
// written as null so the output stays valid JSON. It does not allocate when
// dst has room. Pure; safe for concurrent use.
func AppendOK(dst []byte, id []byte) []byte {
	dst = append(dst, `{"type":"ok","id":`...)
	if len(id) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, id...)
	}
	return append(dst, '}')
}

// AppendError appends an error reply:
// {"type":"error","id":<id>,"error":{"code":"<code>","message":"<message>"}}.
// id is the raw JSON id from ParseCommand, written verbatim, and the field is
// omitted when id is empty (the command's id could not be read). code and
// message are escaped. It does not allocate when dst has room. Pure; safe for
// concurrent use.
func AppendError(dst []byte, id []byte, code, message string) []byte {
	dst = append(dst, `{"type":"error",`...)
	if len(id) != 0 {
		dst = append(dst, `"id":`...)
		dst = append(dst, id...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"error":{"code":`...)
	dst = appendJSONString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, message)
	return append(dst, "}}"...)
}

// AppendPush appends a push message:
// {"type":"message","topic":"a.b","seq":1234,"data":<data>}.
// data passes through unchanged when it is valid JSON in valid UTF-8, that is
// when json.Valid(data) && utf8.Valid(data) (a text frame must be valid UTF-8,
// RFC 6455 §5.6, §8.1, and json.Valid does not check that). Otherwise valid UTF-8 is written as a JSON string, and
// anything else as a standard base64 string followed by
// "encoding":"base64". topic should already satisfy ValidTopic; it is escaped
// anyway so the output is valid JSON whatever it holds. It does not allocate
// when dst has room. Pure; safe for concurrent use.
func AppendPush(dst []byte, topic string, seq uint64, data []byte) []byte {
	return appendPushData(appendPushHead(dst, topic, seq), data)
}

// appendPushHead appends a push's fields before the optional position.
func appendPushHead(dst []byte, topic string, seq uint64) []byte {
	dst = append(dst, `{"type":"message","topic":`...)
	dst = appendJSONString(dst, topic)
	dst = append(dst, `,"seq":`...)
	return strconv.AppendUint(dst, seq, 10)
}

// appendPushData appends a push's data (as AppendPush documents) and closes
// the object.
func appendPushData(dst []byte, data []byte) []byte {
	dst = append(dst, `,"data":`...)
	switch {
	case validJSON(data):
		dst = append(dst, data...)
	case !utf8.Valid(data):
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, data)
		dst = append(dst, `","encoding":"base64"`...)
	default:
		// A view, not a copy: appendJSONString only reads it, and a string
		// conversion would allocate for data over 32 bytes.
		dst = appendJSONString(dst, unsafe.String(unsafe.SliceData(data), len(data)))
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal (RFC 8259 §7). It
// escapes '"', '\\' and control characters, writes U+2028 and U+2029 as
// escapes (they end lines in older JavaScript), and replaces invalid UTF-8
// with U+FFFD so the result is always valid UTF-8 for a text frame.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, needing no escape
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// maxJSONDepth is the deepest nesting validJSON accepts, the same limit as
// encoding/json's, so both agree on what is valid.
const maxJSONDepth = 10000

// validJSON reports whether p is one valid JSON value (RFC 8259), optionally
// surrounded by whitespace, in valid UTF-8: exactly json.Valid(p) &&
// utf8.Valid(p), checked in one pass. Unlike json.Valid it never allocates,
// not even for invalid input, and it is several times faster.
func validJSON(p []byte) bool {
	var kinds [maxJSONDepth/64 + 1]uint64 // bit d set: level d is an object, else an array
	depth := 0
	i := skipJSONSpace(p, 0)
	ok := true
	for {
		// A value starts at i.
		if i >= len(p) {
			return false
		}
		switch c := p[i]; {
		case c == '{' || c == '[':
			if depth == maxJSONDepth {
				return false
			}
			isObj := c == '{'
			if isObj {
				kinds[depth/64] |= 1 << (depth % 64)
			} else {
				kinds[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			i = skipJSONSpace(p, i+1)
			if i < len(p) && p[i] == c+2 { // '{'+2 == '}', '['+2 == ']'
				depth--
				i++
				break
			}
			if isObj {
				if i, ok = scanJSONKey(p, i); !ok {
					return false
				}
			}
			continue
		case c == '"':
			if i, ok = scanJSONString(p, i); !ok {
				return false
			}
		case c == '-' || '0' <= c && c <= '9':
			if i, ok = scanJSONNumber(p, i); !ok {
				return false
			}
		case c == 't':
			if !bytes.HasPrefix(p[i:], []byte("true")) {
				return false
			}
			i += 4
		case c == 'f':
			if !bytes.HasPrefix(p[i:], []byte("false")) {
				return false
			}
			i += 5
		case c == 'n':
			if !bytes.HasPrefix(p[i:], []byte("null")) {
				return false
			}
			i += 4
		default:
			return false
		}
		// A value ended at i: close containers until one continues.
		for {
			i = skipJSONSpace(p, i)
			if depth == 0 {
				return i == len(p)
			}
			if i >= len(p) {
				return false
			}
			isObj := kinds[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			c := p[i]
			if c == ',' {
				i = skipJSONSpace(p, i+1)
				if isObj {
					if i, ok = scanJSONKey(p, i); !ok {
						return false
					}
				}
				break
			}
			if isObj && c == '}' || !isObj && c == ']' {
				depth--
				i++
				continue
			}
			return false
		}
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipJSONSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// scanJSONKey scans an object member's name and its colon at p[i:] and
// returns the index of the value after them.
func scanJSONKey(p []byte, i int) (int, bool) {
	if i >= len(p) || p[i] != '"' {
		return i, false
	}
	i, ok := scanJSONString(p, i)
	if !ok {
		return i, false
	}
	i = skipJSONSpace(p, i)
	if i >= len(p) || p[i] != ':' {
		return i, false
	}
	return skipJSONSpace(p, i+1), true
}

// scanJSONString scans the string starting with the quote at p[i] and returns
// the index after its closing quote. It requires valid UTF-8.
func scanJSONString(p []byte, i int) (int, bool) {
	for i++; i < len(p); {
		c := p[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(p) {
				return i, false
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p) || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		}
	}
	return i, false
}

// scanJSONNumber scans the number starting at p[i] and returns the index
// after it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanJSONNumber(p []byte, i int) (int, bool) {
	if p[i] == '-' {
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && '1' <= p[i] && p[i] <= '9':
		i = skipDigits(p, i+1)
	default:
		return i, false
	}
	if i < len(p) && p[i] == '.' {
		j := skipDigits(p, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		j := skipDigits(p, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(p []byte, i int) int {
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
