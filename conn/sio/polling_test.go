package sio

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

// The handshake over polling: the open packet with the WebSocket upgrade
// offered, no caching, and the Origin back for a cross-origin page.
func TestPollingHandshake(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	hc := nd.dial(0)
	hc.request(pollRequest("GET", "", "", "Origin: https://app.example"))
	r := hc.resp()
	var hs struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}
	if r.status != 200 || !strings.HasPrefix(r.body, "0{") || json.Unmarshal([]byte(r.body[1:]), &hs) != nil {
		t.Fatalf("handshake answered %d %q", r.status, r.body)
	}
	if len(hs.SID) != 22 || len(hs.Upgrades) != 1 || hs.Upgrades[0] != "websocket" || hs.PingInterval != 25000 || hs.PingTimeout != 20000 || hs.MaxPayload != 64<<10 {
		t.Fatalf("handshake %+v", hs)
	}
	for k, v := range map[string]string{
		"Content-Type": "text/plain; charset=UTF-8", "Cache-Control": "no-store",
		"Access-Control-Allow-Origin": "https://app.example", "Vary": "Origin", "Connection": "keep-alive",
	} {
		if r.header[k] != v {
			t.Errorf("%s: %q, want %q", k, r.header[k], v)
		}
	}
	if _, ok := r.header["Access-Control-Allow-Credentials"]; ok {
		t.Error("credentials allowed across origins")
	}
	if nd.sm.PollingSessions.Load() != 1 || nd.sm.Handshakes.Load() != 1 {
		t.Fatalf("sessions %d, handshakes %d", nd.sm.PollingSessions.Load(), nd.sm.Handshakes.Load())
	}
	// The connection is kept alive: a second request on it works.
	hc.request(pollRequest("GET", "", ""))
	if r := hc.resp(); r.status != 200 {
		t.Fatalf("second request on the connection: %d", r.status)
	}
}

// Requests Engine.IO refuses get the reference server's status and JSON,
// and the connection stays usable.
func TestPollingRefusals(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	sid := nd.handshake(0)
	for _, tt := range []struct {
		name, req string
		status    int
		body      string
	}{
		{"unknown sid GET", pollRequest("GET", "nope", ""), 400, codec.EIOErrUnknownSID},
		{"unknown sid POST", pollRequest("POST", "nope", "3"), 400, codec.EIOErrUnknownSID},
		{"POST handshake", pollRequest("POST", "", "40"), 400, codec.EIOErrBadHandshakeMethod},
		{"binary POST", strings.Replace(pollRequest("POST", sid, "40"), "text/plain;charset=UTF-8", "application/octet-stream", 1), 400, codec.EIOErrBadRequest},
		{"EIO 3", strings.Replace(pollRequest("GET", "", ""), "EIO=4", "EIO=3", 1), 400, codec.EIOErrUnsupportedProtocolVersion},
		{"transport", strings.Replace(pollRequest("GET", "", ""), "polling", "flash", 1), 400, codec.EIOErrUnknownTransport},
	} {
		hc := nd.dial(0)
		hc.request(tt.req)
		r := hc.resp()
		if r.status != tt.status || tt.body != "" && (r.body != tt.body || r.header["Content-Type"] != "application/json") {
			t.Errorf("%s: %d %q (%s)", tt.name, r.status, r.body, r.header["Content-Type"])
		}
		if hc.tr.closed || hc.c.State() == conn.StateClosed {
			t.Errorf("%s: connection closed", tt.name)
		}
	}
	hc := nd.dial(0)
	hc.request(pollRequest("HEAD", sid, ""))
	if out := hc.tr.out.String(); !strings.HasPrefix(out, "HTTP/1.1 400 ") || !strings.HasSuffix(out, "\r\n\r\n") {
		t.Errorf("HEAD answered %q", out)
	}
	// None of it touched the session.
	if r := nd.post(0, sid, "40"); r.body != "ok" {
		t.Fatalf("the session after the refusals: %d %q", r.status, r.body)
	}
}

