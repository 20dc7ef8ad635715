package sse

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

// memTransport is an in-memory Transport: it records what is written and
// lets a test decide how much stays "unsent".
type memTransport struct {
	out      bytes.Buffer
	outbound int
	closed   bool
}

func (t *memTransport) Write(p []byte) (int, error) { return t.out.Write(p) }
func (t *memTransport) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		t.out.Write(b)
		n += len(b)
	}
	return n, nil
}
func (t *memTransport) OutboundBuffered() int { return t.outbound }
func (t *memTransport) Fd() int               { return -1 }
func (t *memTransport) Close() error          { t.closed = true; return nil }

type fakeClock struct{ t time.Time }

func (f *fakeClock) Now() time.Time { return f.t }

// identity is a session.Identity for tests.
type identity struct {
	exp     time.Time
	allowed string
}

func (id identity) Subject() string                { return "u1" }
func (id identity) Expiry() time.Time              { return id.exp }
func (id identity) CanSubscribe(topic string) bool { return topic == id.allowed }
func (id identity) CanPublish(string) bool         { return false }

type testLoop struct {
	*conn.Loop
	clock *fakeClock
	met   *conn.Metrics
}

func newTestLoop(cfg Config, ccfg conn.Config, admit session.Admit) *testLoop {
	fc := &fakeClock{t: time.Unix(1_000_000, 0)}
	met := new(conn.Metrics)
	l := conn.NewLoop(conn.LoopConfig{
		Conn: ccfg, Tick: 10 * time.Millisecond, Metrics: met, Clock: fc.Now,
		Routes: []conn.Route{Route("/sse", cfg, admit, session.Config{}, new(session.Metrics))},
	}, nil)
	return &testLoop{Loop: l, clock: fc, met: met}
}

func (l *testLoop) advance(d time.Duration) {
	l.clock.t = l.clock.t.Add(d)
	l.Advance(l.clock.t)
}

// open sends req and returns the connection and its transport.
func (l *testLoop) open(t *testing.T, req string) (*conn.Conn, *memTransport) {
	t.Helper()
	tr := &memTransport{}
	c := l.Open(tr)
	if n, _ := c.Feed([]byte(req)); n != len(req) {
		t.Fatalf("consumed %d of %d", n, len(req))
	}
	return c, tr
}

func get(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(append(extra, ""), "\r\n") + "\r\n"
}

// splitStream returns the head and the body of an event-stream response.
func splitStream(t *testing.T, out string) (head, body string) {
	t.Helper()
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		t.Fatalf("no response head in %q", out)
	}
	return head, body
}

// The stream: its head, a retry field within bounds, the welcome as the
// first event, a heartbeat comment every PingInterval, input ignored.
func TestStream(t *testing.T) {
	l := newTestLoop(Config{PingInterval: 100 * time.Millisecond, MinRetry: 2 * time.Second, MaxRetry: 2 * time.Second}, conn.Config{}, nil)
	c, tr := l.open(t, get("/sse", "Accept: text/event-stream", "Origin: http://app.example"))
	head, body := splitStream(t, tr.out.String())
	for _, want := range []string{"HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-store",
		"X-Accel-Buffering: no", "Access-Control-Allow-Origin: http://app.example", "Vary: Origin"} {
		if !strings.Contains(head, want) {
			t.Errorf("head lacks %q: %q", want, head)
		}
	}
	if strings.Contains(head, "Content-Length") {
		t.Errorf("a stream has no length: %q", head)
	}
	retry, event, ok := strings.Cut(body, "\n\n")
	if !ok || retry != "retry: 2000" {
		t.Fatalf("body %q", body)
	}
	var w struct {
		Type         string
		Session      string
		PingInterval int `json:"ping_interval"`
	}
	data, ok := strings.CutPrefix(event, "data: ")
	if !ok || json.Unmarshal([]byte(strings.TrimSuffix(data, "\n\n")), &w) != nil || w.Type != "welcome" || w.PingInterval != 1 {
		t.Fatalf("first event %q", event)
	}
	if c.State() != conn.StateOpen || l.met.Open.Load() != 1 {
		t.Fatalf("state %v open %d", c.State(), l.met.Open.Load())
	}
	tr.out.Reset()
	if n, _ := c.Feed([]byte("whatever the client says")); n != 24 {
		t.Fatalf("input not discarded: %d", n)
	}
	l.advance(120 * time.Millisecond)
	l.advance(120 * time.Millisecond)
	if got := tr.out.String(); got != ": ping\n: ping\n" || l.met.PingsSent.Load() != 2 {
		t.Fatalf("heartbeats %q, counted %d", got, l.met.PingsSent.Load())
	}
	c.Closed()
	if l.met.Open.Load() != 0 {
		t.Fatalf("open %d after Closed", l.met.Open.Load())
	}
}

