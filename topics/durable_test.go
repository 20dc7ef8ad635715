package topics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/broker/jsbroker"
)

// startJS starts a real NATS server with JetStream (file storage in a
// temporary directory) on a free loopback port.
func startJS(tb testing.TB) *server.Server {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir(),
		JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 512 << 20, NoLog: true, NoSigs: true,
	})
	if err != nil {
		tb.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// newDurableHub returns a Hub on a real jsbroker.Broker on nc.
func newDurableHub(tb testing.TB, nc *nats.Conn, jcfg jsbroker.Config, cfg Config) (*Hub, *jsbroker.Broker) {
	tb.Helper()
	jcfg.Logger, cfg.Logger = quietLogger(), quietLogger()
	if jcfg.CheckInterval == 0 {
		jcfg.CheckInterval = time.Hour // tests that want checks ask for them
	}
	b, err := jsbroker.New(context.Background(), nc, jcfg)
	if err != nil {
		tb.Fatalf("jsbroker.New: %v", err)
	}
	tb.Cleanup(b.Close)
	h, err := New(b, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(h.Close)
	return h, b
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func userHistory(size int64) []jsbroker.Pattern {
	return []jsbroker.Pattern{{Topics: "user.>", Size: size}}
}

// devent is one thing a drec saw, in order: a push, the Resume's done, or
// a loss.
type devent struct {
	kind   byte // 'm' push, 'd' done, 'l' loss
	p      push
	recs   []codec.Recovery
	reason string
}

// drec is a Subscriber for durable topics that records, in order, every
// push (decoded from the shared frame as it is delivered), every Resume
// outcome and every loss.
type drec struct {
	loop *testLoop
	tb   testing.TB
	// Owned by the loop goroutine.
	evs []devent
}

func newDrec(tb testing.TB, loop *testLoop) *drec { return &drec{loop: loop, tb: tb} }

func (r *drec) Deliver(m *Message) {
	if !r.loop.inLoop {
		r.tb.Error("Deliver outside the loop goroutine")
	}
	r.evs = append(r.evs, devent{kind: 'm', p: decodeFrame(r.tb, m.Bytes(pushFormat))})
}

func (r *drec) HistoryLost(x *Subscription, reason string) {
	r.evs = append(r.evs, devent{kind: 'l', reason: reason})
}

// resume calls Shard.Resume on the loop.
func (r *drec) resume(tb testing.TB, s *Shard, wants ...Want) []*Subscription {
	tb.Helper()
	var xs []*Subscription
	var err error
	r.loop.do(tb, func() {
		xs, err = s.Resume(r, wants, func(recs []codec.Recovery) {
			r.evs = append(r.evs, devent{kind: 'd', recs: append([]codec.Recovery(nil), recs...)})
		})
	})
	if err != nil {
		tb.Fatalf("Resume: %v", err)
	}
	return xs
}

func (r *drec) events(tb testing.TB) []devent {
	tb.Helper()
	var out []devent
	r.loop.do(tb, func() { out = append(out, r.evs...) })
	return out
}

func (r *drec) pushes(tb testing.TB) []push {
	tb.Helper()
	var out []push
	for _, e := range r.events(tb) {
		if e.kind == 'm' {
			out = append(out, e.p)
		}
	}
	return out
}

func (r *drec) waitPushes(tb testing.TB, n int) []push {
	tb.Helper()
	var ps []push
	waitFor(tb, fmt.Sprintf("%d pushes", n), func() bool { ps = r.pushes(tb); return len(ps) >= n })
	if len(ps) != n {
		tb.Fatalf("%d pushes, want %d", len(ps), n)
	}
	return ps
}

func (r *drec) waitDone(tb testing.TB) []codec.Recovery {
	tb.Helper()
	var recs []codec.Recovery
	waitFor(tb, "the resume's outcome", func() bool {
		for _, e := range r.events(tb) {
			if e.kind == 'd' {
				recs = e.recs
				return true
			}
		}
		return false
	})
	return recs
}

// publishTo publishes n messages to topic as a backend does (a plain core
// publish that the stream captures), numbered from start, and waits until
// the history holds them.
func publishTo(tb testing.TB, nc *nats.Conn, b *jsbroker.Broker, topic string, start, n int) {
	tb.Helper()
	before := storedOffsets(tb, b, topic)
	for i := range n {
		if err := nc.Publish(b.Subject(topic), fmt.Appendf(nil, `{"n":%d}`, start+i)); err != nil {
			tb.Fatal(err)
		}
	}
	flush(tb, nc)
	if n > 0 {
		// Stored when the history's newest message is the last one
		// published (counting alone could see the first ones stored
		// before the history trims them).
		last := fmt.Sprintf(`{"n":%d}`, start+n-1)
		waitFor(tb, "stored messages", func() bool {
			res, err := b.History(context.Background(), broker.HistoryRequest{Topic: topic, Limit: 100000})
			if err != nil {
				tb.Fatalf("history: %v", err)
			}
			after := storedOffsets(tb, b, topic)
			return len(res.Messages) > 0 && string(res.Messages[len(res.Messages)-1].Data) == last &&
				(len(before) == 0 || after[len(after)-1] > before[len(before)-1])
		})
	}
}

// storedOffsets returns every offset the history holds for topic.
func storedOffsets(tb testing.TB, b *jsbroker.Broker, topic string) []uint64 {
	tb.Helper()
	res, err := b.History(context.Background(), broker.HistoryRequest{Topic: topic, Limit: 100000})
	if err != nil {
		tb.Fatalf("history: %v", err)
	}
	out := make([]uint64, len(res.Messages))
	for i, m := range res.Messages {
		out[i] = m.Offset
	}
	return out
}

// checkRun fails unless ps carry exactly the stored offsets of topic after
// pos, in order, with payload n counting up from firstN.
func checkRun(tb testing.TB, ps []push, want []uint64, firstN int) {
	tb.Helper()
	if len(ps) != len(want) {
		tb.Fatalf("%d pushes, want %d", len(ps), len(want))
	}
	for i, p := range ps {
		if p.Offset != want[i] {
			tb.Fatalf("push %d has offset %d, want %d (gap or duplicate)", i, p.Offset, want[i])
		}
		var d struct{ N int }
		if err := json.Unmarshal(p.Data, &d); err != nil || d.N != firstN+i {
			tb.Fatalf("push %d data %s, want n=%d", i, p.Data, firstN+i)
		}
	}
}

// after returns the offsets of all above pos.
func after(all []uint64, pos uint64) []uint64 {
	var out []uint64
	for _, o := range all {
		if o > pos {
			out = append(out, o)
		}
	}
	return out
}

// TestResumeExact: a subscriber sees 10 messages, goes away while 100 are
// published, and resumes after the last it saw: the ok comes first, then
// exactly the 100 missed, in order, then the live ones, with no gap and no
// duplicate. Once with the node still following the topic (the cache
// answers, no request) and once after the node's interest ended (one
// history read).
// TestResumeNothing: a Resume with no wants (every topic of a subscribe
// already held) still runs done, later, with no outcomes: a caller that
// replies from done must not wait forever.
func TestResumeNothing(t *testing.T) {
	ns := startNATS(t, -1)
	h := newHub(t, connect(t, ns), testConfig{})
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	if xs := r.resume(t, shard); len(xs) != 0 {
		t.Fatalf("subscriptions %v for no wants", xs)
	}
	if recs := r.waitDone(t); len(recs) != 0 {
		t.Fatalf("outcomes %v for no wants", recs)
	}
	loop.do(t, func() {
		if _, err := shard.Resume(r, nil, nil); err != nil {
			t.Errorf("Resume without done: %v", err)
		}
	})
}

func TestResumeExact(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(1000)}, Config{})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	for _, keep := range []bool{true, false} {
		t.Run("keep interest "+strconv.FormatBool(keep), func(t *testing.T) {
			topic := "user.keep-" + strconv.FormatBool(keep)
			if keep {
				keeper := newDrec(t, loop)
				keeper.resume(t, shard, Want{Topic: topic})
				keeper.waitDone(t)
			}
			r1 := newDrec(t, loop)
			xs := r1.resume(t, shard, Want{Topic: topic})
			if recs := r1.waitDone(t); len(recs) != 0 {
				t.Fatalf("outcomes %v for a resume without positions", recs)
			}
			waitEstablished(t, h, topic)
			publishTo(t, pub, b, topic, 0, 10)
			seen := r1.waitPushes(t, 10)
			checkRun(t, seen, storedOffsets(t, b, topic), 0)
			last := seen[9]
			loop.do(t, func() { shard.Unsubscribe(xs[0]) })

			publishTo(t, pub, b, topic, 10, 100)
			before := h.Stats()
			r2 := newDrec(t, loop)
			r2.resume(t, shard, Want{Topic: topic, Since: &codec.Position{Offset: last.Offset, Epoch: last.Epoch}})
			r2.waitDone(t)
			mid := h.Stats()
			publishTo(t, pub, b, topic, 110, 10)
			ps := r2.waitPushes(t, 110)
			evs := r2.events(t)
			if evs[0].kind != 'd' || len(evs[0].recs) != 1 || evs[0].recs[0] != (codec.Recovery{Topic: topic, Recovered: true}) {
				t.Fatalf("first event %+v, want the outcome recovered", evs[0])
			}
			checkRun(t, ps, after(storedOffsets(t, b, topic), last.Offset), 10)
			st := h.Stats()
			if keep {
				if mid.CatchUpsCached-before.CatchUpsCached != 1 || mid.BrokerRequests != before.BrokerRequests {
					t.Errorf("resume with interest: cached %d, %d requests; want 1, 0",
						mid.CatchUpsCached-before.CatchUpsCached, mid.BrokerRequests-before.BrokerRequests)
				}
			} else if n := mid.BrokerRequests - before.BrokerRequests; mid.CatchUpReads-before.CatchUpReads != 1 || n != 2 {
				t.Errorf("resume without interest: %d history reads, %d requests; want 1 and 2 (with the position lookup)",
					mid.CatchUpReads-before.CatchUpReads, n)
			}
			if st.Repairs != 0 || st.Losses != 0 {
				t.Errorf("repairs %d, losses %d", st.Repairs, st.Losses)
			}
		})
	}
}

// TestResumeSeamUnderLoad: subscribers resume at many positions while a
// publisher keeps publishing; each must get exactly the stored messages
// after its position, in order.
func TestResumeSeamUnderLoad(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(10000)}, Config{CacheLen: 64})
	pub := connect(t, ns)
	loops := []*testLoop{newTestLoop(t), newTestLoop(t)}
	shards := []*Shard{h.NewShard(loops[0]), h.NewShard(loops[1])}
	const topic = "user.seam"
	ref := newDrec(t, loops[0])
	ref.resume(t, shards[0], Want{Topic: topic})
	ref.waitDone(t)
	// A subscription without a position gets what is stored after the
	// node's interest began: wait for that point before publishing.
	waitEstablished(t, h, topic)

	const total = 1500
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if err := pub.Publish(b.Subject(topic), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		_ = pub.Flush()
	}()
	type resumed struct {
		r     *drec
		since push
		first int
	}
	var rs []resumed
	for i := 0; i < 40; i++ {
		seen := ref.pushes(t)
		if len(seen) < 2 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		// Every fourth resumes far back, past the cache.
		k := max(0, len(seen)-1-(i%5)*3)
		if i%4 == 0 {
			k = max(0, len(seen)-200)
		}
		r := newDrec(t, loops[i%2])
		p := seen[k]
		r.resume(t, shards[i%2], Want{Topic: topic, Since: &codec.Position{Offset: p.Offset, Epoch: p.Epoch}})
		rs = append(rs, resumed{r, p, k + 1})
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	all := ref.waitPushes(t, total)
	offs := make([]uint64, len(all))
	for i, p := range all {
		offs[i] = p.Offset
	}
	checkRun(t, all, storedOffsets(t, b, topic), 0)
	for i, x := range rs {
		want := after(offs, x.since.Offset)
		ps := x.r.waitPushes(t, len(want))
		if recs := x.r.waitDone(t); !recs[0].Recovered {
			t.Fatalf("resume %d: %+v", i, recs)
		}
		checkRun(t, ps, want, x.first)
	}
	st := h.Stats()
	t.Logf("%d resumes: %d from cache, %d history reads, %d repairs", st.CatchUps, st.CatchUpsCached, st.CatchUpReads, st.Repairs)
}

