package auth

import (
	"strings"
	"testing"
)

func TestOriginPolicy(t *testing.T) {
	cases := []struct {
		name         string
		allowed      []string
		allowMissing bool
		origin       string
		want         bool
	}{
		{"exact", []string{"https://app.example.com"}, false, "https://app.example.com", true},
		{"exact, other host", []string{"https://app.example.com"}, false, "https://evil.com", false},
		{"exact, other scheme", []string{"https://app.example.com"}, false, "http://app.example.com", false},
		{"exact, other port", []string{"https://app.example.com"}, false, "https://app.example.com:8443", false},
		{"exact, explicit default port", []string{"https://app.example.com"}, false, "https://app.example.com:443", true},
		{"exact with port", []string{"http://localhost:3000"}, false, "http://localhost:3000", true},
		{"exact with port, no port sent", []string{"http://localhost:3000"}, false, "http://localhost", false},
		{"pattern default port equals none", []string{"http://app.example.com:80"}, false, "http://app.example.com", true},
		{"exact, case-insensitive scheme and host", []string{"https://App.Example.COM"}, false, "HTTPS://app.EXAMPLE.com", true},
		{"exact does not match a subdomain", []string{"https://example.com"}, false, "https://a.example.com", false},
		{"exact, suffix attack", []string{"https://example.com"}, false, "https://example.com.evil.com", false},
		{"wildcard, subdomain", []string{"https://*.example.com"}, false, "https://a.example.com", true},
		{"wildcard, deep subdomain", []string{"https://*.example.com"}, false, "https://a.b.example.com", true},
		{"wildcard, case-insensitive", []string{"https://*.Example.com"}, false, "https://A.EXAMPLE.COM", true},
		{"wildcard, not the apex", []string{"https://*.example.com"}, false, "https://example.com", false},
		{"wildcard, look-alike domain", []string{"https://*.example.com"}, false, "https://evil-example.com", false},
		{"wildcard, suffix attack", []string{"https://*.example.com"}, false, "https://a.example.com.evil.com", false},
		{"wildcard, empty label", []string{"https://*.example.com"}, false, "https://.example.com", false},
		{"wildcard, other scheme", []string{"https://*.example.com"}, false, "http://a.example.com", false},
		{"wildcard, other port", []string{"https://*.example.com"}, false, "https://a.example.com:8443", false},
		{"wildcard with port", []string{"https://*.example.com:8443"}, false, "https://a.example.com:8443", true},
		{"star allows anything", []string{"*"}, false, "https://evil.com", true},
		{"star allows null", []string{"*"}, false, "null", true},
		{"star does not decide a missing origin", []string{"*"}, false, "", false},
		{"missing origin allowed", []string{"https://app.example.com"}, true, "", true},
		{"missing origin refused", []string{"https://app.example.com"}, false, "", false},
		{"null refused", []string{"https://app.example.com"}, true, "null", false},
		{"path refused", []string{"https://app.example.com"}, false, "https://app.example.com/", false},
		{"userinfo refused", []string{"https://app.example.com"}, false, "https://user@app.example.com", false},
		{"bad port refused", []string{"https://app.example.com"}, false, "https://app.example.com:99999", false},
		{"empty port refused", []string{"https://app.example.com"}, false, "https://app.example.com:", false},
		{"IPv6 literal", []string{"http://[::1]:8080"}, false, "http://[::1]:8080", true},
		{"IPv6 literal, other port", []string{"http://[::1]:8080"}, false, "http://[::1]:8081", false},
		{"empty list", nil, false, "https://app.example.com", false},
		{"several entries", []string{"https://a.com", "https://*.b.com"}, false, "https://x.b.com", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewOriginPolicy(tc.allowed, tc.allowMissing)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Allow(tc.origin); got != tc.want {
				t.Errorf("Allow(%q) = %v, want %v", tc.origin, got, tc.want)
			}
		})
	}
}

func TestNewOriginPolicyErrors(t *testing.T) {
	for _, bad := range []string{
		"app.example.com",          // no scheme
		"https://",                 // no host
		"https://app.example.com/", // path
		"https://*.com",            // wildcard over a TLD
		"https://a.*.example.com",  // wildcard not leading
		"https://*example.com",     // wildcard inside a label
		"https://app.example.com:0",
		"https://user@app.example.com",
		"1https://app.example.com",
	} {
		t.Run(bad, func(t *testing.T) {
			_, err := NewOriginPolicy([]string{bad}, false)
			if err == nil {
				t.Fatalf("NewOriginPolicy(%q) succeeded", bad)
			}
			if !strings.Contains(err.Error(), bad) {
				t.Errorf("error %q does not name the entry", err)
			}
		})
	}
}

func TestOriginAllowAllocs(t *testing.T) {
	p, err := NewOriginPolicy([]string{"https://app.example.com", "https://*.example.org"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"https://app.example.com", "https://a.example.org", "https://evil.com"} {
		if n := testing.AllocsPerRun(100, func() { p.Allow(o) }); n != 0 {
			t.Errorf("Allow(%q) allocates %v times", o, n)
		}
	}
}
