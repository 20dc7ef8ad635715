package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pollClient is an Engine.IO 4 long-polling client written by hand with
// net/http, for checks at the packet level; the npm socket.io-client runs
// in web/test. Without keep-alive every request opens a new connection,
// which a round-robin proxy sends to the next node.
type pollClient struct {
	t    *testing.T
	base string // http://host:port/socket.io/
	sid  string
	hc   *http.Client
}

func newPollClient(t *testing.T, hostport, path string, keepAlive bool) *pollClient {
	tr := &http.Transport{DisableKeepAlives: !keepAlive}
	t.Cleanup(tr.CloseIdleConnections)
	return &pollClient{t: t, base: "http://" + hostport + path, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (p *pollClient) url() string {
	u := p.base + "?EIO=4&transport=polling&t=" + fmt.Sprint(time.Now().UnixNano())
	if p.sid != "" {
		u += "&sid=" + p.sid
	}
	return u
}

// do sends a request and returns the status, the body and the response.
func (p *pollClient) do(method, body string, header ...string) (int, string, *http.Response) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.url(), strings.NewReader(body))
	if method == "POST" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

// handshake opens a session and joins the main namespace.
func (p *pollClient) handshake() {
	p.t.Helper()
	status, body, _ := p.do("GET", "")
	var open struct {
		SID      string   `json:"sid"`
		Upgrades []string `json:"upgrades"`
	}
	if status != 200 || !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil {
		p.t.Fatalf("handshake: %d %q", status, body)
	}
	p.sid = open.SID
	p.post("40")
	if got := p.get(); !strings.HasPrefix(got, `40{"sid":"`) {
		p.t.Fatalf("CONNECT answered %q", got)
	}
}

// post POSTs a payload, which must be taken.
func (p *pollClient) post(payload string) {
	p.t.Helper()
	if status, body, _ := p.do("POST", payload); status != 200 || body != "ok" {
		p.t.Fatalf("POST %q: %d %q", payload, status, body)
	}
}

// get polls and returns the payload, answering pings on the way.
func (p *pollClient) get() string {
	p.t.Helper()
	for {
		status, body, _ := p.do("GET", "")
		if status != 200 {
			p.t.Fatalf("poll: %d %q", status, body)
		}
		if body == "2" {
			p.post("3")
			continue
		}
		return body
	}
}

// Socket.IO over long-polling against a real node: subscribe, a push
// through the HTTP API answering a held poll, CORS, and the refusals a
// bad client gets, none of which touches another client.
func TestSocketIOPolling(t *testing.T) {
	n := testNode(t, "--sio-max-payload", "1024")
	addr := n.srv.Addr()
	p := newPollClient(t, addr, n.cfg.SIOPath, true)
	p.handshake()
	p.post(`420["subscribe",["news"]]`)
	if got := p.get(); got != `430[{"ok":true}]` {
		t.Fatalf("subscribe: %q", got)
	}
	got := make(chan string, 1)
	go func() { got <- p.get() }()
	time.Sleep(50 * time.Millisecond) // the poll is held
	if code, body := publishHTTP(t, n, `{"topic":"news","data":{"n":1}}`); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	select {
	case g := <-got:
		if g != `42["message",{"topic":"news","data":{"n":1}}]` {
			t.Fatalf("push %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no push on the held poll")
	}

	// A cross-origin page may read the answers.
	_, _, resp := p.do("POST", "3", "Origin", "https://app.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("CORS headers %v", resp.Header)
	}

	// Bad clients get clear answers; p keeps working.
	bad := newPollClient(t, addr, n.cfg.SIOPath, false)
	bad.sid = "NoSuchSession0000000000"
	if status, body, _ := bad.do("GET", ""); status != 400 || body != `{"code":1,"message":"Session ID unknown"}` {
		t.Fatalf("unknown sid: %d %q", status, body)
	}
	bad.sid = ""
	bad.handshake()
	if status, _, _ := bad.do("POST", strings.Repeat("4", 1025)); status != 413 {
		t.Fatalf("oversized POST: %d", status)
	}
	if status, body, _ := bad.do("POST", "42[oops"); status != 200 || body != "ok" {
		t.Fatalf("malformed packet: %d %q", status, body)
	}
	if g := bad.get(); g != "41" {
		t.Fatalf("after the malformed packet: %q", g)
	}
	if g := bad.get(); g != "1" {
		t.Fatalf("then: %q", g)
	}
	p.post(`421["unsubscribe",["x"]]`)
	if g := p.get(); g != `431[{"ok":true}]` {
		t.Fatalf("the good client after the bad one: %q", g)
	}
}

// A client that stops polling (its pushes pile up) is closed at the
// outbound cap: the node holds no more than that for it, and its neighbour
// gets every push. A client that stalls inside a request head is cut off
// by the request deadline.
func TestSocketIOStalledPoll(t *testing.T) {
	n := testNode(t, "--max-outbound", "65536", "--handshake-timeout", "500ms")
	addr := n.srv.Addr()
	stalled := newPollClient(t, addr, n.cfg.SIOPath, true)
	stalled.handshake()
	stalled.post(`42["subscribe",["flood"]]`)
	good := newPollClient(t, addr, n.cfg.SIOPath, true)
	good.handshake()
	good.post(`42["subscribe",["flood"]]`)
	waitFor(t, "both subscriptions", func() bool { return n.hub.Stats().Subscriptions == 2 })
	data := `"` + strings.Repeat("x", 4000) + `"`
	var received int
	for i := range 40 { // 160 KB, over the 64 KiB cap
		if code, body := publishHTTP(t, n, `{"topic":"flood","data":`+data+`}`); code != 200 {
			t.Fatalf("publish %d: %d %s", i, code, body)
		}
		if i%8 == 7 { // the good client keeps up
			for received < i+1 {
				received += len(strings.Split(good.get(), "\x1e"))
			}
		}
	}
	waitFor(t, "the slow consumer", func() bool { return n.srv.Metrics().SlowConsumers.Load() == 1 })
	if received != 40 {
		t.Fatalf("the good client got %d of 40 pushes", received)
	}
	if g := stalled.get(); g != "1" {
		t.Fatalf("the stalled client's next poll: %q", g)
	}
	// Half a request head, then nothing: closed after the request deadline.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n", n.cfg.SIOPath)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a stalled request head: %v, want EOF", err)
	}
}

// rrProxy is a TCP proxy that sends each new connection to the next of its
// backends in turn: a load balancer without sticky sessions.
type rrProxy struct {
	l        net.Listener
	backends []string
	next     atomic.Int64
	wg       sync.WaitGroup
}

func startRRProxy(t *testing.T, backends ...string) *rrProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rrProxy{l: l, backends: backends}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.wg.Wait()
	})
	return p
}

