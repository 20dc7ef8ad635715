package sio

import (
	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/ws"
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
// The WebSocket and the session must be on the same event loop, since
// both belong to it. When the upgrade reaches the session's own loop, the
// session is attached as above. When it reaches another node, the request
// is refused (400 "Session ID unknown", as the node does not know the sid):
// socket.io-client then keeps polling, which works through the relay.

// upConn is a WebSocket that upgrades a polling session: the probe until
// the client's upgrade packet, then the session's transport. It implements
// conn.Proto through the embedded ws.Conn, except Close.
type upConn struct {
	ws.Conn
	eng      *engine
	deadline uint64 // wheel tick by which the upgrade packet must come
	flags    uint8
}

// upConn flags.
const (
	uProbed   uint8 = 1 << iota // the probe was answered
	uUpgraded                   // the session moved onto this connection
)

// Close implements conn.Proto: as wsConn.Close once the session moved
// here (a DISCONNECT first when the client must not reconnect); before
// that only the probe closes, and the session stays on polling.
func (u *upConn) Close(c *conn.Conn, code codec.StatusCode, reason string) {
	if u.flags&uUpgraded != 0 && c.State() == conn.StateOpen && u.eng.sock.flags&flagConnected != 0 && !code.Reconnect() {
		c.Send(disconnectPacket)
	}
	u.Conn.Close(c, code, reason)
}

// upgrade serves a WebSocket request with a sid: the probe of an upgrade
// from polling. The session must be a polling session of this loop, not
// closing and not probed by another WebSocket already.
func (e *endpoint) upgrade(c *conn.Conn, req *codec.HTTPRequest, body []byte, sid string) *codec.HTTPError {
	v, ok := e.shared.sessions.Load(sid)
	if !ok {
		e.shared.metrics.UpgradesRefused.Add(1)
		return &codec.HandshakeError{Status: 400, Reason: codec.EIOErrUnknownSID}
	}
	eng := v.(*engine)
	if eng.ep != e || eng.flags&(eClosing|eGone) != 0 || eng.probe != nil || eng.ws != nil {
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
// within the upgrade timeout.
func (h upHandler) Open(c *conn.Conn, _ *codec.HTTPRequest, _ session.Identity) {
	u := c.Proto().(*upConn)
	u.eng = h.e.upFor
	u.eng.probe = c
	u.deadline = c.Loop().Now() + h.e.upgradeTicks
	u.Rearm(c)
}

// Message implements ws.Handler: before the upgrade, the probe ("2probe",
// answered "3probe") and the upgrade packet "5"; anything else closes the
// probe (as the reference server does) and the session stays on polling.
// After it, the session's packets, as on any Socket.IO WebSocket.
func (h upHandler) Message(c *conn.Conn, op ws.OpCode, p []byte) {
	u := c.Proto().(*upConn)
	eng := u.eng
	if u.flags&uUpgraded != 0 {
		allowed := eng.sock.sess.Allow(h.e.h.env, eng)
		if eng.Open() && op == ws.OpText && h.e.h.wsPacket(eng, &eng.sock, p, allowed) {
			u.Rearm(c)
		}
		return
	}
	if op != ws.OpText {
		return
	}
	typ, data, err := codec.ParseEIOPacket(p)
	switch {
	case err == nil && typ == codec.EIOPing && string(data) == codec.EIOProbe && u.flags&uProbed == 0:
		if !eng.probed(c) {
			c.Close(codec.StatusPolicyViolation, "upgrade refused")
			return
		}
		u.flags |= uProbed
		c.Send(probePong)
		h.e.flushReady() // the noop for a held poll
	case err == nil && typ == codec.EIOUpgrade && u.flags&uProbed != 0:
		if !eng.upgradeTo(c) {
			c.Close(codec.StatusPolicyViolation, "upgrade refused")
			return
		}
		u.flags |= uUpgraded
		u.Rearm(c) // the session's expiry replaces the upgrade deadline
	default:
		c.Close(codec.StatusProtocolError, "unexpected packet during upgrade")
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

// Closed implements ws.Handler: the session ends with its WebSocket; a
// probe that closes leaves the session on polling.
func (h upHandler) Closed(c *conn.Conn) {
	eng := c.Proto().(*upConn).eng
	switch {
	case eng == nil:
	case eng.ws == c:
		eng.finish()
	case eng.probe == c:
		eng.probe = nil
		eng.flags &^= eUpgrading
	}
}

// probed records that the WebSocket c, which probes an upgrade, got its
// answer: polls are answered at once from now on (a noop if nothing is
// queued), so the client can pause polling. It reports whether the
// session can still upgrade.
func (eng *engine) probed(c *conn.Conn) bool {
	if eng.probe != c || eng.flags&(eClosing|eGone) != 0 {
		return false
	}
	eng.flags |= eUpgrading
	eng.markReady()
	return true
}

// upgradeTo moves the session onto the WebSocket c: a poll still waiting
// gets a noop, the queued packets go out as frames, the session leaves the
// polling registry (a WebSocket session needs no mailbox) and its timer
// stops (the WebSocket's heartbeat takes over). It reports whether the
// session could upgrade.
func (eng *engine) upgradeTo(c *conn.Conn) bool {
	if eng.probe != c || eng.flags&(eClosing|eGone) != 0 {
		return false
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
	ep.shared.metrics.Upgrades.Add(1)
	eng.ws = c
	out := eng.out
	eng.out, eng.outBytes = nil, 0
	for i, p := range out {
		b := p.b
		if p.m != nil {
			b = p.m.Bytes(TextFormat)
		}
		c.Send(b) // a failed write closes c: the rest goes nowhere, and is released
		if p.m != nil {
			p.m.Release()
		}
		out[i] = outPacket{}
	}
	return c.Open()
}
