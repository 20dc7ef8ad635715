package bench

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/sio"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/loadtest/procstat"
)

// BenchmarkIdleMemory holds BENCH_IDLE_CONNS (default 19,000) subscribed
// WebSocket connections from a client process that answers pings, waits
// two full heartbeat cycles, and reports the server process's growth per
// connection:
//
//	rss-B/conn    resident set size (VmRSS) growth per connection
//	heap-B/conn   live heap growth per connection after a GC
//
// The server is the benchmark process itself (engine, hub, embedded NATS);
// its baseline is measured after startup, before the clients connect.
// b.N is ignored: the measurement is one run.
func BenchmarkIdleMemory(b *testing.B) { idleMemory(b, "ws", "/ws?topics=idle.%d") }

// BenchmarkIdleMemorySSE is BenchmarkIdleMemory with Server-Sent Events
// streams (GET /sse?topics=…) instead of WebSockets: each stream gets its
// heartbeat comment every cycle, and the client reads everything.
func BenchmarkIdleMemorySSE(b *testing.B) { idleMemory(b, "sse", "/sse?topics=idle.%d") }

// BenchmarkIdleMemorySocketIO is BenchmarkIdleMemory for Socket.IO clients
// over WebSocket: each joins the main namespace, subscribes with a
// subscribe event and answers Engine.IO's pings. Run it in a process of its
// own (-bench 'IdleMemorySocketIO$') for a clean RSS figure: memory an
// earlier benchmark freed is reused without growing the RSS.
func BenchmarkIdleMemorySocketIO(b *testing.B) {
	idleMemory(b, "ws", sio.DefaultPath+"?EIO=4&transport=websocket", "BENCH_SIO_TOPIC=idle.%d")
}

// BenchmarkIdleMemoryDeflate is BenchmarkIdleMemory with permessage-deflate
// negotiated on every connection (the server has Compression on and each
// client offers the extension as a browser does). An idle compressing
// connection holds no compressor: pushes are compressed once per message
// and client messages are inflated with the loop's inflater, so the
// difference from BenchmarkIdleMemory is the negotiated parameters alone.
// Run it in a process of its own for a clean RSS figure.
func BenchmarkIdleMemoryDeflate(b *testing.B) {
	idleMemoryWith(b, ws.Config{Compression: true}, "ws", "/ws?topics=idle.%d", "BENCH_DEFLATE=1")
}

// idleMemory runs the idle-memory measurement with clients of transport
// ("ws" or "sse") dialing path, with extra client environment env.
func idleMemory(b *testing.B, transport, path string, env ...string) {
	idleMemoryWith(b, ws.Config{}, transport, path, env...)
}

// idleMemoryWith is idleMemory with the WebSocket settings wc (its ping
// interval and pong timeout are set here).
func idleMemoryWith(b *testing.B, wc ws.Config, transport, path string, env ...string) {
	n := 19000
	if v, err := strconv.Atoi(os.Getenv("BENCH_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	const ping = 2 * time.Second
	wc.PingInterval, wc.PongTimeout = ping, ping
	nd := startNode(b, 1, conn.Config{}, wc)
	runtime.GC()
	debug.FreeOSMemory()
	rss0, heap0 := procstat.SelfRSS(), liveHeap()
	cl := startTransportClients(b, transport, nd.srv.Addr(), path, n, 100, env...)
	// Under heavy machine load a starved client process can miss a pong
	// during the connect phase (the ping interval is short here) and be
	// closed: say so rather than only timing out.
	waitFor(b, "subscriptions", time.Minute, func() bool {
		if m := nd.srv.Metrics(); m.HeartbeatTimeouts.Load() > 0 {
			b.Fatalf("%d connections closed for a missing pong while connecting (machine overloaded?); %d subscribed",
				m.HeartbeatTimeouts.Load(), nd.hub.Stats().Subscriptions)
		}
		return nd.hub.Stats().Subscriptions == int64(n)
	})
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
	if path := os.Getenv("BENCH_HEAP_PROFILE"); path != "" {
		// While every connection is still open: where the idle bytes are.
		writeHeapProfile(b, path)
	}
	cl.stop()
}

func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// writeHeapProfile writes the live heap to path. Set runtime.MemProfileRate
// low (the test binary's -test.memprofilerate) to see small objects.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
