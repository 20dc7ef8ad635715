package netpoll_test

// RFC 6455 conformance of the netpoll engine's echo endpoint, driven over
// real loopback sockets by the raw client of wsclient_test.go. Each group
// gets its own server, shared by its cases; the tables are in
// conformance_cases_test.go.

import (
	"context"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// echoPath is the echo endpoint every conformance server enables.
const echoPath = "/echo"

// startServer starts an engine on a free loopback port with the echo
// endpoint (configured by wcfg) and cfg's other settings, and shuts it down
// when the test ends.
func startServer(t *testing.T, cfg netpoll.Config, wcfg ws.Config) *netpoll.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Routes = append(cfg.Routes, ws.EchoRoute(echoPath, wcfg))
	if cfg.Tick == 0 {
		cfg.Tick = conn.TickFor(wcfg.PingInterval, wcfg.PongTimeout, cfg.Conn.HandshakeTimeout, cfg.Conn.CloseTimeout,
			cfg.Conn.SlowConsumerTimeout)
	}
	srv, err := netpoll.Start(cfg)
	if err != nil {
		t.Fatalf("netpoll.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

// TestConformanceFraming runs Autobahn group 1 (and the default 64 KiB
// limit) on two loops.
func TestConformanceFraming(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 2}, ws.Config{}).Addr(), echoPath, framingCases())
}

// TestConformancePingPong runs Autobahn group 2 on one loop.
func TestConformancePingPong(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 1}, ws.Config{}).Addr(), echoPath, pingCases())
}

// TestConformanceReservedBits runs Autobahn group 3.
func TestConformanceReservedBits(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 2}, ws.Config{}).Addr(), echoPath, rsvCases())
}

// TestConformanceOpcodes runs Autobahn group 4.
func TestConformanceOpcodes(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 1}, ws.Config{}).Addr(), echoPath, opcodeCases())
}

// TestConformanceFragmentation runs Autobahn group 5.
func TestConformanceFragmentation(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 2}, ws.Config{}).Addr(), echoPath, fragmentationCases())
}

// TestConformanceUTF8 runs Autobahn group 6, fail-fast cases included.
func TestConformanceUTF8(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 2}, ws.Config{}).Addr(), echoPath, utf8Cases())
}

// TestConformanceClose runs Autobahn group 7.
func TestConformanceClose(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 1}, ws.Config{}).Addr(), echoPath, closeCases())
}

// TestConformanceMisc runs Autobahn group 10 and the remaining §5 protocol
// errors.
func TestConformanceMisc(t *testing.T) {
	t.Parallel()
	runCases(t, startServer(t, netpoll.Config{Loops: 2}, ws.Config{}).Addr(), echoPath, miscCases())
}

// TestConformanceLargeMessages runs Autobahn group 9 with a 1 MiB limit.
func TestConformanceLargeMessages(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	addr := startServer(t, netpoll.Config{Loops: 2, Conn: conn.Config{
		// The echo of a 1 MiB message is queued whole while the client
		// reads it; leave room so the slow-consumer cap does not fire.
		MaxOutbound: 8 * limit,
	}}, ws.Config{MaxFrameSize: limit, MaxMessageSize: limit}).Addr()
	runCases(t, addr, echoPath, largeCases(limit))
}

// TestConformanceFrameLimit checks the frame and message limits apart.
func TestConformanceFrameLimit(t *testing.T) {
	t.Parallel()
	addr := startServer(t, netpoll.Config{Loops: 1}, ws.Config{
		MaxFrameSize:   4 << 10,
		MaxMessageSize: 16 << 10,
	}).Addr()
	runCases(t, addr, echoPath, frameLimitCases())
}
