package sio

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unsafe"

	gobwas "github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

func TestHandshake(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	cl, open := l.open(t)
	if !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	var hs struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}
	if err := json.Unmarshal([]byte(open[1:]), &hs); err != nil {
		t.Fatal(err)
	}
	if len(hs.SID) != 22 || hs.Upgrades == nil || len(hs.Upgrades) != 0 || hs.PingInterval != 25000 || hs.PingTimeout != 20000 || hs.MaxPayload != 64<<10 {
		t.Fatalf("handshake %+v", hs)
	}
	cl.none()
	if l.metrics.Open.Load() != 1 {
		t.Fatalf("open connections %d", l.metrics.Open.Load())
	}
}

func TestHandshakeRefusals(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	for _, tt := range []struct {
		query, body string
	}{
		{"?transport=websocket", codec.EIOErrUnsupportedProtocolVersion},
		{"?EIO=3&transport=websocket", codec.EIOErrUnsupportedProtocolVersion},
		{"?EIO=4", codec.EIOErrUnknownTransport},
		{"?EIO=4&transport=webtransport", codec.EIOErrUnknownTransport},
		{"?EIO=4&transport=polling", codec.EIOErrBadRequest},
		{"?EIO=4&transport=websocket&sid=abc", codec.EIOErrUnknownSID},
	} {
		cl, head := l.request(t, DefaultPath+tt.query)
		if !strings.HasPrefix(head, "HTTP/1.1 400 ") || !strings.Contains(head, tt.body) || !cl.tr.closed {
			t.Errorf("%s: answered %q (closed %v), want 400 with %s", tt.query, head, cl.tr.closed, tt.body)
		}
	}
}

func TestConnectAnonymous(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	cl, _ := l.open(t)
	cl.send("40")
	got := cl.text()
	var ack struct{ SID string }
	if !strings.HasPrefix(got, "40") || json.Unmarshal([]byte(got[2:]), &ack) != nil || len(ack.SID) != 22 {
		t.Fatalf("CONNECT answered %q", got)
	}
	if strings.Contains(got, "pid") {
		t.Fatalf("a pid without connection state recovery: %q", got)
	}
	// An auth payload is accepted and ignored without token checks.
	cl2, _ := l.open(t)
	cl2.send(`40{"token":"whatever","x":1}`)
	if got := cl2.text(); !strings.HasPrefix(got, `40{"sid":`) {
		t.Fatalf("CONNECT with auth answered %q", got)
	}
}

func TestConnectToken(t *testing.T) {
	l := newTestLoop(Config{}, tokenAdmission(time.Time{}), session.Config{})
	for _, tt := range []struct {
		auth, want string
	}{
		{`{"token":"good"}`, `40{"sid":"`},
		{`{"token":"bad"}`, `44{"message":"invalid token: malformed","data":{"code":"unauthorized"}}`},
		{``, `44{"message":"missing token","data":{"code":"unauthorized"}}`},
		{`{}`, `44{"message":"missing token","data":{"code":"unauthorized"}}`},
		{`{"token":5}`, `44{"message":"token must be a string","data":{"code":"bad_json"}}`},
	} {
		cl, _ := l.open(t)
		cl.send("40" + tt.auth)
		if got := cl.text(); !strings.HasPrefix(got, tt.want) {
			t.Errorf("CONNECT %s answered %q, want %s", tt.auth, got, tt.want)
		}
		cl.none()
	}
	if l.smet.Forbidden.Load() != 3 {
		t.Errorf("refused tokens counted %d, want 3", l.smet.Forbidden.Load())
	}
}

