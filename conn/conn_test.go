package conn

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/pushd/pushd/codec"
)

// memTransport is an in-memory Transport: it records what is written and
// lets a test decide how much stays "unsent".
type memTransport struct {
	out      bytes.Buffer
	writevs  [][]int // frame lengths of each Writev call
	outbound int     // reported OutboundBuffered
	closed   bool
}

func (t *memTransport) Write(p []byte) (int, error) { return t.out.Write(p) }
func (t *memTransport) Writev(bs [][]byte) (int, error) {
	var lens []int
	n := 0
	for _, b := range bs {
		t.out.Write(b)
		lens = append(lens, len(b))
		n += len(b)
	}
	t.writevs = append(t.writevs, lens)
	return n, nil
}
func (t *memTransport) OutboundBuffered() int { return t.outbound }
func (t *memTransport) Fd() int               { return -1 }
func (t *memTransport) Close() error          { t.closed = true; return nil }

// lineProto is a minimal protocol for testing the base: it answers "ok\n"
// when accepted, consumes input line by line, echoes each line, and closes
// with a line naming the code.
type lineProto struct {
	lines   []string
	timers  int
	slow    int
	closed  int
	refuse  bool
	goodbye string
}

func (p *lineProto) Serve(c *Conn, req *codec.HTTPRequest, _ []byte) *codec.HTTPError {
	if p.refuse {
		return &codec.HandshakeError{Status: 403, Reason: "refused"}
	}
	c.Accepted(p)
	if c.Write([]byte("ok\n")) {
		c.Arm(10)
	}
	return nil
}

func (p *lineProto) Feed(c *Conn, b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0
	}
	p.lines = append(p.lines, string(b[:i]))
	c.Send(b[:i+1])
	return i + 1
}
func (p *lineProto) Timer(c *Conn)               { p.timers++ }
func (p *lineProto) Send(c *Conn, b []byte) bool { return c.Write(b) }
func (p *lineProto) SlowConsumer(c *Conn)        { p.slow++; p.Close(c, codec.StatusSlowConsumer, "slow") }
func (p *lineProto) Closed(c *Conn)              { p.closed++ }
func (p *lineProto) Close(c *Conn, code codec.StatusCode, reason string) {
	p.goodbye = reason
	c.SetState(StateClosing)
	c.WriteFinal([]byte("bye " + reason + "\n"))
	c.Arm(c.Loop().CloseTicks())
}

type fakeClock struct{ t time.Time }

func (f *fakeClock) Now() time.Time { return f.t }

const upgradeReq = "GET /line HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

func newLineLoop(cfg Config, p *lineProto, extra ...Route) (*Loop, *fakeClock) {
	fc := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := NewLoop(LoopConfig{
		Conn: cfg, Tick: 10 * time.Millisecond, Metrics: new(Metrics), Clock: fc.Now,
		Routes: append([]Route{{Path: "/line", New: func(*Loop) Endpoint { return p }}}, extra...),
	}, nil)
	return l, fc
}

