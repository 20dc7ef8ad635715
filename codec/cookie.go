package codec

import "strings"

// CookieValue returns the value of the first cookie called name in a Cookie
// request header, whose syntax is cookie-pair *( ";" SP cookie-pair ) with
// cookie-pair = cookie-name "=" cookie-value (RFC 6265 §4.2.1). The value is
// a substring of header (no allocation), without the double quotes that may
// surround it.
//
// Names match exactly (they are case-sensitive); a name that is not an
// HTTP token matches nothing. Space and tab around a pair
// are tolerated; anything else off the grammar makes the pair be skipped:
// a pair without '=', spaces around '=', or a value holding a byte that is
// not a cookie-octet (§4.1.1: no control characters, whitespace, DQUOTE,
// comma, semicolon or backslash). Skipping rather than failing lets a
// malformed cookie of another application coexist with ours. When a name
// repeats, the first valid pair wins: user agents list the cookie with the
// longest path first (§5.4 item 2), and net/http picks the first too. Unlike
// net/http, spaces and commas inside a value are not accepted: a token in a
// cookie never holds them. CookieValue is pure and may be called from any
// goroutine.
func CookieValue(header, name string) (string, bool) {
	if !isToken(name) {
		return "", false // no valid pair has this name (cookie-name = token)
	}
	for header != "" {
		var pair string
		pair, header, _ = strings.Cut(header, ";")
		k, v, ok := strings.Cut(strings.Trim(pair, " \t"), "=")
		if !ok || k != name {
			continue
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if validCookieValue(v) {
			return v, true
		}
	}
	return "", false
}

// validCookieValue reports whether v is *cookie-octet (RFC 6265 §4.1.1):
// %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E.
func validCookieValue(v string) bool {
	for i := range len(v) {
		c := v[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}
