package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
)

// Redacted replaces every secret the functions of this file remove.
const Redacted = "REDACTED"

// sensitiveParams are the query parameters whose values RedactQuery
// removes, compared case-insensitively after percent-decoding the name.
var sensitiveParams = []string{
	"token", "access_token", "id_token", "refresh_token", "jwt",
	"key", "api_key", "apikey", "api-key", "password", "secret",
}

// sensitiveHeaders are the header names whose values RedactHeader removes,
// lower case.
var sensitiveHeaders = []string{
	"authorization", "proxy-authorization", "cookie", "set-cookie",
	"x-api-key", "x-auth-token", "sec-websocket-protocol",
}

// RedactQuery returns rawQuery (undecoded, without the '?') with the value
// of every sensitive parameter (token, access_token, id_token,
// refresh_token, jwt, key, api_key, apikey, api-key, password, secret)
// replaced by Redacted, and any JWT-shaped text in the other values
// replaced too. Parameter order and the other parameters are kept byte for
// byte. Pure; safe for concurrent use.
func RedactQuery(rawQuery string) string {
	var b strings.Builder // used from the first sensitive parameter on
	done := 0             // rawQuery[:done] is in b
	for pos := 0; pos < len(rawQuery); {
		end := strings.IndexByte(rawQuery[pos:], '&')
		if end < 0 {
			end = len(rawQuery)
		} else {
			end += pos
		}
		kv := rawQuery[pos:end]
		if k, _, hasValue := strings.Cut(kv, "="); hasValue && isSensitiveParam(k) {
			b.WriteString(rawQuery[done : pos+len(k)+1])
			b.WriteString(Redacted)
			done = end
		}
		pos = end + 1
	}
	if done == 0 {
		return redactJWTs(rawQuery)
	}
	b.WriteString(rawQuery[done:])
	return redactJWTs(b.String())
}

func isSensitiveParam(k string) bool {
	if strings.ContainsAny(k, "%+") {
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
	}
	return slices.ContainsFunc(sensitiveParams, func(s string) bool { return strings.EqualFold(k, s) })
}

// RedactHeader returns the value of the header name as it may be logged:
// Redacted for credentials (Authorization, Proxy-Authorization, Cookie,
// Set-Cookie, X-Api-Key, X-Auth-Token, and Sec-WebSocket-Protocol, which
// may carry a token), otherwise value with any JWT-shaped text replaced.
// name is case-insensitive. Pure; safe for concurrent use.
func RedactHeader(name, value string) string {
	if slices.ContainsFunc(sensitiveHeaders, func(h string) bool { return strings.EqualFold(name, h) }) {
		return Redacted
	}
	return redactJWTs(value)
}

// redactString removes secrets from free text: the sensitive parameters of
// anything after a '?' (a URL or request target), and JWT-shaped text.
func redactString(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		if q := RedactQuery(s[i+1:]); q != s[i+1:] {
			s = s[:i+1] + q
		}
	}
	return redactJWTs(s)
}

// redactJWTs replaces every JWT-shaped substring of s with Redacted: "eyJ"
// (the base64url of `{"`, how every JOSE header starts) followed by
// base64url characters, a dot, at least one base64url character, a dot,
// and any number of base64url characters (an unsigned token's signature is
// empty). It returns s itself when there is nothing to replace.
func redactJWTs(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for from := 0; ; {
		i := strings.Index(s[from:], "eyJ")
		if i < 0 {
			break
		}
		start := from + i
		end := jwtEnd(s, start)
		if end == 0 {
			from = start + 3
			continue
		}
		b.WriteString(s[done:start])
		b.WriteString(Redacted)
		done, from = end, end
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// jwtEnd returns the end of the JWT-shaped text that starts at s[start], or
// 0 if there is none.
func jwtEnd(s string, start int) int {
	i := start
	for seg := 0; seg < 3; seg++ {
		n := 0
		for i < len(s) && isBase64URL(s[i]) {
			i++
			n++
		}
		if seg < 2 {
			if n == 0 || i >= len(s) || s[i] != '.' {
				return 0
			}
			i++ // the dot
		}
	}
	return i
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// sensitiveKey reports whether a log attribute's key names a credential.
// The key is compared in lower case, by substring, so "api_key",
// "X-Api-Key" and "bearer_token" all match.
func sensitiveKey(k string) bool {
	k = strings.ToLower(k)
	if k == "key" || k == "keys" {
		return true
	}
	return slices.ContainsFunc([]string{
		"token", "secret", "password", "passwd", "authorization", "cookie",
		"api_key", "apikey", "api-key", "credential", "jwt", "sec-websocket-protocol", "subprotocol",
	}, func(s string) bool { return strings.Contains(k, s) })
}

// queryKey reports whether a log attribute's key holds a raw query string.
func queryKey(k string) bool {
	switch strings.ToLower(k) {
	case "query", "raw_query", "rawquery", "query_string", "querystring", "args":
		return true
	}
	return false
}

// RedactingHandler returns a slog.Handler that removes secrets from every
// record before passing it to h:
//
//   - an attribute whose key names a credential (it contains "token",
//     "secret", "password", "authorization", "cookie", "api_key", "jwt",
//     "sec-websocket-protocol", … or is "key") gets the value Redacted,
//     whatever its type;
//   - an attribute whose key is "query" (or "raw_query", …) gets
//     RedactQuery of its value;
//   - every other string value, error, fmt.Stringer or other value, and the
//     message, has the sensitive parameters after a '?' and any JWT-shaped
//     text replaced by Redacted.
//
// Groups are searched recursively, and attributes added with WithAttrs are
// redacted once, when added. Values implementing slog.LogValuer are
// resolved first. The cost is a scan of each string; records without
// secrets pass unchanged. It is a backstop: code should still never log a
// token or a raw query. The handler is safe for concurrent use if h is.
func RedactingHandler(h slog.Handler) slog.Handler {
	if r, ok := h.(*redactingHandler); ok {
		return r
	}
	return &redactingHandler{h: h}
}

type redactingHandler struct {
	h slog.Handler
}

func (r *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return r.h.Enabled(ctx, l)
}

func (r *redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, redactString(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *redactingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return &redactingHandler{h: r.h.WithAttrs(red)}
}

func (r *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{h: r.h.WithGroup(name)}
}

// redactAttr returns a with secrets removed from its value.
func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		g := v.Group()
		red := make([]slog.Attr, len(g))
		for i, ga := range g {
			red[i] = redactAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	}
	if sensitiveKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		if queryKey(a.Key) {
			return slog.String(a.Key, RedactQuery(s))
		}
		if r := redactString(s); r != s {
			return slog.String(a.Key, r)
		}
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			// Handlers format other values themselves (JSON or %+v); check
			// the text form and keep the value only if it is clean.
			s = fmt.Sprintf("%+v", x)
		}
		if queryKey(a.Key) {
			return slog.String(a.Key, RedactQuery(s))
		}
		if r := redactString(s); r != s {
			return slog.String(a.Key, r)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// Fingerprint names a secret in logs without revealing it: "fp:" and the
// first 12 hex digits of its SHA-256, or "none" for an empty secret. Equal
// secrets give equal fingerprints, so an operator can match a refused token
// or API key with the one they issued (by fingerprinting it the same way)
// while the log holds nothing that can be replayed. Pure.
func Fingerprint(secret string) string {
	if secret == "" {
		return "none"
	}
	sum := sha256.Sum256([]byte(secret))
	return "fp:" + hex.EncodeToString(sum[:6])
}
