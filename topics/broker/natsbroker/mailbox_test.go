package natsbroker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/topics/broker"
)

// startNATS starts a real NATS server on a free loopback port, shut down at
// the end of the test.
func startNATS(tb testing.TB) *server.Server {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 1 << 16})
	if err != nil {
		tb.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// newNode returns a Broker on its own connection to ns, as one pushd node
// has; both are closed at the end of the test.
func newNode(tb testing.TB, ns *server.Server) *Broker {
	tb.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := New(nc, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.Close()
		nc.Close()
	})
	return b
}

// offer hands r over without ever blocking the broker's worker (a blocked
// handler would hold up its Close).
func offer(ch chan broker.Replier, r broker.Replier) {
	select {
	case ch <- r:
	default:
	}
}

// result is one done call.
type result struct {
	reply []byte
	err   error
}

// request sends a request and returns a channel with its one result; a
// second done call fails the test.
func request(t *testing.T, b *Broker, name, req string, timeout time.Duration) <-chan result {
	t.Helper()
	ch := make(chan result, 2)
	var calls atomic.Int32
	if err := b.Request(name, []byte(req), timeout, func(reply []byte, err error) {
		if calls.Add(1) > 1 {
			t.Errorf("done called twice for %s", req)
		}
		ch <- result{reply, err}
	}); err != nil {
		t.Fatalf("Request: %v", err)
	}
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no result in 10 s")
		return result{}
	}
}