// TestResumeReasons: every way a position is not recovered, in one
// Resume; every subscription still goes live.
func TestResumeReasons(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(5)}, Config{MaxReplay: 3})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)

	publishTo(t, pub, b, "user.t", 0, 20) // 5 kept
	publishTo(t, pub, b, "user.l", 0, 5)
	publishTo(t, pub, b, "user.z", 0, 2)
	kept, lim, zero := storedOffsets(t, b, "user.t"), storedOffsets(t, b, "user.l"), storedOffsets(t, b, "user.z")
	epoch := (func() string {
		res, err := b.History(context.Background(), broker.HistoryRequest{Topic: "user.t"})
		if err != nil {
			t.Fatal(err)
		}
		return res.Epoch
	})()
	r := newDrec(t, loop)
	r.resume(t, shard,
		Want{Topic: "user.t", Since: &codec.Position{Offset: kept[0] - 2, Epoch: epoch}}, // pushed out
		Want{Topic: "user.e", Since: &codec.Position{Offset: 3, Epoch: "other"}},         // another history
		Want{Topic: "user.l", Since: &codec.Position{Offset: lim[0], Epoch: epoch}},      // 4 missed, cap 3
		Want{Topic: "news", Since: &codec.Position{Offset: 3, Epoch: epoch}},             // no history
		Want{Topic: "user.z", Since: &codec.Position{}},                                  // from the start
		Want{Topic: "user.f", Since: &codec.Position{Offset: 1 << 40, Epoch: epoch}},     // beyond the end
		Want{Topic: "user.p"}, // no position
	)
	recs := r.waitDone(t)
	want := []codec.Recovery{
		{Topic: "user.t", Recovered: false, Reason: codec.ReasonTrimmed},
		{Topic: "user.e", Recovered: false, Reason: codec.ReasonEpochChanged},
		{Topic: "user.l", Recovered: false, Reason: codec.ReasonLimit},
		{Topic: "news", Recovered: false, Reason: codec.ReasonNotDurable},
		{Topic: "user.z", Recovered: true, Reason: ""},
		{Topic: "user.f", Recovered: false, Reason: codec.ReasonTrimmed},
	}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Fatalf("outcomes\n%v\nwant\n%v", recs, want)
	}
	replay := r.waitPushes(t, 2)
	checkRun(t, replay, zero, 0)
	// Everything is live now.
	for i, topic := range []string{"user.t", "user.e", "user.l", "user.z", "user.f", "user.p"} {
		publishTo(t, pub, b, topic, 100, 1)
		if ps := r.waitPushes(t, 3+i); ps[len(ps)-1].Topic != topic {
			t.Fatalf("live push %+v, want topic %s", ps[len(ps)-1], topic)
		}
	}
	if err := h.Publish("news", []byte(`{"n":100}`)); err != nil {
		t.Fatal(err)
	}
	if ps := r.waitPushes(t, 9); ps[8].Topic != "news" || ps[8].Offset != 0 {
		t.Fatalf("volatile push %+v", ps[8])
	}
}

