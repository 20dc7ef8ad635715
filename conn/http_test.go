package conn

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/codec"
)

// httpEP is a test endpoint: /file answers "hello", /body echoes the body,
// /hold holds the request until answer is called, /big answers 4 KiB.
type httpEP struct {
	held     *Conn
	holder   *holdProto
	bodies   []string
	requests int
}

func (e *httpEP) Serve(c *Conn, req *codec.HTTPRequest, body []byte) *codec.HTTPError {
	e.requests++
	switch req.Path {
	case "/file":
		c.Respond(200, "text/plain", []byte("hello"))
	case "/body":
		e.bodies = append(e.bodies, string(body))
		c.Respond(200, "text/plain", body)
	case "/big":
		c.Respond(200, "text/plain", bytes.Repeat([]byte("b"), 4096))
	case "/hold":
		e.held, e.holder = c, &holdProto{}
		c.Hold(e.holder)
	case "/refuse":
		return &codec.HTTPError{Status: 403, Reason: "no"}
	}
	return nil
}

// answer completes the held request.
func (e *httpEP) answer(body string) {
	c := e.held
	e.held = nil
	c.Respond(200, "text/plain", []byte(body))
	c.RequestDone()
}

// holdProto holds a request; it counts its callbacks.
type holdProto struct{ timers, closes, closed int }

func (h *holdProto) Feed(*Conn, []byte) int                      { panic("Feed on a held request") }
func (h *holdProto) Timer(*Conn)                                 { h.timers++ }
func (h *holdProto) Send(*Conn, []byte) bool                     { return false }
func (h *holdProto) Close(c *Conn, _ codec.StatusCode, _ string) { h.closes++; c.CloseTransport() }
func (h *holdProto) SlowConsumer(*Conn)                          {}
func (h *holdProto) Closed(*Conn)                                { h.closed++ }

// newHTTPLoop returns a loop with httpEP's routes and a count of Resume
// calls.
func newHTTPLoop(cfg Config) (*Loop, *fakeClock, *httpEP, *int) {
	ep := &httpEP{}
	resumes := new(int)
	fc := &fakeClock{t: time.Unix(1_000_000, 0)}
	mk := func(path string, maxBody int64) Route {
		return Route{Path: path, MaxBody: maxBody, New: func(*Loop) Endpoint { return ep }}
	}
	l := NewLoop(LoopConfig{
		Conn: cfg, Tick: 10 * time.Millisecond, Metrics: new(Metrics), Clock: fc.Now,
		Routes: []Route{mk("/file", 0), mk("/body", 64), mk("/big", 0), mk("/hold", 0), mk("/refuse", 0)},
		Resume: func(Transport) { *resumes++ },
	}, nil)
	return l, fc, ep, resumes
}

func get(path string, extra ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(append(extra, ""), "\r\n") + "\r\n"
}

func post(path, body string, extra ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + itoa(len(body)) + "\r\n" +
		strings.Join(append(extra, ""), "\r\n") + "\r\n" + body
}

func itoa(n int) string { return strconv.Itoa(n) }

// responses splits what the server wrote into responses (heads with
// Content-Length bodies) and returns "status body" per response.
func responses(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for out != "" {
		head, rest, ok := strings.Cut(out, "\r\n\r\n")
		if !ok {
			t.Fatalf("incomplete head in %q", out)
		}
		status := strings.Fields(head)[1]
		n := 0
		for _, line := range strings.Split(head, "\r\n")[1:] {
			if k, v, _ := strings.Cut(line, ": "); strings.EqualFold(k, "Content-Length") {
				for _, d := range v {
					n = n*10 + int(d-'0')
				}
			}
		}
		got = append(got, status+" "+rest[:n])
		out = rest[n:]
	}
	return got
}

