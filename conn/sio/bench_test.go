package sio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/pushd/pushd/conn/session"
)

// BenchmarkIdlePollingSession measures what an idle Socket.IO long-polling
// session costs in process: BENCH_POLL_SESSIONS (default 10,000) sessions
// are opened, joined and subscribed to a topic of their own, and the live
// heap's growth is reported per session after a GC:
//
//	heap-B/session  the session (engine, socket, v1 session, timer), its
//	                registry entry and subscription, and with /relay its
//	                mailbox: the nats.go subscription and, NATS being
//	                embedded in the process, the server's side of it
//
// Not counted: the TCP connection of the poll an idle client holds open
// (a conn.Conn and gnet's state, as for any idle connection:
// BenchmarkIdleMemory in package bench), and the kernel's socket memory.
// Every session has a topic of its own, as in BenchmarkIdleMemory, so the
// figures include a topic's state (the hub's, and its NATS subscription);
// /websocket is the same with Socket.IO WebSocket connections (their
// conn.Conn included, gnet's not), for comparison in the same run. b.N is
// ignored: the measurement is one run.
func BenchmarkIdlePollingSession(b *testing.B) {
	for _, tc := range []struct {
		name           string
		polling, relay bool
		topic          string
	}{
		{"websocket", false, false, "idle.%d"},
		{"local", true, false, "idle.%d"},
		{"relay", true, true, "idle.%d"},
		{"websocket/shared-topic", false, false, "idle"},
		{"local/shared-topic", true, false, "idle"},
		{"relay/shared-topic", true, true, "idle"},
	} {
		b.Run(tc.name, func(b *testing.B) { idleSIO(b, tc.polling, tc.relay, tc.topic) })
	}
}

// idleSIO opens the sessions, each subscribed to topic (a format with the
// session's number, or one topic for all).
func idleSIO(b *testing.B, polling, relay bool, topic string) {
	name := func(i int) string {
		if strings.Contains(topic, "%") {
			return fmt.Sprintf(topic, i)
		}
		return topic
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("BENCH_POLL_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	nd := newPollNode(b, newTestBus(b), 1, Config{}, Admission{}, session.Config{}, relay)
	hc := nd.dial(0)
	do := func(req string) string {
		hc.tr.out.Reset()
		if m, _ := hc.c.Feed([]byte(req)); m != len(req) {
			b.Fatalf("request consumed %d of %d", m, len(req))
		}
		nd.run()
		out := hc.tr.out.String()
		_, body, _ := strings.Cut(out, "\r\n\r\n")
		return body
	}
	runtime.GC()
	heap0 := liveHeap()
	if !polling {
		conns := make([]*client, n)
		for i := range n {
			ws, got := nd.wsJoin(0, "")
			if !strings.HasPrefix(got, "40{") {
				b.Fatalf("CONNECT answered %q", got)
			}
			ws.send(`42["subscribe",["` + name(i) + `"]]`)
			ws.tr.out = bytes.Buffer{} // the test transport's buffer is not the server's
			conns[i] = ws
		}
		nd.run()
		if nd.sm.PollingSessions.Load() != 0 || nd.hub.Stats().Subscriptions != int64(n) {
			b.Fatalf("%d subscriptions", nd.hub.Stats().Subscriptions)
		}
		runtime.GC()
		b.ReportMetric(float64(liveHeap()-heap0)/float64(n), "heap-B/session")
		b.ReportMetric(float64(n), "sessions")
		runtime.KeepAlive(conns)
		return
	}
	for i := range n {
		open := do(pollRequest("GET", "", ""))
		var hs struct{ SID string }
		if json.Unmarshal([]byte(open[1:]), &hs) != nil {
			b.Fatalf("handshake %q", open)
		}
		do(pollRequest("POST", hs.SID, "40\x1e"+`42["subscribe",["`+name(i)+`"]]`))
		if got := do(pollRequest("GET", hs.SID, "")); !strings.HasPrefix(got, "40{") {
			b.Fatalf("CONNECT answered %q", got)
		}
	}
	hc.tr.out.Reset()
	if nd.sm.PollingSessions.Load() != int64(n) || nd.hub.Stats().Subscriptions != int64(n) {
		b.Fatalf("%d sessions, %d subscriptions", nd.sm.PollingSessions.Load(), nd.hub.Stats().Subscriptions)
	}
	runtime.GC()
	b.ReportMetric(float64(liveHeap()-heap0)/float64(n), "heap-B/session")
	b.ReportMetric(float64(n), "sessions")
	runtime.KeepAlive(nd)
}

func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
