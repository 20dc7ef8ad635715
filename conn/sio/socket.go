package sio

import (
	"crypto/rand"
	"encoding/base64"
	"slices"

	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

// Packets the server sends verbatim. Read-only.
var (
	pingPacket       = []byte{'0' + byte(codec.EIOPing)}
	noopPacket       = []byte{'0' + byte(codec.EIONoop)}
	closePacket      = []byte{'0' + byte(codec.EIOClose)}
	probePong        = codec.AppendEIOProbePong(nil)
	disconnectPacket = codec.AppendSIODisconnect(nil, "/")
)

// socket is the Socket.IO state of one engine, whatever carries it: the
// session of the main namespace once joined, and the identity the opening
// request proved. Loop goroutine only.
type socket struct {
	sess session.Session
	// aux is, before the CONNECT, the identity the request that opened
	// the engine proved (a session.Identity; nil if it carried no token),
	// and after it the pid of connection state recovery (a string; nil
	// when recovery is off). One field for the two phases keeps a
	// Socket.IO WebSocket connection in its 112-byte size class.
	aux      any
	deadline uint64 // wheel tick by which the CONNECT must come, until it came
	flags    uint8
}

// socket flags.
const (
	flagConnected uint8 = 1 << iota // the client has joined the main namespace
	flagJoining                     // a CONNECT waits for the state of the session it recovers
)

// pre returns the identity the opening request proved, before the CONNECT.
func (s *socket) pre() session.Identity {
	id, _ := s.aux.(session.Identity)
	return id
}

// pid returns the recovery pid, after the CONNECT ("" without recovery).
func (s *socket) pid() string {
	pid, _ := s.aux.(string)
	return pid
}

// handler runs the Socket.IO protocol on one event loop, over any engine
// transport: the Socket.IO packets of a WebSocket connection (websocket.go)
// or of a polling session (engine.go) come here with the session.Peer that
// answers them. It also implements ws.Handler and ws.Heartbeater for
// Socket.IO's WebSocket connections.
type handler struct {
	// Immutable after Route's New.
	cfg          Config
	adm          Admission
	env          *session.Env
	metrics      *session.Metrics
	loop         *conn.Loop
	ep           *endpoint // the loop's Socket.IO endpoint: where recovery state is kept
	connectTicks uint64

	// Owned by the loop goroutine: where packets are built. Not the
	// connection's scratch buffer, which the WebSocket writer frames into.
	buf []byte
	// Owned by the loop goroutine: the ack ids of events whose answer
	// comes later (a durable subscribe or publish), by socket.
	held map[*socket][]int64
}

// send writes one Engine.IO packet built in h.buf through p, keeping the
// buffer.
func (h *handler) send(p session.Peer, b []byte) bool {
	h.buf = b[:0]
	return p.Send(b)
}

// protocolError ends an engine whose client broke Engine.IO or Socket.IO:
// close 1002 with the reason, after a DISCONNECT if it had joined the
// namespace (the transports' Close).
func (h *handler) protocolError(p session.Peer, reason string) {
	h.loop.Metrics().ProtocolErrors.Add(1)
	p.Close(codec.StatusProtocolError, reason)
}

// leave ends an engine the client leaves with its DISCONNECT: a normal
// close, without a DISCONNECT of our own, and nothing kept for recovery
// (socket.io-client's "io client disconnect").
func (h *handler) leave(p session.Peer, s *socket) {
	s.flags &^= flagConnected
	p.Close(codec.StatusNormal, "")
}

// closeTransport ends an engine whose client closed the transport with
// Engine.IO's close packet: a normal close, after which the session may
// be recovered ("transport close" for the reference server too).
func (h *handler) closeTransport(p session.Peer) {
	p.Close(codec.StatusNormal, "")
}

// message handles one Socket.IO packet (the Engine.IO message packet pkt)
// of socket s, whose engine is p; allowed is the packet's command budget.
// It reports whether the client joined the namespace, which moves the
// engine's expiry from the connect deadline to the credentials'. Packets
// for a namespace the client has not joined are dropped, as the reference
// server drops them.
func (h *handler) message(p session.Peer, s *socket, pkt []byte, allowed bool) (joined bool) {
	sp, err := codec.ParseSIOPacket(pkt)
	switch {
	case err == codec.ErrSIOBinary:
		h.binaryEvent(p, s, pkt, allowed)
		return false
	case err != nil:
		h.protocolError(p, "malformed Socket.IO packet")
		return false
	}
	connected := sp.Namespace == "/" && s.flags&flagConnected != 0
	switch sp.Type {
	case codec.SIOConnect:
		return h.connect(p, s, sp, allowed)
	case codec.SIODisconnect:
		if connected {
			// socket.io-client closes the engine when its last
			// namespace leaves; closing here too keeps a client from
			// leaving and joining again to refill its command budget.
			h.leave(p, s)
		}
	case codec.SIOEvent:
		if connected {
			h.event(p, s, sp, allowed)
		}
		// ACK and CONNECT_ERROR: pushd never asks for an ack, and a
		// connect error from the client means nothing.
	}
	return false
}

// connect joins the main namespace: it authenticates the CONNECT's token
// (or the one the opening request carried), answers 40{"sid":"…"} (with a
// "pid" when recovery is on) and starts the session (the personal topic).
// It reports whether the client joined. A CONNECT that names a pid and an
// offset recovers the session it names when it can (recover.go): the
// answer comes when the state is found. A refusal is a CONNECT_ERROR,
// after which socket.io-client gives up (no reconnection); the connect
// timeout then closes the engine if the client does not.
func (h *handler) connect(p session.Peer, s *socket, pkt codec.SIOPacket, allowed bool) bool {
	var refusal *codec.ProtoError
	var id session.Identity
	var auth codec.SIOAuth
	switch {
	case pkt.Namespace != "/":
		refusal = &codec.ProtoError{Code: codec.CodeInvalidNamespace, Message: "Invalid namespace"}
	case !allowed:
		refusal = &codec.ProtoError{Code: codec.CodeRateLimited, Message: "too many commands; slow down"}
	case s.flags&(flagConnected|flagJoining) != 0:
		refusal = &codec.ProtoError{Code: codec.CodeBadRequest, Message: "already connected"}
	default:
		auth, id, refusal = h.authenticate(s, pkt.Data)
	}
	if refusal != nil {
		h.send(p, codec.AppendSIOConnectRefusal(h.buf[:0], pkt.Namespace, refusal.Code, refusal.Message))
		return false
	}
	if h.cfg.Recovery > 0 && auth.PID != "" && auth.Offset != "" {
		s.flags |= flagJoining
		h.ep.fetchKept(auth.PID, func(k *kept) { h.recover(p, s, id, auth, k) })
		return false
	}
	return h.join(p, s, id)
}

// join answers a CONNECT that starts a new session (no recovery, or one
// that failed): a new pid when recovery is on, so socket.io-client's
// socket.recovered is false, and the session begins with the personal
// topic. It reports whether the client joined.
func (h *handler) join(p session.Peer, s *socket, id session.Identity) bool {
	var pid string
	if h.cfg.Recovery > 0 {
		pid = secretID()
	}
	if !h.send(p, codec.AppendSIOConnect(h.buf[:0], "/", nuid.Next(), pid)) {
		return false
	}
	s.flags |= flagConnected
	s.aux = nil
	if pid != "" {
		s.aux = pid
	}
	_, perr := s.sess.Begin(h.env, p, id)
	if perr != nil && p.Open() {
		h.metrics.CommandErrors.Add(1)
		h.send(p, codec.AppendSIOResult(h.buf[:0], "/", -1, perr))
	}
	return true
}

// authenticate decodes a CONNECT's auth payload and returns it with the
// client's identity: its token if it has one, else the opening request's,
// else the verdict on no token at all (anonymous in insecure mode, refused
// otherwise).
func (h *handler) authenticate(s *socket, data []byte) (codec.SIOAuth, session.Identity, *codec.ProtoError) {
	auth, err := codec.ParseSIOAuth(data)
	if err != nil {
		return auth, nil, err.(*codec.ProtoError)
	}
	if pre := s.pre(); auth.Token == "" && pre != nil || h.adm.Token == nil {
		return auth, pre, nil
	}
	id, verr := h.adm.Token(auth.Token)
	if verr != nil {
		h.metrics.Forbidden.Add(1)
		return auth, nil, &codec.ProtoError{Code: codec.CodeUnauthorized, Message: verr.Error()}
	}
	return auth, id, nil
}

// event runs one of pushd's events and answers it: an ACK when the client
// asked for one ({"ok":true} or {"error":{…}}), otherwise an error event
// for a refusal and nothing for a success. A subscribe to a durable topic
// is answered once the node follows the topic's history, and a publish to
// one once the history stored it, with its offset and epoch, as v1 answers
// them (later); the events that come meanwhile run at once, and their acks
// may come first (acks are matched by id).
func (h *handler) event(p session.Peer, s *socket, pkt codec.SIOPacket, allowed bool) {
	h.metrics.Commands.Add(1)
	if perr, later := h.run(p, s, pkt.Data, pkt.AckID, allowed); !later {
		h.answer(p, pkt.AckID, perr)
	}
}

// answer sends the answer to the event ackID (-1: none).
func (h *handler) answer(p session.Peer, ackID int64, perr *codec.ProtoError) {
	if !p.Open() {
		return // closed while it ran (e.g. a subscribe that hit a slow socket)
	}
	if perr != nil {
		h.metrics.CommandErrors.Add(1)
	}
	if b := codec.AppendSIOResult(h.buf[:0], "/", ackID, perr); len(b) > 0 {
		h.send(p, b)
	}
}

// run executes the event in data on the session and returns its answer,
// or later: the answer comes later (hold, then settle).
func (h *handler) run(p session.Peer, s *socket, data []byte, ackID int64, allowed bool) (perr *codec.ProtoError, later bool) {
	if !allowed {
		return &codec.ProtoError{Code: codec.CodeRateLimited, Message: "too many commands; slow down"}, false
	}
	cmd, err := codec.ParseSIOEvent(data)
	if err != nil {
		return err.(*codec.ProtoError), false
	}
	switch cmd.Type {
	case codec.CmdSubscribe:
		// Held first, so that done finds it whenever it runs.
		h.hold(s, ackID)
		later, perr := s.sess.SubscribeThen(h.env, p, cmd.Topics, func() {
			if h.settle(s, ackID) {
				h.answer(p, ackID, nil)
			}
		})
		if !later {
			h.settle(s, ackID)
		}
		return perr, later
	case codec.CmdUnsubscribe:
		s.sess.Unsubscribe(h.env, cmd.Topics)
		return nil, false
	default: // codec.CmdPublish
		h.hold(s, ackID)
		later, perr := s.sess.PublishThen(h.env, cmd.Topic, cmd.Data, func(offset uint64, epoch string, perr *codec.ProtoError) {
			switch {
			case !h.settle(s, ackID) || !p.Open():
			case perr != nil:
				h.answer(p, ackID, perr)
			case ackID >= 0:
				h.send(p, codec.AppendSIOPublishAck(h.buf[:0], "/", ackID, offset, epoch))
			}
		})
		if !later {
			h.settle(s, ackID)
		}
		return perr, later
	}
}

// hold records that the event ackID of s will be answered later. Without
// an ack id there is nothing to keep: only a failure would be told then
// (as an error event), and settle lets it through.
func (h *handler) hold(s *socket, ackID int64) {
	if ackID < 0 {
		return
	}
	if h.held == nil {
		h.held = make(map[*socket][]int64)
	}
	h.held[s] = append(h.held[s], ackID)
}

// settle takes the held answer ackID of s, and reports whether it is still
// to be sent: false when the session closed or moved to another loop
// meanwhile (release answered it then).
func (h *handler) settle(s *socket, ackID int64) bool {
	if ackID < 0 {
		return true
	}
	ids := h.held[s]
	i := slices.Index(ids, ackID)
	if i < 0 {
		return false
	}
	if ids = slices.Delete(ids, i, i+1); len(ids) == 0 {
		delete(h.held, s)
	} else {
		h.held[s] = ids
	}
	return true
}

// forget drops what s had held: its session ended.
func (h *handler) forget(s *socket) {
	delete(h.held, s)
}

// answerHeld answers, now, every event of s whose answer was held, with
// {"ok":true}: s's session is about to move to another loop, where the
// held answers could not follow it. Its subscriptions are made (the new
// loop subscribes them again), and its publishes are in NATS's hands; an
// ack then carries no offset. A rare case: the client upgraded to
// WebSocket within the moment the answer waited.
func (h *handler) answerHeld(p session.Peer, s *socket) {
	for _, id := range h.held[s] {
		h.answer(p, id, nil)
	}
	delete(h.held, s)
}

// binaryEvent refuses a BINARY_EVENT with bad_request, answering its ack id
// if it has one, so an emit with a Buffer and an ack callback gets its
// answer; the attachments that follow it (binary frames, or "b" packets
// over polling) are dropped. pushd's events are JSON. A BINARY_ACK is
// dropped.
func (h *handler) binaryEvent(p session.Peer, s *socket, pkt []byte, allowed bool) {
	sp, _, err := codec.ParseSIOBinaryHead(pkt)
	if err != nil {
		h.protocolError(p, "malformed Socket.IO packet")
		return
	}
	if sp.Type != codec.SIOBinaryEvent || sp.Namespace != "/" || s.flags&flagConnected == 0 {
		return
	}
	h.metrics.Commands.Add(1)
	h.metrics.CommandErrors.Add(1)
	perr := &codec.ProtoError{Code: codec.CodeBadRequest, Message: "binary events are not supported; send JSON"}
	if !allowed {
		perr = &codec.ProtoError{Code: codec.CodeRateLimited, Message: "too many commands; slow down"}
	}
	h.send(p, codec.AppendSIOResult(h.buf[:0], "/", sp.AckID, perr))
}

// expiry returns the wheel tick at which s's engine must end: the connect
// deadline until the client has joined the namespace, then its
// credentials' expiry (0: never).
func (h *handler) expiry(s *socket) uint64 {
	if s.flags&flagConnected == 0 {
		return s.deadline
	}
	return s.sess.ExpiryTick(h.env)
}

// expired ends an engine whose expiry came: close 1008 "connect timeout"
// before the CONNECT, else close 4002 for the expired credentials (after
// which socket.io-client reconnects and, with an auth function, sends a
// fresh token).
func (h *handler) expired(p session.Peer, s *socket) {
	if s.flags&flagConnected == 0 {
		p.Close(codec.StatusPolicyViolation, "connect timeout")
		return
	}
	s.sess.Expired(h.env, p)
}

// rearm re-arms the timer of the engine p after its expiry changed (a
// CONNECT answered later than the packet that asked for it).
func rearm(p session.Peer) {
	switch x := p.(type) {
	case *conn.Conn:
		switch w := x.Proto().(type) {
		case *wsConn:
			w.Rearm(x)
		case *upConn:
			w.Rearm(x)
		}
	case *engine:
		if x.ws != nil {
			rearm(x.ws)
		} else if x.flags&(eClosing|eGone) == 0 {
			x.arm()
		}
	}
}

// secretID returns a new 22-character ID from 128 random bits (crypto/rand,
// base64url without padding): the sid of a polling session and the pid of
// connection state recovery, which are credentials (a poll or POST with
// the sid acts for the session; the pid takes the session's state). A NUID
// would not do: its sequential part makes one ID's neighbours guessable.
// It is also a valid mailbox name (broker.ValidMailboxName). Any goroutine.
func secretID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
