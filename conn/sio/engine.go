package sio

import (
	"strings"
	"unsafe"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/wheel"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker"
)

// engine is one Engine.IO session opened over HTTP long-polling
// (engine.io-protocol "HTTP long-polling"): the Socket.IO state, the
// packets waiting for the client's next poll, and the poll held until
// there are some. It outlives the requests that carry it, so it has a
// timer of its own on its endpoint's wheel (the heartbeat, the connect
// deadline, the credentials' expiry) rather than a connection's.
//
// The engine is its session's session.Peer and the topics.Subscriber of
// its subscriptions: pushes are queued (a reference to the shared
// message, encoded once in TextFormat for every polling subscriber) until
// a poll takes them. Once the client upgrades to WebSocket (upgrade.go)
// it forwards everything to that connection instead, which then takes
// pushes in WSFormat like any Socket.IO WebSocket.
//
// An engine belongs to the event loop that answered its handshake; polls
// and POSTs that reach another loop or node are relayed to it (relay.go).
// Loop goroutine only.
type engine struct {
	// Immutable after the handshake.
	ep  *endpoint // the owning loop's endpoint
	sid string

	// Owned by the loop goroutine.
	timer    wheel.Node[engine]
	sock     socket
	out      []outPacket    // packets waiting for a poll, oldest first
	outBytes int            // their size as a payload, separators included
	wait     waiter         // the poll waiting for packets, if any
	ws       *conn.Conn     // the WebSocket the client upgraded to; nil while polling
	probe    *conn.Conn     // a WebSocket probing an upgrade, if any
	mbox     broker.Mailbox // where other nodes relay this session's requests; nil without
	lastPing uint64         // wheel tick of the last ping (of the handshake before the first)
	idx      int32          // position in ep.engines
	flags    uint8
}

// waiter is a poll waiting for an answer: a request held on the engine's
// own loop (c, with its Origin for CORS), or one relayed from another loop
// or node (reply sends the relay reply back).
type waiter struct {
	c      *conn.Conn
	origin string
	reply  func([]byte)
}

// ok reports whether a poll is waiting.
func (w *waiter) ok() bool { return w.c != nil || w.reply != nil }

// answer answers the poll with payload (valid only during the call).
func (w waiter) answer(ep *endpoint, payload []byte) {
	if w.c != nil {
		ep.respondPayload(w.c, w.origin, payload)
		w.c.RequestDone() // nothing if the poll was not held (answered inside Serve)
		return
	}
	w.reply(codec.AppendEIORelayPayload(make([]byte, 0, len(payload)+1), payload))
}

// fail answers the poll with Engine.IO error code code.
func (w waiter) fail(ep *endpoint, code int) {
	if w.c != nil {
		ep.respondError(w.c, w.origin, code)
		w.c.RequestDone()
		return
	}
	w.reply(codec.AppendEIORelayError(nil, code))
}

// outPacket is one Engine.IO packet waiting for a poll.
type outPacket struct {
	m *topics.Message // a push, retained until it is sent; nil for any other packet
	b []byte          // any other packet
}

// engine flags.
const (
	eAwaitPong uint8 = 1 << iota // a ping is unanswered
	eReady                       // in ep.ready: a waiting poll has packets to take, or the queue overflowed
	eSlow                        // the queue overflowed: close as a slow consumer at the next flush
	eUpgrading                   // a WebSocket probed: polls are answered at once, with a noop if need be
	eClosing                     // closed: only the final packets are left, for one more poll
	eGone                        // finished: unregistered, everything released
	eAttaching                   // moving here from another loop (upgrade.go): pushes wait in the queue
)

// maxPollAnswer bounds the payload of one answer to a poll: packets beyond
// it wait for the next poll (at least one packet goes each time). It keeps
// a relayed answer well under a NATS message's limit (1 MiB by default).
const maxPollAnswer = 256 << 10

