// Package conn is the state machine of one WebSocket connection
// (handshake → open → closing → closed), the per-event-loop environment that
// its connections share (timing wheel, outbox, scratch buffers), and the
// pushd protocol session on top of it.
//
// Everything here belongs to one event loop and is touched only from that
// loop's goroutine, unless a doc comment says otherwise. conn knows nothing
// of gnet: it reads bytes handed to Feed and writes through a Transport.
package conn

import (
	"errors"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/wheel"
	"github.com/pushd/pushd/topics"
)

// Transport is the socket a Conn writes through. gnet.Conn implements it.
// Every method is called on the owning loop's goroutine only.
type Transport interface {
	// Write writes p; what the kernel does not take at once is copied into
	// a user-space outbound buffer, so p may be reused when Write returns.
	// A failed Write may close the connection synchronously, calling
	// Conn.Closed before it returns.
	Write(p []byte) (int, error)
	// Writev is Write for several buffers in one system call. It may modify
	// the outer slice, never the buffers.
	Writev(bs [][]byte) (int, error)
	// OutboundBuffered returns the bytes queued in user space.
	OutboundBuffered() int
	// Fd returns the socket descriptor (used for a write half-close).
	Fd() int
	// Close closes the connection asynchronously, after flushing what is
	// queued.
	Close() error
}

// State is a connection's place in its life cycle.
type State uint8

// The states of a connection.
const (
	StateHandshake State = iota // waiting for a complete upgrade request
	StateOpen                   // upgraded; frames flow both ways
	StateClosing                // we sent a close frame and wait for the peer's
	StateFailed                 // we failed the connection; input is discarded until EOF
	StateClosed                 // the transport is closed; nothing may be written
)

// Conn flags.
const (
	flagAwaitPong uint8 = 1 << iota // a heartbeat ping is unanswered
	flagCloseReq                    // the transport has been asked to close
	flagInMessage                   // a fragmented data message is open
)

// Conn is one connection. It implements topics.Subscriber.
type Conn struct {
	// Immutable after Loop.Open.
	l  *Loop
	tr Transport

	// Owned by the loop goroutine.
	h          Handler
	timer      wheel.Node[Conn]
	state      State
	flags      uint8
	msgOp      ws.OpCode
	lastActive uint32 // wheel tick of the last inbound frame
	utf8       codec.UTF8
	idx        int32 // position in l.conns
	qhead      int32 // first queued push in l.out (1-based; 0 = none)
	qtail      int32
	msg        *bytebufferpool.ByteBuffer // non-nil only while a fragmented message is open

	// Protocol session state, owned by the loop goroutine; unused on the
	// echo endpoint.
	subs    []*topics.Subscription
	tokens  float32 // command rate-limit bucket
	refill  uint32  // wheel tick of the last refill
	strikes uint16  // commands refused in a row
	ident   Identity
	expires uint64 // wheel tick at which the credentials expire; 0 = never
}

// State returns the connection's state. Loop goroutine only.
func (c *Conn) State() State { return c.state }

// Loop returns the loop the connection belongs to. Any goroutine.
func (c *Conn) Loop() *Loop { return c.l }

// Feed processes bytes received from the peer, starting with the first byte
// not yet consumed. It returns how many bytes it consumed; the caller keeps
// the rest (a partial request or frame) and calls Feed again when more
// arrive. close reports that the transport should be closed now, after what
// was written is flushed. Feed never blocks. Loop goroutine only.
//
// Feed unmasks frames in place, so p must be writable and not used by the
// caller for anything else afterwards.
func (c *Conn) Feed(p []byte) (n int, close bool) {
	c.l.feeding = c
	c.l.cur = c.l.tickOf(c.l.clock())
	defer func() { c.l.feeding = nil }()
	if c.state == StateHandshake {
		n = c.handshake(p)
	}
	for c.state == StateOpen || c.state == StateClosing {
		m := c.frame(p[n:])
		if m == 0 {
			break
		}
		n += m
	}
	if c.state == StateFailed {
		n = len(p) // discard everything until the peer closes
	}
	return n, c.flags&flagCloseReq != 0 && c.state != StateClosed
}