// Two requests on one connection, in two Feeds: both answered with
// Connection: keep-alive; the connection waits for the next one.
func TestHTTPKeepAlive(t *testing.T) {
	l, _, ep, _ := newHTTPLoop(Config{})
	tr := &memTransport{}
	c := l.Open(tr)
	for i := 0; i < 2; i++ {
		in := get("/file")
		if n, closeNow := c.Feed([]byte(in)); n != len(in) || closeNow || c.State() != StateHandshake {
			t.Fatalf("request %d: consumed %d of %d, close %v, state %v", i, n, len(in), closeNow, c.State())
		}
	}
	if got := strings.Count(tr.out.String(), "Connection: keep-alive\r\n"); got != 2 {
		t.Fatalf("responses %q", tr.out.String())
	}
	if r := responses(t, tr.out.String()); len(r) != 2 || r[0] != "200 hello" || r[1] != "200 hello" {
		t.Fatalf("responses %q", r)
	}
	if ep.requests != 2 || l.metrics.Requests.Load() != 2 || tr.closed {
		t.Fatalf("requests %d counted %d closed %v", ep.requests, l.metrics.Requests.Load(), tr.closed)
	}
}

// Pipelined requests in one buffer are answered in order, one at a time;
// the body of a third, cut short, is taken as it arrives.
func TestHTTPPipelining(t *testing.T) {
	l, _, ep, _ := newHTTPLoop(Config{})
	tr := &memTransport{}
	c := l.Open(tr)
	third := post("/body", "xyz")
	in := get("/file") + post("/body", "abc") + third[:len(third)-2]
	n, closeNow := c.Feed([]byte(in))
	if closeNow || n != len(in) || c.State() != StateRequest {
		t.Fatalf("consumed %d of %d, close %v, state %v", n, len(in), closeNow, c.State())
	}
	if n2, _ := c.Feed([]byte(third[len(third)-2:])); n2 != 2 {
		t.Fatalf("end of the third body: consumed %d of 2", n2)
	}
	if r := responses(t, tr.out.String()); strings.Join(r, "|") != "200 hello|200 abc|200 xyz" {
		t.Fatalf("responses %q", r)
	}
	if strings.Join(ep.bodies, ",") != "abc,xyz" {
		t.Fatalf("bodies %q", ep.bodies)
	}
}

// A held request keeps the next pipelined one in the buffer; RequestDone
// asks the engine to feed it again.
func TestHTTPHoldAndResume(t *testing.T) {
	l, fc, ep, resumes := newHTTPLoop(Config{})
	tr := &memTransport{}
	c := l.Open(tr)
	in := get("/hold") + get("/file")
	n, closeNow := c.Feed([]byte(in))
	if closeNow || n != len(get("/hold")) || c.State() != StateRequest || ep.held != c {
		t.Fatalf("consumed %d, close %v, state %v", n, closeNow, c.State())
	}
	// More input while held: not fed to the holder, not consumed.
	if n, _ := c.Feed([]byte(get("/file"))); n != 0 {
		t.Fatalf("consumed %d while held", n)
	}
	// The request deadline stopped; the holder's timer is its own.
	fc.t = fc.t.Add(time.Minute)
	l.Advance(fc.t)
	if tr.closed || ep.holder.timers != 0 {
		t.Fatalf("closed %v timers %d while held without a timer", tr.closed, ep.holder.timers)
	}
	c.Arm(1)
	fc.t = fc.t.Add(50 * time.Millisecond)
	l.Advance(fc.t)
	if ep.holder.timers != 1 {
		t.Fatalf("holder timers %d", ep.holder.timers)
	}
	ep.answer("late")
	if c.State() != StateHandshake || *resumes != 1 {
		t.Fatalf("after RequestDone: state %v, resumes %d", c.State(), *resumes)
	}
	if n, _ := c.Feed([]byte(get("/file"))); n != len(get("/file")) {
		t.Fatalf("next request: consumed %d", n)
	}
	if r := responses(t, tr.out.String()); strings.Join(r, "|") != "200 late|200 hello" {
		t.Fatalf("responses %q", r)
	}
	c.RequestDone() // not held: nothing happens
	if c.State() != StateHandshake {
		t.Fatalf("state %v", c.State())
	}
}

