package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// A token and an API key as they would reach a log line.
const (
	leakJWT = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1MSIsImV4cCI6MTcwMDAwMzYwMH0.Zm9vYmFyYmF6cXV4c2lnbmF0dXJl"
	leakKey = "pk_live_9f8e7d6c5b4a39281706"
)

func TestRedactQuery(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"topics=a,b", "topics=a,b"},
		{"token=" + leakJWT, "token=REDACTED"},
		{"topics=a&token=" + leakJWT + "&x=1", "topics=a&token=REDACTED&x=1"},
		{"access_token=abc&key=" + leakKey + "&api_key=k2", "access_token=REDACTED&key=REDACTED&api_key=REDACTED"},
		{"TOKEN=abc", "TOKEN=REDACTED"},
		{"%74oken=abc", "%74oken=REDACTED"},
		{"token", "token"},
		{"token=", "token=REDACTED"},
		{"t=" + leakJWT, "t=REDACTED"},
		{"tokens=5&monkey=1", "tokens=5&monkey=1"},
		{"a=1&&b=2", "a=1&&b=2"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := RedactQuery(tc.in); got != tc.want {
				t.Errorf("RedactQuery(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRedactHeader(t *testing.T) {
	cases := []struct{ name, value, want string }{
		{"Authorization", "Bearer " + leakJWT, Redacted},
		{"authorization", "Basic dXNlcjpwYXNz", Redacted},
		{"Sec-WebSocket-Protocol", "pushd.v1, pushd.token." + leakJWT, Redacted},
		{"Cookie", "session=abc", Redacted},
		{"X-Api-Key", leakKey, Redacted},
		{"User-Agent", "curl/8.0", "curl/8.0"},
		{"Referer", "https://app/?jwt=" + leakJWT, "https://app/?jwt=REDACTED"},
		{"X-Debug", "t " + leakJWT + " end", "t REDACTED end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactHeader(tc.name, tc.value); got != tc.want {
				t.Errorf("RedactHeader(%q, …) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestRedactJWTs(t *testing.T) {
	cases := []struct{ in, want string }{
		{"no token here", "no token here"},
		{leakJWT, Redacted},
		{"a " + leakJWT + " b " + leakJWT, "a REDACTED b REDACTED"},
		{"pushd.token." + leakJWT, "pushd.token." + Redacted},
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", Redacted}, // alg none: empty signature
		{"eyJ alone", "eyJ alone"},
		{"eyJabc.def", "eyJabc.def"},
		{"eyJ.a.b", Redacted}, // JWT-shaped; a false positive costs nothing
	}
	for _, tc := range cases {
		if got := redactJWTs(tc.in); got != tc.want {
			t.Errorf("redactJWTs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

type tokenHolder struct{ Token string }

type stringerWithToken struct{}

func (stringerWithToken) String() string { return "conn token=" + leakJWT }

type logValuer struct{}

func (logValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("sub", "u1"), slog.String("raw", leakJWT))
}

// TestRedactingHandlerNoSecrets writes every kind of log line that could
// carry a secret through RedactingHandler, with the text and the JSON
// handler, and checks that neither the token nor the API key comes out
// while the harmless parts do.
func TestRedactingHandlerNoSecrets(t *testing.T) {
	emit := []struct {
		name string
		log  func(l *slog.Logger)
		keep string // a harmless part that must survive
	}{
		{"token attr", func(l *slog.Logger) { l.Info("auth", "token", leakJWT) }, "auth"},
		{"api key attr", func(l *slog.Logger) { l.Info("api", "api_key", leakKey) }, "api"},
		{"key attr", func(l *slog.Logger) { l.Info("api", "key", leakKey) }, "api"},
		{"authorization header", func(l *slog.Logger) { l.Info("req", "Authorization", "Bearer "+leakKey) }, "req"},
		{"query", func(l *slog.Logger) { l.Info("upgrade", "query", "topics=ticker.BTC&token="+leakJWT) }, "topics=ticker.BTC"},
		{"url", func(l *slog.Logger) { l.Warn("rejected", "target", "/ws?topics=x&key="+leakKey) }, "/ws?topics=x"},
		{"JWT under an innocent key", func(l *slog.Logger) { l.Info("odd", "value", leakJWT) }, "odd"},
		{"message", func(l *slog.Logger) { l.Error("bad token " + leakJWT) }, "bad token"},
		{"error", func(l *slog.Logger) {
			l.Warn("verify", "err", fmt.Errorf("decode %s: %w", leakJWT, errors.New("boom")))
		}, "boom"},
		{"stringer", func(l *slog.Logger) { l.Info("conn", "c", stringerWithToken{}) }, "conn"},
		{"struct", func(l *slog.Logger) { l.Info("dump", "v", tokenHolder{Token: leakJWT}) }, "dump"},
		{"bytes", func(l *slog.Logger) { l.Info("raw", "b", []byte("Bearer "+leakJWT)) }, "raw"},
		{"group", func(l *slog.Logger) {
			l.Info("grp", slog.Group("req", slog.String("path", "/ws"), slog.String("authorization", leakKey)))
		}, "/ws"},
		{"LogValuer", func(l *slog.Logger) { l.Info("lv", "id", logValuer{}) }, "u1"},
		{"With", func(l *slog.Logger) { l.With("token", leakJWT, "api_key", leakKey).Info("with") }, "with"},
		{"WithGroup", func(l *slog.Logger) { l.WithGroup("g").Info("wg", "secret", leakKey, "q", "x?token="+leakJWT) }, "wg"},
	}
	for _, format := range []string{"text", "json"} {
		for _, e := range emit {
			t.Run(format+"/"+e.name, func(t *testing.T) {
				var buf bytes.Buffer
				var h slog.Handler = slog.NewTextHandler(&buf, nil)
				if format == "json" {
					h = slog.NewJSONHandler(&buf, nil)
				}
				e.log(slog.New(RedactingHandler(h)))
				out := buf.String()
				for _, secret := range []string{leakJWT, leakKey, strings.Split(leakJWT, ".")[1], strings.Split(leakJWT, ".")[2]} {
					if strings.Contains(out, secret) {
						t.Errorf("log contains a secret: %s", out)
					}
				}
				if !strings.Contains(out, Redacted) {
					t.Errorf("log has no %s marker: %s", Redacted, out)
				}
				if !strings.Contains(out, e.keep) {
					t.Errorf("log lost %q: %s", e.keep, out)
				}
			})
		}
	}
}

// TestRedactingHandlerPassThrough checks that clean records are unchanged
// and that Enabled follows the wrapped handler.
func TestRedactingHandlerPassThrough(t *testing.T) {
	var plain, red bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelWarn}
	log := func(l *slog.Logger) {
		l.Warn("conn closed", "code", 4000, "topics", []string{"a", "b"}, "ok", true, slog.Group("g", "n", 1))
	}
	log(slog.New(slog.NewJSONHandler(&plain, opts)))
	log(slog.New(RedactingHandler(slog.NewJSONHandler(&red, opts))))
	strip := func(s string) string { return s[strings.Index(s, `"level"`):] } // drop the time
	if strip(plain.String()) != strip(red.String()) {
		t.Errorf("clean record changed:\n plain %s\nredact %s", plain.String(), red.String())
	}
	h := RedactingHandler(slog.NewJSONHandler(&red, opts))
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled does not follow the wrapped handler")
	}
	if RedactingHandler(h) != h {
		t.Error("wrapping twice should return the same handler")
	}
}
