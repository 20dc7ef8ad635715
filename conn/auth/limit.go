package auth

import (
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// RetryAfterSeconds formats d as the value of a Retry-After header (RFC 9110
// §10.2.3: whole seconds), rounding up and never below 1, so a client that
// obeys it does not come back before the limiter has room. Pure.
func RetryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

// PerIPCounter counts open connections per client address and refuses
// those past a cap. IPv4 addresses (and IPv4-mapped IPv6 ones) count
// individually; IPv6 addresses count per /64, the smallest block a site is
// normally given, since a client holding one /64 can use 2^64 addresses.
// Entries are deleted when their count returns to zero, so memory follows
// the number of distinct clients connected. Safe for concurrent use.
type PerIPCounter struct {
	limit int // immutable; ≤ 0 = unlimited

	mu sync.Mutex           // guards m
	m  map[netip.Addr]int32 // IPKey → open connections
}

// NewPerIPCounter returns a counter that allows limit connections per
// address (see IPKey). A limit of zero or less means unlimited: Acquire
// always succeeds and nothing is stored. Pure.
func NewPerIPCounter(limit int) *PerIPCounter {
	return &PerIPCounter{limit: limit, m: map[netip.Addr]int32{}}
}

// IPKey is the address PerIPCounter counts ip under: ip itself for IPv4,
// the unmapped IPv4 address for an IPv4-mapped IPv6 address, and the /64
// prefix (other bits zero, zone dropped) for IPv6. Pure.
func IPKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.Addr()
	}
	return ip
}

// Acquire counts one more connection from ip and reports true, or reports
// false without counting when ip is at the limit. Each true must be matched
// by one Release. Safe for concurrent use.
func (c *PerIPCounter) Acquire(ip netip.Addr) bool {
	if c.limit <= 0 {
		return true
	}
	k := IPKey(ip)
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.m[k]
	if int(n) >= c.limit {
		return false
	}
	c.m[k] = n + 1
	return true
}

// Release counts one connection from ip fewer. Releasing an address with no
// open connection is a no-op, so a double release cannot push a count
// below zero and unblock another client. Safe for concurrent use.
func (c *PerIPCounter) Release(ip netip.Addr) {
	if c.limit <= 0 {
		return
	}
	k := IPKey(ip)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch n := c.m[k]; {
	case n > 1:
		c.m[k] = n - 1
	case n == 1:
		delete(c.m, k)
	}
}

// Count returns the open connections counted for ip's key. Safe for
// concurrent use.
func (c *PerIPCounter) Count(ip netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.m[IPKey(ip)])
}

// Len returns the number of addresses with open connections. Safe for
// concurrent use.
func (c *PerIPCounter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
