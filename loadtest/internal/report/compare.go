package report

import (
	"fmt"
	"io"
	"strings"
)

// target is a goal from the issue that a product figure is checked
// against: the figure must be ≤ limit (or ≥ limit if atLeast).
type target struct {
	limit   float64
	atLeast bool
	text    string
}

func (t *target) verdict(v float64) string {
	if t == nil {
		return ""
	}
	ok := v <= t.limit
	if t.atLeast {
		ok = v >= t.limit
	}
	if ok {
		return t.text + ": met"
	}
	return fmt.Sprintf("%s: **missed** by %.0f%%", t.text, 100*abs(v-t.limit)/t.limit)
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// row is one line of the comparison table.
type row struct {
	measure        string
	prod, base     float64
	hasProd, hasBs bool
	format         func(float64) string
	lowerBetter    bool
	target         *target
}

func durF(v float64) string { return Dur(int64(v)) }
func intF(v float64) string { return fmt.Sprintf("%.0f", v) }
func bytesF(v float64) string {
	if v == 0 {
		return "–"
	}
	return Bytes(v)
}

// Compare writes a Markdown table that sets each figure of the product's
// results beside the baseline's from the same run, with their ratio and,
// where the project has one, the target. results may hold several
// scenarios for each label; those whose label is neither are ignored.
// Safe for concurrent use (it only reads results).
func Compare(w io.Writer, product, baseline string, results []*Result) error {
	pick := func(label, scenario string) *Result {
		for _, r := range results {
			if r.Label == label && r.Scenario == scenario {
				return r
			}
		}
		return nil
	}
	var rows []row
	add := func(measure string, get func(*Result) (float64, bool), f func(float64) string, lower bool, t *target, scenario string) {
		rw := row{measure: measure, format: f, lowerBetter: lower, target: t}
		if r := pick(product, scenario); r != nil {
			rw.prod, rw.hasProd = get(r)
		}
		if r := pick(baseline, scenario); r != nil {
			rw.base, rw.hasBs = get(r)
		}
		if rw.hasProd || rw.hasBs {
			rows = append(rows, rw)
		}
	}
	if r := pick(product, "idle"); r != nil || pick(baseline, "idle") != nil {
		n := int64(0)
		if r != nil && r.Connect != nil {
			n = r.Connect.Attempted
		}
		server := func(r *Result) (float64, bool) {
			if r.Server == nil {
				return 0, false
			}
			if r.Server.PerConn != 0 {
				return r.Server.PerConn, true
			}
			return r.Server.MetricsPerConn, r.Server.MetricsPerConn != 0
		}
		add(fmt.Sprintf("idle %d conns: server RSS per connection", n), server, bytesF, true,
			&target{1000, false, "≤ 1,000 B"}, "idle")
		add("idle: connections open at the end", func(r *Result) (float64, bool) {
			if r.Idle == nil {
				return 0, false
			}
			return float64(r.Idle.OpenAtEnd), true
		}, intF, false, nil, "idle")
		add("idle: upgrades/s while connecting", func(r *Result) (float64, bool) {
			if r.Connect == nil {
				return 0, false
			}
			return r.Connect.Rate, true
		}, Count, false, nil, "idle")
		add("idle: the harness's own RSS per connection (client cost, not compared)", func(r *Result) (float64, bool) {
			return r.Harness.PerConn, r.Harness.PerConn != 0
		}, bytesF, true, nil, "idle")
		add("idle: connect time p99", func(r *Result) (float64, bool) {
			if r.Connect == nil {
				return 0, false
			}
			return float64(r.Connect.Time.P99), true
		}, durF, true, nil, "idle")
	}
	if pf, bf := pick(product, "fanout"), pick(baseline, "fanout"); (pf != nil && pf.Fanout != nil) || (bf != nil && bf.Fanout != nil) {
		ref := pf
		if ref == nil || ref.Fanout == nil {
			ref = bf
		}
		subs := ref.Fanout.Subscribers
		step := func(rate float64, msgs int) func(*Result) *Step {
			return func(r *Result) *Step {
				if r.Fanout == nil {
					return nil
				}
				for i := range r.Fanout.Steps {
					if s := &r.Fanout.Steps[i]; s.Rate == rate && s.Messages == msgs {
						return s
					}
				}
				return nil
			}
		}
		for _, s := range ref.Fanout.Steps {
			get := step(s.Rate, s.Messages)
			name := fmt.Sprintf("fan-out %d subs × %g msg/s (%d msgs)", subs, s.Rate, s.Messages)
			var p99t, dpst *target
			switch {
			case subs == 5000 && s.Rate == 10:
				p99t = &target{30e6, false, "p99 ≤ 30 ms"}
			case subs == 5000 && s.Rate == 50:
				p99t = &target{60e6, false, "p99 ≤ 60 ms"}
			case subs == 5000 && s.Rate == 500 && s.Messages == 200:
				p99t = &target{250e6, false, "p99 ≤ 250 ms"}
				dpst = &target{1.2e6, true, "≥ 1.2 M deliveries/s"}
			}
			// A server whose publish call blocks slows its own publisher
			// down; its latencies are then measured at a lower rate than
			// asked, so the achieved rate is shown next to them.
			add(name+": publisher's achieved msg/s", func(r *Result) (float64, bool) {
				return pick2(get(r), func(st *Step) float64 { return st.AchievedRate })
			}, Count, false, nil, "fanout")
			add(name+": p50", func(r *Result) (float64, bool) {
				st := get(r)
				return pick2(st, func(st *Step) float64 { return float64(st.Latency.P50) })
			}, durF, true, nil, "fanout")
			add(name+": p99", func(r *Result) (float64, bool) {
				return pick2(get(r), func(st *Step) float64 { return float64(st.Latency.P99) })
			}, durF, true, p99t, "fanout")
			add(name+": max", func(r *Result) (float64, bool) {
				return pick2(get(r), func(st *Step) float64 { return float64(st.Latency.Max) })
			}, durF, true, nil, "fanout")
			add(name+": deliveries/s", func(r *Result) (float64, bool) {
				return pick2(get(r), func(st *Step) float64 { return st.DeliveriesPerSec })
			}, Count, false, dpst, "fanout")
			add(name+": lost", func(r *Result) (float64, bool) {
				return pick2(get(r), func(st *Step) float64 { return float64(st.Lost) })
			}, intF, true, nil, "fanout")
		}
		best := func(r *Result) (float64, bool) {
			var v float64
			if r.Fanout == nil {
				return 0, false
			}
			for _, s := range r.Fanout.Steps {
				if s.Lost == 0 && s.Delivered > 0 && s.DeliveriesPerSec > v {
					v = s.DeliveriesPerSec
				}
			}
			return v, v > 0
		}
		bestP99 := func(r *Result) (float64, bool) {
			var v, p float64
			if r.Fanout == nil {
				return 0, false
			}
			for _, s := range r.Fanout.Steps {
				if s.Lost == 0 && s.Delivered > 0 && s.DeliveriesPerSec > v {
					v, p = s.DeliveriesPerSec, float64(s.Latency.P99)
				}
			}
			return p, v > 0
		}
		add("highest deliveries/s of any step with 0 lost", best, Count, false, nil, "fanout")
		add("… its p99", bestP99, durF, true, nil, "fanout")
	}
	if pc, bc := pick(product, "churn"), pick(baseline, "churn"); (pc != nil && pc.Churn != nil) || (bc != nil && bc.Churn != nil) {
		ref := pc
		if ref == nil || ref.Churn == nil {
			ref = bc
		}
		c := ref.Churn
		name := fmt.Sprintf("churn %g conn/s, lifetime %gs", c.Rate, float64(c.Lifetime))
		steady := func(f func(*Connect) float64) func(*Result) (float64, bool) {
			return func(r *Result) (float64, bool) {
				if r.Churn == nil {
					return 0, false
				}
				return f(&r.Churn.Steady), true
			}
		}
		add(name+": upgrades/s", steady(func(c *Connect) float64 { return c.Rate }), Count, false, nil, "churn")
		add(name+": connect p99", steady(func(c *Connect) float64 { return float64(c.Time.P99) }), durF, true, nil, "churn")
		add(name+": failed upgrades", steady(func(c *Connect) float64 { return float64(c.Failed) }), intF, true, nil, "churn")
		if c.Storm != nil {
			sname := fmt.Sprintf("reconnect storm of %d", c.Storm.Count)
			has := func(r *Result) bool { return r.Churn != nil && r.Churn.Storm != nil }
			add(sname+": time until all reconnected", func(r *Result) (float64, bool) {
				if !has(r) {
					return 0, false
				}
				return float64(r.Churn.Storm.Seconds) * 1e9, true
			}, durF, true, nil, "churn")
			add(sname+": connect p99", func(r *Result) (float64, bool) {
				if !has(r) {
					return 0, false
				}
				return float64(r.Churn.Storm.Time.P99), true
			}, durF, true, nil, "churn")
			add(sname+": failed", func(r *Result) (float64, bool) {
				if !has(r) {
					return 0, false
				}
				return float64(r.Churn.Storm.Failed), true
			}, intF, true, nil, "churn")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| measure | %s | %s (baseline) | %s ÷ %s | target (%s) |\n|---|--:|--:|--:|---|\n",
		product, baseline, product, baseline, product)
	for _, r := range rows {
		cell := func(v float64, ok bool) string {
			if !ok {
				return "–"
			}
			return r.format(v)
		}
		ratio := "–"
		if r.hasProd && r.hasBs && r.base != 0 && !strings.Contains(r.measure, "not compared") {
			better := "lower is better"
			if !r.lowerBetter {
				better = "higher is better"
			}
			ratio = fmt.Sprintf("%.2f× (%s)", r.prod/r.base, better)
		}
		verdict := ""
		if r.hasProd {
			verdict = r.target.verdict(r.prod)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.measure, cell(r.prod, r.hasProd), cell(r.base, r.hasBs), ratio, verdict)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pick2(s *Step, f func(*Step) float64) (float64, bool) {
	if s == nil {
		return 0, false
	}
	return f(s), true
}
