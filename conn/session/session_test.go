package session_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

// peer is a session.Peer that records what the session sends. The session
// runs on the test goroutine, which plays the event loop: the test loop
// below runs the shard's drains on it too.
type peer struct {
	sent   []string
	closed codec.StatusCode
	reason string
	open   bool
	pushes int
}

func (p *peer) Deliver(*topics.Message) { p.pushes++ }
func (p *peer) Send(b []byte) bool      { p.sent = append(p.sent, string(b)); return p.open }
func (p *peer) Open() bool              { return p.open }
func (p *peer) Close(code codec.StatusCode, reason string) {
	p.closed, p.reason, p.open = code, reason, false
}

// last returns the last message sent, decoded.
func (p *peer) last(t *testing.T) map[string]any {
	t.Helper()
	if len(p.sent) == 0 {
		t.Fatal("nothing sent")
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(p.sent[len(p.sent)-1]), &m); err != nil {
		t.Fatalf("sent %q: %v", p.sent[len(p.sent)-1], err)
	}
	return m
}

// errorCode returns the code of the last message if it is an error.
func (p *peer) errorCode(t *testing.T) string {
	t.Helper()
	m := p.last(t)
	if m["type"] != "error" {
		return ""
	}
	return m["error"].(map[string]any)["code"].(string)
}

// clock is a session.Clock moved by hand.
type clock struct {
	now  uint64
	tick time.Duration
	zero time.Time
}

func (c *clock) Now() uint64                 { return c.now }
func (c *clock) TickDuration() time.Duration { return c.tick }
func (c *clock) TickOf(t time.Time) uint64   { return uint64(t.Sub(c.zero) / c.tick) }

// loop is a topics.Loop run by the test goroutine: Execute queues, run
// drains the queue.
// loop is the topics.Loop of a test Env: Execute queues, runLoop runs.
type loop struct {
	mu  sync.Mutex
	fns []func()
}

func (l *loop) Execute(fn func()) error {
	l.mu.Lock()
	l.fns = append(l.fns, fn)
	l.mu.Unlock()
	return nil
}

// loops maps each test Env to its loop, for runLoop.
var loops sync.Map // *session.Env → *loop

