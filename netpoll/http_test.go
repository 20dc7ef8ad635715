package netpoll_test

// HTTP/1.1 on the event loop over real sockets: keep-alive and pipelining
// with Go's net/http as the independent client, bodies and their limits,
// held requests answered later (with a pipelined request behind them),
// deadlines for slow heads, slow bodies and idle connections, static files,
// and plain requests next to WebSocket upgrades on the same port.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/static"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// bodyEcho answers a POST with its body and a GET with "pong".
type bodyEcho struct{}

func (bodyEcho) Serve(c *conn.Conn, req *codec.HTTPRequest, body []byte) *codec.HTTPError {
	if req.Method == "POST" {
		c.Respond(200, "application/octet-stream", body)
	} else {
		c.Respond(200, "text/plain", []byte("pong"))
	}
	return nil
}

// holdEP holds every request and answers it two ticks later, like a
// long-poll that a message completes.
type holdEP struct{}

func (holdEP) Serve(c *conn.Conn, _ *codec.HTTPRequest, _ []byte) *codec.HTTPError {
	c.Hold(heldReq{})
	c.Arm(2)
	return nil
}

// heldReq is the Proto of a held request: its timer answers it.
type heldReq struct{}

func (heldReq) Feed(*conn.Conn, []byte) int { return 0 }
func (heldReq) Timer(c *conn.Conn) {
	c.Respond(200, "text/plain", []byte("late"))
	c.RequestDone()
}
func (heldReq) Send(*conn.Conn, []byte) bool                     { return false }
func (heldReq) Close(c *conn.Conn, _ codec.StatusCode, _ string) { c.CloseTransport() }
func (heldReq) SlowConsumer(*conn.Conn)                          {}
func (heldReq) Closed(*conn.Conn)                                {}

var testFile = static.File{
	Body:         bytes.Repeat([]byte("console.log('pushd');\n"), 200),
	ContentType:  "text/javascript; charset=utf-8",
	ETag:         `"v1-abc"`,
	CacheControl: "no-cache",
}

// startHTTPServer starts an engine with the echo WebSocket endpoint, a
// static file at /app.js, the body echo at /body (1 KiB bodies) and the
// held endpoint at /hold.
func startHTTPServer(t *testing.T, cc conn.Config) string {
	t.Helper()
	return startServer(t, netpoll.Config{Loops: 2, Conn: cc, Tick: 20 * time.Millisecond, Routes: []conn.Route{
		static.Route("/app.js", testFile),
		{Path: "/body", MaxBody: 1024, New: func(*conn.Loop) conn.Endpoint { return bodyEcho{} }},
		{Path: "/hold", New: func(*conn.Loop) conn.Endpoint { return holdEP{} }},
	}}, ws.Config{}).Addr()
}

