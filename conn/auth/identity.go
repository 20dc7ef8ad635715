package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pushd/pushd/codec"
)

// ErrInvalidPattern is wrapped by every error ParsePattern returns.
var ErrInvalidPattern = errors.New("auth: invalid topic pattern")

// Pattern is a set of topics a token grants. It has one of three forms:
//
//   - an exact topic, "chat.room1", which matches only that topic;
//   - a prefix followed by ".>", "prices.>", which matches every topic
//     below the prefix at any depth ("prices.BTC", "prices.BTC.usd") but
//     not the prefix itself ("prices"), like NATS's full wildcard;
//   - "*" (or ">"), which matches every topic.
//
// The NATS single-token wildcard ("prices.*.usd") is not supported and is
// rejected rather than read as something broader. The zero Pattern matches
// nothing.
type Pattern struct {
	s    string // the exact topic, or for a wildcard its prefix with the trailing dot ("" for all)
	wild bool
}

// ParsePattern parses one pattern. The prefix of a wildcard and an exact
// topic must both pass codec.ValidTopic. Pure; safe for concurrent use.
func ParsePattern(s string) (Pattern, error) {
	if s == "*" || s == ">" {
		return Pattern{wild: true}, nil
	}
	if prefix, ok := strings.CutSuffix(s, ".>"); ok {
		if err := codec.ValidTopic(prefix); err != nil {
			return Pattern{}, fmt.Errorf("%w %q: prefix: %v", ErrInvalidPattern, s, err)
		}
		return Pattern{s: prefix + ".", wild: true}, nil
	}
	if err := codec.ValidTopic(s); err != nil {
		if strings.ContainsAny(s, "*>") {
			return Pattern{}, fmt.Errorf("%w %q: a wildcard may only be a final \".>\" or the whole pattern \"*\"", ErrInvalidPattern, s)
		}
		return Pattern{}, fmt.Errorf("%w %q: %v", ErrInvalidPattern, s, err)
	}
	return Pattern{s: s}, nil
}

// ParsePatterns parses every pattern in list; it returns the first error.
// Pure; safe for concurrent use.
func ParsePatterns(list []string) ([]Pattern, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]Pattern, len(list))
	for i, s := range list {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// Match reports whether topic is in the pattern's set. topic must already
// have passed codec.ValidTopic: matching is a plain string comparison. Pure;
// safe for concurrent use.
func (p Pattern) Match(topic string) bool {
	if !p.wild {
		return p.s != "" && topic == p.s
	}
	return len(topic) > len(p.s) && strings.HasPrefix(topic, p.s)
}

// String returns the pattern in the syntax ParsePattern reads ("*" for
// every topic). Pure.
func (p Pattern) String() string {
	switch {
	case !p.wild:
		return p.s
	case p.s == "":
		return "*"
	default:
		return p.s + ">"
	}
}

// Identity is what one authenticated connection is and may do. It
// implements conn.Identity. It is immutable after construction, so one
// Identity may be read from any goroutine.
type Identity struct {
	subject   string
	expires   time.Time
	subscribe []Pattern
	publish   []Pattern
}

// NewIdentity returns an Identity with the given subject, expiry (the zero
// time: never) and pattern lists (see Pattern). It is for identities that
// do not come from a token, such as an allow-everything identity:
// NewIdentity("dev", time.Time{}, []string{"*"}, []string{"*"}). Pure.
func NewIdentity(subject string, expires time.Time, subscribe, publish []string) (*Identity, error) {
	sub, err := ParsePatterns(subscribe)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePatterns(publish)
	if err != nil {
		return nil, err
	}
	return &Identity{subject: subject, expires: expires, subscribe: sub, publish: pub}, nil
}

// Subject returns the token's sub claim: the user ID. Safe for concurrent
// use.
func (id *Identity) Subject() string { return id.subject }

// Expiry returns the instant the token stops being accepted: its exp claim
// plus the verifier's leeway, so a connection lives exactly as long as a
// new handshake with the same token would succeed. The zero time means
// never. The engine closes the connection with 4002 (token expired) then.
// Safe for concurrent use.
func (id *Identity) Expiry() time.Time { return id.expires }

// CanSubscribe reports whether the identity may subscribe to topic, which
// must already be valid (codec.ValidTopic). A nil Identity may do nothing.
// The server-side subscription to the personal topic (PersonalTopic) does
// not go through this check. Safe for concurrent use.
func (id *Identity) CanSubscribe(topic string) bool {
	return id != nil && matchAny(id.subscribe, topic)
}

// CanPublish reports whether the identity may publish to topic, which must
// already be valid. A nil Identity may do nothing. Safe for concurrent use.
func (id *Identity) CanPublish(topic string) bool {
	return id != nil && matchAny(id.publish, topic)
}

// Expired reports whether the identity's token has expired at now. Safe for
// concurrent use.
func (id *Identity) Expired(now time.Time) bool {
	return !id.expires.IsZero() && !now.Before(id.expires)
}

// SubscribePatterns returns a copy of the subscribe patterns, for logs and
// diagnostics. Safe for concurrent use.
func (id *Identity) SubscribePatterns() []Pattern { return slices.Clone(id.subscribe) }

// PublishPatterns returns a copy of the publish patterns. Safe for
// concurrent use.
func (id *Identity) PublishPatterns() []Pattern { return slices.Clone(id.publish) }

func matchAny(ps []Pattern, topic string) bool {
	return slices.ContainsFunc(ps, func(p Pattern) bool { return p.Match(topic) })
}

// PersonalTopic returns the personal topic of subject: prefix + subject,
// e.g. PersonalTopic("user.", "42") = "user.42". It fails, wrapping
// codec.ErrInvalidTopic, when the result is not a valid topic or subject is
// not exactly one topic token ([A-Za-z0-9_-]+). A subject "a.b" would
// otherwise land inside the tree of user "a", whose token may grant
// "user.a.>", so such subjects get no personal topic. Pure.
func PersonalTopic(prefix, subject string) (string, error) {
	if subject == "" || strings.IndexByte(subject, '.') >= 0 {
		return "", fmt.Errorf("%w: subject is not a single topic token", codec.ErrInvalidTopic)
	}
	t := prefix + subject
	if err := codec.ValidTopic(t); err != nil {
		return "", err
	}
	return t, nil
}