// TestEpochChange: when the stream is deleted (the broker recreates it),
// live subscribers are told, and a resume with the old epoch says
// epoch_changed.
func TestEpochChange(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(100), CheckInterval: 100 * time.Millisecond}, Config{})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	live := newDrec(t, loop)
	live.resume(t, shard, Want{Topic: "user.e"})
	waitEstablished(t, h, "user.e")
	publishTo(t, pub, b, "user.e", 0, 3)
	old := live.waitPushes(t, 3)[2]

	js, err := jetstream.New(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), b.StreamName("user.e")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loss", func() bool {
		for _, e := range live.events(t) {
			if e.kind == 'l' {
				return e.reason == codec.ReasonEpochChanged
			}
		}
		return false
	})
	waitFor(t, "the new stream", func() bool {
		res, err := b.History(context.Background(), broker.HistoryRequest{Topic: "user.e"})
		return err == nil && res.Epoch != old.Epoch
	})
	publishTo(t, pub, b, "user.e", 3, 1)
	if p := live.waitPushes(t, 4)[3]; p.Epoch == old.Epoch || p.Offset != 1 {
		t.Fatalf("push after the new epoch %+v", p)
	}
	r := newDrec(t, loop)
	r.resume(t, shard, Want{Topic: "user.e", Since: &codec.Position{Offset: old.Offset, Epoch: old.Epoch}})
	if recs := r.waitDone(t); recs[0].Reason != codec.ReasonEpochChanged {
		t.Fatalf("resume with the old epoch: %+v", recs)
	}
	if st := h.Stats(); st.Losses != 1 {
		t.Errorf("losses %d, want 1", st.Losses)
	}
}

