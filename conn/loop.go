package conn

import (
	"errors"
	"math"
	"time"
	"unsafe"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/wheel"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/metric"
)

// LoopConfig configures a Loop. Every loop of a server shares one.
type LoopConfig struct {
	Conn    Config        // per-connection limits and timers (zero = defaults)
	Tick    time.Duration // timing-wheel resolution
	Routes  []Route       // the endpoint table
	Metrics *Metrics      // shared counters; must not be nil
	// Clock returns the current time; nil means time.Now. Tests set it.
	Clock func() time.Time
	// Writev, when set, replaces Transport.Writev for flushing pushes. The
	// engine uses it to write with a per-loop iovec array instead of one
	// allocated per call. It runs on the loop goroutine.
	Writev func(tr Transport, bs [][]byte) (int, error)
	// Resume, when set, makes the engine call Feed again soon for a
	// connection whose input buffer may hold its next request: one that
	// arrived while the previous request was held, which no new bytes will
	// announce. It runs on the loop goroutine and must not call Feed
	// itself (the engine's gnet.Conn.Wake queues the call).
	Resume func(tr Transport)
	// Execute, when set, runs fn on the loop goroutine soon, after the
	// work in progress; it may be called from any goroutine, the loop's
	// own included, and reports an error (and never runs fn) once the
	// loop has stopped. It is how work that starts elsewhere (a broker's
	// callback, another loop) reaches the loop: Loop.Execute.
	Execute func(fn func()) error
}

// Loop is the environment shared by the connections of one event loop: the
// timing wheel, the push outbox, scratch buffers, the topic shard and the
// endpoint table. Except where noted, its methods run on that loop's
// goroutine only.
type Loop struct {
	// Immutable after NewLoop.
	cfg        Config
	reqLimits  codec.RequestLimits
	tick       time.Duration
	start      time.Time
	clock      func() time.Time
	closeTicks uint64
	slowTicks  uint64
	hsTicks    uint64
	idleTicks  uint64
	maxHeld    int // input a held request's connection may buffer: a whole next request
	metrics    *Metrics
	shard      *topics.Shard
	endpoints  map[string]*routed
	writev     func(Transport, [][]byte) (int, error)
	resume     func(Transport)
	execute    func(func()) error
	tickers    []Ticker          // endpoints with timers of their own
	drainers   []Drainer         // endpoints with state a graceful stop ends
	flushers   []Flusher         // endpoints with pushes queued outside the outbox
	perWritev  *metric.Histogram // pushes per writev on this loop; read by the metrics collector

	// Owned by the loop goroutine.
	feeding  *Conn  // the connection inside Feed, if any
	cur      uint64 // the real tick as of the last Feed or Advance
	draining bool   // CloseAll ran: responses close their connections
	wheel    *wheel.Wheel[Conn]
	conns    []*Conn
	scratch  []byte
	hdrs     [][2]string // response header scratch
	iov2     [2][]byte   // response head and body for one writev
	out      []outNode   // queued pushes, linked per connection; out[0] is unused
	dirty    []*Conn     // connections with queued pushes
	flushAt  int         // dirty[:flushAt] are written: a FlushFor ran out of time there
	iov      [][]byte    // writev scratch
	// lagging holds the connections whose backlog is over MaxOutbound:
	// their lowest backlog so far and the tick it was reached. Usually
	// empty; an idle connection costs nothing here.
	lagging map[*Conn]lag
}

// lag is a lagging connection's progress: the lowest backlog seen since it
// went over the cap, and the tick of the last progress.
type lag struct {
	low   int
	since uint64
}

type outNode struct {
	b    []byte
	next int32
}

// flushClockEvery is how many connections FlushFor writes between two
// looks at the clock: a writev costs microseconds, the clock tens of
// nanoseconds. A variable for tests.
var flushClockEvery = 8

// maxIovec is the most buffers one writev may take (Linux IOV_MAX).
const maxIovec = 1024

