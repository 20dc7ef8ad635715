package topics

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

// subscribe subscribes r to topic on s, on s's loop goroutine.
func subscribe(tb testing.TB, s *Shard, r *recorder, topic string) *Subscription {
	tb.Helper()
	var x *Subscription
	var err error
	r.loop.do(tb, func() { x, err = s.Subscribe(topic, r) })
	if err != nil {
		tb.Fatalf("Subscribe(%q): %v", topic, err)
	}
	return x
}

// unsubscribe removes x on l's goroutine.
func unsubscribe(tb testing.TB, s *Shard, l *testLoop, x *Subscription) {
	tb.Helper()
	l.do(tb, func() { s.Unsubscribe(x) })
}

// waitIdle waits until every frame has been released by every holder.
func waitIdle(tb testing.TB, h *Hub) {
	tb.Helper()
	waitFor(tb, "frames released", func() bool { return h.Stats().MessagesLive == 0 })
}

// payloads returns n test payloads of assorted kinds and sizes, chosen so
// that the frames need all three header lengths (RFC 6455 §5.2: 7-bit,
// 16-bit and 64-bit payload length).
func payloads(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		switch i % 5 {
		case 0, 1:
			out[i] = fmt.Appendf(nil, `{"n":%d}`, i) // JSON passes through
		case 2:
			out[i] = fmt.Appendf(nil, "plain text %d", i) // becomes a JSON string
		case 3:
			out[i] = append([]byte{0xff, 0xfe}, byte(i)) // not UTF-8: base64
		case 4:
			big := 200
			if i%10 == 9 {
				big = 70000
			}
			out[i] = fmt.Appendf(nil, `{"n":%d,"pad":%q}`, i, strings.Repeat("x", big))
		}
	}
	return out
}

func TestFanout(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	plain := connect(t, ns) // a backend with its own connection
	h := newHub(t, nc, testConfig{})

	publishers := []struct {
		name    string
		topic   string
		publish func(topic string, data []byte) error
	}{
		{"Hub.Publish", "news.hub", h.Publish},
		{"plain nats.Conn", "news.plain", func(topic string, data []byte) error {
			return plain.Publish("pushd."+topic, data)
		}},
	}
	for _, pub := range publishers {
		t.Run(pub.name, func(t *testing.T) {
			topic := pub.topic
			loops := []*testLoop{newTestLoop(t), newTestLoop(t)}
			shards := []*Shard{h.NewShard(loops[0]), h.NewShard(loops[1])}
			var subs, others []*recorder
			for i, n := range []int{3, 2} {
				for range n {
					r := &recorder{loop: loops[i], tb: t}
					subscribe(t, shards[i], r, topic)
					subs = append(subs, r)
				}
				o := &recorder{loop: loops[i], tb: t}
				subscribe(t, shards[i], o, topic+".other")
				others = append(others, o)
			}
			flush(t, nc)
			before := h.Stats()

			data := payloads(50)
			for _, d := range data {
				if err := pub.publish(topic, d); err != nil {
					t.Fatalf("publish: %v", err)
				}
			}
			for _, r := range subs {
				waitFor(t, "all pushes", func() bool { return len(r.received(t)) == len(data) })
				for i, p := range r.received(t) {
					want := codec.AppendPush(nil, topic, uint64(i+1), data[i])
					if p.Type != "message" || p.Topic != topic || p.Seq != uint64(i+1) || !bytes.Equal(p.payload, want) {
						t.Fatalf("push %d = %s (seq %d), want %s", i, p.payload, p.Seq, want)
					}
				}
			}
			st := h.Stats()
			if got := st.MessagesIn - before.MessagesIn; got != int64(len(data)) {
				t.Errorf("MessagesIn grew by %d, want %d", got, len(data))
			}
			if got := st.Deliveries - before.Deliveries; got != int64(len(data)*len(subs)) {
				t.Errorf("Deliveries grew by %d, want %d", got, len(data)*len(subs))
			}
			if got := st.Handoffs - before.Handoffs; got < 2 || got > int64(2*len(data)) {
				t.Errorf("Handoffs grew by %d, want between 2 and %d", got, 2*len(data))
			}
			for _, o := range others {
				if got := o.received(t); len(got) != 0 {
					t.Errorf("subscriber of another topic got %d pushes", len(got))
				}
			}
			waitIdle(t, h)
		})
	}
}

