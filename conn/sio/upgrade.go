package sio

import (
	"slices"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/topics"
)

// The upgrade from polling to WebSocket (engine.io-protocol "Upgrade"):
//
//	client                                   pushd
//	GET ?EIO=4&transport=websocket&sid=S ──► 101 (the probe; polling goes on)
//	"2probe" ───────────────────────────────► "3probe"; the session answers its
//	                                           held poll with a noop, and every
//	                                           poll from now on at once
//	(pauses polling: waits for its poll)
//	"5" ────────────────────────────────────► the session moves onto the WebSocket:
//	                                           what it had queued goes out as
//	                                           frames, pushes follow in WSFormat,
//	                                           the WebSocket's heartbeat takes over
//
// A WebSocket and a session must belong to the same event loop. When the
// upgrade reaches the session's own loop, the session is attached as
// above (upgradeTo). When it reaches another loop of the node, the session
// moves to the WebSocket's loop at the "5" (the client has paused polling
// then), in four hops between the loops, without a gap or a duplicate:
//
//	owner: detach   the session's identity, subscriptions, state
//	new:   attach   a new engine subscribes the same topics on its loop;
//	                its pushes wait in its queue
//	owner: release  the loop's shard settles (every message dispatched
//	                before the attach is delivered), then the old engine
//	                unsubscribes and hands over its queue
//	new:   finish   the old queue goes out, then the new one without the
//	                messages both had (the same *topics.Message reached both
//	                loops while both were subscribed), then live
//
// Since the new loop subscribes before the old one unsubscribes, the
// topics' interest never drops in between, so the bus keeps sending. When
// the upgrade reaches another node, it is refused (400 "Session ID
// unknown", as that node does not know the sid): socket.io-client then
// keeps polling, which works through the relay. Moving a session between
// nodes would lose or repeat pushes at the seam (each node numbers and
// routes its own), and a deployment that wants WebSocket behind a load
// balancer without sticky sessions can give socket.io-client
// transports: ["websocket"].

// upConn is a WebSocket that upgrades a polling session: the probe until
// the client's upgrade packet, then the session's transport. It implements
// conn.Proto through the embedded ws.Conn, except Close.
type upConn struct {
	ws.Conn
	eng      *engine  // the session: of this loop, or of another (touched only there, through Execute)
	pend     [][]byte // packets received while the session moves here
	pendLen  int
	deadline uint64 // wheel tick by which the upgrade must be done
	flags    uint8
}

// upConn flags.
const (
	uProbed   uint8 = 1 << iota // "2probe" came
	uMoving                     // "5" came; the session moves here from another loop
	uUpgraded                   // the session is on this connection
)

// Bounds of the packets a client may send while its session moves here
// (socket.io-client flushes what it buffered right after its "5").
const (
	maxPendPackets = 64
	maxPendBytes   = 256 << 10
)

// Close implements conn.Proto: as wsConn.Close once the session is here (a
// DISCONNECT first when the client must not reconnect); before that only
// the probe closes, and the session stays on polling.
func (u *upConn) Close(c *conn.Conn, code codec.StatusCode, reason string) {
	if u.flags&uUpgraded != 0 && c.State() == conn.StateOpen && u.eng.sock.flags&flagConnected != 0 && !code.Reconnect() {
		c.Send(disconnectPacket)
		u.eng.sock.flags &^= flagConnected // the server left: nothing to recover
	}
	u.Conn.Close(c, code, reason)
}

// on runs fn on the loop of target: at once when it is e's own, else
// through Execute. It reports false when that loop has stopped.
func (e *endpoint) on(target *endpoint, fn func()) bool {
	if target == e {
		fn()
		return true
	}
	return target.loop.Execute(fn) == nil
}

// upgrade serves a WebSocket request with a sid: the probe of an upgrade
// from polling. The session must be a polling session of this node; one of
// this loop must also not be closing or probed by another WebSocket
// already (a session of another loop is checked at the probe, on its own
// loop).
func (e *endpoint) upgrade(c *conn.Conn, req *codec.HTTPRequest, body []byte, sid string) *codec.HTTPError {
	v, ok := e.shared.sessions.Load(sid)
	if !ok {
		e.shared.metrics.UpgradesRefused.Add(1)
		return &codec.HandshakeError{Status: 400, Reason: codec.EIOErrUnknownSID}
	}
	eng := v.(*engine)
	if eng.ep == e && (eng.flags&(eClosing|eGone) != 0 || eng.probe != nil || eng.ws != nil) {
		e.shared.metrics.UpgradesRefused.Add(1)
		return &codec.HandshakeError{Status: 400, Reason: codec.EIOErrBadRequest}
	}
	e.upFor = eng
	herr := e.up.Serve(c, req, body)
	e.upFor = nil
	return herr
}

