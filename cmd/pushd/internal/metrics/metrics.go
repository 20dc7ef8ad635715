// Package metrics exports pushd's counters to Prometheus with
// client_golang: one Collector that reads the engine's, the sessions', the
// admitter's, the hub's and the HTTP API's atomic counters once per scrape,
// beside the Go runtime and process collectors. The hot paths never touch a
// Prometheus type: they count into atomics and per-loop histograms
// (topics/metric), and a scrape turns those into const metrics.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/sio"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/metric"
)

// Sources are the counters a node exposes. Every field is read at scrape
// time from the scrape's goroutine, so each must be safe for concurrent use.
type Sources struct {
	Conn    *conn.Metrics                // the engine's connection counters
	Session *session.Metrics             // the sessions' counters
	Refused func() (token, origin int64) // the admitter's 401s and 403s; nil: none
	Hub     func() topics.Stats          // the topic hub's and broker's counters
	// PublishLatency is the HTTP publish handler's latency histogram
	// (seconds); nil: none.
	PublishLatency *metric.Histogram
	// Deflate returns the permessage-deflate counters of pushes (each
	// counted once) and of per-connection frames; nil: none.
	Deflate func() (pushes, frames *ws.DeflateStats)
	// SIO is the Socket.IO endpoint's polling and relay counters; nil:
	// none (the endpoint is off).
	SIO *sio.Metrics
}

// Collector is a prometheus.Collector over Sources. Safe for concurrent
// use, as client_golang requires.
type Collector struct {
	src Sources
}

// New returns a Collector over src. Any goroutine.
func New(src Sources) *Collector { return &Collector{src: src} }

