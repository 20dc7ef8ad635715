package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// benchLine is one result in the Go benchmark format:
// "BenchmarkName 1 v1 unit1 v2 unit2 …". The iteration count is 1: each
// line is one measured run, and benchstat compares the runs of several
// invocations (-count style) by name.
type benchLine struct {
	name   string
	values []float64
	units  []string
}

func (b *benchLine) add(v float64, unit string) {
	b.values = append(b.values, v)
	b.units = append(b.units, unit)
}

// String formats the line. Pure.
func (b *benchLine) String() string {
	var s strings.Builder
	s.WriteString(b.name)
	s.WriteString(" 1")
	for i, v := range b.values {
		s.WriteString(" ")
		s.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
		s.WriteString(" ")
		s.WriteString(b.units[i])
	}
	return s.String()
}

func benchName(scenario, label string, keys ...string) string {
	var s strings.Builder
	s.WriteString("Benchmark")
	s.WriteString(strings.ToUpper(scenario[:1]) + scenario[1:])
	if label != "" {
		s.WriteString("/target=" + label)
	}
	for i := 0; i+1 < len(keys); i += 2 {
		s.WriteString("/" + keys[i] + "=" + keys[i+1])
	}
	return s.String()
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// BenchLines returns r's results as Go benchmark-format lines. Units end in
// -ns for latencies (lower is better), /s for rates (higher is better) and
// B/conn for memory. Pure.
func BenchLines(r *Result) []string {
	var out []benchLine
	addConnect := func(b *benchLine, c *Connect) {
		b.add(c.Rate, "upgrades/s")
		b.add(float64(c.Time.P50), "connect-p50-ns")
		b.add(float64(c.Time.P99), "connect-p99-ns")
		b.add(float64(c.Failed), "failed")
	}
	switch {
	case r.Idle != nil && r.Connect != nil:
		b := benchLine{name: benchName("idle", r.Label, "conns", strconv.FormatInt(r.Connect.Attempted, 10))}
		if r.Server != nil && r.Server.PerConn != 0 {
			b.add(r.Server.PerConn, "server-B/conn")
		}
		if r.Server != nil && r.Server.MetricsPerConn != 0 {
			b.add(r.Server.MetricsPerConn, "server-metrics-B/conn")
		}
		b.add(float64(r.Idle.OpenAtEnd), "open")
		addConnect(&b, r.Connect)
		if r.Harness.PerConn != 0 {
			b.add(r.Harness.PerConn, "harness-B/conn")
		}
		out = append(out, b)
	case r.Fanout != nil:
		f := r.Fanout
		for _, s := range f.Steps {
			b := benchLine{name: benchName("fanout", r.Label, "subs", strconv.Itoa(f.Subscribers),
				"topics", strconv.Itoa(f.Topics), "size", strconv.Itoa(f.Size), "rate", num(s.Rate), "msgs", strconv.Itoa(s.Messages))}
			l := s.Latency
			b.add(float64(l.P50), "p50-ns")
			b.add(float64(l.P90), "p90-ns")
			b.add(float64(l.P99), "p99-ns")
			b.add(float64(l.P999), "p99.9-ns")
			b.add(float64(l.Max), "max-ns")
			b.add(s.DeliveriesPerSec, "deliveries/s")
			b.add(s.AchievedRate, "published/s")
			b.add(float64(s.Lost), "lost")
			b.add(float64(s.Dup), "dup")
			b.add(float64(s.OutOfOrder), "out-of-order")
			if s.ServerCPUPerDelivery > 0 {
				b.add(s.ServerCPUPerDelivery, "server-cpu-ns/delivery")
			}
			out = append(out, b)
		}
	case r.Churn != nil:
		c := r.Churn
		b := benchLine{name: benchName("churn", r.Label, "rate", num(c.Rate), "lifetime", time2(c.Lifetime))}
		addConnect(&b, &c.Steady)
		out = append(out, b)
		if s := c.Storm; s != nil {
			b := benchLine{name: benchName("storm", r.Label, "clients", strconv.Itoa(s.Count))}
			b.add(float64(s.Seconds)*1e9, "storm-ns")
			b.add(s.Rate, "upgrades/s")
			b.add(float64(s.Time.P99), "connect-p99-ns")
			b.add(float64(s.Failed), "failed")
			out = append(out, b)
		}
	}
	lines := make([]string, len(out))
	for i := range out {
		lines[i] = out[i].String()
	}
	return lines
}

func time2(s Seconds) string { return strconv.FormatFloat(float64(s), 'f', -1, 64) + "s" }

// Bench writes r's benchmark lines, preceded by the configuration lines
// benchstat shows as table headers. Safe for concurrent use (it only reads
// r).
func Bench(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: %s\ncpu: %s\npkg: github.com/pushd/pushd/loadtest\n", r.Machine.OS, r.Machine.CPUModel)
	for _, l := range BenchLines(r) {
		b.WriteString(l)
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
