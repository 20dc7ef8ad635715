package report

import (
	"fmt"
	"io"
	"strings"
)

// target is a goal from an issue that a product figure is checked
// against: the figure (or, if ratio, the figure over the baseline's) must
// be ≤ limit (or ≥ limit if atLeast).
type target struct {
	limit   float64
	atLeast bool
	ratio   bool
	text    string
}

func (t *target) verdict(prod, base float64, hasBase bool) string {
	v := prod
	if t.ratio {
		if !hasBase || base == 0 {
			return t.text + ": no baseline figure"
		}
		v = prod / base
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

// Targets selects the goals a comparison checks the product against.
type Targets string

const (
	// TargetsHub is for a comparison against the conventional gorilla hub
	// (bench/refhub): the load-harness issue's absolute goals, and the
	// "engine at the floor" issue's ratios to the hub at 5,000
	// subscribers (50 msg/s: ≥ 95% of the asked rate, p99 ≤ 0.5× the
	// hub's; the 200-message burst at 500/s: ≥ 2× the hub's deliveries/s).
	TargetsHub Targets = "hub"
	// TargetsFloor is for a comparison against the one-write-per-delivery
	// floor (bench/floor): at 5,000 subscribers and 10 msg/s, server CPU
	// per delivery ≤ 1.15× the floor's and p99 ≤ the floor's.
	TargetsFloor Targets = "floor"
	// TargetsNone checks nothing: for comparing two references.
	TargetsNone Targets = "none"
)

// fanoutTargets returns the goals for one fan-out step's rows.
func fanoutTargets(set Targets, subs int, rate float64, msgs int) (cpu, p99, achieved, dps []*target) {
	if subs != 5000 {
		return
	}
	switch set {
	case TargetsFloor:
		if rate == 10 {
			cpu = append(cpu, &target{1.15, false, true, "≤ 1.15× the floor"})
			p99 = append(p99, &target{1, false, true, "≤ the floor's"})
		}
	case TargetsHub:
		switch {
		case rate == 10:
			p99 = append(p99, &target{30e6, false, false, "p99 ≤ 30 ms"})
		case rate == 50:
			achieved = append(achieved, &target{0.95 * rate, true, false, "≥ 95% of 50 msg/s"})
			p99 = append(p99, &target{60e6, false, false, "p99 ≤ 60 ms"}, &target{0.5, false, true, "≤ 0.5× the hub's"})
		case rate == 500 && msgs == 200:
			p99 = append(p99, &target{250e6, false, false, "p99 ≤ 250 ms"})
			dps = append(dps, &target{1.2e6, true, false, "≥ 1.2 M deliveries/s"}, &target{2, true, true, "≥ 2× the hub's"})
		}
	}
	return
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
	targets        []*target
}

func durF(v float64) string { return Dur(int64(v)) }

// nsF formats a per-delivery CPU time given in nanoseconds.
func nsF(v float64) string {
	if v < 10_000 {
		return fmt.Sprintf("%.0f ns", v)
	}
	return fmt.Sprintf("%.1f µs", v/1e3)
}
func intF(v float64) string { return fmt.Sprintf("%.0f", v) }
func bytesF(v float64) string {
	if v == 0 {
		return "–"
	}
	return Bytes(v)
}

// Compare is CompareTargets with TargetsHub. Safe for concurrent use.
func Compare(w io.Writer, product, baseline string, results []*Result) error {
	return CompareTargets(w, product, baseline, results, TargetsHub)
}

// CompareTargets writes a Markdown table that sets each figure of the
// product's results beside the baseline's from the same run, with their
// ratio and, where the project has one, the target from set. results may
// hold several scenarios for each label; those whose label is neither are
// ignored. Safe for concurrent use (it only reads results).
func CompareTargets(w io.Writer, product, baseline string, results []*Result, set Targets) error {
	pick := func(label, scenario string) *Result {
		for _, r := range results {
			if r.Label == label && r.Scenario == scenario {
				return r
			}
		}
		return nil
	}
	var rows []row
	add := func(measure string, get func(*Result) (float64, bool), f func(float64) string, lower bool, ts []*target, scenario string) {
		rw := row{measure: measure, format: f, lowerBetter: lower, targets: ts}
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
		var rssTarget []*target
		if set == TargetsHub {
			rssTarget = []*target{{1000, false, false, "≤ 1,000 B"}}
		}
		add(fmt.Sprintf("idle %d conns: server RSS per connection", n), server, bytesF, true, rssTarget, "idle")
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
			cpuT, p99t, achT, dpst := fanoutTargets(set, subs, s.Rate, s.Messages)
			// A server whose publish call blocks slows its own publisher
			// down; its latencies are then measured at a lower rate than
			// asked, so the achieved rate is shown next to them.
			add(name+": publisher's achieved msg/s", func(r *Result) (float64, bool) {
				return pick2(get(r), func(st *Step) float64 { return st.AchievedRate })
			}, Count, false, achT, "fanout")
			add(name+": server CPU per delivery", func(r *Result) (float64, bool) {
				st := get(r)
				if st == nil || st.ServerCPUPerDelivery == 0 {
					return 0, false
				}
				return st.ServerCPUPerDelivery, true
			}, nsF, true, cpuT, "fanout")
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
		var verdicts []string
		if r.hasProd {
			for _, t := range r.targets {
				verdicts = append(verdicts, t.verdict(r.prod, r.base, r.hasBs))
			}
		}
		verdict := strings.Join(verdicts, "; ")
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
