package metrics_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushd/pushd/cmd/pushd/internal/metrics"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/sio"
	_ "github.com/pushd/pushd/conn/ws" // registers the ws-v1 format
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker/natsbroker"
	"github.com/pushd/pushd/topics/metric"
)

// The /metrics output: every name with its type, label values, counters
// read from the sources, and histograms with their buckets. The hub runs
// on a real (embedded) NATS server.
func TestMetricsOutput(t *testing.T) {
	ns, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := natsbroker.New(nc, natsbroker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hub, err := topics.New(b, topics.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()

	cm, sm := new(conn.Metrics), new(session.Metrics)
	cm.Open.Store(7)
	cm.SlowConsumers.Store(3)
	cm.HandshakeTimeouts.Store(2)
	cm.RejectedPerIP.Store(5)
	sm.Commands.Store(11)
	sm.TokenExpired.Store(4)
	lat := metric.NewHistogram([]float64{0.001, 0.01})
	lat.Observe(0.0005)
	lat.Observe(0.005)
	lat.Observe(1)
	reg := metrics.Registry(metrics.New(metrics.Sources{
		Conn: cm, Session: sm, Hub: hub.Stats, PublishLatency: lat,
		Refused: func() (int64, int64) { return 9, 1 }, SIO: new(sio.Metrics),
	}))
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}

	types := map[string]dto.MetricType{
		"pushd_connections":                   dto.MetricType_GAUGE,
		"pushd_connections_accepted_total":    dto.MetricType_COUNTER,
		"pushd_upgrades_total":                dto.MetricType_COUNTER,
		"pushd_http_requests_total":           dto.MetricType_COUNTER,
		"pushd_http_idle_closes_total":        dto.MetricType_COUNTER,
		"pushd_handshake_failures_total":      dto.MetricType_COUNTER,
		"pushd_messages_received_total":       dto.MetricType_COUNTER,
		"pushd_commands_total":                dto.MetricType_COUNTER,
		"pushd_command_errors_total":          dto.MetricType_COUNTER,
		"pushd_commands_rate_limited_total":   dto.MetricType_COUNTER,
		"pushd_pings_sent_total":              dto.MetricType_COUNTER,
		"pushd_closes_total":                  dto.MetricType_COUNTER,
		"pushd_conn_limit_rejections_total":   dto.MetricType_COUNTER,
		"pushd_auth_failures_total":           dto.MetricType_COUNTER,
		"pushd_forbidden_total":               dto.MetricType_COUNTER,
		"pushd_client_publishes_total":        dto.MetricType_COUNTER,
		"pushd_topics":                        dto.MetricType_GAUGE,
		"pushd_subscriptions":                 dto.MetricType_GAUGE,
		"pushd_nats_subscriptions":            dto.MetricType_GAUGE,
		"pushd_messages_in_total":             dto.MetricType_COUNTER,
		"pushd_messages_encoded_total":        dto.MetricType_COUNTER,
		"pushd_encodings_total":               dto.MetricType_COUNTER,
		"pushd_loop_handoffs_total":           dto.MetricType_COUNTER,
		"pushd_loop_drain_handbacks_total":    dto.MetricType_COUNTER,
		"pushd_deliveries_total":              dto.MetricType_COUNTER,
		"pushd_frames_written_total":          dto.MetricType_COUNTER,
		"pushd_writev_calls_total":            dto.MetricType_COUNTER,
		"pushd_dropped_total":                 dto.MetricType_COUNTER,
		"pushd_nats_reconnects_total":         dto.MetricType_COUNTER,
		"pushd_nats_connected":                dto.MetricType_GAUGE,
		"pushd_broker_requests_total":         dto.MetricType_COUNTER,
		"pushd_delivery_latency_seconds":      dto.MetricType_HISTOGRAM,
		"pushd_pushes_per_writev":             dto.MetricType_HISTOGRAM,
		"pushd_http_publish_duration_seconds": dto.MetricType_HISTOGRAM,
		"pushd_sio_polling_sessions":          dto.MetricType_GAUGE,
		"pushd_sio_polling_handshakes_total":  dto.MetricType_COUNTER,
		"pushd_sio_upgrades_total":            dto.MetricType_COUNTER,
		"pushd_sio_relayed_requests_total":    dto.MetricType_COUNTER,
		"pushd_sio_recovery_states":           dto.MetricType_GAUGE,
		"pushd_sio_recoveries_total":          dto.MetricType_COUNTER,
		"go_goroutines":                       dto.MetricType_GAUGE,
		"go_memstats_heap_inuse_bytes":        dto.MetricType_GAUGE,
		"process_resident_memory_bytes":       dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		f := fams[name]
		if f == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is %v, want %v", name, f.GetType(), typ)
		}
	}
	if fams["pushd_slow_consumer_closes_total"] != nil {
		t.Error("the duplicate pushd_slow_consumer_closes_total is still exported")
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		for _, m := range fams[name].GetMetric() {
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				match = match && found
			}
			if match {
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("%s%v not found", name, labels)
		return 0
	}
	checks := []struct {
		got, want float64
		what      string
	}{
		{value("pushd_connections"), 7, "open connections"},
		{value("pushd_closes_total", "reason", "slow_consumer"), 3, "slow consumer closes"},
		{value("pushd_closes_total", "reason", "token_expired"), 4, "token expiry closes"},
		{value("pushd_handshake_failures_total", "reason", "timeout"), 2, "handshake timeouts"},
		{value("pushd_conn_limit_rejections_total", "scope", "ip"), 5, "per-IP rejections"},
		{value("pushd_commands_total"), 11, "commands"},
		{value("pushd_auth_failures_total", "reason", "token"), 9, "401s"},
		{value("pushd_auth_failures_total", "reason", "origin"), 1, "403s"},
		{value("pushd_nats_connected"), 1, "NATS connected"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	h := fams["pushd_http_publish_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 1.0055 || len(h.GetBucket()) != 3 ||
		h.GetBucket()[0].GetCumulativeCount() != 1 || h.GetBucket()[1].GetCumulativeCount() != 2 ||
		h.GetBucket()[2].GetCumulativeCount() != 3 {
		t.Errorf("publish latency histogram: %v", h)
	}
	if n := len(fams["pushd_delivery_latency_seconds"].GetMetric()[0].GetHistogram().GetBucket()); n != len(topics.LatencyBounds)+1 {
		t.Errorf("delivery latency histogram has %d buckets, want %d and +Inf", n, len(topics.LatencyBounds))
	}
	var formats []string
	for _, m := range fams["pushd_encodings_total"].GetMetric() {
		formats = append(formats, m.GetLabel()[0].GetValue())
	}
	if !strings.Contains(strings.Join(formats, ","), "ws-v1") {
		t.Errorf("pushd_encodings_total formats %v lack ws-v1", formats)
	}
}
