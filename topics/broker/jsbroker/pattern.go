package jsbroker

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/pushd/pushd/codec"
)

// Pattern names the topics that keep a history, and how much of it: a
// topic that matches Topics keeps its newest Size messages, none older
// than TTL. Topics uses NATS wildcards over topic names: "*" matches one
// token, a final ">" one or more.
type Pattern struct {
	Topics string
	Size   int64
	TTL    time.Duration // 0: no age limit
}

// Limits of a Pattern. JetStream refuses a MaxAge below 100 ms.
const (
	MaxPatternSize = 1 << 30
	MinPatternTTL  = 100 * time.Millisecond
)

// String returns the pattern in ParsePatterns' syntax. Any goroutine.
func (p Pattern) String() string {
	s := p.Topics + ":" + strconv.FormatInt(p.Size, 10)
	if p.TTL > 0 {
		s += ":" + p.TTL.String()
	}
	return s
}

// ParsePatterns reads the --history flag: comma-separated PATTERN:SIZE[:TTL]
// entries, for example "user.>:1000:24h,ticker.*:1:1h". SIZE is a positive
// integer; TTL is a Go duration ("90s", "24h") or a number of days ("7d"),
// at least 100ms. Patterns must be valid (ValidPattern) and must not
// overlap: a topic keeps at most one history. An empty string gives no
// patterns. Any goroutine.
func ParsePatterns(s string) ([]Pattern, error) {
	var out []Pattern
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := parsePattern(entry)
		if err != nil {
			return nil, fmt.Errorf("history %q: %w", entry, err)
		}
		out = append(out, p)
	}
	if err := checkPatterns(out); err != nil {
		return nil, err
	}
	return out, nil
}

func parsePattern(entry string) (Pattern, error) {
	parts := strings.Split(entry, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Pattern{}, errors.New("want PATTERN:SIZE or PATTERN:SIZE:TTL")
	}
	p := Pattern{Topics: parts[0]}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || n < 1 || n > MaxPatternSize {
		return p, fmt.Errorf("size %q is not an integer from 1 to %d", parts[1], MaxPatternSize)
	}
	p.Size = n
	if len(parts) == 3 {
		if p.TTL, err = parseTTL(parts[2]); err != nil {
			return p, err
		}
	}
	return p, nil
}

func parseTTL(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int64
		if n, err = strconv.ParseInt(days, 10, 32); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < MinPatternTTL {
		return 0, fmt.Errorf("ttl %q is not a duration of at least %v", s, MinPatternTTL)
	}
	return d, nil
}

// checkPatterns validates every pattern and refuses overlapping ones.
func checkPatterns(ps []Pattern) error {
	for i, p := range ps {
		if err := ValidPattern(p.Topics); err != nil {
			return fmt.Errorf("history pattern %q: %w", p.Topics, err)
		}
		if p.Size < 1 || p.Size > MaxPatternSize {
			return fmt.Errorf("history pattern %q: size %d is not from 1 to %d", p.Topics, p.Size, MaxPatternSize)
		}
		if p.TTL != 0 && p.TTL < MinPatternTTL {
			return fmt.Errorf("history pattern %q: ttl %v is below %v", p.Topics, p.TTL, MinPatternTTL)
		}
		for _, q := range ps[:i] {
			if patternsOverlap(p.Topics, q.Topics) {
				return fmt.Errorf("history patterns %q and %q overlap: some topic would match both", q.Topics, p.Topics)
			}
		}
	}
	return nil
}

// ValidPattern checks a topic pattern: tokens separated by dots, each a
// topic token (codec.ValidTopic's characters), "*", or a final ">". Any
// goroutine.
func ValidPattern(p string) error {
	if len(p) == 0 || len(p) > codec.MaxTopicLen {
		return fmt.Errorf("length %d is not from 1 to %d", len(p), codec.MaxTopicLen)
	}
	toks := strings.Split(p, ".")
	for i, t := range toks {
		switch {
		case t == "*":
		case t == ">":
			if i != len(toks)-1 {
				return errors.New(`">" must be the last token`)
			}
		default:
			if err := codec.ValidTopic(t); err != nil {
				return fmt.Errorf("token %d: %w", i+1, err)
			}
		}
	}
	return nil
}

// patternsOverlap reports whether some topic matches both patterns.
func patternsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != "*" && bt[i] != "*" && at[i] != bt[i] {
			return false
		}
	}
	return len(at) == len(bt)
}

// matchTopic reports whether topic (a valid topic name) matches the pattern
// tokens toks.
func matchTopic(toks []string, topic string) bool {
	for i, t := range toks {
		if t == ">" {
			return topic != ""
		}
		if topic == "" {
			return false
		}
		tok, rest, found := strings.Cut(topic, ".")
		if t != "*" && t != tok {
			return false
		}
		topic = rest
		if !found {
			return i == len(toks)-1
		}
	}
	return false
}

// streamName is the JetStream stream that keeps the history of pattern
// under prefix: readable, and unique by a hash of the subject, since
// replacing dots and wildcards alone could map two patterns to one name
// ("a_b.c" and "a.b_c").
func streamName(prefix, pattern string) string {
	subject := prefix + "." + pattern
	h := fnv.New32a()
	h.Write([]byte(subject))
	r := strings.NewReplacer(".", "_", "*", "STAR", ">", "ALL")
	readable := r.Replace(subject)
	if len(readable) > 120 {
		readable = readable[:120]
	}
	return fmt.Sprintf("PUSHD_%s_%08x", readable, h.Sum32())
}