// The whole life of a polling client: CONNECT, a subscribe with its ack,
// pushes answering a held poll, several pushes in one payload.
func TestPollingSubscribeAndPush(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	if r := nd.post(0, sid, `420["subscribe",["news"]]`); r.body != "ok" {
		t.Fatalf("POST subscribe: %d %q", r.status, r.body)
	}
	if r := nd.pollNow(0, sid); r.body != `430[{"ok":true}]` {
		t.Fatalf("subscribe answered %q", r.body)
	}
	held := nd.poll(0, sid)
	held.noResp()
	if held.c.State() != conn.StateRequest {
		t.Fatalf("poll not held: %v", held.c.State())
	}
	if err := nd.hub.Publish("news", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	nd.runUntil("the push", func() bool { return held.tr.out.Len() > 0 })
	if r := held.resp(); r.body != `42["message",{"topic":"news","data":{"n":1}}]` {
		t.Fatalf("push answered %q", r.body)
	}
	// The poll's connection reads the next request.
	if held.c.State() != conn.StateHandshake {
		t.Fatalf("after the answer: %v", held.c.State())
	}
	// Pushes that come while no poll waits are queued, and go in one payload.
	for _, d := range []string{"1", "2", "3"} {
		if err := nd.hub.Publish("news", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	nd.runUntil("three queued pushes", func() bool {
		v := nd.engine(sid)
		return v != nil && len(v.out) == 3
	})
	r := nd.pollNow(0, sid)
	if got := packets(r.body); len(got) != 3 || got[2] != `42["message",{"topic":"news","data":3}]` {
		t.Fatalf("payload %q", r.body)
	}
}

// The heartbeat over polling: a ping answers the held poll every ping
// interval; a POSTed pong keeps the session; silence closes it (the poll
// gets Engine.IO's close packet, and the sid is unknown afterwards).
func TestPollingHeartbeat(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, fastConfig, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	held := nd.poll(0, sid)
	nd.advance(50 * time.Millisecond)
	held.noResp()
	nd.advance(60 * time.Millisecond)
	if r := held.resp(); r.body != "2" {
		t.Fatalf("at the ping interval: %q", r.body)
	}
	if r := nd.post(0, sid, "3"); r.body != "ok" {
		t.Fatal("pong refused")
	}
	held = nd.poll(0, sid)
	nd.advance(60 * time.Millisecond)
	held.noResp()
	nd.advance(50 * time.Millisecond)
	if r := held.resp(); r.body != "2" {
		t.Fatalf("second ping: %q", r.body)
	}
	// No pong: closed within the ping timeout.
	held = nd.poll(0, sid)
	nd.advance(70 * time.Millisecond)
	if r := held.resp(); r.body != "1" {
		t.Fatalf("no pong: %q", r.body)
	}
	if nd.metrics.HeartbeatTimeouts.Load() != 1 {
		t.Fatal("timeout not counted")
	}
	if r := nd.pollNow(0, sid); r.status != 400 || r.body != codec.EIOErrUnknownSID {
		t.Fatalf("after the close: %d %q", r.status, r.body)
	}
	if nd.sm.PollingSessions.Load() != 0 {
		t.Fatalf("%d sessions left", nd.sm.PollingSessions.Load())
	}
}

// A session that closes while no poll waits keeps its final packets for
// the close timeout, then is gone.
func TestPollingCloseLinger(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	if r := nd.post(0, sid, `42{"bad":1}`); r.status != 200 || r.body != "ok" {
		t.Fatalf("malformed packet: %d %q", r.status, r.body)
	}
	// Malformed: a DISCONNECT (no reconnection), then the close packet in
	// the next answer.
	if r := nd.pollNow(0, sid); r.body != "41" {
		t.Fatalf("final payload %q", r.body)
	}
	if r := nd.pollNow(0, sid); r.body != "1" {
		t.Fatalf("final payload %q", r.body)
	}
	if r := nd.pollNow(0, sid); r.status != 400 || r.body != codec.EIOErrUnknownSID {
		t.Fatalf("after the final poll: %d %q", r.status, r.body)
	}
	// Nobody polls: gone after the close timeout.
	sid = nd.join(0, "")
	if r := nd.post(0, sid, "1"); r.body != "ok" {
		t.Fatalf("close packet: %q", r.body)
	}
	nd.advance(6 * time.Second)
	if r := nd.pollNow(0, sid); r.status != 400 {
		t.Fatalf("after the linger: %d %q", r.status, r.body)
	}
	if nd.sm.PollingSessions.Load() != 0 {
		t.Fatalf("%d sessions left", nd.sm.PollingSessions.Load())
	}
}

// Two polls at once break Engine.IO's rule: the second gets 400, the first
// Engine.IO's close packet, and the session ends.
func TestPollingOverlap(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	first := nd.poll(0, sid)
	first.noResp()
	second := nd.poll(0, sid)
	if r := second.resp(); r.status != 400 || r.body != codec.EIOErrBadRequest {
		t.Fatalf("second poll: %d %q", r.status, r.body)
	}
	if r := first.resp(); r.body != "1" {
		t.Fatalf("first poll: %q", r.body)
	}
	if r := nd.post(0, sid, "3"); r.status != 400 || r.body != codec.EIOErrUnknownSID {
		t.Fatalf("POST after the overlap: %d %q", r.status, r.body)
	}
}

// A client that leaves while its poll is held ends its session, as with
// the reference server: without a DISCONNECT (it may reconnect), and with
// its subscriptions gone.
func TestPollingClientLeavesHeldPoll(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	nd.post(0, sid, `421["subscribe",["x"]]`)
	nd.pollNow(0, sid)
	held := nd.poll(0, sid)
	held.c.Closed() // the TCP connection went away
	if st := nd.hub.Stats(); st.Subscriptions != 0 {
		t.Fatalf("%d subscriptions after the client left", st.Subscriptions)
	}
	if r := nd.pollNow(0, sid); r.body != "1" {
		t.Fatalf("after the client left a poll: %q", r.body)
	}
}

// POSTs: several packets in one payload, each answered in order; a
// payload over maxPayload is refused with 413 before it is read, and the
// session stays; binary attachments are dropped.
func TestPollingPost(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{MaxPayload: 200}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	if r := nd.post(0, sid, "3\x1e421[\"unsubscribe\",[\"a\"]]\x1e422[\"nope\"]\x1e6"); r.body != "ok" {
		t.Fatalf("POST: %d %q", r.status, r.body)
	}
	got := packets(nd.pollNow(0, sid).body)
	if len(got) != 2 || got[0] != `431[{"ok":true}]` || !strings.Contains(got[1], "unknown_command") {
		t.Fatalf("answers %q", got)
	}
	hc := nd.dial(0)
	hc.request(pollRequest("POST", sid, strings.Repeat("x", 201)))
	if r := hc.resp(); r.status != 413 {
		t.Fatalf("oversized POST: %d %q", r.status, r.body)
	}
	if r := nd.post(0, sid, `451-3["publish",{"_placeholder":true,"num":0}]`+"\x1ebAQID"); r.body != "ok" {
		t.Fatalf("binary event: %d %q", r.status, r.body)
	}
	if r := nd.pollNow(0, sid); !strings.Contains(r.body, `433[{"error":{"code":"bad_request"`) {
		t.Fatalf("binary event answered %q", r.body)
	}
	// Payloads that break the protocol end the session: the POST is taken,
	// the next poll gets a DISCONNECT and the close packet.
	for _, bad := range []string{"", "7", "2", "5", "0{}", "42[oops"} {
		sid := nd.join(0, "")
		if r := nd.post(0, sid, bad); r.status != 200 || r.body != "ok" {
			t.Errorf("POST %q: %d %q", bad, r.status, r.body)
		}
		if r := nd.pollNow(0, sid); r.body != "41" {
			t.Errorf("after POST %q: %q", bad, r.body)
		}
	}
	if got := nd.metrics.ProtocolErrors.Load(); got != 6 {
		t.Errorf("protocol errors %d, want 6", got)
	}
}

// A client that does not poll cannot make the server hold more than the
// outbound cap: past it the session is closed as a slow consumer.
func TestPollingSlowConsumer(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{CommandBurst: 1000, CommandRate: 1000}, false)
	sid := nd.join(0, "")
	if r := nd.post(0, sid, `42["subscribe",["big"]]`); r.body != "ok" {
		t.Fatal(r.body)
	}
	eng := nd.engine(sid)
	data := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	for range 20 { // 1.3 MiB against the 1 MiB cap
		if err := nd.hub.Publish("big", data); err != nil {
			t.Fatal(err)
		}
	}
	nd.runUntil("the slow consumer", func() bool { return eng.flags&eClosing != 0 })
	if eng.outBytes > nd.loops[0].Config().MaxOutbound || nd.metrics.SlowConsumers.Load() != 1 {
		t.Fatalf("queued %d bytes, slow consumers %d", eng.outBytes, nd.metrics.SlowConsumers.Load())
	}
	if r := nd.pollNow(0, sid); r.body != "1" {
		t.Fatalf("final payload %q", r.body)
	}
}

// A flood of events is answered rate_limited, then the session ends with a
// DISCONNECT, as over WebSocket.
func TestPollingRateLimit(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{CommandBurst: 3, CommandRate: 1}, false)
	sid := nd.join(0, "")
	flood := strings.Repeat(`421["unsubscribe",["x"]]`+"\x1e", 9) + "3"
	if r := nd.post(0, sid, flood); r.body != "ok" {
		t.Fatalf("flood: %d %q", r.status, r.body)
	}
	got := packets(nd.pollNow(0, sid).body)
	if len(got) != 7 || got[6] != "41" || strings.Count(strings.Join(got, ""), "rate_limited") != 3 {
		t.Fatalf("answers %q", got)
	}
	if r := nd.pollNow(0, sid); r.body != "1" {
		t.Fatalf("then %q", r.body)
	}
}

// A poll or POST that reaches another loop of the node is served by the
// session's loop, through Execute both ways.
func TestPollingOtherLoop(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 2, Config{}, Admission{}, session.Config{}, false)
	sid := nd.handshake(0)
	if r := nd.post(1, sid, "40"); r.status != 200 || r.body != "ok" {
		t.Fatalf("POST on the other loop: %d %q", r.status, r.body)
	}
	if r := nd.pollNow(1, sid); !strings.HasPrefix(r.body, `40{"sid":"`) {
		t.Fatalf("poll on the other loop: %q", r.body)
	}
	// A poll held for the other loop is answered when packets come.
	held := nd.poll(1, sid)
	held.noResp()
	if r := nd.post(0, sid, `421["unsubscribe",["x"]]`); r.body != "ok" {
		t.Fatal(r.body)
	}
	if r := held.resp(); r.body != `431[{"ok":true}]` {
		t.Fatalf("held poll answered %q", r.body)
	}
	if nd.sm.Relayed.Load() != 3 {
		t.Fatalf("relayed %d, want 3", nd.sm.Relayed.Load())
	}
	// The client leaves while its poll waits on the other loop: packets
	// taken for it would be lost, so the session ends, as when a poll held
	// on its own loop is dropped (the client reconnects).
	held = nd.poll(1, sid)
	held.c.Closed()
	nd.run() // the owner hears of it through Execute
	if r := nd.pollNow(0, sid); r.body != "1" {
		t.Fatalf("after an orphaned poll: %d %q, want the close packet", r.status, r.body)
	}
}