// A held connection whose client floods it is closed; the holder is told.
func TestHTTPHeldFlood(t *testing.T) {
	l, _, ep, _ := newHTTPLoop(Config{MaxHeaderBytes: 1024})
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte(get("/hold")))
	flood := bytes.Repeat([]byte("x"), 1024+64+1)
	if n, closeNow := c.Feed(flood); n != len(flood) || !closeNow {
		t.Fatalf("flood: consumed %d, close %v", n, closeNow)
	}
	c.Closed()
	if ep.holder.closed != 1 {
		t.Fatalf("holder closed %d", ep.holder.closed)
	}
}

// Bodies: whole with the head, in pieces, with Expect: 100-continue; 413
// past the route's limit; a body on a route that takes none closes the
// connection after the answer.
func TestHTTPBodies(t *testing.T) {
	l, _, ep, _ := newHTTPLoop(Config{})
	tr := &memTransport{}
	c := l.Open(tr)
	req := post("/body", "0123456789", "Expect: 100-continue")
	head := len(req) - 10
	for i, k := range []int{head + 3, head + 4, len(req)} {
		prev := []int{0, head + 3, head + 4}[i]
		if n, _ := c.Feed([]byte(req[prev:k])); n != k-prev {
			t.Fatalf("piece %d: consumed %d of %d", i, n, k-prev)
		}
	}
	out := tr.out.String()
	if !strings.HasPrefix(out, codec.ContinueResponse) {
		t.Fatalf("no 100 Continue: %q", out)
	}
	if r := responses(t, out[len(codec.ContinueResponse):]); len(r) != 1 || r[0] != "200 0123456789" {
		t.Fatalf("responses %q", r)
	}

	tr2 := &memTransport{}
	c2 := l.Open(tr2)
	big := post("/body", strings.Repeat("z", 65))
	if n, closeNow := c2.Feed([]byte(big)); n != len(big) || !closeNow || !strings.HasPrefix(tr2.out.String(), "HTTP/1.1 413 ") {
		t.Fatalf("65-byte body: consumed %d close %v: %q", n, closeNow, tr2.out.String())
	}

	tr3 := &memTransport{}
	c3 := l.Open(tr3)
	in := post("/file", "junk") + get("/file")
	n, closeNow := c3.Feed([]byte(in))
	if n != len(in) || closeNow || c3.State() != StateFailed {
		t.Fatalf("unread body: consumed %d close %v state %v", n, closeNow, c3.State())
	}
	if r := responses(t, tr3.out.String()); len(r) != 1 || !strings.Contains(tr3.out.String(), "Connection: close\r\n") {
		t.Fatalf("unread body answered %q", tr3.out.String())
	}
	if ep.requests != 2 {
		t.Fatalf("requests %d", ep.requests)
	}
}

