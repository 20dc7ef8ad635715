package jsbroker

import (
	"strings"
	"testing"
	"time"
)

func TestParsePatterns(t *testing.T) {
	got, err := ParsePatterns(" user.>:1000:24h, ticker.*:1:1h ,news:5,chat.*.room:10:7d,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Pattern{
		{"user.>", 1000, 24 * time.Hour},
		{"ticker.*", 1, time.Hour},
		{"news", 5, 0},
		{"chat.*.room", 10, 7 * 24 * time.Hour},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("pattern %d = %+v, want %+v", i, got[i], want[i])
		}
		again, err := ParsePatterns(got[i].String())
		if err != nil || len(again) != 1 || again[0] != got[i] {
			t.Errorf("String() %q does not parse back: %v %v", got[i].String(), again, err)
		}
	}
	if ps, err := ParsePatterns(""); err != nil || len(ps) != 0 {
		t.Errorf("empty: %v %v", ps, err)
	}
}

func TestParsePatternsErrors(t *testing.T) {
	for _, in := range []string{
		"user.>",             // no size
		"user.>:0",           // size 0
		"user.>:-1",          // negative
		"user.>:x",           // not a number
		"user.>:1:1:1",       // too many parts
		"user.>:1:50ms",      // below JetStream's minimum age
		"user.>:1:forever",   // not a duration
		"user.>:1:-1d",       // negative days
		"user.>.a:1",         // > not last
		"user..a:1",          // empty token
		"us er:1",            // bad character
		"a*:1",               // wildcard inside a token
		":1",                 // empty pattern
		"user.>:1,user.42:5", // overlap
		"a.*.c:1,a.b.*:1",    // overlap
		"a.>:1,>:1",          // overlap
		"x:2000000000",       // size too large
		strings.Repeat("a", 129) + ":1",
	} {
		if ps, err := ParsePatterns(in); err == nil {
			t.Errorf("ParsePatterns(%q) = %v, want an error", in, ps)
		}
	}
	// Disjoint patterns are fine.
	if _, err := ParsePatterns("a.*:1,a.b.c:1,b.>:1,a:1"); err != nil {
		t.Errorf("disjoint patterns: %v", err)
	}
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"user.>", "user.42", true},
		{"user.>", "user.42.x", true},
		{"user.>", "user", false},
		{"user.>", "users.1", false},
		{"ticker.*", "ticker.BTC", true},
		{"ticker.*", "ticker.BTC.1m", false},
		{"ticker.*", "ticker", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"news", "news", true},
		{"news", "news.x", false},
		{">", "anything.at.all", true},
		{"*", "one", true},
		{"*", "one.two", false},
	}
	for _, tt := range tests {
		if got := matchTopic(strings.Split(tt.pattern, "."), tt.topic); got != tt.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
	}
}

// TestPatternsOverlapAgainstTopics checks patternsOverlap against its
// definition on a small universe: two patterns overlap exactly when some
// topic matches both.
func TestPatternsOverlapAgainstTopics(t *testing.T) {
	toks := []string{"a", "b", "*", ">"}
	var patterns []string
	var gen func(prefix []string)
	gen = func(prefix []string) {
		if len(prefix) > 0 {
			patterns = append(patterns, strings.Join(prefix, "."))
		}
		if len(prefix) == 3 || len(prefix) > 0 && prefix[len(prefix)-1] == ">" {
			return
		}
		for _, t := range toks {
			gen(append(prefix, t))
		}
	}
	gen(nil)
	var topics []string
	var genT func(prefix []string)
	genT = func(prefix []string) {
		if len(prefix) > 0 {
			topics = append(topics, strings.Join(prefix, "."))
		}
		if len(prefix) == 4 {
			return
		}
		for _, t := range []string{"a", "b", "c"} {
			genT(append(prefix, t))
		}
	}
	genT(nil)
	for _, p := range patterns {
		for _, q := range patterns {
			want := false
			for _, topic := range topics {
				if matchTopic(strings.Split(p, "."), topic) && matchTopic(strings.Split(q, "."), topic) {
					want = true
					break
				}
			}
			if got := patternsOverlap(p, q); got != want {
				t.Errorf("patternsOverlap(%q, %q) = %v, want %v", p, q, got, want)
			}
		}
	}
}

func TestStreamName(t *testing.T) {
	seen := map[string]string{}
	for _, p := range []string{"a_b.c", "a.b_c", "user.>", "user.*", "ticker.*", strings.Repeat("x.", 60) + ">"} {
		n := streamName("pushd", p)
		if strings.ContainsAny(n, ".*> \t/\\") || len(n) > 255 {
			t.Errorf("streamName(%q) = %q: not a valid stream name", p, n)
		}
		if other, dup := seen[n]; dup {
			t.Errorf("patterns %q and %q share stream %q", p, other, n)
		}
		seen[n] = p
	}
	if a, b := streamName("pushd", "user.>"), streamName("pushd", "user"+".>"); a != b {
		t.Errorf("streamName is not stable: %q, %q", a, b)
	}
	if streamName("pushd", "user.>") == streamName("prod", "user.>") {
		t.Error("prefixes share a stream name")
	}
}
