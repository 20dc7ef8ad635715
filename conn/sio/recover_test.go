package sio

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics/broker"
)

// connectAnswer decodes a CONNECT's answer 40{"sid":…,"pid":…}.
func connectAnswer(t *testing.T, got string) (sid, pid string) {
	t.Helper()
	var a struct{ SID, PID string }
	if !strings.HasPrefix(got, "40{") || json.Unmarshal([]byte(got[2:]), &a) != nil || len(a.SID) != 22 {
		t.Fatalf("CONNECT answered %q", got)
	}
	return a.SID, a.PID
}

// wsJoin opens a WebSocket engine on loop i of nd and CONNECTs with auth;
// it returns the client and the CONNECT's answer.
func (nd *pollNode) wsJoin(i int, auth string) (*client, string) {
	nd.t.Helper()
	tr := &memTransport{}
	c := nd.loops[i].Open(tr)
	c.Feed([]byte(strings.Replace(upgradeHead, "%s", DefaultPath+"?EIO=4&transport=websocket", 1)))
	head := tr.out.String()
	tr.out.Next(strings.Index(head, "\r\n\r\n") + 4)
	cl := &client{t: nd.t, c: c, tr: tr}
	cl.text() // the open packet
	cl.send("40" + auth)
	nd.runUntil("the CONNECT's answer", func() bool { return tr.out.Len() > 0 })
	return cl, cl.text()
}

var recoveryConfig = Config{Recovery: 2 * time.Minute}

// With recovery on, a session that ends without the client leaving keeps
// its topics under its pid; a CONNECT naming the pid and an offset gets
// them back once, from the same node. On topics without history no push
// can be vouched for: the answer carries a new pid (recovered false), the
// subscriptions are back anyway.
func TestRecoveryVolatile(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 2, recoveryConfig, Admission{}, session.Config{}, false)
	ws, got := nd.wsJoin(0, "")
	_, pid := connectAnswer(t, got)
	if len(pid) != 22 {
		t.Fatalf("no pid with recovery on: %q", got)
	}
	ws.send(`421["subscribe",["a","b"]]`)
	ws.text()
	ws.c.Closed() // the connection is lost
	if nd.sm.Kept.Load() != 1 || nd.hub.Stats().Subscriptions != 0 {
		t.Fatalf("kept %d, subscriptions %d", nd.sm.Kept.Load(), nd.hub.Stats().Subscriptions)
	}
	// The client comes back on the other loop, over polling.
	sid := nd.handshake(1)
	nd.post(1, sid, `40{"pid":"`+pid+`","offset":"a:E1:7"}`)
	nd.runUntil("the recovery", func() bool { return nd.sm.NotRecovered.Load() == 1 })
	_, pid2 := connectAnswer(t, nd.pollNow(1, sid).body)
	if pid2 == pid || len(pid2) != 22 || nd.sm.Kept.Load() != 0 {
		t.Fatalf("pid %q after %q, kept %d", pid2, pid, nd.sm.Kept.Load())
	}
	if st := nd.hub.Stats(); st.Subscriptions != 2 {
		t.Fatalf("%d subscriptions restored, want 2", st.Subscriptions)
	}
	// Taken once: asking again starts a new session.
	ws2, got := nd.wsJoin(0, `{"pid":"`+pid+`","offset":"a:E1:7"}`)
	if _, p := connectAnswer(t, got); p == pid || nd.sm.NotRecovered.Load() != 2 {
		t.Fatalf("second recovery: %q", got)
	}
	ws2.send(`421["unsubscribe",["x"]]`)
	if got := ws2.text(); got != `431[{"ok":true}]` {
		t.Fatalf("the new session: %q", got)
	}
}

// An offset that does not parse is ignored, as SSE ignores such a
// Last-Event-ID: the session's topics come back, live, under a new pid.
func TestRecoveryUnparsableOffset(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 2, recoveryConfig, Admission{}, session.Config{}, false)
	ws, got := nd.wsJoin(0, "")
	_, pid := connectAnswer(t, got)
	ws.send(`421["subscribe",["a","b"]]`)
	ws.text()
	ws.c.Closed()
	sid := nd.handshake(1)
	nd.post(1, sid, `40{"pid":"`+pid+`","offset":"not an id"}`)
	nd.runUntil("the recovery", func() bool { return nd.sm.NotRecovered.Load() == 1 })
	if _, pid2 := connectAnswer(t, nd.pollNow(1, sid).body); pid2 == pid || nd.sm.Kept.Load() != 0 {
		t.Fatalf("pid %q after %q, kept %d", pid2, pid, nd.sm.Kept.Load())
	}
	if st := nd.hub.Stats(); st.Subscriptions != 2 {
		t.Fatalf("%d subscriptions restored, want 2", st.Subscriptions)
	}
}

