package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// writeMetrics writes the node's metrics in the Prometheus text format
// (version 0.0.4). Any goroutine.
func (n *node) writeMetrics(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	m := n.srv.Metrics()
	st := n.hub.Stats()
	metric := func(name, typ, help string, v int64) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, typ, name, v)
	}
	labeled := func(name, typ, help, label string, vals map[string]int64) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, k := range sortedKeys(vals) {
			fmt.Fprintf(bw, "%s{%s=%q} %d\n", name, label, k, vals[k])
		}
	}
	metric("pushd_connections", "gauge", "Open WebSocket connections.", m.Open.Load())
	metric("pushd_connections_accepted_total", "counter", "TCP connections accepted.", m.Accepted.Load())
	metric("pushd_upgrades_total", "counter", "Successful WebSocket upgrades.", m.Upgrades.Load())
	labeled("pushd_handshake_failures_total", "counter", "Connections that did not complete the upgrade, by reason.", "reason", map[string]int64{
		"rejected": m.HandshakeRejected.Load(),
		"timeout":  m.HandshakeTimeouts.Load(),
	})
	metric("pushd_messages_received_total", "counter", "Complete data messages received from clients.", m.MessagesIn.Load())
	metric("pushd_commands_total", "counter", "Protocol commands handled.", m.Commands.Load())
	metric("pushd_command_errors_total", "counter", "Commands answered with an error.", m.CommandErrors.Load())
	metric("pushd_commands_rate_limited_total", "counter", "Commands refused by the per-connection rate limit.", m.RateLimited.Load())
	metric("pushd_pings_sent_total", "counter", "Heartbeat pings sent.", m.PingsSent.Load())
	labeled("pushd_closes_total", "counter", "Connections closed by the server, by reason.", "reason", map[string]int64{
		"heartbeat_timeout": m.HeartbeatTimeouts.Load(),
		"slow_consumer":     m.SlowConsumers.Load(),
		"protocol_error":    m.ProtocolErrors.Load(),
		"token_expired":     m.TokenExpired.Load(),
	})
	labeled("pushd_conn_limit_rejections_total", "counter", "Connections answered 503 at accept, by limit.", "scope", map[string]int64{
		"global": m.RejectedGlobal.Load(),
		"ip":     m.RejectedPerIP.Load(),
		"rate":   m.RejectedRate.Load(),
	})
	labeled("pushd_auth_failures_total", "counter", "Upgrade requests refused by authentication, by reason.", "reason", map[string]int64{
		"token":  n.adm.unauthorized.Load(),
		"origin": n.adm.badOrigin.Load(),
	})
	metric("pushd_forbidden_total", "counter", "Subscribes and publishes refused by the token's permissions.", m.Forbidden.Load())
	metric("pushd_client_publishes_total", "counter", "Messages published by clients.", m.ClientPublishes.Load())
	metric("pushd_slow_consumer_closes_total", "counter", "Connections closed with 4000 because their outbound buffer passed its cap.", m.SlowConsumers.Load())
	metric("pushd_topics", "gauge", "Topics with at least one local subscriber.", st.Topics)
	metric("pushd_subscriptions", "gauge", "Local subscriptions over all connections.", st.Subscriptions)
	metric("pushd_nats_subscriptions", "gauge", "NATS subscriptions held (one per topic with local interest).", st.UpstreamSubs)
	metric("pushd_messages_in_total", "counter", "Messages received from NATS.", st.MessagesIn)
	metric("pushd_messages_encoded_total", "counter", "Messages encoded once into a shared frame.", st.Dispatched)
	metric("pushd_loop_handoffs_total", "counter", "Hand-offs of message batches to event loops.", st.Handoffs)
	metric("pushd_deliveries_total", "counter", "Pushes queued to subscribers.", st.Deliveries)
	metric("pushd_frames_written_total", "counter", "Pushes written to sockets.", m.FramesOut.Load())
	metric("pushd_writev_calls_total", "counter", "writev calls made to write pushes.", m.Writevs.Load())
	labeled("pushd_dropped_total", "counter", "Messages or pushes dropped, by reason.", "reason", map[string]int64{
		"no_topic":        st.DroppedNoTopic,
		"nats_slow":       st.DroppedBroker,
		"loop_queue_full": st.DroppedShardQueue,
		"loop_stopped":    st.DroppedLoopStopped,
		"conn_closing":    m.DroppedClosing.Load(),
	})
	metric("pushd_nats_reconnects_total", "counter", "Reconnects of the NATS connection.", st.Reconnects)
	connected := int64(0)
	if n.nc.IsConnected() {
		connected = 1
	}
	metric("pushd_nats_connected", "gauge", "1 when the NATS connection is up.", connected)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	metric("go_goroutines", "gauge", "Goroutines.", int64(runtime.NumGoroutine()))
	metric("go_memstats_heap_inuse_bytes", "gauge", "Heap bytes in use.", int64(ms.HeapInuse))
	metric("go_memstats_sys_bytes", "gauge", "Bytes obtained from the OS.", int64(ms.Sys))
	if rss := residentBytes(); rss > 0 {
		metric("process_resident_memory_bytes", "gauge", "Resident set size in bytes.", rss)
	}
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// residentBytes reads the process RSS from /proc/self/status (0 if unknown).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
