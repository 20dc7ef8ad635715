package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testNode starts a node on loopback with random ports and the given extra
// flags, and stops it when the test ends.
func testNode(t *testing.T, extra ...string) *node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(&testLogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return testNodeLog(t, log, extra...)
}

// testNodeLog is testNode with the given logger.
func testNodeLog(t *testing.T, log *slog.Logger, extra ...string) *node {
	t.Helper()
	args := append([]string{
		"--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--loops", "2",
	}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--jwt-") {
		args = append(args, "--insecure") // tests without keys run in development mode
	}
	cfg, err := parseConfig(args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.build()
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(cfg, p, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.shutdown(ctx)
	})
	return n
}

type testLogWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// msg is any server → client protocol message.
type msg struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Session string          `json:"session"`
	Topic   string          `json:"topic"`
	Seq     uint64          `json:"seq"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	// Durable topics: a subscribe's outcomes, a history reply.
	Recovered map[string]bool   `json:"recovered"`
	Reasons   map[string]string `json:"reasons"`
	Positions map[string]struct {
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	} `json:"positions"`
	Messages []msg `json:"messages"`
	More     bool  `json:"more"`
	Trimmed  bool  `json:"trimmed"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// client is a gorilla/websocket client speaking protocol v1.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	c := &client{t: t, ws: ws}
	if m := c.read(); m.Type != "welcome" || m.Session == "" {
		t.Fatalf("first message %+v, want welcome", m)
	}
	return c
}

func (c *client) read() msg {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, p, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m msg
	if err := json.Unmarshal(p, &m); err != nil {
		c.t.Fatalf("bad JSON from server %q: %v", p, err)
	}
	return m
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// command sends a command and returns its reply.
func (c *client) command(s string) msg {
	c.t.Helper()
	c.send(s)
	return c.read()
}

// expectNothing asserts that no message arrives within d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(d))
	_, p, err := c.ws.ReadMessage()
	if err == nil {
		c.t.Fatalf("unexpected message %s", p)
	}
	if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
		c.t.Fatalf("unexpected error %v", err)
	}
	// A read deadline breaks a gorilla connection; callers use a fresh one after.
}

func publishHTTP(t *testing.T, n *node, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.apiURL()+"/v1/publish", strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