// Nothing is kept when the client leaves or the server ends the session
// with a DISCONNECT, without recovery, or past the recovery time; a
// different user cannot take the state.
func TestRecoveryNotKept(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, Config{Recovery: time.Second}, tokenAdmission(time.Time{}), session.Config{}, false)
	ws, _ := nd.wsJoin(0, `{"token":"good"}`)
	ws.send("41")
	ws.c.Closed()
	ws, _ = nd.wsJoin(0, `{"token":"good"}`)
	ws.send(`42{"bad":1}`) // a DISCONNECT, then close 1002
	ws.c.Closed()
	if nd.sm.Kept.Load() != 0 {
		t.Fatalf("kept %d after leaving", nd.sm.Kept.Load())
	}
	ws, got := nd.wsJoin(0, `{"token":"good"}`)
	_, pid := connectAnswer(t, got)
	ws.c.Closed()
	if nd.sm.Kept.Load() != 1 {
		t.Fatal("a lost connection kept nothing")
	}
	// Another user ("soon" is user s) asks for u's state: a new session.
	_, got = nd.wsJoin(0, `{"token":"soon","pid":"`+pid+`","offset":"a:E:1"}`)
	if _, p := connectAnswer(t, got); p == pid {
		t.Fatal("another user recovered the session")
	}
	ws, got = nd.wsJoin(0, `{"token":"good"}`)
	_, pid = connectAnswer(t, got)
	ws.c.Closed()
	nd.advance(1100 * time.Millisecond)
	if nd.sm.Kept.Load() != 0 {
		t.Fatalf("kept %d past the recovery time", nd.sm.Kept.Load())
	}
	if _, got := nd.wsJoin(0, `{"token":"good","pid":"`+pid+`","offset":"a:E:1"}`); strings.Contains(got, pid) {
		t.Fatal("recovered past the recovery time")
	}
	off := newPollNode(t, newTestBus(t), 1, Config{}, Admission{}, session.Config{}, false)
	if _, got := off.wsJoin(0, `{"pid":"x","offset":"a:E:1"}`); strings.Contains(got, "pid") {
		t.Fatalf("recovery off: %q", got)
	}
}

// A polling session that ends by the heartbeat keeps its state, and another
// node gets it through the pid's mailbox.
func TestRecoveryOtherNode(t *testing.T) {
	bus := newTestBus(t)
	cfg := recoveryConfig
	cfg.PingInterval, cfg.PingTimeout = fastConfig.PingInterval, fastConfig.PingTimeout
	a := newPollNode(t, bus, 1, cfg, Admission{}, session.Config{}, true)
	b := newPollNode(t, bus, 1, cfg, Admission{}, session.Config{}, true)
	sid := a.handshake(0)
	a.post(0, sid, "40")
	_, pid := connectAnswer(t, a.pollNow(0, sid).body)
	a.post(0, sid, `421["subscribe",["news"]]`)
	a.pollNow(0, sid)
	a.advance(150 * time.Millisecond) // a ping
	a.advance(100 * time.Millisecond) // no pong: closed, kept
	if a.sm.Kept.Load() != 1 {
		t.Fatalf("kept %d after the pong timeout", a.sm.Kept.Load())
	}
	ws, got := func() (*client, string) {
		tr := &memTransport{}
		c := b.loops[0].Open(tr)
		c.Feed([]byte(strings.Replace(upgradeHead, "%s", DefaultPath+"?EIO=4&transport=websocket", 1)))
		head := tr.out.String()
		tr.out.Next(strings.Index(head, "\r\n\r\n") + 4)
		cl := &client{t: t, c: c, tr: tr}
		cl.text()
		cl.send(`40{"pid":"` + pid + `","offset":"news:E:3"}`)
		deadline := time.Now().Add(5 * time.Second)
		for tr.out.Len() == 0 && time.Now().Before(deadline) {
			a.run()
			b.run()
			time.Sleep(time.Millisecond)
		}
		return cl, cl.text()
	}()
	if _, p := connectAnswer(t, got); p == pid || b.sm.NotRecovered.Load() != 1 || a.sm.Kept.Load() != 0 {
		t.Fatalf("answer %q; kept on a: %d", got, a.sm.Kept.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.hub.Stats().Subscriptions != 1 && time.Now().Before(deadline) {
		b.run()
		time.Sleep(time.Millisecond)
	}
	if st := b.hub.Stats(); st.Subscriptions != 1 {
		t.Fatalf("%d subscriptions restored on the other node", st.Subscriptions)
	}
	ws.c.Closed()
}

// Polling sids and recovery pids are credentials: random, not sequential,
// and usable as mailbox names.
func TestSecretID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := secretID()
		if len(id) != 22 || !broker.ValidMailboxName(id) || seen[id] {
			t.Fatalf("id %q (seen %v)", id, seen[id])
		}
		seen[id] = true
	}
	// No two consecutive IDs share a long prefix, as NUIDs do.
	a, b := secretID(), secretID()
	if a[:12] == b[:12] {
		t.Fatalf("%q and %q share a prefix", a, b)
	}
}