// waitEstablished waits until the node knows where topic's history ended
// when its interest began (the broker's first Head).
func waitEstablished(t *testing.T, h *Hub, topic string) {
	t.Helper()
	waitFor(t, "the history state of "+topic, func() bool {
		p := h.partFor(topic)
		p.mu.RLock()
		ts := p.topics[topic]
		p.mu.RUnlock()
		if ts == nil || ts.dur == nil {
			return false
		}
		ts.dur.mu.Lock()
		defer ts.dur.mu.Unlock()
		return ts.dur.established
	})
}

// blockDeliveries holds topic's history lock, so the broker's worker stalls
// in Deliver and nats.go drops what overflows the worker's 1-message queue,
// as it does for a slow consumer. It returns the function that lets go.
func blockDeliveries(t *testing.T, h *Hub, topic string) func() {
	t.Helper()
	p := h.partFor(topic)
	p.mu.RLock()
	ts := p.topics[topic]
	p.mu.RUnlock()
	if ts == nil || ts.dur == nil {
		t.Fatalf("%s is not a durable topic with interest", topic)
	}
	ts.dur.mu.Lock()
	var once sync.Once
	unlock := func() { once.Do(ts.dur.mu.Unlock) }
	t.Cleanup(unlock)
	return unlock
}

// TestGapRepairAfterDrops: messages the live path dropped (nats.go slow
// consumer) are read back from the history before anything later is
// delivered, whether a later message reveals the gap or only the broker's
// periodic check does (the dropped ones were the last).
func TestGapRepairAfterDrops(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(1000), QueueLen: 1, Workers: 1,
		CheckInterval: 200 * time.Millisecond, Grace: 100 * time.Millisecond}, Config{})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	r.resume(t, shard, Want{Topic: "user.g"})
	r.waitDone(t)
	waitEstablished(t, h, "user.g")
	publishTo(t, pub, b, "user.g", 0, 5)
	r.waitPushes(t, 5)

	unlock := blockDeliveries(t, h, "user.g")
	publishTo(t, pub, b, "user.g", 5, 200)
	time.Sleep(100 * time.Millisecond) // let the republished messages arrive (and overflow)
	unlock()
	ps := r.waitPushes(t, 205)
	checkRun(t, ps, storedOffsets(t, b, "user.g"), 0)
	st := h.Stats()
	if st.DroppedBroker == 0 || st.Repairs == 0 || st.Losses != 0 {
		t.Fatalf("dropped %d, repairs %d, losses %d: want drops repaired without loss", st.DroppedBroker, st.Repairs, st.Losses)
	}
	t.Logf("%d dropped on the live path, %d repair reads", st.DroppedBroker, st.Repairs)
}

