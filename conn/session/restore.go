package session

import (
	"slices"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics"
)

// Restore begins the session of a client that recovers an earlier one of
// its own (Socket.IO's connection state recovery): it records the
// identity (nil: anonymous), fills the command budget and subscribes names,
// the earlier session's topics, checked as a subscribe is (the client's
// token must still allow them; its personal topic always is). The durable
// topics resume after pos, the position of the last push the client got,
// as SSE's Last-Event-ID does (StartAt): the topics whose history has pos's
// epoch recover every message after it, the others start live with
// ReasonEpochChanged; without a position (pos.Epoch empty) every topic
// starts live. done runs on the loop with one codec.Recovery per durable
// topic resumed (none without a position), in the order of names, before
// any message of these topics is delivered (topics.Shard.Resume); it must
// not subscribe or unsubscribe.
// On error nothing is subscribed and done never runs. No v1 message is
// sent: the transport answers in its own protocol.
func (s *Session) Restore(e *Env, p Peer, id Identity, names []string, pos codec.Position, done func([]codec.Recovery)) *codec.ProtoError {
	s.init(e, id)
	if len(names) == 0 {
		done(nil)
		return nil
	}
	if perr := s.check(e, names, false); perr != nil {
		return perr
	}
	var wants []topics.Want
	for i, t := range names {
		if slices.Contains(names[:i], t) || s.subscribed(t) {
			continue
		}
		w := topics.Want{Topic: t}
		if pos.Epoch != "" && e.shard.Hub().Durable(t) {
			at := pos
			w.Since = &at
		}
		wants = append(wants, w)
	}
	xs, err := e.shard.Resume(p, wants, done)
	if err != nil {
		return &codec.ProtoError{Code: codec.CodeInternal, Message: "subscribe failed"}
	}
	s.subs = append(s.subs, xs...)
	return nil
}
