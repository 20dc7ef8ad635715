package conn

import (
	"time"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/wheel"
	"github.com/pushd/pushd/topics"
)

// Handler is what runs on top of an open connection: the pushd protocol
// session or the echo endpoint. Its methods run on the loop goroutine.
type Handler interface {
	// Open runs right after the 101 response was written.
	Open(c *Conn, req *codec.Request)
	// Message runs for each complete data message. p is valid only during
	// the call.
	Message(c *Conn, op ws.OpCode, p []byte)
	// Closed runs once when the transport has closed.
	Closed(c *Conn)
}

// LoopConfig configures a Loop. Every loop of a server shares one.
type LoopConfig struct {
	Conn     Config        // per-connection limits and timers (zero = defaults)
	Tick     time.Duration // timing-wheel resolution
	WSPath   string        // pushd protocol endpoint; "" = none
	EchoPath string        // echo endpoint; "" = none
	Metrics  *Metrics      // shared counters; must not be nil
	// Clock returns the current time; nil means time.Now. Tests set it.
	Clock func() time.Time
	// Writev, when set, replaces Transport.Writev for flushing pushes. The
	// engine uses it to write with a per-loop iovec array instead of one
	// allocated per call. It runs on the loop goroutine.
	Writev func(tr Transport, bs [][]byte) (int, error)

	// Admit, when set, decides whether a valid upgrade request to the
	// protocol endpoint may proceed, before the 101 is written: it returns
	// the client's identity (nil: anonymous) and the subprotocol to echo,
	// or the HTTP rejection. It runs on the loop goroutine and must not
	// block.
	Admit func(req *codec.Request) (Identity, string, *codec.HandshakeError)
	// PersonalTopic, when set, names the topic every authenticated
	// connection is subscribed to at open (e.g. "user.<sub>"); "" means
	// none. It runs on the loop goroutine.
	PersonalTopic func(Identity) string
	// Publish, when set, lets clients publish with the publish command
	// (still subject to Identity.CanPublish). It may be called on the loop
	// goroutine and must not block for long.
	Publish func(topic string, data []byte) error
}

// Identity is an authenticated client, as conn needs to see it.
type Identity interface {
	// Subject is the user ID.
	Subject() string
	// Expiry is when the credentials expire; the zero time means never.
	Expiry() time.Time
	// CanSubscribe reports whether the client may subscribe to topic.
	CanSubscribe(topic string) bool
	// CanPublish reports whether the client may publish to topic.
	CanPublish(topic string) bool
}

// Loop is the environment shared by the connections of one event loop: the
// timing wheel, the push outbox, scratch buffers and the topic shard.
// Except where noted, its methods run on that loop's goroutine only.
type Loop struct {
	// Immutable after NewLoop.
	cfg        Config
	upLimits   codec.UpgradeLimits
	tick       time.Duration
	start      time.Time
	clock      func() time.Time
	pingTicks  uint64
	pongTicks  uint64
	closeTicks uint64
	hsTicks    uint64
	wsPath     string
	echoPath   string
	metrics    *Metrics
	shard      *topics.Shard
	proto      protoHandler
	echo       echoHandler
	writev     func(Transport, [][]byte) (int, error)
	admit      func(*codec.Request) (Identity, string, *codec.HandshakeError)
	personal   func(Identity) string
	publish    func(string, []byte) error

	// Owned by the loop goroutine.
	feeding *Conn  // the connection inside Feed, if any
	cur     uint64 // the real tick as of the last Feed or Advance
	wheel   *wheel.Wheel[Conn]
	conns   []*Conn
	scratch []byte
	hdr     [14]byte
	iov2    [2][]byte
	out     []outNode // queued pushes, linked per connection; out[0] is unused
	dirty   []*Conn   // connections with queued pushes
	iov     [][]byte  // writev scratch
}

type outNode struct {
	b    []byte
	next int32
}

// maxIovec is the most buffers one writev may take (Linux IOV_MAX).
const maxIovec = 1024

// maxRetainedOut bounds the outbox capacity kept between flushes (16 MiB of
// nodes); topics flushes every 2^18 deliveries, so only a burst of
// unusually large topics goes past it.
const maxRetainedOut = 1 << 19

