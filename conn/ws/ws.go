// Package ws is pushd's WebSocket transport (RFC 6455): the state machine
// of an upgraded connection (frames, fragmentation, control frames, the
// close handshake, heartbeats, the slow-consumer close) as a conn.Proto,
// and the endpoints that speak it: the v1 protocol session and the echo
// endpoint used by conformance suites.
//
// Everything here runs on the connection's event-loop goroutine.
package ws

import (
	"errors"
	"sync"
	"time"

	gobwas "github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics"
)

// Config holds the WebSocket limits and heartbeat timers. Zero fields take
// the defaults listed beside them (see WithDefaults).
type Config struct {
	// MaxFrameSize bounds one frame's payload, checked against the declared
	// length before anything is buffered (1009). Default 64 KiB.
	MaxFrameSize int
	// MaxMessageSize bounds a whole (possibly fragmented) message (1009).
	// Default 64 KiB.
	MaxMessageSize int
	// PingInterval is how long a connection may stay silent before the
	// server pings it. Default 25s.
	PingInterval time.Duration
	// PongTimeout is how long the server waits for any frame after a ping
	// before it closes the connection. Default 10s.
	PongTimeout time.Duration
	// Compression enables permessage-deflate (RFC 7692) for clients that
	// offer it (see deflate.go). Frame and message limits apply to the
	// compressed bytes on the wire; MaxMessageSize also bounds a message
	// once inflated (1009 past it).
	Compression bool
}

// WithDefaults returns c with every zero field set to its default. Pure.
func (c Config) WithDefaults() Config {
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = 64 << 10
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 64 << 10
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 10 * time.Second
	}
	if c.MaxFrameSize > c.MaxMessageSize {
		c.MaxFrameSize = c.MaxMessageSize
	}
	return c
}

// Handler is what runs on top of an open WebSocket: the v1 protocol
// session or the echo endpoint. One Handler serves every connection of an
// event loop; per-connection state lives in the connection's Proto (the
// endpoint's per-connection struct, which embeds Conn). Its methods run on
// the loop goroutine.
type Handler interface {
	// Open runs right after the 101 response was written. id is what the
	// endpoint's Admit returned: the client's identity, nil if anonymous.
	Open(c *conn.Conn, req *codec.HTTPRequest, id session.Identity)
	// Message runs for each complete data message. p is valid only during
	// the call.
	Message(c *conn.Conn, op OpCode, p []byte)
	// Ping reports whether a ping from the client may be answered (pings
	// share the v1 command budget).
	Ping(c *conn.Conn) bool
	// Expiry returns the wheel tick at which the connection's credentials
	// expire, 0 for never. The heartbeat timer also fires then.
	Expiry(c *conn.Conn) uint64
	// Expired runs when the tick Expiry returned has come.
	Expired(c *conn.Conn)
	// Closed runs once when the transport has closed.
	Closed(c *conn.Conn)
}

// Heartbeater is a Handler whose protocol has a heartbeat of its own
// (Engine.IO: the server sends "2" every pingInterval and the client
// answers "3"). Its connections get no WebSocket ping frames: the timer
// that would send them calls Heartbeat instead, every PingInterval whatever
// the traffic, because such a client counts the time between the
// protocol's pings to detect a dead server. The pong timeout works as for
// WebSocket pings: any frame from the client answers, and silence for
// PongTimeout after a ping closes the connection with 4001. One timer per
// connection serves both, and the protocol keeps no timer of its own.
type Heartbeater interface {
	// Heartbeat writes the protocol's ping and reports whether the
	// connection is still usable. It runs on the loop goroutine.
	Heartbeat(c *conn.Conn) bool
}

// OpCode is a WebSocket frame opcode (RFC 6455 §5.2).
type OpCode = gobwas.OpCode

// The opcodes a Handler sees and writes.
const (
	OpContinuation = gobwas.OpContinuation
	OpText         = gobwas.OpText
	OpBinary       = gobwas.OpBinary
	OpClose        = gobwas.OpClose
	OpPing         = gobwas.OpPing
	OpPong         = gobwas.OpPong
)

// Conn flags.
const (
	flagAwaitPong uint8 = 1 << iota // a heartbeat ping is unanswered
	flagInMessage                   // a fragmented data message is open
)

