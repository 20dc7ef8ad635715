package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/cmd/pushd/web"
	"github.com/pushd/pushd/conn/sse"
)

// sseClient is a raw SSE client: a TCP connection, net/http's response
// parser for the head, and a line reader for the event stream (WHATWG HTML
// §9.2.6: lines end in LF here, comments start with ':', a blank line ends
// an event).
type sseClient struct {
	t     *testing.T
	c     net.Conn
	resp  *http.Response
	br    *bufio.Reader
	pings int // comment lines seen
	retry string
}

type sseEvent struct{ id, typ, data string }

// dialSSE sends GET target (path and query) with the extra header lines
// and reads the response head.
func dialSSE(t *testing.T, n *node, target string, header ...string) *sseClient {
	t.Helper()
	c, err := net.Dial("tcp", n.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET " + target + " HTTP/1.1\r\nHost: pushd\r\nAccept: text/event-stream\r\n" + strings.Join(append(header, ""), "\r\n") + "\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return &sseClient{t: t, c: c, resp: resp, br: bufio.NewReader(resp.Body)}
}

// next returns the next event, skipping comments (counted in pings). It
// waits at most 10 s.
func (s *sseClient) next() (sseEvent, error) { return s.nextWithin(10 * time.Second) }

// nextWithin is next, waiting at most d.
func (s *sseClient) nextWithin(d time.Duration) (sseEvent, error) {
	_ = s.c.SetReadDeadline(time.Now().Add(d))
	var ev sseEvent
	seen := false
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if seen {
				return ev, nil
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			s.pings++
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "retry":
			s.retry = v
			continue
		case "id":
			ev.id = v
		case "event":
			ev.typ = v
		case "data":
			if ev.data != "" {
				ev.data += "\n"
			}
			ev.data += v
		}
		seen = true
	}
}

// read returns the next event's data as a v1 message.
func (s *sseClient) read() msg {
	s.t.Helper()
	ev, err := s.next()
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	if ev.typ != "" {
		s.t.Fatalf("event of type %q (%s), want a message", ev.typ, ev.data)
	}
	var m msg
	if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
		s.t.Fatalf("data %q: %v", ev.data, err)
	}
	return m
}

