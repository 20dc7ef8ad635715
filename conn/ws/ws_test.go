package ws

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
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

// testConfig is everything a test loop can be told: the per-connection
// limits of conn, the WebSocket limits and timers, the session's settings
// and the v1 endpoint's admission.
type testConfig struct {
	Conn    conn.Config
	WS      Config
	Session session.Config
	Tick    time.Duration
	Admit   Admit
}

// testLoop is a conn.Loop with the v1 endpoint at /ws and the echo
// endpoint at /echo, a fake clock and its own counters.
type testLoop struct {
	*conn.Loop
	clock   *fakeClock
	metrics *conn.Metrics
	smet    *session.Metrics
}

func newTestLoop(cfg Config) *testLoop { return newTestLoopWith(testConfig{WS: cfg}) }

// newTestLoopWith fills in the tick, the routes, metrics and a fake clock.
func newTestLoopWith(tc testConfig) *testLoop {
	if tc.Tick == 0 {
		tc.Tick = testTick
	}
	t := &testLoop{clock: &fakeClock{t: time.Unix(1_000_000, 0)}, metrics: new(conn.Metrics), smet: new(session.Metrics)}
	t.Loop = conn.NewLoop(conn.LoopConfig{
		Conn:    tc.Conn,
		Tick:    tc.Tick,
		Metrics: t.metrics,
		Clock:   t.clock.Now,
		Routes: []conn.Route{
			V1Route("/ws", tc.WS, tc.Admit, tc.Session, t.smet),
			EchoRoute("/echo", tc.WS),
		},
	}, nil)
	return t
}

// advance moves the loop's clock forward by d and runs due timers.
func advance(l *testLoop, d time.Duration) {
	l.clock.t = l.clock.t.Add(d)
	l.Advance(l.clock.t)
}