// runLoop runs what e's loop was handed, on the test's goroutine, which
// plays the loop's.
func runLoop(e *session.Env) {
	v, _ := loops.Load(e)
	l := v.(*loop)
	l.mu.Lock()
	fns := l.fns
	l.fns = nil
	l.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
func (l *loop) Later(fn func()) error    { return l.Execute(fn) }
func (l *loop) Flush(time.Duration) bool { return true }

type ident struct {
	sub string
	exp time.Time
}

func (i ident) Subject() string            { return i.sub }
func (i ident) Expiry() time.Time          { return i.exp }
func (i ident) CanSubscribe(t string) bool { return !strings.HasPrefix(t, "secret") }
func (i ident) CanPublish(t string) bool   { return t == "chat" }

// env returns a session environment on a real hub (core NATS, embedded).
func env(t *testing.T, cfg session.Config) (*session.Env, *clock, *topics.Hub, *session.Metrics) {
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
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := natsbroker.New(nc, natsbroker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	hub, err := topics.New(b, topics.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	c := &clock{tick: 100 * time.Millisecond, zero: time.Unix(1_000_000, 0)}
	m := new(session.Metrics)
	l := &loop{}
	e := session.NewEnv(cfg, hub.NewShard(l), m, c)
	loops.Store(e, l)
	return e, c, hub, m
}

func TestStartWelcomePersonalAndQuery(t *testing.T) {
	e, c, hub, _ := env(t, session.Config{
		PingInterval:  1500 * time.Millisecond,
		PersonalTopic: func(id session.Identity) string { return "user." + id.Subject() },
	})
	var s session.Session
	p := &peer{open: true}
	exp := c.zero.Add(10 * time.Second)
	expires := s.Start(e, p, ident{sub: "u1", exp: exp}, "topics=a,b&topics=secret.x")
	if m := p.sent[0]; !strings.HasPrefix(m, `{"type":"welcome","session":"`) || !strings.HasSuffix(m, `"ping_interval":2}`) {
		t.Fatalf("welcome %q", m)
	}
	if got := p.errorCode(t); got != codec.CodeForbidden {
		t.Fatalf("?topics with a forbidden topic: %q, want forbidden (all or nothing)", got)
	}
	if got := s.Topics(); len(got) != 1 || got[0] != "user.u1" {
		t.Fatalf("subscribed to %v, want only the personal topic", got)
	}
	if want := c.TickOf(exp) + 1; expires != want {
		t.Fatalf("expires at tick %d, want %d", expires, want)
	}
	var s2 session.Session
	p2 := &peer{open: true}
	if exp := s2.Start(e, p2, nil, "topics=a,b,a"); exp != 0 {
		t.Fatalf("anonymous session expires at %d", exp)
	}
	if len(p2.sent) != 1 || strings.Join(s2.Topics(), ",") != "a,b" {
		t.Fatalf("anonymous: sent %q, topics %v", p2.sent, s2.Topics())
	}
	var s3 session.Session
	p3 := &peer{open: true}
	s3.Start(e, p3, nil, "topics=%zz")
	if got := p3.errorCode(t); got != codec.CodeBadRequest {
		t.Fatalf("malformed query: %q", got)
	}
	if st := hub.Stats(); st.Subscriptions != 3 {
		t.Fatalf("%d subscriptions, want 3", st.Subscriptions)
	}
	s.Closed(e)
	s2.Closed(e)
	if st := hub.Stats(); st.Subscriptions != 0 || st.Topics != 0 {
		t.Fatalf("after Closed: %+v", st)
	}
}

// Begin starts a session without any v1 message.
func TestBegin(t *testing.T) {
	e, _, _, _ := env(t, session.Config{PersonalTopic: func(id session.Identity) string { return "user." + id.Subject() }})
	var s session.Session
	p := &peer{open: true}
	if _, perr := s.Begin(e, p, ident{sub: "u2"}); perr != nil {
		t.Fatal(perr)
	}
	if len(p.sent) != 0 || strings.Join(s.Topics(), ",") != "user.u2" {
		t.Fatalf("sent %q, topics %v", p.sent, s.Topics())
	}
}

// Adopt takes subscriptions over without checks: the personal topic the
// token's patterns do not grant, and more than the per-command limit.
func TestAdopt(t *testing.T) {
	e, _, hub, _ := env(t, session.Config{MaxTopicsPerCommand: 1})
	var s session.Session
	p := &peer{open: true}
	if perr := s.Adopt(e, p, ident{sub: "u"}, []string{"secret.u", "a", "a"}); perr != nil {
		t.Fatal(perr)
	}
	if got := strings.Join(s.Topics(), ","); got != "secret.u,a" || len(p.sent) != 0 || s.Identity().Subject() != "u" {
		t.Fatalf("topics %q, sent %q", got, p.sent)
	}
	if st := hub.Stats(); st.Subscriptions != 2 {
		t.Fatalf("%d subscriptions", st.Subscriptions)
	}
	s.Closed(e)
}

// Restore subscribes an earlier session's topics, checked: volatile ones
// go live with no outcome; a topic the token no longer allows fails the
// whole restore; no topics at all is done at once.
func TestRestore(t *testing.T) {
	e, _, hub, _ := env(t, session.Config{})
	var s session.Session
	p := &peer{open: true}
	var recs []codec.Recovery
	called := 0
	done := func(r []codec.Recovery) { called++; recs = r }
	if perr := s.Restore(e, p, ident{sub: "u"}, []string{"a", "b", "a"}, codec.Position{Offset: 5, Epoch: "E"}, done); perr != nil {
		t.Fatal(perr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for called == 0 && time.Now().Before(deadline) {
		runLoop(e)
		time.Sleep(time.Millisecond)
	}
	if called != 1 || len(recs) != 0 || strings.Join(s.Topics(), ",") != "a,b" || len(p.sent) != 0 {
		t.Fatalf("done %d times with %v; topics %v; sent %q", called, recs, s.Topics(), p.sent)
	}
	var s2 session.Session
	if perr := s2.Restore(e, p, ident{sub: "u"}, []string{"a", "secret.x"}, codec.Position{}, done); perr == nil || perr.Code != codec.CodeForbidden {
		t.Fatalf("a topic the token forbids: %v", perr)
	}
	var s3 session.Session
	if perr := s3.Restore(e, p, nil, nil, codec.Position{}, done); perr != nil || called != 2 {
		t.Fatalf("no topics: %v, done %d times", perr, called)
	}
	s.Closed(e)
	if st := hub.Stats(); st.Subscriptions != 0 {
		t.Fatalf("%d subscriptions left", st.Subscriptions)
	}
}

func TestCommands(t *testing.T) {
	var published []string
	e, _, _, m := env(t, session.Config{MaxSubscriptions: 3, MaxTopicsPerCommand: 2,
		Publish: func(topic string, data []byte) error {
			if topic == "chat" && string(data) == `"fail"` {
				return errors.New("nats down")
			}
			published = append(published, topic+"="+string(data))
			return nil
		}})
	var s session.Session
	p := &peer{open: true}
	s.Start(e, p, ident{sub: "u"}, "")
	cases := []struct {
		cmd  string
		want string // "" for ok, else the error code
	}{
		{`{"id":1,"type":"subscribe","topics":["a","b"]}`, ""},
		{`{"id":2,"type":"subscribe","topics":["a","b","c"]}`, codec.CodeTooManyTopics},
		{`{"id":3,"type":"subscribe","topics":["c","d"]}`, codec.CodeTooManyTopics}, // 4 > 3
		{`{"id":4,"type":"subscribe","topics":["c"]}`, ""},
		{`{"id":5,"type":"subscribe","topics":["a.."]}`, codec.CodeInvalidTopic},
		{`{"id":6,"type":"subscribe","topics":["secret.1"]}`, codec.CodeForbidden},
		{`{"id":7,"type":"unsubscribe","topics":["b","nope","a b"]}`, ""},
		{`{"id":8,"type":"ping"}`, ""},
		{`{"id":9,"type":"publish","topic":"chat","data":{"t":1}}`, ""},
		{`{"id":10,"type":"publish","topic":"other","data":1}`, codec.CodeForbidden},
		{`{"id":11,"type":"publish","topic":"a b","data":1}`, codec.CodeInvalidTopic},
		{`{"id":12,"type":"publish","topic":"chat","data":"fail"}`, codec.CodeInternal},
		{`{"id":13,"type":"nope"}`, codec.CodeUnknownCommand},
		{`{"id":14,"type":`, codec.CodeBadJSON},
	}
	for _, tc := range cases {
		s.Command(e, p, true, []byte(tc.cmd))
		if got := p.errorCode(t); got != tc.want {
			t.Fatalf("%s: reply %s, want %q", tc.cmd, p.sent[len(p.sent)-1], tc.want)
		}
	}
	if got := strings.Join(s.Topics(), ","); got != "a,c" {
		t.Fatalf("topics %q, want a,c", got)
	}
	if len(published) != 1 || published[0] != `chat={"t":1}` {
		t.Fatalf("published %v", published)
	}
	s.Command(e, p, false, []byte(`{"id":15,"type":"ping"}`))
	if got := p.errorCode(t); got != codec.CodeBadRequest {
		t.Fatalf("binary command: %q", got)
	}
	if m.Forbidden.Load() != 2 || m.ClientPublishes.Load() != 1 || m.Commands.Load() != int64(len(cases)+1) {
		t.Fatalf("metrics: forbidden %d publishes %d commands %d", m.Forbidden.Load(), m.ClientPublishes.Load(), m.Commands.Load())
	}
}

// Client publishing is off unless configured.
func TestPublishDisabled(t *testing.T) {
	e, _, _, _ := env(t, session.Config{})
	var s session.Session
	p := &peer{open: true}
	s.Start(e, p, nil, "")
	s.Command(e, p, true, []byte(`{"id":1,"type":"publish","topic":"a","data":1}`))
	if got := p.errorCode(t); got != codec.CodeForbidden {
		t.Fatalf("publish with publishing disabled: %q", got)
	}
}

// The budget: Burst commands at once, refills at Rate per second, refusals
// get rate_limited, and Burst+1 refusals in a row close with 1008.
func TestCommandBudget(t *testing.T) {
	e, c, _, m := env(t, session.Config{CommandRate: 10, CommandBurst: 3})
	var s session.Session
	p := &peer{open: true}
	s.Start(e, p, nil, "")
	ping := []byte(`{"id":1,"type":"ping"}`)
	for range 3 {
		s.Command(e, p, true, ping)
		if got := p.errorCode(t); got != "" {
			t.Fatalf("within the burst: %q", got)
		}
	}
	s.Command(e, p, true, ping)
	if got := p.errorCode(t); got != codec.CodeRateLimited {
		t.Fatalf("past the burst: %q", got)
	}
	c.now += 1 // 100 ms: one token at 10/s
	s.Command(e, p, true, ping)
	if got := p.errorCode(t); got != "" {
		t.Fatalf("after a refill: %q", got)
	}
	for range 3 {
		s.Command(e, p, true, ping)
	}
	if p.closed != 0 {
		t.Fatalf("closed after %d strikes", 3)
	}
	s.Command(e, p, true, ping)
	if p.closed != codec.StatusPolicyViolation {
		t.Fatalf("close %d %q after burst+1 strikes, want 1008", p.closed, p.reason)
	}
	if m.RateLimited.Load() != 5 {
		t.Fatalf("RateLimited = %d, want 5", m.RateLimited.Load())
	}
}

func TestExpired(t *testing.T) {
	e, _, _, m := env(t, session.Config{})
	var s session.Session
	p := &peer{open: true}
	s.Start(e, p, ident{sub: "u"}, "")
	s.Expired(e, p)
	if p.closed != codec.StatusTokenExpired || m.TokenExpired.Load() != 1 {
		t.Fatalf("close %d, expired %d", p.closed, m.TokenExpired.Load())
	}
}

// A session without a topic shard answers subscribes with internal.
func TestNoShard(t *testing.T) {
	c := &clock{tick: time.Second}
	e := session.NewEnv(session.Config{}, nil, new(session.Metrics), c)
	var s session.Session
	p := &peer{open: true}
	s.Start(e, p, nil, "")
	s.Command(e, p, true, []byte(`{"id":1,"type":"subscribe","topics":["a"]}`))
	if got := p.errorCode(t); got != codec.CodeInternal {
		t.Fatalf("subscribe without a shard: %q", got)
	}
}

func TestTopicsFromQuery(t *testing.T) {
	got, perr := session.TopicsFromQuery("topics=a,,b&x=1&topics=c")
	if perr != nil || strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("got %v, %v", got, perr)
	}
	if _, perr := session.TopicsFromQuery("topics=%"); perr == nil || perr.Code != codec.CodeBadRequest {
		t.Fatalf("malformed: %v", perr)
	}
}
