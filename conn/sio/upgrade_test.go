package sio

import (
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
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
