package sio

import (
	"time"

	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics/broker"
)

// Connection state recovery (Socket.IO's "connectionStateRecovery", on
// with Config.Recovery). socket.io-client keeps the pid of its CONNECT's
// answer and the last string argument of the events it receives (the
// offset), and sends both in its next CONNECT. pushd maps this onto the
// positions of durable topics:
//
//   - every push on a durable topic carries its position as a last string
//     argument, the SSE event id topic:epoch:offset (codec.AppendSIOPush),
//     shared by every subscriber like the rest of the encoding;
//   - when a session ends without the client leaving (a lost connection, a
//     missing pong, a drain, an expired token; not after a DISCONNECT
//     either way), its loop keeps what the pushes cannot tell: the
//     client's identity and its topics, for Recovery, under the pid, in
//     the node's registry and, with a relay, in a mailbox named by the pid
//     (kept);
//   - a CONNECT with a pid and an offset takes that state once, from this
//     loop, another loop (Execute) or another node (the pid's mailbox),
//     checks that the same client (the same subject, or anonymous again)
//     asks, and restores the session (session.Session.Restore): the topics
//     are subscribed again, checked against the client's token, and the
//     durable ones resume after the offset, as SSE's Last-Event-ID does
//     (the offsets of one history pattern are shared by its topics);
//   - the answer carries the old pid, so socket.recovered is true, only
//     when every topic recovered every message: all of them are durable,
//     in the offset's history, and the history still holds what came after
//     the offset. Otherwise it carries a new pid: the subscriptions are
//     back anyway, and the client's usual reaction to recovered false
//     (subscribing again in its connect handler) is harmless.
//
// The state lives on the node that served the session, so it is lost with
// that node: a session that ended because its node stopped (a drain, a
// crash) is not recovered elsewhere. Nor is one whose node has not yet
// noticed its end (a connection dropped without a FIN, until the pong
// timeout).

// kept is the state a session left for recovery, on the loop that kept it.
type kept struct {
	// Immutable after keep.
	pid     string
	subject string
	anon    bool
	topics  []string
	until   uint64 // wheel tick after which it is dropped
	ep      *endpoint

	// Owned by ep's loop.
	mbox  broker.Mailbox
	taken bool
}

// recoveryAsk bounds how long a CONNECT waits for another node's answer
// about its pid (a missing mailbox answers at once, after the broker's
// short grace).
const recoveryAsk = 5 * time.Second

// keep keeps the state of a session that ends, if recovery is on and the
// client had joined without leaving since (leave and a server DISCONNECT
// clear flagConnected first).
func (h *handler) keep(s *socket) {
	pid := s.pid()
	if pid == "" || s.flags&flagConnected == 0 || h.cfg.Recovery <= 0 {
		return
	}
	e := h.ep
	id := s.sess.Identity()
	k := &kept{pid: pid, anon: id == nil, topics: s.sess.Topics(), until: e.loop.Now() + e.keepTicks, ep: e}
	if id != nil {
		k.subject = id.Subject()
	}
	e.kept = append(e.kept, k)
	e.shared.kept.Store(pid, k)
	if e.shared.relay != nil && broker.ValidMailboxName(pid) {
		if mbox, err := e.shared.relay.OpenMailbox(pid, k.handler); err == nil {
			k.mbox = mbox
		}
	}
	e.shared.metrics.Kept.Add(1)
}

// expireKept drops the states kept longer than Recovery.
func (e *endpoint) expireKept(now uint64) {
	i := 0
	for ; i < len(e.kept) && e.kept[i].until <= now; i++ {
		e.kept[i].take()
		e.kept[i] = nil
	}
	if i > 0 {
		e.kept = e.kept[:copy(e.kept, e.kept[i:])]
	}
}

// take removes the state from the registry and its mailbox, on its loop,
// and reports whether it was still there: a state is taken once.
func (k *kept) take() bool {
	if k.taken {
		return false
	}
	k.taken = true
	k.ep.shared.kept.CompareAndDelete(k.pid, k)
	if k.mbox != nil {
		_ = k.mbox.Close()
		k.mbox = nil
	}
	k.ep.shared.metrics.Kept.Add(-1)
	return true
}