// Conn is the WebSocket state of one upgraded connection; it implements
// conn.Proto. An endpoint embeds it in its per-connection struct.
type Conn struct {
	// Owned by the loop goroutine.
	ep         *loopEndpoint // this loop's endpoint: config, handler, timers
	flags      uint8
	utf8       codec.UTF8
	wbits      uint8  // permessage-deflate's negotiated server window (log2); 0: not negotiated
	lastActive uint32 // wheel tick of the last inbound frame; with a Heartbeater, of the last ping sent
	rx         *rx    // non-nil only while a data message is incomplete
}

// rx is the receive state of a data message that did not arrive whole in
// one buffer: the payload assembled so far and, while a frame's payload is
// still arriving, where in that frame the connection is. Its payload is
// consumed from the socket buffer as it arrives (unmasked, UTF-8-checked
// and appended here), so a large frame costs one copy of each byte however
// slowly it arrives, and gnet never holds, re-reads or re-copies a partial
// payload. rx objects are pooled; an idle connection holds none.
type rx struct {
	buf     []byte  // the message's payload so far
	op      OpCode  // OpText or OpBinary
	left    int64   // payload bytes of the current frame still to come
	off     int     // payload bytes of the current frame already received (the unmask offset)
	mask    [4]byte // the current frame's masking key
	fin     bool    // the current frame ends the message
	discard bool    // after our close frame: consume the data, deliver nothing (§5.5.1)
	deflate bool    // the message is compressed (RSV1 on its first frame): inflate it whole
}

// maxPooledRx bounds the payload capacity an rx keeps when it goes back to
// the pool, so one huge message does not pin memory.
const maxPooledRx = 64 << 10

var rxPool = sync.Pool{New: func() any { return new(rx) }}

// Rearm re-arms the connection's timer for its next heartbeat or its
// credentials' expiry (Handler.Expiry), whichever comes first: a handler
// calls it when the expiry changes. The heartbeat keeps its schedule. Loop
// goroutine only.
func (w *Conn) Rearm(c *conn.Conn) {
	if c.State() == conn.StateOpen {
		w.armOpen(c, w.nextBeat(c))
	}
}

// BeatFrom sets the wheel tick (of this loop) of the heartbeat's last
// ping, for a connection with a Heartbeater that takes over a heartbeat
// running elsewhere (a Socket.IO session moving from polling onto this
// WebSocket): the next ping keeps its cadence instead of counting from
// the WebSocket's opening. Follow it with Rearm. Loop goroutine only.
func (w *Conn) BeatFrom(tick uint64) { w.lastActive = uint32(tick) }

// nextBeat returns the ticks until the heartbeat's next step: the pong
// check while a ping is unanswered, else the next ping. Without a
// Heartbeater the next ping comes after PingInterval of silence from now
// on, which re-arming only postpones.
func (w *Conn) nextBeat(c *conn.Conn) uint64 {
	if w.ep.beat == nil {
		return w.ep.pingTicks
	}
	wait := w.ep.pingTicks
	if w.flags&flagAwaitPong != 0 {
		wait = w.ep.pongTicks
	}
	since := uint64(uint32(c.Loop().Now()) - w.lastActive)
	if since >= wait {
		return 1
	}
	return wait - since
}

// touch records an inbound frame: it answers an outstanding ping, and
// without a Heartbeater it restarts the idle time before the next one.
func (w *Conn) touch(c *conn.Conn) {
	w.flags &^= flagAwaitPong
	if w.ep.beat == nil {
		w.lastActive = uint32(c.Loop().Now())
	}
}

