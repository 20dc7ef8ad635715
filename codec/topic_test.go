package codec

import (
	"errors"
	"strings"
	"testing"
)

func TestValidTopic(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		ok    bool
	}{
		{"single char", "a", true},
		{"two tokens", "a.b", true},
		{"ticker", "ticker.BTC", true},
		{"all classes", "Aa-Zz_09.x-y_z", true},
		{"digits only", "123.456", true},
		{"max length", strings.Repeat("a", MaxTopicLen), true},
		{"max length dotted", strings.Repeat("a.", MaxTopicLen/2-1) + "ab", true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxTopicLen+1), false},
		{"lone dot", ".", false},
		{"leading dot", ".a", false},
		{"trailing dot", "a.", false},
		{"empty middle token", "a..b", false},
		{"star wildcard", "a.*", false},
		{"gt wildcard", "a.>", false},
		{"star in token", "a*b", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"slash", "a/b", false},
		{"colon", "a:b", false},
		{"NUL", "a\x00", false},
		{"quote", `a"b`, false},
		{"non-ASCII", "caf\u00e9", false},
		{"invalid UTF-8", "a\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidTopic(tt.topic)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidTopic(%q) = %v, want nil", tt.topic, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidTopic(%q) = nil, want an error", tt.topic)
			}
			if !errors.Is(err, ErrInvalidTopic) {
				t.Errorf("ValidTopic(%q) = %v, does not wrap ErrInvalidTopic", tt.topic, err)
			}
		})
	}
}

// TestValidTopicAgainstNaive compares every 1- and 2-byte name and a few
// 3-byte shapes with a naive split-based definition.
func TestValidTopicAgainstNaive(t *testing.T) {
	naive := func(s string) bool {
		if len(s) == 0 || len(s) > MaxTopicLen {
			return false
		}
		for _, tok := range strings.Split(s, ".") {
			if tok == "" || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
				return false
			}
		}
		return true
	}
	check := func(s string) {
		if got, want := ValidTopic(s) == nil, naive(s); got != want {
			t.Fatalf("ValidTopic(%q) ok=%v, naive %v", s, got, want)
		}
	}
	for a := range 256 {
		check(string([]byte{byte(a)}))
		for b := range 256 {
			check(string([]byte{byte(a), byte(b)}))
		}
	}
	for _, mid := range []byte{'.', '*', '>', ' ', 'a', '-'} {
		for _, end := range []byte{'.', 'a', '_', '>'} {
			check(string([]byte{'x', mid, end}))
		}
	}
}

func TestValidTopicAllocs(t *testing.T) {
	name := "ticker.BTC-USD.trades_1m"
	if n := testing.AllocsPerRun(100, func() {
		if ValidTopic(name) != nil {
			t.Fatal("invalid")
		}
	}); n != 0 {
		t.Errorf("ValidTopic: %v allocs, want 0", n)
	}
}

func BenchmarkValidTopic(b *testing.B) {
	name := "ticker.BTC-USD.trades_1m"
	b.ReportAllocs()
	for b.Loop() {
		if ValidTopic(name) != nil {
			b.Fatal("invalid")
		}
	}
}
