package bench

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/loadtest/procstat"
)

// BenchmarkIdleMemory holds BENCH_IDLE_CONNS (default 19,000) subscribed
// connections from a client process that answers pings, waits two full
// heartbeat cycles, and reports the server process's growth per connection:
//
//	rss-B/conn    resident set size (VmRSS) growth per connection
//	heap-B/conn   live heap growth per connection after a GC
//
// The server is the benchmark process itself (engine, hub, embedded NATS);
// its baseline is measured after startup, before the clients connect.
// b.N is ignored: the measurement is one run.
func BenchmarkIdleMemory(b *testing.B) {
	n := 19000
	if v, err := strconv.Atoi(os.Getenv("BENCH_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	const ping = 2 * time.Second
	nd := startNode(b, 1, conn.Config{}, ws.Config{PingInterval: ping, PongTimeout: ping})
	runtime.GC()
	debug.FreeOSMemory()
	rss0, heap0 := procstat.SelfRSS(), liveHeap()
	cl := startClients(b, nd.srv.Addr(), "/ws?topics=idle.%d", n, 100)
	waitFor(b, "subscriptions", time.Minute, func() bool { return nd.hub.Stats().Subscriptions == int64(n) })
	pings0 := nd.srv.Metrics().PingsSent.Load()
	time.Sleep(2*ping + ping/2) // every connection pinged and answered at least once
	m := nd.srv.Metrics()
	if got := m.Open.Load(); got != int64(n) {
		b.Fatalf("%d connections open after the heartbeat cycle, want %d (heartbeat timeouts: %d)", got, n, m.HeartbeatTimeouts.Load())
	}
	if sent := m.PingsSent.Load() - pings0; sent < int64(n) {
		b.Fatalf("only %d pings sent to %d connections during two cycles", sent, n)
	}
	runtime.GC()
	rss1, heap1 := procstat.SelfRSS(), liveHeap()
	b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/conn")
	b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/conn")
	b.ReportMetric(float64(n), "conns")
	cl.stop()
}

func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