// Feed implements conn.Proto: it handles the frame at the start of p, or
// the next part of a frame whose payload is arriving, and returns the
// bytes consumed; 0 if p holds nothing it can use yet (a partial header,
// or a partial control frame, which is at most 125 payload bytes).
func (w *Conn) Feed(c *conn.Conn, p []byte) int {
	if w.rx != nil && w.rx.left > 0 {
		return w.payload(c, p)
	}
	hd, hn, err := codec.ParseHeader(p)
	if err == codec.ErrShortHeader {
		return 0
	}
	if err == nil {
		if w.wbits != 0 {
			err = codec.CheckClientHeaderDeflate(hd, w.flags&flagInMessage != 0)
		} else {
			err = codec.CheckClientHeader(hd, w.flags&flagInMessage != 0)
		}
	}
	data := hd.OpCode.IsData() || hd.OpCode == OpContinuation
	if err == nil && data {
		err = w.checkSize(hd.Length)
	}
	if err != nil {
		w.fail(c, err)
		return len(p)
	}
	total := hn + int(hd.Length)
	if data && (len(p) < total || w.rx != nil || !hd.Fin) {
		// Part of a fragmented message, or a frame not all here yet:
		// take its payload as it comes.
		w.touch(c)
		w.startFrame(c, hd)
		if w.rx == nil || w.rx.left == 0 {
			return hn // an empty frame: nothing more to take
		}
		return hn + w.payload(c, p[hn:])
	}
	if len(p) < total {
		return 0 // a control frame: ≤ 125 bytes, wait for all of it
	}
	payload := p[hn:total]
	codec.Unmask(payload, hd.Mask, 0)
	w.touch(c)
	switch hd.OpCode {
	case OpPing:
		// Pings share the command budget, so a ping flood is throttled
		// (no pong) and then closed with 1008 like a command flood.
		if c.State() == conn.StateOpen && w.ep.h.Ping(c) {
			w.writeFrame(c, OpPong, payload)
		}
	case OpPong:
	case OpClose:
		w.peerClose(c, payload)
	default: // a whole message in one frame, all here: no copy
		if c.State() != conn.StateOpen {
			break // after our close frame, data is ignored (§5.5.1)
		}
		if hd.Rsv&rsv1 != 0 {
			w.inflated(c, hd.OpCode, payload)
			break
		}
		if hd.OpCode == OpText && !w.utf8.Write(payload) {
			w.fail(c, codec.ErrInvalidUTF8)
			break
		}
		w.message(c, hd.OpCode, payload)
	}
	return total
}

// checkSize enforces the frame and message limits on a data frame's declared
// length, before any of its payload is buffered (RFC 6455 §10.4).
func (w *Conn) checkSize(n int64) error {
	if n > int64(w.ep.cfg.MaxFrameSize) {
		return codec.ErrFrameTooBig
	}
	if w.rx != nil && int64(len(w.rx.buf))+n > int64(w.ep.cfg.MaxMessageSize) {
		return codec.ErrMessageTooBig
	}
	return nil
}

// startFrame begins receiving the payload of data frame hd, opening the
// message if hd is its first frame.
func (w *Conn) startFrame(c *conn.Conn, hd gobwas.Header) {
	if w.rx == nil {
		w.rx = rxPool.Get().(*rx)
		w.rx.op = hd.OpCode
		w.rx.discard = c.State() != conn.StateOpen
		w.rx.deflate = hd.Rsv&rsv1 != 0
		w.flags |= flagInMessage
	}
	r := w.rx
	r.left, r.off, r.mask, r.fin = hd.Length, 0, hd.Mask, hd.Fin
	if r.left == 0 && r.fin {
		w.finishMessage(c)
	}
}

// payload takes the next bytes of the current frame's payload from p:
// unmasks them, checks UTF-8 as they arrive (so invalid text fails with
// 1007 before the rest of a large frame is read) and appends them to the
// message. It returns the bytes consumed.
func (w *Conn) payload(c *conn.Conn, p []byte) int {
	r := w.rx
	n := int(min(int64(len(p)), r.left))
	chunk := p[:n]
	codec.Unmask(chunk, r.mask, r.off)
	r.off += n
	r.left -= int64(n)
	if !r.discard {
		if r.op == OpText && !r.deflate && !w.utf8.Write(chunk) {
			w.fail(c, codec.ErrInvalidUTF8)
			return n
		}
		r.buf = append(r.buf, chunk...)
	}
	if r.left == 0 && r.fin {
		w.finishMessage(c)
	}
	return n
}

// finishMessage delivers the assembled message once its final frame is in.
func (w *Conn) finishMessage(c *conn.Conn) {
	r := w.rx
	if r.discard || c.State() != conn.StateOpen {
		w.endMessage()
		return
	}
	if r.deflate {
		w.inflated(c, r.op, r.buf)
		return
	}
	w.message(c, r.op, r.buf)
}

// rsv1 is the "Per-Message Compressed" bit of a frame header's Rsv field
// (RFC 7692 §6).
const rsv1 = 4

// inflated inflates a compressed message (MaxMessageSize bounds the
// output: 1009 past it; corrupt data is 1007), checks a text message's
// UTF-8 once inflated, and delivers it.
func (w *Conn) inflated(c *conn.Conn, op OpCode, compressed []byte) {
	out, err := w.ep.inflater().Inflate(w.ep.inflateBuf[:0], compressed, w.ep.cfg.MaxMessageSize)
	w.ep.inflateBuf = out[:0]
	if err != nil {
		w.endMessage()
		w.fail(c, err)
		return
	}
	replyDeflate.Inflated.Add(1)
	if op == OpText && !w.utf8.Write(out) {
		w.endMessage()
		w.fail(c, codec.ErrInvalidUTF8)
		return
	}
	w.message(c, op, out)
}

