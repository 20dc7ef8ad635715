package sio

import (
	"time"

	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/ws"
)

// Packets the server sends verbatim. Read-only.
var (
	pingPacket       = []byte{'0' + byte(codec.EIOPing)}
	disconnectPacket = codec.AppendSIODisconnect(nil, "/")
)

// socket is the Socket.IO state of one engine: the session of the main
// namespace once joined, and the identity the opening request proved.
// Loop goroutine only.
type socket struct {
	sess     session.Session
	pre      session.Identity // from the request that opened the engine; nil if it carried no token
	deadline uint64           // wheel tick by which the CONNECT must come; until it came
	flags    uint8
}

// socket flags.
const (
	flagConnected uint8 = 1 << iota // the client has joined the main namespace
)

// wsConn is one Socket.IO connection over WebSocket: the WebSocket state,
// the session and the Socket.IO state in one allocation. It implements
// conn.Proto through the embedded ws.Conn, except Close.
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
	}
	w.Conn.Close(c, code, reason)
}

// handler runs the Socket.IO protocol on one event loop's WebSocket
// connections. It implements ws.Handler and ws.Heartbeater.
type handler struct {
	// Immutable after Route's New.
	cfg          Config
	adm          Admission
	env          *session.Env
	metrics      *session.Metrics
	connectTicks uint64

	// Owned by the loop goroutine: where packets are built. Not the
	// connection's scratch buffer, which the WebSocket writer frames into.
	buf []byte
}

// send writes one Engine.IO packet built in h.buf, keeping the buffer.
func (h *handler) send(c *conn.Conn, b []byte) bool {
	h.buf = b[:0]
	return c.Send(b)
}