// TestGapRepairAfterReconnect: messages stored while the node's NATS
// connection was down never arrive live; the broker's check after the
// reconnect finds them and the node reads them back.
func TestGapRepairAfterReconnect(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns, nats.CustomReconnectDelay(func(int) time.Duration { return 300 * time.Millisecond }), nats.MaxReconnects(-1))
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(1000), Grace: 100 * time.Millisecond}, Config{})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	r.resume(t, shard, Want{Topic: "user.r"})
	waitEstablished(t, h, "user.r")
	publishTo(t, pub, b, "user.r", 0, 5)
	r.waitPushes(t, 5)
	cid, err := nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.DisconnectClientByID(cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the disconnect", func() bool { return !nc.IsConnected() })
	// Not publishTo: its reads go through nc, which is down.
	for i := range 20 {
		if err := pub.Publish(b.Subject("user.r"), fmt.Appendf(nil, `{"n":%d}`, 5+i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, pub)
	ps := r.waitPushes(t, 25)
	checkRun(t, ps, storedOffsets(t, b, "user.r"), 0)
	if st := h.Stats(); st.Repairs == 0 || st.Reconnects == 0 {
		t.Fatalf("repairs %d reconnects %d", st.Repairs, st.Reconnects)
	}
}

// TestUnrepairableGap: when the dropped messages are no longer in the
// history, the subscribers are told (LossNotifier) after every message
// before the loss and before any after it, and a resume from before the
// loss says trimmed.
func TestUnrepairableGap(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(5), QueueLen: 1, Workers: 1,
		CheckInterval: 200 * time.Millisecond, Grace: 100 * time.Millisecond}, Config{})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	r.resume(t, shard, Want{Topic: "user.u"})
	waitEstablished(t, h, "user.u")
	publishTo(t, pub, b, "user.u", 0, 3)
	before := r.waitPushes(t, 3)
	unlock := blockDeliveries(t, h, "user.u")
	publishTo(t, pub, b, "user.u", 3, 50)
	time.Sleep(100 * time.Millisecond)
	unlock()
	publishTo(t, pub, b, "user.u", 53, 1)
	waitFor(t, "the loss", func() bool {
		for _, e := range r.events(t) {
			if e.kind == 'l' {
				return true
			}
		}
		return false
	})
	kept := storedOffsets(t, b, "user.u")
	waitFor(t, "the last message", func() bool {
		ps := r.pushes(t)
		return ps[len(ps)-1].Offset == kept[len(kept)-1]
	})
	evs := r.events(t)
	lossAt := -1
	var prev uint64
	for i, e := range evs {
		switch e.kind {
		case 'l':
			if e.reason != codec.ReasonTrimmed || lossAt >= 0 {
				t.Fatalf("loss event %+v at %d (first at %d)", e, i, lossAt)
			}
			lossAt = i
		case 'm':
			if e.p.Offset <= prev {
				t.Fatalf("offset %d after %d", e.p.Offset, prev)
			}
			prev = e.p.Offset
		}
	}
	if evs[lossAt+1].kind != 'm' || evs[lossAt+1].p.Offset < kept[0] {
		t.Fatalf("after the loss came %+v; the history starts at %d", evs[lossAt+1], kept[0])
	}
	r2 := newDrec(t, loop)
	last := before[2]
	r2.resume(t, shard, Want{Topic: "user.u", Since: &codec.Position{Offset: last.Offset, Epoch: last.Epoch}})
	if recs := r2.waitDone(t); recs[0].Reason != codec.ReasonTrimmed {
		t.Fatalf("resume from before the loss: %+v", recs)
	}
}

