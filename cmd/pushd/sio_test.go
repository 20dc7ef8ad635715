package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
)

// sioClient is a gorilla/websocket client speaking Engine.IO 4 and
// Socket.IO 5 by hand, for checks at the packet level; cmd/pushd/web/test
// runs the real socket.io-client.
type sioClient struct {
	t  *testing.T
	ws *websocket.Conn
}

// sioURL returns the Socket.IO WebSocket URL of n.
func sioURL(n *node) string {
	return "ws://" + n.srv.Addr() + n.cfg.SIOPath + "?EIO=4&transport=websocket"
}

// dialSIO opens an engine (reading the open packet) and, unless auth is
// "-", joins the main namespace with auth as the CONNECT payload.
func dialSIO(t *testing.T, n *node, auth string, h http.Header) *sioClient {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(sioURL(n), h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	c := &sioClient{t: t, ws: ws}
	if open := c.read(); !strings.HasPrefix(open, `0{"sid":"`) {
		t.Fatalf("open packet %q", open)
	}
	if auth != "-" {
		c.send("40" + auth)
	}
	return c
}

func (c *sioClient) send(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, answering pings on the way.
func (c *sioClient) read() string {
	c.t.Helper()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if string(p) == "2" {
			c.send("3")
			continue
		}
		return string(p)
	}
}

// push decodes a message event.
func (c *sioClient) push() (topic string, data string) {
	c.t.Helper()
	p := c.read()
	var ev []json.RawMessage
	if !strings.HasPrefix(p, "42") || json.Unmarshal([]byte(p[2:]), &ev) != nil || len(ev) != 2 || string(ev[0]) != `"message"` {
		c.t.Fatalf("not a message event: %q", p)
	}
	var m struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ev[1], &m); err != nil {
		c.t.Fatal(err)
	}
	return m.Topic, string(m.Data)
}

// Subscribe with an ack, receive pushes published through the HTTP API,
// unsubscribe, and publish from the client where the flag allows it.
func TestSocketIOSubscribeAndPush(t *testing.T) {
	n := testNode(t, "--client-publish")
	c := dialSIO(t, n, "", nil)
	if got := c.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("CONNECT answered %q", got)
	}
	c.send(`420["subscribe",["news.a","news.b"]]`)
	if got := c.read(); got != `430[{"ok":true}]` {
		t.Fatalf("subscribe answered %q", got)
	}
	for _, body := range []string{`{"topic":"news.a","data":{"n":1}}`, `{"topic":"news.b","data":"two"}`} {
		if code, resp := publishHTTP(t, n, body); code != 200 {
			t.Fatalf("publish: %d %s", code, resp)
		}
	}
	if topic, data := c.push(); topic != "news.a" || data != `{"n":1}` {
		t.Fatalf("push %s %s", topic, data)
	}
	if topic, data := c.push(); topic != "news.b" || data != `"two"` {
		t.Fatalf("push %s %s", topic, data)
	}
	c.send(`421["publish",{"topic":"news.a","data":[3]}]`)
	if got := c.read(); got != `431[{"ok":true}]` {
		t.Fatalf("publish answered %q", got)
	}
	if topic, data := c.push(); topic != "news.a" || data != `[3]` {
		t.Fatalf("own publish came back as %s %s", topic, data)
	}
	c.send(`422["unsubscribe",["news.a","news.b"]]`)
	if got := c.read(); got != `432[{"ok":true}]` {
		t.Fatalf("unsubscribe answered %q", got)
	}
	waitFor(t, "the node to drop its interest", func() bool { return n.hub.Stats().UpstreamSubs == 0 })
}

