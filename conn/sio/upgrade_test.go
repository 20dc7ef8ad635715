package sio

import (
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics"
)

// upgradeWS opens the WebSocket of an upgrade of sid on loop i and returns
// it with the head the server answered (101 or a refusal).
func (nd *pollNode) upgradeWS(i int, sid string) (*client, string) {
	nd.t.Helper()
	tr := &memTransport{}
	c := nd.loops[i].Open(tr)
	req := strings.Replace(upgradeHead, "%s", DefaultPath+"?EIO=4&transport=websocket&sid="+sid, 1)
	if _, closeNow := c.Feed([]byte(req)); closeNow {
		tr.closed = true
	}
	nd.run()
	head := tr.out.String()
	if i := strings.Index(head, "\r\n\r\n"); i >= 0 && strings.HasPrefix(head, "HTTP/1.1 101") {
		tr.out.Next(i + 4)
		head = head[:i+4]
	} else {
		tr.out.Reset()
	}
	return &client{t: nd.t, c: c, tr: tr}, head
}

// The upgrade on the session's loop: the probe, the noop that returns the
// held poll, polls answered at once meanwhile, then "5" moves the session
// onto the WebSocket with what it had queued; pushes, events and the
// heartbeat continue there, and polling for the sid is over.
func TestPollingUpgrade(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 1, fastConfig, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	nd.post(0, sid, `420["subscribe",["news"]]`)
	if r := nd.pollNow(0, sid); r.body != `430[{"ok":true}]` {
		t.Fatalf("subscribe: %q", r.body)
	}
	held := nd.poll(0, sid)
	ws, head := nd.upgradeWS(0, sid)
	if !strings.HasPrefix(head, "HTTP/1.1 101 ") {
		t.Fatalf("upgrade answered %q", head)
	}
	held.noResp() // polling goes on during the probe
	ws.send("2probe")
	nd.run()
	if got := ws.text(); got != "3probe" {
		t.Fatalf("probe answered %q", got)
	}
	if r := held.resp(); r.body != "6" {
		t.Fatalf("the held poll at the probe: %q", r.body)
	}
	if r := nd.pollNow(0, sid); r.body != "6" {
		t.Fatalf("a poll during the upgrade: %q", r.body)
	}
	if err := nd.hub.Publish("news", []byte("1")); err != nil {
		t.Fatal(err)
	}
	nd.runUntil("the push queued for polling", func() bool { return len(nd.engine(sid).out) == 1 })
	ws.send("5")
	nd.run()
	if got := ws.text(); got != `42["message",{"topic":"news","data":1}]` {
		t.Fatalf("the queued push after the upgrade: %q", got)
	}
	if nd.sm.Upgrades.Load() != 1 || nd.sm.PollingSessions.Load() != 0 {
		t.Fatalf("upgrades %d, polling sessions %d", nd.sm.Upgrades.Load(), nd.sm.PollingSessions.Load())
	}
	if err := nd.hub.Publish("news", []byte("2")); err != nil {
		t.Fatal(err)
	}
	nd.runUntil("the push on the WebSocket", func() bool { return ws.tr.out.Len() > 0 })
	if got := ws.text(); got != `42["message",{"topic":"news","data":2}]` {
		t.Fatalf("a push after the upgrade: %q", got)
	}
	ws.send(`421["unsubscribe",["x"]]`)
	if got := ws.text(); got != `431[{"ok":true}]` {
		t.Fatalf("an event after the upgrade: %q", got)
	}
	if r := nd.pollNow(0, sid); r.status != 400 || r.body != codec.EIOErrUnknownSID {
		t.Fatalf("polling after the upgrade: %d %q", r.status, r.body)
	}
	// The WebSocket's heartbeat serves the session now.
	nd.advance(110 * time.Millisecond)
	if got := ws.text(); got != "2" {
		t.Fatalf("ping on the WebSocket: %q", got)
	}
	ws.send("3")
	// The client leaves: the session ends with the WebSocket.
	ws.send("41")
	if code, _ := ws.closed(); code != codec.StatusNormal {
		t.Fatalf("closed %d", code)
	}
	ws.c.Closed()
	nd.runUntil("the subscription to go", func() bool { return nd.hub.Stats().Subscriptions == 0 })
}