func TestPrefix(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{Prefix: "app.push", Workers: 1})
	l := newTestLoop(t)
	s := h.NewShard(l)
	r := &recorder{loop: l, tb: t}
	subscribe(t, s, r, "x")
	flush(t, nc)
	for _, subj := range []string{"pushd.x", "app.push.x"} {
		if err := nc.Publish(subj, []byte(`"`+subj+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "push", func() bool { return len(r.received(t)) == 1 })
	if got := r.received(t)[0]; string(got.Data) != `"app.push.x"` || got.Topic != "x" {
		t.Errorf("got %s, want the message sent to app.push.x", got.payload)
	}
}

func TestInterest(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	base := ns.NumSubscriptions()
	loops := []*testLoop{newTestLoop(t), newTestLoop(t)}
	shards := []*Shard{h.NewShard(loops[0]), h.NewShard(loops[1])}

	check := func(step string, upstream uint32, local int64) {
		t.Helper()
		flush(t, nc)
		if got := ns.NumSubscriptions() - base; got != upstream {
			t.Errorf("%s: server has %d subscriptions, want %d", step, got, upstream)
		}
		st := h.Stats()
		if st.UpstreamSubs != int64(upstream) || st.Topics != int64(upstream) || st.Subscriptions != local {
			t.Errorf("%s: Stats %+v, want %d upstream, %d local", step, st, upstream, local)
		}
	}
	check("before", 0, 0)
	type held struct {
		shard int
		x     *Subscription
	}
	var xs []held
	for i, shard := range []int{0, 1, 0} {
		r := &recorder{loop: loops[shard], tb: t}
		xs = append(xs, held{shard, subscribe(t, shards[shard], r, "interest.t")})
		check(fmt.Sprintf("after subscribe %d", i+1), 1, int64(i+1))
	}
	for i, x := range xs {
		unsubscribe(t, shards[x.shard], loops[x.shard], x.x)
		unsubscribe(t, shards[x.shard], loops[x.shard], x.x) // idempotent
		want := uint32(1)
		if i == len(xs)-1 {
			want = 0
		}
		check(fmt.Sprintf("after unsubscribe %d", i+1), want, int64(len(xs)-i-1))
	}
}

// TestChurn subscribes and unsubscribes 1,000 topics on two shards at once,
// with messages flowing, so that "last subscriber leaves on one shard" races
// "first subscriber joins on the other" over and over.
func TestChurn(t *testing.T) {
	const nTopics = 1000
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	base := ns.NumSubscriptions()
	names := make([]string, nTopics)
	for i := range names {
		names[i] = fmt.Sprintf("churn.%d", i)
	}
	loops := []*testLoop{newTestLoop(t), newTestLoop(t)}
	shards := []*Shard{h.NewShard(loops[0]), h.NewShard(loops[1])}
	held := []map[string]*Subscription{{}, {}}
	recs := [][]*recorder{nil, nil} // every subscriber ever made, per shard

	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := h.Publish(names[rng.IntN(nTopics)], []byte(`{}`)); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			time.Sleep(20 * time.Microsecond)
		}
	})

	// onEachShard runs fn(shard index, rng) on every shard's loop at once.
	onEachShard := func(fn func(i int, rng *rand.Rand)) {
		var wg sync.WaitGroup
		for i := range shards {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				loops[i].do(t, func() { fn(i, rng) })
			})
		}
		wg.Wait()
	}
	toggle := func(i int, name string) {
		if x := held[i][name]; x != nil {
			shards[i].Unsubscribe(x)
			delete(held[i], name)
			return
		}
		r := &recorder{loop: loops[i], tb: t}
		recs[i] = append(recs[i], r)
		x, err := shards[i].Subscribe(name, r)
		if err != nil {
			t.Errorf("Subscribe: %v", err)
			return
		}
		held[i][name] = x
	}

	onEachShard(func(i int, rng *rand.Rand) {
		for _, k := range rng.Perm(nTopics) {
			toggle(i, names[k])
		}
	})
	flush(t, nc)
	if got := ns.NumSubscriptions() - base; got != nTopics {
		t.Errorf("all subscribed: server has %d subscriptions, want %d", got, nTopics)
	}
	if st := h.Stats(); st.UpstreamSubs != nTopics || st.Topics != nTopics || st.Subscriptions != 2*nTopics {
		t.Errorf("all subscribed: Stats %+v", st)
	}

	// Random toggles in small steps, so both shards interleave often.
	for range 20 {
		onEachShard(func(i int, rng *rand.Rand) {
			for range 250 {
				toggle(i, names[rng.IntN(nTopics)])
			}
		})
	}
	onEachShard(func(i int, rng *rand.Rand) {
		for _, name := range names {
			if x := held[i][name]; x != nil {
				toggle(i, name)
			}
		}
	})
	close(stop)
	pubWG.Wait()

	flush(t, nc)
	if got := ns.NumSubscriptions() - base; got != 0 {
		t.Errorf("all unsubscribed: server has %d subscriptions, want 0", got)
	}
	if st := h.Stats(); st.UpstreamSubs != 0 || st.Topics != 0 || st.Subscriptions != 0 {
		t.Errorf("all unsubscribed: Stats %+v", st)
	}
	// The churn subscribers never collected, so every frame delivered to
	// them is still held; release those and check nothing else is.
	for i, l := range loops {
		l.do(t, func() {
			for _, r := range recs[i] {
				r.collect()
			}
		})
	}
	if st := h.Stats(); st.Deliveries == 0 {
		t.Errorf("no deliveries during churn: %+v", st)
	}
	waitIdle(t, h)
}

