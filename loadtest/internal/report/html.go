package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/pushd/pushd/loadtest/internal/hist"
)

// Series is one line of a percentile chart.
type Series struct {
	Name string
	Hist *hist.Hist
}

// chart geometry, in SVG user units.
const (
	chartW, chartH = 720, 360
	padL, padR     = 70, 150
	padT, padB     = 20, 45
	maxNines       = 4 // the x axis runs from p0 to p99.99
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten. Pure.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// PercentileSVG draws latency against percentile, on the usual "nines"
// axis where p90, p99, p99.9 and p99.99 are evenly spaced, so the tail is
// as visible as the median. Pure.
func PercentileSVG(title string, series []Series) template.HTML {
	var ymax float64
	for _, s := range series {
		if s.Hist != nil && s.Hist.Count() > 0 {
			ymax = math.Max(ymax, float64(s.Hist.Percentile(99.99)))
		}
	}
	if ymax == 0 {
		return ""
	}
	ymaxMS := niceCeil(ymax / 1e6)
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	x := func(nines float64) float64 { return padL + nines/maxNines*plotW }
	y := func(ms float64) float64 { return padT + plotH - math.Min(ms/ymaxMS, 1)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="12">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="14" font-weight="bold">%s</text>`, padL, template.HTMLEscapeString(title))
	for i := 0; i <= 5; i++ { // horizontal grid and y labels
		ms := ymaxMS * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, padL, x(maxNines), y(ms), y(ms))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g ms</text>`, padL-6, y(ms)+4, ms)
	}
	for n, label := range []string{"p0", "p90", "p99", "p99.9", "p99.99"} {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#ddd"/>`, x(float64(n)), x(float64(n)), padT, y(0))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x(float64(n)), y(0)+16, label)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">percentile</text>`, x(maxNines/2), chartH-6)
	for i, s := range series {
		if s.Hist == nil || s.Hist.Count() == 0 {
			continue
		}
		color := palette[i%len(palette)]
		var pts []string
		for k := 0; k <= maxNines*25; k++ {
			nines := float64(k) / 25
			q := 100 * (1 - math.Pow(10, -nines))
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(nines), y(float64(s.Hist.Percentile(q))/1e6)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, strings.Join(pts, " "))
		ly := padT + 16*i
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="12" height="12" fill="%s"/>`, x(maxNines)+10, ly, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`, x(maxNines)+28, ly+10, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every interpolated string above is escaped
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur": Dur, "count": Count, "errs": ErrorsLine,
	"bytes": func(v any) string {
		switch n := v.(type) {
		case int64:
			return Bytes(float64(n))
		case float64:
			return Bytes(n)
		}
		return fmt.Sprint(v)
	},
	"inc": func(i int) int { return i + 1 },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>loadtest {{.R.Scenario}} {{.R.Label}}</title>
<style>
body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.warn{color:#b00}
code{background:#f4f4f4;padding:1px 4px}
</style></head><body>
<h1>loadtest {{.R.Scenario}}{{if .R.Label}} — {{.R.Label}}{{end}}</h1>
<p>Target <code>{{.R.Target}}</code>, started {{.R.Started.Format "2006-01-02 15:04:05 MST"}}, {{printf "%.1f" .R.Elapsed}} s.
{{.R.Machine.CPUs}} CPU(s), {{.R.Machine.CPUModel}}, {{.R.Machine.GoVersion}}.</p>
{{if .R.Stopped}}<p class="warn">Stopped early: {{.R.Stopped}}.</p>{{end}}
{{with .R.Command}}<p>Command: <code>{{range .}}{{.}} {{end}}</code></p>{{end}}
{{with .R.Connect}}<h2>Connections</h2><table><tr><th>attempted</th><th>opened</th><th>failed</th><th>upgrades/s</th><th>p50</th><th>p99</th><th>max</th></tr>
<tr><td>{{.Attempted}}</td><td>{{.Opened}}</td><td>{{.Failed}}</td><td>{{count .Rate}}</td><td>{{dur .Time.P50}}</td><td>{{dur .Time.P99}}</td><td>{{dur .Time.Max}}</td></tr></table>{{end}}
{{with .R.Idle}}<h2>Idle</h2><p>Held {{printf "%.0f" .Hold}} s: {{.OpenAtEnd}} open at the end, {{.ClosedByServer}} closed by the server, {{.Pings}} pings answered.</p>{{end}}
{{with .R.Server}}<h2>Server memory</h2><table><tr><th>source</th><th>RSS before</th><th>RSS after</th><th>conns</th><th>per conn</th></tr>
{{if .PID}}<tr><td>/proc/{{.PID}}</td><td>{{bytes .RSSBefore}}</td><td>{{bytes .RSSAfter}}</td><td>{{.Conns}}</td><td>{{bytes .PerConn}}</td></tr>{{end}}
{{if .MetricsURL}}<tr><td>{{.MetricsURL}}</td><td>{{bytes .MetricsRSSBefore}}</td><td>{{bytes .MetricsRSSAfter}}</td><td>{{.MetricsConns}}</td><td>{{bytes .MetricsPerConn}}</td></tr>{{end}}</table>{{end}}
{{with .R.Fanout}}<h2>Fan-out</h2><p>{{.Subscribers}} subscribers on {{.Topics}} topic(s), {{.Size}} B payload, {{.Publisher}} publisher, {{.Ready}} ready.</p>
<table><tr><th>step</th><th>asked</th><th>published/s</th><th>delivered</th><th>lost</th><th>dup</th><th>ooo</th><th>deliveries/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
{{range $i, $s := .Steps}}<tr><td>{{inc $i}}</td><td>{{$s.Rate}}/s × {{$s.Messages}}</td><td>{{printf "%.1f" $s.AchievedRate}}</td><td>{{$s.Delivered}}/{{$s.Expected}}</td><td>{{$s.Lost}}</td><td>{{$s.Dup}}</td><td>{{$s.OutOfOrder}}</td><td>{{count $s.DeliveriesPerSec}}</td>
<td>{{dur $s.Latency.P50}}</td><td>{{dur $s.Latency.P90}}</td><td>{{dur $s.Latency.P99}}</td><td>{{dur $s.Latency.P999}}</td><td>{{dur $s.Latency.Max}}</td></tr>{{end}}</table>{{end}}
{{with .R.Churn}}<h2>Churn</h2><p>{{.Rate}} connections/s for {{printf "%.0f" .Duration}} s, each open {{.Lifetime}} s: {{.Steady.Opened}}/{{.Steady.Attempted}} upgraded at {{count .Steady.Rate}}/s, {{.Steady.Failed}} failed, connect p99 {{dur .Steady.Time.P99}}.</p>
{{with .Storm}}<p>Reconnect storm: {{.Count}} clients dropped at once, {{.Reconnected}} back in {{printf "%.2f" .Seconds}} s ({{count .Rate}} upgrades/s), {{.Failed}} failed, connect p99 {{dur .Time.P99}}.</p>{{end}}{{end}}
{{range .Charts}}{{.}}{{end}}
<h2>Errors</h2><p>{{errs .R.Errors}}</p>
<h2>Benchmark lines</h2><pre>{{range .Bench}}{{.}}
{{end}}</pre>
</body></html>
`))

// HTML writes a self-contained report page: tables of every figure and
// inline SVG percentile charts of latency and connect time. Safe for
// concurrent use (it only reads r).
func HTML(w io.Writer, r *Result) error {
	var charts []template.HTML
	if f := r.Fanout; f != nil {
		var ss []Series
		for i, s := range f.Steps {
			ss = append(ss, Series{Name: fmt.Sprintf("step %d: %g/s", i+1, s.Rate), Hist: s.Latency.Hist})
		}
		charts = append(charts, PercentileSVG("Publish-to-receipt latency", ss))
	}
	var cs []Series
	if r.Connect != nil {
		cs = append(cs, Series{Name: "connect", Hist: r.Connect.Time.Hist})
	}
	if c := r.Churn; c != nil {
		cs = append(cs, Series{Name: "churn", Hist: c.Steady.Time.Hist})
		if c.Storm != nil {
			cs = append(cs, Series{Name: "storm", Hist: c.Storm.Time.Hist})
		}
	}
	charts = append(charts, PercentileSVG("Connect time (socket to 101)", cs))
	return page.Execute(w, struct {
		R      *Result
		Charts []template.HTML
		Bench  []string
	}{r, charts, BenchLines(r)})
}
