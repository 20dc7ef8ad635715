package session

import "github.com/pushd/pushd/codec"

// Adopt begins the session of a client that moves here from another event
// loop with its subscriptions (a Socket.IO session whose upgrade to
// WebSocket reached another loop than the one that served its polling):
// it records the identity (nil: anonymous), fills the command budget and
// subscribes names, without the token and limit checks, which they passed
// when the client first subscribed (the personal topic among them, which
// bypassed the token's patterns). A topic that fails to subscribe is
// skipped; the error is returned after the others are subscribed.
func (s *Session) Adopt(e *Env, p Peer, id Identity, names []string) *codec.ProtoError {
	s.init(e, id)
	var perr *codec.ProtoError
	for _, t := range names {
		if s.subscribed(t) {
			continue
		}
		if e.shard == nil {
			perr = &codec.ProtoError{Code: codec.CodeInternal, Message: "this endpoint has no topics"}
			continue
		}
		x, err := e.shard.Subscribe(t, p)
		if err != nil {
			perr = &codec.ProtoError{Code: codec.CodeInternal, Message: "subscribe failed"}
			continue
		}
		s.subs = append(s.subs, x)
	}
	return perr
}