// A routed request reaches its endpoint; pipelined bytes after the head go
// to the protocol; an unknown path gets 404 and a refused one the
// endpoint's answer.
func TestRouting(t *testing.T) {
	p := &lineProto{}
	l, _ := newLineLoop(Config{}, p)
	tr := &memTransport{}
	c := l.Open(tr)
	in := upgradeReq + "one\ntwo\npart"
	n, closeNow := c.Feed([]byte(in))
	if closeNow || c.State() != StateOpen || n != len(in)-len("part") {
		t.Fatalf("consumed %d of %d, close %v, state %v", n, len(in), closeNow, c.State())
	}
	if got := tr.out.String(); got != "ok\none\ntwo\n" || strings.Join(p.lines, ",") != "one,two" {
		t.Fatalf("wrote %q, lines %v", got, p.lines)
	}
	if m := l.Metrics(); m.Open.Load() != 1 || m.Upgrades.Load() != 1 {
		t.Fatalf("open %d upgrades %d", m.Open.Load(), m.Upgrades.Load())
	}
	c.Closed()
	if p.closed != 1 || l.Metrics().Open.Load() != 0 || l.Len() != 0 {
		t.Fatalf("Closed: proto closed %d, open %d, conns %d", p.closed, l.Metrics().Open.Load(), l.Len())
	}

	for _, tc := range []struct {
		path, status string
		refuse       bool
	}{{"/nope", "404", false}, {"/line", "403", true}} {
		p.refuse = tc.refuse
		tr := &memTransport{}
		c := l.Open(tr)
		req := strings.Replace(upgradeReq, "/line", tc.path, 1)
		if n, closeNow := c.Feed([]byte(req)); n != len(req) || !closeNow {
			t.Fatalf("%s: consumed %d, close %v", tc.path, n, closeNow)
		}
		if !strings.HasPrefix(tr.out.String(), "HTTP/1.1 "+tc.status+" ") {
			t.Fatalf("%s: answered %q", tc.path, tr.out.String())
		}
		c.Closed()
	}
	if got := l.Metrics().HandshakeRejected.Load(); got != 2 {
		t.Fatalf("HandshakeRejected = %d", got)
	}
}

// Flush writes every frame queued for a connection with one writev, in
// order, and splits at the iovec limit.
func TestFlushBatchesPerConnection(t *testing.T) {
	l, _ := newLineLoop(Config{}, &lineProto{})
	open := func() (*Conn, *memTransport) { return openLine(l) }
	a, ta := open()
	b, tb := open()
	for i := 0; i < 3; i++ {
		a.Push([]byte{'a', byte('0' + i)})
		if i < 2 {
			b.Push([]byte{'b', byte('0' + i)})
		}
	}
	l.Flush()
	if got := ta.out.String(); got != "a0a1a2" || len(ta.writevs) != 1 {
		t.Fatalf("conn a got %q in %d writevs", got, len(ta.writevs))
	}
	if got := tb.out.String(); got != "b0b1" || len(tb.writevs) != 1 {
		t.Fatalf("conn b got %q in %d writevs", got, len(tb.writevs))
	}
	ta.writevs = nil
	for i := 0; i < 2500; i++ {
		a.Push([]byte{'x'})
	}
	l.Flush()
	if len(ta.writevs) != 3 || len(ta.writevs[0]) != maxIovec || len(ta.writevs[2]) != 2500-2*maxIovec {
		t.Fatalf("2500 frames went out in writevs of %v frames", lens(ta.writevs))
	}
	if m := l.metrics; m.FramesOut.Load() != 2505 || m.Writevs.Load() != 5 {
		t.Fatalf("metrics: frames %d writevs %d", m.FramesOut.Load(), m.Writevs.Load())
	}
	h := l.metrics.PushesPerWritev()
	if h.Count != 5 || h.Sum != 2505 || h.Buckets[2] != 1 || h.Buckets[4] != 2 || h.Buckets[1024] != 5 {
		t.Fatalf("pushes-per-writev histogram %+v", h)
	}
}

