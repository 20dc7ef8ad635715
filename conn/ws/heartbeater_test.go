package ws

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

// beatHandler is an echo handler with a protocol heartbeat (its ping is the
// text message "2", as Engine.IO's) and an expiry the test sets; when the
// expiry comes it counts it and keeps the connection.
type beatHandler struct {
	echoHandler
	beats   int
	skip    bool // Heartbeat sends nothing and calls SkipBeat
	expiry  uint64
	expired int
}

func (h *beatHandler) Expiry(*conn.Conn) uint64 { return h.expiry }

func (h *beatHandler) Expired(*conn.Conn) {
	h.expired++
	h.expiry = 0
}

func (h *beatHandler) Heartbeat(c *conn.Conn) bool {
	h.beats++
	if h.skip {
		c.Proto().(*Conn).SkipBeat()
		return true
	}
	return c.Proto().(*Conn).WriteMessage(c, OpText, []byte("2"))
}

// newBeatLoop returns a loop with a Heartbeater endpoint at /beat.
func newBeatLoop(cfg Config) (*testLoop, *beatHandler) {
	h := &beatHandler{}
	t := &testLoop{clock: &fakeClock{t: time.Unix(1_000_000, 0)}, metrics: new(conn.Metrics), smet: new(session.Metrics)}
	t.Loop = conn.NewLoop(conn.LoopConfig{
		Tick:    testTick,
		Metrics: t.metrics,
		Clock:   t.clock.Now,
		Routes: []conn.Route{{Path: "/beat", New: func(l *conn.Loop) conn.Endpoint {
			return NewEndpoint(l, EndpointSpec{
				Config:  cfg,
				Handler: h,
				New:     func() conn.Proto { return new(Conn) },
				Conn:    func(p conn.Proto) *Conn { return p.(*Conn) },
			})
		}}},
	}, nil)
	return t, h
}

var beatFrame = codec.AppendFrame(nil, ws.OpText, true, []byte("2"))

// With a Heartbeater the protocol's ping replaces the WebSocket ping and
// comes every PingInterval, however busy the client is: Engine.IO clients
// time the gap between pings, not the server's silence.
func TestHeartbeaterPingsOnSchedule(t *testing.T) {
	l, h := newBeatLoop(Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	c, tr := openConn(t, l, "/beat")
	for range 9 { // a chatty client: a message every 10 ms
		advance(l, 10*time.Millisecond)
		c.Feed(clientFrame(ws.OpText, true, []byte("4x")))
	}
	tr.out.Reset()
	advance(l, 20*time.Millisecond)
	if h.beats != 1 || !bytes.Equal(tr.out.Bytes(), beatFrame) {
		t.Fatalf("after the ping interval: %d beats, wrote %q; want the protocol ping", h.beats, tr.out.Bytes())
	}
	if l.metrics.PingsSent.Load() != 1 {
		t.Fatalf("pings counted %d", l.metrics.PingsSent.Load())
	}
	tr.out.Reset()
	// Answered: the next ping comes one interval after this one, not after
	// the pong.
	advance(l, 30*time.Millisecond)
	c.Feed(clientFrame(ws.OpText, true, []byte("3")))
	advance(l, 60*time.Millisecond)
	if h.beats != 1 {
		t.Fatalf("pinged again %d ms after the last ping", 90)
	}
	advance(l, 20*time.Millisecond)
	if h.beats != 2 || tr.closed {
		t.Fatalf("beats %d, closed %v at the second interval", h.beats, tr.closed)
	}
	// Unanswered: close 4001 after the pong timeout.
	advance(l, 40*time.Millisecond)
	if tr.closed {
		t.Fatal("closed before the pong timeout")
	}
	advance(l, 20*time.Millisecond)
	if !tr.closed || l.metrics.HeartbeatTimeouts.Load() != 1 {
		t.Fatalf("closed %v, heartbeat timeouts %d", tr.closed, l.metrics.HeartbeatTimeouts.Load())
	}
	if !bytes.HasSuffix(tr.out.Bytes(), codec.AppendCloseFrame(nil, codec.StatusHeartbeatTimeout, "no pong")) {
		t.Fatalf("no close 4001: %q", tr.out.Bytes())
	}
	if strings.Contains(tr.out.String(), string(codec.AppendFrame(nil, ws.OpPing, true, nil))) {
		t.Fatal("a WebSocket ping went out beside the protocol's")
	}
}

// Re-arming for a new credentials deadline does not postpone the next ping
// or the pong check.
func TestHeartbeaterRearmKeepsSchedule(t *testing.T) {
	l, h := newBeatLoop(Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	c, _ := openConn(t, l, "/beat")
	w := c.Proto().(*Conn)
	advance(l, 80*time.Millisecond)
	h.expiry = l.Now() + 1000 // far away
	w.Rearm(c)
	advance(l, 30*time.Millisecond)
	if h.beats != 1 {
		t.Fatalf("Rearm postponed the ping: %d beats at 110 ms", h.beats)
	}
	// A ping is out; re-arming now keeps the pong check where it was.
	advance(l, 20*time.Millisecond)
	w.Rearm(c)
	advance(l, 50*time.Millisecond)
	if c.State() == conn.StateOpen {
		t.Fatal("Rearm postponed the pong check")
	}
}

// A deadline nearer than the next ping fires on time, and the heartbeat
// goes on after it when the handler keeps the connection.
func TestHeartbeaterExpiryFirst(t *testing.T) {
	l, h := newBeatLoop(Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	c, tr := openConn(t, l, "/beat")
	h.expiry = l.Now() + 3
	c.Proto().(*Conn).Rearm(c)
	advance(l, 50*time.Millisecond)
	if h.beats != 0 || h.expired != 1 || tr.closed {
		t.Fatalf("beats %d, expired %d, closed %v", h.beats, h.expired, tr.closed)
	}
	advance(l, 70*time.Millisecond)
	if h.beats != 1 {
		t.Fatalf("beats %d after the interval", h.beats)
	}
}

// A Heartbeater that skips its beats (SkipBeat) sends nothing, waits for no
// pong, is not counted as pinging, and is asked again every interval.
func TestHeartbeaterSkipBeat(t *testing.T) {
	l, h := newBeatLoop(Config{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	h.skip = true
	c, tr := openConn(t, l, "/beat")
	tr.out.Reset()
	for range 5 {
		advance(l, 110*time.Millisecond)
	}
	if h.beats < 4 || c.State() != conn.StateOpen || tr.out.Len() != 0 || l.metrics.PingsSent.Load() != 0 {
		t.Fatalf("beats %d, state %v, wrote %q, pings counted %d", h.beats, c.State(), tr.out.Bytes(), l.metrics.PingsSent.Load())
	}
	// Beating again: the pong check is back.
	h.skip = false
	advance(l, 110*time.Millisecond)
	advance(l, 60*time.Millisecond)
	if c.State() == conn.StateOpen {
		t.Fatal("no pong check after the beats resumed")
	}
}
