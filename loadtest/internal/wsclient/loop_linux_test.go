//go:build linux

package wsclient

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type event struct {
	kind   string // open, msg, ping, close
	c      *Conn
	data   string
	reason CloseReason
}

// recorder is a Handler that forwards events to a channel.
type recorder struct{ ev chan event }

func (r *recorder) OnOpen(c *Conn, connect time.Duration) {
	if connect <= 0 {
		panic("non-positive connect time")
	}
	r.ev <- event{kind: "open", c: c}
}
func (r *recorder) OnMessage(c *Conn, op Opcode, p []byte, now int64) {
	r.ev <- event{kind: "msg", c: c, data: string(p)}
}
func (r *recorder) OnPing(c *Conn)                  { r.ev <- event{kind: "ping", c: c} }
func (r *recorder) OnClose(c *Conn, cr CloseReason) { r.ev <- event{kind: "close", c: c, reason: cr} }
func (r *recorder) OnTick(time.Time)                {}

func (r *recorder) next(t *testing.T, kind string) event {
	t.Helper()
	for {
		select {
		case e := <-r.ev:
			if e.kind == kind {
				return e
			}
			if e.kind == "close" && kind != "close" {
				t.Fatalf("waiting for %s: connection closed: %+v", kind, e.reason)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event within 5s", kind)
		}
	}
}

// testServer is a gorilla server whose behaviour the client's text
// messages select.
func testServer(t *testing.T) (*httptest.Server, *sync.Map) {
	t.Helper()
	var remotes sync.Map
	up := websocket.Upgrader{WriteBufferSize: 64}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		remotes.Store(strings.Split(r.RemoteAddr, ":")[0], true)
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(s string) error { return c.WriteMessage(websocket.TextMessage, []byte("pong:"+s)) })
		c.WriteMessage(websocket.TextMessage, []byte("welcome"))
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			switch s := string(m); {
			case strings.HasPrefix(s, "echo:"):
				c.WriteMessage(websocket.TextMessage, m[5:])
			case s == "ping":
				c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
			case s == "frag": // WriteBufferSize 64 splits this into several frames
				c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("f"), 300))
			case s == "big":
				c.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte("b"), 200_000))
			case s == "close4000":
				c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "slow"), time.Now().Add(time.Second))
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &remotes
}

func addrOf(t *testing.T, hostport string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func startLoop(t *testing.T, cfg Config) (*Loop, *recorder) {
	t.Helper()
	rec := &recorder{ev: make(chan event, 64)}
	l, err := NewLoop(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	t.Cleanup(func() {
		l.Stop()
		for {
			select {
			case <-l.Done():
				return
			case <-rec.ev:
			}
		}
	})
	return l, rec
}

func dialOpen(t *testing.T, l *Loop, rec *recorder, path string, id int) *Conn {
	t.Helper()
	l.Execute(func() { l.Dial(DialRequest{ID: id, Path: path, Source: id}) })
	e := rec.next(t, "open")
	if e.c.ID != id {
		t.Fatalf("opened id %d, want %d", e.c.ID, id)
	}
	if m := rec.next(t, "msg"); m.data != "welcome" {
		t.Fatalf("first message %q", m.data)
	}
	return e.c
}

func send(l *Loop, c *Conn, s string) {
	l.Execute(func() { l.Send(c, OpText, []byte(s)) })
}

func TestLoopConversation(t *testing.T) {
	srv, remotes := testServer(t)
	target := addrOf(t, srv.Listener.Addr().String())
	l, rec := startLoop(t, Config{
		Target: target, Host: target.String(),
		Sources:        []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
		ReadBufferSize: 4096, // smaller than "big", so it arrives over many reads
	})
	c := dialOpen(t, l, rec, "/ws", 1)

	t.Run("echo", func(t *testing.T) {
		send(l, c, "echo:hello")
		if m := rec.next(t, "msg"); m.data != "hello" {
			t.Fatalf("echo %q", m.data)
		}
	})
	t.Run("ping answered", func(t *testing.T) {
		send(l, c, "ping")
		rec.next(t, "ping")
		if m := rec.next(t, "msg"); m.data != "pong:p1" {
			t.Fatalf("server saw pong %q", m.data)
		}
	})
	t.Run("fragmented", func(t *testing.T) {
		send(l, c, "frag")
		if m := rec.next(t, "msg"); m.data != strings.Repeat("f", 300) {
			t.Fatalf("reassembled %d bytes", len(m.data))
		}
	})
	t.Run("split across reads", func(t *testing.T) {
		send(l, c, "big")
		if m := rec.next(t, "msg"); len(m.data) != 200_000 || strings.Trim(m.data, "b") != "" {
			t.Fatalf("big message %d bytes", len(m.data))
		}
	})
	t.Run("local close", func(t *testing.T) {
		l.Execute(func() { l.Close(c, 1000) })
		e := rec.next(t, "close")
		if e.reason.Kind != "" || e.reason.Code != 1000 || !e.reason.Local {
			t.Fatalf("close reason %+v", e.reason)
		}
	})
	t.Run("server close", func(t *testing.T) {
		c := dialOpen(t, l, rec, "/ws", 2)
		send(l, c, "close4000")
		e := rec.next(t, "close")
		if e.reason.Kind != "close_4000" || e.reason.Code != 4000 || e.reason.Local {
			t.Fatalf("close reason %+v", e.reason)
		}
	})
	t.Run("drop", func(t *testing.T) {
		c := dialOpen(t, l, rec, "/ws", 3)
		l.Execute(func() { l.Drop(c) })
		if e := rec.next(t, "close"); e.reason.Kind != "dropped" || !e.reason.Local {
			t.Fatalf("close reason %+v", e.reason)
		}
	})
	t.Run("source addresses", func(t *testing.T) {
		for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
			if _, ok := remotes.Load(ip); !ok {
				t.Errorf("no connection came from %s", ip)
			}
		}
	})
}

func TestLoopFailures(t *testing.T) {
	srv, _ := testServer(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() { // accept and never answer
		var held []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	tests := []struct {
		name, addr, path, kind string
	}{
		{"refused", closedAddr, "/ws", "refused"},
		{"not found", srv.Listener.Addr().String(), "/nows", "http_404"},
		{"handshake timeout", silent.Addr().String(), "/ws", "timeout_handshake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := addrOf(t, tc.addr)
			l, rec := startLoop(t, Config{Target: target, Host: tc.addr, HandshakeTimeout: 300 * time.Millisecond})
			l.Execute(func() { l.Dial(DialRequest{ID: 7, Path: tc.path}) })
			e := rec.next(t, "close")
			if e.reason.Kind != tc.kind || e.c.Opened() {
				t.Fatalf("reason %+v, want kind %s", e.reason, tc.kind)
			}
		})
	}
}

func TestLoopStopClosesEverything(t *testing.T) {
	srv, _ := testServer(t)
	target := addrOf(t, srv.Listener.Addr().String())
	rec := &recorder{ev: make(chan event, 64)}
	l, err := NewLoop(Config{Target: target, Host: target.String(), MaxInflight: 1}, rec)
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	dialOpen(t, l, rec, "/ws", 1)
	l.Stop()
	<-l.Done()
	close(rec.ev)
	var stopped int
	for e := range rec.ev {
		if e.kind == "close" && e.reason.Kind == "stopped" {
			stopped++
		}
	}
	if stopped != 1 {
		t.Fatalf("%d connections reported stopped, want 1", stopped)
	}
	if l.Execute(func() {}) {
		t.Fatal("Execute accepted work after Run returned")
	}
}
