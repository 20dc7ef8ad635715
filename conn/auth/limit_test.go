package auth

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

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
