// Package conn is the transport-neutral core of one event loop's
// connections: the per-loop environment (timing wheel, push outbox, scratch
// buffers, endpoint table) and the base of every connection (its socket,
// timer, queued pushes and life-cycle state). A connection speaks HTTP/1.1
// first: the base reads one request at a time (head, then body) and the
// endpoint table routes it by path to an Endpoint, which answers it (a
// static file; the connection then reads the next request), holds it to
// answer later (a long-poll), or takes the connection over with a Proto
// (the WebSocket state machine in conn/ws, an SSE stream in conn/sse) that
// handles the connection from then on.
//
// Everything here belongs to one event loop and is touched only from that
// loop's goroutine, unless a doc comment says otherwise. conn knows nothing
// of gnet: it reads bytes handed to Feed and writes through a Transport.
package conn

import (
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
	StateHandshake State = iota // reading a request head: the first, or the next one on a kept-alive connection
	StateRequest                // a request is in progress: its body is arriving, its endpoint serves it, or holds it to answer later
	StateOpen                   // taken over by an endpoint; its Proto runs
	StateClosing                // the Proto said goodbye (e.g. a close frame) and waits for the peer
	StateFailed                 // the connection failed or is closing after a response; input is discarded until EOF
	StateClosed                 // the transport is closed; nothing may be written
)

// Conn flags. The request-phase bits describe the request in progress and
// cost no field of their own, so an upgraded connection is no larger for
// having spoken HTTP first.
const (
	flagCloseReq   uint8 = 1 << iota // the transport has been asked to close
	flagAccepted                     // an endpoint took the connection over (Accepted): counted as open
	flagKeepAlive                    // the request in progress allows another one after it (RFC 7230 §6.3)
	flagHead                         // the request in progress is a HEAD: its response has no body
	flagBodyUnread                   // the request in progress has a body nobody read: close after the response
	flagIdle                         // between requests: the timer is the keep-alive idle timeout
)

// Conn is the base of one connection, whatever its protocol. It implements
// topics.Subscriber: pushes are queued in the loop's outbox in the
// connection's Format and written by the loop's Flush.
type Conn struct {
	// Immutable after Loop.Open.
	l  *Loop
	tr Transport

	// Owned by the loop goroutine.
	proto  Proto // what took the connection over or holds its request; the loop's *pending while a body arrives; else nil
	timer  wheel.Node[Conn]
	state  State
	flags  uint8
	format uint8 // push encoding (topics.Format.ID); 0: the connection takes no pushes
	idx    int32 // position in l.conns
	qhead  int32 // first queued push in l.out (1-based; 0 = none)
	qtail  int32
}

// Proto is the protocol that runs on a connection once an Endpoint has
// taken it over (Accepted): the WebSocket state machine, an SSE stream, an
// Engine.IO transport; or the state of a request an Endpoint holds to
// answer later (Hold). Every method runs on the loop goroutine and receives
// the connection, so a Proto needs no pointer back to it.
type Proto interface {
	// Feed processes bytes received after the request head, starting with
	// the first byte not yet consumed, and returns how many it consumed;
	// the caller keeps the rest and calls again when more arrive. It is
	// called only while the state is StateOpen or StateClosing, never for
	// a held request (its client's next bytes wait until RequestDone).
	Feed(c *Conn, p []byte) int
	// Timer runs when the connection's timer fires in StateOpen, or while
	// the Proto holds the connection's request.
	Timer(c *Conn)
	// Send writes one complete application message (for the v1 protocol,
	// a JSON object) in the protocol's framing, and reports whether the
	// connection is still usable.
	Send(c *Conn, p []byte) bool
	// Close ends the connection with a protocol-level reason: code is a
	// pushd close code (docs/protocol.md §6), which the protocol maps onto
	// its own means (a WebSocket close frame, an SSE event, …).
	Close(c *Conn, code codec.StatusCode, reason string)
	// SlowConsumer runs once when the connection's unsent bytes pass
	// Config.MaxOutbound while it is open; it must stop the connection
	// taking pushes (for example by closing it), as the policy requires.
	SlowConsumer(c *Conn)
	// Closed runs once when the transport has closed, for any reason.
	Closed(c *Conn)
}

