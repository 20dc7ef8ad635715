package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/topics/broker/jsbroker"
)

// durableNode starts an in-process node whose user.> topics keep a
// history in the embedded JetStream, in a temporary data directory.
func durableNode(t *testing.T, extra ...string) *node {
	t.Helper()
	return testNode(t, append([]string{"--history", "user.>:1000:1h,tick.*:3", "--data-dir", t.TempDir(),
		"--history-check-interval", "200ms"}, extra...)...)
}

// readPush reads the next message and fails unless it is a push.
func (c *client) readPush() msg {
	c.t.Helper()
	m := c.read()
	if m.Type != "message" {
		c.t.Fatalf("got %+v, want a push", m)
	}
	return m
}

// publishN publishes n messages {"n":start+i} to topic through the HTTP
// API and returns their offsets.
func publishN(t *testing.T, n *node, topic string, start, count int) []uint64 {
	t.Helper()
	offs := make([]uint64, count)
	for i := range count {
		code, body := publishHTTP(t, n, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, start+i))
		if code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
		var r struct {
			Published int    `json:"published"`
			Offset    uint64 `json:"offset"`
			Epoch     string `json:"epoch"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.Published != 1 || r.Offset == 0 || r.Epoch == "" {
			t.Fatalf("publish answer %s: %v", body, err)
		}
		offs[i] = r.Offset
	}
	return offs
}

// checkPushes reads len(offs) pushes of topic and checks each one's offset
// and payload n (counting from start).
func (c *client) checkPushes(topic string, offs []uint64, start int) msg {
	c.t.Helper()
	var last msg
	for i, off := range offs {
		m := c.readPush()
		if m.Topic != topic || m.Offset != off || string(m.Data) != fmt.Sprintf(`{"n":%d}`, start+i) {
			c.t.Fatalf("push %d: %+v (data %s), want offset %d n %d", i, m, m.Data, off, start+i)
		}
		last = m
	}
	return last
}

// TestDurableResume: a client sees 5 messages, disconnects, 100 are
// published, and it reconnects with its position: the ok says recovered,
// then exactly the 100 come, in order, then the live ones.
func TestDurableResume(t *testing.T) {
	n := durableNode(t)
	c := dial(t, n.wsURL())
	if r := c.command(`{"id":1,"type":"subscribe","topics":["user.42"]}`); r.Type != "ok" || r.Recovered != nil {
		t.Fatalf("subscribe reply %+v", r)
	}
	// The ok came once the node followed the topic's history: everything
	// published from now on is delivered.
	last := c.checkPushes("user.42", publishN(t, n, "user.42", 0, 5), 0)
	if last.Epoch == "" || last.Seq != 5 {
		t.Fatalf("push without epoch or seq: %+v", last)
	}
	c.ws.Close()
	missed := publishN(t, n, "user.42", 5, 100)

	c2 := dial(t, n.wsURL())
	c2.send(fmt.Sprintf(`{"id":2,"type":"subscribe","topics":["user.42","news"],"since":{"user.42":{"offset":%d,"epoch":%q}}}`, last.Offset, last.Epoch))
	ok := c2.read()
	if ok.Type != "ok" || string(ok.ID) != "2" || !ok.Recovered["user.42"] || len(ok.Reasons) != 0 || len(ok.Recovered) != 1 {
		t.Fatalf("resume reply %+v", ok)
	}
	c2.checkPushes("user.42", missed, 5)
	live := publishN(t, n, "user.42", 105, 3)
	c2.checkPushes("user.42", live, 105)
	c2.expectNothing(100 * time.Millisecond)
}

// TestDurableSubscribeAgain: a subscribe to a durable topic the
// connection already has is answered ok (subscribe is idempotent), later
// commands are answered, and a push arrives once; with since, the topic
// it has is resumed again from that position.
func TestDurableSubscribeAgain(t *testing.T) {
	n := durableNode(t)
	c := dial(t, n.wsURL())
	for i, cmd := range []string{
		`{"id":1,"type":"subscribe","topics":["user.7"]}`,
		`{"id":2,"type":"subscribe","topics":["user.7"]}`,
		`{"id":3,"type":"subscribe","topics":["user.7","user.7"]}`,
		`{"id":4,"type":"ping"}`,
	} {
		if r := c.command(cmd); r.Type != "ok" || string(r.ID) != strconv.Itoa(i+1) {
			t.Fatalf("reply to %s: %+v", cmd, r)
		}
	}
	offs := publishN(t, n, "user.7", 0, 3)
	last := c.checkPushes("user.7", offs, 0)
	r := c.command(fmt.Sprintf(`{"id":5,"type":"subscribe","topics":["user.7"],"since":{"user.7":{"offset":%d,"epoch":%q}}}`, offs[0], last.Epoch))
	if r.Type != "ok" || !r.Recovered["user.7"] {
		t.Fatalf("resuming again: %+v", r)
	}
	c.checkPushes("user.7", offs[1:], 1)
	c.checkPushes("user.7", publishN(t, n, "user.7", 3, 1), 3)
	c.expectNothing(100 * time.Millisecond)
}

// TestDurableReasons: not_durable, epoch_changed and trimmed, and the
// subscription goes live in every case.
func TestDurableReasons(t *testing.T) {
	n := durableNode(t)
	// tick.* keeps 3 messages.
	offs := publishN(t, n, "tick.a", 0, 6)
	epoch := func() string {
		var r struct{ Epoch string }
		code, body := getHistory(t, n, "topic=tick.a")
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("history: %d %s", code, body)
		}
		return r.Epoch
	}()
	c := dial(t, n.wsURL())
	c.send(fmt.Sprintf(`{"id":"r","type":"subscribe","topics":["tick.a","news","user.9"],"since":{`+
		`"tick.a":{"offset":%d,"epoch":%q},"news":{"offset":3,"epoch":"x"},"user.9":{"offset":4,"epoch":"other"}}}`, offs[0], epoch))
	ok := c.read()
	want := map[string]string{"tick.a": "trimmed", "news": "not_durable", "user.9": "epoch_changed"}
	if ok.Type != "ok" || len(ok.Recovered) != 3 || fmt.Sprint(ok.Reasons) != fmt.Sprint(want) {
		t.Fatalf("reply %+v, want reasons %v", ok, want)
	}
	for topic := range want {
		if ok.Recovered[topic] {
			t.Fatalf("%s recovered", topic)
		}
	}
	// Live on all three.
	publishN(t, n, "tick.a", 6, 1)
	if m := c.readPush(); m.Topic != "tick.a" || m.Offset == 0 {
		t.Fatalf("live push %+v", m)
	}
	if code, _ := publishHTTP(t, n, `{"topic":"news","data":1}`); code != 200 {
		t.Fatal(code)
	}
	if m := c.readPush(); m.Topic != "news" || m.Offset != 0 || m.Epoch != "" {
		t.Fatalf("volatile push %+v", m)
	}
}

// TestDurableEpochChange: the stream is deleted behind pushd's back; the
// node recreates it, closes its subscribers with 4003, and a resume with
// the old epoch says epoch_changed.
func TestDurableEpochChange(t *testing.T) {
	n := durableNode(t)
	c := dial(t, n.wsURL()+"?topics=user.e")
	waitFor(t, "the history state", func() bool { return n.hub.Stats().DurableTopics == 1 })
	time.Sleep(50 * time.Millisecond)
	last := c.checkPushes("user.e", publishN(t, n, "user.e", 0, 2), 0)

	nc, err := nats.Connect(n.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	name := n.broker.(*jsbroker.Broker).StreamName("user.e")
	if err := js.DeleteStream(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ws.ReadMessage()
	if ce, ok := err.(interface{ Error() string }); !ok || !strings.Contains(ce.Error(), "4003") {
		t.Fatalf("read after the stream was deleted: %v, want close 4003", err)
	}
	c2 := dial(t, n.wsURL())
	r := c2.command(fmt.Sprintf(`{"id":1,"type":"subscribe","topics":["user.e"],"since":{"user.e":{"offset":%d,"epoch":%q}}}`, last.Offset, last.Epoch))
	if r.Recovered["user.e"] || r.Reasons["user.e"] != "epoch_changed" {
		t.Fatalf("resume after the epoch change: %+v", r)
	}
}

// TestDurableHistory: the history command and GET /v1/history.
func TestDurableHistory(t *testing.T) {
	n := durableNode(t, "--api-keys", "k1")
	publish := func(body string) string {
		code, b := publishHTTP(t, n, body, "Authorization", "Bearer k1")
		if code != 200 {
			t.Fatalf("publish %s: %d %s", body, code, b)
		}
		return b
	}
	for i := range 5 {
		publish(fmt.Sprintf(`{"topic":"user.h","data":{"n":%d}}`, i))
	}
	// Idempotent retries, and the batch answer.
	first := publish(`{"topic":"user.h","data":{"n":5},"id":"same"}`)
	again := publish(`{"topic":"user.h","data":{"n":5},"id":"same"}`)
	if !strings.Contains(again, `"duplicate":true`) || strings.Split(first, ",")[1] != strings.Split(again, ",")[1] {
		t.Fatalf("retry with the same id: %s then %s", first, again)
	}
	if b := publish(`{"messages":[{"topic":"user.h","data":{"n":6}},{"topic":"news","data":1}]}`); !strings.Contains(b, `"acks":[{"offset":`) || !strings.Contains(b, `},{}]`) {
		t.Fatalf("batch answer %s", b)
	}
	c := dial(t, n.wsURL())
	h := c.command(`{"id":"h","type":"history","topic":"user.h","limit":3}`)
	if h.Type != "ok" || len(h.Messages) != 3 || !h.More || h.Epoch == "" || string(h.Messages[0].Data) != `{"n":0}` {
		t.Fatalf("history reply %+v", h)
	}
	h2 := c.command(fmt.Sprintf(`{"id":"h2","type":"history","topic":"user.h","since":{"offset":%d,"epoch":%q}}`, h.Messages[2].Offset, h.Epoch))
	if len(h2.Messages) != 4 || h2.More || string(h2.Messages[3].Data) != `{"n":6}` {
		t.Fatalf("history after %d: %+v", h.Messages[2].Offset, h2)
	}
	for _, tc := range []struct{ cmd, code string }{
		{`{"id":1,"type":"history","topic":"news"}`, "not_durable"},
		{`{"id":1,"type":"history","topic":"user.h","since":{"offset":2,"epoch":"zz"}}`, "epoch_changed"},
		{`{"id":1,"type":"history","topic":"a..b"}`, "invalid_topic"},
	} {
		if r := c.command(tc.cmd); r.Type != "error" || r.Error.Code != tc.code {
			t.Errorf("%s: %+v", tc.cmd, r)
		}
	}
	code, body := getHistory(t, n, fmt.Sprintf("topic=user.h&since=%d&epoch=%s&limit=2", h.Messages[0].Offset, h.Epoch), "Authorization", "Bearer k1")
	var page msg
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Messages) != 2 || !page.More || string(page.Messages[0].Data) != `{"n":1}` {
		t.Fatalf("GET /v1/history: %d %s", code, body)
	}
	for q, want := range map[string]int{
		"topic=user.h":                     401, // no key
		"topic=news&x=1":                   404,
		"topic=user.h&since=3&epoch=other": 409,
		"topic=user.h&since=-1":            400,
		"topic=user.h&since=3":             400,
		"topic=user.h&limit=0":             400,
		"topic=user.h&limit=1001":          400,
		"topic=a..b":                       400,
	} {
		hdr := []string{"Authorization", "Bearer k1"}
		if want == 401 {
			hdr = nil
		}
		if code, body := getHistory(t, n, q, hdr...); code != want {
			t.Errorf("GET /v1/history?%s: %d %s, want %d", q, code, body, want)
		}
	}
}

// TestDurableBadInput: malformed positions get typed errors, the
// connection stays usable, and the server does not crash.
func TestDurableBadInput(t *testing.T) {
	n := durableNode(t)
	c := dial(t, n.wsURL())
	for _, tc := range []struct{ cmd, code string }{
		{`{"id":1,"type":"subscribe","topics":["user.1"],"since":[1]}`, "bad_json"},
		{`{"id":1,"type":"subscribe","topics":["user.1"],"since":{"user.1":{"offset":-4,"epoch":"e"}}}`, "bad_request"},
		{`{"id":1,"type":"subscribe","topics":["user.1"],"since":{"user.1":{"offset":1e30,"epoch":"e"}}}`, "bad_request"},
		{`{"id":1,"type":"subscribe","topics":["user.1"],"since":{"user.1":{"offset":18446744073709551616,"epoch":"e"}}}`, "bad_request"},
		{`{"id":1,"type":"subscribe","topics":["user.1"],"since":{"user.1":{"offset":5,"epoch":"no.dots"}}}`, "bad_request"},
		{`{"id":1,"type":"subscribe","topics":["user.1"],"since":{"user.1":{"offset":5}}}`, "bad_request"},
		{`{"id":1,"type":"subscribe","topics":["user.1"],"since":{"user.2":{"offset":5,"epoch":"e"}}}`, "bad_request"},
		{`{"id":1,"type":"history","topic":"user.1","limit":0}`, "bad_request"},
		{`{"id":1,"type":"history","topic":"user.1","limit":100000}`, "bad_request"},
		{`{"id":1,"type":"history","topic":"user.1","limit":"x"}`, "bad_json"},
	} {
		if r := c.command(tc.cmd); r.Type != "error" || r.Error.Code != tc.code || string(r.ID) != "1" {
			t.Errorf("%s: %+v", tc.cmd, r)
		}
	}
	// An unknown epoch and a position beyond the end are outcomes, not errors.
	r := c.command(`{"id":2,"type":"subscribe","topics":["user.1"],"since":{"user.1":{"offset":9007199254740991,"epoch":"nope"}}}`)
	if r.Type != "ok" || r.Reasons["user.1"] != "epoch_changed" {
		t.Fatalf("unknown epoch: %+v", r)
	}
	if r := c.command(`{"id":3,"type":"ping"}`); r.Type != "ok" {
		t.Fatalf("ping after bad input: %+v", r)
	}
}

// TestDurableRepliesInOrder: commands sent while a resume waits for its
// outcome are answered after it, in order.
func TestDurableRepliesInOrder(t *testing.T) {
	n := durableNode(t)
	publishN(t, n, "user.o", 0, 3)
	c := dial(t, n.wsURL())
	var b strings.Builder
	b.WriteString(`{"id":0,"type":"subscribe","topics":["user.o"],"since":{"user.o":{"offset":0}}}`)
	c.send(b.String())
	c.send(`{"id":1,"type":"ping"}`)
	c.send(`{"id":2,"type":"history","topic":"user.o"}`)
	c.send(`{"id":3,"type":"ping"}`)
	if m := c.read(); m.Type != "ok" || string(m.ID) != "0" || !m.Recovered["user.o"] {
		t.Fatalf("first reply %+v", m)
	}
	for i := range 3 {
		if m := c.readPush(); m.Offset == 0 || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("replay %d: %+v", i, m)
		}
	}
	for _, id := range []string{"1", "2", "3"} {
		if m := c.read(); m.Type != "ok" || string(m.ID) != id {
			t.Fatalf("reply %+v, want ok %s", m, id)
		}
	}
}

// TestHistoryNeedsJetStream: with --nats pointing at a server without
// JetStream, --history refuses to start with a one-line error.
func TestHistoryNeedsJetStream(t *testing.T) {
	ns := startPlainNATS(t)
	cfg, err := parseConfig([]string{"--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--insecure",
		"--nats", ns.ClientURL(), "--history", "user.>:10"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.build()
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(cfg, p, quietLog())
	if err == nil {
		n.close()
		t.Fatal("started without JetStream")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "JetStream") {
		t.Fatalf("error %q is not one line naming JetStream", msg)
	}
}

func getHistory(t *testing.T, n *node, query string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.apiURL()+"/v1/history?"+query, nil)
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

// startPlainNATS starts a NATS server without JetStream on loopback.
func startPlainNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestDurablePersonalTopic: an authenticated client whose token grants no
// subscribe pattern may still resume its own personal topic and read its
// history (it is subscribed to it at open), but not another user's.
func TestDurablePersonalTopic(t *testing.T) {
	k := newKeys(t)
	n := durableNode(t, "--jwt-secret-files", k.secretFile)
	tok := k.hs(t, claims("fay", time.Now().Add(time.Hour), func(c jwt.MapClaims) {
		c["pushd"] = map[string]any{"subscribe": []string{"news.>"}}
	}))
	c := dial(t, n.wsURL()+"?token="+tok)
	waitFor(t, "the personal topic's history state", func() bool { return n.hub.Stats().DurableTopics == 1 })
	time.Sleep(100 * time.Millisecond) // the first position lookup of the personal topic
	last := c.checkPushes("user.fay", publishN(t, n, "user.fay", 0, 3), 0)
	c.ws.Close()
	missed := publishN(t, n, "user.fay", 3, 4)

	c2 := dial(t, n.wsURL()+"?token="+tok)
	r := c2.command(fmt.Sprintf(`{"id":1,"type":"subscribe","topics":["user.fay"],"since":{"user.fay":{"offset":%d,"epoch":%q}}}`, last.Offset, last.Epoch))
	if r.Type != "ok" || !r.Recovered["user.fay"] {
		t.Fatalf("resume of the personal topic: %+v", r)
	}
	c2.checkPushes("user.fay", missed, 3)
	if h := c2.command(`{"id":2,"type":"history","topic":"user.fay","limit":2}`); h.Type != "ok" || len(h.Messages) != 2 {
		t.Fatalf("history of the personal topic: %+v", h)
	}
	for _, cmd := range []string{
		`{"id":3,"type":"history","topic":"user.gus"}`,
		`{"id":3,"type":"subscribe","topics":["user.gus"],"since":{"user.gus":{"offset":0}}}`,
	} {
		if r := c2.command(cmd); r.Type != "error" || r.Error.Code != "forbidden" {
			t.Fatalf("%s: %+v, want forbidden", cmd, r)
		}
	}
}

// TestDurableSSEResume: an SSE stream's durable pushes carry an event id
// naming their position; a stream that reconnects with it in
// Last-Event-ID (as EventSource does) first gets an ok saying the topic
// recovered, then exactly what it missed, then the live pushes. A topic of
// another history pattern on the same stream starts live (epoch_changed).
func TestDurableSSEResume(t *testing.T) {
	n := durableNode(t)
	s := dialSSE(t, n, "/sse?topics=user.s,tick.x")
	if m := s.read(); m.Type != "welcome" {
		t.Fatalf("first event %+v", m)
	}
	waitFor(t, "the history state", func() bool { return n.hub.Stats().DurableTopics == 2 })
	time.Sleep(100 * time.Millisecond) // the first position lookups (?topics= does not wait for them)
	offs := publishN(t, n, "user.s", 0, 3)
	var lastID string
	for i, off := range offs {
		ev, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		var m msg
		if err := json.Unmarshal([]byte(ev.data), &m); err != nil || m.Offset != off || m.Epoch == "" ||
			ev.id != fmt.Sprintf("user.s:%s:%d", m.Epoch, off) || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("event %d: id %q data %s (%v)", i, ev.id, ev.data, err)
		}
		lastID = ev.id
	}
	s.c.Close()
	missed := publishN(t, n, "user.s", 3, 5)

	s2 := dialSSE(t, n, "/sse?topics=user.s,tick.x", "Last-Event-ID: "+lastID)
	if m := s2.read(); m.Type != "welcome" {
		t.Fatalf("first event %+v", m)
	}
	ok := s2.read()
	if ok.Type != "ok" || !ok.Recovered["user.s"] || ok.Recovered["tick.x"] || ok.Reasons["tick.x"] != "epoch_changed" {
		t.Fatalf("outcome %+v", ok)
	}
	for i, off := range missed {
		if m := s2.read(); m.Offset != off || string(m.Data) != fmt.Sprintf(`{"n":%d}`, 3+i) {
			t.Fatalf("replayed %d: %+v", i, m)
		}
	}
	live := publishN(t, n, "user.s", 8, 1)
	if m := s2.read(); m.Offset != live[0] {
		t.Fatalf("live push %+v", m)
	}
}

// TestDurableIDPerTopic: an idempotency id belongs to its topic: the same
// id on another topic of the same history pattern is another message,
// stored and delivered (JetStream deduplicates per stream, and one stream
// keeps every topic of the pattern).
func TestDurableIDPerTopic(t *testing.T) {
	n := durableNode(t)
	c := dial(t, n.wsURL())
	if r := c.command(`{"id":1,"type":"subscribe","topics":["user.b"]}`); r.Type != "ok" {
		t.Fatal(r)
	}
	if code, b := publishHTTP(t, n, `{"topic":"user.a","data":"for a","id":"order-1"}`); code != 200 {
		t.Fatal(code, b)
	}
	code, b := publishHTTP(t, n, `{"topic":"user.b","data":"for b","id":"order-1"}`)
	if code != 200 || strings.Contains(b, `"duplicate":true`) {
		t.Fatalf("the same id on another topic: %d %s", code, b)
	}
	if m := c.readPush(); m.Topic != "user.b" || string(m.Data) != `"for b"` {
		t.Fatalf("push %+v", m)
	}
	// A retry on the same topic is still a duplicate; with the topics
	// form the id applies to each topic.
	if code, b := publishHTTP(t, n, `{"topic":"user.b","data":"for b","id":"order-1"}`); code != 200 || !strings.Contains(b, `"duplicate":true`) {
		t.Fatalf("retry: %d %s", code, b)
	}
	for range 2 {
		code, b := publishHTTP(t, n, `{"topics":["user.c","user.b"],"data":"both","id":"order-2"}`)
		if code != 200 {
			t.Fatalf("topics form: %d %s", code, b)
		}
	}
	if m := c.readPush(); string(m.Data) != `"both"` {
		t.Fatalf("push %+v", m)
	}
	c.expectNothing(200 * time.Millisecond)
}

// TestDurableHistoryCutOverHTTP: GET /v1/history is cut at 256 KiB of
// payloads like the history command, with "more".
func TestDurableHistoryCutOverHTTP(t *testing.T) {
	n := durableNode(t)
	big := strings.Repeat("x", 100<<10)
	for i := range 5 {
		if code, b := publishHTTP(t, n, fmt.Sprintf(`{"topic":"user.big","data":"%d%s"}`, i, big)); code != 200 {
			t.Fatal(code, b)
		}
	}
	c := dial(t, n.wsURL())
	h := c.command(`{"id":1,"type":"history","topic":"user.big"}`)
	code, body := getHistory(t, n, "topic=user.big")
	var page msg
	if err := json.Unmarshal([]byte(body), &page); err != nil || code != 200 {
		t.Fatalf("GET /v1/history: %d %v", code, err)
	}
	if len(h.Messages) != 2 || !h.More || len(page.Messages) != 2 || !page.More {
		t.Fatalf("history command: %d messages more=%v; GET /v1/history: %d messages more=%v", len(h.Messages), h.More, len(page.Messages), page.More)
	}
}

// TestDurablePositions: the ok of a subscribe says where each durable
// topic went live without a replay, so a client that got no message yet
// (or whose position did not recover) can still resume: here it leaves
// before any message, two are published, and it resumes from the
// position of the ok with both replayed; a resume from another epoch gets
// recovered:false with the position it is live from.
func TestDurablePositions(t *testing.T) {
	n := durableNode(t)
	publishN(t, n, "user.p", 0, 3) // a history before the client came
	c := dial(t, n.wsURL())
	r := c.command(`{"id":1,"type":"subscribe","topics":["user.p","news"]}`)
	at, ok := r.Positions["user.p"]
	if r.Type != "ok" || !ok || at.Offset != 3 || at.Epoch == "" || len(r.Positions) != 1 || r.Recovered != nil {
		t.Fatalf("subscribe reply %+v", r)
	}
	c.ws.Close()
	missed := publishN(t, n, "user.p", 3, 2)

	c2 := dial(t, n.wsURL())
	r = c2.command(fmt.Sprintf(`{"id":2,"type":"subscribe","topics":["user.p"],"since":{"user.p":{"offset":%d,"epoch":%q}}}`, at.Offset, at.Epoch))
	if r.Type != "ok" || !r.Recovered["user.p"] || len(r.Positions) != 0 {
		t.Fatalf("resume reply %+v", r)
	}
	c2.checkPushes("user.p", missed, 3)

	c3 := dial(t, n.wsURL())
	r = c3.command(`{"id":3,"type":"subscribe","topics":["user.p"],"since":{"user.p":{"offset":2,"epoch":"another"}}}`)
	if at := r.Positions["user.p"]; r.Recovered["user.p"] || r.Reasons["user.p"] != "epoch_changed" || at.Offset != missed[1] || at.Epoch == "" {
		t.Fatalf("resume from another epoch %+v", r)
	}
	c3.checkPushes("user.p", publishN(t, n, "user.p", 5, 1), 5)
}

// TestDurableSSEPersonalResume: an authenticated stream's personal topic
// resumes from Last-Event-ID like the topics of ?topics= (before, it
// started live: the messages published while away were lost silently),
// also when ?topics= names others.
func TestDurableSSEPersonalResume(t *testing.T) {
	k := newKeys(t)
	n := durableNode(t, "--jwt-secret-files", k.secretFile)
	tok := k.hs(t, claims("fay", time.Now().Add(time.Hour)))
	s := dialSSE(t, n, "/sse?token="+tok)
	if m := s.read(); m.Type != "welcome" {
		t.Fatalf("first %+v", m)
	}
	waitFor(t, "the history state", func() bool { return n.hub.Stats().DurableTopics == 1 })
	time.Sleep(100 * time.Millisecond) // the first position lookup (the stream's start does not wait for it)
	var lastID string
	for range publishN(t, n, "user.fay", 0, 2) {
		ev, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		lastID = ev.id
	}
	s.c.Close()
	epoch := strings.Split(lastID, ":")[1]
	for i, query := range []string{"/sse?token=" + tok, "/sse?topics=news.a&token=" + tok} {
		missed := publishN(t, n, "user.fay", 2+2*i, 2)
		s2 := dialSSE(t, n, query, "Last-Event-ID: "+lastID)
		if m := s2.read(); m.Type != "welcome" {
			t.Fatalf("%s: first %+v", query, m)
		}
		if m := s2.read(); m.Type != "ok" || !m.Recovered["user.fay"] || len(m.Recovered) != 1 {
			t.Fatalf("%s: %+v, want user.fay recovered", query, m)
		}
		for j, off := range missed {
			if m := s2.read(); m.Offset != off || string(m.Data) != fmt.Sprintf(`{"n":%d}`, 2+2*i+j) {
				t.Fatalf("%s: replayed %d: %+v", query, j, m)
			}
		}
		lastID = fmt.Sprintf("user.fay:%s:%d", epoch, missed[1])
		s2.c.Close()
	}
}

// historyEpoch reads the current epoch of a durable topic's history.
func historyEpoch(t *testing.T, n *node, topic string) string {
	t.Helper()
	var r struct{ Epoch string }
	code, body := getHistory(t, n, "topic="+topic)
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("history: %d %s", code, body)
	}
	return r.Epoch
}

// TestDurablePositionFromAnotherTopic: a position taken from another
// topic of the same pattern (docs/protocol.md §3a) recovers on a node
// that does not follow the topic, also when the topic has no message at
// or before it (its first one came right after it), and for a topic with
// no message at all resumed from the end of the history. Before, both
// said trimmed although nothing was lost.
func TestDurablePositionFromAnotherTopic(t *testing.T) {
	n := durableNode(t)
	aOffs := publishN(t, n, "user.a", 0, 3) // offsets 1..3
	pos := aOffs[2]
	ep := historyEpoch(t, n, "user.a")
	cOffs := publishN(t, n, "user.c", 0, 2) // user.c's first messages ever: offsets 4, 5

	code, body := getHistory(t, n, fmt.Sprintf("topic=user.c&since=%d&epoch=%s", pos, ep))
	var page msg
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || page.Trimmed || len(page.Messages) != 2 {
		t.Errorf("GET /v1/history user.c since %d (user.a's position): %d %s; want both messages, no trimmed", pos, code, body)
	}

	c := dial(t, n.wsURL())
	r := c.command(fmt.Sprintf(`{"id":1,"type":"subscribe","topics":["user.c"],"since":{"user.c":{"offset":%d,"epoch":%q}}}`, pos, ep))
	if !r.Recovered["user.c"] {
		t.Errorf("resume user.c from user.a's position %d: recovered %v reasons %v; want recovered and offsets %v replayed", pos, r.Recovered, r.Reasons, cOffs)
	} else {
		c.checkPushes("user.c", cOffs, 0)
	}

	// A topic with no message at all, resumed from the head of its pattern.
	c2 := dial(t, n.wsURL())
	r = c2.command(fmt.Sprintf(`{"id":1,"type":"subscribe","topics":["user.empty"],"since":{"user.empty":{"offset":%d,"epoch":%q}}}`, cOffs[1], ep))
	if !r.Recovered["user.empty"] {
		t.Errorf("resume of an empty topic from the pattern's head: recovered %v reasons %v; want recovered", r.Recovered, r.Reasons)
	}
}
