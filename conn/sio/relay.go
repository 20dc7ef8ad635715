package sio

import (
	"errors"
	"slices"
	"strings"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/topics/broker"
)

// Routing polling requests to their session (docs/architecture.md
// "Mailboxes instead of sticky sessions"). A session belongs to one event
// loop of one node; its client's requests may reach any loop of any node:
//
//   - the owning loop serves them directly (engine.poll, engine.post);
//   - another loop of the same node finds the session in the node's
//     registry, holds the client's request and hands it to the owner with
//     the owner's Execute; the owner answers with the relay reply, handed
//     back with this loop's Execute;
//   - another node forwards it to the mailbox named by the sid
//     (broker.Mailboxes.Request; the owner's mailbox handler runs on a
//     broker goroutine and hands the request to the owner's loop with
//     Execute), holds the client's request, and answers when the reply
//     comes (on a broker goroutine, handed to this loop with Execute).
//
// No goroutine waits for anything: a held request is state on its
// connection (fwd), and every hop is a callback.

// route serves a poll (op EIORelayPoll) or POST (EIORelayPost, with its
// body) for session sid, wherever the session is.
func (e *endpoint) route(c *conn.Conn, op byte, sid, origin string, body []byte) {
	if v, ok := e.shared.sessions.Load(sid); ok {
		eng := v.(*engine)
		if eng.ep == e {
			e.serveLocal(c, eng, op, origin, body)
			return
		}
		e.relayLoop(c, eng, op, origin, body)
		return
	}
	if e.shared.relay != nil && broker.ValidMailboxName(sid) {
		e.forward(c, sid, op, origin, body)
		return
	}
	e.respondError(c, origin, codec.EIOCodeUnknownSID)
}

// serveLocal serves a request for a session of this loop.
func (e *endpoint) serveLocal(c *conn.Conn, eng *engine, op byte, origin string, body []byte) {
	if op == codec.EIORelayPoll {
		eng.poll(waiter{c: c, origin: origin})
		return
	}
	if code := eng.post(body); code >= 0 {
		e.respondError(c, origin, code)
		return
	}
	e.respondOK(c, origin)
}

// serveRelay serves a request relayed from another loop or node: reply
// sends the relay reply (a payload, "ok" or an error) exactly once, now or
// when packets come.
func (eng *engine) serveRelay(op byte, body []byte, reply func([]byte)) {
	switch op {
	case codec.EIORelayPoll:
		eng.poll(waiter{reply: reply})
		return
	case codec.EIORelayDropped:
		eng.pollDropped()
		reply(codec.AppendEIORelayOK(nil))
		return
	}
	if code := eng.post(body); code >= 0 {
		reply(codec.AppendEIORelayError(nil, code))
		return
	}
	reply(codec.AppendEIORelayOK(nil))
}

// fwd is a client's request held while another loop or node serves it: the
// held connection's conn.Proto until the answer comes. Its identity tells
// a late answer (the client left, or the server stopped) from the one the
// connection waits for.
type fwd struct {
	ep     *endpoint
	origin string
	op     byte    // the request's: codec.EIORelayPoll or EIORelayPost
	eng    *engine // the session, when another loop of this node has it
	sid    string  // the session's mailbox, when another node has it
}

// hold holds c's request (op) for a relay and returns the fwd that
// answers it.
func (e *endpoint) hold(c *conn.Conn, origin string, op byte) *fwd {
	f := &fwd{ep: e, origin: strings.Clone(origin), op: op}
	c.Hold(f)
	return f
}

// relayLoop hands a request to the session's loop on this node.
func (e *endpoint) relayLoop(c *conn.Conn, eng *engine, op byte, origin string, body []byte) {
	e.shared.metrics.Relayed.Add(1)
	f := e.hold(c, origin, op)
	f.eng = eng
	if op == codec.EIORelayPost {
		body = slices.Clone(body) // it aliases the connection's input buffer
	}
	owner := eng.ep
	err := owner.loop.Execute(func() {
		eng.serveRelay(op, body, func(reply []byte) {
			if err := e.loop.Execute(func() { f.answer(c, reply, nil) }); err != nil {
				// This loop has stopped: the connection went with it.
				return
			}
		})
		owner.flushReady()
	})
	if err != nil {
		f.answer(c, nil, err)
	}
}