// FlushFor writes connection after connection and stops when its budget
// is spent (here at once, with the clock read after every connection: one
// connection per call). Pushes queued in
// between go after a connection's earlier ones, and a direct write to a
// connection whose pushes are still queued writes them first, so every
// connection sees its bytes in the order they were queued or written.
func TestFlushForInSlices(t *testing.T) {
	defer func(n int) { flushClockEvery = n }(flushClockEvery)
	flushClockEvery = 1
	l, _ := newLineLoop(Config{}, &lineProto{})
	open := func() (*Conn, *memTransport) { return openLine(l) }
	a, ta := open()
	b, tb := open()
	c, tc := open()
	a.Push([]byte("a0"))
	b.Push([]byte("b0"))
	c.Push([]byte("c0"))
	if l.FlushFor(0) {
		t.Fatal("FlushFor(0) wrote three connections in one call")
	}
	if ta.out.String() != "a0" || tb.out.Len() != 0 || tc.out.Len() != 0 {
		t.Fatalf("after one slice: a %q b %q c %q", ta.out.String(), tb.out.String(), tc.out.String())
	}
	a.Push([]byte("a1")) // a was written in this flush: queued again, after c
	c.Push([]byte("c1")) // c was not: joins its queue
	if !b.Write([]byte("B")) {
		t.Fatal("direct write failed")
	}
	if tb.out.String() != "b0B" {
		t.Fatalf("b got %q: its queued push must precede a direct write", tb.out.String())
	}
	calls := 1
	for !l.FlushFor(0) {
		calls++
		if calls > 10 {
			t.Fatal("FlushFor(0) never finished")
		}
	}
	if ta.out.String() != "a0a1" || tb.out.String() != "b0B" || tc.out.String() != "c0c1" {
		t.Fatalf("a %q b %q c %q", ta.out.String(), tb.out.String(), tc.out.String())
	}
	if len(tc.writevs) != 1 {
		t.Fatalf("c's two pushes went out in %d writevs, want 1", len(tc.writevs))
	}
	// The outbox is empty again: a full Flush has nothing to write.
	ta.out.Reset()
	l.Flush()
	if ta.out.Len() != 0 || len(l.dirty) != 0 || len(l.out) != 1 {
		t.Fatalf("after the flush completed: wrote %q, %d dirty, %d nodes", ta.out.String(), len(l.dirty), len(l.out)-1)
	}
}

// openLine opens a connection on l's line endpoint and forgets what the
// upgrade wrote, for tests of what comes after.
func openLine(l *Loop) (*Conn, *memTransport) {
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte(upgradeReq))
	tr.out.Reset()
	return c, tr
}

func lens(v [][]int) []int {
	out := make([]int, len(v))
	for i := range v {
		out[i] = len(v[i])
	}
	return out
}

// Past MaxOutbound the protocol's slow-consumer action runs once, and the
// connection takes no more pushes.
func TestSlowConsumerHook(t *testing.T) {
	p := &lineProto{}
	l, fc := newLineLoop(Config{MaxOutbound: 100}, p)
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte(upgradeReq))
	tr.out.Reset()
	tr.outbound = 1000
	c.Push([]byte("x"))
	l.Flush()
	c.Push([]byte("y"))
	l.Flush()
	if p.slow != 1 || p.goodbye != "slow" || l.metrics.SlowConsumers.Load() != 1 {
		t.Fatalf("slow %d goodbye %q counted %d", p.slow, p.goodbye, l.metrics.SlowConsumers.Load())
	}
	if got := tr.out.String(); got != "xbye slow\n" {
		t.Fatalf("wrote %q", got)
	}
	fc.t = fc.t.Add(6 * time.Second)
	l.Advance(fc.t)
	if !tr.closed {
		t.Fatal("not dropped after the close timeout")
	}
}

// A connection that never completes its request head is closed at the
// handshake deadline.
func TestHandshakeDeadline(t *testing.T) {
	l, fc := newLineLoop(Config{HandshakeTimeout: 50 * time.Millisecond}, &lineProto{})
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte("GET /line HTTP/1.1\r\n"))
	fc.t = fc.t.Add(45 * time.Millisecond)
	l.Advance(fc.t)
	if tr.closed {
		t.Fatal("closed before the deadline")
	}
	fc.t = fc.t.Add(20 * time.Millisecond)
	l.Advance(fc.t)
	if !tr.closed || l.metrics.HandshakeTimeouts.Load() != 1 {
		t.Fatalf("closed %v timeouts %d", tr.closed, l.metrics.HandshakeTimeouts.Load())
	}
}