// A stream carries the welcome, then each push once as an event; the push
// is encoded once for all SSE subscribers; comments keep it alive; and the
// head is what an EventSource needs.
func TestSSEStream(t *testing.T) {
	n := testNode(t, "--ping-interval", "300ms")
	a := dialSSE(t, n, "/sse?topics=sse.a,sse.b")
	b := dialSSE(t, n, "/sse?topics=sse.a,sse.b", "Origin: https://app.example")
	c := dialSSE(t, n, "/sse?topics=sse.a")
	h := b.resp.Header
	if b.resp.StatusCode != 200 || h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-store" ||
		h.Get("Access-Control-Allow-Origin") != "https://app.example" || b.resp.ContentLength != -1 {
		t.Fatalf("head: %d %v", b.resp.StatusCode, h)
	}
	for _, s := range []*sseClient{a, b, c} {
		if m := s.read(); m.Type != "welcome" || m.Session == "" {
			t.Fatalf("first event %+v", m)
		}
	}
	if a.retry == "" {
		t.Fatal("no retry field")
	}
	waitFor(t, "subscriptions", func() bool { return n.hub.Stats().Subscriptions == 5 })
	enc0 := sse.PushFormat.Encodings()
	for i := 1; i <= 5; i++ {
		if code, body := publishHTTP(t, n, `{"topic":"sse.a","data":{"n":`+itoa(int64(i))+`}}`); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	if code, _ := publishHTTP(t, n, `{"topic":"sse.b","data":"line1\nline2"}`); code != 200 {
		t.Fatal("publish sse.b")
	}
	// Each topic's pushes come in order; pushd promises no order across
	// topics (docs/protocol.md §3), so sse.b may come among sse.a's.
	for _, s := range []*sseClient{a, b, c} {
		wantB := s != c
		i := 1
		for i <= 5 || wantB {
			m := s.read()
			if m.Type == "message" && m.Topic == "sse.b" && wantB && string(m.Data) == `"line1\nline2"` {
				wantB = false
				continue
			}
			if m.Type != "message" || m.Topic != "sse.a" || m.Seq != uint64(i) || string(m.Data) != `{"n":`+itoa(int64(i))+`}` {
				t.Fatalf("push %d: %+v", i, m)
			}
			i++
		}
	}
	if got := sse.PushFormat.Encodings() - enc0; got != 6 {
		t.Fatalf("%d sse-v1 encodings for 6 messages and 5 subscriptions on 2 loops, want 6", got)
	}
	if ev, err := c.nextWithin(800 * time.Millisecond); err == nil { // reads the comments, then times out
		t.Fatalf("unexpected event %+v", ev)
	}
	if c.pings < 1 {
		t.Fatal("no heartbeat comment in 800 ms with --ping-interval 300ms")
	}
}

// SSE admission is WebSocket's: a token from the header, the query or the
// pushd_token cookie; 401 without one, 403 for a topic the token does not
// allow, 400 for an invalid one; the personal topic; and on expiry a
// close event with 4002, then the end of the stream.
func TestSSEAuth(t *testing.T) {
	k := newKeys(t)
	n := testNode(t, "--jwt-secret-files", k.secretFile, "--jwt-leeway", "0")
	tok := k.hs(t, claims("sam", time.Now().Add(time.Hour)))
	for _, tc := range []struct {
		name, target string
		header       []string
		status       int
	}{
		{"no token", "/sse", nil, 401},
		{"bad token", "/sse?token=abc.def.ghi", nil, 401},
		{"forbidden topic", "/sse?token=" + tok + "&topics=chat.x", nil, 403},
		{"invalid topic", "/sse?token=" + tok + "&topics=news..x", nil, 400},
		{"POST", "/sse?token=" + tok, nil, 405},
	} {
		var s *sseClient
		if tc.name == "POST" {
			s = postSSE(t, n, tc.target)
		} else {
			s = dialSSE(t, n, tc.target, tc.header...)
		}
		if s.resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, s.resp.StatusCode, tc.status)
		}
		if tc.status == 401 && s.resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", tc.name)
		}
	}
	for _, way := range []struct {
		name, target string
		header       []string
	}{
		{"query", "/sse?topics=news.eu&token=" + tok, nil},
		{"header", "/sse?topics=news.eu", []string{"Authorization: Bearer " + tok}},
		{"cookie", "/sse?topics=news.eu", []string{"Cookie: theme=dark; pushd_token=" + tok}},
	} {
		t.Run(way.name, func(t *testing.T) {
			s := dialSSE(t, n, way.target, way.header...)
			if s.resp.StatusCode != 200 {
				t.Fatalf("status %d", s.resp.StatusCode)
			}
			s.read() // welcome
			waitFor(t, "subscriptions", func() bool { return n.hub.Stats().Subscriptions == 2 })
			publishHTTP(t, n, `{"topic":"user.sam","data":"personal"}`)
			publishHTTP(t, n, `{"topic":"news.eu","data":"news"}`)
			if m := s.read(); m.Topic != "user.sam" || string(m.Data) != `"personal"` {
				t.Fatalf("personal push %+v", m)
			}
			if m := s.read(); m.Topic != "news.eu" {
				t.Fatalf("news push %+v", m)
			}
			s.c.Close()
			waitFor(t, "unsubscribed", func() bool { return n.hub.Stats().Subscriptions == 0 })
		})
	}

	short := k.hs(t, claims("tim", time.Now().Add(1200*time.Millisecond)))
	s := dialSSE(t, n, "/sse?token="+short)
	s.read() // welcome
	ev, err := s.next()
	if err != nil || ev.typ != "close" || ev.data != `{"type":"close","code":4002,"reason":"token expired"}` {
		t.Fatalf("expiry: %+v %v", ev, err)
	}
	if _, err := s.next(); err != io.EOF {
		t.Fatalf("after the close event: %v, want EOF", err)
	}
	if n.smet.TokenExpired.Load() != 1 {
		t.Fatal("expiry not counted")
	}
}

