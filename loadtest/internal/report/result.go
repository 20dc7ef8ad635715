// Package report holds the result of a harness run and renders it: a
// human summary, JSON, Go benchmark-format lines that benchstat compares,
// a self-contained HTML page with latency percentile charts, and the
// Markdown comparison table that scripts/bench.sh puts in
// docs/benchmarks.md.
package report

import (
	"time"

	"github.com/pushd/pushd/loadtest/internal/hist"
)

// Result is everything one run measured.
type Result struct {
	Scenario string `json:"scenario"`
	// Label names the server under test ("pushd", "refhub"); it becomes the
	// target= key of the benchmark names.
	Label   string    `json:"label"`
	Target  string    `json:"target"`
	Command []string  `json:"command,omitempty"`
	Started time.Time `json:"started"`
	Elapsed Seconds   `json:"elapsed_s"`
	// Stopped says why the run ended early ("interrupted", "max duration
	// reached", an error), or is empty if it completed.
	Stopped string  `json:"stopped,omitempty"`
	Machine Machine `json:"machine"`
	Harness Harness `json:"harness"`
	// Connect is the initial connection phase (idle, fanout).
	Connect *Connect         `json:"connect,omitempty"`
	Idle    *Idle            `json:"idle,omitempty"`
	Fanout  *Fanout          `json:"fanout,omitempty"`
	Churn   *Churn           `json:"churn,omitempty"`
	Server  *ServerMemory    `json:"server,omitempty"`
	Errors  map[string]int64 `json:"errors,omitempty"`
}

// Seconds is a duration in seconds, as JSON numbers are friendlier to
// plotting tools than Go duration strings.
type Seconds float64

// Sec converts d to Seconds. Pure.
func Sec(d time.Duration) Seconds { return Seconds(d.Seconds()) }

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// Harness describes the harness's own shape and cost.
type Harness struct {
	Workers     int `json:"workers"`
	Processes   int `json:"processes"`
	Loops       int `json:"loops_per_worker"`
	SourceAddrs int `json:"source_addrs"`
	// RSSBefore/RSSAfter are the summed RSS of the harness processes that
	// hold connections, before dialing and with the connections open;
	// PerConn divides the growth by the connections open.
	RSSBefore int64   `json:"rss_before"`
	RSSAfter  int64   `json:"rss_after"`
	HeapAfter int64   `json:"heap_after"`
	Conns     int64   `json:"conns"`
	PerConn   float64 `json:"rss_per_conn"`
	// CPUSeconds is the CPU time the harness processes used over the run
	// (with an in-process worker this includes the publisher).
	CPUSeconds float64 `json:"cpu_s"`
}

// Latency summarises a histogram of nanoseconds.
type Latency struct {
	N    uint64     `json:"n"`
	Mean float64    `json:"mean_ns"`
	P50  int64      `json:"p50_ns"`
	P90  int64      `json:"p90_ns"`
	P99  int64      `json:"p99_ns"`
	P999 int64      `json:"p999_ns"`
	Max  int64      `json:"max_ns"`
	Hist *hist.Hist `json:"hist,omitempty"`
}

// Summarise fills a Latency from h (which may be nil). Pure.
func Summarise(h *hist.Hist) Latency {
	if h == nil {
		return Latency{}
	}
	return Latency{N: h.Count(), Mean: h.Mean(), P50: h.Percentile(50), P90: h.Percentile(90),
		P99: h.Percentile(99), P999: h.Percentile(99.9), Max: h.Max(), Hist: h}
}

// Connect describes a batch of dials.
type Connect struct {
	Attempted int64   `json:"attempted"`
	Opened    int64   `json:"opened"`
	Failed    int64   `json:"failed"`
	Seconds   Seconds `json:"seconds"`
	// Rate is upgrades per second: Opened over the time from the first
	// dial to the last upgrade.
	Rate float64 `json:"rate"`
	Time Latency `json:"connect_time"`
}