func TestTickFor(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, time.Second},
		{[]time.Duration{25 * time.Second, 10 * time.Second}, time.Second},
		{[]time.Duration{2 * time.Second}, 500 * time.Millisecond},
		{[]time.Duration{100 * time.Millisecond}, 15625 * time.Microsecond},
		{[]time.Duration{time.Microsecond}, 976562 * time.Nanosecond},
		{[]time.Duration{0, -1, 2 * time.Second}, 500 * time.Millisecond},
	} {
		if got := TickFor(tc.in...); got != tc.want {
			t.Errorf("TickFor(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// Slow consumers are judged by progress: one message larger than the cap
// is not a reason to close, a backlog that drains is forgiven, one that
// stops draining is closed after SlowConsumerTimeout, and a backlog past
// HardOutboundFactor × the cap is closed at once.
func TestSlowConsumerByProgress(t *testing.T) {
	const tick = 10 * time.Millisecond
	cfg := Config{MaxOutbound: 1000, SlowConsumerTimeout: 100 * time.Millisecond}
	open := func(t *testing.T) (*Loop, *fakeClock, *Conn, *memTransport, *lineProto) {
		p := &lineProto{}
		l, fc := newLineLoop(cfg, p)
		tr := &memTransport{}
		c := l.Open(tr)
		c.Feed([]byte(upgradeReq))
		return l, fc, c, tr, p
	}
	step := func(l *Loop, fc *fakeClock, d time.Duration) {
		for end := fc.t.Add(d); fc.t.Before(end); {
			fc.t = fc.t.Add(tick)
			l.Advance(fc.t)
		}
	}

	t.Run("one large message, drained", func(t *testing.T) {
		l, fc, c, tr, p := open(t)
		tr.outbound = 2500 // a 2.5× cap message, mostly unsent
		if !c.Write(make([]byte, 2500)) {
			t.Fatal("a reading client was refused a message larger than the cap")
		}
		step(l, fc, 50*time.Millisecond)
		tr.outbound = 1200 // the kernel takes some: progress
		step(l, fc, 80*time.Millisecond)
		tr.outbound = 900 // back under the cap
		step(l, fc, 200*time.Millisecond)
		if p.slow != 0 || c.State() != StateOpen || len(l.lagging) != 0 {
			t.Fatalf("slow %d, state %v, lagging %d", p.slow, c.State(), len(l.lagging))
		}
	})

	t.Run("stops draining", func(t *testing.T) {
		l, fc, c, tr, p := open(t)
		tr.outbound = 2500
		c.Write(make([]byte, 2500))
		step(l, fc, 60*time.Millisecond)
		tr.outbound = 2000 // progress at 60 ms
		step(l, fc, 90*time.Millisecond)
		if p.slow != 0 {
			t.Fatalf("closed %v after its last progress, before the timeout", 90*time.Millisecond)
		}
		step(l, fc, 30*time.Millisecond)
		if p.slow != 1 || p.goodbye != "slow" || l.metrics.SlowConsumers.Load() != 1 {
			t.Fatalf("slow %d goodbye %q counted %d", p.slow, p.goodbye, l.metrics.SlowConsumers.Load())
		}
		c.Push([]byte("x"))
		l.Flush()
		if strings.Contains(tr.out.String(), "x") {
			t.Fatal("a push reached a closed slow consumer")
		}
	})

	t.Run("growing backlog", func(t *testing.T) {
		l, fc, c, tr, p := open(t)
		for i := range 3 {
			tr.outbound = 1500 + 1000*i // pushes pile up faster than it reads
			c.Push(make([]byte, 1000))
			l.Flush()
			step(l, fc, 40*time.Millisecond)
		}
		if p.slow != 1 {
			t.Fatalf("a backlog that only grew was not closed after the timeout (slow %d)", p.slow)
		}
	})

	t.Run("over the hard cap", func(t *testing.T) {
		_, _, c, tr, p := open(t)
		tr.outbound = HardOutboundFactor*1000 + 1 + 10
		if c.Write(make([]byte, 10)) || p.slow != 1 {
			t.Fatalf("a write behind %d buffered bytes was taken (slow %d)", tr.outbound-10, p.slow)
		}
	})
}

// Every idle connection holds a Conn, so its size is memory per connection
// (the 80-byte size class; docs/benchmarks.md has the measured total). A
// new field that pushes it into the next class costs 16 B on every idle
// connection: move such state into the Proto or a map of the few
// connections that need it (as lagging does).
func TestConnSize(t *testing.T) {
	if got := unsafe.Sizeof(Conn{}); got > 80 {
		t.Fatalf("conn.Conn is %d bytes, over its 80-byte size class", got)
	}
}