const upgradeReq = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// openConn returns a connection past the upgrade, with its output cleared.
func openConn(t *testing.T, l *testLoop, path string) (*conn.Conn, *memTransport) {
	t.Helper()
	tr := &memTransport{}
	c := l.Open(tr)
	req := strings.Replace(upgradeReq, "/echo", path, 1)
	if n, closeNow := c.Feed([]byte(req)); n != len(req) || closeNow || c.State() != conn.StateOpen {
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

// Past MaxOutbound a connection stops receiving pushes and gets close 4000
// queued behind its backlog.
func TestSlowConsumerPolicy(t *testing.T) {
	l := newTestLoopWith(testConfig{Conn: conn.Config{MaxOutbound: 1000}})
	c, tr := openConn(t, l, "/ws")
	tr.out.Reset()
	tr.outbound = 5000 // the kernel took nothing
	c.Push([]byte("push"))
	l.Flush()
	if c.State() != conn.StateClosing {
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
	if c.Writable() {
		t.Fatal("closing connection still writable")
	}
	c.Push([]byte("later"))
	l.Flush()
	if tr.out.String() != want {
		t.Fatalf("a push after the close went out: %q", tr.out.String())
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
	l := newTestLoopWith(testConfig{Conn: conn.Config{HandshakeTimeout: 50 * time.Millisecond}})
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
	var l *testLoop
	l = newTestLoopWith(testConfig{WS: Config{PingInterval: time.Hour},
		Admit: func(*codec.HTTPRequest) (session.Identity, string, *codec.HandshakeError) {
			return testIdentity{sub: "u1", exp: l.clock.Now().Add(100 * time.Millisecond)}, "", nil
		}})
	c, tr := openConn(t, l, "/ws")
	advance(l, 95*time.Millisecond)
	if c.State() != conn.StateOpen {
		t.Fatal("closed before expiry")
	}
	advance(l, 20*time.Millisecond)
	if c.State() != conn.StateClosing || l.smet.TokenExpired.Load() != 1 {
		t.Fatalf("state %v, expired %d", c.State(), l.smet.TokenExpired.Load())
	}
	if !bytes.HasSuffix(tr.out.Bytes(), codec.AppendCloseFrame(nil, codec.StatusTokenExpired, "token expired")) {
		t.Fatalf("no close 4002: %x", tr.out.Bytes())
	}
}

// Client publishing: off unless configured, and limited by the token.
func TestClientPublishPermissions(t *testing.T) {
	var published []string
	cfg := testConfig{Admit: func(*codec.HTTPRequest) (session.Identity, string, *codec.HandshakeError) {
		return testIdentity{sub: "u1"}, "", nil
	}}
	off := newTestLoopWith(cfg)
	c, tr := openConn(t, off, "/ws")
	c.Feed(clientFrame(ws.OpText, true, []byte(`{"id":1,"type":"publish","topic":"allowed","data":1}`)))
	if !strings.Contains(tr.out.String(), `"forbidden"`) {
		t.Fatalf("publish with client publishing off: %q", tr.out.String())
	}
	cfg.Session.Publish = func(topic string, data []byte) error {
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
	// The header and then the payload trickle in, but the frame never
	// completes. Payload bytes are consumed as they come (each is copied
	// once), yet only a frame's start counts as activity.
	pieces := splitEvery(partial, len(partial)/6+1)
	for _, piece := range pieces {
		if n, _ := c.Feed(piece); n != len(piece) {
			t.Fatalf("consumed %d of a %d-byte piece of the payload", n, len(piece))
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

// splitEvery cuts p into pieces of n bytes (the last may be shorter).
func splitEvery(p []byte, n int) [][]byte {
	var out [][]byte
	for len(p) > n {
		out = append(out, p[:n])
		p = p[n:]
	}
	return append(out, p)
}

// feedLikeNetpoll feeds in to c in pieces of the given size the way netpoll
// does: whatever Feed leaves unconsumed stays buffered and is handed over
// again, with the next piece, on the next call. It returns how many bytes
// were handed to Feed in total: the bytes gnet copies into its inbound
// buffer and hands over again are counted each time they are handed over.
func feedLikeNetpoll(t *testing.T, c *conn.Conn, in []byte, piece int) (handed int) {
	t.Helper()
	var pending []byte
	for len(in) > 0 {
		k := min(piece, len(in))
		pending = append(pending, in[:k]...)
		in = in[k:]
		handed += len(pending)
		n, _ := c.Feed(pending)
		pending = append(pending[:0], pending[n:]...)
		if c.State() != conn.StateOpen {
			break
		}
	}
	return handed
}

// A maximum-size frame trickled 64 bytes per read costs O(n): each byte is
// handed to the state machine once, never re-read while the frame is
// incomplete (with the old wait-for-the-whole-frame design the same frame
// cost n²/128 bytes), and the echo comes back intact.
func TestLargeFrameCostsLinear(t *testing.T) {
	const size = 1 << 20
	l := newTestLoopWith(testConfig{WS: Config{MaxFrameSize: size, MaxMessageSize: size}, Conn: conn.Config{MaxOutbound: 4 * size}})
	c, tr := openConn(t, l, "/echo")
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	frame := clientFrame(ws.OpBinary, true, payload)
	handed := feedLikeNetpoll(t, c, frame, 64)
	if handed > len(frame)+64 {
		t.Fatalf("%d bytes handed to Feed for a %d-byte frame in 64-byte pieces: %.2f per byte, want 1",
			handed, len(frame), float64(handed)/float64(len(frame)))
	}
	want := codec.AppendFrame(nil, ws.OpBinary, true, payload)
	if !bytes.Equal(tr.out.Bytes(), want) {
		t.Fatalf("echo of %d bytes differs (got %d bytes)", size, tr.out.Len())
	}
}

// Invalid UTF-8 at the start of a text frame fails the connection with 1007
// as soon as those bytes arrive, before the rest of the frame (§8.1: fail
// fast), and the rest is never buffered.
func TestInvalidUTF8FailsBeforeTheFrameCompletes(t *testing.T) {
	l := newTestLoop(Config{})
	c, tr := openConn(t, l, "/echo")
	payload := append([]byte("ok \xff\xfe"), bytes.Repeat([]byte("x"), 60000)...)
	frame := clientFrame(ws.OpText, true, payload)
	if n, _ := c.Feed(frame[:100]); n != 100 {
		t.Fatalf("consumed %d of the first 100 bytes", n)
	}
	want := codec.AppendCloseFrame(nil, codec.StatusInvalidPayload, "invalid UTF-8 in text")
	if !bytes.Equal(tr.out.Bytes(), want) {
		t.Fatalf("after 100 of %d bytes wrote %x, want close 1007 %x", len(frame), tr.out.Bytes(), want)
	}
	if c.State() != conn.StateFailed {
		t.Fatalf("state %v, want failed", c.State())
	}
}

// A fragmented text message whose invalid byte arrives in a later
// fragment, itself split, fails at that byte too.
func TestInvalidUTF8InAFragmentFailsFast(t *testing.T) {
	l := newTestLoop(Config{})
	c, tr := openConn(t, l, "/echo")
	first := clientFrame(ws.OpText, false, []byte("héllo "))
	second := clientFrame(ws.OpContinuation, true, append([]byte("wor\xc3\x28"), bytes.Repeat([]byte("d"), 5000)...))
	in := append(first, second[:40]...)
	if n, _ := c.Feed(in); n != len(in) {
		t.Fatalf("consumed %d of %d", n, len(in))
	}
	if !bytes.HasSuffix(tr.out.Bytes(), codec.AppendCloseFrame(nil, codec.StatusInvalidPayload, "invalid UTF-8 in text")) {
		t.Fatalf("no close 1007 after the bad byte arrived: %x", tr.out.Bytes())
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
		var l *testLoop
		l = newTestLoopWith(testConfig{WS: Config{PingInterval: time.Hour}, Tick: tc.tick,
			Admit: func(*codec.HTTPRequest) (session.Identity, string, *codec.HandshakeError) {
				return testIdentity{sub: "u1", exp: l.clock.Now().Add(tc.ttl)}, "", nil
			}})
		c, _ := openConn(t, l, "/ws")
		advance(l, 3*tc.tick)
		advance(l, time.Hour+tc.tick) // past the first ping, which the test does not answer
		if l.smet.TokenExpired.Load() != 0 {
			t.Fatalf("tick %v: a token valid for %v expired (state %v)", tc.tick, tc.ttl, c.State())
		}
	}
}

// A connection closed for a missing pong while its outbound buffer is over
// the cap gets exactly one close frame (4001), not a second one from the
// slow-consumer policy (RFC 6455 §5.5.1). (Found in review.)
func TestOneCloseFrameOnly(t *testing.T) {
	l := newTestLoopWith(testConfig{WS: Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond},
		Conn: conn.Config{MaxOutbound: 1000}})
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

// The v1 endpoint's per-connection struct (WebSocket state and session in
// one allocation) stays in the 80-byte size class: it is memory on every
// idle connection (see conn.TestConnSize).
func TestV1ConnSize(t *testing.T) {
	if got := unsafe.Sizeof(v1Conn{}); got > 80 {
		t.Fatalf("v1Conn is %d bytes, over its 80-byte size class", got)
	}
}