// A token the upgrade request proved serves a CONNECT without one; a
// CONNECT's own token wins.
func TestConnectRequestToken(t *testing.T) {
	adm := tokenAdmission(time.Time{})
	adm.Request = func(req *codec.HTTPRequest) (session.Identity, *codec.HandshakeError) {
		switch req.Authorization {
		case "Bearer good":
			return testIdentity{sub: "from-request"}, nil
		case "":
			return nil, nil
		}
		return nil, &codec.HandshakeError{Status: 401, Reason: "invalid token"}
	}
	l := newTestLoop(Config{}, adm, session.Config{})
	withAuth := func(h string) string {
		return strings.Replace(upgradeHead, "Host: x\r\n", "Host: x\r\nAuthorization: "+h+"\r\n", 1)
	}
	// Bad token on the upgrade: 401 before the 101.
	tr := &memTransport{}
	c := l.Open(tr)
	c.Feed([]byte(strings.Replace(withAuth("Bearer nope"), "%s", DefaultPath+"?EIO=4&transport=websocket", 1)))
	if !strings.HasPrefix(tr.out.String(), "HTTP/1.1 401 ") {
		t.Fatalf("bad upgrade token answered %q", tr.out.String())
	}
	// Good token on the upgrade, none in the CONNECT.
	tr = &memTransport{}
	c = l.Open(tr)
	c.Feed([]byte(strings.Replace(withAuth("Bearer good"), "%s", DefaultPath+"?EIO=4&transport=websocket", 1)))
	head := tr.out.String()
	tr.out.Next(strings.Index(head, "\r\n\r\n") + 4)
	cl := &client{t: t, c: c, tr: tr}
	cl.text() // open
	cl.send("40")
	if got := cl.text(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("CONNECT after a good upgrade token answered %q", got)
	}
	if id := c.Proto().(*wsConn).sock.sess.Identity(); id == nil || id.Subject() != "from-request" {
		t.Fatalf("identity %v", id)
	}
}

func TestConnectRefusals(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	cl, _ := l.open(t)
	cl.send("40/admin,")
	if got := cl.text(); got != `44/admin,{"message":"Invalid namespace","data":{"code":"invalid_namespace"}}` {
		t.Fatalf("CONNECT to /admin answered %q", got)
	}
	// Events for a namespace not joined are dropped, as the reference does.
	cl.send(`420["subscribe",["a"]]`)
	cl.send(`42/admin,1["subscribe",["a"]]`)
	cl.none()
	cl.send("40")
	cl.text()
	cl.send("40")
	if got := cl.text(); got != `44{"message":"already connected","data":{"code":"bad_request"}}` {
		t.Fatalf("a second CONNECT answered %q", got)
	}
}

func TestEvents(t *testing.T) {
	var published []string
	scfg := session.Config{Publish: func(topic string, data []byte) error {
		published = append(published, topic+" "+string(data))
		return nil
	}}
	l := newTestLoop(Config{}, tokenAdmission(time.Time{}), scfg)
	cl := l.connect(t, `{"token":"good"}`)
	for _, tt := range []struct{ in, want string }{
		// No hub in this test loop: a valid subscribe fails upstream.
		{`421["subscribe",["a.b"]]`, `431[{"error":{"code":"internal","message":"this endpoint has no topics"}}]`},
		{`422["subscribe",["bad..topic"]]`, `432[{"error":{"code":"internal","message":"this endpoint has no topics"}}]`},
		{`423["unsubscribe",["a.b"]]`, `433[{"ok":true}]`},
		{`424["subscribe",[]]`, `434[{"error":{"code":"bad_request","message":"topics is empty"}}]`},
		{`425["publish",{"topic":"allowed","data":{"x":1}}]`, `435[{"ok":true}]`},
		{`426["publish",{"topic":"other","data":1}]`, `436[{"error":{"code":"forbidden","message":"the token does not allow publishing to other"}}]`},
		{`427["nope",1]`, `437[{"error":{"code":"unknown_command","message":"unknown event \"nope\""}}]`},
		{`42["nope"]`, `42["error",{"error":{"code":"unknown_command","message":"unknown event \"nope\""}}]`},
		{`42["unsubscribe",["x"]]`, ``},
		{`4312[]`, ``}, // an ACK from the client: nothing asked it
	} {
		cl.send(tt.in)
		if tt.want == "" {
			cl.none()
			continue
		}
		if got := cl.text(); got != tt.want {
			t.Errorf("%s answered %s, want %s", tt.in, got, tt.want)
		}
	}
	if len(published) != 1 || published[0] != `allowed {"x":1}` {
		t.Fatalf("published %q", published)
	}
	if n := l.smet.Commands.Load(); n != 9 {
		t.Errorf("commands counted %d, want 9", n)
	}
}