func (c *Conn) handshake(p []byte) int {
	if c.flags&flagCloseReq != 0 {
		return len(p) // the deadline passed; the close is on its way
	}
	req, n, err := codec.ParseUpgrade(p, c.l.upLimits)
	if err == codec.ErrNeedMore {
		return 0
	}
	if err != nil {
		var he *codec.HandshakeError
		if !errors.As(err, &he) {
			he = &codec.HandshakeError{Status: 400, Reason: "bad request"}
		}
		c.reject(he)
		return len(p)
	}
	h, id, proto, herr := c.l.route(&req)
	if herr != nil {
		c.reject(herr)
		return len(p)
	}
	c.ident = id
	// Count and open the connection before writing the 101, so a client
	// that has read its 101 is already counted; if the write fails, Closed
	// undoes both.
	c.state = StateOpen
	c.h = h
	c.l.metrics.Upgrades.Add(1)
	c.l.metrics.Open.Add(1)
	c.lastActive = uint32(c.l.cur)
	c.tokens = float32(c.l.cfg.CommandBurst)
	c.refill = uint32(c.l.cur)
	if id != nil {
		if exp := id.Expiry(); !exp.IsZero() {
			// The tick after the one exp falls in: never before exp.
			c.expires = max(c.l.tickOf(exp)+1, c.l.cur+1)
		}
	}
	buf := codec.AppendUpgradeResponse(c.l.scratch[:0], req.Key, proto)
	c.l.scratch = buf[:0]
	if !c.write(buf) {
		return len(p)
	}
	c.armOpen(c.l.pingTicks)
	h.Open(c, &req)
	return n
}

func (c *Conn) reject(he *codec.HandshakeError) {
	c.l.metrics.HandshakeRejected.Add(1)
	buf := codec.AppendHTTPError(c.l.scratch[:0], he.Status, he.Reason, he.Header...)
	c.l.scratch = buf[:0]
	c.write(buf)
	c.closeTransport()
}

// frame handles the frame at the start of p. It returns the bytes consumed,
// or 0 if p holds no complete frame.
func (c *Conn) frame(p []byte) int {
	hd, hn, err := codec.ParseHeader(p)
	if err == codec.ErrShortHeader {
		return 0
	}
	if err == nil {
		err = codec.CheckClientHeader(hd, c.flags&flagInMessage != 0)
	}
	if err == nil && (hd.OpCode.IsData() || hd.OpCode == ws.OpContinuation) {
		err = c.checkSize(hd.Length)
	}
	if err != nil {
		c.fail(err)
		return len(p)
	}
	total := hn + int(hd.Length)
	if len(p) < total {
		return 0
	}
	payload := p[hn:total]
	codec.Unmask(payload, hd.Mask, 0)
	c.lastActive = uint32(c.l.cur)
	c.flags &^= flagAwaitPong
	switch hd.OpCode {
	case ws.OpPing:
		// Pings share the command budget, so a ping flood is throttled
		// (no pong) and then closed with 1008 like a command flood.
		if c.state == StateOpen && c.spendToken() {
			c.writeFrame(ws.OpPong, payload)
		}
	case ws.OpPong:
	case ws.OpClose:
		c.peerClose(payload)
	default:
		c.data(hd, payload)
	}
	return total
}

// checkSize enforces the frame and message limits on a data frame's declared
// length, before any of its payload is buffered (RFC 6455 §10.4).
func (c *Conn) checkSize(n int64) error {
	if n > int64(c.l.cfg.MaxFrameSize) {
		return codec.ErrFrameTooBig
	}
	if c.msg != nil && int64(c.msg.Len())+n > int64(c.l.cfg.MaxMessageSize) {
		return codec.ErrMessageTooBig
	}
	return nil
}

func (c *Conn) data(hd ws.Header, payload []byte) {
	if c.state != StateOpen {
		return // after our close frame, data is ignored (§5.5.1)
	}
	op := hd.OpCode
	if op == ws.OpContinuation {
		op = c.msgOp
	}
	if op == ws.OpText && !c.utf8.Write(payload) {
		c.fail(codec.ErrInvalidUTF8)
		return
	}
	switch {
	case hd.Fin && c.msg == nil: // a whole message in one frame: no copy
		c.message(op, payload)
	case hd.OpCode != ws.OpContinuation: // first fragment
		c.msg = bytebufferpool.Get()
		c.msg.B = append(c.msg.B[:0], payload...)
		c.msgOp = op
		c.flags |= flagInMessage
	default:
		c.msg.B = append(c.msg.B, payload...)
		if hd.Fin {
			c.message(op, c.msg.B)
		}
	}
}

func (c *Conn) message(op ws.OpCode, p []byte) {
	ok := op != ws.OpText || c.utf8.Done()
	c.utf8.Reset()
	if ok {
		c.l.metrics.MessagesIn.Add(1)
		c.h.Message(c, op, p)
	}
	c.endMessage()
	if !ok {
		c.fail(codec.ErrInvalidUTF8)
	}
}

func (c *Conn) endMessage() {
	if c.msg != nil {
		bytebufferpool.Put(c.msg)
		c.msg = nil
	}
	c.flags &^= flagInMessage
}

