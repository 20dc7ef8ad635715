// Package tmpl expands the harness's tiny templates: strings with
// {{topic}}, {{id}} and {{payload}} placeholders, used for connect URLs,
// subscribe frames, publish bodies and NATS subjects. A template is split
// once, so expanding it per connection or per message is a few appends.
package tmpl

import (
	"fmt"
	"strconv"
	"strings"
)

// Field is a placeholder kind.
type Field uint8

// The placeholders a template may hold.
const (
	literal Field = iota
	// Topic is {{topic}}: the topic name.
	Topic
	// ID is {{id}}: the connection's number across the whole run.
	ID
	// Payload is {{payload}}: the harness's JSON payload.
	Payload
)

var names = map[string]Field{"topic": Topic, "id": ID, "payload": Payload}

type part struct {
	f Field
	s string
}

// T is a parsed template. The zero value expands to nothing. A T is
// immutable and safe for concurrent use.
type T struct {
	parts []part
	has   [4]bool
}

// Parse splits s at its placeholders. Unknown placeholders are an error,
// so a typo does not silently send "{{topci}}" to the server. Pure.
func Parse(s string) (T, error) {
	var t T
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return T{}, fmt.Errorf("tmpl: unclosed {{ in %q", s)
		}
		name := strings.TrimSpace(s[i+2 : i+j])
		f, ok := names[name]
		if !ok {
			return T{}, fmt.Errorf("tmpl: unknown placeholder {{%s}} (want topic, id or payload)", name)
		}
		if i > 0 {
			t.parts = append(t.parts, part{s: s[:i]})
		}
		t.parts = append(t.parts, part{f: f})
		t.has[f] = true
		s = s[i+j+2:]
	}
	if s != "" {
		t.parts = append(t.parts, part{s: s})
	}
	return t, nil
}

// MustParse is Parse for constants; it panics on error. Pure.
func MustParse(s string) T {
	t, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return t
}

// Has reports whether t contains placeholder f. Pure.
func (t T) Has(f Field) bool { return t.has[f] }

// IsZero reports whether t is empty. Pure.
func (t T) IsZero() bool { return len(t.parts) == 0 }

// Append expands t onto dst. Pure.
func (t T) Append(dst []byte, topic string, id int, payload []byte) []byte {
	for _, p := range t.parts {
		switch p.f {
		case literal:
			dst = append(dst, p.s...)
		case Topic:
			dst = append(dst, topic...)
		case ID:
			dst = strconv.AppendInt(dst, int64(id), 10)
		case Payload:
			dst = append(dst, payload...)
		}
	}
	return dst
}

// String expands t to a string. Pure.
func (t T) String(topic string, id int, payload []byte) string {
	return string(t.Append(nil, topic, id, payload))
}