func (p *rrProxy) addr() string { return p.l.Addr().String() }

func (p *rrProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		to := p.backends[int(p.next.Add(1)-1)%len(p.backends)]
		b, err := net.Dial("tcp", to)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			_ = src.Close()
		}
		go pipe(b, c)
		go pipe(c, b)
	}
}

// startCluster starts two nodes on one NATS (the first one's embedded
// server) and a round-robin proxy in front of them.
func startCluster(t *testing.T, extra ...string) (a, b *node, proxy *rrProxy) {
	t.Helper()
	a = testNode(t, extra...)
	b = testNode(t, append([]string{"--nats", a.ns.ClientURL()}, extra...)...)
	return a, b, startRRProxy(t, a.srv.Addr(), b.srv.Addr())
}

// Two nodes behind a round-robin proxy without sticky sessions: a polling
// client's requests alternate between them, the node that does not own
// the session relays them to the owner, and the client sees one session.
// Pushes published on either node reach it; a WebSocket upgrade that
// reaches the other node is refused and the client stays on polling, one
// that reaches the owner moves the session onto the WebSocket.
func TestSocketIOTwoNodes(t *testing.T) {
	a, b, proxy := startCluster(t)
	p := newPollClient(t, proxy.addr(), a.cfg.SIOPath, false)
	p.handshake()
	p.post(`420["subscribe",["news"]]`)
	if got := p.get(); got != `430[{"ok":true}]` {
		t.Fatalf("subscribe: %q", got)
	}
	for i, n := range []*node{a, b, a, b} {
		if code, body := publishHTTP(t, n, fmt.Sprintf(`{"topic":"news","data":%d}`, i)); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
		want := fmt.Sprintf(`42["message",{"topic":"news","data":%d}]`, i)
		if got := p.get(); got != want {
			t.Fatalf("push %d: %q, want %q", i, got, want)
		}
	}
	relayed := a.sioMet.Forwarded.Load() + b.sioMet.Forwarded.Load()
	served := a.sioMet.RelayServed.Load() + b.sioMet.RelayServed.Load()
	if relayed < 4 || served != relayed {
		t.Fatalf("forwarded %d, served %d: the requests did not alternate", relayed, served)
	}

	// Upgrades through the proxy: each attempt lands on the next node.
	owner, other := a, b
	if a.sioMet.PollingSessions.Load() == 0 {
		owner, other = b, a
	}
	var upgraded *websocket.Conn
	for range 2 {
		ws, resp, err := websocket.DefaultDialer.Dial("ws://"+proxy.addr()+a.cfg.SIOPath+"?EIO=4&transport=websocket&sid="+p.sid, nil)
		if err != nil {
			if resp == nil || resp.StatusCode != 400 {
				t.Fatalf("upgrade: %v %v", err, resp)
			}
			continue // the other node: refused, the client stays on polling
		}
		resp.Body.Close()
		upgraded = ws
	}
	if upgraded == nil || other.sioMet.UpgradesRefused.Load() != 1 {
		t.Fatalf("upgrades: owner took %v, other refused %d", upgraded != nil, other.sioMet.UpgradesRefused.Load())
	}
	defer upgraded.Close()
	p.post(`421["unsubscribe",["x"]]`) // still polling while the probe is open
	if got := p.get(); got != `431[{"ok":true}]` {
		t.Fatalf("polling during the probe: %q", got)
	}
	wsSend := func(s string) {
		if err := upgraded.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	wsRead := func() string {
		_ = upgraded.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, m, err := upgraded.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return string(m)
	}
	wsSend("2probe")
	if got := wsRead(); got != "3probe" {
		t.Fatalf("probe: %q", got)
	}
	wsSend("5")
	waitFor(t, "the upgrade", func() bool { return owner.sioMet.Upgrades.Load() == 1 })
	if code, body := publishHTTP(t, other, `{"topic":"news","data":"ws"}`); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if got := wsRead(); got != `42["message",{"topic":"news","data":"ws"}]` {
		t.Fatalf("push after the upgrade: %q", got)
	}
	// Polling for the upgraded session is over, on either node.
	for range 2 {
		if status, _, _ := p.do("GET", ""); status != 400 {
			t.Fatalf("polling after the upgrade: %d", status)
		}
	}

	// The same with the real socket.io-client (web/test).
	t.Run("socket.io-client", func(t *testing.T) {
		if testing.Short() {
			t.Skip("runs node; not in -short")
		}
		node := findNode(t)
		if _, err := os.Stat(filepath.Join(jsTestDir, "node_modules", "socket.io-client", "package.json")); err != nil {
			requireTool(t, "the npm package socket.io-client is not installed (cd cmd/pushd/web/test && npm ci)")
		}
		runNodeTestsEnv(t, node, []string{
			"SIO_CLUSTER_URL=http://" + proxy.addr(),
			"SIO_CLUSTER_APIS=" + a.apiURL() + "," + b.apiURL(),
		}, "socketio-cluster.test.mjs")
	})
}

// rawPoll sends a poll for sid to addr on a new TCP connection, which it
// returns without reading the answer.
func rawPoll(t *testing.T, addr, path, sid string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n\r\n", path, sid)
	return c
}

// ended checks that the client's session is over: its next poll gets the
// close packet, or 400 "Session ID unknown" once the session is gone.
func (p *pollClient) ended() {
	p.t.Helper()
	code, body, _ := p.do("GET", "")
	if !(code == 200 && body == "1") && !(code == 400 && strings.Contains(body, `"code":1`)) {
		p.t.Fatalf("the next poll got %d %q, want the close packet or an unknown sid", code, body)
	}
}

// A client that drops a poll held for its session on another node (or
// another loop): the owner may have taken packets for it, so the session
// ends, as when a poll held on the owner is dropped, and the client
// reconnects. Before, the session lived on and the next push vanished
// into the dropped poll's answer.
func TestSocketIODroppedRelayedPoll(t *testing.T) {
	t.Run("another node", func(t *testing.T) {
		a, b, _ := startCluster(t)
		p := newPollClient(t, a.srv.Addr(), a.cfg.SIOPath, false)
		p.handshake()
		p.post(`420["subscribe",["news"]]`)
		if got := p.get(); got != `430[{"ok":true}]` {
			t.Fatalf("subscribe: %q", got)
		}
		held := rawPoll(t, b.srv.Addr(), b.cfg.SIOPath, p.sid)
		waitFor(t, "the poll to be held on the owner", func() bool { return a.sioMet.RelayServed.Load() == 1 })
		held.Close()
		// A push now went, before the fix, into the dropped poll's answer.
		publishHTTP(t, a, `{"topic":"news","data":"after"}`)
		p.ended()
	})
	t.Run("another loop", func(t *testing.T) {
		n := testNode(t)
		p := newPollClient(t, n.srv.Addr(), n.cfg.SIOPath, false)
		p.handshake()
		p.post(`420["subscribe",["news"]]`)
		if got := p.get(); got != `430[{"ok":true}]` {
			t.Fatalf("subscribe: %q", got)
		}
		// Connections are spread over the node's two loops: find one
		// whose poll is relayed to the session's loop. A poll held on
		// the owner itself is answered by a push and read.
		for i := 0; ; i++ {
			if i == 20 {
				t.Fatal("no poll was relayed to the other loop in 20 connections")
			}
			before := n.sioMet.Relayed.Load()
			c := rawPoll(t, n.srv.Addr(), n.cfg.SIOPath, p.sid)
			time.Sleep(50 * time.Millisecond)
			if n.sioMet.Relayed.Load() > before {
				c.Close()
				break
			}
			publishHTTP(t, n, `{"topic":"news","data":"filler"}`)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 4096)
			if k, _ := c.Read(b); !strings.Contains(string(b[:k]), "filler") {
				t.Fatalf("a poll held on the owner got %q", b[:k])
			}
			c.Close()
		}
		publishHTTP(t, n, `{"topic":"news","data":"after"}`)
		p.ended()
	})
}
