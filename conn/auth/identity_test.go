package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/pushd/pushd/codec"
)

func TestParsePattern(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		want string // String() of the parsed pattern
	}{
		{"chat.room1", true, "chat.room1"},
		{"prices.>", true, "prices.>"},
		{"a.b.c.>", true, "a.b.c.>"},
		{"*", true, "*"},
		{">", true, "*"},
		{"", false, ""},
		{".>", false, ""},
		{"prices.*", false, ""},
		{"prices.*.usd", false, ""},
		{"prices>", false, ""},
		{"prices.>.x", false, ""},
		{"*.prices", false, ""},
		{"a..b", false, ""},
		{"a b", false, ""},
		{"prices.", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePattern(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrInvalidPattern) {
					t.Fatalf("ParsePattern(%q) = %v, %v; want ErrInvalidPattern", tc.in, p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != tc.want {
				t.Errorf("String() = %q, want %q", p.String(), tc.want)
			}
		})
	}
}

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern string
		topic   string
		want    bool
	}{
		{"chat.room1", "chat.room1", true},
		{"chat.room1", "chat.room10", false},
		{"chat.room1", "chat.room1.x", false},
		{"chat.room1", "chat", false},
		{"prices.>", "prices.BTC", true},
		{"prices.>", "prices.BTC.usd", true},
		{"prices.>", "prices", false},
		{"prices.>", "pricesX.BTC", false},
		{"prices.>", "prices2", false},
		{"prices.>", "x.prices.BTC", false},
		{"*", "anything", true},
		{"*", "a.b.c", true},
		{"*", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.pattern+" "+tc.topic, func(t *testing.T) {
			p, err := ParsePattern(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(tc.topic); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
	if (Pattern{}).Match("") || (Pattern{}).Match("a") {
		t.Error("the zero Pattern must match nothing")
	}
}

func TestIdentityPermissions(t *testing.T) {
	id, err := NewIdentity("u1", time.Time{}, []string{"prices.>", "user.u1", "chat.lobby"}, []string{"chat.lobby"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := NewIdentity("", time.Time{}, []string{"*"}, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	var none *Identity
	cases := []struct {
		name     string
		id       *Identity
		topic    string
		sub, pub bool
	}{
		{"wildcard subscribe", id, "prices.ETH", true, false},
		{"exact subscribe and publish", id, "chat.lobby", true, true},
		{"other user's topic", id, "user.u2", false, false},
		{"own topic", id, "user.u1", true, false},
		{"wildcard prefix itself", id, "prices", false, false},
		{"unlisted", id, "admin.events", false, false},
		{"allow-all", all, "admin.events", true, true},
		{"nil identity", none, "prices.ETH", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.id.CanSubscribe(tc.topic); got != tc.sub {
				t.Errorf("CanSubscribe(%q) = %v, want %v", tc.topic, got, tc.sub)
			}
			if got := tc.id.CanPublish(tc.topic); got != tc.pub {
				t.Errorf("CanPublish(%q) = %v, want %v", tc.topic, got, tc.pub)
			}
		})
	}
	if _, err := NewIdentity("u", time.Time{}, nil, []string{"a.*"}); !errors.Is(err, ErrInvalidPattern) {
		t.Errorf("NewIdentity with a bad pattern: err = %v", err)
	}
}

func TestIdentityExpired(t *testing.T) {
	exp := time.Unix(1000, 0)
	id := &Identity{expires: exp}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{exp.Add(-time.Nanosecond), false},
		{exp, true},
		{exp.Add(time.Hour), true},
	} {
		if got := id.Expired(tc.at); got != tc.want {
			t.Errorf("Expired(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if (&Identity{}).Expired(exp) {
		t.Error("a zero expiry must never expire")
	}
}

func TestPersonalTopic(t *testing.T) {
	cases := []struct {
		prefix, sub, want string
	}{
		{"user.", "42", "user.42"},
		{"user.", "auth0-abc_DEF", "user.auth0-abc_DEF"},
		{"tenant.users.", "u1", "tenant.users.u1"},
		{"u-", "42", "u-42"},
		{"user.", "a.b", ""},
		{"user.", "auth0|123", ""},
		{"user.", "bob@example.com", ""},
		{"user.", "", ""},
		{"user", ".u1", ""},
		{"user..", "u1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.prefix+"/"+tc.sub, func(t *testing.T) {
			got, err := PersonalTopic(tc.prefix, tc.sub)
			if tc.want == "" {
				if !errors.Is(err, codec.ErrInvalidTopic) {
					t.Fatalf("PersonalTopic = %q, %v; want an ErrInvalidTopic error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PersonalTopic = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