// Open implements ws.Handler: the Engine.IO handshake (the open packet),
// then the wait for the CONNECT.
func (h *handler) Open(c *conn.Conn, _ *codec.HTTPRequest, id session.Identity) {
	w := c.Proto().(*wsConn)
	w.sock.pre = id
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
func (h *handler) Expiry(c *conn.Conn) uint64 {
	w := c.Proto().(*wsConn)
	if w.sock.flags&flagConnected == 0 {
		return w.sock.deadline
	}
	return w.sock.sess.ExpiryTick(h.env)
}

// Heartbeat implements ws.Heartbeater: Engine.IO's ping.
func (h *handler) Heartbeat(c *conn.Conn) bool { return c.Send(pingPacket) }

// Ping implements ws.Handler: WebSocket pings from the client share the
// command budget.
func (h *handler) Ping(c *conn.Conn) bool {
	return c.Proto().(*wsConn).sock.sess.Allow(h.env, c)
}

// Expired implements ws.Handler: the CONNECT did not come in time, or the
// credentials of a joined session expired (close 4002, after which
// socket.io-client reconnects and, with an auth function, sends a fresh
// token).
func (h *handler) Expired(c *conn.Conn) {
	w := c.Proto().(*wsConn)
	if w.sock.flags&flagConnected == 0 {
		c.Close(codec.StatusPolicyViolation, "connect timeout")
		return
	}
	w.sock.sess.Expired(h.env, c)
}

// Closed implements ws.Handler.
func (h *handler) Closed(c *conn.Conn) { c.Proto().(*wsConn).sock.sess.Closed(h.env) }

// Message implements ws.Handler: one Engine.IO packet per text frame. Every
// message costs a unit of the command budget, as in protocol v1. Binary
// frames carry only the attachments of binary events, which pushd refuses
// (see binaryEvent): they are dropped.
func (h *handler) Message(c *conn.Conn, op ws.OpCode, p []byte) {
	w := c.Proto().(*wsConn)
	allowed := w.sock.sess.Allow(h.env, c)
	if !c.Open() || op != ws.OpText {
		return
	}
	typ, _, err := codec.ParseEIOPacket(p)
	switch {
	case err != nil:
		h.protocolError(c, "malformed Engine.IO packet")
	case typ == codec.EIOMessage:
		h.message(c, w, p, allowed)
	case typ == codec.EIOPong, typ == codec.EIONoop:
		// A pong proves the client alive, as any frame does (ws.Conn).
	case typ == codec.EIOClose:
		w.Conn.Close(c, codec.StatusNormal, "")
	case typ == codec.EIOPing:
		// Protocol 4: only the server pings ("2probe" belongs to an
		// upgrade from polling, which a WebSocket session is not).
		h.protocolError(c, "invalid heartbeat direction")
	default:
		h.protocolError(c, "unexpected Engine.IO packet "+typ.String())
	}
}

// protocolError ends a connection whose client broke Engine.IO or
// Socket.IO: close 1002 with the reason, after a DISCONNECT if it had
// joined the namespace (Close).
func (h *handler) protocolError(c *conn.Conn, reason string) {
	c.Loop().Metrics().ProtocolErrors.Add(1)
	c.Close(codec.StatusProtocolError, reason)
}

// message handles one Socket.IO packet (the Engine.IO message packet p).
// Packets for a namespace the client has not joined are dropped, as the
// reference server drops them.
func (h *handler) message(c *conn.Conn, w *wsConn, p []byte, allowed bool) {
	pkt, err := codec.ParseSIOPacket(p)
	switch {
	case err == codec.ErrSIOBinary:
		h.binaryEvent(c, w, p, allowed)
		return
	case err != nil:
		h.protocolError(c, "malformed Socket.IO packet")
		return
	}
	connected := pkt.Namespace == "/" && w.sock.flags&flagConnected != 0
	switch pkt.Type {
	case codec.SIOConnect:
		h.connect(c, w, pkt, allowed)
	case codec.SIODisconnect:
		if connected {
			// socket.io-client closes the engine when its last
			// namespace leaves; closing here too keeps a client from
			// leaving and joining again to refill its command budget.
			w.Conn.Close(c, codec.StatusNormal, "")
		}
	case codec.SIOEvent:
		if connected {
			h.event(c, w, pkt, allowed)
		}
		// ACK and CONNECT_ERROR: pushd never asks for an ack, and a
		// connect error from the client means nothing.
	}
}

// connect joins the main namespace: it authenticates the CONNECT's token
// (or the one the opening request carried), answers
// 40{"sid":"…"}, starts the session (the personal topic) and arms the
// credentials' expiry. A refusal is a CONNECT_ERROR, after which
// socket.io-client gives up (no reconnection); the connect timeout then
// closes the connection if the client does not.
func (h *handler) connect(c *conn.Conn, w *wsConn, pkt codec.SIOPacket, allowed bool) {
	var refusal *codec.ProtoError
	var id session.Identity
	switch {
	case pkt.Namespace != "/":
		refusal = &codec.ProtoError{Code: codec.CodeInvalidNamespace, Message: "Invalid namespace"}
	case !allowed:
		refusal = &codec.ProtoError{Code: codec.CodeRateLimited, Message: "too many commands; slow down"}
	case w.sock.flags&flagConnected != 0:
		refusal = &codec.ProtoError{Code: codec.CodeBadRequest, Message: "already connected"}
	default:
		id, refusal = h.authenticate(w, pkt.Data)
	}
	if refusal != nil {
		h.send(c, codec.AppendSIOConnectRefusal(h.buf[:0], pkt.Namespace, refusal.Code, refusal.Message))
		return
	}
	if !h.send(c, codec.AppendSIOConnect(h.buf[:0], "/", nuid.Next(), "")) {
		return
	}
	w.sock.flags |= flagConnected
	_, perr := w.sock.sess.Begin(h.env, c, id)
	w.Rearm(c) // the credentials' expiry replaces the connect deadline
	if perr != nil && c.Open() {
		h.metrics.CommandErrors.Add(1)
		h.send(c, codec.AppendSIOResult(h.buf[:0], "/", -1, perr))
	}
}

// authenticate returns the identity of a CONNECT with auth payload data:
// its token if it has one, else the opening request's, else the verdict on
// no token at all (anonymous in insecure mode, refused otherwise).
func (h *handler) authenticate(w *wsConn, data []byte) (session.Identity, *codec.ProtoError) {
	auth, err := codec.ParseSIOAuth(data)
	if err != nil {
		return nil, err.(*codec.ProtoError)
	}
	if auth.Token == "" && w.sock.pre != nil {
		return w.sock.pre, nil
	}
	if h.adm.Token == nil {
		return w.sock.pre, nil
	}
	id, verr := h.adm.Token(auth.Token)
	if verr != nil {
		h.metrics.Forbidden.Add(1)
		return nil, &codec.ProtoError{Code: codec.CodeUnauthorized, Message: verr.Error()}
	}
	return id, nil
}

// event runs one of pushd's events and answers it: an ACK when the client
// asked for one ({"ok":true} or {"error":{…}}), otherwise an error event
// for a refusal and nothing for a success.
func (h *handler) event(c *conn.Conn, w *wsConn, pkt codec.SIOPacket, allowed bool) {
	h.metrics.Commands.Add(1)
	perr := h.run(c, w, pkt.Data, allowed)
	if !c.Open() {
		return // closed while it ran (e.g. a subscribe that hit a slow socket)
	}
	if perr != nil {
		h.metrics.CommandErrors.Add(1)
	}
	if b := codec.AppendSIOResult(h.buf[:0], "/", pkt.AckID, perr); len(b) > 0 {
		h.send(c, b)
	}
}

// run executes the event in data on the session.
func (h *handler) run(c *conn.Conn, w *wsConn, data []byte, allowed bool) *codec.ProtoError {
	if !allowed {
		return &codec.ProtoError{Code: codec.CodeRateLimited, Message: "too many commands; slow down"}
	}
	cmd, err := codec.ParseSIOEvent(data)
	if err != nil {
		return err.(*codec.ProtoError)
	}
	switch cmd.Type {
	case codec.CmdSubscribe:
		return w.sock.sess.Subscribe(h.env, c, cmd.Topics)
	case codec.CmdUnsubscribe:
		w.sock.sess.Unsubscribe(h.env, cmd.Topics)
		return nil
	default: // codec.CmdPublish
		return w.sock.sess.Publish(h.env, cmd.Topic, cmd.Data)
	}
}

// binaryEvent refuses a BINARY_EVENT with bad_request, answering its ack id
// if it has one, so an emit with a Buffer and an ack callback gets its
// answer; the attachments that follow it as binary frames are dropped.
// pushd's events are JSON. A BINARY_ACK is dropped.
func (h *handler) binaryEvent(c *conn.Conn, w *wsConn, p []byte, allowed bool) {
	pkt, _, err := codec.ParseSIOBinaryHead(p)
	if err != nil {
		h.protocolError(c, "malformed Socket.IO packet")
		return
	}
	if pkt.Type != codec.SIOBinaryEvent || pkt.Namespace != "/" || w.sock.flags&flagConnected == 0 {
		return
	}
	h.metrics.Commands.Add(1)
	h.metrics.CommandErrors.Add(1)
	perr := &codec.ProtoError{Code: codec.CodeBadRequest, Message: "binary events are not supported; send JSON"}
	if !allowed {
		perr = &codec.ProtoError{Code: codec.CodeRateLimited, Message: "too many commands; slow down"}
	}
	h.send(c, codec.AppendSIOResult(h.buf[:0], "/", pkt.AckID, perr))
}