// Deliver implements topics.Subscriber: the push is queued for the next
// poll (a reference to the shared message), or handed to the WebSocket the
// client upgraded to. A queue over the outbound cap makes the session a
// slow consumer, closed at the next flush (Deliver must not change
// subscriptions).
func (e *engine) Deliver(m *topics.Message) {
	if e.ws != nil {
		e.ws.Deliver(m)
		return
	}
	if e.flags&(eClosing|eGone|eSlow) != 0 {
		e.ep.loop.Metrics().DroppedClosing.Add(1)
		return
	}
	if !e.reserve(len(m.Bytes(TextFormat))) {
		return
	}
	m.Retain()
	e.out = append(e.out, outPacket{m: m})
	e.markReady()
}

// HistoryLost implements topics.LossNotifier: a durable topic's live
// stream lost messages the history no longer holds. As for any connection
// (conn.Conn.HistoryLost), the session ends with 4003, in the reconnect
// range: Engine.IO's close packet over polling, after which
// socket.io-client reconnects.
func (e *engine) HistoryLost(x *topics.Subscription, reason string) {
	if e.ws != nil {
		e.ws.HistoryLost(x, reason)
		return
	}
	if e.Open() {
		e.ep.loop.Metrics().HistoryLost.Add(1)
		e.Close(codec.StatusHistoryLost, "history lost: "+reason)
	}
}

// Send implements session.Peer: the packet is queued for the next poll (a
// copy), or written to the WebSocket the client upgraded to.
func (e *engine) Send(p []byte) bool {
	if e.ws != nil {
		return e.ws.Send(p)
	}
	return e.queue(append([]byte(nil), p...))
}

// queue adds packet b, which the engine may keep, for the next poll. It
// reports whether the session is still open.
func (e *engine) queue(b []byte) bool {
	if e.flags&(eClosing|eGone|eSlow) != 0 || !e.reserve(len(b)) {
		return false
	}
	e.out = append(e.out, outPacket{b: b})
	e.markReady()
	return true
}

// reserve accounts n more bytes of queued packets. Past the connection
// outbound cap (conn.Config.MaxOutbound) the client is not polling fast
// enough: the session is marked a slow consumer and reserve fails.
func (e *engine) reserve(n int) bool {
	if e.outBytes+n+1 > e.ep.maxOut && len(e.out) > 0 {
		e.flags |= eSlow
		e.markReady()
		return false
	}
	e.outBytes += n + 1
	return true
}

// Close implements session.Peer: the session ends with code, which over
// polling is Engine.IO's close packet, after a DISCONNECT when the client
// must not reconnect (as over WebSocket, wsConn.Close); on an upgraded
// session, the WebSocket's close.
func (e *engine) Close(code codec.StatusCode, reason string) {
	if e.ws != nil {
		e.ws.Close(code, reason)
		return
	}
	if e.flags&(eClosing|eGone) != 0 {
		return
	}
	e.shut(e.sock.flags&flagConnected != 0 && !code.Reconnect(), false)
}

// Open implements session.Peer.
func (e *engine) Open() bool {
	if e.ws != nil {
		return e.ws.Open()
	}
	return e.flags&(eClosing|eGone|eSlow) == 0
}

// shut closes a polling session: its subscriptions end now, and the final
// packets (a DISCONNECT if disconnect, then Engine.IO's close) are queued
// behind what is there (dropped first for a slow consumer, whose queue is
// the trouble), so a client that reads its backlog still learns why; they
// wait for the client's polls up to the close timeout, then the session
// is gone and its sid unknown.
func (e *engine) shut(disconnect, drop bool) {
	h := e.ep.h
	if !disconnect {
		h.keep(&e.sock)
	}
	e.sock.sess.Closed(h.env)
	h.forget(&e.sock)
	e.sock.flags &^= flagConnected
	if drop {
		e.dropOut()
	}
	e.flags &^= eSlow | eAwaitPong
	if disconnect {
		e.out = append(e.out, outPacket{b: disconnectPacket})
	}
	e.out = append(e.out, outPacket{b: closePacket})
	e.flags |= eClosing
	e.sock.deadline = e.ep.loop.Now() + e.ep.closeTicks
	e.arm()
	e.markReady()
}