// TestResumeUnavailable: while JetStream does not answer, a resume ends
// with unavailable after CatchUpTimeout; the volatile topic of the same
// Resume holds its live messages until then (at most HoldLen, the newest).
func TestResumeUnavailable(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, _ := newDurableHub(t, nc, jsbroker.Config{History: userHistory(10), RequestTimeout: 200 * time.Millisecond},
		Config{CatchUpTimeout: 800 * time.Millisecond, HoldLen: 5})
	if err := ns.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	r.resume(t, shard, Want{Topic: "news"}, Want{Topic: "user.q", Since: &codec.Position{Offset: 4, Epoch: "e"}})
	flush(t, nc)
	for i := range 8 {
		if err := h.Publish("news", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	recs := r.waitDone(t)
	if len(recs) != 1 || recs[0] != (codec.Recovery{Topic: "user.q", Reason: codec.ReasonUnavailable}) {
		t.Fatalf("outcome %+v", recs)
	}
	ps := r.waitPushes(t, 5)
	for i, p := range ps {
		if p.Seq != uint64(4+i) {
			t.Fatalf("held push %d has seq %d, want %d (the newest 5 of 8)", i, p.Seq, 4+i)
		}
	}
	if evs := r.events(t); evs[0].kind != 'd' {
		t.Fatalf("a push came before the outcome: %+v", evs[0])
	}
}

// stormSub counts the pushes of one resumed subscriber and checks their
// order without decoding them.
type stormSub struct {
	loop    *testLoop
	want    []uint64
	got     int
	ok      atomic.Bool
	done    atomic.Bool
	badness atomic.Value
}

func (s *stormSub) Deliver(m *Message) {
	if s.got >= len(s.want) || m.Offset() != s.want[s.got] {
		s.badness.Store(fmt.Sprintf("push %d has offset %d", s.got, m.Offset()))
	}
	s.got++
	if s.got == len(s.want) {
		s.ok.Store(true)
	}
}

// TestResumeStorm: 5,000 subscribers on two loops resume the same topic
// after the same 100 missed messages at once. The node, which did not
// follow the topic, makes a bounded number of JetStream requests: the first
// position lookup and one history read shared by all (3 allowed, for a
// catch-up that arrives just after the read started).
func TestResumeStorm(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(1000)}, Config{})
	pub := connect(t, ns)
	const topic, subs = "user.storm", 5000
	publishTo(t, pub, b, topic, 0, 1)
	pos := storedOffsets(t, b, topic)[0]
	publishTo(t, pub, b, topic, 1, 100)
	want := after(storedOffsets(t, b, topic), pos)
	res, err := b.History(context.Background(), broker.HistoryRequest{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	since := &codec.Position{Offset: pos, Epoch: res.Epoch}

	before := h.Stats().BrokerRequests
	loops := []*testLoop{newTestLoop(t), newTestLoop(t)}
	var all []*stormSub
	var start sync.WaitGroup
	start.Add(1)
	var wg sync.WaitGroup
	for li, l := range loops {
		shard := h.NewShard(l)
		ss := make([]*stormSub, subs/len(loops))
		for i := range ss {
			ss[i] = &stormSub{loop: l, want: want}
		}
		all = append(all, ss...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			l.do(t, func() {
				for _, s := range ss {
					if _, err := shard.Resume(s, []Want{{Topic: topic, Since: since}}, func(recs []codec.Recovery) {
						s.done.Store(recs[0].Recovered)
					}); err != nil {
						t.Errorf("loop %d: %v", li, err)
					}
				}
			})
		}()
	}
	t0 := time.Now()
	start.Done()
	wg.Wait()
	waitFor(t, "every replay", func() bool {
		for _, s := range all {
			if !s.ok.Load() {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(t0)
	for i, s := range all {
		if !s.done.Load() {
			t.Fatalf("subscriber %d not recovered", i)
		}
		if bad := s.badness.Load(); bad != nil {
			t.Fatalf("subscriber %d: %v", i, bad)
		}
	}
	reqs := h.Stats().BrokerRequests - before
	st := h.Stats()
	t.Logf("%d resumes of %d messages in %v: %d JetStream requests, %d history reads, %d from cache",
		subs, len(want), elapsed, reqs, st.CatchUpReads, st.CatchUpsCached)
	if reqs > 3 {
		t.Fatalf("%d JetStream requests for %d resumes of one topic, want at most 3", reqs, subs)
	}
}

// TestHistoryReads: Hub.History from the cache and from the broker, and
// Shard.History on the loop.
func TestHistoryReads(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(5)}, Config{})
	pub := connect(t, ns)
	ctx := context.Background()
	publishTo(t, pub, b, "user.h", 0, 8)
	offs := storedOffsets(t, b, "user.h")
	page, err := h.History(ctx, "user.h", codec.Position{}, 0)
	if err != nil || len(page.Messages) != 5 || page.More || page.Trimmed {
		t.Fatalf("History from the start: %+v %v", page, err)
	}
	e := page.Epoch
	page, err = h.History(ctx, "user.h", codec.Position{Offset: offs[1], Epoch: e}, 2)
	if err != nil || len(page.Messages) != 2 || page.Messages[0].Offset != offs[2] || !page.More || page.Trimmed {
		t.Fatalf("History after %d limit 2: %+v %v", offs[1], page, err)
	}
	if string(page.Messages[0].Data) != `{"n":5}` || page.Messages[0].Topic != "user.h" || page.Messages[0].Epoch != e {
		t.Fatalf("message %+v", page.Messages[0])
	}
	if page, err = h.History(ctx, "user.h", codec.Position{Offset: 1, Epoch: e}, 0); err != nil || !page.Trimmed || len(page.Messages) != 5 {
		t.Fatalf("History after a pushed-out offset: %+v %v", page, err)
	}
	if _, err := h.History(ctx, "user.h", codec.Position{Offset: offs[1], Epoch: "x"}, 0); !errors.Is(err, ErrEpochChanged) {
		t.Fatalf("another epoch: %v", err)
	}
	if _, err := h.History(ctx, "news", codec.Position{}, 0); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("volatile topic: %v", err)
	}
	if _, err := h.History(ctx, "a..b", codec.Position{}, 0); !errors.Is(err, codec.ErrInvalidTopic) {
		t.Fatalf("invalid topic: %v", err)
	}

	// From the cache of a followed topic: no request.
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	r.resume(t, shard, Want{Topic: "user.h"})
	waitEstablished(t, h, "user.h")
	publishTo(t, pub, b, "user.h", 8, 3)
	ps := r.waitPushes(t, 3)
	reqs := h.Stats().BrokerRequests
	page, err = h.History(ctx, "user.h", codec.Position{Offset: ps[0].Offset, Epoch: ps[0].Epoch}, 10)
	if err != nil || len(page.Messages) != 2 || page.Messages[0].Seq != 2 || page.Messages[1].Offset != ps[2].Offset {
		t.Fatalf("History from the cache: %+v %v", page, err)
	}
	if n := h.Stats().BrokerRequests - reqs; n != 0 {
		t.Errorf("a cached history read made %d requests", n)
	}

	var got HistoryPage
	var gotErr error
	var ran atomic.Bool
	loop.do(t, func() {
		shard.History("user.h", codec.Position{}, 3, func(p HistoryPage, err error) {
			if !loop.inLoop {
				t.Error("Shard.History's done outside the loop")
			}
			got, gotErr = p, err
			ran.Store(true)
		})
	})
	waitFor(t, "the async history read", ran.Load)
	if gotErr != nil || len(got.Messages) != 3 || !got.More {
		t.Fatalf("Shard.History: %+v %v", got, gotErr)
	}
}

// TestDurableRelease: unsubscribing and closing give back every message
// the caches and replays held.
func TestDurableRelease(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(100)}, Config{})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	xs := r.resume(t, shard, Want{Topic: "user.x"}, Want{Topic: "user.y"})
	waitEstablished(t, h, "user.x")
	waitEstablished(t, h, "user.y")
	publishTo(t, pub, b, "user.x", 0, 20)
	publishTo(t, pub, b, "user.y", 0, 20)
	ps := r.waitPushes(t, 40)
	if st := h.Stats(); st.CacheMessages != 40 || st.DurableTopics != 2 || st.CacheBytes == 0 {
		t.Fatalf("cache %d messages %d bytes, %d durable topics", st.CacheMessages, st.CacheBytes, st.DurableTopics)
	}
	// A resume whose replay is still queued when it unsubscribes.
	r2 := newDrec(t, loop)
	loop.do(t, func() {
		ys, err := shard.Resume(r2, []Want{{Topic: "user.x", Since: &codec.Position{Offset: ps[0].Offset, Epoch: ps[0].Epoch}}}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		shard.Unsubscribe(ys[0])
	})
	loop.do(t, func() {
		for _, x := range xs {
			shard.Unsubscribe(x)
		}
	})
	waitFor(t, "every message released", func() bool {
		st := h.Stats()
		return st.MessagesLive == 0 && st.CacheMessages == 0 && st.DurableTopics == 0
	})
}

// TestResumeAtSharedOffset: offsets are shared by the topics of one
// history, so a position taken from another topic of the same stream (an
// SSE stream's Last-Event-ID names one topic) resumes a topic after that
// point: from the cache, and from the history.
func TestResumeAtSharedOffset(t *testing.T) {
	ns := startJS(t)
	nc := connect(t, ns)
	h, b := newDurableHub(t, nc, jsbroker.Config{History: userHistory(1000)}, Config{})
	pub := connect(t, ns)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	keeper := newDrec(t, loop)
	keeper.resume(t, shard, Want{Topic: "user.b"})
	keeper.waitDone(t)
	waitEstablished(t, h, "user.b")
	// a and b interleave: a's offsets fall between b's.
	for i := range 6 {
		publishTo(t, pub, b, "user.b", i, 1)
		publishTo(t, pub, b, "user.a", i, 1)
	}
	bs, as := storedOffsets(t, b, "user.b"), storedOffsets(t, b, "user.a")
	keeper.waitPushes(t, 6)
	epoch := keeper.pushes(t)[0].Epoch
	pos := as[2] // between b's third and fourth message
	wantB := after(bs, pos)
	for _, tc := range []struct {
		name, topic string
		want        []uint64
		first       int
	}{
		{"from the cache", "user.b", wantB, 3},
		{"from the history", "user.a", after(as, bs[4]), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pos
			if tc.topic == "user.a" {
				p = bs[4] // a's interest is new: the node reads the history
			}
			r := newDrec(t, loop)
			r.resume(t, shard, Want{Topic: tc.topic, Since: &codec.Position{Offset: p, Epoch: epoch}})
			if recs := r.waitDone(t); !recs[0].Recovered {
				t.Fatalf("outcome %+v", recs)
			}
			checkRun(t, r.waitPushes(t, len(tc.want)), tc.want, tc.first)
		})
	}
}