// With JWT keys the CONNECT must carry a valid token; the token's patterns
// and personal topic apply; an upgrade with a token in the URL needs none
// in the CONNECT.
func TestSocketIOToken(t *testing.T) {
	k := newKeys(t)
	n := testNode(t, "--jwt-secret-files", k.secretFile)
	tok := k.hs(t, claims("alice", time.Now().Add(time.Hour)))

	c := dialSIO(t, n, "", nil)
	if got := c.read(); got != `44{"message":"auth: missing token: no token in the request or the auth payload","data":{"code":"unauthorized"}}` {
		t.Fatalf("CONNECT without token answered %q", got)
	}
	c.send(`40{"token":"not.a.jwt"}`)
	if got := c.read(); !strings.HasPrefix(got, `44{"message":"auth: invalid token`) {
		t.Fatalf("CONNECT with a bad token answered %q", got)
	}
	c.send(`40{"token":"` + tok + `"}`)
	if got := c.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("CONNECT with a good token answered %q", got)
	}
	c.send(`420["subscribe",["secret.x"]]`)
	if got := c.read(); !strings.Contains(got, `"code":"forbidden"`) {
		t.Fatalf("subscribe outside the token's patterns answered %q", got)
	}
	waitFor(t, "personal subscription", func() bool { return n.hub.Stats().Topics >= 1 })
	if code, body := publishHTTP(t, n, `{"topic":"user.alice","data":1}`); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if topic, _ := c.push(); topic != "user.alice" {
		t.Fatalf("personal push on %q", topic)
	}

	// A token in the upgrade request serves a CONNECT without one.
	ws, resp, err := websocket.DefaultDialer.Dial(sioURL(n)+"&token="+tok, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	defer ws.Close()
	c2 := &sioClient{t: t, ws: ws}
	c2.read()
	c2.send("40")
	if got := c2.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("CONNECT after a token in the URL answered %q", got)
	}
	// A bad token in the upgrade request: 401 before the 101.
	if _, resp, err := websocket.DefaultDialer.Dial(sioURL(n)+"&token=bad", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("bad token in the URL: %v, %v", err, resp)
	}
}

// The Engine.IO query is checked before the upgrade, and --sio-path ""
// turns the endpoint off.
func TestSocketIOHandshakeChecks(t *testing.T) {
	n := testNode(t)
	base := "ws://" + n.srv.Addr() + n.cfg.SIOPath
	for _, q := range []string{"?EIO=3&transport=websocket", "?transport=websocket", "?EIO=4&transport=polling", "?EIO=4&transport=websocket&sid=x"} {
		if _, resp, err := websocket.DefaultDialer.Dial(base+q, nil); err == nil || resp == nil || resp.StatusCode != 400 {
			t.Errorf("%s: %v, %v; want 400", q, err, resp)
		}
	}
	off := testNode(t, "--sio-path", "")
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+off.srv.Addr()+"/socket.io/?EIO=4&transport=websocket", nil); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("with --sio-path \"\": %v, %v; want 404", err, resp)
	}
}

// Bad input from one client ends that client only: a malformed packet gets
// a DISCONNECT and close 1002, and a neighbour keeps its pushes.
func TestSocketIOBadInputIsolated(t *testing.T) {
	n := testNode(t)
	good := dialSIO(t, n, "", nil)
	good.read()
	good.send(`420["subscribe",["t"]]`)
	good.read()
	bad := dialSIO(t, n, "", nil)
	bad.read()
	bad.send(`42{"not":"an array"}`)
	if got := bad.read(); got != "41" {
		t.Fatalf("malformed packet answered %q, want 41", got)
	}
	_ = bad.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := bad.ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1002 || ce.Text != "malformed Socket.IO packet" {
		t.Fatalf("then %v, want close 1002", err)
	}
	if code, _ := publishHTTP(t, n, `{"topic":"t","data":1}`); code != 200 {
		t.Fatal("publish failed")
	}
	if topic, _ := good.push(); topic != "t" {
		t.Fatalf("neighbour got %q", topic)
	}
}

// connectAnswer decodes a CONNECT's answer.
func connectAnswer(t *testing.T, got string) (pid string) {
	t.Helper()
	var a struct{ SID, PID string }
	if !strings.HasPrefix(got, "40{") || json.Unmarshal([]byte(got[2:]), &a) != nil {
		t.Fatalf("CONNECT answered %q", got)
	}
	return a.PID
}

// pushID decodes a message event on a durable topic: its data and the
// recovery offset, its last argument.
func (c *sioClient) pushID() (data, id string) {
	c.t.Helper()
	p := c.read()
	var ev []json.RawMessage
	if !strings.HasPrefix(p, "42") || json.Unmarshal([]byte(p[2:]), &ev) != nil || len(ev) != 3 {
		c.t.Fatalf("not a durable push: %q", p)
	}
	var m struct{ Data json.RawMessage }
	if err := json.Unmarshal(ev[1], &m); err != nil || json.Unmarshal(ev[2], &id) != nil {
		c.t.Fatalf("push %q", p)
	}
	return string(m.Data), id
}