// maxRetainedOut bounds the outbox capacity kept between flushes (16 MiB of
// nodes); topics flushes every 2^18 deliveries, so only a burst of
// unusually large topics goes past it.
const maxRetainedOut = 1 << 19

// NewLoop returns the environment of one event loop. shard may be nil when
// the server has no topic hub. It builds this loop's instance of every
// route's endpoint. Any goroutine; the Loop then belongs to the loop
// goroutine.
func NewLoop(cfg LoopConfig, shard *topics.Shard) *Loop {
	c := cfg.Conn.WithDefaults()
	tick := cfg.Tick
	if tick <= 0 {
		tick = time.Second
	}
	// The parser accepts any Content-Length: the route decides (413 past
	// its MaxBody; WebSocket answers a body with its own 400).
	l := &Loop{
		cfg:       c,
		reqLimits: codec.RequestLimits{MaxHeaderBytes: c.MaxHeaderBytes, MaxHeaders: c.MaxHeaders, MaxBody: math.MaxInt64},
		tick:      tick,
		clock:     cfg.Clock,
		metrics:   cfg.Metrics,
		shard:     shard,
		endpoints: make(map[string]*routed, len(cfg.Routes)),
		scratch:   make([]byte, 0, 4096),
		out:       make([]outNode, 1, 1024),
		iov:       make([][]byte, 0, maxIovec),
		writev:    cfg.Writev,
		resume:    cfg.Resume,
		execute:   cfg.Execute,
		perWritev: metric.NewHistogram(PushesPerWritevBounds),
		lagging:   make(map[*Conn]lag),
	}
	cfg.Metrics.addLoop(l.perWritev)
	l.closeTicks = l.Ticks(c.CloseTimeout)
	l.slowTicks = l.Ticks(c.SlowConsumerTimeout)
	l.hsTicks = l.Ticks(c.HandshakeTimeout)
	l.idleTicks = l.Ticks(c.KeepAliveTimeout)
	if l.clock == nil {
		l.clock = time.Now
	}
	l.start = l.clock()
	if l.writev == nil {
		l.writev = func(tr Transport, bs [][]byte) (int, error) { return tr.Writev(bs) }
	}
	l.wheel = wheel.New(256, connOfTimer, func(c *Conn) { c.onTimer() })
	var maxBody int64
	for _, r := range cfg.Routes {
		ep := r.New(l)
		l.endpoints[r.Path] = &routed{ep: ep, maxBody: max(r.MaxBody, 0)}
		if t, ok := ep.(Ticker); ok {
			l.tickers = append(l.tickers, t)
		}
		if d, ok := ep.(Drainer); ok {
			l.drainers = append(l.drainers, d)
		}
		if f, ok := ep.(Flusher); ok {
			l.flushers = append(l.flushers, f)
		}
		maxBody = max(maxBody, r.MaxBody)
	}
	l.maxHeld = c.MaxHeaderBytes + int(min(maxBody, 1<<30))
	return l
}

// ErrNoExecute is Execute's answer on a loop built without
// LoopConfig.Execute.
var ErrNoExecute = errors.New("conn: the loop has no Execute")

// Execute runs fn on the loop goroutine soon, after the work in progress
// (LoopConfig.Execute): the way a broker's callback or another loop hands
// work to this one. It returns an error, and fn never runs, when the loop
// has stopped or has no Execute. Any goroutine, the loop's own included.
func (l *Loop) Execute(fn func()) error {
	if l.execute == nil {
		return ErrNoExecute
	}
	return l.execute(fn)
}

// Shard returns the loop's topic shard, nil without a hub. Any goroutine.
func (l *Loop) Shard() *topics.Shard { return l.shard }

// Metrics returns the counters the loop's connections update. Any
// goroutine.
func (l *Loop) Metrics() *Metrics { return l.metrics }

// Config returns the per-connection configuration, with defaults filled
// in. Any goroutine.
func (l *Loop) Config() Config { return l.cfg }