// State returns the connection's state. Loop goroutine only.
func (c *Conn) State() State { return c.state }

// SetState moves the connection to s, one of StateOpen, StateClosing or
// StateFailed. A Proto calls it as its protocol's life cycle moves on;
// nothing is written once the state leaves StateOpen except by the Proto's
// own final writes (WriteFinal). Loop goroutine only.
func (c *Conn) SetState(s State) {
	if c.state != StateClosed {
		c.state = s
	}
}

// Loop returns the loop the connection belongs to. Any goroutine.
func (c *Conn) Loop() *Loop { return c.l }

// Proto returns the protocol running on the connection, nil before an
// endpoint accepted it. Loop goroutine only.
func (c *Conn) Proto() Proto { return c.proto }

// SetFormat sets the wire format of the pushes this connection takes; nil
// stops it taking any. Loop goroutine only.
func (c *Conn) SetFormat(f *topics.Format) {
	c.format = 0
	if f != nil {
		c.format = f.ID()
	}
}

// Feed processes bytes received from the peer, starting with the first byte
// not yet consumed. It returns how many bytes it consumed; the caller keeps
// the rest (a partial request head or frame, or the next request while one
// is held) and calls Feed again when more arrive. close reports that the
// transport should be closed now, after what was written is flushed. Feed
// never blocks. Loop goroutine only.
//
// A Proto may modify p in place (WebSocket unmasks frames in place), so p
// must be writable and not used by the caller for anything else afterwards.
func (c *Conn) Feed(p []byte) (n int, close bool) {
	c.l.metrics.BytesFed.Add(int64(len(p)))
	c.l.feeding = c
	c.l.cur = c.l.tickOf(c.l.clock())
	defer func() { c.l.feeding = nil }()
	for {
		var m int
		switch c.state {
		case StateHandshake:
			m = c.readHead(p[n:])
		case StateRequest:
			m = c.readRequest(p[n:])
		case StateOpen, StateClosing:
			m = c.proto.Feed(c, p[n:])
		case StateFailed:
			m = len(p) - n // discard everything until the peer closes
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, c.flags&flagCloseReq != 0 && c.state != StateClosed
}

// Reject answers the request in progress with an HTTP error and closes the
// connection: the answer to a request that cannot be trusted or served
// (after a bad head, the framing of whatever follows is unknown, RFC 7230
// §3.3.3). Loop goroutine only.
func (c *Conn) Reject(he *codec.HandshakeError) {
	c.l.metrics.HandshakeRejected.Add(1)
	buf := codec.AppendHTTPError(c.l.scratch[:0], he.Status, he.Reason, he.Header...)
	c.l.scratch = buf[:0]
	c.Write(buf)
	c.CloseTransport()
}

// Accepted is what an Endpoint's Serve calls when it takes the connection
// over, before it writes its answer: the connection moves to StateOpen
// with p as its protocol, and is counted as open (if the answer's write
// then fails, Closed undoes the count). The timer is the Proto's from then
// on. It panics outside Serve. Loop goroutine only.
func (c *Conn) Accepted(p Proto) {
	if p == nil || c.state != StateRequest || c.proto != nil {
		panic("conn: Accepted outside Serve")
	}
	c.proto = p
	c.state = StateOpen
	c.flags |= flagAccepted
	c.l.metrics.Upgrades.Add(1)
	c.l.metrics.Open.Add(1)
}

// CloseTransport asks the transport to close after flushing. Inside Feed it
// only sets a flag, and Feed's caller closes the connection synchronously.
// Loop goroutine only.
func (c *Conn) CloseTransport() {
	if c.flags&flagCloseReq == 0 && c.state != StateClosed {
		c.flags |= flagCloseReq
		if c.l.feeding != c {
			_ = c.tr.Close()
		}
	}
}

// ShutdownWrite half-closes the socket (SHUT_WR) if nothing is waiting to
// be sent, so the peer reads what was written and then EOF. Loop goroutine
// only.
func (c *Conn) ShutdownWrite() {
	if c.state != StateClosed && c.tr.OutboundBuffered() == 0 {
		_ = unix.Shutdown(c.tr.Fd(), unix.SHUT_WR)
	}
}

// Writable reports whether anything but a Proto's final write may be
// written: only while reading or serving a request or in StateOpen, and not
// once closing was requested. Loop goroutine only.
func (c *Conn) Writable() bool {
	return c.state <= StateOpen && c.flags&flagCloseReq == 0
}

// Write writes p if the connection is writable, applies the slow-consumer
// policy, and reports whether the connection is still usable. p may be
// reused when Write returns. Loop goroutine only.
func (c *Conn) Write(p []byte) bool {
	if !c.Writable() {
		return false
	}
	if _, err := c.tr.Write(p); err != nil || c.state == StateClosed {
		return false
	}
	return c.checkOutbound(len(p))
}

// Writev writes bs with one writev(2) (through the loop's allocation-free
// path) if the connection is writable, applies the slow-consumer policy,
// and reports whether the connection is still usable. Loop goroutine only.
func (c *Conn) Writev(bs [][]byte) bool {
	if !c.Writable() {
		return false
	}
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	if _, err := c.l.writev(c.tr, bs); err != nil || c.state == StateClosed {
		return false
	}
	return c.checkOutbound(n)
}

// WriteFinal writes p whatever the state, short of closed, without the
// slow-consumer check: a protocol's last words (a close frame) go out even
// behind a backlog. It reports whether the write succeeded. Loop goroutine
// only.
func (c *Conn) WriteFinal(p []byte) bool {
	if c.state == StateClosed {
		return false
	}
	_, err := c.tr.Write(p)
	return err == nil && c.state != StateClosed
}

// Scratch returns the loop's scratch buffer, emptied, for building one
// write; hand it back with SetScratch (its grown capacity is kept). It is
// shared by every connection of the loop: use it only until the write.
// Loop goroutine only.
func (c *Conn) Scratch() []byte { return c.l.scratch[:0] }

// SetScratch hands back the buffer Scratch returned. Loop goroutine only.
func (c *Conn) SetScratch(b []byte) { c.l.scratch = b[:0] }

// checkOutbound is the slow-consumer policy, in one place, applied after
// every write of wrote bytes. A client that reads is not slow because one
// message is large; a client whose backlog stays above the cap without
// draining is:
//
//   - while the unsent backlog is at most MaxOutbound, all is well;
//   - above it, the connection is behind: it keeps taking pushes, and the
//     loop watches it (sweepBehind, every tick). If the backlog does not
//     fall below its lowest level so far within SlowConsumerTimeout, the
//     client is not keeping up;
//   - a backlog over HardOutboundFactor × MaxOutbound before this write
//     (so a single large message to an empty buffer never counts) means
//     the same at once, which bounds the memory one client can hold.
//
// A slow consumer is counted and its Proto stops it taking pushes
// (WebSocket: close 4000 "slow consumer, reconnect", queued behind the
// backlog, which the close timeout then bounds; SSE: a close event, then
// the end of the stream). A client that sends HTTP requests without
// reading the responses (pipelining a file again and again) meets the
// hard cap and is closed. checkOutbound reports whether the connection is
// still usable.
func (c *Conn) checkOutbound(wrote int) bool {
	b := c.tr.OutboundBuffered()
	if b <= c.l.cfg.MaxOutbound {
		return true
	}
	hard := b-wrote > HardOutboundFactor*c.l.cfg.MaxOutbound
	switch c.state {
	case StateOpen:
	case StateHandshake, StateRequest:
		if hard && c.flags&flagCloseReq == 0 {
			c.l.metrics.SlowConsumers.Add(1)
			c.CloseTransport()
		}
		return !hard
	default:
		return false
	}
	if hard {
		c.slowConsumer()
		return false
	}
	c.l.behind(c, b)
	return true
}

// slowConsumer closes c as a slow consumer.
func (c *Conn) slowConsumer() {
	delete(c.l.lagging, c)
	c.l.metrics.SlowConsumers.Add(1)
	c.proto.SlowConsumer(c)
}

// Send writes one complete application message through the connection's
// protocol (session.Peer). Loop goroutine only.
func (c *Conn) Send(p []byte) bool {
	if c.proto == nil {
		return false
	}
	return c.proto.Send(c, p)
}

// Close ends the connection with a pushd close code through its protocol
// (session.Peer), or through the Proto holding its request. Before an
// endpoint took it over or held its request, it just closes the transport.
// Loop goroutine only.
func (c *Conn) Close(code codec.StatusCode, reason string) {
	switch {
	case c.proto != nil && c.state != StateClosed:
		c.proto.Close(c, code, reason)
	case c.state == StateHandshake, c.state == StateRequest:
		c.CloseTransport()
	}
}

// HistoryLost implements topics.LossNotifier: a durable topic's live
// stream lost messages the history no longer holds, or the history was
// replaced. The connection is closed with 4003, in the reconnect range, so
// the client reconnects and resumes from its last position; the resume then
// says recovered:false with the reason. Loop goroutine only.
func (c *Conn) HistoryLost(_ *topics.Subscription, reason string) {
	if !c.Open() {
		return
	}
	c.l.metrics.HistoryLost.Add(1)
	c.Close(codec.StatusHistoryLost, "history lost: "+reason)
}

// Open reports whether the connection is open and takes pushes and
// subscriptions. Loop goroutine only.
func (c *Conn) Open() bool { return c.state == StateOpen && c.flags&flagCloseReq == 0 }

// Deliver queues a push for the next Flush, in the connection's format. It
// implements topics.Subscriber. Loop goroutine only.
func (c *Conn) Deliver(m *topics.Message) {
	if !c.Open() || c.format == 0 {
		c.l.metrics.DroppedClosing.Add(1)
		return
	}
	c.l.queue(c, m.BytesOf(c.format))
}

// Push queues p, which must stay valid until the loop's next Flush, for
// writing with the connection's next batch of pushes. Loop goroutine only.
func (c *Conn) Push(p []byte) {
	if c.Open() {
		c.l.queue(c, p)
	}
}

// Arm schedules the connection's timer to fire no sooner than ticks full
// ticks from now. Loop goroutine only.
func (c *Conn) Arm(ticks uint64) { c.l.arm(c, ticks) }

// ArmAt schedules the connection's timer to fire at the wheel tick at (or
// the next tick if that has passed). Loop goroutine only.
func (c *Conn) ArmAt(at uint64) { c.l.wheel.ScheduleAt(&c.timer, at) }

// onTimer runs when the connection's timer fires.
func (c *Conn) onTimer() {
	switch c.state {
	case StateHandshake:
		if c.flags&flagIdle != 0 {
			c.l.metrics.IdleTimeouts.Add(1)
		} else {
			c.l.metrics.HandshakeTimeouts.Add(1)
		}
		c.CloseTransport()
	case StateRequest, StateOpen:
		if c.proto == nil { // inside Serve, which arms nothing; never leak
			c.CloseTransport()
			return
		}
		c.proto.Timer(c)
	case StateClosing, StateFailed:
		c.CloseTransport()
	}
}

// Closed tells the connection that its transport has closed, for any
// reason. It releases everything the connection holds. It is called by the
// transport's owner (netpoll's OnClose), on the loop goroutine, possibly from
// inside a Write that failed.
func (c *Conn) Closed() {
	if c.state == StateClosed {
		return
	}
	c.state = StateClosed
	c.l.wheel.Stop(&c.timer)
	delete(c.l.lagging, c)
	if c.proto != nil {
		c.proto.Closed(c)
	}
	c.l.remove(c)
	if c.flags&flagAccepted != 0 {
		c.l.metrics.Open.Add(-1)
	}
}
