package sio

import (
	"time"

	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/ws"
)

// wsConn is one Socket.IO connection opened over WebSocket: the WebSocket
// state, the session and the Socket.IO state in one allocation. It
// implements conn.Proto through the embedded ws.Conn, except Close.
type wsConn struct {
	ws.Conn
	sock socket
}

// Close implements conn.Proto. When the client must not answer the close
// by reconnecting (a code outside the reconnect range, such as 1008 for a
// command flood), it first leaves the namespace with a DISCONNECT, which
// socket.io-client takes as "io server disconnect" and does not reconnect
// after; on a close alone it would reconnect. Then the WebSocket close
// handshake.
func (w *wsConn) Close(c *conn.Conn, code codec.StatusCode, reason string) {
	if c.State() == conn.StateOpen && w.sock.flags&flagConnected != 0 && !code.Reconnect() {
		c.Send(disconnectPacket)
		w.sock.flags &^= flagConnected // the server left: nothing to recover
	}
	w.Conn.Close(c, code, reason)
}

// wsHandler runs Socket.IO on one event loop's WebSocket connections (those
// opened with transport=websocket, without a polling session first). It
// implements ws.Handler and ws.Heartbeater; the connection is the
// session.Peer.
type wsHandler struct{ *handler }

// Open implements ws.Handler: the Engine.IO handshake (the open packet),
// then the wait for the CONNECT.
func (h wsHandler) Open(c *conn.Conn, _ *codec.HTTPRequest, id session.Identity) {
	w := c.Proto().(*wsConn)
	w.sock.aux = id
	// Fill the command budget, which the packets before the CONNECT draw
	// on too; the CONNECT begins the session again with its identity.
	w.sock.sess.Begin(h.env, c, nil)
	b := codec.AppendEIOOpen(h.buf[:0], nuid.Next(), nil,
		int(h.cfg.PingInterval/time.Millisecond), int(h.cfg.PingTimeout/time.Millisecond), h.cfg.MaxPayload)
	if h.send(c, b) {
		w.sock.deadline = c.Loop().Now() + h.connectTicks
		w.Rearm(c)
	}
}

// Expiry implements ws.Handler: the connect deadline until the client has
// joined the namespace, then its credentials' expiry.
func (h wsHandler) Expiry(c *conn.Conn) uint64 { return h.expiry(&c.Proto().(*wsConn).sock) }

// Heartbeat implements ws.Heartbeater: Engine.IO's ping.
func (h wsHandler) Heartbeat(c *conn.Conn) bool { return c.Send(pingPacket) }

// Ping implements ws.Handler: WebSocket pings from the client share the
// command budget.
func (h wsHandler) Ping(c *conn.Conn) bool {
	return c.Proto().(*wsConn).sock.sess.Allow(h.env, c)
}

// Expired implements ws.Handler.
func (h wsHandler) Expired(c *conn.Conn) { h.expired(c, &c.Proto().(*wsConn).sock) }

// Closed implements ws.Handler: the session ends, and its state is kept
// for recovery if the client did not leave.
func (h wsHandler) Closed(c *conn.Conn) {
	s := &c.Proto().(*wsConn).sock
	h.keep(s)
	s.sess.Closed(h.env)
	h.forget(s)
}

// Message implements ws.Handler: one Engine.IO packet per text frame. Every
// message costs a unit of the command budget, as in protocol v1. Binary
// frames carry only the attachments of binary events, which pushd refuses
// (see binaryEvent): they are dropped.
func (h wsHandler) Message(c *conn.Conn, op ws.OpCode, p []byte) {
	w := c.Proto().(*wsConn)
	allowed := w.sock.sess.Allow(h.env, c)
	if c.Open() && op == ws.OpText && h.wsPacket(c, &w.sock, p, allowed) {
		w.Rearm(c) // the credentials' expiry replaces the connect deadline
	}
}

// wsPacket handles the Engine.IO packet of one text frame of socket s,
// whose engine is p (the connection, or the polling session upgraded to
// it). It reports whether the client joined the namespace.
func (h *handler) wsPacket(p session.Peer, s *socket, pkt []byte, allowed bool) (joined bool) {
	typ, _, err := codec.ParseEIOPacket(pkt)
	switch {
	case err != nil:
		h.protocolError(p, "malformed Engine.IO packet")
	case typ == codec.EIOMessage:
		return h.message(p, s, pkt, allowed)
	case typ == codec.EIOPong, typ == codec.EIONoop:
		// A pong proves the client alive, as any frame does (ws.Conn).
	case typ == codec.EIOClose:
		h.closeTransport(p)
	case typ == codec.EIOPing:
		// Protocol 4: only the server pings ("2probe" belongs to the
		// probe before an upgrade, upgrade.go).
		h.protocolError(p, "invalid heartbeat direction")
	default:
		h.protocolError(p, "unexpected Engine.IO packet "+typ.String())
	}
	return false
}