// dropOut releases every queued packet.
func (e *engine) dropOut() {
	for i := range e.out {
		if m := e.out[i].m; m != nil {
			m.Release()
		}
		e.out[i] = outPacket{}
	}
	e.out = e.out[:0]
	if cap(e.out) > 64 {
		e.out = nil
	}
	e.outBytes = 0
}

// markReady queues the engine for the endpoint's next flush when a poll is
// waiting (or the queue overflowed): packets are not written from inside a
// drain of pushes, and several that arrive together go in one answer.
func (e *engine) markReady() {
	if e.flags&eReady == 0 && (e.wait.ok() || e.flags&eSlow != 0) {
		e.flags |= eReady
		e.ep.ready = append(e.ep.ready, e)
	}
}

// flush answers the waiting poll with what is queued, and closes a session
// whose queue overflowed. It runs from the endpoint's flush.
func (e *engine) flush() {
	e.flags &^= eReady
	if e.flags&eAttaching != 0 {
		return // finishMove writes the queue, or closes for an overflow
	}
	if e.flags&eSlow != 0 && e.flags&(eClosing|eGone) == 0 {
		e.ep.loop.Metrics().SlowConsumers.Add(1)
		e.flags &^= eSlow
		e.shut(false, true) // 4000 is in the reconnect range: no DISCONNECT
	}
	if len(e.out) > 0 || e.flags&eUpgrading != 0 {
		e.answer()
	}
}

// answer answers the waiting poll, if any, with the next payload.
func (e *engine) answer() {
	if !e.wait.ok() {
		return
	}
	w := e.wait
	e.wait = waiter{}
	w.answer(e.ep, e.take())
	if e.flags&eClosing != 0 && len(e.out) == 0 {
		e.finish() // the final packets are out
	}
}

// take removes the next payload from the queue, at most maxPollAnswer
// bytes but at least one packet, and returns it, built in the endpoint's
// buffer (valid until the endpoint's next answer). An empty queue gives a
// noop, which lets a poll return (an upgrade, a drain).
func (e *engine) take() []byte {
	buf := e.ep.payload[:0]
	n := 0
	for n < len(e.out) {
		p := e.out[n].b
		if m := e.out[n].m; m != nil {
			p = m.Bytes(TextFormat)
		}
		if n > 0 && len(buf)+1+len(p) > maxPollAnswer {
			break
		}
		if n > 0 {
			buf = append(buf, codec.EIOSeparator)
		}
		buf = append(buf, p...)
		e.outBytes -= len(p) + 1
		if m := e.out[n].m; m != nil {
			m.Release()
		}
		e.out[n] = outPacket{}
		n++
		if unsafe.SliceData(p) == unsafe.SliceData(disconnectPacket) {
			// The close packet goes in the next answer: socket.io-client
			// handles a Socket.IO packet a tick after Engine.IO's, so a
			// close in the same payload would win, and it would take the
			// end for a transport close and reconnect.
			break
		}
	}
	if n == 0 {
		buf = append(buf, noopPacket...)
	}
	e.out = e.out[:copy(e.out, e.out[n:])]
	if len(e.out) == 0 && cap(e.out) > 64 {
		e.out = nil
	}
	e.ep.payload = buf[:0]
	return buf
}

// poll takes a poll (GET), held on this loop or relayed: answered at once
// when packets wait (or the session is closing or upgrading), else kept
// waiting until some come. A second poll while one waits breaks
// Engine.IO's rule of one poll at a time: it gets 400 and the session
// ends, as with the reference server.
func (e *engine) poll(w waiter) {
	switch {
	case e.flags&eGone != 0:
		w.fail(e.ep, codec.EIOCodeUnknownSID)
	case e.wait.ok():
		w.fail(e.ep, codec.EIOCodeBadRequest)
		e.overlap()
	case len(e.out) > 0 || e.flags&(eUpgrading|eClosing) != 0:
		w.answer(e.ep, e.take())
		if e.flags&eClosing != 0 && len(e.out) == 0 {
			e.finish()
		}
	default:
		if w.c != nil {
			w.origin = strings.Clone(w.origin)
			w.c.Hold((*heldPoll)(e))
		}
		e.wait = w
	}
}

