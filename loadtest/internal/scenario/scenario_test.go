//go:build linux

package scenario

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/bench/refhub/hub"
	"github.com/pushd/pushd/loadtest/internal/report"
	"github.com/pushd/pushd/loadtest/internal/worker"
)

// TestMain lets the test binary act as a child worker, so the
// multi-process path is tested with the real pipe protocol.
func TestMain(m *testing.M) {
	if os.Getenv("LOADTEST_TEST_WORKER") == "1" {
		if err := worker.Serve(os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testWorkerCommand() (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOADTEST_TEST_WORKER=1")
	cmd.Stderr = os.Stderr
	return cmd, nil
}

// target is a server the scenarios run against.
type target struct {
	name                          string
	wsURL, publishURL, metricsURL string
	connGauge                     string
}

// targets returns the servers to test against: the baseline hub, in this
// process, and pushd, started on free ports: the binary LOADTEST_PUSHD
// names, or one this test builds from ./cmd/pushd.
func targets(t *testing.T) []target {
	t.Helper()
	return []target{startRefhub(t), startPushd(t, pushdBinary(t))}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// pushdBinary returns LOADTEST_PUSHD, or builds pushd once per test binary.
func pushdBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("LOADTEST_PUSHD"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "loadtest-pushd")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "pushd")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/pushd/pushd/cmd/pushd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/pushd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// metricValue scrapes one unlabeled metric from a Prometheus endpoint.
func metricValue(t *testing.T, url, name string) int64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return n
		}
	}
	t.Fatalf("metric %s not found at %s", name, url)
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startPushd(t *testing.T, bin string) target {
	t.Helper()
	ws, api := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "-listen", ws, "-api-listen", api, "-nats-listen", "off", "-log-level", "warn", "-insecure")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 100 {
			t.Fatalf("pushd not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return target{name: "pushd", wsURL: "ws://" + ws + "/ws", publishURL: "http://" + api + "/v1/publish",
		metricsURL: "http://" + api + "/metrics", connGauge: "pushd_connections"}
}

// startRefhub runs the baseline hub in this process.
func startRefhub(t *testing.T) target {
	t.Helper()
	h := hub.New(hub.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h.ServeWS)
	ws := httptest.NewServer(mux)
	api := httptest.NewServer(h.APIHandler())
	t.Cleanup(func() {
		cancel()
		<-done
		ws.Close()
		api.Close()
	})
	return target{
		name:       "refhub",
		wsURL:      "ws://" + ws.Listener.Addr().String() + "/ws",
		publishURL: api.URL + "/v1/publish",
		metricsURL: api.URL + "/metrics",
		connGauge:  "refhub_connections",
	}
}

func (h target) config(scenario string) Config {
	return Config{
		Scenario: scenario, Label: h.name, URL: h.wsURL + "?topics={{topic}}",
		PublishURL: h.publishURL, MetricsURL: h.metricsURL, ConnGauge: h.connGauge,
		MaxDuration: 20 * time.Second, Drain: 5 * time.Second, Warmup: 5 * time.Second,
	}
}

func runOK(t *testing.T, ctx context.Context, c Config) *report.Result {
	t.Helper()
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestIdle(t *testing.T) {
	for _, h := range targets(t) {
		t.Run(h.name, func(t *testing.T) {
			c := h.config(Idle)
			c.Conns, c.Hold, c.Topics, c.ServerPID = 60, 700*time.Millisecond, []string{"a", "b", "c"}, os.Getpid()
			var progress bytes.Buffer
			c.Progress = &progress
			res := runOK(t, context.Background(), c)
			if !strings.Contains(progress.String(), "[idle ") || !strings.Contains(progress.String(), "open 60 ") {
				t.Errorf("progress line %q", progress.String())
			}
			if res.Stopped != "" {
				t.Fatalf("stopped: %s", res.Stopped)
			}
			if res.Connect.Opened != 60 || res.Connect.Failed != 0 || res.Idle.OpenAtEnd != 60 || len(res.Errors) != 0 {
				t.Fatalf("connect %+v idle %+v errors %v", res.Connect, res.Idle, res.Errors)
			}
			if res.Server == nil || res.Server.RSSAfter == 0 || res.Server.MetricsConns != 60 {
				t.Fatalf("server memory %+v", res.Server)
			}
			if res.Connect.Time.N != 60 || res.Connect.Rate <= 0 {
				t.Fatalf("connect times %+v", res.Connect)
			}
		})
	}
}

// TestFanoutCounts checks the reported counts against what the server
// did: every subscriber receives every message of its topic, none lost.
func TestFanoutCounts(t *testing.T) {
	for _, h := range targets(t) {
		t.Run(h.name, func(t *testing.T) { testFanoutCounts(t, h) })
	}
}

func testFanoutCounts(t *testing.T, h target) {
	tests := []struct {
		name   string
		edit   func(*Config)
		expect func(c *Config, step int) int64
	}{
		{"one topic, topics in URL", func(c *Config) {}, func(c *Config, k int) int64 {
			return int64(c.Conns * c.Messages[k])
		}},
		{"two topics, subscribe frame, two processes", func(c *Config) {
			c.Topics = []string{"t.0", "t.1"}
			c.URL = h.wsURL
			c.SubscribeFrame = `{"id":1,"type":"subscribe","topics":["{{topic}}"]}`
			c.Workers, c.ForceProcess, c.WorkerCommand = 2, true, testWorkerCommand
		}, func(c *Config, k int) int64 {
			return int64(c.Conns * c.Messages[k] / 2) // each subscriber gets its topic's half
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.config(Fanout)
			c.Conns, c.Rates, c.Messages, c.Size = 40, []float64{200, 1000}, []int{20, 40}, 300
			c.ServerPID = os.Getpid() // the server runs in this process
			tc.edit(&c)
			var framesBefore int64
			if h.name == "pushd" {
				framesBefore = metricValue(t, h.metricsURL, "pushd_frames_written_total")
			}
			res := runOK(t, context.Background(), c)
			if res.Stopped != "" {
				t.Fatalf("stopped: %s", res.Stopped)
			}
			f := res.Fanout
			if f.Ready != int64(c.Conns) || len(f.Steps) != 2 {
				t.Fatalf("ready %d, %d steps", f.Ready, len(f.Steps))
			}
			for k, s := range f.Steps {
				want := tc.expect(&c, k)
				if s.Expected != want || s.Delivered != want || s.Lost != 0 || s.Dup != 0 || s.OutOfOrder != 0 {
					t.Errorf("step %d: expected %d delivered %d lost %d dup %d ooo %d; want %d delivered, none lost",
						k, s.Expected, s.Delivered, s.Lost, s.Dup, s.OutOfOrder, want)
				}
				if s.Published != int64(c.Messages[k]) || s.Latency.N != uint64(want) || s.DeliveriesPerSec <= 0 {
					t.Errorf("step %d: published %d, %d latency samples, %v deliveries/s", k, s.Published, s.Latency.N, s.DeliveriesPerSec)
				}
				// Server CPU is read at 10 ms resolution, so a short step may
				// show none; whatever it shows is per delivery consistently.
				if perDeliv := s.ServerCPUSeconds * 1e9 / float64(s.Delivered); s.ServerCPUSeconds < 0 ||
					math.Abs(s.ServerCPUPerDelivery-perDeliv) > 1e-6*perDeliv {
					t.Errorf("step %d: server CPU %vs, %v ns per delivery", k, s.ServerCPUSeconds, s.ServerCPUPerDelivery)
				}
			}
			if len(res.Errors) != 0 {
				t.Errorf("errors %v", res.Errors)
			}
			if h.name == "pushd" {
				// What the harness counted is what the server says it wrote.
				delivered := f.Probes
				for _, s := range f.Steps {
					delivered += s.Delivered
				}
				written := metricValue(t, h.metricsURL, "pushd_frames_written_total") - framesBefore
				if written != delivered {
					t.Errorf("pushd wrote %d pushes, the harness counted %d", written, delivered)
				}
			}
		})
	}
}

func TestChurn(t *testing.T) {
	for _, h := range targets(t) {
		t.Run(h.name, func(t *testing.T) { testChurn(t, h) })
	}
}

func testChurn(t *testing.T, h target) {
	c := h.config(Churn)
	c.ChurnRate, c.ChurnDuration, c.Lifetime, c.Storm = 200, 500*time.Millisecond, 100*time.Millisecond, 30
	res := runOK(t, context.Background(), c)
	if res.Stopped != "" {
		t.Fatalf("stopped: %s", res.Stopped)
	}
	ch := res.Churn
	if ch.Steady.Attempted != 100 || ch.Steady.Opened != 100 || ch.Steady.Failed != 0 || ch.Steady.Time.N != 100 {
		t.Fatalf("steady %+v", ch.Steady)
	}
	if ch.Storm == nil || ch.Storm.Reconnected != 30 || ch.Storm.Failed != 0 || ch.Storm.Seconds <= 0 {
		t.Fatalf("storm %+v", ch.Storm)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("errors %v", res.Errors)
	}
}

func TestStopsEarly(t *testing.T) {
	h := startRefhub(t)
	tests := []struct {
		name    string
		max     time.Duration
		cancel  time.Duration
		stopped string
	}{
		{"max duration", 300 * time.Millisecond, 0, "max duration"},
		{"interrupted", time.Minute, 300 * time.Millisecond, "interrupted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.config(Idle)
			c.Conns, c.Hold, c.MaxDuration = 20, time.Minute, tc.max
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel > 0 {
				time.AfterFunc(tc.cancel, cancel)
			}
			start := time.Now()
			res := runOK(t, ctx, c)
			if el := time.Since(start); el > 10*time.Second {
				t.Fatalf("took %v to stop", el)
			}
			if !strings.Contains(res.Stopped, tc.stopped) {
				t.Fatalf("Stopped = %q, want %q", res.Stopped, tc.stopped)
			}
			if res.Connect == nil || res.Connect.Opened != 20 {
				t.Fatalf("what was measured is lost: %+v", res.Connect)
			}
		})
	}
}

func TestCheckRefusesRemote(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		error string
	}{
		{"remote ws", func(c *Config) { c.URL = "ws://192.0.2.1:8080/ws" }, "not a loopback"},
		{"remote publish", func(c *Config) { c.PublishURL = "http://192.0.2.1/v1/publish" }, "not a loopback"},
		{"remote nats", func(c *Config) { c.Publisher, c.NATSURL = PublishNATS, "nats://192.0.2.1:4222" }, "not a loopback"},
		{"remote metrics", func(c *Config) { c.MetricsURL = "http://192.0.2.1/metrics" }, "not a loopback"},
		{"allowed", func(c *Config) { c.URL, c.AllowRemote = "ws://192.0.2.1:8080/ws", true }, ""},
		{"ipv6 loopback", func(c *Config) { c.URL = "ws://[::1]:8080/ws" }, ""},
		{"wss", func(c *Config) { c.URL = "wss://127.0.0.1/ws" }, "wss"},
		{"bad template", func(c *Config) { c.SubscribeFrame = "{{topik}}" }, "unknown placeholder"},
		{"bad topic", func(c *Config) { c.Topics = []string{"a b"} }, "topic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Scenario: Fanout, Conns: 1}
			tc.edit(&c)
			err := c.Check(context.Background())
			if tc.error == "" && err != nil || tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)) {
				t.Fatalf("Check() = %v, want error containing %q", err, tc.error)
			}
		})
	}
}