// A binary event gets a refusal on its ack id; its attachment frames are
// dropped and the connection stays.
func TestBinaryEventRefused(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	cl := l.connect(t, "")
	cl.send(`451-7["publish",{"_placeholder":true,"num":0}]`)
	cl.frame(gobwas.OpBinary, []byte{1, 2, 3})
	if got := cl.text(); got != `437[{"error":{"code":"bad_request","message":"binary events are not supported; send JSON"}}]` {
		t.Fatalf("binary event answered %q", got)
	}
	cl.send(`451-["x",{"_placeholder":true,"num":0}]`)
	cl.frame(gobwas.OpBinary, []byte{1})
	if got := cl.text(); !strings.HasPrefix(got, `42["error",{"error":{"code":"bad_request"`) {
		t.Fatalf("binary event without ack answered %q", got)
	}
	cl.none()
	if cl.c.State() != conn.StateOpen {
		t.Fatal("closed")
	}
}

// Malformed packets end the connection with 1002 and a reason; a client
// that had joined the namespace first gets a DISCONNECT so socket.io-client
// does not reconnect and repeat.
func TestProtocolErrors(t *testing.T) {
	for _, tt := range []struct {
		in, reason string
		joined     bool
	}{
		{"", "malformed Engine.IO packet", false},
		{"x", "malformed Engine.IO packet", true},
		{"bAAEC", "malformed Engine.IO packet", true},
		{"2", "invalid heartbeat direction", true},
		{"2probe", "invalid heartbeat direction", false},
		{"5", "unexpected Engine.IO packet upgrade", true},
		{"0", "unexpected Engine.IO packet open", true},
		{"49", "malformed Socket.IO packet", true},
		{`42{"a":1}`, "malformed Socket.IO packet", true},
		{`42["connect"]`, "malformed Socket.IO packet", true},
		{`45x-[]`, "malformed Socket.IO packet", false},
	} {
		l := newTestLoop(Config{}, Admission{}, session.Config{})
		var cl *client
		if tt.joined {
			cl = l.connect(t, "")
		} else {
			cl, _ = l.open(t)
		}
		cl.send(tt.in)
		if tt.joined {
			if got := cl.text(); got != "41" {
				t.Errorf("%q: got %q before the close, want the DISCONNECT 41", tt.in, got)
			}
		}
		code, reason := cl.closed()
		if code != codec.StatusProtocolError || reason != tt.reason {
			t.Errorf("%q: closed %d %q, want 1002 %q", tt.in, code, reason, tt.reason)
		}
		if l.metrics.ProtocolErrors.Load() != 1 {
			t.Errorf("%q: protocol errors %d", tt.in, l.metrics.ProtocolErrors.Load())
		}
	}
}

// The client's Engine.IO close packet closes the connection (1000) without
// a DISCONNECT; its pong and noop do nothing.
func TestClientClose(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	cl := l.connect(t, "")
	cl.send("3")
	cl.send("6")
	cl.none()
	cl.send("1")
	if code, _ := cl.closed(); code != codec.StatusNormal {
		t.Fatalf("closed %d", code)
	}
}

// A message over MaxPayload is refused before it is buffered: 1009.
func TestMaxPayload(t *testing.T) {
	l := newTestLoop(Config{MaxPayload: 100}, Admission{}, session.Config{})
	cl := l.connect(t, "")
	cl.send(`42["subscribe",["` + strings.Repeat("a", 100) + `"]]`)
	if code, _ := cl.closed(); code != codec.StatusMessageTooBig {
		t.Fatalf("closed %d, want 1009", code)
	}
}

// Engine.IO's ping every PingInterval, whatever the traffic; silence for
// PingTimeout after one closes with 4001.
func TestHeartbeat(t *testing.T) {
	l := newTestLoop(fastConfig, Admission{}, session.Config{})
	cl := l.connect(t, "")
	for range 9 {
		l.advance(10 * time.Millisecond)
		cl.send(`42["unsubscribe",["x"]]`)
	}
	cl.none()
	l.advance(20 * time.Millisecond)
	if got := cl.text(); got != "2" {
		t.Fatalf("at the ping interval: %q", got)
	}
	cl.send("3")
	l.advance(60 * time.Millisecond)
	cl.none()
	l.advance(50 * time.Millisecond)
	if got := cl.text(); got != "2" {
		t.Fatalf("at the second ping interval: %q", got)
	}
	l.advance(60 * time.Millisecond)
	if code, reason := cl.closed(); code != codec.StatusHeartbeatTimeout || reason != "no pong" {
		t.Fatalf("closed %d %q", code, reason)
	}
	if !cl.tr.closed {
		t.Fatal("TCP connection kept after the pong timeout")
	}
}

