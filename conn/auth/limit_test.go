package auth

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		ms    int           // time of the call, ms after t0
		allow bool          // want from Allow (when retry < 0) …
		retry time.Duration // … or, when ≥ 0, want from RetryAfter
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
			b := NewTokenBucket(tc.rate, tc.burst)
			for i, s := range tc.steps {
				if s.retry >= 0 {
					if got := b.RetryAfter(at(s.ms)); got != s.retry {
						t.Fatalf("step %d: RetryAfter(+%dms) = %v, want %v", i, s.ms, got, s.retry)
					}
					continue
				}
				if got := b.Allow(at(s.ms)); got != s.allow {
					t.Fatalf("step %d: Allow(+%dms) = %v, want %v", i, s.ms, got, s.allow)
				}
			}
		})
	}
}

// TestTokenBucketConcurrent takes tokens from many goroutines at one
// instant: exactly burst of them may succeed.
func TestTokenBucketConcurrent(t *testing.T) {
	const burst = 500
	b := NewTokenBucket(1, burst)
	at := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < 100; i++ {
				if b.Allow(at) {
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
		t.Fatalf("%d events allowed, want exactly %d", allowed, burst)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {90 * time.Second, "90"},
	} {
		if got := RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestIPKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	} {
		if got := IPKey(netip.MustParseAddr(tc.in)); got != netip.MustParseAddr(tc.want) {
			t.Errorf("IPKey(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestPerIPCounter(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	v6a := netip.MustParseAddr("2001:db8::1")
	v6b := netip.MustParseAddr("2001:db8::2") // same /64
	c := NewPerIPCounter(2)
	steps := []struct {
		op   string // "acq" or "rel"
		ip   netip.Addr
		want bool // for acq
	}{
		{"acq", a, true}, {"acq", a, true}, {"acq", a, false}, // cap
		{"acq", b, true}, // another address is unaffected
		{"rel", a, false}, {"acq", a, true}, {"acq", a, false},
		{"acq", v6a, true}, {"acq", v6b, true}, {"acq", v6a, false}, // one /64
		{"rel", b, false}, {"rel", b, false}, // double release is a no-op
		{"acq", b, true}, {"acq", b, true}, {"acq", b, false},
	}
	for i, s := range steps {
		switch s.op {
		case "acq":
			if got := c.Acquire(s.ip); got != s.want {
				t.Fatalf("step %d: Acquire(%s) = %v, want %v", i, s.ip, got, s.want)
			}
		case "rel":
			c.Release(s.ip)
		}
	}
	if c.Len() != 3 || c.Count(a) != 2 || c.Count(v6b) != 2 {
		t.Fatalf("Len = %d, Count(a) = %d, Count(v6) = %d; want 3, 2, 2", c.Len(), c.Count(a), c.Count(v6b))
	}
	for _, ip := range []netip.Addr{a, a, b, b, v6a, v6b} {
		c.Release(ip)
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after releasing everything, want 0 (entries deleted at zero)", c.Len())
	}
	unlimited := NewPerIPCounter(0)
	for i := 0; i < 1000; i++ {
		if !unlimited.Acquire(a) {
			t.Fatal("unlimited counter refused")
		}
	}
}

// TestPerIPCounterConcurrent hammers a counter from many goroutines (run
// with -race): the cap holds at every instant, and every count returns to
// zero.
func TestPerIPCounterConcurrent(t *testing.T) {
	const limit = 5
	c := NewPerIPCounter(limit)
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::9")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := map[netip.Addr]int{}
	maxHeld := 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				ip := ips[(g+i)%len(ips)]
				if !c.Acquire(ip) {
					continue
				}
				mu.Lock()
				held[ip]++
				maxHeld = max(maxHeld, held[ip])
				mu.Unlock()
				runtime.Gosched() // hold the slot while others try
				mu.Lock()
				held[ip]--
				mu.Unlock()
				c.Release(ip)
			}
		}()
	}
	wg.Wait()
	if maxHeld > limit {
		t.Errorf("%d connections held for one address, cap %d", maxHeld, limit)
	}
	if c.Len() != 0 {
		t.Errorf("Len = %d after every release, want 0", c.Len())
	}
}