// Requests an EventSource cannot be told about in-band are refused with a
// status, which stops its retries.
func TestRefusals(t *testing.T) {
	admit := func(req *codec.HTTPRequest) (session.Identity, string, *codec.HTTPError) {
		switch {
		case strings.Contains(req.RawQuery, "token=good"):
			return identity{allowed: "ok"}, "", nil
		case req.Origin == "http://evil.example":
			return nil, "", &codec.HTTPError{Status: 403, Reason: "origin not allowed"}
		}
		return nil, "", &codec.HTTPError{Status: 401, Reason: "missing token"}
	}
	l := newTestLoop(Config{}, conn.Config{}, admit)
	for _, tc := range []struct{ req, status string }{
		{"POST /sse?token=good HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "405"},
		{"GET /sse?token=good HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab", "400"},
		{get("/sse"), "401"},
		{get("/sse", "Origin: http://evil.example"), "403"},
		{get("/sse?token=good&topics=%zz"), "400"},
		// No topic shard in this loop: the session cannot subscribe. (The
		// topic checks are tested with a hub in cmd/pushd.)
		{get("/sse?token=good&topics=ok"), "503"},
	} {
		tr := &memTransport{}
		c := l.Open(tr)
		n, closeNow := c.Feed([]byte(tc.req))
		if n != len(tc.req) || !closeNow || !strings.HasPrefix(tr.out.String(), "HTTP/1.1 "+tc.status+" ") {
			t.Errorf("%q: consumed %d, close %v: %q", tc.req, n, closeNow, tr.out.String())
		}
		c.Closed()
	}
	if l.met.Open.Load() != 0 {
		t.Fatalf("open %d", l.met.Open.Load())
	}
}

// lastEvent returns the last event of a stream as its lines.
func lastEvent(out string) string {
	events := strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n")
	return events[len(events)-1]
}

// Token expiry, a slow consumer and a drain end the stream with a close
// event carrying the code; nothing is written after it, and the connection
// goes after the close timeout.
func TestCloseEvents(t *testing.T) {
	exp := time.Unix(1_000_000, 0).Add(500 * time.Millisecond)
	admit := func(*codec.HTTPRequest) (session.Identity, string, *codec.HTTPError) {
		return identity{exp: exp}, "", nil
	}
	l := newTestLoop(Config{PingInterval: time.Second}, conn.Config{MaxOutbound: 100, CloseTimeout: time.Second}, admit)

	c, tr := l.open(t, get("/sse"))
	l.advance(400 * time.Millisecond)
	if strings.Contains(tr.out.String(), "close") {
		t.Fatal("closed before the expiry")
	}
	l.advance(200 * time.Millisecond)
	want := "event: close\ndata: {\"type\":\"close\",\"code\":4002,\"reason\":\"token expired\"}"
	if got := lastEvent(tr.out.String()); got != want || c.State() != conn.StateClosing {
		t.Fatalf("after expiry: %q, state %v", got, c.State())
	}
	n := tr.out.Len()
	c.Send([]byte(`{"type":"late"}`))
	l.advance(500 * time.Millisecond)
	if tr.out.Len() != n || tr.closed {
		t.Fatalf("wrote %q after the close event, closed %v", tr.out.String()[n:], tr.closed)
	}
	l.advance(600 * time.Millisecond)
	if !tr.closed {
		t.Fatal("not dropped after the close timeout")
	}

	exp = time.Time{}
	c, tr = l.open(t, get("/sse"))
	tr.outbound = 1000
	c.Push([]byte("data: backlog\n\n"))
	l.Flush()
	if got := lastEvent(tr.out.String()); !strings.Contains(got, `"code":4000,"reason":"slow consumer"`) || l.met.SlowConsumers.Load() != 1 {
		t.Fatalf("slow consumer: %q, counted %d", got, l.met.SlowConsumers.Load())
	}

	_, tr = l.open(t, get("/sse"))
	l.CloseAll(codec.StatusGoingAway, "server shutting down")
	if got := lastEvent(tr.out.String()); !strings.Contains(got, `"code":1001,"reason":"server shutting down"`) {
		t.Fatalf("drain: %q", got)
	}
}

// A push is one event whose data is the v1 push JSON; a durable push also
// has the id of its position.
func TestPushEvent(t *testing.T) {
	b, at := appendPushEvent([]byte("junk"), "a.b", 7, []byte(`{"x":1}`), "", 0)
	if got := string(b[at:]); got != "data: {\"type\":\"message\",\"topic\":\"a.b\",\"seq\":7,\"data\":{\"x\":1}}\n\n" {
		t.Fatalf("volatile push: %q", got)
	}
	b, at = appendPushEvent(nil, "a.b", 8, []byte("line1\nline2"), "E1", 42)
	if got := string(b[at:]); got != "id: a.b:E1:42\ndata: {\"type\":\"message\",\"topic\":\"a.b\",\"seq\":8,\"offset\":42,\"epoch\":\"E1\",\"data\":\"line1\\nline2\"}\n\n" {
		t.Fatalf("durable push: %q", got)
	}
	// JSON data with a raw line break inside stays one event: the client
	// joins the data lines with LF, which JSON reads as whitespace.
	b, at = appendPushEvent(nil, "a", 1, []byte("{\"k\":\r\n1}"), "", 0)
	if got := string(b[at:]); got != "data: {\"type\":\"message\",\"topic\":\"a\",\"seq\":1,\"data\":{\"k\":\ndata: 1}}\n\n" {
		t.Fatalf("multi-line JSON: %q", got)
	}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf, _ = appendPushEvent(buf[:0], "a.b", 8, []byte(`{"x":1}`), "E1", 42) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// A stream is one allocation in the 80-byte size class, like a v1
// WebSocket connection: an idle SSE client costs what a WebSocket one does.
func TestStreamSize(t *testing.T) {
	if got := unsafe.Sizeof(stream{}); got > 80 {
		t.Fatalf("sse stream is %d bytes, over the 80-byte size class", got)
	}
}
