package netpoll

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
)

// TestAcceptRate drives the admission's accept-rate limiter with an
// injected clock: acquire takes a token or refuses with the time until the
// next one; acceptRetry reads that time and takes nothing.
func TestAcceptRate(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ip := netip.MustParseAddr("192.0.2.1")
	type step struct {
		ms    int           // time of the call, ms after t0
		allow bool          // want from acquire (when retry < 0) …
		retry time.Duration // … or, when ≥ 0, want from acceptRetry
	}
	cases := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refill", 10, 3, []step{
			{0, true, -1}, {0, true, -1}, {0, true, -1}, // the full burst
			{0, false, -1},
			{0, false, 100 * time.Millisecond}, // one token per 100ms
			{50, false, 50 * time.Millisecond},
			{99, false, -1},
			{100, true, -1},
			{100, false, -1},
			{10_000, true, -1}, {10_000, true, -1}, {10_000, true, -1}, // refilled to burst, not beyond
			{10_000, false, -1},
		}},
		{"fractional rate", 0.5, 1, []step{
			{0, true, -1},
			{0, false, 2 * time.Second},
			{1999, false, -1},
			{2000, true, -1},
		}},
		{"clock going backwards earns nothing", 1, 1, []step{
			{5000, true, -1},
			{1000, false, -1},
			{5999, false, -1},
			{6000, true, -1},
		}},
		{"burst below 1 is 1", 100, 0, []step{
			{0, true, -1}, {0, false, -1}, {10, true, -1},
		}},
		{"unlimited", 0, 0, []step{
			{0, true, -1}, {0, true, -1}, {0, false, 0}, {0, true, -1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdmission(&Config{AcceptRate: tc.rate, AcceptBurst: tc.burst})
			admitted := int64(0)
			for i, s := range tc.steps {
				if s.retry >= 0 {
					if got := acceptRetry(a.rate, at(s.ms)); got != s.retry {
						t.Fatalf("step %d: acceptRetry(+%dms) = %v, want %v", i, s.ms, got, s.retry)
					}
					continue
				}
				reason, retry := a.acquire(ip, at(s.ms))
				if got := reason == ""; got != s.allow {
					t.Fatalf("step %d: acquire(+%dms) admitted = %v (%q), want %v", i, s.ms, got, reason, s.allow)
				}
				if s.allow {
					admitted++
					continue
				}
				if reason != rejectRate {
					t.Fatalf("step %d: refused for %q, want %q", i, reason, rejectRate)
				}
				if want := acceptRetry(a.rate, at(s.ms)); retry != want || retry <= 0 {
					t.Fatalf("step %d: refusal's retry = %v, want acceptRetry's %v (> 0)", i, retry, want)
				}
			}
			if n := a.open.Load(); n != admitted {
				t.Fatalf("%d connections counted open, want the %d admitted", n, admitted)
			}
		})
	}
}

// TestAcceptRateConcurrent admits from many goroutines at one instant, as
// every event loop does: exactly burst of them may get in.
func TestAcceptRateConcurrent(t *testing.T) {
	const burst = 500
	a := newAdmission(&Config{AcceptRate: 1, AcceptBurst: burst})
	at := time.Unix(1_700_000_000, 0)
	ip := netip.MustParseAddr("192.0.2.1")
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < 100; i++ {
				if reason, _ := a.acquire(ip, at); reason == "" {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != burst {
		t.Fatalf("%d connections admitted, want exactly %d", allowed, burst)
	}
	if n := a.open.Load(); n != burst {
		t.Fatalf("%d connections counted open, want %d: a refusal leaked its count", n, burst)
	}
}

// TestAcceptRateRefusalOnTheWire opens two connections over loopback to a
// server whose bucket holds one token and refills every 10 s: the first
// upgrades, the second gets a 503 whose Retry-After is the whole seconds
// until the next token (RFC 9110 §10.2.3), and is counted.
func TestAcceptRateRefusalOnTheWire(t *testing.T) {
	srv, err := Start(Config{Addr: "127.0.0.1:0", Loops: 1, AcceptRate: 0.1, AcceptBurst: 1,
		Routes: []conn.Route{ws.EchoRoute("/echo", ws.Config{})}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	get := func() *http.Response {
		t.Helper()
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close() // before Shutdown, which would wait for it
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := get(); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("first connection got %s, want 101", resp.Status)
	}
	resp := get()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection got %s, want 503", resp.Status)
	}
	// The token comes back 10 s after the first connection took it, less
	// the time between the two connections: 1 to 10 whole seconds.
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 10 {
		t.Fatalf("Retry-After %q, want 1..10 seconds", resp.Header.Get("Retry-After"))
	}
	if got := srv.Metrics().RejectedRate.Load(); got != 1 {
		t.Fatalf("rate rejections metric = %d, want 1", got)
	}
}

func TestDefaultLoops(t *testing.T) {
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 8: 4, 16: 8} {
		if got := DefaultLoops(procs); got != want {
			t.Errorf("DefaultLoops(%d) = %d, want %d", procs, got, want)
		}
	}
}