// upHandler runs the WebSocket of an upgrade: the probe, then the
// session's packets. It implements ws.Handler and ws.Heartbeater.
type upHandler struct{ e *endpoint }

// Open implements ws.Handler: the probe waits for "2probe", then "5",
// within the upgrade timeout. A session of this loop is claimed now, so a
// second probe is refused before its 101.
func (h upHandler) Open(c *conn.Conn, _ *codec.HTTPRequest, _ session.Identity) {
	u := c.Proto().(*upConn)
	u.eng = h.e.upFor
	if u.eng.ep == h.e {
		u.eng.probe = c
	}
	u.deadline = c.Loop().Now() + h.e.upgradeTicks
	u.Rearm(c)
}

// Message implements ws.Handler: before the upgrade, the probe ("2probe",
// answered "3probe") and the upgrade packet "5"; anything else closes the
// probe (as the reference server does) and the session stays on polling.
// While the session moves here, packets wait. After it, the session's
// packets, as on any Socket.IO WebSocket.
func (h upHandler) Message(c *conn.Conn, op ws.OpCode, p []byte) {
	u := c.Proto().(*upConn)
	switch {
	case u.flags&uUpgraded != 0:
		h.packet(c, u, op, p)
		return
	case op != ws.OpText:
		return
	case u.flags&uMoving != 0:
		if len(u.pend) >= maxPendPackets || u.pendLen+len(p) > maxPendBytes {
			c.Close(codec.StatusPolicyViolation, "too many packets during the upgrade")
			return
		}
		u.pend = append(u.pend, slices.Clone(p))
		u.pendLen += len(p)
		return
	}
	typ, data, err := codec.ParseEIOPacket(p)
	switch {
	case err == nil && typ == codec.EIOPing && string(data) == codec.EIOProbe && u.flags&uProbed == 0:
		u.flags |= uProbed
		h.probe(c, u.eng)
	case err == nil && typ == codec.EIOUpgrade && u.flags&uProbed != 0:
		if u.eng.ep != h.e {
			u.flags |= uMoving
			h.e.move(c, u.eng)
			return
		}
		if !u.eng.upgradeTo(c) {
			c.Close(codec.StatusPolicyViolation, "upgrade refused")
			return
		}
		h.e.shared.metrics.Upgrades.Add(1)
		u.flags |= uUpgraded
		u.BeatFrom(u.eng.lastPing) // the pings keep polling's cadence
		u.Rearm(c)                 // the session's expiry replaces the upgrade deadline
	default:
		c.Close(codec.StatusProtocolError, "unexpected packet during upgrade")
	}
}

// packet handles a packet of the session once it is on the WebSocket c.
func (h upHandler) packet(c *conn.Conn, u *upConn, op ws.OpCode, p []byte) {
	eng := u.eng
	allowed := eng.sock.sess.Allow(h.e.h.env, eng)
	if eng.Open() && op == ws.OpText && h.e.h.wsPacket(eng, &eng.sock, p, allowed) {
		u.Rearm(c)
	}
}

// probe answers "2probe" once the session, on its own loop, has agreed:
// it must still be polling and not probed by another WebSocket. The
// session then answers its polls at once (a noop if need be), so the
// client can pause polling.
func (h upHandler) probe(c *conn.Conn, eng *engine) {
	mine, owner := h.e, eng.ep
	ok := mine.on(owner, func() {
		agreed := eng.probed(c)
		owner.flushReady() // the noop for a held poll
		owner.on(mine, func() {
			switch {
			case c.State() != conn.StateOpen:
			case agreed:
				c.Send(probePong)
			default:
				c.Close(codec.StatusPolicyViolation, "upgrade refused")
			}
		})
	})
	if !ok {
		c.Close(codec.StatusGoingAway, "server shutting down")
	}
}

// Expiry implements ws.Handler: the upgrade deadline, then the session's.
func (h upHandler) Expiry(c *conn.Conn) uint64 {
	u := c.Proto().(*upConn)
	if u.flags&uUpgraded == 0 {
		return u.deadline
	}
	return h.e.h.expiry(&u.eng.sock)
}

// Expired implements ws.Handler: the upgrade did not complete in time (the
// probe closes; the session stays on polling), or the session's expiry.
func (h upHandler) Expired(c *conn.Conn) {
	u := c.Proto().(*upConn)
	if u.flags&uUpgraded == 0 {
		c.Close(codec.StatusPolicyViolation, "upgrade timeout")
		return
	}
	h.e.h.expired(u.eng, &u.eng.sock)
}

// Heartbeat implements ws.Heartbeater: Engine.IO's ping once the session
// is here; the probe sends none and waits for no pong (the session pings
// over polling, and the upgrade timeout bounds the probe).
func (h upHandler) Heartbeat(c *conn.Conn) bool {
	u := c.Proto().(*upConn)
	if u.flags&uUpgraded == 0 {
		u.SkipBeat()
		return true
	}
	return c.Send(pingPacket)
}