// message delivers one complete data message (a whole single frame, or the
// assembled payload of w.rx) and ends it.
func (w *Conn) message(c *conn.Conn, op OpCode, p []byte) {
	ok := op != OpText || w.utf8.Done()
	w.utf8.Reset()
	if ok {
		c.Loop().Metrics().MessagesIn.Add(1)
		w.ep.h.Message(c, op, p)
	}
	w.endMessage()
	if !ok {
		w.fail(c, codec.ErrInvalidUTF8)
	}
}

// endMessage drops the message being received, if any, and returns its
// state to the pool.
func (w *Conn) endMessage() {
	if r := w.rx; r != nil {
		w.rx = nil
		if cap(r.buf) > maxPooledRx {
			r.buf = nil
		}
		*r = rx{buf: r.buf[:0]}
		rxPool.Put(r)
	}
	w.flags &^= flagInMessage
}

// peerClose answers the peer's close frame (RFC 6455 §5.5.1, §7.4).
func (w *Conn) peerClose(c *conn.Conn, payload []byte) {
	if c.State() != conn.StateOpen { // the answer to our close frame
		c.CloseTransport()
		c.SetState(conn.StateFailed)
		return
	}
	code, _, err := codec.ParseClosePayload(payload)
	if err != nil {
		w.fail(c, err)
		return
	}
	// Echo the code (an empty close gets an empty one) and close the TCP
	// connection first, as the server should (§7.1.1).
	w.finalClose(c, code, "")
}

// finalClose writes one last close frame and closes the transport. The
// state moves first, so nothing, not even the slow-consumer policy's own
// close frame, can follow it (§5.5.1: one close frame per side).
func (w *Conn) finalClose(c *conn.Conn, code codec.StatusCode, reason string) {
	w.endMessage()
	c.SetState(conn.StateFailed)
	buf := codec.AppendCloseFrame(c.Scratch(), code, reason)
	c.SetScratch(buf)
	c.WriteFinal(buf)
	c.CloseTransport()
}

// fail sends a close frame for err and stops reading the connection
// ("Fail the WebSocket Connection", §7.1.7). The write side is shut down at
// once so the peer sees the close frame and then EOF; input is discarded
// until the peer closes or the close timeout fires, so unread data never
// turns our close into a reset.
func (w *Conn) fail(c *conn.Conn, err error) {
	var ce *codec.CloseError
	if !errors.As(err, &ce) {
		ce = &codec.CloseError{Code: codec.StatusInternalError, Reason: "internal error"}
	}
	if ce.Code == codec.StatusProtocolError || ce.Code == codec.StatusInvalidPayload || ce.Code == codec.StatusMessageTooBig {
		c.Loop().Metrics().ProtocolErrors.Add(1)
	}
	switch c.State() {
	case conn.StateOpen:
	case conn.StateClosing: // our close frame is out already
		c.CloseTransport()
		c.SetState(conn.StateFailed)
		return
	default:
		return
	}
	w.sendClose(c, ce.Code, ce.Reason)
	c.SetState(conn.StateFailed)
}

// Close implements conn.Proto: a server-initiated close handshake with code
// and reason. It sends the close frame, stops sending anything else, and
// drops the connection when the peer answers or after the close timeout.
func (w *Conn) Close(c *conn.Conn, code codec.StatusCode, reason string) {
	if c.State() == conn.StateOpen {
		w.sendClose(c, code, reason)
	}
}

// sendClose writes a close frame and moves to StateClosing. The close frame
// goes behind whatever is already queued, so a client that reads its
// backlog still learns why it was closed. If nothing is queued, the write
// side is shut down at once, so the peer sees the close frame and then EOF;
// either way the connection is dropped after the close timeout.
func (w *Conn) sendClose(c *conn.Conn, code codec.StatusCode, reason string) {
	w.endMessage()
	c.SetState(conn.StateClosing) // before writing: a write may re-enter via the slow-consumer check
	buf := codec.AppendCloseFrame(c.Scratch(), code, reason)
	c.SetScratch(buf)
	if !c.WriteFinal(buf) {
		return
	}
	c.ShutdownWrite()
	c.Arm(c.Loop().CloseTicks())
}

// SlowConsumer implements conn.Proto: close 4000 ("slow consumer,
// reconnect"), queued behind the backlog.
func (w *Conn) SlowConsumer(c *conn.Conn) {
	w.sendClose(c, codec.StatusSlowConsumer, "slow consumer")
}

