package main

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Messages published through NATS and through POST /v1/publish reach every
// subscriber exactly once and in order, and nobody else.
func TestPublishReachesSubscribersOnly(t *testing.T) {
	n := testNode(t)
	var subs []*client
	for i := 0; i < 4; i++ {
		subs = append(subs, dial(t, n.wsURL()+"?topics=news.eu"))
	}
	late := dial(t, n.wsURL())
	if r := late.command(`{"id":"x1","type":"subscribe","topics":["news.eu","other"]}`); r.Type != "ok" || string(r.ID) != `"x1"` {
		t.Fatalf("subscribe reply %+v", r)
	}
	subs = append(subs, late)
	outsider := dial(t, n.wsURL()+"?topics=news.us")
	waitFor(t, "NATS interest", func() bool { return n.hub.Stats().UpstreamSubs == 3 })

	nc, err := nats.Connect(n.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const perWay = 20
	for i := 0; i < perWay; i++ {
		if err := nc.Publish("pushd.news.eu", []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := perWay; i < 2*perWay; i++ {
		code, body := publishHTTP(t, n, fmt.Sprintf(`{"topic":"news.eu","data":{"n":%d}}`, i))
		if code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	for ci, c := range subs {
		for i := 0; i < 2*perWay; i++ {
			m := c.read()
			if m.Type != "message" || m.Topic != "news.eu" || m.Seq != uint64(i+1) || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("client %d message %d: %+v (data %s)", ci, i, m, m.Data)
			}
		}
	}
	outsider.expectNothing(300 * time.Millisecond)
	for _, c := range subs {
		c.expectNothing(50 * time.Millisecond) // exactly once: nothing more
	}
	if got, want := n.hub.Stats().Deliveries, int64(len(subs)*2*perWay); got != want {
		t.Fatalf("deliveries = %d, want %d", got, want)
	}
}

// The batch forms of the publish API, and non-JSON NATS payloads.
func TestPublishForms(t *testing.T) {
	n := testNode(t)
	c := dial(t, n.wsURL()+"?topics=a,b")
	waitFor(t, "interest", func() bool { return n.hub.Stats().UpstreamSubs == 2 })
	if code, body := publishHTTP(t, n, `{"topics":["a","b"],"data":"both"}`); code != 200 || !strings.Contains(body, `"published":2`) {
		t.Fatalf("topics form: %d %s", code, body)
	}
	got := map[string]string{}
	for i := 0; i < 2; i++ {
		m := c.read()
		got[m.Topic] = string(m.Data)
	}
	if got["a"] != `"both"` || got["b"] != `"both"` {
		t.Fatalf("topics form delivered %v", got)
	}
	if code, body := publishHTTP(t, n, `{"messages":[{"topic":"a","data":1},{"topic":"a","data":[2]},{"topic":"a","data":null}]}`); code != 200 {
		t.Fatalf("messages form: %d %s", code, body)
	}
	for _, want := range []string{`1`, `[2]`, `null`} {
		if m := c.read(); string(m.Data) != want {
			t.Fatalf("got %s, want %s", m.Data, want)
		}
	}
	nc, err := nats.Connect(n.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.Publish("pushd.a", []byte("plain text"))
	_ = nc.Flush()
	if m := c.read(); string(m.Data) != `"plain text"` {
		t.Fatalf("non-JSON payload arrived as %s", m.Data)
	}
}

// Two nodes share one NATS server: one publish is delivered on both, and a
// node without subscribers for a topic holds no NATS subscription for it.
func TestTwoNodesShareNATS(t *testing.T) {
	a := testNode(t)
	b := testNode(t, "--nats", a.ns.ClientURL())
	ca := dial(t, a.wsURL()+"?topics=t1")
	cb := dial(t, b.wsURL()+"?topics=t1,only.b")
	waitFor(t, "interest", func() bool {
		return a.hub.Stats().UpstreamSubs == 1 && b.hub.Stats().UpstreamSubs == 2
	})
	// nats.go sends SUB asynchronously: wait for the server to have it.
	waitFor(t, "the server to see node b's subscription", func() bool { return natsSubsFor(t, a.ns, "pushd.only.b") == 1 })
	waitFor(t, "the server to see both subscriptions to t1", func() bool { return natsSubsFor(t, a.ns, "pushd.t1") == 2 })
	if code, body := publishHTTP(t, a, `{"topic":"t1","data":"hello"}`); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	for _, c := range []*client{ca, cb} {
		if m := c.read(); m.Topic != "t1" || string(m.Data) != `"hello"` {
			t.Fatalf("got %+v", m)
		}
	}
	if code, _ := publishHTTP(t, b, `{"topic":"only.b","data":2}`); code != 200 {
		t.Fatal("publish only.b failed")
	}
	if m := cb.read(); m.Topic != "only.b" {
		t.Fatalf("got %+v", m)
	}
	if d := a.hub.Stats().MessagesIn; d != 1 {
		t.Fatalf("node a received %d NATS messages, want 1: it has no interest in only.b", d)
	}
}

// natsSubsFor counts the server's subscriptions on subject.
func natsSubsFor(t *testing.T, ns *server.Server, subject string) int {
	t.Helper()
	cz, err := ns.Connz(&server.ConnzOptions{Subscriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cz.Conns {
		for _, s := range c.Subs {
			if s == subject {
				n++
			}
		}
	}
	return n
}

// Subscribing and unsubscribing across many topics leaks nothing: the
// registry's and the NATS server's counts return to zero.
func TestChurnLeaksNoSubscriptions(t *testing.T) {
	n := testNode(t)
	base := n.ns.NumSubscriptions()
	var clients []*client
	for i := 0; i < 5; i++ {
		clients = append(clients, dial(t, n.wsURL()))
	}
	for round := 0; round < 3; round++ {
		for i, c := range clients {
			var names []string
			for k := 0; k < 50; k++ {
				names = append(names, fmt.Sprintf(`"churn.%d.%d"`, k, (i+round)%3))
			}
			list := strings.Join(names, ",")
			if r := c.command(fmt.Sprintf(`{"id":1,"type":"subscribe","topics":[%s]}`, list)); r.Type != "ok" {
				t.Fatalf("subscribe: %+v", r)
			}
			if r := c.command(fmt.Sprintf(`{"id":2,"type":"unsubscribe","topics":[%s]}`, list)); r.Type != "ok" {
				t.Fatalf("unsubscribe: %+v", r)
			}
		}
	}
	// Half of them subscribe again and then disconnect without unsubscribing.
	for _, c := range clients[:3] {
		if r := c.command(`{"id":3,"type":"subscribe","topics":["x","y","z"]}`); r.Type != "ok" {
			t.Fatalf("subscribe: %+v", r)
		}
		c.ws.Close()
	}
	waitFor(t, "counts back to zero", func() bool {
		st := n.hub.Stats()
		return st.Topics == 0 && st.Subscriptions == 0 && st.UpstreamSubs == 0 && n.ns.NumSubscriptions() == base
	})
}

// pushd keeps its clients across a NATS restart, resubscribes, and delivers
// what is published after it.
func TestNATSRestart(t *testing.T) {
	port := freePort(t)
	startNATS := func() *server.Server {
		ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(5 * time.Second) {
			t.Fatal("NATS did not start")
		}
		return ns
	}
	ns := startNATS()
	n := testNode(t, "--nats", ns.ClientURL())
	c := dial(t, n.wsURL()+"?topics=r")
	waitFor(t, "interest", func() bool { return ns.NumSubscriptions() >= 1 })
	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, "disconnect", func() bool { return !n.nc.IsConnected() })
	ns = startNATS()
	defer ns.Shutdown()
	waitFor(t, "reconnect and resubscribe", func() bool { return n.nc.IsConnected() && natsSubsFor(t, ns, "pushd.r") == 1 })
	pub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	_ = pub.Publish("pushd.r", []byte(`"after restart"`))
	_ = pub.Flush()
	if m := c.read(); string(m.Data) != `"after restart"` {
		t.Fatalf("got %+v", m)
	}
	if r := n.hub.Stats().Reconnects; r < 1 {
		t.Fatalf("reconnects = %d", r)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A client that never reads while its topic floods is closed with 4000;
// the other subscribers receive everything.
func TestSlowConsumerIsClosed(t *testing.T) {
	n := testNode(t, "--max-outbound", "65536", "--close-timeout", "20s")
	fast := dial(t, n.wsURL()+"?topics=flood")
	// A small receive buffer, set before connecting so TCP window scaling
	// matches it, makes the kernel stop taking bytes soon, so pushd's
	// outbound buffer grows.
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
	}}
	slow, _, err := (&websocket.Dialer{ReadBufferSize: 1024, NetDialContext: nd.DialContext}).Dial(n.wsURL()+"?topics=flood", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	waitFor(t, "interest", func() bool { return n.hub.Stats().Subscriptions == 2 })
	payload := `"` + strings.Repeat("x", 4000) + `"`
	const total = 4000
	done := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			m := fast.read()
			if m.Type != "message" || m.Seq != uint64(i+1) {
				done <- fmt.Errorf("fast client message %d: %+v", i, m)
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < total; i += 100 {
		var b strings.Builder
		b.WriteString(`{"messages":[`)
		for k := 0; k < 100; k++ {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"topic":"flood","data":` + payload + `}`)
		}
		b.WriteString(`]}`)
		if code, body := publishHTTP(t, n, b.String()); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slow-consumer close", func() bool { return n.srv.Metrics().SlowConsumers.Load() == 1 })
	// Now read the slow client's backlog: it ends with close 4000.
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := 0
	for {
		_, _, err := slow.ReadMessage()
		if err == nil {
			read++
			continue
		}
		if !websocket.IsCloseError(err, 4000) {
			t.Fatalf("slow client ended with %v after %d messages, want close 4000", err, read)
		}
		break
	}
}

// Malformed commands get typed errors; the connection stays usable.
func TestBadCommands(t *testing.T) {
	n := testNode(t)
	c := dial(t, n.wsURL())
	cases := []struct{ send, code string }{
		{`not json`, "bad_json"},
		{`[1,2]`, "bad_json"},
		{`{"id":1}`, "bad_request"},
		{`{"id":2,"type":"subscribe"}`, "bad_request"},
		{`{"id":3,"type":"dance"}`, "unknown_command"},
		{`{"id":4,"type":"subscribe","topics":["bad topic"]}`, "invalid_topic"},
		{`{"id":5,"type":"subscribe","topics":["a..b"]}`, "invalid_topic"},
		{`{"id":6,"type":"subscribe","topics":["wild.*"]}`, "invalid_topic"},
		{`{"id":7,"type":"subscribe","topics":["` + strings.Repeat("t", 200) + `"]}`, "invalid_topic"},
		{`{"id":8,"type":"publish","topic":"a","data":1}`, "forbidden"},
	}
	for _, tc := range cases {
		r := c.command(tc.send)
		if r.Type != "error" || r.Error == nil || r.Error.Code != tc.code {
			t.Errorf("%s: got %+v, want error %s", tc.send, r, tc.code)
		}
	}
	if r := c.command(`{"id":9,"type":"ping"}`); r.Type != "ok" || string(r.ID) != "9" {
		t.Fatalf("connection unusable after bad input: %+v", r)
	}
	if n.hub.Stats().Topics != 0 {
		t.Fatal("an invalid topic was subscribed")
	}
	bad := dial(t, n.wsURL()+"?topics=ok,bad%20topic")
	if r := bad.read(); r.Type != "error" || r.Error.Code != "invalid_topic" {
		t.Fatalf("?topics with an invalid topic: %+v", r)
	}
}

// A flood of commands is rate limited and then closed with 1008.
func TestCommandFloodIsLimited(t *testing.T) {
	n := testNode(t, "--command-rate", "5", "--command-burst", "5")
	c := dial(t, n.wsURL())
	limited := 0
	for i := 0; i < 100; i++ {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"type":"ping"}`)); err != nil {
			break
		}
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, p, err := c.ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, 1008) {
				t.Fatalf("flood ended with %v, want close 1008", err)
			}
			break
		}
		if strings.Contains(string(p), "rate_limited") {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("no rate_limited replies before the close")
	}
}

func TestPublishAPIErrors(t *testing.T) {
	n := testNode(t, "--api-keys", "k1,k2")
	cases := []struct {
		name, body string
		header     []string
		status     int
		code       string
	}{
		{"no key", `{"topic":"a","data":1}`, nil, 401, "unauthorized"},
		{"wrong key", `{"topic":"a","data":1}`, []string{"Authorization", "Bearer nope"}, 401, "unauthorized"},
		{"bad json", `{"topic":`, []string{"Authorization", "Bearer k1"}, 400, "bad_json"},
		{"no data", `{"topic":"a"}`, []string{"Authorization", "Bearer k1"}, 400, "bad_request"},
		{"two forms", `{"topic":"a","topics":["b"],"data":1}`, []string{"Authorization", "Bearer k1"}, 400, "bad_request"},
		{"invalid topic", `{"topic":"a b","data":1}`, []string{"Authorization", "Bearer k2"}, 400, "invalid_topic"},
		{"ok with second key", `{"topic":"a","data":1}`, []string{"Authorization", "Bearer k2"}, 200, ""},
		{"scheme is case-insensitive", `{"topic":"a","data":1}`, []string{"Authorization", "bearer k1"}, 200, ""},
		{"too large for NATS", `{"topic":"a","data":"` + strings.Repeat("x", 1<<20+10) + `"}`, []string{"Authorization", "Bearer k1"}, 413, "too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := publishHTTP(t, n, tc.body, tc.header...)
			if status != tc.status || (tc.code != "" && !strings.Contains(body, `"code":"`+tc.code+`"`)) {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
}
