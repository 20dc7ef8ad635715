// Package payload builds and recognises the JSON documents the harness
// publishes: {"_lt":<unix ns>,"_ls":<step>,"_ln":<seq>,"pad":"xx…"}.
//
// The publisher stamps the wall clock just before it hands the message to
// the server, and the receiving client subtracts it from its own clock
// after the read that delivered the message: both run on the same host, so
// the difference is the publish-to-receipt latency. "_ln" numbers each
// topic's messages from 1 across the whole run (0 marks a warm-up probe)
// so receivers can count losses, duplicates and reordering, and "_ls" says
// which step of a multi-rate run the message belongs to.
//
// Receivers search for the three keys independently, so a server that
// wraps the document in an envelope ({"type":"message","data":…}) or even
// re-encodes it with other key order or spacing is still understood.
package payload

import (
	"bytes"
	"math"
	"strconv"
)

// Fields is what a payload carries.
type Fields struct {
	Time int64 // wall clock at publish, Unix nanoseconds
	Step int   // step of the run
	Seq  int64 // per-topic sequence number; 0 for a probe
}

// Append appends a payload carrying f to dst, padded with 'x' so that the
// document is size bytes long (or as short as possible if size is smaller
// than the fields need). Pure.
func Append(dst []byte, f Fields, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"_lt":`...)
	dst = strconv.AppendInt(dst, f.Time, 10)
	dst = append(dst, `,"_ls":`...)
	dst = strconv.AppendInt(dst, int64(f.Step), 10)
	dst = append(dst, `,"_ln":`...)
	dst = strconv.AppendInt(dst, f.Seq, 10)
	dst = append(dst, `,"pad":"`...)
	pad := size - (len(dst) - start) - len(`"}`)
	for ; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

var (
	keyTime = []byte(`"_lt":`)
	keyStep = []byte(`"_ls":`)
	keySeq  = []byte(`"_ln":`)
)

// Parse finds the fields in a message. ok is false if the message carries
// no complete payload (a welcome, a command reply). Pure.
func Parse(msg []byte) (f Fields, ok bool) {
	i := bytes.Index(msg, keyTime)
	if i < 0 {
		return Fields{}, false
	}
	// Fast path: the document as Append wrote it, fields in a row.
	p := msg[i+len(keyTime):]
	t, used := digits(p)
	if used > 0 && bytes.HasPrefix(p[used:], []byte(`,"_ls":`)) {
		p = p[used+len(`,"_ls":`):]
		s, used := digits(p)
		if used > 0 && bytes.HasPrefix(p[used:], []byte(`,"_ln":`)) {
			if n, used := digits(p[used+len(`,"_ln":`):]); used > 0 {
				return Fields{Time: t, Step: int(s), Seq: n}, true
			}
		}
	}
	t, ok1 := intAfter(msg, keyTime)
	if !ok1 {
		return Fields{}, false
	}
	s, ok2 := intAfter(msg, keyStep)
	n, ok3 := intAfter(msg, keySeq)
	if !ok2 || !ok3 || s < 0 || n < 0 {
		return Fields{}, false
	}
	return Fields{Time: t, Step: int(s), Seq: n}, true
}

// intAfter parses the non-negative decimal integer after key, skipping
// JSON whitespace.
func intAfter(msg, key []byte) (int64, bool) {
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	p := msg[i+len(key):]
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' || p[0] == '\r') {
		p = p[1:]
	}
	v, n := digits(p)
	return v, n > 0
}

// digits parses the decimal digits at the start of p and returns the value
// and how many bytes it used: 0 if there are none or the value overflows an
// int64.
func digits(p []byte) (int64, int) {
	var v int64
	for i, b := range p {
		if b < '0' || b > '9' {
			return v, i
		}
		d := int64(b - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, 0
		}
		v = v*10 + d
	}
	return v, len(p)
}