// Upgrades that cannot happen leave the session on polling: an unknown
// sid or one closing is refused before the 101; a probe that sends
// anything but "2probe" and "5", or does not finish in the upgrade
// timeout, is closed.
func TestPollingUpgradeRefused(t *testing.T) {
	cfg := fastConfig
	cfg.UpgradeTimeout = 250 * time.Millisecond
	nd := newPollNode(t, newTestBus(t), 1, cfg, Admission{}, session.Config{}, false)
	if _, head := nd.upgradeWS(0, "nope"); !strings.HasPrefix(head, "HTTP/1.1 400 ") || !strings.Contains(head, codec.EIOErrUnknownSID) {
		t.Fatalf("unknown sid: %q", head)
	}
	sid := nd.join(0, "")
	ws, _ := nd.upgradeWS(0, sid)
	if _, head := nd.upgradeWS(0, sid); !strings.HasPrefix(head, "HTTP/1.1 400 ") {
		t.Fatalf("a second probe: %q", head)
	}
	ws.send("40")
	if code, reason := ws.closed(); code != codec.StatusProtocolError || reason != "unexpected packet during upgrade" {
		t.Fatalf("junk during the probe: %d %q", code, reason)
	}
	ws.c.Closed()
	ws, _ = nd.upgradeWS(0, sid)
	ws.send("5") // the upgrade packet before the probe
	if code, _ := ws.closed(); code != codec.StatusProtocolError {
		t.Fatalf("upgrade before the probe: %d", code)
	}
	ws.c.Closed()
	ws, _ = nd.upgradeWS(0, sid)
	ws.send("2probe")
	ws.text()
	if r := nd.pollNow(0, sid); r.body != "6" {
		t.Fatalf("poll while probed: %q", r.body)
	}
	// The pongs keep the session; the probe times out.
	for range 3 {
		nd.advance(110 * time.Millisecond)
		if r := nd.pollNow(0, sid); r.body != "2" {
			t.Fatalf("ping %q", r.body)
		}
		nd.post(0, sid, "3")
	}
	if code, reason := ws.closed(); code != codec.StatusPolicyViolation || reason != "upgrade timeout" {
		t.Fatalf("probe past the upgrade timeout: %d %q", code, reason)
	}
	ws.c.Closed()
	// Still polling, and polls are held again.
	held := nd.poll(0, sid)
	held.noResp()
	if held.c.State() != conn.StateRequest {
		t.Fatalf("poll after the failed upgrade: %v", held.c.State())
	}
	nd.post(0, sid, `421["unsubscribe",["x"]]`)
	if r := held.resp(); r.body != `431[{"ok":true}]` {
		t.Fatalf("after the failed upgrade: %q", r.body)
	}
	if nd.sm.Upgrades.Load() != 0 || nd.sm.UpgradesRefused.Load() != 2 {
		t.Fatalf("upgrades %d, refused %d", nd.sm.Upgrades.Load(), nd.sm.UpgradesRefused.Load())
	}
}

// An upgrade that reaches another loop of the node moves the session to
// that loop at the "5": what the old loop had queued and the packets the
// client sent meanwhile are not lost, and the subscriptions move along.
func TestPollingUpgradeOtherLoop(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 2, Config{}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	nd.post(0, sid, `420["subscribe",["news"]]`)
	nd.pollNow(0, sid)
	if err := nd.hub.Publish("news", []byte("1")); err != nil {
		t.Fatal(err)
	}
	nd.runUntil("the queued push", func() bool { return len(nd.engine(sid).out) == 1 })
	ws, head := nd.upgradeWS(1, sid)
	if !strings.HasPrefix(head, "HTTP/1.1 101 ") {
		t.Fatalf("upgrade on the other loop: %q", head)
	}
	held := nd.poll(1, sid) // relayed to loop 0; answered at once: a push waits
	if r := held.resp(); r.body != `42["message",{"topic":"news","data":1}]` {
		t.Fatalf("poll: %q", r.body)
	}
	held = nd.poll(1, sid)
	held.noResp()
	ws.send("2probe")
	nd.run()
	if got := ws.text(); got != "3probe" {
		t.Fatalf("probe: %q", got)
	}
	if r := held.resp(); r.body != "6" {
		t.Fatalf("the held poll at the probe: %q", r.body)
	}
	if err := nd.hub.Publish("news", []byte("2")); err != nil {
		t.Fatal(err)
	}
	nd.runUntil("the second queued push", func() bool { return len(nd.engine(sid).out) == 1 })
	ws.send("5")
	ws.send(`421["unsubscribe",["x"]]`) // while the session moves
	nd.run()
	if got := ws.text(); got != `42["message",{"topic":"news","data":2}]` {
		t.Fatalf("the queued push after the move: %q", got)
	}
	if got := ws.text(); got != `431[{"ok":true}]` {
		t.Fatalf("the packet sent during the move: %q", got)
	}
	if nd.sm.UpgradesMoved.Load() != 1 || nd.sm.Upgrades.Load() != 1 || nd.sm.PollingSessions.Load() != 0 {
		t.Fatalf("moved %d, upgrades %d, polling %d", nd.sm.UpgradesMoved.Load(), nd.sm.Upgrades.Load(), nd.sm.PollingSessions.Load())
	}
	if st := nd.hub.Stats(); st.Subscriptions != 1 {
		t.Fatalf("%d subscriptions after the move, want 1", st.Subscriptions)
	}
	if err := nd.hub.Publish("news", []byte("3")); err != nil {
		t.Fatal(err)
	}
	nd.runUntil("a push after the move", func() bool { return ws.tr.out.Len() > 0 })
	if got := ws.text(); got != `42["message",{"topic":"news","data":3}]` {
		t.Fatalf("push after the move: %q", got)
	}
	if r := nd.pollNow(0, sid); r.status != 400 {
		t.Fatalf("polling after the move: %d %q", r.status, r.body)
	}
	ws.send("1")
	ws.closed()
	ws.c.Closed()
	nd.runUntil("the subscription to go", func() bool { return nd.hub.Stats().Subscriptions == 0 })
}