// pollDropped ends a polling session whose client dropped a poll relayed
// to it from another loop or node (fwd.Closed): the answer, if one was
// sent, went nowhere, so the session must not go on as if it had been
// read. As heldPoll.Closed for a poll held here. A session on its way to
// WebSocket (or on it) is left alone: its paused poll gets at most a noop.
func (e *engine) pollDropped() {
	if e.ws != nil || e.flags&(eClosing|eGone|eUpgrading) != 0 {
		return
	}
	if e.wait.reply != nil {
		e.wait = waiter{}
	}
	e.Close(codec.StatusAbnormal, "poll connection closed")
}

// overlap ends a session whose client polled twice at once: Engine.IO's
// close packet answers the poll that was waiting, without a DISCONNECT
// (the reference server closes such a session as a transport error, which
// socket.io-client reconnects after).
func (e *engine) overlap() {
	e.ep.loop.Metrics().ProtocolErrors.Add(1)
	if e.flags&(eClosing|eGone) == 0 {
		e.shut(false, false)
	}
}

// post takes a POST's payload: each packet is handled in order. It returns
// -1 when the POST is answered "ok", else the Engine.IO error code to
// answer (a session that is no longer there). A payload that breaks the
// protocol is taken too, as the reference server takes it: the session
// ends, and the client's next poll gets the DISCONNECT and Engine.IO's
// close, which socket.io-client takes as "io server disconnect" and does
// not reconnect after, as over WebSocket. (A 400 here would race with that
// poll, and make socket.io-client reconnect and perhaps send the same
// packet again.)
func (e *engine) post(body []byte) int {
	if e.flags&(eClosing|eGone) != 0 {
		return codec.EIOCodeUnknownSID
	}
	h := e.ep.h
	e.flags &^= eAwaitPong // anything from the client answers the ping
	for rest := body; e.Open(); {
		pkt, tail, more := codec.NextEIOPacket(rest)
		allowed := e.sock.sess.Allow(h.env, e)
		if !e.Open() {
			break // the budget's strikes closed it
		}
		e.packet(pkt, allowed)
		if !more {
			break
		}
		rest = tail
	}
	return -1
}

// packet handles one Engine.IO packet of a POST.
func (e *engine) packet(pkt []byte, allowed bool) {
	h := e.ep.h
	typ, _, err := codec.ParseEIOPacket(pkt)
	switch {
	case err == codec.ErrEIOBinary:
		// An attachment of a binary event, which binaryEvent refused: dropped.
	case err != nil:
		h.protocolError(e, "malformed Engine.IO packet")
	case typ == codec.EIOMessage:
		if h.message(e, &e.sock, pkt, allowed) {
			e.arm() // the credentials' expiry replaces the connect deadline
		}
	case typ == codec.EIOPong, typ == codec.EIONoop:
	case typ == codec.EIOClose:
		h.closeTransport(e)
	case typ == codec.EIOPing:
		h.protocolError(e, "invalid heartbeat direction")
	default:
		h.protocolError(e, "unexpected Engine.IO packet "+typ.String())
	}
}

// engineOfTimer finds the engine whose timer n is.
func engineOfTimer(n *wheel.Node[engine]) *engine {
	return (*engine)(unsafe.Pointer(uintptr(unsafe.Pointer(n)) - unsafe.Offsetof(engine{}.timer)))
}

// arm schedules the engine's timer for its next step: the end of the
// close linger while closing; otherwise the next ping (or the pong
// deadline after one), or the connect deadline or the credentials' expiry
// if that comes first.
func (e *engine) arm() {
	ep := e.ep
	if e.flags&eClosing != 0 {
		ep.wheel.ScheduleAt(&e.timer, e.sock.deadline)
		return
	}
	at := e.lastPing + ep.pingTicks
	if e.flags&eAwaitPong != 0 {
		at = e.lastPing + ep.pongTicks
	}
	if exp := ep.h.expiry(&e.sock); exp != 0 && exp < at {
		at = exp
	}
	ep.wheel.ScheduleAt(&e.timer, at)
}