// forward sends a request to the node whose mailbox is named sid.
func (e *endpoint) forward(c *conn.Conn, sid string, op byte, origin string, body []byte) {
	m := e.shared.metrics
	m.Forwarded.Add(1)
	f := e.hold(c, origin, op)
	f.sid = sid
	req := codec.AppendEIORelayRequest(make([]byte, 0, 1+len(body)), op, body)
	err := e.shared.relay.Request(sid, req, e.shared.cfg.RelayTimeout, func(reply []byte, err error) {
		_ = e.loop.Execute(func() { f.answer(c, reply, err) })
	})
	if err != nil {
		f.answer(c, nil, err)
	}
}

// answer answers the held request with the relay's outcome: the owner's
// reply, or err (ErrNoMailbox: no node has the session, 400 "Session ID
// unknown"; anything else, 503). A connection that no longer waits for
// this fwd (the client left, the server stopped) is left alone.
func (f *fwd) answer(c *conn.Conn, reply []byte, err error) {
	if c.Proto() != conn.Proto(f) || c.State() != conn.StateRequest {
		return
	}
	e := f.ep
	var r codec.EIORelayReply
	if err == nil {
		r, err = codec.ParseEIORelayReply(reply)
	}
	switch {
	case errors.Is(err, broker.ErrNoMailbox):
		e.shared.metrics.ForwardFailed.Add(1)
		e.respondError(c, f.origin, codec.EIOCodeUnknownSID)
	case err != nil:
		e.shared.metrics.ForwardFailed.Add(1)
		e.respondUnavailable(c, f.origin)
	case r.Kind == codec.EIORelayPayload:
		e.respondPayload(c, f.origin, r.Payload)
	case r.Kind == codec.EIORelayOK:
		e.respondOK(c, f.origin)
	default:
		e.respondError(c, f.origin, r.Code)
	}
	c.RequestDone()
}

// Feed implements conn.Proto; a held request is never fed.
func (f *fwd) Feed(*conn.Conn, []byte) int { return 0 }

// Timer implements conn.Proto; a relay has its own timeout (the broker's,
// or the owner's heartbeat on this node), so the connection's timer is not
// armed.
func (f *fwd) Timer(*conn.Conn) {}

// Send implements conn.Proto.
func (f *fwd) Send(*conn.Conn, []byte) bool { return false }

// Close implements conn.Proto: the server stops while the request is
// relayed. It gets 503 (socket.io-client opens a new session, on another
// node), and the owner's answer, when it comes, is dropped.
func (f *fwd) Close(c *conn.Conn, _ codec.StatusCode, _ string) {
	f.ep.respondUnavailable(c, f.origin)
	c.RequestDone()
}

// SlowConsumer implements conn.Proto.
func (f *fwd) SlowConsumer(c *conn.Conn) { c.CloseTransport() }

// Closed implements conn.Proto: the client left; the answer, when it
// comes, is dropped. For a poll, the owner may already have taken packets
// out of the session's queue for it, which would now be lost while the
// session goes on: the owner is told (pollDropped), and ends the session
// as it does when a poll held there is dropped, so the client reconnects
// (and may recover). A POST's packets were handled; only its "ok" is lost.
func (f *fwd) Closed(*conn.Conn) {
	if f.op != codec.EIORelayPoll {
		return
	}
	e := f.ep
	switch {
	case f.eng != nil:
		eng := f.eng
		_ = eng.ep.loop.Execute(func() {
			eng.pollDropped()
			eng.ep.flushReady()
		})
	case e.shared.relay != nil:
		_ = e.shared.relay.Request(f.sid, []byte{codec.EIORelayDropped}, e.shared.cfg.RelayTimeout, func([]byte, error) {})
	}
}

// mailHandler returns the handler of the session's mailbox: it runs on a
// broker goroutine, so it hands each request to the session's loop.
func (eng *engine) mailHandler() broker.MailHandler {
	ep := eng.ep
	return func(req []byte, r broker.Replier) {
		err := ep.loop.Execute(func() {
			op, body, perr := codec.ParseEIORelayRequest(req)
			if perr != nil {
				_ = r.Reply(codec.AppendEIORelayError(nil, codec.EIOCodeBadRequest))
				return
			}
			ep.shared.metrics.RelayServed.Add(1)
			eng.serveRelay(op, body, func(b []byte) { _ = r.Reply(b) })
			ep.flushReady()
		})
		if err != nil {
			_ = r.Reply(codec.AppendEIORelayError(nil, codec.EIOCodeUnknownSID))
		}
	}
}
