package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// keys is a test key set: an HS256 secret file (kid "k1") and an RSA public
// key file (kid "rsa1") with its private key for signing.
type keys struct {
	secret     []byte
	secretFile string
	rsaPriv    *rsa.PrivateKey
	rsaPEM     []byte
	rsaFile    string
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	dir := t.TempDir()
	k := &keys{secret: []byte("0123456789abcdef0123456789abcdef-test-secret")}
	k.secretFile = filepath.Join(dir, "k1.key")
	if err := os.WriteFile(k.secretFile, k.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if k.rsaPriv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.rsaPriv.PublicKey)
	k.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	k.rsaFile = filepath.Join(dir, "rsa1.pem")
	if err := os.WriteFile(k.rsaFile, k.rsaPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func claims(sub string, exp time.Time, mods ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": exp.Unix(), "pushd": map[string]any{
		"subscribe": []string{"news.>"}, "publish": []string{"chat.>"},
	}}
	for _, m := range mods {
		m(c)
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (k *keys) hs(t *testing.T, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodHS256, "k1", k.secret, c)
}

func dialWith(url string, h http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 5 * time.Second}
	return d.Dial(url, h)
}

// A valid token connects by each of the three ways, and the connection
// receives its personal topic.
func TestTokenConnectsAndGetsPersonalTopic(t *testing.T) {
	k := newKeys(t)
	n := testNode(t, "--jwt-secret-files", k.secretFile)
	tok := k.hs(t, claims("alice", time.Now().Add(time.Hour)))
	ways := []struct {
		name      string
		url       string
		header    http.Header
		protocols []string
	}{
		{"authorization header", n.wsURL(), http.Header{"Authorization": {"Bearer " + tok}}, nil},
		{"query parameter", n.wsURL() + "?token=" + tok, nil, nil},
		{"subprotocol", n.wsURL(), nil, []string{"pushd.v1", "pushd.token." + tok}},
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			ws, resp, err := dialWith(w.url, w.header, w.protocols...)
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			defer ws.Close()
			if w.protocols != nil && ws.Subprotocol() != "pushd.v1" {
				t.Fatalf("echoed subprotocol %q, want pushd.v1 (never the token)", ws.Subprotocol())
			}
			c := &client{t: t, ws: ws}
			if m := c.read(); m.Type != "welcome" {
				t.Fatalf("got %+v", m)
			}
			waitFor(t, "personal subscription", func() bool { return n.hub.Stats().Topics >= 1 })
			if code, body := publishHTTP(t, n, `{"topic":"user.alice","data":"`+w.name+`"}`); code != 200 {
				t.Fatalf("publish: %d %s", code, body)
			}
			if m := c.read(); m.Topic != "user.alice" || string(m.Data) != `"`+w.name+`"` {
				t.Fatalf("personal push: %+v", m)
			}
		})
	}
}

// Every bad token gets 401 before the upgrade: no 101.
func TestBadTokensGet401(t *testing.T) {
	k := newKeys(t)
	n := testNode(t, "--jwt-secret-files", k.secretFile, "--jwt-public-keys", k.rsaFile, "--jwt-leeway", "0")
	now := time.Now()
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","exp":`+itoa(now.Add(time.Hour).Unix())+`}`)) + "."
	cases := []struct{ name, token string }{
		{"missing", ""},
		{"expired", k.hs(t, claims("a", now.Add(-time.Minute)))},
		{"not yet valid", k.hs(t, claims("a", now.Add(time.Hour), func(c jwt.MapClaims) { c["nbf"] = now.Add(30 * time.Minute).Unix() }))},
		{"wrong signature", sign(t, jwt.SigningMethodHS256, "k1", []byte("another-secret-another-secret-another"), claims("a", now.Add(time.Hour)))},
		{"alg none", none},
		{"HS256 signed with the RSA public key", sign(t, jwt.SigningMethodHS256, "rsa1", k.rsaPEM, claims("a", now.Add(time.Hour)))},
		{"RS256 header on the HS key", sign(t, jwt.SigningMethodRS256, "k1", k.rsaPriv, claims("a", now.Add(time.Hour)))},
		{"malformed", "not.a.jwt"},
		{"garbage", "abc"},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, "k9", k.secret, claims("a", now.Add(time.Hour)))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.token != "" {
				h.Set("Authorization", "Bearer "+tc.token)
			}
			ws, resp, err := dialWith(n.wsURL(), h)
			if err == nil {
				ws.Close()
				t.Fatal("upgraded with a bad token")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %v %v, want 401", err, resp)
			}
		})
	}
	// RS256 with the configured key works.
	ws, resp, err := dialWith(n.wsURL(), http.Header{"Authorization": {"Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", k.rsaPriv, claims("bob", now.Add(time.Hour)))}})
	if err != nil {
		t.Fatalf("RS256: %v %v", err, resp)
	}
	ws.Close()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// When its token expires, the connection is closed with 4002.
func TestTokenExpiryCloses(t *testing.T) {
	k := newKeys(t)
	n := testNode(t, "--jwt-secret-files", k.secretFile, "--jwt-leeway", "0")
	tok := k.hs(t, claims("carol", time.Now().Add(1500*time.Millisecond)))
	ws, _, err := dialWith(n.wsURL(), http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	start := time.Now()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, 4002) {
			t.Fatalf("ended with %v, want close 4002", err)
		}
		break
	}
	if n.smet.TokenExpired.Load() != 1 {
		t.Fatal("expiry not counted")
	}
	t.Logf("closed %v after connecting", time.Since(start))
}