// Answers that end the connection: unknown path 404, a bad head 400, a
// head too large 431, an endpoint's refusal; Connection: close and
// HTTP/1.0 without keep-alive close after a normal answer.
func TestHTTPCloses(t *testing.T) {
	l, _, _, _ := newHTTPLoop(Config{MaxHeaderBytes: 256})
	for _, tc := range []struct {
		name, in, status string
		closeNow         bool
	}{
		{"unknown path", get("/nope"), "404", true},
		{"bad head", "GET /file HTTP/1.1\r\nHost x\r\n\r\n", "400", true},
		{"head too large", get("/file", "X-Big: "+strings.Repeat("b", 300)), "431", true},
		{"refused", get("/refuse"), "403", true},
		{"Connection: close", get("/file", "Connection: close"), "200", false},
		{"HTTP/1.0", "GET /file HTTP/1.0\r\n\r\n", "200", false},
	} {
		tr := &memTransport{}
		c := l.Open(tr)
		n, closeNow := c.Feed([]byte(tc.in))
		if n != len(tc.in) || closeNow != tc.closeNow || !strings.HasPrefix(tr.out.String(), "HTTP/1.1 "+tc.status+" ") {
			t.Errorf("%s: consumed %d of %d, close %v: %q", tc.name, n, len(tc.in), closeNow, tr.out.String())
		}
		if !tc.closeNow && (c.State() != StateFailed || !strings.Contains(tr.out.String(), "Connection: close\r\n")) {
			t.Errorf("%s: state %v, %q", tc.name, c.State(), tr.out.String())
		}
		c.Closed()
	}
	// HTTP/1.0 with keep-alive stays, and is told so.
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte("GET /file HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
	if c.State() != StateHandshake || !strings.Contains(tr.out.String(), "Connection: keep-alive\r\n") {
		t.Fatalf("HTTP/1.0 keep-alive: state %v %q", c.State(), tr.out.String())
	}
}

// HEAD gets the head of the GET response, Content-Length included, and no
// body; a large body goes out with writev.
func TestHTTPHeadAndWritev(t *testing.T) {
	l, _, _, _ := newHTTPLoop(Config{})
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte("HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n"))
	if out := tr.out.String(); !strings.Contains(out, "Content-Length: 4096\r\n") || !strings.HasSuffix(out, "\r\n\r\n") || len(tr.writevs) != 0 {
		t.Fatalf("HEAD: %q", out)
	}
	tr.out.Reset()
	c.Feed([]byte(get("/big")))
	if r := responses(t, tr.out.String()); len(r) != 1 || len(r[0]) != 4+4096 || len(tr.writevs) != 1 {
		t.Fatalf("GET /big: %d responses, writevs %v", len(r), tr.writevs)
	}
}

// The deadlines: the head, a slow body, and the silence between requests.
func TestHTTPDeadlines(t *testing.T) {
	cfg := Config{HandshakeTimeout: 100 * time.Millisecond, KeepAliveTimeout: 300 * time.Millisecond}
	l, fc, _, _ := newHTTPLoop(cfg)
	step := func(d time.Duration) { fc.t = fc.t.Add(d); l.Advance(fc.t) }

	// Idle after a response: the keep-alive timeout, not the head deadline.
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte(get("/file")))
	step(250 * time.Millisecond)
	if tr.closed {
		t.Fatal("idle connection closed before the keep-alive timeout")
	}
	step(100 * time.Millisecond)
	if !tr.closed || l.metrics.IdleTimeouts.Load() != 1 || l.metrics.HandshakeTimeouts.Load() != 0 {
		t.Fatalf("idle: closed %v, idle %d, handshake %d", tr.closed, l.metrics.IdleTimeouts.Load(), l.metrics.HandshakeTimeouts.Load())
	}

	// The first byte of the next request starts its deadline.
	tr = &memTransport{}
	c = l.Open(tr)
	c.Feed([]byte(get("/file")))
	step(200 * time.Millisecond)
	c.Feed([]byte("GET /fi"))
	step(80 * time.Millisecond)
	if tr.closed {
		t.Fatal("closed before the head deadline")
	}
	step(40 * time.Millisecond)
	if !tr.closed || l.metrics.HandshakeTimeouts.Load() != 1 {
		t.Fatalf("slow head: closed %v, timeouts %d", tr.closed, l.metrics.HandshakeTimeouts.Load())
	}

	// A body that does not arrive in time.
	tr = &memTransport{}
	c = l.Open(tr)
	req := post("/body", "0123456789")
	c.Feed([]byte(req[:len(req)-5]))
	step(80 * time.Millisecond)
	c.Feed([]byte(req[len(req)-5 : len(req)-1]))
	step(40 * time.Millisecond)
	if !tr.closed || l.metrics.HandshakeTimeouts.Load() != 2 || tr.out.Len() != 0 {
		t.Fatalf("slow body: closed %v, timeouts %d, wrote %q", tr.closed, l.metrics.HandshakeTimeouts.Load(), tr.out.String())
	}
}