// writeFrame writes one unfragmented frame. Small frames are copied into the
// loop's scratch buffer; large ones go out with writev, without a copy.
func (w *Conn) writeFrame(c *conn.Conn, op OpCode, payload []byte) bool {
	if w.wbits != 0 && op.IsData() && len(payload) >= codec.DeflateMinSize && len(payload) <= 1<<w.wbits {
		buf, start := appendMaybeCompressed(c.Scratch(), op, payload, &replyDeflate)
		c.SetScratch(buf)
		return c.Write(buf[start:])
	}
	if len(payload) <= 4096 {
		buf := codec.AppendFrame(c.Scratch(), op, true, payload)
		c.SetScratch(buf)
		return c.Write(buf)
	}
	hdr := codec.AppendFrameHeader(w.ep.hdr[:0], op, true, len(payload))
	w.ep.iov2[0], w.ep.iov2[1] = hdr, payload
	ok := c.Writev(w.ep.iov2[:])
	w.ep.iov2[0], w.ep.iov2[1] = nil, nil
	return ok
}

// Send implements conn.Proto: one text message.
func (w *Conn) Send(c *conn.Conn, p []byte) bool { return w.writeFrame(c, OpText, p) }

// WriteMessage writes one unfragmented data message with opcode op (text
// or binary) and reports whether the connection is still usable. Loop
// goroutine only.
func (w *Conn) WriteMessage(c *conn.Conn, op OpCode, p []byte) bool {
	return w.writeFrame(c, op, p)
}

// Timer implements conn.Proto: token expiry, then the heartbeat (a ping
// after PingInterval of silence, or every PingInterval with a Heartbeater;
// close 4001 when nothing arrived within PongTimeout after it).
func (w *Conn) Timer(c *conn.Conn) {
	l := c.Loop()
	now := l.Now()
	if exp := w.ep.h.Expiry(c); exp != 0 && now >= exp {
		w.ep.h.Expired(c)
		if c.State() == conn.StateOpen {
			// The handler kept the connection and moved its expiry.
			w.armOpen(c, w.nextBeat(c))
		}
		return
	}
	m := l.Metrics()
	if w.flags&flagAwaitPong != 0 {
		m.HeartbeatTimeouts.Add(1)
		w.finalClose(c, codec.StatusHeartbeatTimeout, "no pong")
		return
	}
	// Idle time without a Heartbeater; time since the last ping with one.
	since := uint64(uint32(now) - w.lastActive)
	if since < w.ep.pingTicks {
		w.armOpen(c, w.ep.pingTicks-since)
		return
	}
	w.flags |= flagAwaitPong
	var ok bool
	if w.ep.beat != nil {
		w.lastActive = uint32(now)
		ok = w.ep.beat.Heartbeat(c)
	} else {
		ok = w.writeFrame(c, OpPing, nil)
	}
	if w.flags&flagAwaitPong == 0 { // the Heartbeater skipped this beat (SkipBeat)
		if ok {
			w.armOpen(c, w.ep.pingTicks)
		}
		return
	}
	m.PingsSent.Add(1)
	if ok {
		w.armOpen(c, w.ep.pongTicks)
	}
}

// SkipBeat is what a Heartbeater's Heartbeat calls when it sends no ping
// this time (Socket.IO's upgrade probe, whose session pings over
// polling): the connection does not wait for a pong, and the next beat
// comes a PingInterval later. Loop goroutine only.
func (w *Conn) SkipBeat() { w.flags &^= flagAwaitPong }

// armOpen arms the timer of an open connection for the given number of
// ticks, or for the tick its credentials expire in if that comes first.
func (w *Conn) armOpen(c *conn.Conn, ticks uint64) {
	if exp := w.ep.h.Expiry(c); exp != 0 && exp <= c.Loop().Now()+ticks {
		c.ArmAt(exp)
		return
	}
	c.Arm(ticks)
}

// Closed implements conn.Proto.
func (w *Conn) Closed(c *conn.Conn) {
	w.endMessage()
	w.ep.h.Closed(c)
}

// PushFormat is the v1 push as one WebSocket text frame (RFC 6455 §5.6):
// the JSON of codec.AppendPush, or of codec.AppendPushAt (with offset and
// epoch) on a durable topic, encoded once per message and shared by every
// WebSocket subscriber on every loop.
var PushFormat = topics.NewFormat("ws-v1", func(dst []byte, m *topics.Message) ([]byte, int) {
	at := len(dst)
	dst = codec.AppendFrameRoom(dst)
	dst = appendPushJSON(dst, m)
	return dst, codec.FinishFrame(dst, at, OpText)
})