// A real HTTP/1.1 client reuses one connection for a series of requests
// and reads every answer right.
func TestHTTPKeepAliveWithNetHTTP(t *testing.T) {
	t.Parallel()
	addr := startHTTPServer(t, conn.Config{})
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	defer cl.CloseIdleConnections()
	var conns []string
	do := func(method, path, body string, header ...string) (*http.Response, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, "http://"+addr+path, rd)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { conns = append(conns, ci.Conn.LocalAddr().String()) },
		}))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: body: %v", method, path, err)
		}
		return resp, string(b)
	}

	resp, body := do("GET", "/app.js", "")
	if resp.StatusCode != 200 || body != string(testFile.Body) || resp.Header.Get("Content-Type") != testFile.ContentType ||
		resp.Header.Get("ETag") != testFile.ETag || resp.Header.Get("Cache-Control") != "no-cache" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET /app.js: %d %v (%d bytes)", resp.StatusCode, resp.Header, len(body))
	}
	resp, body = do("GET", "/app.js?v=2", "", "If-None-Match", `"old", W/"v1-abc"`)
	if resp.StatusCode != 304 || body != "" || resp.Header.Get("ETag") != testFile.ETag {
		t.Fatalf("If-None-Match: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = do("HEAD", "/app.js", "")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len(testFile.Body)) {
		t.Fatalf("HEAD: %d, length %d, body %q", resp.StatusCode, resp.ContentLength, body)
	}
	resp, body = do("POST", "/body", strings.Repeat("x", 1000))
	if resp.StatusCode != 200 || body != strings.Repeat("x", 1000) {
		t.Fatalf("POST /body: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = do("GET", "/hold", "")
	if resp.StatusCode != 200 || body != "late" {
		t.Fatalf("GET /hold: %d %q", resp.StatusCode, body)
	}
	for i, c := range conns {
		if c != conns[0] {
			t.Fatalf("request %d used a new connection (%v): keep-alive broken", i, conns)
		}
	}

	// Refusals close the connection (the client sees Connection: close).
	for _, tc := range []struct {
		method, path, body string
		status             int
		allow              string
	}{
		{"POST", "/app.js", "x", 405, "GET, HEAD"},
		{"GET", "/nope", "", 404, ""},
		{"POST", "/body", strings.Repeat("y", 1025), 413, ""},
		{"OPTIONS", "/app.js", "", 405, "GET, HEAD"},
	} {
		resp, _ := do(tc.method, tc.path, tc.body)
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || !resp.Close {
			t.Errorf("%s %s: %d Allow %q close %v", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Close)
		}
	}
}

// Requests written back to back in one write are answered in order, one
// at a time, including one behind a held request: it waits in the buffer
// until the held one is answered.
func TestHTTPPipelining(t *testing.T) {
	t.Parallel()
	addr := startHTTPServer(t, conn.Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reqs := "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /body HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	want := []string{string(testFile.Body), "hello", "late", "pong", "", "pong"}
	methods := []string{"GET", "POST", "GET", "GET", "HEAD", "GET"}
	for i, w := range want {
		resp, err := http.ReadResponse(br, &http.Request{Method: methods[i]})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(b) != w {
			t.Fatalf("response %d: %d %q %v", i, resp.StatusCode, b, err)
		}
		if last := i == len(want)-1; resp.Close != last {
			t.Fatalf("response %d: close %v", i, resp.Close)
		}
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after Connection: close: %d, %v; want EOF", n, err)
	}
}

// readUntilClosed reads c until EOF or an error and returns what arrived
// and how long the server took to close.
func readUntilClosed(t *testing.T, c net.Conn, limit time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("not closed within %v (read %q)", limit, b)
	}
	return string(b), time.Since(start)
}

// The deadlines: a head that does not complete, a body that does not
// arrive, and silence after a response each end the connection.
func TestHTTPDeadlines(t *testing.T) {
	t.Parallel()
	addr := startHTTPServer(t, conn.Config{HandshakeTimeout: 400 * time.Millisecond, KeepAliveTimeout: 800 * time.Millisecond})
	for _, tc := range []struct {
		name, send string
		answered   bool
	}{
		{"slow head", "GET /app.js HTTP/1.1\r\nHost: x\r\n", false},
		{"slow body", "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", false},
		{"idle keep-alive", "GET /body HTTP/1.1\r\nHost: x\r\n\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			got, took := readUntilClosed(t, c, 10*time.Second)
			if tc.answered != strings.HasPrefix(got, "HTTP/1.1 200 ") || !tc.answered && got != "" {
				t.Fatalf("read %q", got)
			}
			min := 300 * time.Millisecond // the 400 ms deadline, less a tick of slack
			if tc.answered {
				min = 700 * time.Millisecond
			}
			if took < min {
				t.Fatalf("closed after %v, before its deadline", took)
			}
		})
	}
}

// Plain requests and WebSocket upgrades share the port: a plain GET of the
// WebSocket path is a bad upgrade (400), another path is routed, and an
// upgrade works next to them.
func TestHTTPNextToWebSocket(t *testing.T) {
	t.Parallel()
	addr := startHTTPServer(t, conn.Config{})
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET " + echoPath + " HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"GET /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200},
		{"GET /app.js HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Filler: 0123456789abcdef\r\n", 400) + "\r\n", 431},
		{"PUT /app.js HTTP/1.1\r\nHost: x\r\n\r\n", 405},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		got, _ := readUntilClosed(t, c, 10*time.Second)
		c.Close()
		if !strings.HasPrefix(got, fmt.Sprintf("HTTP/1.1 %d ", tc.status)) {
			t.Errorf("%q: got %q", tc.req[:20], got)
		}
	}
	rc, err := dialRaw(addr, echoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.send(textFrame("beside plain HTTP")); err != nil {
		t.Fatal(err)
	}
	if f, err := rc.read(5 * time.Second); err != nil || f.op != opText || string(f.payload) != "beside plain HTTP" {
		t.Fatalf("echo: %+v %v", f, err)
	}
}