// TickDuration returns the timing wheel's resolution. Any goroutine.
func (l *Loop) TickDuration() time.Duration { return l.tick }

// Ticks returns d in whole ticks, rounded up, at least 1. Any goroutine.
func (l *Loop) Ticks(d time.Duration) uint64 {
	n := uint64((d + l.tick - 1) / l.tick)
	if n == 0 {
		n = 1
	}
	return n
}

// Now returns the current wheel tick, as of the last Feed or Advance.
// Loop goroutine only.
func (l *Loop) Now() uint64 { return l.cur }

// Open registers a newly accepted connection and arms its handshake
// deadline. Loop goroutine only.
func (l *Loop) Open(tr Transport) *Conn {
	c := &Conn{l: l, tr: tr, idx: int32(len(l.conns))}
	l.conns = append(l.conns, c)
	l.arm(c, l.hsTicks)
	l.metrics.Accepted.Add(1)
	return c
}

// connOfTimer finds the connection whose timer n is. The node is a field
// of Conn, so its address minus the field's offset is the connection's;
// keeping no back pointer in the node saves a word per connection.
func connOfTimer(n *wheel.Node[Conn]) *Conn {
	return (*Conn)(unsafe.Pointer(uintptr(unsafe.Pointer(n)) - unsafe.Offsetof(Conn{}.timer)))
}

func (l *Loop) remove(c *Conn) {
	last := l.conns[len(l.conns)-1]
	l.conns[c.idx] = last
	last.idx = c.idx
	l.conns[len(l.conns)-1] = nil
	l.conns = l.conns[:len(l.conns)-1]
}

// Len returns the number of connections on the loop. Loop goroutine only.
func (l *Loop) Len() int { return len(l.conns) }

// TickOf returns the wheel tick that t falls in. Loop goroutine only.
func (l *Loop) TickOf(t time.Time) uint64 { return l.tickOf(t) }

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

// Draining reports whether CloseAll has run: the server is stopping, and
// responses close their connections. Loop goroutine only.
func (l *Loop) Draining() bool { return l.draining }

// CloseTicks returns the close timeout in ticks. Any goroutine.
func (l *Loop) CloseTicks() uint64 { return l.closeTicks }

// Advance moves the timing wheel to now, firing due timers: handshake
// deadlines, heartbeat pings, pong timeouts, token expiry and close
// timeouts; then the endpoints' own timers (Ticker). Loop goroutine only (the engine ticker reaches it through
// EventLoop.Execute).
func (l *Loop) Advance(now time.Time) {
	l.cur = l.tickOf(now)
	l.wheel.Advance(l.cur)
	for _, t := range l.tickers {
		t.Advance(l.cur)
	}
	l.sweepLagging()
}

// behind records that c's backlog b is over the cap, as progress if it is
// the lowest since c went over (or the first time).
func (l *Loop) behind(c *Conn, b int) {
	if g, ok := l.lagging[c]; !ok || b < g.low {
		l.lagging[c] = lag{low: b, since: l.cur}
	}
}

// sweepLagging applies the slow-consumer policy's timeout to the lagging
// connections: one whose backlog is back under the cap is forgiven; one
// whose backlog has not fallen below its lowest level for
// SlowConsumerTimeout is closed as a slow consumer.
func (l *Loop) sweepLagging() {
	for c, g := range l.lagging {
		b := c.tr.OutboundBuffered()
		switch {
		case c.state != StateOpen || b <= l.cfg.MaxOutbound:
			delete(l.lagging, c)
		case b < g.low:
			l.lagging[c] = lag{low: b, since: l.cur}
		case l.cur-g.since >= l.slowTicks:
			c.slowConsumer()
		}
	}
}

