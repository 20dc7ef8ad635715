package api_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/cmd/pushd/internal/api"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker/natsbroker"
	"github.com/pushd/pushd/topics/metric"
)

// fixture is the API over a real hub on a real (embedded) NATS server, and
// a plain NATS subscriber that sees what the API published.
type fixture struct {
	srv     *httptest.Server
	nc      *nats.Conn
	seen    chan *nats.Msg
	latency *metric.Histogram
	ready   bool
}

func newFixture(t *testing.T, cfg api.Config) *fixture {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(ns.Shutdown)
	f := &fixture{seen: make(chan *nats.Msg, 100), latency: metric.NewHistogram(api.PublishLatencyBounds), ready: true}
	if f.nc, err = nats.Connect(ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.nc.Close)
	watcher, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watcher.Close)
	if _, err := watcher.ChanSubscribe("pushd.>", f.seen); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := natsbroker.New(f.nc, natsbroker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	hub, err := topics.New(b, topics.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	cfg.Hub, cfg.Logger, cfg.PublishLatency = hub, quiet, f.latency
	cfg.Ready = func() bool { return f.ready }
	f.srv = httptest.NewServer(api.New(cfg).Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// published returns what NATS carried, waiting for n messages.
func (f *fixture) published(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		select {
		case m := <-f.seen:
			out = append(out, m.Subject+" "+string(m.Data))
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of %d messages: %v", len(out), n, out)
		}
	}
	return out
}

// nothingPublished asserts that NATS carried nothing more.
func (f *fixture) nothingPublished(t *testing.T) {
	t.Helper()
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-f.seen:
		t.Fatalf("unexpected message on %s: %s", m.Subject, m.Data)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestPublishForms(t *testing.T) {
	f := newFixture(t, api.Config{})
	cases := []struct {
		body string
		n    int
		want []string
	}{
		{`{"topic":"a.b","data":{ "x" : 1 }}`, 1, []string{`pushd.a.b { "x" : 1 }`}},
		{`{"topics":["a","b"],"data":"both"}`, 2, []string{`pushd.a "both"`, `pushd.b "both"`}},
		{`{"messages":[{"topic":"m","data":1},{"topic":"m","data":null}]}`, 2, []string{`pushd.m 1`, `pushd.m null`}},
	}
	for _, tc := range cases {
		code, h, body := f.do(t, "POST", "/v1/publish", tc.body)
		if code != 200 || body != fmt.Sprintf("{\"published\":%d}\n", tc.n) || h.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q %q", tc.body, code, body, h.Get("Content-Type"))
		}
		if got := f.published(t, tc.n); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Fatalf("%s: NATS carried %q, want %q", tc.body, got, tc.want)
		}
	}
	if s := f.latency.Snapshot(); s.Count != 3 || s.Sum <= 0 {
		t.Errorf("publish latency histogram: %d observations, sum %v; want 3", s.Count, s.Sum)
	}
}

func TestPublishErrors(t *testing.T) {
	f := newFixture(t, api.Config{Keys: []string{"k1", "k2"}, MaxBody: 2048})
	auth := []string{"Authorization", "Bearer k1"}
	cases := []struct {
		name, body string
		header     []string
		status     int
		code       string
	}{
		{"no key", `{"topic":"a","data":1}`, nil, 401, "unauthorized"},
		{"wrong key", `{"topic":"a","data":1}`, []string{"Authorization", "Bearer k3"}, 401, "unauthorized"},
		{"not bearer", `{"topic":"a","data":1}`, []string{"Authorization", "Basic k1"}, 401, "unauthorized"},
		{"empty body", ``, auth, 400, "bad_json"},
		{"bad json", `{"topic":`, auth, 400, "bad_json"},
		{"trailing data", `{"topic":"a","data":1} {}`, auth, 400, "bad_json"},
		{"trailing bracket", `{"topic":"a","data":1}]`, auth, 400, "bad_json"},
		{"trailing brace", "{\"topic\":\"a\",\"data\":1}\n}", auth, 400, "bad_json"},
		{"invalid UTF-8", "{\"topic\":\"a\",\"data\":\"a\xffb\"}", auth, 400, "bad_json"},
		{"id over MaxIDLen", `{"topic":"a","data":1,"id":"` + strings.Repeat("i", api.MaxIDLen+1) + `"}`, auth, 400, "bad_request"},
		{"wrong type", `{"topic":5,"data":1}`, auth, 400, "bad_json"},
		{"no data", `{"topic":"a"}`, auth, 400, "bad_request"},
		{"two forms", `{"topic":"a","topics":["b"],"data":1}`, auth, 400, "bad_request"},
		{"no form", `{"data":1}`, auth, 400, "bad_request"},
		{"empty topics", `{"topics":[],"data":1}`, auth, 400, "bad_request"},
		{"data beside messages", `{"messages":[{"topic":"a","data":1}],"data":2}`, auth, 400, "bad_request"},
		{"message without data", `{"messages":[{"topic":"a"}]}`, auth, 400, "bad_request"},
		{"invalid topic", `{"topic":"a b","data":1}`, auth, 400, "invalid_topic"},
		{"one invalid topic publishes nothing", `{"messages":[{"topic":"ok","data":1},{"topic":"a..b","data":2}]}`, auth, 400, "invalid_topic"},
		{"body over MaxBody", `{"topic":"a","data":"` + strings.Repeat("x", 3000) + `"}`, auth, 413, "too_large"},
		{"over the NATS payload limit", `{"topic":"a","data":"` + strings.Repeat("x", 1500) + `"}`, auth, 413, "too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, h, body := f.do(t, "POST", "/v1/publish", tc.body, tc.header...)
			if code != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) || !strings.HasPrefix(body, `{"type":"error","error":`) {
				t.Fatalf("got %d %s, want %d %s", code, body, tc.status, tc.code)
			}
			if code == 401 && h.Get("WWW-Authenticate") != `Bearer realm="pushd"` {
				t.Errorf("401 without WWW-Authenticate: %q", h.Get("WWW-Authenticate"))
			}
			f.nothingPublished(t)
		})
	}
	for _, hdr := range [][]string{{"Authorization", "Bearer k2"}, {"Authorization", "bearer  k1 "}} {
		if code, _, body := f.do(t, "POST", "/v1/publish", `{"topic":"ok","data":1}`, hdr...); code != 200 {
			t.Fatalf("%q: %d %s", hdr[1], code, body)
		}
		f.published(t, 1)
	}
}