// A request from one node reaches the mailbox another node opened, and the
// owner's reply, sent later from another goroutine, comes back.
func TestMailboxRequestReply(t *testing.T) {
	ns := startNATS(t)
	owner, other := newNode(t, ns), newNode(t, ns)
	held := make(chan broker.Replier, 1)
	mb, err := owner.OpenMailbox("sess-1", func(req []byte, r broker.Replier) {
		if string(req) == "hold" {
			offer(held, r)
			return
		}
		if err := r.Reply(append([]byte("echo "), req...)); err != nil {
			t.Errorf("reply: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if r := wait(t, request(t, other, "sess-1", "hello", 5*time.Second)); r.err != nil || string(r.reply) != "echo hello" {
		t.Fatalf("got %q, %v", r.reply, r.err)
	}
	// The owner can ask its own mailbox too (the requester need not know).
	if r := wait(t, request(t, owner, "sess-1", "self", 5*time.Second)); r.err != nil || string(r.reply) != "echo self" {
		t.Fatalf("got %q, %v", r.reply, r.err)
	}
	// A held request: the reply comes from another goroutine, later.
	ch := request(t, other, "sess-1", "hold", 5*time.Second)
	r := <-held
	time.Sleep(100 * time.Millisecond)
	select {
	case got := <-ch:
		t.Fatalf("answered before the reply: %+v", got)
	default:
	}
	go func() { _ = r.Reply([]byte("later")) }()
	if got := wait(t, ch); got.err != nil || string(got.reply) != "later" {
		t.Fatalf("got %q, %v", got.reply, got.err)
	}
	if open, pending, _ := other.MailboxStats(); open != 0 || pending != 0 {
		t.Fatalf("requester: %d open, %d pending", open, pending)
	}
	if open, _, _ := owner.MailboxStats(); open != 1 {
		t.Fatalf("owner: %d open", open)
	}
}

// A name no node has open fails at once with ErrNoMailbox, not after the
// timeout; so does a closed mailbox.
func TestMailboxNoResponders(t *testing.T) {
	ns := startNATS(t)
	owner, other := newNode(t, ns), newNode(t, ns)
	start := time.Now()
	if r := wait(t, request(t, other, "nobody", "x", 10*time.Second)); !errors.Is(r.err, broker.ErrNoMailbox) {
		t.Fatalf("got %q, %v; want ErrNoMailbox", r.reply, r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ErrNoMailbox took %v", d)
	}
	mb, err := owner.OpenMailbox("gone", func(req []byte, r broker.Replier) { _ = r.Reply(req) })
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, request(t, other, "gone", "x", 5*time.Second)); r.err != nil {
		t.Fatal(r.err)
	}
	if err := mb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// At once, while the subscription lingers: the closed mailbox answers
	// "no responders" itself, well before the timeout.
	subs := owner.nc.NumSubscriptions()
	start = time.Now()
	if r := wait(t, request(t, other, "gone", "x", 10*time.Second)); !errors.Is(r.err, broker.ErrNoMailbox) {
		t.Fatalf("after Close: %q, %v", r.reply, r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ErrNoMailbox after Close took %v", d)
	}
	// Then the subscription goes.
	deadline := time.Now().Add(5 * time.Second)
	for owner.nc.NumSubscriptions() != subs-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions after the grace, want %d", owner.nc.NumSubscriptions(), subs-1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A mailbox that does not answer makes the request time out, once; a reply
// after that is dropped and counted.
func TestMailboxTimeout(t *testing.T) {
	ns := startNATS(t)
	owner, other := newNode(t, ns), newNode(t, ns)
	held := make(chan broker.Replier, 1)
	if _, err := owner.OpenMailbox("slow", func(_ []byte, r broker.Replier) { offer(held, r) }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := wait(t, request(t, other, "slow", "x", 200*time.Millisecond))
	if d := time.Since(start); !errors.Is(r.err, broker.ErrTimeout) || d < 200*time.Millisecond {
		t.Fatalf("got %v after %v; want ErrTimeout after 200ms", r.err, d)
	}
	if err := (<-held).Reply([]byte("too late")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, late := other.MailboxStats(); late == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the late reply was not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Requests to one mailbox reach its handler one at a time, in the order
// they were sent once the mailbox is known to the bus; requests from many
// goroutines all get their own reply.
func TestMailboxOrderAndConcurrency(t *testing.T) {
	ns := startNATS(t)
	owner, other := newNode(t, ns), newNode(t, ns)
	var mu sync.Mutex
	var seen []string
	var inside atomic.Int32
	if _, err := owner.OpenMailbox("ordered", func(req []byte, r broker.Replier) {
		if inside.Add(1) != 1 {
			t.Error("handler called concurrently for one mailbox")
		}
		mu.Lock()
		seen = append(seen, string(req))
		mu.Unlock()
		inside.Add(-1)
		_ = r.Reply(req)
	}); err != nil {
		t.Fatal(err)
	}
	// Once the NATS server knows the mailbox (the first reply), no request
	// is retried, and order is the order sent.
	if r := wait(t, request(t, other, "ordered", "warm-up", 5*time.Second)); r.err != nil {
		t.Fatal(r.err)
	}
	mu.Lock()
	seen = nil
	mu.Unlock()
	var chans []<-chan result
	for i := range 200 {
		chans = append(chans, request(t, other, "ordered", fmt.Sprint(i), 5*time.Second))
	}
	for i, ch := range chans {
		if r := wait(t, ch); r.err != nil || string(r.reply) != fmt.Sprint(i) {
			t.Fatalf("request %d: %q, %v", i, r.reply, r.err)
		}
	}
	for i, s := range seen {
		if s != fmt.Sprint(i) {
			t.Fatalf("handler saw %q at %d", s, i)
		}
	}
	// Many mailboxes, many requesters at once.
	for i := range 20 {
		name := fmt.Sprint("m", i)
		if _, err := owner.OpenMailbox(name, func(req []byte, r broker.Replier) { _ = r.Reply(append([]byte(name+":"), req...)) }); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				name, req := fmt.Sprint("m", (g+i)%20), fmt.Sprint(g, "-", i)
				ch := make(chan result, 1)
				if err := other.Request(name, []byte(req), 5*time.Second, func(b []byte, err error) { ch <- result{b, err} }); err != nil {
					t.Error(err)
					return
				}
				if r := <-ch; r.err != nil || string(r.reply) != name+":"+req {
					t.Errorf("%s %s: %q, %v", name, req, r.reply, r.err)
				}
			}
		}()
	}
	wg.Wait()
}

// Names are checked; a message over the server's payload limit fails at
// once; closing the broker fails pending requests with ErrClosed and
// refuses new ones.
func TestMailboxErrors(t *testing.T) {
	ns := startNATS(t)
	owner, other := newNode(t, ns), newNode(t, ns)
	for _, name := range []string{"", "a.b", "a*", ">", strings.Repeat("x", broker.MaxMailboxName+1), "sp ace"} {
		if _, err := owner.OpenMailbox(name, nil); !errors.Is(err, broker.ErrMailboxName) {
			t.Errorf("OpenMailbox(%q): %v", name, err)
		}
		if err := other.Request(name, nil, time.Second, nil); !errors.Is(err, broker.ErrMailboxName) {
			t.Errorf("Request(%q): %v", name, err)
		}
	}
	held := make(chan broker.Replier, 1)
	if _, err := owner.OpenMailbox("big", func(_ []byte, r broker.Replier) { offer(held, r) }); err != nil {
		t.Fatal(err)
	}
	if err := other.Request("big", make([]byte, 1<<17), time.Second, func([]byte, error) { t.Error("done called") }); !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("oversized request: %v", err)
	}
	ch := request(t, other, "big", "x", 10*time.Second)
	if err := (<-held).Reply(make([]byte, 1<<17)); !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("oversized reply: %v", err)
	}
	other.Close()
	if r := wait(t, ch); !errors.Is(r.err, broker.ErrClosed) {
		t.Fatalf("pending request after Close: %v", r.err)
	}
	if err := other.Request("big", nil, time.Second, nil); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Request after Close: %v", err)
	}
	if _, err := other.OpenMailbox("x", nil); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("OpenMailbox after Close: %v", err)
	}
}

// A topic subscriber, even on ">", never sees mailbox traffic under the
// topic prefix, and the prefix cannot be the mailbox root.
func TestMailboxSubjectsApart(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := New(nc, Config{Prefix: MailboxSubjectRoot}); err == nil {
		t.Fatal("prefix equal to the mailbox root accepted")
	}
	if _, err := New(nc, Config{Prefix: MailboxSubjectRoot + ".x"}); err == nil {
		t.Fatal("prefix under the mailbox root accepted")
	}
	owner := newNode(t, ns)
	spy, err := nc.SubscribeSync(DefaultPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.OpenMailbox("s", func(req []byte, r broker.Replier) { _ = r.Reply(req) }); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, request(t, owner, "s", "x", 5*time.Second)); r.err != nil {
		t.Fatal(r.err)
	}
	if m, err := spy.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("a topic subscriber saw %s", m.Subject)
	}
}

func BenchmarkMailboxRoundTrip(b *testing.B) {
	ns := startNATS(b)
	owner, other := newNode(b, ns), newNode(b, ns)
	if _, err := owner.OpenMailbox("bench", func(req []byte, r broker.Replier) { _ = r.Reply(req) }); err != nil {
		b.Fatal(err)
	}
	req := []byte(`{"m":"GET","q":"EIO=4&transport=polling&sid=x"}`)
	ch := make(chan error, 1)
	done := func(_ []byte, err error) { ch <- err }
	b.ReportAllocs()
	for b.Loop() {
		if err := other.Request("bench", req, 5*time.Second, done); err != nil {
			b.Fatal(err)
		}
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
	}
}