// CloseAll closes every open connection with code and reason through its
// protocol, ends held requests through the Proto that holds them, and
// drops connections that are reading a request or idle between requests.
// Endpoints with state of their own (Drainer) end it first. From then on
// every response closes its connection. Used for a graceful stop (1001).
// Loop goroutine only.
func (l *Loop) CloseAll(code codec.StatusCode, reason string) {
	l.draining = true
	for _, d := range l.drainers {
		d.CloseAll(code, reason)
	}
	// Close may remove connections from l.conns; walk a copy.
	cs := append([]*Conn(nil), l.conns...)
	for _, c := range cs {
		if c.state <= StateOpen {
			c.Close(code, reason)
		}
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

// Flush writes every push queued since the last complete flush, one writev
// per connection (at most maxIovec frames per call), applies the
// slow-consumer policy, and then lets endpoints that queue pushes of their
// own write them (Flusher). The queued bytes are no longer referenced when
// it returns. Loop goroutine only.
func (l *Loop) Flush() { l.FlushFor(math.MaxInt64) }

// FlushFor is Flush bounded in time: it writes the queued pushes of one
// connection after another until every connection's are written, and
// reports true, or until budget has passed, and reports false. It writes at
// least one connection per call, so repeated calls always finish. Pushes
// queued between two calls are written in order after a connection's
// earlier ones, in the same flush. The call that completes the flush then
// runs the endpoints' Flushers. The queued bytes must stay valid until a
// call reports true (a Flush, or a direct write to a connection, may
// complete part of the work in between). Loop goroutine only.
func (l *Loop) FlushFor(budget time.Duration) bool {
	var frames, calls int64
	start := time.Now()
	i := l.flushAt
	// The length is read on every iteration: a write that closes one
	// connection must not lose a later one's pushes.
	for ; i < len(l.dirty); i++ {
		if n := i - l.flushAt; n > 0 && n%flushClockEvery == 0 && time.Since(start) >= budget {
			break
		}
		c := l.dirty[i]
		l.dirty[i] = nil
		f, n := l.flushConn(c)
		frames += f
		calls += n
	}
	l.metrics.FramesOut.Add(frames)
	l.metrics.Writevs.Add(calls)
	if i < len(l.dirty) {
		l.flushAt = i
		return false
	}
	l.flushAt = 0
	l.dirty = l.dirty[:0]
	clear(l.out)
	if cap(l.out) > maxRetainedOut {
		l.out = make([]outNode, 1, 1024) // give back a one-off spike
	} else {
		l.out = l.out[:1]
	}
	for _, f := range l.flushers {
		f.Flush()
	}
	return true
}

// flushConn writes c's queued pushes, one writev per maxIovec frames, and
// returns the frames and writev calls. c keeps its place in l.dirty; with
// its queue empty, the flush passes over it. Loop goroutine only.
func (l *Loop) flushConn(c *Conn) (frames, calls int64) {
	head := c.qhead
	c.qhead, c.qtail = 0, 0
	if head == 0 || !c.Open() {
		return 0, 0 // written already, or closed by an earlier write
	}
	iov := l.iov[:0]
	wrote := 0
	for j := head; j != 0; j = l.out[j].next {
		iov = append(iov, l.out[j].b)
		wrote += len(l.out[j].b)
		frames++
		if len(iov) == maxIovec || l.out[j].next == 0 {
			calls++
			l.perWritev.Observe(float64(len(iov)))
			_, err := l.writev(c.tr, iov)
			clear(iov)
			iov = iov[:0]
			if err != nil || c.state == StateClosed || !c.checkOutbound(wrote) {
				break
			}
			wrote = 0
		}
	}
	return frames, calls
}

// writeQueued writes c's queued pushes now, ahead of the rest of a flush in
// progress, so that a direct write to c comes after them. Loop goroutine
// only.
func (l *Loop) writeQueued(c *Conn) {
	if c.qhead == 0 {
		return
	}
	frames, calls := l.flushConn(c)
	l.metrics.FramesOut.Add(frames)
	l.metrics.Writevs.Add(calls)
}