// TestFramesReleased checks the reference counting end to end: many topics,
// two shards, subscribers that keep frames past Flush; once they let go,
// every frame is back in the pool.
func TestFramesReleased(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{Workers: 3})
	loops := []*testLoop{newTestLoop(t), newTestLoop(t)}
	shards := []*Shard{h.NewShard(loops[0]), h.NewShard(loops[1])}
	var recs []*recorder
	for i := range 10 {
		for j, s := range shards {
			if (i+j)%3 == 0 {
				continue // some topics live on one shard only
			}
			r := &recorder{loop: loops[j], tb: t}
			subscribe(t, s, r, fmt.Sprintf("rel.%d", i))
			recs = append(recs, r)
		}
	}
	flush(t, nc)
	const perTopic = 30
	for n := range perTopic {
		for i := range 10 {
			if err := h.Publish(fmt.Sprintf("rel.%d", i), fmt.Appendf(nil, "%d", n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := int64(perTopic * len(recs))
	waitFor(t, "deliveries", func() bool { return h.Stats().Deliveries == want })
	if live := h.Stats().MessagesLive; live == 0 {
		t.Error("MessagesLive = 0 while subscribers still hold frames")
	}
	for _, r := range recs {
		if got := r.received(t); len(got) != perTopic {
			t.Errorf("%d pushes, want %d", len(got), perTopic)
		}
	}
	waitIdle(t, h)
	if st := h.Stats(); st.Dispatched != 10*perTopic {
		t.Errorf("Dispatched = %d, want %d", st.Dispatched, 10*perTopic)
	}
}

func TestStoppedLoop(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)

	t.Run("Execute fails", func(t *testing.T) {
		h := newHub(t, nc, testConfig{})
		dead, live := newTestLoop(t), newTestLoop(t)
		ds, ls := h.NewShard(dead), h.NewShard(live)
		subscribe(t, ds, &recorder{loop: dead, tb: t}, "stop.a")
		r := &recorder{loop: live, tb: t}
		subscribe(t, ls, r, "stop.a")
		flush(t, nc)
		dead.stop()

		const n = 20
		for i := range n {
			if err := h.Publish("stop.a", fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "live shard deliveries", func() bool { return len(r.received(t)) == n })
		waitFor(t, "drops counted", func() bool { return h.Stats().DroppedLoopStopped == n })
		waitIdle(t, h)
		if got := ds.handoffs.Load(); got != 1 {
			t.Errorf("stopped shard: %d Execute calls, want 1 (the one that failed)", got)
		}
	})

	t.Run("loop stops with a drain pending", func(t *testing.T) {
		h := newHub(t, nc, testConfig{})
		l := newTestLoop(t)
		s := h.NewShard(l)
		subscribe(t, s, &recorder{loop: l, tb: t}, "stop.b")
		flush(t, nc)
		// Block the loop, let a drain queue up behind the blocker, then stop
		// the loop: like gnet, it never runs the queued drain.
		block := make(chan struct{})
		if err := l.Execute(func() { <-block }); err != nil {
			t.Fatal(err)
		}
		const n = 5
		for i := range n {
			if err := h.Publish("stop.b", fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "frames queued", func() bool { return h.Stats().Dispatched == n })
		l.stopOnce.Do(func() { close(l.done) })
		close(block)
		<-l.exited
		if live := h.Stats().MessagesLive; live != n {
			t.Fatalf("MessagesLive = %d before Stop, want %d stuck in the queue", live, n)
		}
		s.Stop()
		s.Stop() // idempotent
		if st := h.Stats(); st.MessagesLive != 0 || st.DroppedLoopStopped != n {
			t.Errorf("after Stop: MessagesLive %d, DroppedLoopStopped %d; want 0, %d", st.MessagesLive, st.DroppedLoopStopped, n)
		}
		if err := h.Publish("stop.b", []byte("1")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "later frame dropped", func() bool { return h.Stats().DroppedLoopStopped == n+1 })
		waitIdle(t, h)
	})
}

func TestShardQueueFull(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{Config: Config{ShardQueueLen: 4}})
	l := newTestLoop(t)
	s := h.NewShard(l)
	r := &recorder{loop: l, tb: t}
	subscribe(t, s, r, "full")
	flush(t, nc)

	block := make(chan struct{})
	if err := l.Execute(func() { <-block }); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		if err := h.Publish("full", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "worker done", func() bool { return h.Stats().MessagesIn == n })
	close(block)
	waitFor(t, "queued pushes", func() bool { return len(r.received(t)) == 4 })
	for i, p := range r.received(t) {
		if p.Seq != uint64(i+1) {
			t.Errorf("push %d has seq %d, want %d", i, p.Seq, i+1)
		}
	}
	if got := h.Stats().DroppedShardQueue; got != n-4 {
		t.Errorf("DroppedShardQueue = %d, want %d", got, n-4)
	}
	waitIdle(t, h)
}

// TestSlowNATS fills a worker's channel while the worker is stuck, so that
// nats.go drops messages, and checks they are counted, also after the
// upstream subscription is gone.
func TestSlowNATS(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	h := newHub(t, nc, testConfig{Workers: 1, QueueLen: 1})
	l := newTestLoop(t)
	s := h.NewShard(l)
	r := &recorder{loop: l, tb: t}
	x := subscribe(t, s, r, "slow")
	flush(t, nc)

	p := h.partFor("slow")
	p.mu.Lock() // the broker's worker blocks in Deliver's RLock
	const n = 100
	for i := range n {
		if err := h.Publish("slow", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, nc) // our PING follows the messages, so they have all been handled
	p.mu.Unlock()

	waitFor(t, "worker done", func() bool {
		st := h.Stats()
		return st.MessagesIn+st.DroppedBroker == n
	})
	st := h.Stats()
	if st.DroppedBroker < n-3 {
		t.Errorf("DroppedBroker = %d, want at least %d with a 1-slot channel", st.DroppedBroker, n-3)
	}
	waitFor(t, "pushes", func() bool { return int64(len(r.received(t))) == st.MessagesIn })
	unsubscribe(t, s, l, x)
	if got := h.Stats().DroppedBroker; got != st.DroppedBroker {
		t.Errorf("DroppedBroker after unsubscribe = %d, want %d", got, st.DroppedBroker)
	}
	waitIdle(t, h)
}

// TestNATSRestart restarts the NATS server on the same port: nats.go
// reconnects and resubscribes by itself, and pushes flow again with seq
// continuing, since the node's interest never ended.
func TestNATSRestart(t *testing.T) {
	ns := startNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	nc := connect(t, ns, nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1),
		nats.ReconnectJitter(0, 0))
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	r := &recorder{loop: l, tb: t}
	subscribe(t, s, r, "restart")
	flush(t, nc)
	if err := h.Publish("restart", []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "push before restart", func() bool { return len(r.received(t)) == 1 })

	ns.Shutdown()
	ns.WaitForShutdown()
	ns2 := startNATS(t, port)
	waitFor(t, "reconnect", func() bool { return h.Stats().Reconnects >= 1 && nc.IsConnected() })
	waitFor(t, "resubscribe", func() bool { return ns2.NumSubscriptions() >= 1 })
	flush(t, nc)

	for _, d := range []string{"2", "3", "4"} {
		if err := h.Publish("restart", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "pushes after restart", func() bool { return len(r.received(t)) == 4 })
	for i, p := range r.received(t) {
		if want := fmt.Sprint(i + 1); p.Seq != uint64(i+1) || string(p.Data) != want {
			t.Errorf("push %d: seq %d data %s, want seq %d data %s", i, p.Seq, p.Data, i+1, want)
		}
	}
	if st := h.Stats(); st.UpstreamSubs != 1 {
		t.Errorf("UpstreamSubs = %d after reconnect, want 1", st.UpstreamSubs)
	}
	waitIdle(t, h)
}

func TestClose(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	base := ns.NumSubscriptions()
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	r := &recorder{loop: l, tb: t}
	x := subscribe(t, s, r, "close.a")
	flush(t, nc)

	h.Close()
	h.Close() // idempotent
	flush(t, nc)
	if got := ns.NumSubscriptions() - base; got != 0 {
		t.Errorf("server has %d subscriptions after Close, want 0", got)
	}
	if err := h.Publish("close.a", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	l.do(t, func() {
		if _, err := s.Subscribe("close.b", r); !errors.Is(err, ErrClosed) {
			t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
		}
		s.Unsubscribe(x)
	})
	if st := h.Stats(); st.UpstreamSubs != 0 || st.Topics != 0 || st.Subscriptions != 0 || st.MessagesLive != 0 {
		t.Errorf("Stats after Close: %+v", st)
	}
	if !nc.IsConnected() {
		t.Error("Close closed the NATS connection it does not own")
	}
}

func TestInvalidTopic(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	for _, name := range []string{"", "a..b", ".a", "a.", "a.*", "a.>", "a b", strings.Repeat("x", codec.MaxTopicLen+1)} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			var err error
			l.do(t, func() { _, err = s.Subscribe(name, &recorder{loop: l, tb: t}) })
			if !errors.Is(err, codec.ErrInvalidTopic) {
				t.Errorf("Subscribe: %v, want ErrInvalidTopic", err)
			}
			if err := h.Publish(name, nil); !errors.Is(err, codec.ErrInvalidTopic) {
				t.Errorf("Publish: %v, want ErrInvalidTopic", err)
			}
		})
	}
	if st := h.Stats(); st.UpstreamSubs != 0 || st.Subscriptions != 0 {
		t.Errorf("Stats after invalid subscribes: %+v", st)
	}
}

func TestNewConfig(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	tests := []struct {
		name    string
		nc      *nats.Conn
		cfg     natsbroker.Config
		wantErr bool
	}{
		{"defaults", nc, natsbroker.Config{}, false},
		{"nested prefix", nc, natsbroker.Config{Prefix: "a.b", Workers: 2, QueueLen: 8}, false},
		{"nil conn", nil, natsbroker.Config{}, true},
		{"wildcard prefix", nc, natsbroker.Config{Prefix: "a.*"}, true},
		{"trailing dot prefix", nc, natsbroker.Config{Prefix: "a."}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := natsbroker.New(tt.nc, tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("natsbroker.New: err %v, want error %v", err, tt.wantErr)
			}
			if b == nil {
				return
			}
			defer b.Close()
			h, err := New(b, Config{})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			h.Close()
		})
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New with a nil broker: no error")
	}
}

// TestUnsubscribeSwapRemove removes subscribers from the middle, the end and
// the start of a topic's list (and most of a large crowd, which shrinks the
// list) and checks that exactly the remaining ones receive.
func TestUnsubscribeSwapRemove(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	const n = 200
	recs := make([]*recorder, n)
	xs := make([]*Subscription, n)
	for i := range recs {
		recs[i] = &recorder{loop: l, tb: t}
		xs[i] = subscribe(t, s, recs[i], "swap")
	}
	keep := map[int]bool{0: true, 1: true, 57: true, 100: true, 198: true}
	order := rand.New(rand.NewPCG(3, 4)).Perm(n)
	l.do(t, func() {
		for _, i := range order {
			if !keep[i] {
				s.Unsubscribe(xs[i])
			}
		}
		st := s.topics["swap"]
		if len(st.subs) != len(keep) || cap(st.subs) > 64 {
			t.Errorf("after removals: len %d cap %d, want len %d and a shrunk list", len(st.subs), cap(st.subs), len(keep))
		}
		for j, x := range st.subs {
			if int(x.idx) != j {
				t.Errorf("subs[%d] has idx %d", j, x.idx)
			}
		}
	})
	flush(t, nc)
	if err := h.Publish("swap", []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deliveries", func() bool { return h.Stats().Deliveries == int64(len(keep)) })
	for i, r := range recs {
		if got, want := len(r.received(t)), map[bool]int{true: 1}[keep[i]]; got != want {
			t.Errorf("subscriber %d got %d pushes, want %d", i, got, want)
		}
	}
	if x := xs[0]; x.Topic() != "swap" {
		t.Errorf("Topic() = %q", x.Topic())
	}
	waitIdle(t, h)
}

// TestStaleMessages ends and restarts the node's interest in a topic while
// messages of the old upstream subscription still wait in the worker's
// channel: they must be dropped, not pushed to the new subscriber, whose
// numbering starts at 1.
func TestStaleMessages(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{Workers: 1})
	l := newTestLoop(t)
	s := h.NewShard(l)
	a := &recorder{loop: l, tb: t}
	xa := subscribe(t, s, a, "stale")
	// The one worker is held up by a message of another topic (of another
	// lock partition), which it cannot queue on a second shard while the
	// test holds that shard's lock; the stale topic's messages wait behind
	// it in the worker's channel.
	blocker := "blocker"
	for i := 0; hashTopic(blocker)%partitions == hashTopic("stale")%partitions; i++ {
		blocker = fmt.Sprintf("blocker%d", i)
	}
	l2 := newTestLoop(t)
	s2 := h.NewShard(l2)
	z := &recorder{loop: l2, tb: t}
	xz := subscribe(t, s2, z, blocker)
	flush(t, nc)

	s2.mu.Lock() // the worker will block handing the blocker's message to s2
	if err := h.Publish(blocker, []byte("0")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker holds the blocker", func() bool { return h.Stats().MessagesIn == 1 })
	for _, d := range []string{"1", "2", "3"} {
		if err := h.Publish("stale", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, nc)
	b := &recorder{loop: l, tb: t}
	l.do(t, func() {
		// Interest ends (upstream unsubscribe) and restarts (a new
		// upstream subscription) while the messages of the old one wait
		// in the worker's channel.
		s.Unsubscribe(xa)
		if _, err := s.Subscribe("stale", b); err != nil {
			t.Errorf("Subscribe: %v", err)
		}
	})
	s2.mu.Unlock()
	waitFor(t, "stale messages dropped", func() bool { return h.Stats().DroppedNoTopic == 3 })
	unsubscribe(t, s2, l2, xz)
	z.received(t)

	flush(t, nc)
	if err := h.Publish("stale", []byte("4")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "push", func() bool { return len(b.received(t)) == 1 })
	if got := b.received(t)[0]; got.Seq != 1 || string(got.Data) != "4" {
		t.Errorf("new subscriber got seq %d data %s, want seq 1 data 4", got.Seq, got.Data)
	}
	if got := a.received(t); len(got) != 0 {
		t.Errorf("old subscriber got %d pushes after leaving", len(got))
	}
	waitIdle(t, h)
}

// TestClosedConn checks the Hub's behaviour once its NATS connection is
// closed under it: new interest and publishing fail with nats's error, and
// leaving still works.
func TestClosedConn(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	r := &recorder{loop: l, tb: t}
	x := subscribe(t, s, r, "cc.a")
	nc.Close()

	if err := h.Publish("cc.a", nil); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Publish: %v, want ErrConnectionClosed", err)
	}
	l.do(t, func() {
		if _, err := s.Subscribe("cc.b", r); !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("Subscribe: %v, want ErrConnectionClosed", err)
		}
		if _, err := s.Subscribe("cc.a", &recorder{loop: l, tb: t}); err != nil { // existing interest: local only
			t.Errorf("Subscribe to a topic with interest: %v", err)
		}
		s.Unsubscribe(x)
	})
	if st := h.Stats(); st.Subscriptions != 1 || st.UpstreamSubs != 1 {
		t.Errorf("Stats: %+v, want 1 subscription on 1 topic", st)
	}
}

// A drain that delivers a long backlog flushes every flushDeliveries, so
// the loop never holds backlog × subscribers queued entries at once.
func TestDrainFlushesLongBacklogsInPieces(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	const subs, msgs = 700, 1000 // 700,000 deliveries in one drain
	recs := make([]*recorder, subs)
	for i := range recs {
		recs[i] = &recorder{loop: l, tb: t}
		subscribe(t, s, recs[i], "backlog")
	}
	flush(t, nc)
	block := make(chan struct{})
	if err := l.Execute(func() { <-block }); err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if err := h.Publish("backlog", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "worker done", func() bool { return h.Stats().MessagesIn == msgs })
	close(block)
	waitFor(t, "all deliveries", func() bool { return h.Stats().Deliveries == subs*msgs })
	var flushes, most int
	l.do(t, func() {
		flushes, most = l.flushes, l.maxPending
		for _, r := range recs {
			for _, f := range r.held {
				f.Release()
			}
			r.held = nil
		}
	})
	if flushes < 2 || most > flushDeliveries+subs {
		t.Fatalf("%d flushes, the largest committing %d deliveries; want several of at most %d", flushes, most, flushDeliveries+subs)
	}
	waitIdle(t, h)
}

// publishBehindDrain holds l with a function that waits for the returned
// channel, publishes msgs messages ("0", "1", …) to topic on h, and returns
// once the drain they scheduled waits in l's queue: a function the caller
// queues now runs after that drain starts. Close the channel to go on.
func publishBehindDrain(t *testing.T, h *Hub, l *testLoop, topic string, msgs int) chan struct{} {
	t.Helper()
	block := make(chan struct{})
	if err := l.Execute(func() { <-block }); err != nil {
		t.Fatal(err)
	}
	before := h.Stats().MessagesIn
	for i := range msgs {
		if err := h.Publish(topic, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "worker done", func() bool { return h.Stats().MessagesIn == before+int64(msgs) })
	waitFor(t, "drain queued", func() bool { return len(l.fns) == 1 })
	return block
}

// A drain whose flush runs out of its slice hands the rest back to the
// loop: a function queued behind the drain runs before the flush
// completes, every subscriber still gets every message once and in order,
// and no message is released while a subscriber's frame still refers to it
// (the recorders hold frames without a reference, as a conn does).
func TestDrainHandsBackToTheLoop(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	const subs, msgs = 20, 10
	recs := make([]*recorder, subs)
	for i := range recs {
		recs[i] = &recorder{loop: l, tb: t, borrow: true}
		subscribe(t, s, recs[i], "sliced")
	}
	flush(t, nc)
	l.do(t, func() { l.partial = 50 })
	block := publishBehindDrain(t, h, l, "sliced", msgs)
	committed := -1
	if err := l.Execute(func() {
		committed = 0
		for _, r := range recs {
			committed += len(r.held)
		}
	}); err != nil {
		t.Fatal(err)
	}
	close(block)
	waitFor(t, "all deliveries", func() bool { return h.Stats().Deliveries == subs*msgs })
	waitFor(t, "flush complete", func() bool {
		var left int
		l.do(t, func() { left = len(l.pending) })
		return left == 0
	})
	var early int
	l.do(t, func() { early = l.early })
	if committed <= 0 || committed >= subs*msgs {
		t.Fatalf("a function queued behind the drain saw %d of %d frames written: the drain did not hand back", committed, subs*msgs)
	}
	if early != 0 {
		t.Fatalf("%d frames referred to messages the drain had already released", early)
	}
	if hb := h.Stats().HandBacks; hb < 1 {
		t.Fatalf("HandBacks %d, want at least 1", hb)
	}
	for i, r := range recs {
		got := r.received(t)
		if len(got) != msgs {
			t.Fatalf("subscriber %d got %d messages, want %d", i, len(got), msgs)
		}
		for j, p := range got {
			if string(p.Data) != fmt.Sprint(j) {
				t.Fatalf("subscriber %d: message %d is %s", i, j, p.Data)
			}
		}
	}
	waitIdle(t, h)
}

// Settle delivers everything queued for the shard, and completes the
// flush, before it returns, even when the drain in progress had handed
// the rest of its backlog back to the loop.
func TestSettleDeliversEverythingQueued(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	l := newTestLoop(t)
	s := h.NewShard(l)
	const subs, msgs = 10, 20
	recs := make([]*recorder, subs)
	for i := range recs {
		recs[i] = &recorder{loop: l, tb: t}
		subscribe(t, s, recs[i], "settle")
	}
	flush(t, nc)
	l.do(t, func() { l.partial = 1 << 30 }) // every flush runs out of time
	block := publishBehindDrain(t, h, l, "settle", msgs)
	got := make(chan [2]int, 1)
	if err := l.Execute(func() {
		committed := func() int {
			n := 0
			for _, r := range recs {
				n += len(r.held)
			}
			return n
		}
		before := committed()
		s.Settle()
		got <- [2]int{before, committed()}
	}); err != nil {
		t.Fatal(err)
	}
	close(block)
	n := <-got
	if n[0] >= subs*msgs {
		t.Fatalf("the drain wrote all %d frames before Settle: the test does not exercise it", n[0])
	}
	if n[1] != subs*msgs {
		t.Fatalf("after Settle %d of %d frames written (%d before it)", n[1], subs*msgs, n[0])
	}
	l.do(t, func() { l.partial = 0 })
	for _, r := range recs {
		if got := r.received(t); len(got) != msgs {
			t.Fatalf("a subscriber got %d messages, want %d", len(got), msgs)
		}
	}
	waitIdle(t, h)
}

// A subscriber that moves between two loops again and again (subscribe on
// the new loop, then Settle and unsubscribe on the old, as conn/sio moves a
// session) while messages stream in gets every message on one loop or the
// other: a message is queued on every shard of its topic under the lock a
// new shard registers with, so none falls between them. Both loops' drains
// run out of time on every flush, so hand-backs are always in progress.
func TestMoveBetweenShardsLosesNothing(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	loops := []*testLoop{newTestLoop(t), newTestLoop(t)}
	shards := []*Shard{h.NewShard(loops[0]), h.NewShard(loops[1])}
	recs := []*recorder{{loop: loops[0], tb: t}, {loop: loops[1], tb: t}}
	for _, l := range loops {
		l.do(t, func() { l.partial = 1 << 30 })
	}
	// Another subscriber on each loop keeps both shards registered for
	// part of the time, and the topic's interest never ends.
	x := subscribe(t, shards[0], recs[0], "move")
	flush(t, nc)
	const msgs = 20000
	done := make(chan error, 1)
	go func() {
		for i := range msgs {
			if err := h.Publish("move", fmt.Appendf(nil, "%d", i)); err != nil {
				done <- err
				return
			}
			if i%64 == 0 {
				runtime.Gosched()
			}
		}
		done <- nil
	}()
	cur, moves := 0, 0
	for h.Stats().MessagesIn < msgs {
		next := 1 - cur
		nx := subscribe(t, shards[next], recs[next], "move")
		loops[cur].do(t, func() {
			shards[cur].Settle()
			shards[cur].Unsubscribe(x)
		})
		x, cur = nx, next
		moves++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all delivered", func() bool { return h.Stats().Deliveries >= msgs })
	for _, l := range loops {
		l.do(t, func() { l.partial = 0 })
	}
	waitFor(t, "flushed", func() bool {
		n := 0
		for _, r := range recs {
			r.loop.do(t, func() { n += len(r.loop.pending) })
		}
		return n == 0
	})
	seen := make(map[uint64]int)
	for _, r := range recs {
		for _, p := range r.received(t) {
			seen[p.Seq]++
		}
	}
	var missing, twice int
	for seq := uint64(1); seq <= msgs; seq++ {
		switch seen[seq] {
		case 0:
			missing++
		case 1:
		default:
			twice++ // both loops had it while both were subscribed: allowed here
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d messages reached neither loop over %d moves", missing, msgs, moves)
	}
	t.Logf("%d moves, %d messages on both loops", moves, twice)
	unsubscribe(t, shards[cur], loops[cur], x)
	waitIdle(t, h)
}
