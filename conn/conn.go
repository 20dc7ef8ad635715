// Package conn is the transport-neutral core of one event loop's
// connections: the per-loop environment (timing wheel, push outbox, scratch
// buffers, endpoint table) and the base of every connection (its socket,
// timer, queued pushes and life-cycle state). A connection starts by
// sending an HTTP/1.1 request head; the endpoint table routes it by path to
// an Endpoint, whose Proto (the WebSocket state machine in conn/ws, later
// SSE or Engine.IO) handles the connection from then on.
//
// Everything here belongs to one event loop and is touched only from that
// loop's goroutine, unless a doc comment says otherwise. conn knows nothing
// of gnet: it reads bytes handed to Feed and writes through a Transport.
package conn

import (
	"errors"

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
	StateHandshake State = iota // waiting for a complete request head
	StateOpen                   // accepted by an endpoint; its Proto runs
	StateClosing                // the Proto said goodbye (e.g. a close frame) and waits for the peer
	StateFailed                 // the connection failed; input is discarded until EOF
	StateClosed                 // the transport is closed; nothing may be written
)

// Conn flags.
const (
	flagCloseReq uint8 = 1 << iota // the transport has been asked to close
)

// Conn is the base of one connection, whatever its protocol. It implements
// topics.Subscriber: pushes are queued in the loop's outbox in the
// connection's Format and written by the loop's Flush.
type Conn struct {
	// Immutable after Loop.Open.
	l  *Loop
	tr Transport

	// Owned by the loop goroutine.
	proto  Proto          // nil until an endpoint accepted the request head
	format *topics.Format // push encoding; nil: the connection takes no pushes
	timer  wheel.Node[Conn]
	state  State
	flags  uint8
	idx    int32 // position in l.conns
	qhead  int32 // first queued push in l.out (1-based; 0 = none)
	qtail  int32
}

// Proto is the protocol that runs on a connection once an Endpoint has
// accepted its request head: the WebSocket state machine, an SSE stream, an
// Engine.IO transport. Every method runs on the loop goroutine and receives
// the connection, so a Proto needs no pointer back to it.
type Proto interface {
	// Feed processes bytes received after the request head, starting with
	// the first byte not yet consumed, and returns how many it consumed;
	// the caller keeps the rest and calls again when more arrive. It is
	// called only while the state is StateOpen or StateClosing.
	Feed(c *Conn, p []byte) int
	// Timer runs when the connection's timer fires in StateOpen.
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
func (c *Conn) SetFormat(f *topics.Format) { c.format = f }

// Feed processes bytes received from the peer, starting with the first byte
// not yet consumed. It returns how many bytes it consumed; the caller keeps
// the rest (a partial request head or frame) and calls Feed again when more
// arrive. close reports that the transport should be closed now, after what
// was written is flushed. Feed never blocks. Loop goroutine only.
//
// A Proto may modify p in place (WebSocket unmasks frames in place), so p
// must be writable and not used by the caller for anything else afterwards.
func (c *Conn) Feed(p []byte) (n int, close bool) {
	c.l.feeding = c
	c.l.cur = c.l.tickOf(c.l.clock())
	defer func() { c.l.feeding = nil }()
	if c.state == StateHandshake {
		n = c.handshake(p)
	}
	for c.state == StateOpen || c.state == StateClosing {
		m := c.proto.Feed(c, p[n:])
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
		c.Reject(he)
		return len(p)
	}
	ep := c.l.route(req.Path)
	if ep == nil {
		c.Reject(&codec.HandshakeError{Status: 404, Reason: "not found"})
		return len(p)
	}
	if herr := ep.Accept(c, &req); herr != nil {
		if c.state == StateHandshake {
			c.Reject(herr)
		}
		return len(p)
	}
	if c.state != StateOpen && c.state != StateClosing {
		return len(p) // accepted, but the answer could not be written
	}
	return n
}

// Reject answers the request head with an HTTP error and closes the
// connection. Loop goroutine only.
func (c *Conn) Reject(he *codec.HandshakeError) {
	c.l.metrics.HandshakeRejected.Add(1)
	buf := codec.AppendHTTPError(c.l.scratch[:0], he.Status, he.Reason, he.Header...)
	c.l.scratch = buf[:0]
	c.Write(buf)
	c.CloseTransport()
}

// Accepted is what an Endpoint's Accept calls once it takes the connection,
// before it writes its answer: the connection moves to StateOpen with p as
// its protocol, and is counted as open (if the answer's write then fails,
// Closed undoes the count). Loop goroutine only.
func (c *Conn) Accepted(p Proto) {
	c.proto = p
	c.state = StateOpen
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
// written: only in StateHandshake or StateOpen, and not once closing was
// requested. Loop goroutine only.
func (c *Conn) Writable() bool {
	return (c.state == StateHandshake || c.state == StateOpen) && c.flags&flagCloseReq == 0
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
	return c.checkOutbound()
}

// Writev writes bs with one writev(2) (through the loop's allocation-free
// path) if the connection is writable, applies the slow-consumer policy,
// and reports whether the connection is still usable. Loop goroutine only.
func (c *Conn) Writev(bs [][]byte) bool {
	if !c.Writable() {
		return false
	}
	if _, err := c.l.writev(c.tr, bs); err != nil || c.state == StateClosed {
		return false
	}
	return c.checkOutbound()
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

// checkOutbound is the slow-consumer policy, in one place: when the bytes a
// connection has not taken exceed MaxOutbound, the connection is counted as
// a slow consumer and its Proto stops it taking pushes (WebSocket: close
// 4000 "slow consumer, reconnect", queued behind the backlog, which the
// close timeout then bounds). It reports whether the connection is still
// usable.
func (c *Conn) checkOutbound() bool {
	if c.tr.OutboundBuffered() <= c.l.cfg.MaxOutbound {
		return true
	}
	if c.state == StateOpen {
		c.l.metrics.SlowConsumers.Add(1)
		c.proto.SlowConsumer(c)
	}
	return false
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
// (session.Peer). Before an endpoint accepted it, it just closes the
// transport. Loop goroutine only.
func (c *Conn) Close(code codec.StatusCode, reason string) {
	switch {
	case c.proto != nil && c.state != StateClosed:
		c.proto.Close(c, code, reason)
	case c.state == StateHandshake:
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
	if !c.Open() || c.format == nil {
		c.l.metrics.DroppedClosing.Add(1)
		return
	}
	c.l.queue(c, m.Bytes(c.format))
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
		c.l.metrics.HandshakeTimeouts.Add(1)
		c.CloseTransport()
	case StateOpen:
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
	accepted := c.proto != nil
	c.state = StateClosed
	c.l.wheel.Stop(&c.timer)
	if accepted {
		c.proto.Closed(c)
	}
	c.l.remove(c)
	if accepted {
		c.l.metrics.Open.Add(-1)
	}
}