// A client that keeps asking without reading is closed once the unread
// responses pass the hard cap, HardOutboundFactor × MaxOutbound.
func TestHTTPUnreadResponses(t *testing.T) {
	l, _, ep, _ := newHTTPLoop(Config{MaxOutbound: 100})
	tr := &memTransport{outbound: 500} // past HardOutboundFactor × MaxOutbound before the first answer
	c := l.Open(tr)
	in := strings.Repeat(get("/file"), 3)
	if n, closeNow := c.Feed([]byte(in)); n != len(in) || !closeNow || ep.requests != 1 {
		t.Fatalf("consumed %d close %v requests %d", n, closeNow, ep.requests)
	}
	if l.metrics.SlowConsumers.Load() != 1 {
		t.Fatalf("slow consumers %d", l.metrics.SlowConsumers.Load())
	}
}

// CloseAll drops idle kept-alive connections, ends held requests through
// their holder, and makes later answers close.
func TestHTTPDrain(t *testing.T) {
	l, _, ep, _ := newHTTPLoop(Config{})
	trIdle := &memTransport{}
	idle := l.Open(trIdle)
	idle.Feed([]byte(get("/file")))
	held := l.Open(&memTransport{})
	held.Feed([]byte(get("/hold")))
	l.CloseAll(codec.StatusGoingAway, "bye")
	if !trIdle.closed || ep.holder.closes != 1 {
		t.Fatalf("idle closed %v, holder closes %d", trIdle.closed, ep.holder.closes)
	}
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte(get("/file")))
	if c.State() != StateFailed || !strings.Contains(tr.out.String(), "Connection: close\r\n") {
		t.Fatalf("while draining: state %v %q", c.State(), tr.out.String())
	}
}

// hookEP is an endpoint with timers and drain state of its own.
type hookEP struct {
	ticks   []uint64
	drains  []codec.StatusCode
	flushes int
}

func (h *hookEP) Serve(*Conn, *codec.HTTPRequest, []byte) *codec.HTTPError { return nil }
func (h *hookEP) Advance(now uint64)                                       { h.ticks = append(h.ticks, now) }
func (h *hookEP) CloseAll(code codec.StatusCode, _ string)                 { h.drains = append(h.drains, code) }
func (h *hookEP) Flush()                                                   { h.flushes++ }

// Endpoints that implement Ticker, Drainer and Flusher get the loop's
// ticks, its graceful stop and its flushes; Execute hands work to the loop through LoopConfig.Execute.
func TestEndpointHooksAndExecute(t *testing.T) {
	h := &hookEP{}
	var queued []func()
	fc := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := NewLoop(LoopConfig{
		Tick: 10 * time.Millisecond, Metrics: new(Metrics), Clock: fc.Now,
		Routes:  []Route{{Path: "/h", New: func(*Loop) Endpoint { return h }}},
		Execute: func(fn func()) error { queued = append(queued, fn); return nil },
	}, nil)
	fc.t = fc.t.Add(30 * time.Millisecond)
	l.Advance(fc.t)
	if len(h.ticks) != 1 || h.ticks[0] != 3 {
		t.Fatalf("ticks %v, want [3]", h.ticks)
	}
	l.Flush()
	if h.flushes != 1 {
		t.Fatalf("flushes %d, want 1", h.flushes)
	}
	l.CloseAll(codec.StatusGoingAway, "bye")
	if len(h.drains) != 1 || h.drains[0] != codec.StatusGoingAway || !l.Draining() {
		t.Fatalf("drains %v, draining %v", h.drains, l.Draining())
	}
	ran := false
	if err := l.Execute(func() { ran = true }); err != nil || len(queued) != 1 {
		t.Fatalf("Execute: %v, %d queued", err, len(queued))
	}
	queued[0]()
	if !ran {
		t.Fatal("the executed function did not run")
	}
	bare := NewLoop(LoopConfig{Metrics: new(Metrics)}, nil)
	if err := bare.Execute(func() {}); err != ErrNoExecute {
		t.Fatalf("Execute without LoopConfig.Execute: %v", err)
	}
}
