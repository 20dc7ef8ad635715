package hub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/loadtest/procstat"
)

func start(t *testing.T, cfg Config) (wsURL, apiURL string) {
	t.Helper()
	h := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h.ServeWS)
	ws := httptest.NewServer(mux)
	api := httptest.NewServer(h.APIHandler())
	t.Cleanup(func() { cancel(); <-done; ws.Close(); api.Close() })
	return "ws://" + ws.Listener.Addr().String() + "/ws", api.URL
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_, m, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(m)
}

func publish(t *testing.T, api, body string) int {
	t.Helper()
	resp, err := http.Post(api+"/v1/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProtocol(t *testing.T) {
	wsURL, api := start(t, Config{PingInterval: 7 * time.Second})
	byQuery := dial(t, wsURL+"?topics=a,b")
	if w := read(t, byQuery); !strings.HasPrefix(w, `{"type":"welcome","session":"r`) || !strings.HasSuffix(w, `"ping_interval":7}`) {
		t.Fatalf("welcome %s", w)
	}
	byCommand := dial(t, wsURL)
	read(t, byCommand)
	byCommand.WriteMessage(websocket.TextMessage, []byte(`{"id":5,"type":"subscribe","topics":["b"]}`))
	if ok := read(t, byCommand); ok != `{"type":"ok","id":5}` {
		t.Fatalf("subscribe reply %s", ok)
	}
	if code := publish(t, api, `{"topic":"b","data":{"x":[1,2]}}`); code != http.StatusAccepted {
		t.Fatalf("publish status %d", code)
	}
	if code := publish(t, api, `{"messages":[{"topic":"a","data":1},{"topic":"b","data":"s"}]}`); code != http.StatusAccepted {
		t.Fatalf("batch status %d", code)
	}
	tests := []struct {
		name string
		c    *websocket.Conn
		want []string
	}{
		{"query subscriber", byQuery, []string{
			`{"type":"message","topic":"b","seq":1,"data":{"x":[1,2]}}`,
			`{"type":"message","topic":"a","seq":1,"data":1}`,
			`{"type":"message","topic":"b","seq":2,"data":"s"}`}},
		{"command subscriber", byCommand, []string{
			`{"type":"message","topic":"b","seq":1,"data":{"x":[1,2]}}`,
			`{"type":"message","topic":"b","seq":2,"data":"s"}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, want := range tc.want {
				if got := read(t, tc.c); got != want {
					t.Fatalf("got %s, want %s", got, want)
				}
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		for _, body := range []string{`{"topic":"a b","data":1}`, `{"topic":"a"}`, `nope`} {
			if code := publish(t, api, body); code != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400", body, code)
			}
		}
		byCommand.WriteMessage(websocket.TextMessage, []byte(`{"id":6,"type":"fly"}`))
		if got := read(t, byCommand); !strings.Contains(got, `"id":6,"error"`) {
			t.Errorf("unknown command reply %s", got)
		}
	})
}

func TestSlowConsumerClosed4000(t *testing.T) {
	wsURL, api := start(t, Config{SendBuffer: 1})
	c := dial(t, wsURL+"?topics=a")
	read(t, c)
	var batch strings.Builder
	batch.WriteString(`{"messages":[`)
	for i := range 1000 {
		if i > 0 {
			batch.WriteString(",")
		}
		batch.WriteString(`{"topic":"a","data":0}`)
	}
	batch.WriteString("]}")
	publish(t, api, batch.String())
	for {
		_, _, err := c.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, closeSlowConsumer) {
				t.Fatalf("connection ended with %v, want close 4000", err)
			}
			return
		}
	}
}

// TestMetrics reads /metrics the way the load harness does: the connection
// gauge counts an open client, and the process's resident set size is
// there (Linux; procstat is the reader).
func TestMetrics(t *testing.T) {
	wsURL, api := start(t, Config{})
	read(t, dial(t, wsURL))
	got, err := procstat.Scrape(context.Background(), http.DefaultClient, api+"/metrics", "refhub_connections", "process_resident_memory_bytes")
	if err != nil {
		t.Fatal(err)
	}
	if got["refhub_connections"] != 1 {
		t.Errorf("refhub_connections = %v, want 1", got["refhub_connections"])
	}
	if rss, want := got["process_resident_memory_bytes"], procstat.SelfRSS(); rss <= 0 || want <= 0 {
		t.Errorf("process_resident_memory_bytes = %v (procstat.SelfRSS = %d), want > 0", rss, want)
	}
}