// Connection state recovery on durable topics: a session whose connection
// is lost is recovered by a CONNECT with its pid and the offset of the last
// push it got, on another node: the same pid comes back (socket.recovered),
// the pushes it missed come first, then the live ones; the subscription is
// back without a subscribe.
func TestSocketIORecovery(t *testing.T) {
	dir := t.TempDir()
	a := testNode(t, "--history", "user.>:1000:1h", "--data-dir", dir, "--sio-recovery", "1m")
	b := testNode(t, "--nats", a.ns.ClientURL(), "--history", "user.>:1000:1h", "--sio-recovery", "1m")
	c := dialSIO(t, a, "", nil)
	pid := connectAnswer(t, c.read())
	if len(pid) != 22 {
		t.Fatalf("pid %q", pid)
	}
	c.send(`420["subscribe",["user.u1"]]`)
	if got := c.read(); got != `430[{"ok":true}]` {
		t.Fatalf("subscribe: %q", got)
	}
	for i := 1; i <= 2; i++ {
		if code, body := publishHTTP(t, a, fmt.Sprintf(`{"topic":"user.u1","data":%d}`, i)); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	c.pushID()
	data, last := c.pushID()
	if data != "2" || !strings.HasPrefix(last, "user.u1:") {
		t.Fatalf("push %s with offset %q", data, last)
	}
	c.ws.UnderlyingConn().Close() // the connection is lost, without a close frame
	waitFor(t, "the state to be kept", func() bool { return a.sioMet.Kept.Load() == 1 })
	for i := 3; i <= 4; i++ {
		if code, body := publishHTTP(t, a, fmt.Sprintf(`{"topic":"user.u1","data":%d}`, i)); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	r := dialSIO(t, b, `{"pid":"`+pid+`","offset":"`+last+`"}`, nil)
	if got := connectAnswer(t, r.read()); got != pid {
		t.Fatalf("recovered with pid %q, want %q", got, pid)
	}
	for _, want := range []string{"3", "4"} {
		if data, _ := r.pushID(); data != want {
			t.Fatalf("replayed %s, want %s", data, want)
		}
	}
	if code, body := publishHTTP(t, b, `{"topic":"user.u1","data":5}`); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if data, _ := r.pushID(); data != "5" {
		t.Fatalf("live %s, want 5", data)
	}
	if b.sioMet.Recovered.Load() != 1 || a.sioMet.Kept.Load() != 0 {
		t.Fatalf("recovered %d, kept %d", b.sioMet.Recovered.Load(), a.sioMet.Kept.Load())
	}
}

// TestSocketIODurableSubscribeAck: on a durable topic the subscribe's ack
// comes once the node follows the topic's history, as v1's ok does, so a
// message a backend publishes right after the ack reaches the client, even
// on a topic the node had no subscriber for. A publish's ack carries the
// stored message's offset and epoch.
func TestSocketIODurableSubscribeAck(t *testing.T) {
	n := durableNode(t, "--client-publish")
	pub, err := nats.Connect(n.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	c := dialSIO(t, n, "", nil)
	connectAnswer(t, c.read())
	for i := range 20 {
		topic := fmt.Sprintf("user.fresh%d", i)
		c.send(fmt.Sprintf(`42%d["subscribe",[%q]]`, i, topic))
		if got, want := c.read(), fmt.Sprintf(`43%d[{"ok":true}]`, i); got != want {
			t.Fatalf("subscribe answered %q, want %q", got, want)
		}
		if err := pub.Publish("pushd."+topic, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if data, id := c.pushID(); data != strconv.Itoa(i) || !strings.HasPrefix(id, topic+":") {
			t.Fatalf("push %s at %s, want %d on %s", data, id, i, topic)
		}
	}
	// The ack and the push of the client's own message race: the push
	// may come first.
	c.send(`4299["publish",{"topic":"user.fresh0","data":"mine"}]`)
	ack := regexp.MustCompile(`^4399\[\{"ok":true,"offset":(\d+),"epoch":"([^"]+)"\}\]$`)
	var acked, pushed string
	for acked == "" || pushed == "" {
		got := c.read()
		if m := ack.FindStringSubmatch(got); m != nil && acked == "" {
			acked = "user.fresh0:" + m[2] + ":" + m[1]
			continue
		}
		var ev []json.RawMessage
		if !strings.HasPrefix(got, "42") || json.Unmarshal([]byte(got[2:]), &ev) != nil || len(ev) != 3 ||
			!strings.Contains(string(ev[1]), `"data":"mine"`) || pushed != "" {
			t.Fatalf("after a durable publish: %q", got)
		}
		_ = json.Unmarshal(ev[2], &pushed)
	}
	if acked != pushed {
		t.Fatalf("the ack names %s, the push %s", acked, pushed)
	}
}
