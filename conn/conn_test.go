package conn

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

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

// fakeClock is a test clock that moves only when told.
type fakeClock struct{ t time.Time }

func (f *fakeClock) Now() time.Time { return f.t }

const testTick = 10 * time.Millisecond

func newTestLoop(cfg Config) *Loop {
	return newTestLoopWith(LoopConfig{Conn: cfg})
}

// newTestLoopWith fills in the tick, paths, metrics and a fake clock.
func newTestLoopWith(lc LoopConfig) *Loop {
	if lc.Tick == 0 {
		lc.Tick = testTick
	}
	lc.WSPath, lc.EchoPath, lc.Metrics = "/ws", "/echo", new(Metrics)
	fc := &fakeClock{t: time.Unix(1_000_000, 0)}
	lc.Clock = fc.Now
	l := NewLoop(lc, nil)
	clocks[l] = fc
	return l
}

var clocks = map[*Loop]*fakeClock{}

// advance moves the loop's clock forward by d and runs due timers.
func advance(l *Loop, d time.Duration) {
	fc := clocks[l]
	fc.t = fc.t.Add(d)
	l.Advance(fc.t)
}

const upgradeReq = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// openConn returns a connection past the upgrade, with its output cleared.
func openConn(t *testing.T, l *Loop, path string) (*Conn, *memTransport) {
	t.Helper()
	tr := &memTransport{}
	c := l.Open(tr)
	req := strings.Replace(upgradeReq, "/echo", path, 1)
	if n, closeNow := c.Feed([]byte(req)); n != len(req) || closeNow || c.State() != StateOpen {
		t.Fatalf("upgrade: consumed %d of %d, close %v, state %v: %q", n, len(req), closeNow, c.State(), tr.out.String())
	}
	if !strings.HasPrefix(tr.out.String(), "HTTP/1.1 101 ") {
		t.Fatalf("no 101: %q", tr.out.String())
	}
	tr.out.Reset()
	return c, tr
}

// clientFrame builds a masked client frame.
func clientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	mask := [4]byte{1, 2, 3, 4}
	b := []byte{byte(op), 0x80}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b[1] |= byte(n)
	case n < 1<<16:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= mask[i%4]
	}
	return b
}

// A frame fed one byte at a time is consumed only once complete, and
// nothing is lost between calls.
func TestFeedKeepsPartialFrames(t *testing.T) {
	l := newTestLoop(Config{})
	c, tr := openConn(t, l, "/echo")
	in := append(clientFrame(ws.OpText, true, []byte("hello")), clientFrame(ws.OpBinary, true, []byte{0, 1, 2})...)
	pending := []byte{}
	for _, b := range in {
		pending = append(pending, b)
		n, closeNow := c.Feed(pending)
		if closeNow {
			t.Fatal("closed")
		}
		pending = pending[n:]
	}
	if len(pending) != 0 {
		t.Fatalf("%d bytes left unconsumed", len(pending))
	}
	want := append(codec.AppendFrame(nil, ws.OpText, true, []byte("hello")), codec.AppendFrame(nil, ws.OpBinary, true, []byte{0, 1, 2})...)
	if !bytes.Equal(tr.out.Bytes(), want) {
		t.Fatalf("echo %x, want %x", tr.out.Bytes(), want)
	}
}