// NewLoop returns the environment of one event loop. shard may be nil when
// the server has no topic hub. Any goroutine; the Loop then belongs to the
// loop goroutine.
func NewLoop(cfg LoopConfig, shard *topics.Shard) *Loop {
	c := cfg.Conn.WithDefaults()
	tick := cfg.Tick
	if tick <= 0 {
		tick = time.Second
	}
	ticks := func(d time.Duration) uint64 {
		n := uint64((d + tick - 1) / tick)
		if n == 0 {
			n = 1
		}
		return n
	}
	l := &Loop{
		cfg:        c,
		upLimits:   codec.UpgradeLimits{MaxHeaderBytes: c.MaxHeaderBytes, MaxHeaders: c.MaxHeaders},
		tick:       tick,
		clock:      cfg.Clock,
		pingTicks:  ticks(c.PingInterval),
		pongTicks:  ticks(c.PongTimeout),
		closeTicks: ticks(c.CloseTimeout),
		hsTicks:    ticks(c.HandshakeTimeout),
		wsPath:     cfg.WSPath,
		echoPath:   cfg.EchoPath,
		metrics:    cfg.Metrics,
		shard:      shard,
		scratch:    make([]byte, 0, 4096),
		out:        make([]outNode, 1, 1024),
		iov:        make([][]byte, 0, maxIovec),
		writev:     cfg.Writev,
		admit:      cfg.Admit,
		personal:   cfg.PersonalTopic,
		publish:    cfg.Publish,
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	l.start = l.clock()
	if l.writev == nil {
		l.writev = func(tr Transport, bs [][]byte) (int, error) { return tr.Writev(bs) }
	}
	l.wheel = wheel.New(256, func(c *Conn) { c.onTimer() })
	return l
}

// Open registers a newly accepted connection and arms its handshake
// deadline. Loop goroutine only.
func (l *Loop) Open(tr Transport) *Conn {
	c := &Conn{l: l, tr: tr, idx: int32(len(l.conns))}
	c.timer.Init(c)
	l.conns = append(l.conns, c)
	l.arm(c, l.hsTicks)
	l.metrics.Accepted.Add(1)
	return c
}

func (l *Loop) remove(c *Conn) {
	last := l.conns[len(l.conns)-1]
	l.conns[c.idx] = last
	last.idx = c.idx
	l.conns[len(l.conns)-1] = nil
	l.conns = l.conns[:len(l.conns)-1]
}

// Len returns the number of connections on the loop.
func (l *Loop) Len() int { return len(l.conns) }

// route picks the handler for an upgrade request and admits the client,
// or returns the rejection.
func (l *Loop) route(req *codec.Request) (Handler, Identity, string, *codec.HandshakeError) {
	switch {
	case req.Path == l.wsPath && l.wsPath != "":
		if l.admit == nil {
			return &l.proto, nil, "", nil
		}
		id, proto, herr := l.admit(req)
		return &l.proto, id, proto, herr
	case req.Path == l.echoPath && l.echoPath != "":
		return &l.echo, nil, "", nil
	}
	return nil, nil, "", &codec.HandshakeError{Status: 404, Reason: "not found"}
}

// tickOf returns the wheel tick that t falls in.
func (l *Loop) tickOf(t time.Time) uint64 {
	if d := t.Sub(l.start); d > 0 {
		return uint64(d / l.tick)
	}
	return 0
}

// arm schedules c's timer to fire no sooner than ticks full ticks from now.
// It reads the clock rather than the wheel, which lags real time by up to
// a ticker period plus the hop onto the loop, and rounds up by one tick: a
// timer may fire up to a tick late, never early.
func (l *Loop) arm(c *Conn, ticks uint64) {
	l.wheel.ScheduleAt(&c.timer, l.tickOf(l.clock())+ticks+1)
}

// Advance moves the timing wheel to now, firing due timers: handshake
// deadlines, heartbeat pings, pong timeouts, token expiry and close
// timeouts. Loop goroutine only (the engine ticker reaches it through
// EventLoop.Execute).
func (l *Loop) Advance(now time.Time) {
	l.cur = l.tickOf(now)
	l.wheel.Advance(l.cur)
}

// CloseAll starts the close handshake on every open connection with code
// and reason, and drops connections still in the handshake. Used for a
// graceful stop (1001). Loop goroutine only.
func (l *Loop) CloseAll(code codec.StatusCode, reason string) {
	// CloseWith may remove connections from l.conns; walk a copy.
	cs := append([]*Conn(nil), l.conns...)
	for _, c := range cs {
		c.CloseWith(code, reason)
	}
}

func (l *Loop) queue(c *Conn, b []byte) {
	i := int32(len(l.out))
	l.out = append(l.out, outNode{b: b})
	if c.qhead == 0 {
		c.qhead = i
		l.dirty = append(l.dirty, c)
	} else {
		l.out[c.qtail].next = i
	}
	c.qtail = i
}

// Flush writes every push queued since the last Flush, one writev per
// connection (at most maxIovec frames per call), and applies the
// slow-consumer policy. The queued bytes must stay valid until Flush
// returns; after it they are no longer referenced. Loop goroutine only.
func (l *Loop) Flush() {
	var frames, calls int64
	for i, c := range l.dirty {
		l.dirty[i] = nil
		head := c.qhead
		c.qhead, c.qtail = 0, 0
		if c.state != StateOpen || c.flags&flagCloseReq != 0 {
			continue // closed by an earlier write in this flush
		}
		iov := l.iov[:0]
		for j := head; j != 0; j = l.out[j].next {
			iov = append(iov, l.out[j].b)
			frames++
			if len(iov) == maxIovec || l.out[j].next == 0 {
				calls++
				_, err := l.writev(c.tr, iov)
				clear(iov)
				iov = iov[:0]
				if err != nil || c.state == StateClosed || !c.checkOutbound() {
					break
				}
			}
		}
	}
	l.dirty = l.dirty[:0]
	clear(l.out)
	if cap(l.out) > maxRetainedOut {
		l.out = make([]outNode, 1, 1024) // give back a one-off spike
	} else {
		l.out = l.out[:1]
	}
	l.metrics.FramesOut.Add(frames)
	l.metrics.Writevs.Add(calls)
}
