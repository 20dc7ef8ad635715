package sio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	gobwas "github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

// memTransport is an in-memory conn.Transport that records what is written.
type memTransport struct {
	out    bytes.Buffer
	closed bool
}

func (t *memTransport) Write(p []byte) (int, error) { return t.out.Write(p) }
func (t *memTransport) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		t.out.Write(b)
		n += len(b)
	}
	return n, nil
}
func (t *memTransport) OutboundBuffered() int { return 0 }
func (t *memTransport) Fd() int               { return -1 }
func (t *memTransport) Close() error          { t.closed = true; return nil }

const testTick = 10 * time.Millisecond

// testLoop is a conn.Loop with the Socket.IO endpoint at DefaultPath, no
// topic hub (subscribes fail with internal) and a clock that moves only
// when told.
type testLoop struct {
	*conn.Loop
	now     time.Time
	metrics *conn.Metrics
	smet    *session.Metrics
}

func newTestLoop(cfg Config, adm Admission, scfg session.Config) *testLoop {
	t := &testLoop{now: time.Unix(1_000_000, 0), metrics: new(conn.Metrics), smet: new(session.Metrics)}
	t.Loop = conn.NewLoop(conn.LoopConfig{
		Tick:    testTick,
		Metrics: t.metrics,
		Clock:   func() time.Time { return t.now },
		Routes:  []conn.Route{Route(DefaultPath, cfg, adm, scfg, t.smet)},
	}, nil)
	return t
}

// fastConfig has timers short enough for tests: ping every 100 ms, 50 ms
// to answer, 300 ms to CONNECT.
var fastConfig = Config{PingInterval: 100 * time.Millisecond, PingTimeout: 50 * time.Millisecond, ConnectTimeout: 300 * time.Millisecond}

// advance moves the loop's clock forward by d and runs due timers.
func (l *testLoop) advance(d time.Duration) {
	l.now = l.now.Add(d)
	l.Advance(l.now)
}

// client is a test connection: its conn, the transport, and the frames
// the server wrote that the test has not read yet.
type client struct {
	t  testing.TB
	c  *conn.Conn
	tr *memTransport
}

const upgradeHead = "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// request sends an upgrade for target and returns the client and what
// the server answered before any frame.
func (l *testLoop) request(t *testing.T, target string) (*client, string) {
	t.Helper()
	tr := &memTransport{}
	c := l.Open(tr)
	req := strings.Replace(upgradeHead, "%s", target, 1)
	if _, closeNow := c.Feed([]byte(req)); closeNow {
		tr.closed = true // what netpoll does when Feed says so
	}
	cl := &client{t: t, c: c, tr: tr}
	head := tr.out.String()
	if i := strings.Index(head, "\r\n\r\n"); i >= 0 && strings.HasPrefix(head, "HTTP/1.1 101") {
		tr.out.Next(i + 4)
		head = head[:i+4]
	} else {
		tr.out.Reset()
	}
	return cl, head
}

// open upgrades and reads the Engine.IO open packet.
func (l *testLoop) open(t *testing.T) (*client, string) {
	t.Helper()
	cl, head := l.request(t, DefaultPath+"?EIO=4&transport=websocket")
	if !strings.HasPrefix(head, "HTTP/1.1 101 ") {
		t.Fatalf("no 101: %q", head)
	}
	return cl, cl.text()
}

// connect opens an engine and joins the main namespace with auth (nil for
// none), and returns the client after the CONNECT's answer.
func (l *testLoop) connect(t *testing.T, auth string) *client {
	t.Helper()
	cl, _ := l.open(t)
	cl.send("40" + auth)
	if got := cl.text(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("CONNECT answered %q", got)
	}
	return cl
}

// send feeds one masked text frame from the client.
func (cl *client) send(s string) { cl.frame(gobwas.OpText, []byte(s)) }

// frame feeds one masked frame from the client.
func (cl *client) frame(op gobwas.OpCode, payload []byte) {
	cl.t.Helper()
	mask := [4]byte{9, 8, 7, 6}
	b := []byte{0x80 | byte(op), 0x80}
	switch n := len(payload); {
	case n < 126:
		b[1] |= byte(n)
	case n < 1<<16:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	codec.Unmask(b[start:], mask, 0)
	if n, _ := cl.c.Feed(b); n != len(b) && cl.c.State() == conn.StateOpen {
		cl.t.Fatalf("frame consumed %d of %d", n, len(b))
	}
}

// next returns the next frame the server wrote, or ok false if none.
func (cl *client) next() (op gobwas.OpCode, payload []byte, ok bool) {
	if cl.tr.out.Len() == 0 {
		return 0, nil, false
	}
	h, err := gobwas.ReadHeader(&cl.tr.out)
	if err != nil || h.Length > int64(cl.tr.out.Len()) || h.Masked || !h.Fin {
		cl.t.Fatalf("reading a server frame: %+v, %v", h, err)
	}
	return h.OpCode, cl.tr.out.Next(int(h.Length)), true
}

// text returns the next frame, which must be a text frame.
func (cl *client) text() string {
	cl.t.Helper()
	op, p, ok := cl.next()
	if !ok || op != gobwas.OpText {
		cl.t.Fatalf("want a text frame, got op %v %q (any: %v)", op, p, ok)
	}
	return string(p)
}

// none checks that the server wrote nothing more.
func (cl *client) none() {
	cl.t.Helper()
	if op, p, ok := cl.next(); ok {
		cl.t.Fatalf("unexpected frame op %v %q", op, p)
	}
}

// closed returns the code and reason of the next frame, which must be a
// close frame.
func (cl *client) closed() (codec.StatusCode, string) {
	cl.t.Helper()
	op, p, ok := cl.next()
	if !ok || op != gobwas.OpClose {
		cl.t.Fatalf("want a close frame, got op %v %q (any: %v)", op, p, ok)
	}
	code, reason, err := codec.ParseClosePayload(p)
	if err != nil {
		cl.t.Fatal(err)
	}
	return code, string(reason)
}

// testIdentity is a session.Identity that may subscribe to anything and
// publish to "allowed".
type testIdentity struct {
	sub string
	exp time.Time
}

func (i testIdentity) Subject() string          { return i.sub }
func (i testIdentity) Expiry() time.Time        { return i.exp }
func (i testIdentity) CanSubscribe(string) bool { return true }
func (i testIdentity) CanPublish(t string) bool { return t == "allowed" }

// tokenAdmission accepts the token "good" (as user "u") and "soon" (as "s",
// expiring at exp), and refuses anything else, including no token.
func tokenAdmission(exp time.Time) Admission {
	return Admission{Token: func(tok string) (session.Identity, error) {
		switch tok {
		case "good":
			return testIdentity{sub: "u"}, nil
		case "soon":
			return testIdentity{sub: "s", exp: exp}, nil
		case "":
			return nil, errors.New("missing token")
		}
		return nil, errors.New("invalid token: malformed")
	}}
}
