package topics

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/topics/broker"
)

// countLoop is a minimal real event loop for benchmarks: one goroutine
// running submitted functions, whose subscribers only count deliveries.
type countLoop struct {
	fns  chan func()
	done chan struct{}

	n     int64        // owned by the loop goroutine: deliveries so far
	total atomic.Int64 // n as of the last Flush, for the benchmark goroutine
}

func newCountLoop(b *testing.B) *countLoop {
	l := &countLoop{fns: make(chan func(), 1024), done: make(chan struct{})}
	go func() {
		for {
			select {
			case fn := <-l.fns:
				fn()
			case <-l.done:
				return
			}
		}
	}()
	b.Cleanup(func() { close(l.done) })
	return l
}

func (l *countLoop) Execute(fn func()) error  { l.fns <- fn; return nil }
func (l *countLoop) Later(fn func()) error    { return l.Execute(fn) }
func (l *countLoop) Flush(time.Duration) bool { l.total.Store(l.n); return true }

// do runs fn on the loop goroutine and waits for it.
func (l *countLoop) do(fn func()) {
	ran := make(chan struct{})
	l.fns <- func() { fn(); close(ran) }
	<-ran
}

// counter is a trivial Subscriber: it asks for the v1 WebSocket encoding,
// as a connection does (built once per message, shared), and counts.
type counter struct{ l *countLoop }

func (c counter) Deliver(m *Message) {
	_ = m.Bytes(pushFormat)
	c.l.n++
}

// fanoutFixture is a Hub with two shards and nTopics topics per namespace,
// each with subsPerTopic subscribers split evenly over the shards.
type fanoutFixture struct {
	nc           *nats.Conn
	h            *Hub
	loops        []*countLoop
	subsPerTopic int
}

func newFanoutFixture(b *testing.B, namespaces []string, nTopics, subsPerTopic int) *fanoutFixture {
	b.Helper()
	ns := startNATS(b, -1)
	fx := &fanoutFixture{nc: connect(b, ns), subsPerTopic: subsPerTopic}
	fx.h = newHub(b, fx.nc, testConfig{})
	fx.loops = []*countLoop{newCountLoop(b), newCountLoop(b)}
	for i, l := range fx.loops {
		s := fx.h.NewShard(l)
		l.do(func() {
			for _, space := range namespaces {
				for t := range nTopics {
					for range subsPerTopic / len(fx.loops) {
						if _, err := s.Subscribe(topicName(space, t), counter{l}); err != nil {
							b.Errorf("shard %d: Subscribe: %v", i, err)
							return
						}
					}
				}
			}
		})
	}
	flush(b, fx.nc)
	return fx
}

func topicName(space string, i int) string { return fmt.Sprintf("%s.t%d", space, i) }

// delivered returns the deliveries flushed so far on every loop.
func (fx *fanoutFixture) delivered() int64 {
	var n int64
	for _, l := range fx.loops {
		n += l.total.Load()
	}
	return n
}

// waitBehind blocks until at most window of the sent messages are
// undelivered, so the benchmark measures steady throughput instead of
// overflowing the queues.
func (fx *fanoutFixture) waitBehind(b *testing.B, start int64, sent, window int) {
	deadline := time.Now().Add(30 * time.Second)
	for int64(sent-window)*int64(fx.subsPerTopic) > fx.delivered()-start {
		if time.Now().After(deadline) {
			b.Fatalf("stuck: %d of %d deliveries", fx.delivered()-start, sent*fx.subsPerTopic)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// run times b.N messages sent by send, round robin over nTopics, and reports
// the deliveries and hand-offs per message.
func (fx *fanoutFixture) run(b *testing.B, nTopics int, send func(i int)) {
	const window = 256
	start, before := fx.delivered(), fx.h.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		send(i % nTopics)
		if i%64 == 63 {
			fx.waitBehind(b, start, i+1, window)
		}
	}
	fx.waitBehind(b, start, b.N, 0)
	b.StopTimer()
	after := fx.h.Stats()
	if got, want := fx.delivered()-start, int64(b.N*fx.subsPerTopic); got != want {
		b.Fatalf("%d deliveries, want %d", got, want)
	}
	b.ReportMetric(float64(fx.delivered()-start)/float64(b.N), "deliveries/op")
	b.ReportMetric(float64(after.Handoffs-before.Handoffs)/float64(b.N), "handoffs/op")
}

// benchFanout measures fan-out of one message to subsPerTopic subscribers on
// two loops, with nTopics topics taking turns:
//
//   - dispatch: the hub's path alone (the broker.Sink's Deliver: number,
//     wrap once, hand-off, drain, Deliver, encode once, Flush, Release), fed
//     directly as the broker's worker would. Its allocs/op are topics' own:
//     zero in steady state, whatever the number of subscribers.
//   - nats: end to end from Hub.Publish through the real NATS server and
//     nats.go's reader. nats.go allocates each *nats.Msg and its data, and
//     the allocation count includes the in-process server's.
func benchFanout(b *testing.B, nTopics, subsPerTopic int) {
	fx := newFanoutFixture(b, []string{"d", "n"}, nTopics, subsPerTopic)
	data := []byte(`{"price":12345.67,"qty":3}`)
	b.Run("dispatch", func(b *testing.B) {
		sinks := make([]*topicState, nTopics)
		for t := range sinks {
			name := topicName("d", t)
			p := fx.h.partFor(name)
			p.mu.RLock()
			sinks[t] = p.topics[name]
			p.mu.RUnlock()
		}
		// The broker's workers deliver too; keep them out of the way by
		// never publishing to the "d" topics through NATS.
		fx.run(b, nTopics, func(t int) { sinks[t].Deliver(broker.Message{Data: data}) })
	})
	b.Run("nats", func(b *testing.B) {
		names := make([]string, nTopics)
		for t := range names {
			names[t] = topicName("n", t)
		}
		fx.run(b, nTopics, func(t int) {
			if err := fx.h.Publish(names[t], data); err != nil {
				b.Fatal(err)
			}
		})
		if st := fx.h.Stats(); st.DroppedBroker != 0 || st.DroppedShardQueue != 0 {
			b.Errorf("drops during the benchmark: %+v", st)
		}
	})
}

// BenchmarkFanout1x5000 is one topic with 5,000 subscribers on two loops.
func BenchmarkFanout1x5000(b *testing.B) { benchFanout(b, 1, 5000) }

// BenchmarkFanout100x50 is 100 topics with 50 subscribers each on two loops.
func BenchmarkFanout100x50(b *testing.B) { benchFanout(b, 100, 50) }