// fire runs when the engine's timer comes due: the close linger ends, the
// connect deadline or the credentials' expiry passed, the pong did not
// come (close 4001), or the next ping is due.
func (e *engine) fire() {
	ep := e.ep
	now := ep.loop.Now()
	switch {
	case e.flags&eGone != 0:
		return
	case e.flags&eClosing != 0:
		if now >= e.sock.deadline {
			e.finish()
		} else {
			e.arm()
		}
		return
	}
	if exp := ep.h.expiry(&e.sock); exp != 0 && now >= exp {
		ep.h.expired(e, &e.sock)
		if e.Open() {
			e.arm() // the handler kept the session and moved its expiry
		}
		return
	}
	if e.flags&eAwaitPong != 0 {
		if now >= e.lastPing+ep.pongTicks {
			ep.loop.Metrics().HeartbeatTimeouts.Add(1)
			e.Close(codec.StatusHeartbeatTimeout, "no pong")
			return
		}
	} else if now >= e.lastPing+ep.pingTicks {
		ep.loop.Metrics().PingsSent.Add(1)
		e.lastPing = now
		e.flags |= eAwaitPong
		if !e.queue(pingPacket) {
			return
		}
	}
	e.arm()
}

// finish ends the session for good: its timer stops, its sid is
// unregistered (so later requests for it get "Session ID unknown"), its
// mailbox closes, and a poll that still waits gets Engine.IO's close
// packet.
func (e *engine) finish() {
	if e.flags&eGone != 0 {
		return
	}
	ep := e.ep
	e.flags = eGone
	ep.wheel.Stop(&e.timer)
	ep.h.keep(&e.sock) // an upgraded session whose WebSocket closed
	e.sock.sess.Closed(ep.h.env)
	ep.h.forget(&e.sock)
	e.dropOut()
	e.unregister()
	if e.wait.ok() {
		w := e.wait
		e.wait = waiter{}
		w.answer(ep, closePacket)
	}
	ep.removeEngine(e)
}

// unregister makes the sid unknown to other loops and nodes: out of the
// node's registry, and the mailbox closed. Idempotent.
func (e *engine) unregister() {
	e.ep.shared.sessions.CompareAndDelete(e.sid, e)
	if e.mbox != nil {
		_ = e.mbox.Close()
		e.mbox = nil
	}
}

// heldPoll is an engine in its role as the conn.Proto of the poll it
// holds (conn.Conn.Hold): the connection tells it when the client left or
// the server stops. A conversion of the engine, not an allocation.
type heldPoll engine

// Feed implements conn.Proto; a held request is never fed.
func (hp *heldPoll) Feed(*conn.Conn, []byte) int { return 0 }

// Timer implements conn.Proto; the held poll's connection has no timer:
// the engine's heartbeat answers it within a ping interval.
func (hp *heldPoll) Timer(*conn.Conn) {}

// Send implements conn.Proto; nothing is sent on a held poll but its
// answer.
func (hp *heldPoll) Send(*conn.Conn, []byte) bool { return false }

// Close implements conn.Proto: the server is stopping (Loop.CloseAll):
// the session ends with code, which answers the poll.
func (hp *heldPoll) Close(_ *conn.Conn, code codec.StatusCode, reason string) {
	e := (*engine)(hp)
	e.Close(code, reason)
	e.ep.flushReady()
}

// SlowConsumer implements conn.Proto: a held poll has written nothing.
func (hp *heldPoll) SlowConsumer(c *conn.Conn) { c.CloseTransport() }

// Closed implements conn.Proto: the client left while its poll was held.
// The session ends, as with the reference server ("poll connection closed
// prematurely": a client that still wants the session polls again, it does
// not drop its poll), without a DISCONNECT, so socket.io-client reconnects
// and may recover the session; ending it now rather than at the pong
// timeout is what lets the recovery find the state kept.
func (hp *heldPoll) Closed(c *conn.Conn) {
	e := (*engine)(hp)
	if e.wait.c == c {
		e.wait = waiter{}
		e.Close(codec.StatusAbnormal, "poll connection closed")
	}
}