// Registry returns a registry with c, the Go collector and the process
// collector: everything GET /metrics shows. Any goroutine.
func Registry(c *Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves r in the Prometheus exposition formats. Any goroutine.
func Handler(r *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// desc is a metric description; labels lists its variable labels.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics. Names are documented in docs/protocol.md §9.
var (
	dConnections      = desc("pushd_connections", "Open connections (accepted by an endpoint, not yet closed).")
	dAccepted         = desc("pushd_connections_accepted_total", "TCP connections accepted.")
	dUpgrades         = desc("pushd_upgrades_total", "Requests whose endpoint took the connection over (WebSocket upgrades, SSE streams).")
	dHTTPRequests     = desc("pushd_http_requests_total", "HTTP requests answered without taking the connection over (static files).")
	dIdleCloses       = desc("pushd_http_idle_closes_total", "Kept-alive HTTP connections closed after --keep-alive-timeout of silence.")
	dHandshakeFail    = desc("pushd_handshake_failures_total", "Connections that did not complete the handshake, by reason.", "reason")
	dMessagesReceived = desc("pushd_messages_received_total", "Complete data messages received from clients.")
	dCommands         = desc("pushd_commands_total", "Protocol commands handled.")
	dCommandErrors    = desc("pushd_command_errors_total", "Commands answered with an error.")
	dRateLimited      = desc("pushd_commands_rate_limited_total", "Commands refused by the per-connection rate limit.")
	dPingsSent        = desc("pushd_pings_sent_total", "Heartbeat pings sent.")
	dCloses           = desc("pushd_closes_total", "Connections closed by the server, by reason.", "reason")
	dLimitRejections  = desc("pushd_conn_limit_rejections_total", "Connections answered 503 at accept, by limit.", "scope")
	dAuthFailures     = desc("pushd_auth_failures_total", "Request heads refused by authentication, by reason.", "reason")
	dForbidden        = desc("pushd_forbidden_total", "Subscribes and publishes refused by the token's permissions.")
	dClientPublishes  = desc("pushd_client_publishes_total", "Messages published by clients.")
	dTopics           = desc("pushd_topics", "Topics with at least one local subscriber.")
	dSubscriptions    = desc("pushd_subscriptions", "Local subscriptions over all connections.")
	dNATSSubs         = desc("pushd_nats_subscriptions", "Broker subscriptions held (one per topic with local interest).")
	dMessagesIn       = desc("pushd_messages_in_total", "Messages received from the broker (NATS).")
	dEncoded          = desc("pushd_messages_encoded_total", "Messages dispatched to local subscribers; each is encoded at most once per wire format.")
	dEncodings        = desc("pushd_encodings_total", "Message encodings built, by wire format.", "format")
	dHandoffs         = desc("pushd_loop_handoffs_total", "Hand-offs of message batches to event loops.")
	dHandBacks        = desc("pushd_loop_drain_handbacks_total", "Drains that used up their time slice (5 ms) and handed the rest of their backlog back to their event loop.")
	dDeliveries       = desc("pushd_deliveries_total", "Pushes queued to subscribers.")
	dFramesWritten    = desc("pushd_frames_written_total", "Pushes written to sockets.")
	dWritevCalls      = desc("pushd_writev_calls_total", "writev calls made to write pushes.")
	dDropped          = desc("pushd_dropped_total", "Messages or pushes dropped, by reason.", "reason")
	dReconnects       = desc("pushd_nats_reconnects_total", "Reconnects of the broker's NATS connection.")
	dConnected        = desc("pushd_nats_connected", "1 when the broker's NATS connection is up.")
	dBrokerRequests   = desc("pushd_broker_requests_total", "Requests made to the broker other than publishes (JetStream: history reads, position and epoch checks).")
	dDurableTopics    = desc("pushd_durable_topics", "Durable topics (with history) that have local subscribers.")
	dResumes          = desc("pushd_resumes_total", "Subscriptions resumed from a position on a durable topic, by how: from the node's cache at once, or after a history read.", "source")
	dHistoryReads     = desc("pushd_history_reads_total", "History reads made by the hub, by purpose: resume (one read serves every resume waiting for it) or repair (a gap in the live stream).", "purpose")
	dHistoryLosses    = desc("pushd_history_losses_total", "Live-stream gaps the history could no longer fill, and history replacements (epoch changes); each closes the topic's local subscribers with 4003.")
	dHistoryDups      = desc("pushd_history_duplicates_total", "Live messages of durable topics dropped because a repair had already delivered them.")
	dCacheMessages    = desc("pushd_history_cache_messages", "Messages in the per-topic caches of durable topics.")
	dCacheBytes       = desc("pushd_history_cache_bytes", "Payload bytes in the per-topic caches of durable topics.")
	dLatency          = desc("pushd_delivery_latency_seconds", "From a message's arrival from the broker to the end of the event-loop batch that wrote it to its local subscribers.")
	dPerWritev        = desc("pushd_pushes_per_writev", "Pushes written per writev call.")
	dPublishLatency   = desc("pushd_http_publish_duration_seconds", "POST /v1/publish handling time, until the broker confirmed the messages.")
	dDeflateIn        = desc("pushd_deflate_in_bytes_total", "Bytes given to permessage-deflate, by kind: pushes (each once, however many subscribers) or frames (replies, echo).", "kind")
	dDeflateOut       = desc("pushd_deflate_out_bytes_total", "Compressed bytes permessage-deflate produced, by kind.", "kind")
	dDeflateSkipped   = desc("pushd_deflate_skipped_total", "Messages for compressing clients sent uncompressed: too small, or not made smaller, by kind.", "kind")
	dInflated         = desc("pushd_inflated_messages_total", "Compressed client messages inflated.")
	dSIOPolling       = desc("pushd_sio_polling_sessions", "Socket.IO sessions on HTTP long-polling now (an upgraded one leaves).")
	dSIOHandshakes    = desc("pushd_sio_polling_handshakes_total", "Socket.IO sessions opened over HTTP long-polling.")
	dSIOUpgrades      = desc("pushd_sio_upgrades_total", "Socket.IO upgrades from polling to WebSocket, by result.", "result")
	dSIORelayed       = desc("pushd_sio_relayed_requests_total", "Socket.IO polling requests served for a session elsewhere, by route.", "route")
	dSIOKept          = desc("pushd_sio_recovery_states", "Socket.IO session states kept for connection state recovery now.")
	dSIORecoveries    = desc("pushd_sio_recoveries_total", "Socket.IO CONNECTs that asked to recover a session, by result.", "result")
)

var all = []*prometheus.Desc{
	dConnections, dAccepted, dUpgrades, dHTTPRequests, dIdleCloses, dHandshakeFail, dMessagesReceived, dCommands, dCommandErrors,
	dRateLimited, dPingsSent, dCloses, dLimitRejections, dAuthFailures, dForbidden, dClientPublishes,
	dTopics, dSubscriptions, dNATSSubs, dMessagesIn, dEncoded, dEncodings, dHandoffs, dHandBacks, dDeliveries,
	dFramesWritten, dWritevCalls, dDropped, dReconnects, dConnected, dBrokerRequests, dLatency,
	dPerWritev, dPublishLatency, dDeflateIn, dDeflateOut, dDeflateSkipped, dInflated,
	dDurableTopics, dResumes, dHistoryReads, dHistoryLosses, dHistoryDups,
	dCacheMessages, dCacheBytes, dSIOPolling, dSIOHandshakes, dSIOUpgrades, dSIORelayed, dSIOKept, dSIORecoveries,
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d
	}
}

// Collect implements prometheus.Collector: every counter is read once.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	hist := func(d *prometheus.Desc, s metric.Snapshot) {
		ch <- prometheus.MustNewConstHistogram(d, s.Count, s.Sum, s.Buckets)
	}
	m, sm := c.src.Conn, c.src.Session
	gauge(dConnections, m.Open.Load())
	counter(dAccepted, m.Accepted.Load())
	counter(dUpgrades, m.Upgrades.Load())
	counter(dHTTPRequests, m.Requests.Load())
	counter(dIdleCloses, m.IdleTimeouts.Load())
	counter(dHandshakeFail, m.HandshakeRejected.Load(), "rejected")
	counter(dHandshakeFail, m.HandshakeTimeouts.Load(), "timeout")
	counter(dMessagesReceived, m.MessagesIn.Load())
	counter(dCommands, sm.Commands.Load())
	counter(dCommandErrors, sm.CommandErrors.Load())
	counter(dRateLimited, sm.RateLimited.Load())
	counter(dPingsSent, m.PingsSent.Load())
	counter(dCloses, m.HeartbeatTimeouts.Load(), "heartbeat_timeout")
	counter(dCloses, m.SlowConsumers.Load(), "slow_consumer")
	counter(dCloses, m.ProtocolErrors.Load(), "protocol_error")
	counter(dCloses, sm.TokenExpired.Load(), "token_expired")
	counter(dCloses, m.HistoryLost.Load(), "history_lost")
	counter(dLimitRejections, m.RejectedGlobal.Load(), "global")
	counter(dLimitRejections, m.RejectedPerIP.Load(), "ip")
	counter(dLimitRejections, m.RejectedRate.Load(), "rate")
	var token, origin int64
	if c.src.Refused != nil {
		token, origin = c.src.Refused()
	}
	counter(dAuthFailures, token, "token")
	counter(dAuthFailures, origin, "origin")
	counter(dForbidden, sm.Forbidden.Load())
	counter(dClientPublishes, sm.ClientPublishes.Load())
	counter(dFramesWritten, m.FramesOut.Load())
	counter(dWritevCalls, m.Writevs.Load())
	hist(dPerWritev, m.PushesPerWritev())

	st := c.src.Hub()
	gauge(dTopics, st.Topics)
	gauge(dSubscriptions, st.Subscriptions)
	gauge(dNATSSubs, st.UpstreamSubs)
	counter(dMessagesIn, st.MessagesIn)
	counter(dEncoded, st.Dispatched)
	for _, f := range topics.Formats() {
		counter(dEncodings, f.Encodings(), f.Name())
	}
	counter(dHandoffs, st.Handoffs)
	counter(dHandBacks, st.HandBacks)
	counter(dDeliveries, st.Deliveries)
	counter(dDropped, st.DroppedNoTopic, "no_topic")
	counter(dDropped, st.DroppedBroker, "nats_slow")
	counter(dDropped, st.DroppedShardQueue, "loop_queue_full")
	counter(dDropped, st.DroppedLoopStopped, "loop_stopped")
	counter(dDropped, m.DroppedClosing.Load(), "conn_closing")
	counter(dReconnects, st.Reconnects)
	connected := int64(0)
	if st.Connected {
		connected = 1
	}
	gauge(dConnected, connected)
	counter(dBrokerRequests, st.BrokerRequests)
	gauge(dDurableTopics, st.DurableTopics)
	counter(dResumes, st.CatchUpsCached, "cache")
	counter(dResumes, st.CatchUps-st.CatchUpsCached, "read")
	counter(dHistoryReads, st.CatchUpReads, "resume")
	counter(dHistoryReads, st.Repairs, "repair")
	counter(dHistoryLosses, st.Losses)
	counter(dHistoryDups, st.Duplicates)
	counter(dDropped, st.HeldDropped, "held")
	gauge(dCacheMessages, st.CacheMessages)
	gauge(dCacheBytes, st.CacheBytes)
	hist(dLatency, st.Latency)
	if c.src.PublishLatency != nil {
		hist(dPublishLatency, c.src.PublishLatency.Snapshot())
	}
	if c.src.Deflate != nil {
		pushes, frames := c.src.Deflate()
		for _, k := range []struct {
			kind string
			st   *ws.DeflateStats
		}{{"pushes", pushes}, {"frames", frames}} {
			counter(dDeflateIn, k.st.In.Load(), k.kind)
			counter(dDeflateOut, k.st.Out.Load(), k.kind)
			counter(dDeflateSkipped, k.st.Skipped.Load(), k.kind)
		}
		counter(dInflated, frames.Inflated.Load())
	}
	if x := c.src.SIO; x != nil {
		gauge(dSIOPolling, x.PollingSessions.Load())
		counter(dSIOHandshakes, x.Handshakes.Load())
		moved := x.UpgradesMoved.Load()
		counter(dSIOUpgrades, x.Upgrades.Load()-moved, "same_loop")
		counter(dSIOUpgrades, moved, "moved_loop")
		counter(dSIOUpgrades, x.UpgradesRefused.Load(), "refused")
		counter(dSIORelayed, x.Relayed.Load(), "other_loop")
		counter(dSIORelayed, x.Forwarded.Load(), "to_node")
		counter(dSIORelayed, x.ForwardFailed.Load(), "to_node_failed")
		counter(dSIORelayed, x.RelayServed.Load(), "from_node")
		gauge(dSIOKept, x.Kept.Load())
		counter(dSIORecoveries, x.Recovered.Load(), "recovered")
		counter(dSIORecoveries, x.NotRecovered.Load(), "not_recovered")
	}
}
