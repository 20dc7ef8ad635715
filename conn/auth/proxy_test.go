package auth

import (
	"net/netip"
	"testing"
)

func TestTrustedProxies(t *testing.T) {
	tp, err := ParseTrustedProxies([]string{"127.0.0.1", " 10.0.0.0/8 ", "fd00::/8", ""})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	cases := []struct {
		name string
		tp   *TrustedProxies
		peer netip.Addr
		want bool
	}{
		{"trusted loopback", tp, ip("127.0.0.1"), true},
		{"trusted CIDR", tp, ip("10.1.2.3"), true},
		{"trusted v6 CIDR", tp, ip("fd12::1"), true},
		{"mapped peer", tp, ip("::ffff:10.1.2.3"), true},
		{"untrusted peer", tp, ip("198.51.100.1"), false},
		{"other loopback not trusted", tp, ip("127.0.0.2"), false},
		{"nil trusts nobody", nil, ip("127.0.0.1"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.tp.Trusted(tc.peer); got != tc.want {
				t.Errorf("Trusted(%s) = %v, want %v", tc.peer, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0/8"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("ParseTrustedProxies(%q) succeeded", bad)
		}
	}
}