// A session that closes before its "5" reaches its loop does not move: the
// WebSocket is closed (socket.io-client reconnects).
func TestPollingUpgradeOtherLoopClosed(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 2, Config{}, Admission{}, session.Config{}, false)
	sid := nd.join(0, "")
	ws, _ := nd.upgradeWS(1, sid)
	ws.send("2probe")
	nd.run()
	ws.text()
	nd.post(0, sid, "1") // the client closes the session
	ws.send("5")
	nd.run()
	if code, reason := ws.closed(); code != codec.StatusPolicyViolation || reason != "upgrade refused" {
		t.Fatalf("closed %d %q", code, reason)
	}
	if nd.sm.Upgrades.Load() != 0 {
		t.Fatal("counted an upgrade")
	}
}

// captured collects real messages from a topic.
type captured struct{ ms []*topics.Message }

func (c *captured) Deliver(m *topics.Message) {
	m.Retain()
	c.ms = append(c.ms, m)
}

// The end of a move sends the old loop's queue, then the new loop's
// without the pushes both loops got while both were subscribed.
func TestFinishMoveDeduplicates(t *testing.T) {
	nd := newPollNode(t, newTestBus(t), 2, Config{}, Admission{}, session.Config{}, false)
	capt := &captured{}
	if _, err := nd.loops[1].Shard().Subscribe("t", capt); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"1", "2", "3"} {
		if err := nd.hub.Publish("t", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	nd.runUntil("three messages", func() bool { return len(capt.ms) == 3 })
	sid := nd.join(0, "")
	ws, _ := nd.upgradeWS(1, sid)
	ws.send("2probe")
	nd.run()
	ws.text()
	u := ws.c.Proto().(*upConn)
	u.flags |= uMoving
	eng := &engine{ep: nd.loops[1].ep, sid: sid, idx: -1, probe: ws.c, flags: eAttaching}
	u.eng = eng
	m1, m2, m3 := capt.ms[0], capt.ms[1], capt.ms[2]
	for _, m := range []*topics.Message{m2, m3} {
		m.Retain()
		eng.out = append(eng.out, outPacket{m: m})
	}
	old := []outPacket{{m: m1}, {b: []byte(`430[{"ok":true}]`)}, {m: m2}}
	m1.Retain()
	m2.Retain()
	eng.finishMove(ws.c, old, true)
	var got []string
	for ws.tr.out.Len() > 0 {
		got = append(got, ws.text())
	}
	if len(got) != 4 || !strings.Contains(got[0], `"data":1`) || got[1] != `430[{"ok":true}]` ||
		!strings.Contains(got[2], `"data":2`) || !strings.Contains(got[3], `"data":3`) {
		t.Fatalf("frames %q", got)
	}
	for _, m := range capt.ms {
		m.Release()
	}
}

// The WebSocket's heartbeat keeps polling's cadence: the first ping after
// the upgrade comes a ping interval after the last one over polling, not
// after the WebSocket opened (socket.io-client gives the server up after
// pingInterval + pingTimeout without a ping), on the session's loop and
// after a move to another loop.
func TestPollingUpgradeKeepsPingCadence(t *testing.T) {
	for _, loops := range []int{1, 2} {
		nd := newPollNode(t, newTestBus(t), loops, fastConfig, Admission{}, session.Config{}, false)
		sid := nd.join(0, "")
		nd.advance(60 * time.Millisecond) // the last ping was at the handshake
		ws, head := nd.upgradeWS(loops-1, sid)
		if !strings.HasPrefix(head, "HTTP/1.1 101 ") {
			t.Fatalf("upgrade answered %q", head)
		}
		ws.send("2probe")
		nd.run()
		if got := ws.text(); got != "3probe" {
			t.Fatalf("probe answered %q", got)
		}
		ws.send("5")
		nd.runUntil("the upgrade", func() bool { return nd.sm.Upgrades.Load() == 1 })
		nd.advance(50 * time.Millisecond) // 110 ms after the last ping, 50 after the WebSocket opened
		if got := ws.text(); got != "2" {
			t.Fatalf("%d loops: the first ping on the WebSocket: %q", loops, got)
		}
	}
}