// peerClose answers the peer's close frame (RFC 6455 §5.5.1, §7.4).
func (c *Conn) peerClose(payload []byte) {
	if c.state != StateOpen { // the answer to our close frame
		c.closeTransport()
		c.state = StateFailed
		return
	}
	code, _, err := codec.ParseClosePayload(payload)
	if err != nil {
		c.fail(err)
		return
	}
	// Echo the code (an empty close gets an empty one) and close the TCP
	// connection first, as the server should (§7.1.1).
	c.finalClose(code, "")
}

// finalClose writes one last close frame and closes the transport. The
// state moves first, so nothing, not even the slow-consumer policy's own
// close frame, can follow it (§5.5.1: one close frame per side).
func (c *Conn) finalClose(code codec.StatusCode, reason string) {
	c.endMessage()
	c.state = StateFailed
	buf := codec.AppendCloseFrame(c.l.scratch[:0], code, reason)
	c.l.scratch = buf[:0]
	_, _ = c.tr.Write(buf)
	c.closeTransport()
}

// fail sends a close frame for err and stops reading the connection
// ("Fail the WebSocket Connection", §7.1.7). The write side is shut down at
// once so the peer sees the close frame and then EOF; input is discarded
// until the peer closes or the close timeout fires, so unread data never
// turns our close into a reset.
func (c *Conn) fail(err error) {
	var ce *codec.CloseError
	if !errors.As(err, &ce) {
		ce = &codec.CloseError{Code: codec.StatusInternalError, Reason: "internal error"}
	}
	if ce.Code == codec.StatusProtocolError || ce.Code == codec.StatusInvalidPayload || ce.Code == codec.StatusMessageTooBig {
		c.l.metrics.ProtocolErrors.Add(1)
	}
	switch c.state {
	case StateOpen:
	case StateClosing: // our close frame is out already
		c.closeTransport()
		c.state = StateFailed
		return
	default:
		return
	}
	c.sendClose(ce.Code, ce.Reason)
	if c.state != StateClosed {
		c.state = StateFailed
	}
}

// CloseWith starts a server-initiated close handshake with code and reason:
// it sends the close frame, stops sending anything else, and drops the
// connection when the peer answers or after the close timeout. Loop
// goroutine only.
func (c *Conn) CloseWith(code codec.StatusCode, reason string) {
	switch c.state {
	case StateOpen:
		c.sendClose(code, reason)
	case StateHandshake:
		c.closeTransport()
	}
}

// sendClose writes a close frame and moves to StateClosing. The close frame
// goes behind whatever is already queued, so a client that reads its
// backlog still learns why it was closed. If nothing is queued, the write
// side is shut down at once, so the peer sees the close frame and then EOF;
// either way the connection is dropped after the close timeout.
func (c *Conn) sendClose(code codec.StatusCode, reason string) {
	c.endMessage()
	c.state = StateClosing // before writing: a write may re-enter via checkOutbound
	buf := codec.AppendCloseFrame(c.l.scratch[:0], code, reason)
	c.l.scratch = buf[:0]
	if _, err := c.tr.Write(buf); err != nil || c.state == StateClosed {
		return
	}
	if c.tr.OutboundBuffered() == 0 {
		_ = unix.Shutdown(c.tr.Fd(), unix.SHUT_WR)
	}
	c.l.arm(c, c.l.closeTicks)
}

// closeTransport asks the transport to close after flushing. Inside Feed it
// only sets a flag, and Feed's caller closes the connection synchronously.
func (c *Conn) closeTransport() {
	if c.flags&flagCloseReq == 0 && c.state != StateClosed {
		c.flags |= flagCloseReq
		if c.l.feeding != c {
			_ = c.tr.Close()
		}
	}
}

// writable reports whether frames other than a close frame may be written:
// not after our close frame (§5.5.1), nor once closing was requested.
func (c *Conn) writable() bool {
	return (c.state == StateHandshake || c.state == StateOpen) && c.flags&flagCloseReq == 0
}

// write writes p and reports whether the connection is still usable.
func (c *Conn) write(p []byte) bool {
	if !c.writable() {
		return false
	}
	if _, err := c.tr.Write(p); err != nil || c.state == StateClosed {
		return false
	}
	return c.checkOutbound()
}

// writeFrame writes one unfragmented frame. Small frames are copied into the
// loop's scratch buffer; large ones go out with writev, without a copy.
func (c *Conn) writeFrame(op ws.OpCode, payload []byte) bool {
	if len(payload) <= 4096 {
		buf := codec.AppendFrame(c.l.scratch[:0], op, true, payload)
		c.l.scratch = buf[:0]
		return c.write(buf)
	}
	if !c.writable() {
		return false
	}
	hdr := codec.AppendFrameHeader(c.l.hdr[:0], op, true, len(payload))
	c.l.iov2[0], c.l.iov2[1] = hdr, payload
	_, err := c.l.writev(c.tr, c.l.iov2[:])
	c.l.iov2[0], c.l.iov2[1] = nil, nil
	if err != nil || c.state == StateClosed {
		return false
	}
	return c.checkOutbound()
}

