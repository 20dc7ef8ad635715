package auth

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// TrustedProxies is the set of peer addresses whose X-Forwarded-For header
// pushd believes: the TLS-terminating proxies in front of it. From any
// other peer the header is attacker-controlled, and believing it would let
// a client pick the address its per-IP limit is charged to. It is immutable
// after ParseTrustedProxies.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// ParseTrustedProxies parses CIDR prefixes ("10.0.0.0/8", "fd00::/8") and
// single addresses ("127.0.0.1", meaning /32 or /128). An empty list trusts
// no peer. Pure.
func ParseTrustedProxies(list []string) (*TrustedProxies, error) {
	t := &TrustedProxies{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("auth: trusted proxy %q: %w", s, err)
			}
			t.prefixes = append(t.prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("auth: trusted proxy %q: %w", s, err)
		}
		a = a.Unmap().WithZone("")
		t.prefixes = append(t.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

// Trusted reports whether peer is one of the trusted proxies. A nil
// TrustedProxies trusts nobody. Safe for concurrent use.
func (t *TrustedProxies) Trusted(peer netip.Addr) bool {
	if t == nil {
		return false
	}
	peer = peer.Unmap().WithZone("")
	return slices.ContainsFunc(t.prefixes, func(p netip.Prefix) bool { return p.Contains(peer) })
}