// Two nodes on one bus, each knowing only its own sessions: a request for
// a session of the other node is forwarded to its mailbox and answered
// with the owner's reply; an unknown sid is unknown everywhere.
func TestPollingOtherNode(t *testing.T) {
	bus := newTestBus(t)
	a := newPollNode(t, bus, 1, Config{}, Admission{}, session.Config{}, true)
	b := newPollNode(t, bus, 1, Config{}, Admission{}, session.Config{}, true)
	sid := a.handshake(0)
	post := b.dial(0)
	post.request(pollRequest("POST", sid, "40"))
	waitBoth := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			a.run()
			b.run()
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitBoth("the forwarded POST", func() bool { return post.tr.out.Len() > 0 })
	if r := post.resp(); r.status != 200 || r.body != "ok" {
		t.Fatalf("forwarded POST: %d %q", r.status, r.body)
	}
	held := b.poll(0, sid)
	waitBoth("the forwarded poll", func() bool { return held.tr.out.Len() > 0 })
	if r := held.resp(); !strings.HasPrefix(r.body, `40{"sid":"`) {
		t.Fatalf("forwarded poll: %q", r.body)
	}
	// A forwarded poll held at the owner, answered by a POST on the owner.
	held = b.poll(0, sid)
	waitBoth("the poll to reach its owner", func() bool { return a.loops[0].ep.engines[0].wait.ok() })
	if r := a.post(0, sid, `421["unsubscribe",["x"]]`); r.body != "ok" {
		t.Fatal(r.body)
	}
	waitBoth("the held forwarded poll", func() bool { return held.tr.out.Len() > 0 })
	if r := held.resp(); r.body != `431[{"ok":true}]` {
		t.Fatalf("held forwarded poll: %q", r.body)
	}
	if b.sm.Forwarded.Load() != 3 || a.sm.RelayServed.Load() != 3 {
		t.Fatalf("forwarded %d, served %d", b.sm.Forwarded.Load(), a.sm.RelayServed.Load())
	}
	// Unknown everywhere: 400 after the broker's grace for a new mailbox.
	unknown := b.poll(0, "NoSuchSessionAnywhere1")
	waitBoth("the unknown sid", func() bool { return unknown.tr.out.Len() > 0 })
	if r := unknown.resp(); r.status != 400 || r.body != codec.EIOErrUnknownSID {
		t.Fatalf("unknown sid: %d %q", r.status, r.body)
	}
	// A sid that cannot be a mailbox name is refused without asking.
	if r := b.pollNow(0, "../etc"); r.status != 400 || r.body != codec.EIOErrUnknownSID {
		t.Fatalf("bad sid: %d %q", r.status, r.body)
	}
	// The session ends: its mailbox closes, and its sid is unknown on both.
	if r := a.post(0, sid, "1"); r.body != "ok" {
		t.Fatal(r.body)
	}
	a.pollNow(0, sid) // the final packets
	gone := b.poll(0, sid)
	waitBoth("the closed session", func() bool { return gone.tr.out.Len() > 0 })
	if r := gone.resp(); r.status != 400 || r.body != codec.EIOErrUnknownSID {
		t.Fatalf("closed session through the other node: %d %q", r.status, r.body)
	}
}

