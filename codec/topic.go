package codec

import (
	"errors"
	"fmt"
)

// MaxTopicLen is the longest topic name pushd accepts, in bytes. It keeps the
// NATS subject "<prefix>.<topic>" and every push frame's header small.
const MaxTopicLen = 128

// ErrInvalidTopic is wrapped by every error ValidTopic returns; test with
// errors.Is.
var ErrInvalidTopic = errors.New("codec: invalid topic")

// ValidTopic reports nil if name is a valid topic name: 1..MaxTopicLen bytes of
// dot-separated tokens, each token non-empty and made only of [A-Za-z0-9_-].
// The character set excludes the NATS wildcards '*' and '>' and whitespace, so
// a topic maps to exactly one literal NATS subject, and it needs no escaping
// inside a JSON string. Otherwise it returns a descriptive error wrapping
// ErrInvalidTopic. It does not allocate on success. Pure; safe for concurrent
// use.
func ValidTopic(name string) error {
	switch {
	case len(name) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(name) > MaxTopicLen:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidTopic, len(name), MaxTopicLen)
	}
	tokenStart := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '.' {
			if i == tokenStart {
				return fmt.Errorf("%w: empty token at byte %d", ErrInvalidTopic, i)
			}
			tokenStart = i + 1
			continue
		}
		if !topicChar(c) {
			return fmt.Errorf("%w: character %q at byte %d not in [A-Za-z0-9_-]", ErrInvalidTopic, c, i)
		}
	}
	if tokenStart == len(name) {
		return fmt.Errorf("%w: empty last token", ErrInvalidTopic)
	}
	return nil
}

// topicChar reports whether c may appear inside a topic token.
func topicChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}