// postSSE sends a POST to target and reads the response head.
func postSSE(t *testing.T, n *node, target string) *sseClient {
	t.Helper()
	resp, err := http.Post("http://"+n.srv.Addr()+target, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return &sseClient{t: t, resp: resp}
}

// A client that never reads its stream is closed as a slow consumer once
// the unsent bytes pass --max-outbound; the server's memory for it stays
// bounded, and a reading client on the same topic gets every push.
func TestSSESlowConsumer(t *testing.T) {
	n := testNode(t, "--max-outbound", "262144", "--close-timeout", "1s", "--loops", "1")
	stuck := dialSSE(t, n, "/sse?topics=bulk")
	if tc, ok := stuck.c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	reader := dialSSE(t, n, "/sse?topics=bulk")
	reader.read() // welcome
	waitFor(t, "subscriptions", func() bool { return n.hub.Stats().Subscriptions == 2 })
	payload := `"` + strings.Repeat("x", 100_000) + `"`
	const rounds, perRound = 4, 30
	got := make(chan error, 1)
	go func() {
		for i := 0; i < rounds*perRound; i++ {
			ev, err := reader.next()
			if err != nil || !strings.Contains(ev.data, `"topic":"bulk"`) {
				got <- errors.Join(err, errors.New("event "+itoa(int64(i))+": "+ev.data[:min(len(ev.data), 80)]))
				return
			}
		}
		got <- nil
	}()
	for r := 0; r < rounds; r++ {
		msgs := make([]string, perRound)
		for i := range msgs {
			msgs[i] = `{"topic":"bulk","data":` + payload + `}`
		}
		if code, body := publishHTTP(t, n, `{"messages":[`+strings.Join(msgs, ",")+`]}`); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	if err := <-got; err != nil {
		t.Fatalf("reading client: %v", err)
	}
	m := n.srv.Metrics()
	waitFor(t, "the stuck stream closed", func() bool {
		return m.SlowConsumers.Load() == 1 && m.Open.Load() == 1
	})
	// Its memory went with it: the backlog the kernel did not take was
	// at most --max-outbound plus the last batch, and was dropped after
	// the close timeout.
}

// pushd.js is always served; the demo page only with --demo, which is on
// by default with --insecure and off otherwise.
func TestStaticFiles(t *testing.T) {
	js, _, etag, _ := web.Lookup(web.ClientPath)
	get := func(n *node, path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+n.srv.Addr()+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	dev := testNode(t)
	resp, body := get(dev, "/pushd.js")
	if resp.StatusCode != 200 || body != string(js) || resp.Header.Get("ETag") != etag ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("Cache-Control") != web.CacheControl {
		t.Fatalf("GET /pushd.js: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := get(dev, "/pushd.js", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Fatalf("revalidation: %d", resp.StatusCode)
	}
	if resp, body := get(dev, "/"); resp.StatusCode != 200 || !strings.Contains(body, "pushd demo") {
		t.Fatalf("demo page with --insecure: %d", resp.StatusCode)
	}
	if resp, _ := get(dev, "/index.html"); resp.StatusCode != 404 {
		t.Fatalf("/index.html: %d", resp.StatusCode)
	}
	off := testNode(t, "--demo=false")
	if resp, _ := get(off, "/"); resp.StatusCode != 404 {
		t.Fatalf("--demo=false: / answered %d", resp.StatusCode)
	}
	k := newKeys(t)
	secure := testNode(t, "--jwt-secret-files", k.secretFile)
	if resp, _ := get(secure, "/"); resp.StatusCode != 404 {
		t.Fatalf("demo with keys, not asked for: %d", resp.StatusCode)
	}
	if resp, _ := get(secure, "/pushd.js"); resp.StatusCode != 200 {
		t.Fatalf("pushd.js with keys: %d", resp.StatusCode)
	}
	on := testNode(t, "--jwt-secret-files", k.secretFile, "--demo")
	if resp, _ := get(on, "/"); resp.StatusCode != 200 {
		t.Fatalf("--demo with keys: %d", resp.StatusCode)
	}
}

// With the demo on, demo.ticker is live: a made-up BTC price every second.
func TestDemoTicker(t *testing.T) {
	n := testNode(t)
	s := dialSSE(t, n, "/sse?topics="+demoTopic)
	s.read() // welcome
	var last float64
	for i := 0; i < 2; i++ {
		m := s.read()
		var d struct {
			Symbol string
			Price  float64
		}
		if err := json.Unmarshal(m.Data, &d); err != nil || m.Topic != demoTopic || d.Symbol != "BTC" || d.Price <= 0 || d.Price == last {
			t.Fatalf("tick %d: %+v (%s) %v", i, d, m.Data, err)
		}
		last = d.Price
	}
}