// handler answers another node's request for the state (op
// EIORelayRecover) on a broker goroutine, through the state's loop.
func (k *kept) handler(req []byte, r broker.Replier) {
	err := k.ep.loop.Execute(func() {
		op, _, perr := codec.ParseEIORelayRequest(req)
		switch {
		case perr != nil || op != codec.EIORelayRecover:
			_ = r.Reply(codec.AppendEIORelayError(nil, codec.EIOCodeBadRequest))
		case k.take():
			_ = r.Reply(codec.AppendEIORelayState(nil, k.anon, k.subject, k.topics))
		default:
			_ = r.Reply(codec.AppendEIORelayError(nil, codec.EIOCodeUnknownSID))
		}
	})
	if err != nil {
		_ = r.Reply(codec.AppendEIORelayError(nil, codec.EIOCodeUnknownSID))
	}
}

// fetchKept takes the state kept under pid, wherever it is, and hands it
// to done on e's loop: nil when there is none (never kept, expired, taken,
// or its node is gone). done is called exactly once, unless e's loop stops
// first.
func (e *endpoint) fetchKept(pid string, done func(*kept)) {
	if v, ok := e.shared.kept.Load(pid); ok {
		k := v.(*kept)
		owner := k.ep
		if !e.on(owner, func() {
			got := k
			if !k.take() {
				got = nil
			}
			owner.on(e, func() { done(got) })
		}) {
			done(nil)
		}
		return
	}
	if e.shared.relay == nil || !broker.ValidMailboxName(pid) {
		done(nil)
		return
	}
	err := e.shared.relay.Request(pid, []byte{codec.EIORelayRecover}, recoveryAsk, func(reply []byte, err error) {
		var got *kept
		if err == nil {
			if r, perr := codec.ParseEIORelayReply(reply); perr == nil && r.Kind == codec.EIORelayState {
				got = &kept{pid: pid, anon: r.Anonymous, subject: r.Subject, topics: r.Topics}
			}
		}
		_ = e.loop.Execute(func() { done(got) })
	})
	if err != nil {
		done(nil)
	}
}

// sameClient reports whether the client with identity id may recover the
// state: the same subject, or anonymous both times.
func (k *kept) sameClient(id session.Identity) bool {
	if id == nil {
		return k.anon
	}
	return !k.anon && id.Subject() == k.subject
}

// recover answers a CONNECT that asked to recover the session auth.PID,
// once its state k came (nil: none): the session is restored and answered
// with the old pid when every topic recovered, else with a new one (see
// the notes above); without a usable state it starts anew (join).
func (h *handler) recover(p session.Peer, s *socket, id session.Identity, auth codec.SIOAuth, k *kept) {
	s.flags &^= flagJoining
	if !p.Open() || s.flags&flagConnected != 0 {
		return
	}
	m := h.ep.shared.metrics
	// An offset that does not parse is ignored, as SSE ignores such a
	// Last-Event-ID: the topics come back, live (not recovered).
	_, epoch, offset, ok := codec.ParseEventID(auth.Offset)
	if !ok {
		epoch, offset = "", 0
	}
	if k == nil || !k.sameClient(id) {
		m.NotRecovered.Add(1)
		if h.join(p, s, id) {
			rearm(p)
		}
		return
	}
	s.flags |= flagJoining
	pid := auth.PID
	perr := s.sess.Restore(h.env, p, id, k.topics, codec.Position{Offset: offset, Epoch: epoch}, func(recs []codec.Recovery) {
		s.flags &^= flagJoining
		all := len(recs) == len(k.topics)
		for _, r := range recs {
			all = all && r.Recovered
		}
		answer := pid
		if all {
			m.Recovered.Add(1)
		} else {
			m.NotRecovered.Add(1)
			answer = secretID()
		}
		if !p.Open() {
			return
		}
		s.aux = answer
		s.flags |= flagConnected
		h.send(p, codec.AppendSIOConnect(h.buf[:0], "/", nuid.Next(), answer))
		rearm(p)
	})
	if perr != nil {
		// The client's token no longer allows a topic it had (or the node
		// has no topics): a new session, as if nothing was kept.
		s.flags &^= flagJoining
		m.NotRecovered.Add(1)
		if h.join(p, s, id) {
			rearm(p)
		}
	}
}
