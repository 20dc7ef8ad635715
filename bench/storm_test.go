package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/topics/broker"
)

// BenchmarkResumeStorm measures a reconnect storm on a durable topic: 5,000
// connections (in a client process) send, at the same moment, a subscribe
// that resumes the same topic after the same 100 missed messages, on a node
// that did not follow the topic before. It reports the time from the sends
// until every connection has its ok and its 100 replayed messages, the
// JetStream requests the node made for it (the design's bound: the first
// position lookup and one shared history read), and the server's CPU time
// per replayed message.
func BenchmarkResumeStorm(b *testing.B) {
	const clients, missed = 5000, 100
	b.StopTimer()
	for range b.N {
		n := startNodeWith(b, 1, conn.Config{MaxOutbound: 8 << 20}, ws.Config{}, "storm.>:1000")
		ctx := context.Background()
		var first broker.Ack
		for i := 0; i <= missed; i++ {
			acks, err := n.hub.PublishWait(ctx, []broker.Outgoing{{Topic: "storm.t", Data: fmt.Appendf(nil, `{"n":%d}`, i)}})
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				first = acks[0]
			}
		}
		cmd := fmt.Sprintf(`{"id":1,"type":"subscribe","topics":["storm.t"],"since":{"storm.t":{"offset":%d,"epoch":%q}}}`, first.Offset, first.Epoch)
		cl := startClients(b, n.srv.Addr(), "/ws", clients, 1, "BENCH_SEND="+cmd)
		waitFor(b, "welcomes", time.Minute, func() bool { return cl.recv.Load() >= clients })
		base, reqs0 := cl.recv.Load(), n.hub.Stats().BrokerRequests
		start, c0 := time.Now(), cpuTime()
		b.StartTimer()
		cl.goSend(b)
		want := base + clients*(1+missed)
		waitFor(b, "every replay", 2*time.Minute, func() bool { return cl.recv.Load() >= want })
		b.StopTimer()
		elapsed, cpu := time.Since(start), cpuTime()-c0
		st := n.hub.Stats()
		b.ReportMetric(float64(elapsed.Milliseconds()), "ms/storm")
		b.ReportMetric(float64(st.BrokerRequests-reqs0), "js-requests/storm")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(clients*missed), "server-ns/replayed")
		if got := cl.recv.Load(); got != want {
			b.Fatalf("%d frames, want %d", got-base, want-base)
		}
		cl.stop()
	}
}
