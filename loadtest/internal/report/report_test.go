package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/loadtest/internal/hist"
)

func histOf(vs ...int64) *hist.Hist {
	var h hist.Hist
	for _, v := range vs {
		h.Record(v)
	}
	return &h
}

func fanoutResult(label string, p99 int64, dps float64) *Result {
	lat := Summarise(histOf(1e6, 2e6, p99))
	return &Result{
		Scenario: "fanout", Label: label, Target: "ws://127.0.0.1:8080/ws", Started: time.Unix(0, 0), Machine: Machine{OS: "linux", CPUModel: "Test CPU"},
		Connect: &Connect{Attempted: 5000, Opened: 5000, Rate: 9000, Time: Summarise(histOf(1e5))},
		Fanout: &Fanout{Subscribers: 5000, Topics: 1, Size: 100, Publisher: "http", Ready: 5000, Steps: []Step{
			{Rate: 10, Messages: 200, Published: 200, Expected: 1e6, Delivered: 1e6, DeliveriesPerSec: dps, Latency: lat},
		}},
	}
}

// benchLineRE is the Go benchmark format that benchstat parses: a name
// starting with Benchmark, an iteration count, then value-unit pairs.
var benchLineRE = regexp.MustCompile(`^Benchmark[A-Z][^\s]* 1( -?[0-9.e+]+ [^\s]+)+$`)

func TestBenchLines(t *testing.T) {
	tests := []struct {
		name string
		r    *Result
		want [][]string // substrings of each line
	}{
		{"fanout", fanoutResult("pushd", 25e6, 50000), [][]string{{
			"BenchmarkFanout/target=pushd/subs=5000/topics=1/size=100/rate=10/msgs=200 1 ",
			" 25000000 p99-ns ", " 50000 deliveries/s ", " 0 lost"}}},
		{"idle", &Result{Scenario: "idle", Label: "refhub", Connect: &Connect{Attempted: 19000, Rate: 5000},
			Idle: &Idle{OpenAtEnd: 19000}, Server: &ServerMemory{PerConn: 21500}, Harness: Harness{PerConn: 300}}, [][]string{{
			"BenchmarkIdle/target=refhub/conns=19000 1 21500 server-B/conn 19000 open 5000 upgrades/s", " 300 harness-B/conn"}}},
		{"churn and storm", &Result{Scenario: "churn", Churn: &Churn{Rate: 500, Lifetime: 1,
			Steady: Connect{Rate: 498}, Storm: &Storm{Count: 1000, Seconds: 0.5, Rate: 2000}}}, [][]string{
			{"BenchmarkChurn/rate=500/lifetime=1s 1 498 upgrades/s"}, {"BenchmarkStorm/clients=1000 1 500000000 storm-ns 2000 upgrades/s"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines := BenchLines(tc.r)
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines, want %d: %q", len(lines), len(tc.want), lines)
			}
			for i, l := range lines {
				if !benchLineRE.MatchString(l) {
					t.Errorf("not benchmark format: %q", l)
				}
				for _, want := range tc.want[i] {
					if !strings.Contains(l, want) {
						t.Errorf("line %q lacks %q", l, want)
					}
				}
			}
		})
	}
}

func TestCompare(t *testing.T) {
	results := []*Result{fanoutResult("pushd", 25e6, 50000), fanoutResult("refhub", 50e6, 40000),
		{Scenario: "idle", Label: "pushd", Connect: &Connect{Attempted: 19000}, Idle: &Idle{OpenAtEnd: 19000}, Server: &ServerMemory{PerConn: 1200}},
		{Scenario: "idle", Label: "refhub", Connect: &Connect{Attempted: 19000}, Idle: &Idle{OpenAtEnd: 19000}, Server: &ServerMemory{PerConn: 21600}},
	}
	var b bytes.Buffer
	if err := Compare(&b, "pushd", "refhub", results); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| measure | pushd | refhub (baseline) | pushd ÷ refhub | target (pushd) |",
		"| idle 19000 conns: server RSS per connection | 1200 B | 21.6 KB | 0.06× (lower is better) | ≤ 1,000 B: **missed** by 20% |",
		"| fan-out 5000 subs × 10 msg/s (200 msgs): p99 | 25.0ms | 50.0ms | 0.50× (lower is better) | p99 ≤ 30 ms: met |",
		"| fan-out 5000 subs × 10 msg/s (200 msgs): deliveries/s | 50.0k | 40.0k | 1.25× (higher is better) |  |",
		"| highest deliveries/s of any step with 0 lost | 50.0k | 40.0k |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
}