// When NATS is gone the publish answers 503 unavailable.
func TestPublishUnavailable(t *testing.T) {
	f := newFixture(t, api.Config{PublishTimeout: 200 * time.Millisecond})
	f.nc.Close()
	code, _, body := f.do(t, "POST", "/v1/publish", `{"topic":"a","data":1}`)
	if code != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("got %d %s, want 503 unavailable", code, body)
	}
}

func TestProbesAndRoutes(t *testing.T) {
	f := newFixture(t, api.Config{Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "metrics here")
	})})
	check := func(method, path string, wantCode int, wantBody string) {
		t.Helper()
		code, _, body := f.do(t, method, path, "")
		if code != wantCode || !strings.Contains(body, wantBody) {
			t.Errorf("%s %s: %d %q, want %d %q", method, path, code, body, wantCode, wantBody)
		}
	}
	check("GET", "/healthz", 200, "ok")
	check("GET", "/readyz", 200, "ready")
	f.ready = false
	check("GET", "/readyz", 503, "not ready")
	check("GET", "/healthz", 200, "ok")
	check("GET", "/metrics", 200, "metrics here")
	check("GET", "/v1/publish", 405, "")
	check("GET", "/nope", 404, "")
	if code, _, _ := newFixture(t, api.Config{}).do(t, "GET", "/metrics", ""); code != 404 {
		t.Errorf("GET /metrics without a metrics handler: %d, want 404", code)
	}
}
