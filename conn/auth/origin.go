package auth

import (
	"fmt"
	"strings"
)

// OriginPolicy is the Origin allowlist. Browsers send the page's origin on
// every WebSocket handshake (RFC 6455 §4.1 item 8, §10.2) and let any page
// open a WebSocket to any host, with the user's cookies; checking Origin is
// what stops another site from using a logged-in user's browser to connect
// (cross-site WebSocket hijacking). Non-browser clients send no Origin, and
// can forge one, so the policy protects browser users only. An
// OriginPolicy is immutable after NewOriginPolicy.
type OriginPolicy struct {
	anyOrigin    bool
	allowMissing bool
	exact        map[string]struct{} // canonical "scheme://host[:port]"
	wild         []wildOrigin
}

// wildOrigin is a "scheme://*.suffix[:port]" entry.
type wildOrigin struct {
	scheme string
	suffix string // ".example.com"
	port   string // "" = the scheme's default
}

// NewOriginPolicy builds a policy from allowed, whose entries are:
//
//   - an exact origin, "https://app.example.com" or "http://localhost:3000";
//   - a subdomain wildcard, "https://*.example.com", which allows every
//     subdomain at any depth (a.example.com, a.b.example.com) but not the
//     apex example.com, with the same scheme and port;
//   - "*", which allows every Origin.
//
// Scheme and host compare case-insensitively, and a scheme's default port
// (:80 for http, :443 for https) is the same as none. allowMissing is the
// answer for a request without an Origin header. An empty allowed list with
// allowMissing false admits no request at all. Errors name the bad entry.
// Call it at start-up, from any goroutine.
func NewOriginPolicy(allowed []string, allowMissing bool) (*OriginPolicy, error) {
	p := &OriginPolicy{allowMissing: allowMissing, exact: map[string]struct{}{}}
	for _, a := range allowed {
		if a == "*" {
			p.anyOrigin = true
			continue
		}
		canon, scheme, host, port, ok := splitOrigin(strings.ToLower(a))
		if !ok {
			return nil, fmt.Errorf("auth: origin %q: want scheme://host[:port], scheme://*.domain[:port] or *", a)
		}
		if rest, wild := strings.CutPrefix(host, "*."); wild {
			if !validHost(rest) || !strings.Contains(rest, ".") && rest != "localhost" {
				// "*.com" would allow every .com site.
				return nil, fmt.Errorf("auth: origin %q: a wildcard needs a domain with at least two labels", a)
			}
			p.wild = append(p.wild, wildOrigin{scheme: scheme, suffix: "." + rest, port: port})
			continue
		}
		if !validHost(host) {
			return nil, fmt.Errorf("auth: origin %q: invalid host", a)
		}
		p.exact[canon] = struct{}{}
	}
	return p, nil
}

// Allow reports whether a handshake with this Origin header value may
// proceed; "" means the header was absent. The literal "null" (sandboxed
// frames, file: pages) and anything that is not scheme://host[:port] are
// refused unless the policy has "*". It allocates only when origin has
// upper-case letters. Safe for concurrent use.
func (p *OriginPolicy) Allow(origin string) bool {
	if origin == "" {
		return p.allowMissing
	}
	if p.anyOrigin {
		return true
	}
	canon, scheme, host, port, ok := splitOrigin(strings.ToLower(origin))
	if !ok || !validHost(host) {
		return false
	}
	if _, ok := p.exact[canon]; ok {
		return true
	}
	for _, w := range p.wild {
		if w.scheme == scheme && w.port == port && len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			return true
		}
	}
	return false
}

// splitOrigin splits a lower-case serialized origin (RFC 6454 §6.1:
// scheme "://" host [ ":" port ]) and returns its canonical form: s without
// the scheme's default port, which it also drops from port. It rejects
// paths, queries, fragments, user info and empty parts.
func splitOrigin(s string) (canon, scheme, host, port string, ok bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) || rest == "" || strings.ContainsAny(rest, "/?#@\\ \t") {
		return "", "", "", "", false
	}
	host = rest
	hasPort := false
	if strings.HasPrefix(rest, "[") { // IPv6 literal
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "", "", false
		}
		host, rest = rest[:end+1], rest[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", "", "", "", false
			}
			port, hasPort = rest[1:], true
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port, hasPort = rest[:i], rest[i+1:], true
	}
	if host == "" || hasPort && !validPort(port) {
		return "", "", "", "", false
	}
	canon = s
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		canon, port = s[:len(s)-len(port)-1], ""
	}
	return canon, scheme, host, port, true
}

func validScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validHost accepts lower-case DNS names (punycode for IDNs, as browsers
// serialize them), IPv4 literals and bracketed IPv6 literals.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	if h[0] == '[' {
		if len(h) < 3 || h[len(h)-1] != ']' {
			return false
		}
		for i := 1; i < len(h)-1; i++ {
			c := h[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || c == ':' || c == '.') {
				return false
			}
		}
		return true
	}
	if h[0] == '.' || h[len(h)-1] == '.' || strings.Contains(h, "..") {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n <= 65535
}