// An engine that does not join the namespace in ConnectTimeout is closed,
// even while it answers pings.
func TestConnectTimeout(t *testing.T) {
	l := newTestLoop(fastConfig, Admission{}, session.Config{})
	cl, _ := l.open(t)
	for range 2 { // answer the pings, never CONNECT
		l.advance(110 * time.Millisecond) // timers fire up to a tick late
		if got := cl.text(); got != "2" {
			t.Fatalf("ping %q", got)
		}
		cl.send("3")
	}
	l.advance(100 * time.Millisecond)
	if code, reason := cl.closed(); code != codec.StatusPolicyViolation || reason != "connect timeout" {
		t.Fatalf("closed %d %q", code, reason)
	}
	// Joined: no timeout.
	cl = l.connect(t, "")
	l.advance(250 * time.Millisecond)
	if got := cl.text(); got != "2" {
		t.Fatalf("ping %q", got)
	}
	cl.send("3")
	l.advance(110 * time.Millisecond)
	if got := cl.text(); got != "2" || cl.c.State() != conn.StateOpen {
		t.Fatalf("ping %q, state %v", got, cl.c.State())
	}
}

// The client leaving the main namespace ends the connection (1000), as
// socket.io-client closes the engine when its last namespace leaves.
func TestClientDisconnect(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	cl := l.connect(t, "")
	cl.send("41/admin,") // not joined: dropped
	cl.none()
	cl.send("41")
	if code, _ := cl.closed(); code != codec.StatusNormal {
		t.Fatalf("closed %d", code)
	}
}

// Credentials that expire close the connection with 4002 and no DISCONNECT:
// socket.io-client reconnects, with a fresh token if auth is a function.
func TestTokenExpiry(t *testing.T) {
	l := newTestLoop(fastConfig, tokenAdmission(time.Unix(1_000_000, 0).Add(150*time.Millisecond)), session.Config{})
	cl := l.connect(t, `{"token":"soon"}`)
	l.advance(110 * time.Millisecond)
	if got := cl.text(); got != "2" {
		t.Fatalf("ping %q", got)
	}
	cl.send("3")
	l.advance(60 * time.Millisecond)
	if code, reason := cl.closed(); code != codec.StatusTokenExpired || reason != "token expired" {
		t.Fatalf("closed %d %q", code, reason)
	}
	if l.smet.TokenExpired.Load() != 1 {
		t.Fatal("expiry not counted")
	}
}

// A flood of events is answered rate_limited, then closed with 1008 after a
// DISCONNECT.
func TestRateLimit(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{CommandBurst: 3, CommandRate: 1})
	cl := l.connect(t, "") // the CONNECT refilled the budget
	var oks, limited int
	for i := 0; cl.c.State() == conn.StateOpen && i < 20; i++ {
		cl.send(`421["unsubscribe",["x"]]`)
	}
	for {
		got := cl.text()
		if got == "41" {
			break
		}
		switch {
		case got == `431[{"ok":true}]`:
			oks++
		case strings.Contains(got, "rate_limited"):
			limited++
		default:
			t.Fatalf("unexpected %q", got)
		}
	}
	if code, _ := cl.closed(); code != codec.StatusPolicyViolation || oks != 3 || limited != 3 {
		t.Fatalf("closed %d after %d ok and %d rate_limited", code, oks, limited)
	}
}

// Draining closes with 1001 and no DISCONNECT, so clients reconnect
// elsewhere.
func TestDrain(t *testing.T) {
	l := newTestLoop(Config{}, Admission{}, session.Config{})
	cl := l.connect(t, "")
	l.CloseAll(codec.StatusGoingAway, "server shutting down")
	if code, _ := cl.closed(); code != codec.StatusGoingAway {
		t.Fatalf("closed %d", code)
	}
}

// A Socket.IO connection is one allocation of the WebSocket state, the
// session and the Socket.IO state; it stays in the 112-byte size class,
// 32 bytes over the v1 connection's 80 (the opening request's identity and
// the connect deadline).
func TestWSConnSize(t *testing.T) {
	if got := unsafe.Sizeof(wsConn{}); got > 112 {
		t.Fatalf("wsConn is %d bytes, over its 112-byte size class", got)
	}
}
