package bench

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
)

// BenchmarkFanout publishes b.N messages through NATS to subscribers on
// real loopback sockets in a client process, and reports:
//
//	deliveries/s      pushes received by the clients per second of wall time
//	server-ns/deliv   CPU time of the server process (engine, hub, embedded
//	                  NATS, publisher) per delivery
//	allocs/msg        heap allocations in the server process per published
//	                  message, NATS included
//	frames/writev     pushes written per writev call (the batching factor)
//
// Shapes: 1 topic × 5,000 subscribers and 100 topics × 50 subscribers, with
// one and two event loops.
func BenchmarkFanout(b *testing.B) {
	for _, shape := range []struct{ topics, subs int }{{1, 5000}, {100, 50}} {
		for _, loops := range []int{1, 2} {
			name := fmt.Sprintf("topics=%d/subs=%d/loops=%d", shape.topics, shape.subs, loops)
			b.Run(name, func(b *testing.B) { benchFanout(b, shape.topics, shape.subs, loops) })
		}
	}
}

// BenchmarkFanoutDeflate is the 1 × 5,000 shape on one loop with
// permessage-deflate off and on (the clients offer it; they count frames
// without inflating, as their CPU is not the server's), for a 100-byte and
// a 2 KB JSON push. It also reports:
//
//	wire-B/deliv      payload bytes on the wire per delivery (compressed
//	                  when the push was)
//	deflate-ratio     compressed / uncompressed push bytes
func BenchmarkFanoutDeflate(b *testing.B) {
	small := []byte(`{"price":12345.67,"sym":"BTC-USD","pad":"` + strings.Repeat("x", 40) + `"}`)
	var book strings.Builder
	book.WriteString(`{"sym":"BTC-USD","bids":[`)
	for i := 0; book.Len() < 2000; i++ {
		if i > 0 {
			book.WriteByte(',')
		}
		fmt.Fprintf(&book, `{"price":%d.%02d,"qty":%d}`, 97000-i, i*7%100, 1+i%9)
	}
	book.WriteString(`]}`)
	for _, size := range []struct {
		name    string
		payload []byte
	}{{"100B", small}, {"2KB", []byte(book.String())}} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("payload=%s/compression=%v", size.name, on)
			b.Run(name, func(b *testing.B) { benchFanoutWith(b, 1, 5000, 1, fanoutOpts{payload: size.payload, deflate: on}) })
		}
	}
}

// BenchmarkFanoutDurable is BenchmarkFanout's 1 × 5,000 and 100 × 50
// shapes on one loop with durable topics: the embedded server's JetStream
// stores every message (file storage) and republishes it to the node,
// which checks it continues the topic's history, caches it, and sends it
// with its offset and epoch. Run together with BenchmarkFanout, the
// server-ns/deliv ratio is durability's cost per delivery.
func BenchmarkFanoutDurable(b *testing.B) {
	for _, shape := range []struct{ topics, subs int }{{1, 5000}, {100, 50}} {
		name := fmt.Sprintf("topics=%d/subs=%d/loops=1", shape.topics, shape.subs)
		b.Run(name, func(b *testing.B) {
			benchFanoutWith(b, shape.topics, shape.subs, 1, fanoutOpts{history: "fan.>:100000"})
		})
	}
}

func benchFanout(b *testing.B, topics, subsPerTopic, loops int) {
	benchFanoutWith(b, topics, subsPerTopic, loops, fanoutOpts{})
}

// fanoutOpts are the variations of the fan-out benchmark.
type fanoutOpts struct {
	payload []byte // the published message; nil: the 100-byte ticker JSON
	deflate bool   // permessage-deflate on the server, offered by the clients
	history string // --history's value for durable topics; "": none
}

func benchFanoutWith(b *testing.B, topics, subsPerTopic, loops int, o fanoutOpts) {
	payload := o.payload
	if payload == nil {
		payload = []byte(`{"price":12345.67,"sym":"BTC-USD","pad":"` + strings.Repeat("x", 40) + `"}`)
	}
	n := startNodeWith(b, loops, conn.Config{MaxOutbound: 8 << 20}, ws.Config{Compression: o.deflate}, o.history)
	total := topics * subsPerTopic
	var env []string
	if o.deflate {
		env = append(env, "BENCH_DEFLATE=1")
	}
	cl := startClients(b, n.srv.Addr(), "/ws?topics=fan.%d", total, topics, env...)
	waitFor(b, "subscriptions", time.Minute, func() bool { return n.hub.Stats().Subscriptions == int64(total) })
	pushes, _ := ws.CompressionStats()
	in0, out0, skip0 := pushes.In.Load(), pushes.Out.Load(), pushes.Skipped.Load()
	subjects := make([]string, topics)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("pushd.fan.%d", i)
	}
	// The publisher keeps about 100,000 deliveries in flight, then waits for
	// the clients to catch up, so no queue grows without bound.
	window := max(1, 100_000/subsPerTopic)
	m0 := n.srv.Metrics()
	frames0, writevs0 := m0.FramesOut.Load(), m0.Writevs.Load()
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	base := cl.recv.Load()
	start, c0 := time.Now(), cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := n.pub.Publish(subjects[i%topics], payload); err != nil {
			b.Fatal(err)
		}
		if i%window == window-1 {
			_ = n.pub.Flush()
			want := base + int64(i+1-window)*int64(subsPerTopic)
			for cl.recv.Load() < want {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	_ = n.pub.Flush()
	want := base + int64(b.N)*int64(subsPerTopic)
	waitFor(b, "deliveries", 2*time.Minute, func() bool { return cl.recv.Load() >= want })
	elapsed, cpu := time.Since(start), cpuTime()-c0
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	deliveries := float64(b.N) * float64(subsPerTopic)
	b.ReportMetric(deliveries/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "server-ns/deliv")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/msg")
	if w := m0.Writevs.Load() - writevs0; w > 0 {
		b.ReportMetric(float64(m0.FramesOut.Load()-frames0)/float64(w), "frames/writev")
	}
	if o.deflate {
		in, out, skipped := pushes.In.Load()-in0, pushes.Out.Load()-out0, pushes.Skipped.Load()-skip0
		if skipped > 0 || in == 0 {
			b.Logf("%d of %d pushes went uncompressed", skipped, b.N)
		}
		if in > 0 {
			b.ReportMetric(float64(out)/float64(in), "deflate-ratio")
			b.ReportMetric(float64(out)/float64(b.N), "wire-B/deliv")
		}
	} else {
		b.ReportMetric(float64(len(payload)+len(`{"type":"message","topic":"fan.0","seq":1,"data":}`)), "wire-B/deliv")
	}
}
