package sio

import (
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

// A test node: loops that share one Socket.IO route (so one registry of
// polling sessions), each with a topic shard of a real hub on embedded
// NATS, a clock that moves only when told, and an Execute queue the test
// runs on its own goroutine, which plays every loop's goroutine.

// pollLoop is one event loop of a test node. It implements topics.Loop.
type pollLoop struct {
	*conn.Loop
	node *pollNode
	ep   *endpoint // the loop's Socket.IO endpoint

	mu    sync.Mutex
	tasks []func() // Execute's queue, run by pollNode.run
}

// Execute implements topics.Loop and conn.LoopConfig.Execute: queued,
// run by the test (pollNode.run). Any goroutine.
func (l *pollLoop) Execute(fn func()) error {
	l.mu.Lock()
	l.tasks = append(l.tasks, fn)
	l.mu.Unlock()
	return nil
}

// Later implements topics.Loop: the test loop has no sockets to poll.
func (l *pollLoop) Later(fn func()) error { return l.Execute(fn) }

// Flush implements topics.Loop.
func (l *pollLoop) Flush(budget time.Duration) bool { return l.Loop.FlushFor(budget) }

// pollNode is a set of loops sharing a Socket.IO route.
type pollNode struct {
	t       testing.TB
	loops   []*pollLoop
	now     time.Time
	metrics *conn.Metrics
	smet    *session.Metrics
	sm      *Metrics
	hub     *topics.Hub
}

// testBus is an embedded NATS server with one broker and hub per node.
type testBus struct {
	ns *server.Server
}

func newTestBus(t testing.TB) *testBus {
	t.Helper()
	ns, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(ns.Shutdown)
	return &testBus{ns: ns}
}

// broker connects a new broker to the bus.
func (b *testBus) broker(t testing.TB) *natsbroker.Broker {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(b.ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	br, err := natsbroker.New(nc, natsbroker.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	return br
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// newPollNode starts a node of n loops on bus (a broker and hub of its
// own). With relay set, polling sessions open mailboxes on the node's
// broker and requests for unknown sids are forwarded.
func newPollNode(t testing.TB, bus *testBus, n int, cfg Config, adm Admission, scfg session.Config, relay bool) *pollNode {
	t.Helper()
	br := bus.broker(t)
	hub, err := topics.New(br, topics.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	nd := &pollNode{t: t, now: time.Unix(1_000_000, 0), metrics: new(conn.Metrics), smet: new(session.Metrics), sm: new(Metrics), hub: hub}
	cfg.Metrics = nd.sm
	if relay {
		cfg.Relay = br
	}
	route := Route(DefaultPath, cfg, adm, scfg, nd.smet)
	for range n {
		l := &pollLoop{node: nd}
		r := route
		r.New = func(cl *conn.Loop) conn.Endpoint {
			ep := route.New(cl)
			l.ep = ep.(*endpoint)
			return ep
		}
		shard := hub.NewShard(l)
		l.Loop = conn.NewLoop(conn.LoopConfig{
			Tick:    testTick,
			Metrics: nd.metrics,
			Clock:   func() time.Time { return nd.now },
			Routes:  []conn.Route{r},
			Execute: l.Execute,
		}, shard)
		nd.loops = append(nd.loops, l)
	}
	return nd
}

// run runs every loop's queued tasks until none is left.
func (nd *pollNode) run() {
	for more := true; more; {
		more = false
		for _, l := range nd.loops {
			l.mu.Lock()
			tasks := l.tasks
			l.tasks = nil
			l.mu.Unlock()
			for _, fn := range tasks {
				fn()
				more = true
			}
		}
	}
}

// runUntil runs the loops' tasks until cond holds, for up to 5 s (work
// that comes from broker goroutines arrives on its own time).
func (nd *pollNode) runUntil(what string, cond func() bool) {
	nd.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		nd.run()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			nd.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// advance moves the clock forward by d and runs every loop's timers.
func (nd *pollNode) advance(d time.Duration) {
	nd.now = nd.now.Add(d)
	for _, l := range nd.loops {
		l.Advance(nd.now)
	}
	nd.run()
}

// httpClient is one TCP connection to a loop, speaking HTTP/1.1 one
// request at a time.
type httpClient struct {
	t  testing.TB
	l  *pollLoop
	c  *conn.Conn
	tr *memTransport
}

// dial opens a connection to loop i.
func (nd *pollNode) dial(i int) *httpClient {
	tr := &memTransport{}
	l := nd.loops[i]
	return &httpClient{t: nd.t, l: l, c: l.Open(tr), tr: tr}
}

// request sends one request (and runs the node's tasks).
func (hc *httpClient) request(req string) {
	hc.t.Helper()
	if n, closeNow := hc.c.Feed([]byte(req)); closeNow {
		hc.tr.closed = true
	} else if n != len(req) {
		hc.t.Fatalf("request consumed %d of %d bytes", n, len(req))
	}
	hc.l.node.run()
}

// pollRequest builds a polling request for sid ("" for the handshake).
func pollRequest(method, sid, body string, headers ...string) string {
	q := DefaultPath + "?EIO=4&transport=polling&t=x"
	if sid != "" {
		q += "&sid=" + sid
	}
	r := method + " " + q + " HTTP/1.1\r\nHost: x\r\n"
	for _, h := range headers {
		r += h + "\r\n"
	}
	if method == "POST" {
		r += "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	return r + "\r\n" + body
}

// response is one HTTP response the server wrote.
type response struct {
	status int
	header map[string]string // canonical names
	body   string
}

// next returns the next complete response, ok false if there is none.
func (hc *httpClient) next() (r response, ok bool) {
	hc.t.Helper()
	out := hc.tr.out.String()
	head, rest, found := strings.Cut(out, "\r\n\r\n")
	if !found {
		return r, false
	}
	lines := strings.Split(head, "\r\n")
	r.status, _ = strconv.Atoi(strings.Fields(lines[0])[1])
	r.header = map[string]string{}
	for _, line := range lines[1:] {
		k, v, _ := strings.Cut(line, ": ")
		r.header[k] = v
	}
	n, err := strconv.Atoi(r.header["Content-Length"])
	if err != nil || len(rest) < n {
		hc.t.Fatalf("response without a complete body: %q", out)
	}
	r.body = rest[:n]
	hc.tr.out.Next(len(head) + 4 + n)
	return r, true
}

// resp returns the next response, which must be there.
func (hc *httpClient) resp() response {
	hc.t.Helper()
	r, ok := hc.next()
	if !ok {
		hc.t.Fatalf("no response (state %v)", hc.c.State())
	}
	return r
}

// noResp checks that nothing was answered.
func (hc *httpClient) noResp() {
	hc.t.Helper()
	if hc.tr.out.Len() != 0 {
		hc.t.Fatalf("unexpected output %q", hc.tr.out.String())
	}
}

// handshake opens a polling session on loop i and returns its sid.
func (nd *pollNode) handshake(i int) string {
	nd.t.Helper()
	hc := nd.dial(i)
	hc.request(pollRequest("GET", "", ""))
	r := hc.resp()
	var open struct {
		SID string `json:"sid"`
	}
	if r.status != 200 || !strings.HasPrefix(r.body, "0") || json.Unmarshal([]byte(r.body[1:]), &open) != nil {
		nd.t.Fatalf("handshake answered %d %q", r.status, r.body)
	}
	return open.SID
}

// post POSTs body for sid on a new connection to loop i and returns the
// answer.
func (nd *pollNode) post(i int, sid, body string) response {
	nd.t.Helper()
	hc := nd.dial(i)
	hc.request(pollRequest("POST", sid, body))
	return hc.resp()
}

// poll sends a GET for sid on a new connection to loop i and returns the
// client, whose answer may be held.
func (nd *pollNode) poll(i int, sid string) *httpClient {
	nd.t.Helper()
	hc := nd.dial(i)
	hc.request(pollRequest("GET", sid, ""))
	return hc
}

// pollNow polls and returns the answer, which must come at once.
func (nd *pollNode) pollNow(i int, sid string) response {
	nd.t.Helper()
	return nd.poll(i, sid).resp()
}

// join opens a session on loop i, CONNECTs with auth and reads the
// CONNECT's answer; it returns the sid.
func (nd *pollNode) join(i int, auth string) string {
	nd.t.Helper()
	sid := nd.handshake(i)
	if r := nd.post(i, sid, "40"+auth); r.status != 200 || r.body != "ok" {
		nd.t.Fatalf("POST 40 answered %d %q", r.status, r.body)
	}
	if r := nd.pollNow(i, sid); !strings.HasPrefix(r.body, `40{"sid":"`) {
		nd.t.Fatalf("CONNECT answered %q", r.body)
	}
	return sid
}

// engine returns the session sid of any loop of nd, nil if there is none.
func (nd *pollNode) engine(sid string) *engine {
	for _, l := range nd.loops {
		for _, e := range l.ep.engines {
			if e.sid == sid {
				return e
			}
		}
	}
	return nil
}

// packets splits a payload.
func packets(payload string) []string { return strings.Split(payload, "\x1e") }