// Flush writes every frame queued for a connection with one writev, in
// order, and splits at the iovec limit.
func TestFlushBatchesPerConnection(t *testing.T) {
	l := newTestLoop(Config{})
	a, ta := openConn(t, l, "/ws")
	b, tb := openConn(t, l, "/ws")
	ta.out.Reset()
	tb.out.Reset()
	for i := 0; i < 3; i++ {
		l.queue(a, []byte{'a', byte('0' + i)})
		if i < 2 {
			l.queue(b, []byte{'b', byte('0' + i)})
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
		l.queue(a, []byte{'x'})
	}
	l.Flush()
	if len(ta.writevs) != 3 || len(ta.writevs[0]) != maxIovec || len(ta.writevs[2]) != 2500-2*maxIovec {
		t.Fatalf("2500 frames went out in writevs of %v frames", lens(ta.writevs))
	}
	if m := l.metrics; m.FramesOut.Load() != 2505 || m.Writevs.Load() != 5 {
		t.Fatalf("metrics: frames %d writevs %d", m.FramesOut.Load(), m.Writevs.Load())
	}
}

func lens(v [][]int) []int {
	out := make([]int, len(v))
	for i := range v {
		out[i] = len(v[i])
	}
	return out
}

// Past MaxOutbound a connection stops receiving pushes and gets close 4000
// queued behind its backlog.
func TestSlowConsumerPolicy(t *testing.T) {
	l := newTestLoop(Config{MaxOutbound: 1000})
	c, tr := openConn(t, l, "/ws")
	tr.out.Reset()
	tr.outbound = 5000 // the kernel took nothing
	l.queue(c, []byte("push"))
	l.Flush()
	if c.State() != StateClosing {
		t.Fatalf("state %v, want closing", c.State())
	}
	want := "push" + string(codec.AppendCloseFrame(nil, codec.StatusSlowConsumer, "slow consumer"))
	if tr.out.String() != want {
		t.Fatalf("wrote %q, want %q", tr.out.String(), want)
	}
	if l.metrics.SlowConsumers.Load() != 1 {
		t.Fatal("slow consumer not counted")
	}
	// Later pushes are dropped, not queued.
	before := len(l.out)
	if c.writable() {
		t.Fatal("closing connection still writable")
	}
	l.Flush()
	if len(l.out) != before {
		t.Fatal("outbox changed")
	}
	// The close timeout drops it.
	advance(l, 5*time.Second+testTick)
	if !tr.closed {
		t.Fatal("not closed after the close timeout")
	}
}

// An idle connection is pinged after PingInterval and closed with 4001 when
// no frame arrives within PongTimeout; any frame re-arms it.
func TestHeartbeat(t *testing.T) {
	l := newTestLoop(Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	c, tr := openConn(t, l, "/echo")
	advance(l, 90*time.Millisecond)
	if tr.out.Len() != 0 {
		t.Fatalf("pinged %x before the ping interval", tr.out.Bytes())
	}
	advance(l, 20*time.Millisecond)
	ping := codec.AppendFrame(nil, ws.OpPing, true, nil)
	if !bytes.Equal(tr.out.Bytes(), ping) {
		t.Fatalf("after the ping interval wrote %x, want a ping", tr.out.Bytes())
	}
	tr.out.Reset()
	// The pong comes back: the connection survives the pong timeout.
	if n, _ := c.Feed(clientFrame(ws.OpPong, true, nil)); n == 0 {
		t.Fatal("pong not consumed")
	}
	advance(l, 60*time.Millisecond)
	if tr.closed {
		t.Fatal("closed despite the pong")
	}
	// Silence through the next ping and its timeout: closed with 4001.
	advance(l, 100*time.Millisecond)
	if tr.closed {
		t.Fatal("closed before the pong timeout")
	}
	advance(l, 70*time.Millisecond)
	if !tr.closed || l.metrics.HeartbeatTimeouts.Load() != 1 {
		t.Fatalf("closed %v, heartbeat timeouts %d", tr.closed, l.metrics.HeartbeatTimeouts.Load())
	}
	if !bytes.HasSuffix(tr.out.Bytes(), codec.AppendCloseFrame(nil, codec.StatusHeartbeatTimeout, "no pong")) {
		t.Fatalf("no close 4001 before the drop: %x", tr.out.Bytes())
	}
}

func TestHandshakeDeadline(t *testing.T) {
	l := newTestLoop(Config{HandshakeTimeout: 50 * time.Millisecond})
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte("GET /ws HTTP/1.1\r\n")) // and then nothing
	advance(l, 45*time.Millisecond)
	if tr.closed {
		t.Fatal("closed before the handshake deadline")
	}
	advance(l, 20*time.Millisecond)
	if !tr.closed || l.metrics.HandshakeTimeouts.Load() != 1 {
		t.Fatalf("closed %v, timeouts %d", tr.closed, l.metrics.HandshakeTimeouts.Load())
	}
}

type testIdentity struct {
	sub string
	exp time.Time
}

func (i testIdentity) Subject() string          { return i.sub }
func (i testIdentity) Expiry() time.Time        { return i.exp }
func (i testIdentity) CanSubscribe(string) bool { return true }
func (i testIdentity) CanPublish(t string) bool { return t == "allowed" }

// When a token expires, the wheel closes the connection with 4002, even if
// it expires before the next ping.
func TestTokenExpiry(t *testing.T) {
	var l *Loop
	l = newTestLoopWith(LoopConfig{Conn: Config{PingInterval: time.Hour},
		Admit: func(*codec.Request) (Identity, string, *codec.HandshakeError) {
			return testIdentity{sub: "u1", exp: clocks[l].Now().Add(100 * time.Millisecond)}, "", nil
		}})
	c, tr := openConn(t, l, "/ws")
	advance(l, 95*time.Millisecond)
	if c.State() != StateOpen {
		t.Fatal("closed before expiry")
	}
	advance(l, 20*time.Millisecond)
	if c.State() != StateClosing || l.metrics.TokenExpired.Load() != 1 {
		t.Fatalf("state %v, expired %d", c.State(), l.metrics.TokenExpired.Load())
	}
	if !bytes.HasSuffix(tr.out.Bytes(), codec.AppendCloseFrame(nil, codec.StatusTokenExpired, "token expired")) {
		t.Fatalf("no close 4002: %x", tr.out.Bytes())
	}
}

// Client publishing: off unless configured, and limited by the token.
func TestClientPublishPermissions(t *testing.T) {
	var published []string
	cfg := LoopConfig{Admit: func(*codec.Request) (Identity, string, *codec.HandshakeError) {
		return testIdentity{sub: "u1"}, "", nil
	}}
	off := newTestLoopWith(cfg)
	c, tr := openConn(t, off, "/ws")
	c.Feed(clientFrame(ws.OpText, true, []byte(`{"id":1,"type":"publish","topic":"allowed","data":1}`)))
	if !strings.Contains(tr.out.String(), `"forbidden"`) {
		t.Fatalf("publish with client publishing off: %q", tr.out.String())
	}
	cfg.Publish = func(topic string, data []byte) error {
		published = append(published, topic+"="+string(data))
		return nil
	}
	on := newTestLoopWith(cfg)
	c, tr = openConn(t, on, "/ws")
	c.Feed(clientFrame(ws.OpText, true, []byte(`{"id":2,"type":"publish","topic":"denied","data":1}`)))
	c.Feed(clientFrame(ws.OpText, true, []byte(`{"id":3,"type":"publish","topic":"allowed","data":{"x":1}}`)))
	out := tr.out.String()
	if !strings.Contains(out, `"id":2,"error":{"code":"forbidden"`) {
		t.Fatalf("publish to a denied topic: %q", out)
	}
	if !strings.Contains(out, `{"type":"ok","id":3}`) || len(published) != 1 || published[0] != `allowed={"x":1}` {
		t.Fatalf("allowed publish: %q, published %v", out, published)
	}
}

// A client that stalls inside a frame is not "active": it is pinged, its
// pong cannot be read behind the incomplete frame, and it is closed at the
// pong timeout, so a partial frame cannot pin its buffer forever.
func TestPartialFrameDoesNotKeepConnectionAlive(t *testing.T) {
	l := newTestLoop(Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	c, tr := openConn(t, l, "/echo")
	frame := clientFrame(ws.OpBinary, true, make([]byte, 60000))
	partial := frame[:len(frame)-1]
	for i := 0; i < 6; i++ { // trickle more of the same frame in: still incomplete
		if n, _ := c.Feed(partial); n != 0 {
			t.Fatalf("consumed %d bytes of an incomplete frame", n)
		}
		advance(l, 20*time.Millisecond)
	}
	if !bytes.Equal(tr.out.Bytes(), codec.AppendFrame(nil, ws.OpPing, true, nil)) {
		t.Fatalf("no ping after the interval despite the trickle: %x", tr.out.Bytes())
	}
	advance(l, 70*time.Millisecond)
	if !tr.closed || l.metrics.HeartbeatTimeouts.Load() != 1 {
		t.Fatalf("closed %v, heartbeat timeouts %d", tr.closed, l.metrics.HeartbeatTimeouts.Load())
	}
}

// Tokens that expire far in the future (service tokens often say 2100)
// must not wrap the tick arithmetic and close the connection at once.
// (Found in review: a 100-year token was closed after 3 s.)
func TestFarFutureExpiryDoesNotWrap(t *testing.T) {
	for _, tc := range []struct {
		tick time.Duration
		ttl  time.Duration
	}{
		{time.Second, 100 * 365 * 24 * time.Hour},
		{10 * time.Millisecond, 365 * 24 * time.Hour},
	} {
		var l *Loop
		l = newTestLoopWith(LoopConfig{Conn: Config{PingInterval: time.Hour}, Tick: tc.tick,
			Admit: func(*codec.Request) (Identity, string, *codec.HandshakeError) {
				return testIdentity{sub: "u1", exp: clocks[l].Now().Add(tc.ttl)}, "", nil
			}})
		c, _ := openConn(t, l, "/ws")
		advance(l, 3*tc.tick)
		advance(l, time.Hour+tc.tick) // past the first ping, which the test does not answer
		if l.metrics.TokenExpired.Load() != 0 {
			t.Fatalf("tick %v: a token valid for %v expired (state %v)", tc.tick, tc.ttl, c.State())
		}
	}
}

// A connection closed for a missing pong while its outbound buffer is over
// the cap gets exactly one close frame (4001), not a second one from the
// slow-consumer policy (RFC 6455 §5.5.1). (Found in review.)
func TestOneCloseFrameOnly(t *testing.T) {
	l := newTestLoop(Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond, MaxOutbound: 1000})
	_, tr := openConn(t, l, "/echo")
	advance(l, 110*time.Millisecond) // ping
	tr.out.Reset()
	tr.outbound = 5000 // the peer stopped reading too
	advance(l, 70*time.Millisecond)
	want := codec.AppendCloseFrame(nil, codec.StatusHeartbeatTimeout, "no pong")
	if !bytes.Equal(tr.out.Bytes(), want) || !tr.closed {
		t.Fatalf("wrote %x (closed %v), want exactly one close 4001 %x", tr.out.Bytes(), tr.closed, want)
	}
	if l.metrics.SlowConsumers.Load() != 0 {
		t.Fatal("a closing connection was also counted as a slow consumer")
	}
}
