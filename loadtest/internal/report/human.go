package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Dur formats nanoseconds for people: "850µs", "12.3ms", "1.25s". Pure.
func Dur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d/time.Microsecond)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// Bytes formats a byte count: "912 B", "20.5 KB", "301.2 MB". Pure.
func Bytes(n float64) string {
	switch {
	case n < 10_000 && n > -10_000:
		return fmt.Sprintf("%.0f B", n)
	case n < 1e6 && n > -1e6:
		return fmt.Sprintf("%.1f KB", n/1e3)
	}
	return fmt.Sprintf("%.1f MB", n/1e6)
}

// Count formats a large count or rate compactly: "950", "12.3k", "1.26M".
// Pure.
func Count(v float64) string {
	switch {
	case v < 10_000:
		return fmt.Sprintf("%.0f", v)
	case v < 1e6:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.2fM", v/1e6)
}

func pcts(l Latency) string {
	if l.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", Dur(l.P50), Dur(l.P90), Dur(l.P99), Dur(l.P999), Dur(l.Max))
}

func connectLine(c *Connect) string {
	return fmt.Sprintf("%d/%d opened in %.2fs = %s upgrades/s, %d failed; connect time %s",
		c.Opened, c.Attempted, float64(c.Seconds), Count(c.Rate), c.Failed, pcts(c.Time))
}

// ErrorsLine lists error counts by kind, largest first, or "none". Pure.
func ErrorsLine(errs map[string]int64) string {
	if len(errs) == 0 {
		return "none"
	}
	kinds := slices.SortedFunc(maps.Keys(errs), func(a, b string) int {
		if errs[a] != errs[b] {
			return int(errs[b] - errs[a])
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, errs[k]))
	}
	return strings.Join(parts, ", ")
}

// Human writes the summary a person reads at the end of a run. Safe for
// concurrent use (it only reads r).
func Human(w io.Writer, r *Result) error {
	var b strings.Builder
	label := ""
	if r.Label != "" {
		label = " (" + r.Label + ")"
	}
	fmt.Fprintf(&b, "loadtest %s → %s%s, %.1fs\n", r.Scenario, r.Target, label, float64(r.Elapsed))
	if r.Stopped != "" {
		fmt.Fprintf(&b, "STOPPED EARLY: %s (figures below cover what was measured)\n", r.Stopped)
	}
	h := r.Harness
	fmt.Fprintf(&b, "harness:  %d worker(s) in %d process(es), %d loop(s) each, %d source address(es)",
		h.Workers, h.Processes, h.Loops, h.SourceAddrs)
	if h.Conns > 0 && h.RSSAfter > 0 {
		fmt.Fprintf(&b, "; RSS %s → %s for %d conns = %s/conn", Bytes(float64(h.RSSBefore)), Bytes(float64(h.RSSAfter)), h.Conns, Bytes(h.PerConn))
	}
	if h.CPUSeconds > 0 {
		fmt.Fprintf(&b, "; %.1f CPU s", h.CPUSeconds)
	}
	b.WriteString("\n")
	if r.Connect != nil {
		fmt.Fprintf(&b, "connect:  %s\n", connectLine(r.Connect))
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(&b, "idle:     held %.0fs; %d open at end, %d closed by the server, %d pings answered\n",
			float64(i.Hold), i.OpenAtEnd, i.ClosedByServer, i.Pings)
	}
	if f := r.Fanout; f != nil {
		fmt.Fprintf(&b, "fanout:   %d subscribers on %d topic(s), %d B payload, %s publisher; %d ready\n",
			f.Subscribers, f.Topics, f.Size, f.Publisher, f.Ready)
		for i, s := range f.Steps {
			fmt.Fprintf(&b, "  step %d: %g msg/s × %d: published %d at %.1f/s (%d errors); delivered %d of %d: lost %d, dup %d, out of order %d; %s deliveries/s\n",
				i+1, s.Rate, s.Messages, s.Published, s.AchievedRate, s.PublishErrors, s.Delivered, s.Expected,
				s.Lost, s.Dup, s.OutOfOrder, Count(s.DeliveriesPerSec))
			fmt.Fprintf(&b, "          latency %s\n", pcts(s.Latency))
			if s.ServerCPUSeconds > 0 {
				fmt.Fprintf(&b, "          server CPU %.2fs = %.0f ns per delivery\n", s.ServerCPUSeconds, s.ServerCPUPerDelivery)
			}
		}
	}
	if c := r.Churn; c != nil {
		fmt.Fprintf(&b, "churn:    %g conn/s for %.0fs, lifetime %.1fs: %s\n", c.Rate, float64(c.Duration), float64(c.Lifetime), connectLine(&c.Steady))
		if s := c.Storm; s != nil {
			fmt.Fprintf(&b, "storm:    %d clients dropped at once: %d reconnected in %.2fs = %s upgrades/s, %d failed; connect time %s\n",
				s.Count, s.Reconnected, float64(s.Seconds), Count(s.Rate), s.Failed, pcts(s.Time))
		}
	}
	if s := r.Server; s != nil {
		if s.PID != 0 {
			fmt.Fprintf(&b, "server:   pid %d RSS %s → %s with %d conns = %s/conn\n", s.PID,
				Bytes(float64(s.RSSBefore)), Bytes(float64(s.RSSAfter)), s.Conns, Bytes(s.PerConn))
		}
		if s.MetricsURL != "" {
			fmt.Fprintf(&b, "metrics:  %s RSS %s → %s with %d conns (server says) = %s/conn\n", s.MetricsURL,
				Bytes(float64(s.MetricsRSSBefore)), Bytes(float64(s.MetricsRSSAfter)), s.MetricsConns, Bytes(s.MetricsPerConn))
		}
	}
	fmt.Fprintf(&b, "errors:   %s\n", ErrorsLine(r.Errors))
	_, err := io.WriteString(w, b.String())
	return err
}