// TestCompareFloorTargets checks the ratio goals: pushd's CPU per
// delivery and p99 against the floor's at 10 msg/s, and against the hub at
// 50 msg/s and in the burst.
func TestCompareFloorTargets(t *testing.T) {
	withSteps := func(label string, steps ...Step) *Result {
		r := fanoutResult(label, 1e6, 1)
		r.Fanout.Steps = steps
		return r
	}
	step := func(rate float64, msgs int, achieved float64, p99 int64, dps, cpuNs float64) Step {
		return Step{Rate: rate, Messages: msgs, AchievedRate: achieved, Delivered: 1e6, DeliveriesPerSec: dps,
			Latency: Summarise(histOf(p99)), ServerCPUSeconds: cpuNs * 1e6 / 1e9, ServerCPUPerDelivery: cpuNs}
	}
	results := []*Result{
		withSteps("pushd", step(10, 200, 10, 20e6, 5e4, 1100), step(50, 500, 48, 30e6, 2.5e5, 900), step(500, 200, 500, 50e6, 2e6, 500)),
		withSteps("floor", step(10, 200, 10, 25e6, 5e4, 1000), step(50, 500, 50, 30e6, 2.5e5, 1000), step(500, 200, 500, 60e6, 1e6, 1000)),
		withSteps("refhub", step(10, 200, 10, 40e6, 5e4, 9000), step(50, 500, 40, 50e6, 2e5, 9000), step(500, 200, 40, 90e6, 2e5, 9000)),
	}
	var floor, hub bytes.Buffer
	if err := CompareTargets(&floor, "pushd", "floor", results, TargetsFloor); err != nil {
		t.Fatal(err)
	}
	if err := CompareTargets(&hub, "pushd", "refhub", results, TargetsHub); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| fan-out 5000 subs × 10 msg/s (200 msgs): server CPU per delivery | 1100 ns | 1000 ns | 1.10× (lower is better) | ≤ 1.15× the floor: met |",
		"| fan-out 5000 subs × 10 msg/s (200 msgs): p99 | 20.0ms | 25.0ms | 0.80× (lower is better) | ≤ the floor's: met |",
		"| fan-out 5000 subs × 50 msg/s (500 msgs): p99 | 30.0ms | 30.0ms | 1.00× (lower is better) |  |",
	} {
		if !strings.Contains(floor.String(), want) {
			t.Errorf("floor comparison lacks %q:\n%s", want, floor.String())
		}
	}
	for _, want := range []string{
		"| fan-out 5000 subs × 50 msg/s (500 msgs): publisher's achieved msg/s | 48 | 40 | 1.20× (higher is better) | ≥ 95% of 50 msg/s: met |",
		"| fan-out 5000 subs × 50 msg/s (500 msgs): p99 | 30.0ms | 50.0ms | 0.60× (lower is better) | p99 ≤ 60 ms: met; ≤ 0.5× the hub's: **missed** by 20% |",
		"| fan-out 5000 subs × 500 msg/s (200 msgs): deliveries/s | 2.00M | 200.0k | 10.00× (higher is better) | ≥ 1.2 M deliveries/s: met; ≥ 2× the hub's: met |",
		"| fan-out 5000 subs × 10 msg/s (200 msgs): server CPU per delivery | 1100 ns | 9000 ns | 0.12× (lower is better) |  |",
	} {
		if !strings.Contains(hub.String(), want) {
			t.Errorf("hub comparison lacks %q:\n%s", want, hub.String())
		}
	}
}

func TestHumanAndHTML(t *testing.T) {
	r := fanoutResult("pushd<script>", 25e6, 50000)
	r.Errors = map[string]int64{"eof": 2, "refused": 5}
	r.Stopped = "interrupted"
	var h bytes.Buffer
	if err := Human(&h, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"STOPPED EARLY: interrupted", "delivered 1000000 of 1000000", "p99 25.0ms", "errors:   refused 5, eof 2"} {
		if !strings.Contains(h.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, h.String())
		}
	}
	var page bytes.Buffer
	if err := HTML(&page, r); err != nil {
		t.Fatal(err)
	}
	p := page.String()
	if strings.Contains(p, "<script>") || !strings.Contains(p, "pushd&lt;script&gt;") {
		t.Error("label not escaped")
	}
	if strings.Count(p, "<svg") != 2 || !strings.Contains(p, "<polyline") {
		t.Errorf("want two charts with lines, got %d <svg", strings.Count(p, "<svg"))
	}
	if strings.Contains(p, "http://") && !strings.Contains(p, "http://www.w3.org/2000/svg") {
		t.Error("report links to something outside itself")
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	r := fanoutResult("pushd", 25e6, 50000)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Fanout.Steps[0].Latency.Hist.Percentile(100); got != 25e6 {
		t.Fatalf("histogram lost in JSON: max %d", got)
	}
}

func TestFormatters(t *testing.T) {
	tests := []struct{ got, want string }{
		{Dur(850_000), "850µs"}, {Dur(12_340_000), "12.3ms"}, {Dur(250e6), "250ms"}, {Dur(1.25e9), "1.25s"},
		{Bytes(912), "912 B"}, {Bytes(20_500), "20.5 KB"}, {Bytes(301.2e6), "301.2 MB"},
		{Count(950), "950"}, {Count(12_345), "12.3k"}, {Count(1_260_000), "1.26M"},
		{ErrorsLine(nil), "none"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