// Ping implements ws.Handler: WebSocket pings share the session's command
// budget once it is here.
func (h upHandler) Ping(c *conn.Conn) bool {
	u := c.Proto().(*upConn)
	if u.flags&uUpgraded == 0 {
		return true
	}
	return u.eng.sock.sess.Allow(h.e.h.env, u.eng)
}

// Closed implements ws.Handler: the session ends with its WebSocket (or
// with the WebSocket it was moving to); a probe that closes leaves the
// session on polling.
func (h upHandler) Closed(c *conn.Conn) {
	eng := c.Proto().(*upConn).eng
	switch {
	case eng == nil:
	case eng.ep != h.e:
		_ = eng.ep.loop.Execute(func() { eng.probeGone(c) })
	case eng.ws == c, eng.flags&eAttaching != 0 && eng.probe == c:
		eng.finish()
	default:
		eng.probeGone(c)
	}
}

// probed records, on the session's loop, that the WebSocket c probes an
// upgrade: polls are answered at once from now on (a noop if nothing is
// queued), so the client can pause polling. It reports whether the
// session can upgrade: it is polling, and no other WebSocket probes it.
func (eng *engine) probed(c *conn.Conn) bool {
	if eng.flags&(eClosing|eGone) != 0 || eng.ws != nil || eng.probe != nil && eng.probe != c {
		return false
	}
	eng.probe = c
	eng.flags |= eUpgrading
	eng.markReady()
	return true
}

// probeGone records that the WebSocket c, which probed, closed before the
// upgrade: the session stays on polling, and its polls are held again.
func (eng *engine) probeGone(c *conn.Conn) {
	if eng.probe == c {
		eng.probe = nil
		eng.flags &^= eUpgrading
	}
}

// upgradeTo moves the session onto the WebSocket c of its own loop: a poll
// still waiting gets a noop, the queued packets go out as frames, the
// session leaves the polling registry (a WebSocket session needs no
// mailbox) and its timer stops (the WebSocket's heartbeat takes over). It
// reports whether the session could upgrade.
func (eng *engine) upgradeTo(c *conn.Conn) bool {
	out, ok := eng.release(c)
	if !ok {
		return false
	}
	eng.ws = c
	sendOut(c, out, nil)
	return c.Open()
}

// release ends the session's life on polling for the WebSocket c that
// probed it, and returns what it had queued: a poll still waiting gets a
// noop, its timer stops, and it leaves the polling registry and its
// mailbox. It reports false, and changes nothing, when c is not the
// session's probe any more or the session is closing.
func (eng *engine) release(c *conn.Conn) ([]outPacket, bool) {
	if eng.probe != c || eng.flags&(eClosing|eGone) != 0 {
		return nil, false
	}
	ep := eng.ep
	eng.probe = nil
	eng.flags &^= eUpgrading | eAwaitPong | eReady
	if eng.wait.ok() {
		w := eng.wait
		eng.wait = waiter{}
		w.answer(ep, noopPacket)
	}
	ep.wheel.Stop(&eng.timer)
	eng.unregister()
	ep.removeEngine(eng)
	out := eng.out
	eng.out, eng.outBytes = nil, 0
	return out, true
}

// sendOut writes queued packets as frames on c and releases them, leaving
// out the pushes in skip (those already sent).
func sendOut(c *conn.Conn, out []outPacket, skip map[*topics.Message]bool) {
	for i, p := range out {
		b := p.b
		if p.m != nil {
			b = p.m.Bytes(TextFormat)
		}
		if p.m == nil || !skip[p.m] {
			c.Send(b) // a failed write closes c: the rest goes nowhere, and is released
		}
		if p.m != nil {
			p.m.Release()
		}
		out[i] = outPacket{}
	}
}

// moveState is what a session takes along to another loop.
type moveState struct {
	aux         any // socket.aux: the opening request's identity, or the pid
	ident       session.Identity
	topics      []string
	connected   bool
	connectLeft uint64 // ticks left to the connect deadline, before the CONNECT
	pingAgo     uint64 // ticks since the session's last ping
}

// move moves the session eng of another loop here, onto the WebSocket c
// that sent "5" (see the package's upgrade notes): detach on the owner,
// attach here, release on the owner, finish here.
func (e *endpoint) move(c *conn.Conn, eng *engine) {
	owner := eng.ep
	err := owner.loop.Execute(func() {
		st, ok := eng.detach(c)
		owner.on(e, func() { e.attach(c, eng, st, ok) })
	})
	if err != nil {
		c.Close(codec.StatusGoingAway, "server shutting down")
	}
}