// A CORS preflight gets the methods and the headers it asked for; an Origin
// the admission refuses gets 403, at the preflight and at the handshake.
func TestPollingCORS(t *testing.T) {
	adm := Admission{Request: func(req *codec.HTTPRequest) (session.Identity, *codec.HandshakeError) {
		if req.Origin == "https://evil.example" {
			return nil, &codec.HandshakeError{Status: 403, Reason: "origin not allowed"}
		}
		return nil, nil
	}}
	nd := newPollNode(t, newTestBus(t), 1, Config{}, adm, session.Config{}, false)
	hc := nd.dial(0)
	hc.request(pollRequest("OPTIONS", "", "", "Origin: https://app.example",
		"Access-Control-Request-Method: POST", "Access-Control-Request-Headers: x-custom, authorization"))
	r := hc.resp()
	if r.status != 200 || r.header["Access-Control-Allow-Origin"] != "https://app.example" ||
		r.header["Access-Control-Allow-Methods"] != "GET, POST" || r.header["Access-Control-Allow-Headers"] != "x-custom, authorization" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	for _, m := range []string{"OPTIONS", "GET"} {
		hc := nd.dial(0)
		hc.request(pollRequest(m, "", "", "Origin: https://evil.example"))
		if r := hc.resp(); r.status != 403 || r.header["Access-Control-Allow-Origin"] != "https://evil.example" {
			t.Fatalf("%s from a refused origin: %d %v", m, r.status, r.header)
		}
	}
	if nd.sm.Handshakes.Load() != 0 {
		t.Fatal("a refused origin opened a session")
	}
}