// checkOutbound is the slow-consumer policy, in one place: when the bytes a
// connection has not taken exceed MaxOutbound, further pushes to it are
// dropped (Deliver refuses them once the state leaves StateOpen) and it is
// closed with 4000 ("slow consumer, reconnect"). The close frame is queued
// behind the backlog; the close timeout bounds how long the backlog is kept.
// It reports whether the connection is still usable.
func (c *Conn) checkOutbound() bool {
	if c.tr.OutboundBuffered() <= c.l.cfg.MaxOutbound {
		return true
	}
	if c.state == StateOpen {
		c.l.metrics.SlowConsumers.Add(1)
		c.sendClose(codec.StatusSlowConsumer, "slow consumer")
	}
	return false
}

// WriteText writes one text message. Loop goroutine only.
func (c *Conn) WriteText(p []byte) bool { return c.writeFrame(ws.OpText, p) }

// writeJSON frames the JSON that fill appends and writes it; the frame is
// built in the loop's scratch buffer without an extra copy.
func (c *Conn) writeJSON(fill func([]byte) []byte) bool {
	buf := fill(append(c.l.scratch[:0], make([]byte, 10)...))
	start := codec.PutFrameHeader(buf[:10], ws.OpText, true, len(buf)-10)
	c.l.scratch = buf[:0]
	return c.write(buf[start:])
}

// PushFormat is the v1 push as one WebSocket text frame (RFC 6455 §5.6):
// the JSON of codec.AppendPush, encoded once per message and shared by every
// WebSocket subscriber.
var PushFormat = topics.NewFormat("ws-v1", func(dst []byte, m *topics.Message) ([]byte, int) {
	at := len(dst)
	dst = codec.AppendFrameRoom(dst)
	dst = codec.AppendPush(dst, m.Topic(), m.Seq(), m.Data())
	return dst, codec.FinishFrame(dst, at, ws.OpText)
})

// Deliver queues a push for the next Flush. It implements topics.Subscriber.
// Loop goroutine only.
func (c *Conn) Deliver(m *topics.Message) {
	if c.state != StateOpen || c.flags&flagCloseReq != 0 {
		c.l.metrics.DroppedClosing.Add(1)
		return
	}
	c.l.queue(c, m.Bytes(PushFormat))
}

// onTimer runs when the connection's timer fires.
func (c *Conn) onTimer() {
	l := c.l
	switch c.state {
	case StateHandshake:
		l.metrics.HandshakeTimeouts.Add(1)
		c.closeTransport()
	case StateOpen:
		now := uint32(l.cur)
		if c.expires != 0 && l.cur >= c.expires {
			l.metrics.TokenExpired.Add(1)
			c.CloseWith(codec.StatusTokenExpired, "token expired")
			return
		}
		idle := uint64(now - c.lastActive)
		if c.flags&flagAwaitPong != 0 {
			l.metrics.HeartbeatTimeouts.Add(1)
			c.finalClose(codec.StatusHeartbeatTimeout, "no pong")
			return
		}
		if idle < l.pingTicks {
			c.armOpen(l.pingTicks - idle)
			return
		}
		l.metrics.PingsSent.Add(1)
		c.flags |= flagAwaitPong
		if c.writeFrame(ws.OpPing, nil) {
			c.armOpen(l.pongTicks)
		}
	case StateClosing, StateFailed:
		c.closeTransport()
	}
}

// armOpen arms the timer of an open connection for the given number of
// ticks, or for the tick its credentials expire in if that comes first.
func (c *Conn) armOpen(ticks uint64) {
	if c.expires != 0 && c.expires <= c.l.cur+ticks {
		c.l.wheel.ScheduleAt(&c.timer, c.expires)
		return
	}
	c.l.arm(c, ticks)
}

// Identity returns the connection's identity, nil when anonymous. Loop
// goroutine only.
func (c *Conn) Identity() Identity { return c.ident }

// Closed tells the connection that its transport has closed, for any
// reason. It releases everything the connection holds. It is called by the
// transport's owner (netpoll's OnClose), on the loop goroutine, possibly from
// inside a Write that failed.
func (c *Conn) Closed() {
	if c.state == StateClosed {
		return
	}
	wasOpen := c.h != nil // upgraded
	c.state = StateClosed
	c.endMessage()
	c.l.wheel.Stop(&c.timer)
	if c.h != nil {
		c.h.Closed(c)
	}
	c.l.remove(c)
	if wasOpen {
		c.l.metrics.Open.Add(-1)
	}
}