// detach takes, on the session's loop, what a move needs. It reports false
// when the session cannot move (it closed, or c is not its probe).
func (eng *engine) detach(c *conn.Conn) (moveState, bool) {
	if eng.probe != c || eng.flags&(eClosing|eGone) != 0 {
		return moveState{}, false
	}
	st := moveState{
		aux:       eng.sock.aux,
		ident:     eng.sock.sess.Identity(),
		topics:    eng.sock.sess.Topics(),
		connected: eng.sock.flags&flagConnected != 0,
	}
	now := eng.ep.loop.Now()
	if !st.connected && eng.sock.deadline > now {
		st.connectLeft = eng.sock.deadline - now
	}
	if now > eng.lastPing {
		st.pingAgo = now - eng.lastPing
	}
	// Answers still to come would be sent on this loop, which the session
	// leaves: send them now, ahead of the queue handed over.
	eng.ep.h.answerHeld(eng, &eng.sock)
	return st, true
}

// attach builds, on the WebSocket's loop, the engine the session moves
// into, subscribed to its topics (their pushes wait in its queue), and
// asks the owner to release the old one.
func (e *endpoint) attach(c *conn.Conn, old *engine, st moveState, ok bool) {
	if !ok || c.State() != conn.StateOpen {
		if c.State() == conn.StateOpen {
			c.Close(codec.StatusPolicyViolation, "upgrade refused")
		}
		return
	}
	eng := &engine{ep: e, sid: old.sid, idx: -1, probe: c, flags: eAttaching}
	if now := e.loop.Now(); now > st.pingAgo {
		eng.lastPing = now - st.pingAgo
	}
	eng.sock.aux = st.aux
	if st.connected {
		eng.sock.flags |= flagConnected
	} else {
		eng.sock.deadline = e.loop.Now() + st.connectLeft
	}
	eng.sock.sess.Adopt(e.h.env, eng, st.ident, st.topics)
	c.Proto().(*upConn).eng = eng
	owner := old.ep
	err := owner.loop.Execute(func() {
		// Every message dispatched before the new loop subscribed is in
		// this loop's shard (topics queues a message on every shard under
		// the lock a new shard registers with): deliver it to the old
		// engine now, so it is in the queue handed over, even if a drain
		// handed part of its backlog back to the loop.
		if sh := owner.loop.Shard(); sh != nil {
			sh.Settle()
		}
		out, alive := old.release(c)
		if alive {
			old.flags = eGone
			old.sock.sess.Closed(owner.h.env)
			owner.h.forget(&old.sock)
		}
		owner.on(e, func() { eng.finishMove(c, out, alive) })
	})
	if err != nil {
		eng.finish()
		c.Close(codec.StatusGoingAway, "server shutting down")
	}
}

// finishMove completes a move on the WebSocket's loop: the old queue goes
// out, then the new one without the pushes both had, and the session is
// live on c; then the packets the client sent meanwhile are handled. If c
// closed, the session closed on its old loop, or the new queue overflowed,
// the move is undone and the WebSocket closed (socket.io-client
// reconnects).
func (eng *engine) finishMove(c *conn.Conn, out []outPacket, alive bool) {
	ep := eng.ep
	if !alive || eng.flags&(eGone|eSlow|eClosing) != 0 || c.State() != conn.StateOpen {
		sendOut(c, out, nil) // only releases: c is closed or closes now
		reason, code := "session closed", codec.StatusGoingAway
		if eng.flags&eSlow != 0 {
			reason, code = "slow consumer", codec.StatusSlowConsumer
		}
		if !alive {
			eng.sock.flags &^= flagConnected // the old engine ended the session, and kept what it left
		}
		eng.finish()
		c.Close(code, reason)
		return
	}
	var seen map[*topics.Message]bool
	if len(out) > 0 && len(eng.out) > 0 {
		seen = make(map[*topics.Message]bool, len(out))
		for _, p := range out {
			if p.m != nil {
				seen[p.m] = true
			}
		}
	}
	u := c.Proto().(*upConn)
	eng.ws, eng.probe = c, nil
	eng.flags &^= eAttaching | eReady
	mine := eng.out
	eng.out, eng.outBytes = nil, 0
	sendOut(c, out, nil)
	sendOut(c, mine, seen)
	m := ep.shared.metrics
	m.Upgrades.Add(1)
	m.UpgradesMoved.Add(1)
	u.flags = u.flags&^uMoving | uUpgraded
	u.BeatFrom(eng.lastPing)
	u.Rearm(c)
	pend := u.pend
	u.pend, u.pendLen = nil, 0
	h := upHandler{ep}
	for _, p := range pend {
		if c.State() != conn.StateOpen {
			break
		}
		h.packet(c, u, ws.OpText, p)
	}
}