// Idle is the idle scenario's outcome.
type Idle struct {
	Hold           Seconds `json:"hold_s"`
	OpenAtEnd      int64   `json:"open_at_end"`
	Pings          int64   `json:"pings"`
	ClosedByServer int64   `json:"closed_by_server"`
}

// ServerMemory is the server's memory growth while it held the
// connections, from /proc (PID) and/or its metrics endpoint.
type ServerMemory struct {
	PID       int     `json:"pid,omitempty"`
	RSSBefore int64   `json:"rss_before,omitempty"`
	RSSAfter  int64   `json:"rss_after,omitempty"`
	Conns     int64   `json:"conns"`
	PerConn   float64 `json:"rss_per_conn,omitempty"`
	// Metrics* come from the metrics endpoint, if one was given.
	MetricsURL       string  `json:"metrics_url,omitempty"`
	MetricsRSSBefore int64   `json:"metrics_rss_before,omitempty"`
	MetricsRSSAfter  int64   `json:"metrics_rss_after,omitempty"`
	MetricsConns     int64   `json:"metrics_conns,omitempty"`
	MetricsPerConn   float64 `json:"metrics_rss_per_conn,omitempty"`
}

// Fanout is the fanout scenario's outcome.
type Fanout struct {
	Subscribers int    `json:"subscribers"`
	Topics      int    `json:"topics"`
	Size        int    `json:"size"`
	Publisher   string `json:"publisher"`
	// Ready is how many subscribers had received a warm-up probe before
	// the first step: their subscriptions were in place.
	Ready int64 `json:"ready"`
	// Probes counts warm-up probes received over all subscribers; with
	// the steps' Delivered it accounts for every push the server sent.
	Probes int64  `json:"probes"`
	Steps  []Step `json:"steps"`
}

// Step is one publishing rate of a fanout run.
type Step struct {
	Rate     float64 `json:"rate"`
	Messages int     `json:"messages"`
	// Published counts messages the publisher handed over successfully,
	// at AchievedRate over PublishSeconds.
	Published      int64   `json:"published"`
	PublishErrors  int64   `json:"publish_errors"`
	PublishSeconds Seconds `json:"publish_s"`
	AchievedRate   float64 `json:"achieved_rate"`
	// Expected is Σ over topics of subscribers × messages published to
	// the topic; Delivered counts unique receipts.
	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Lost       int64 `json:"lost"`
	Dup        int64 `json:"dup"`
	OutOfOrder int64 `json:"out_of_order"`
	// DeliveriesPerSec is Delivered over the time from the first publish
	// to the last receipt.
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	Latency          Latency `json:"latency"`
	PublishCall      Latency `json:"publish_call"`
	// ServerCPUSeconds is the CPU time (user + system, all threads) the
	// server process (--server-pid) used from the step's first publish
	// until its deliveries had arrived or the drain timed out;
	// ServerCPUPerDelivery divides it by Delivered, in nanoseconds. Both
	// are 0 when no server PID was given.
	ServerCPUSeconds     float64 `json:"server_cpu_s,omitempty"`
	ServerCPUPerDelivery float64 `json:"server_cpu_per_delivery_ns,omitempty"`
}

// Churn is the churn scenario's outcome.
type Churn struct {
	Rate     float64 `json:"rate"`
	Duration Seconds `json:"duration_s"`
	Lifetime Seconds `json:"lifetime_s"`
	Steady   Connect `json:"steady"`
	Storm    *Storm  `json:"storm,omitempty"`
}

// Storm is a reconnect storm: Count clients dropped at once and redialed.
type Storm struct {
	Count       int     `json:"count"`
	Reconnected int64   `json:"reconnected"`
	Failed      int64   `json:"failed"`
	Seconds     Seconds `json:"seconds"`
	Rate        float64 `json:"rate"`
	Time        Latency `json:"connect_time"`
}