// Authentication over polling: the CONNECT's token, its expiry (4002:
// Engine.IO's close without a DISCONNECT, so the client reconnects), and
// the connect timeout.
func TestPollingTokenAndTimeouts(t *testing.T) {
	exp := time.Unix(1_000_000, 0).Add(150 * time.Millisecond)
	nd := newPollNode(t, newTestBus(t), 1, fastConfig, tokenAdmission(exp), session.Config{}, false)
	sid := nd.handshake(0)
	nd.post(0, sid, `40{"token":"bad"}`)
	if r := nd.pollNow(0, sid); !strings.HasPrefix(r.body, `44{"message":"invalid token`) {
		t.Fatalf("bad token: %q", r.body)
	}
	nd.post(0, sid, `40{"token":"soon"}`)
	if r := nd.pollNow(0, sid); !strings.HasPrefix(r.body, `40{"sid":"`) {
		t.Fatalf("good token: %q", r.body)
	}
	held := nd.poll(0, sid)
	nd.advance(110 * time.Millisecond)
	if r := held.resp(); r.body != "2" {
		t.Fatalf("ping: %q", r.body)
	}
	nd.post(0, sid, "3")
	held = nd.poll(0, sid)
	nd.advance(60 * time.Millisecond)
	if r := held.resp(); r.body != "1" {
		t.Fatalf("token expiry: %q", r.body)
	}
	if nd.smet.TokenExpired.Load() != 1 {
		t.Fatal("expiry not counted")
	}
	// No CONNECT within the connect timeout, pongs or not.
	sid = nd.handshake(0)
	for range 2 {
		held := nd.poll(0, sid)
		nd.advance(110 * time.Millisecond)
		if r := held.resp(); r.body != "2" {
			t.Fatalf("ping: %q", r.body)
		}
		nd.post(0, sid, "3")
	}
	held = nd.poll(0, sid)
	nd.advance(110 * time.Millisecond)
	if r := held.resp(); r.body != "1" {
		t.Fatalf("connect timeout: %q", r.body)
	}
}

// A graceful stop ends every polling session: a held poll gets Engine.IO's
// close packet (socket.io-client reconnects, to another node), and the
// connection closes after the answer.
func TestPollingDrain(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	held := nd.poll(0, sid)
	idle := nd.join(0, "")
	nd.loops[0].CloseAll(codec.StatusGoingAway, "server shutting down")
	if r := held.resp(); r.body != "1" || r.header["Connection"] != "close" {
		t.Fatalf("held poll at the drain: %q %v", r.body, r.header)
	}
	if r := nd.pollNow(0, idle); r.body != "1" {
		t.Fatalf("idle session at the drain: %q", r.body)
	}
	if nd.sm.PollingSessions.Load() != 0 {
		t.Fatalf("%d sessions left", nd.sm.PollingSessions.Load())
	}
}