// Subscribing or publishing outside the token's patterns gets forbidden.
func TestTokenPermissions(t *testing.T) {
	k := newKeys(t)
	n := testNode(t, "--jwt-secret-files", k.secretFile, "--client-publish")
	tok := k.hs(t, claims("dave", time.Now().Add(time.Hour)))
	ws, _, err := dialWith(n.wsURL(), http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws}
	defer ws.Close()
	c.read() // welcome
	if r := c.command(`{"id":1,"type":"subscribe","topics":["news.eu","chat.room"]}`); r.Type != "error" || r.Error.Code != "forbidden" {
		t.Fatalf("subscribe outside the patterns: %+v", r)
	}
	if r := c.command(`{"id":2,"type":"subscribe","topics":["news.eu"]}`); r.Type != "ok" {
		t.Fatalf("allowed subscribe: %+v", r)
	}
	if r := c.command(`{"id":3,"type":"publish","topic":"news.eu","data":1}`); r.Type != "error" || r.Error.Code != "forbidden" {
		t.Fatalf("publish outside the patterns: %+v", r)
	}
	other := dial(t, n.wsURL()+"?token="+k.hs(t, claims("erin", time.Now().Add(time.Hour), func(c jwt.MapClaims) {
		c["pushd"] = map[string]any{"subscribe": []string{"chat.>"}}
	}))+"&topics=chat.room")
	waitFor(t, "chat.room interest", func() bool { return natsSubsFor(t, n.ns, "pushd.chat.room") == 1 })
	if r := c.command(`{"id":4,"type":"publish","topic":"chat.room","data":{"hi":1}}`); r.Type != "ok" {
		t.Fatalf("allowed publish: %+v", r)
	}
	if m := other.read(); m.Topic != "chat.room" || string(m.Data) != `{"hi":1}` {
		t.Fatalf("client publish delivered %+v", m)
	}
}

func TestOriginPolicy(t *testing.T) {
	n := testNode(t, "--allowed-origins", "https://app.example.com,https://*.example.org")
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"https://evil.example.net", 403},
		{"https://app.example.com.evil.net", 403},
		{"https://app.example.com", 101},
		{"https://a.example.org", 101},
		{"", 101}, // non-browser clients send no Origin (--allow-missing-origin)
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		ws, resp, err := dialWith(n.wsURL(), h)
		if ws != nil {
			ws.Close()
		}
		if resp == nil || resp.StatusCode != tc.status {
			t.Errorf("Origin %q: %v %v, want %d", tc.origin, err, resp, tc.status)
		}
	}
}

// Without keys pushd refuses to start, unless --insecure: a configuration
// error (exit 2) that says how to proceed.
func TestSecureByDefault(t *testing.T) {
	args := []string{"--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--nats-listen", "off"}
	cfg, err := parseConfig(args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.build()
	if err == nil {
		n, err := startNode(cfg, p, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		if err == nil {
			n.close()
		}
		t.Fatal("started without keys and without --insecure")
	}
	if !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("error %q does not say how to proceed", err)
	}
	if code := run(args); code != exitBadConf {
		t.Fatalf("exit code %d, want %d", code, exitBadConf)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logs written at debug level while tokens and keys are used and refused
// contain none of them.
func TestNoSecretsInLogs(t *testing.T) {
	k := newKeys(t)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf syncBuffer
			cfg, err := parseConfig([]string{"--log-level", "debug", "--log-format", format}, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			n := testNodeLog(t, newLogger(cfg, &buf), "--jwt-secret-files", k.secretFile, "--api-keys", "api-key-SECRET-1")
			good := k.hs(t, claims("frank", time.Now().Add(time.Hour)))
			bad := k.hs(t, claims("frank", time.Now().Add(-time.Hour)))
			for _, try := range []struct {
				url string
				h   http.Header
				p   []string
			}{
				{n.wsURL() + "?token=" + good, nil, nil},
				{n.wsURL() + "?token=" + bad + "&topics=news.x", nil, nil},
				{n.wsURL(), http.Header{"Authorization": {"Bearer " + bad}}, nil},
				{n.wsURL(), nil, []string{"pushd.v1", "pushd.token." + bad}},
			} {
				if ws, _, err := dialWith(try.url, try.h, try.p...); err == nil {
					ws.Close()
				}
			}
			publishHTTP(t, n, `{"topic":"a","data":1}`, "Authorization", "Bearer api-key-WRONG-2")
			publishHTTP(t, n, `{"topic":"a","data":1}`, "Authorization", "Bearer api-key-SECRET-1")
			logs := buf.String()
			if !strings.Contains(logs, "token refused") || !strings.Contains(logs, "api key refused") {
				t.Fatalf("the refusals were not logged, so this test proves nothing:\n%s", logs)
			}
			for _, secret := range []string{good, bad, string(k.secret), "api-key-SECRET-1", "api-key-WRONG-2", strings.Split(bad, ".")[2]} {
				if strings.Contains(logs, secret) {
					t.Fatalf("log contains a secret %.12q…:\n%s", secret, logs)
				}
			}
		})
	}
}
