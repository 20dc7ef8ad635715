//go:build linux

package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pushd/pushd/loadtest/internal/report"
	"github.com/pushd/pushd/loadtest/internal/worker"
	"github.com/pushd/pushd/loadtest/procstat"
)

// run is the state of one Run.
type run struct {
	cfg     *Config
	res     *report.Result
	workers []worker.Client
	extra   map[string]int64 // errors counted by the coordinator (publishing)
	mu      sync.Mutex       // mu guards extra
	http    *http.Client
}

// Run executes cfg.Scenario and returns what it measured. When ctx ends
// or cfg.MaxDuration passes, the run stops where it is and still returns
// a Result, with Result.Stopped saying why; err is reserved for runs that
// could not start (a bad configuration, a worker that would not start).
// Safe for concurrent use: every run has its own workers and state.
func Run(ctx context.Context, cfg Config) (*report.Result, error) {
	if err := cfg.Check(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	r := &run{cfg: &cfg, extra: map[string]int64{}, http: &http.Client{Timeout: 5 * time.Second}}
	r.res = &report.Result{
		Scenario: cfg.Scenario, Label: cfg.Label, Target: cfg.URL, Command: cfg.Command,
		Started: time.Now(), Machine: machine(),
	}
	if err := r.startWorkers(); err != nil {
		return nil, err
	}
	defer r.closeWorkers()
	stopProgress := r.progress(runCtx)
	var err error
	switch cfg.Scenario {
	case Idle:
		err = r.idle(runCtx)
	case Fanout:
		err = r.fanout(runCtx)
	case Churn:
		err = r.churn(runCtx)
	}
	stopProgress()
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.res.Stopped = "interrupted"
	case runCtx.Err() != nil:
		r.res.Stopped = fmt.Sprintf("max duration (%v) reached", cfg.MaxDuration)
	default:
		r.res.Stopped = err.Error()
	}
	r.res.Elapsed = report.Sec(time.Since(r.res.Started))
	return r.res, nil
}

func machine() report.Machine {
	m := report.Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, CPUModel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// startWorkers starts enough workers for the run's peak connection count,
// PerWorker each: in this process if one is enough, else as children.
func (r *run) startWorkers() error {
	c := r.cfg
	n := c.Workers
	if n <= 0 {
		n = max(1, (c.peak()+c.PerWorker-1)/c.PerWorker)
	}
	var headers string
	for _, h := range c.Headers {
		headers += h + "\r\n"
	}
	setup := worker.Setup{
		Target: c.target.String(), Host: c.host, Path: c.path, SubscribeFrame: c.SubscribeFrame,
		Topics: c.Topics, Sources: c.sources(), ExtraHeaders: headers, Loops: c.Loops,
		MaxInflight: c.MaxInflight, HandshakeTimeout: c.HandshakeTimeout, CloseTimeout: c.CloseTimeout,
	}
	r.res.Harness = report.Harness{Workers: n, Loops: c.Loops, SourceAddrs: len(setup.Sources)}
	if n == 1 && !c.ForceProcess {
		w, err := worker.NewLocal(setup)
		if err != nil {
			return err
		}
		r.workers = []worker.Client{w}
		return nil
	}
	r.workers = make([]worker.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cmd, err := r.workerCommand()
			if err != nil {
				errs[i] = err
				return
			}
			s := setup
			s.Index = i
			w, err := worker.StartProcess(cmd, s)
			errs[i] = err
			if err == nil {
				r.workers[i] = w
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.closeWorkers()
		return err
	}
	r.res.Harness.Processes = n
	return nil
}

func (r *run) workerCommand() (*exec.Cmd, error) {
	if r.cfg.WorkerCommand != nil {
		return r.cfg.WorkerCommand()
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "worker")
	cmd.Stderr = os.Stderr
	return cmd, nil
}

func (r *run) closeWorkers() {
	var wg sync.WaitGroup
	for _, w := range r.workers {
		if w != nil {
			wg.Go(func() { w.Close() })
		}
	}
	wg.Wait()
}

// each runs fn for every worker concurrently and returns the responses.
func (r *run) each(ctx context.Context, fn func(i int) worker.Request) ([]worker.Response, error) {
	resps := make([]worker.Response, len(r.workers))
	errs := make([]error, len(r.workers))
	var wg sync.WaitGroup
	for i, w := range r.workers {
		wg.Go(func() { resps[i], errs[i] = w.Do(ctx, fn(i)) })
	}
	wg.Wait()
	return resps, errors.Join(errs...)
}

// stats merges every worker's statistics.
func (r *run) stats(ctx context.Context, full bool) (*worker.Stats, error) {
	resps, err := r.each(ctx, func(int) worker.Request { return worker.Request{Op: worker.OpStats, Full: full} })
	total := &worker.Stats{}
	for _, resp := range resps {
		if resp.Stats != nil {
			total.Merge(resp.Stats)
		}
	}
	if full {
		r.res.Harness.Processes = max(r.res.Harness.Processes, total.Processes)
	}
	return total, err
}

// finalStats collects full statistics even after ctx has ended.
func (r *run) finalStats() *worker.Stats {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, _ := r.stats(ctx, true)
	return s
}

// split divides n connections over the workers: share and first id of each.
func (r *run) split(n int) (shares, firsts []int) {
	w := len(r.workers)
	first := 0
	for i := range w {
		s := n / w
		if i < n%w {
			s++
		}
		shares = append(shares, s)
		firsts = append(firsts, first)
		first += s
	}
	return shares, firsts
}

// openAll dials n connections over the workers at rate per second in
// total, counted in phase, and returns when every dial is resolved.
func (r *run) openAll(ctx context.Context, n int, rate float64, phase int) error {
	shares, firsts := r.split(n)
	_, err := r.each(ctx, func(i int) worker.Request {
		wr := 0.0
		if rate > 0 && n > 0 {
			wr = rate * float64(shares[i]) / float64(n)
		}
		return worker.Request{Op: worker.OpOpen, Open: &worker.OpenArgs{First: firsts[i], Count: shares[i], Rate: wr, Phase: phase}}
	})
	return err
}

// closeAll closes every connection, with closing handshakes if graceful.
func (r *run) closeAll(graceful bool) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CloseTimeout+10*time.Second)
	defer cancel()
	r.each(ctx, func(int) worker.Request {
		return worker.Request{Op: worker.OpClose, Close: &worker.CloseArgs{Graceful: graceful}}
	})
}

func (r *run) countError(kind string) {
	r.mu.Lock()
	r.extra[kind]++
	r.mu.Unlock()
}

// errorsOf merges the workers' error counts with the coordinator's.
func (r *run) errorsOf(s *worker.Stats) map[string]int64 {
	out := map[string]int64{}
	for k, v := range s.Errors {
		out[k] += v
	}
	r.mu.Lock()
	for k, v := range r.extra {
		out[k] += v
	}
	r.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	return out
}

// connectReport summarises phase p.
func connectReport(s *worker.Stats, p int) report.Connect {
	ph := s.Phase(p)
	c := report.Connect{Attempted: ph.Dialed, Opened: ph.Opened, Failed: ph.Failed, Time: report.Summarise(ph.Connect)}
	if ph.LastOpen > ph.FirstDial && ph.FirstDial > 0 {
		d := time.Duration(ph.LastOpen - ph.FirstDial)
		c.Seconds = report.Sec(d)
		c.Rate = float64(ph.Opened) / d.Seconds()
	}
	return c
}

// harnessMemory records the harness processes' memory growth.
func (r *run) harnessMemory(before, after *worker.Stats) {
	h := &r.res.Harness
	h.RSSBefore, h.RSSAfter, h.HeapAfter, h.Conns = before.RSS, after.RSS, after.HeapInUse, after.Open
	h.CPUSeconds = after.CPUSeconds
	if after.Open > 0 && after.RSS > 0 {
		h.PerConn = float64(after.RSS-before.RSS) / float64(after.Open)
	}
}

// memSample is the server's memory at one moment.
type memSample struct {
	rss, metricsRSS, metricsConns int64
}

func (r *run) serverMem(ctx context.Context) memSample {
	var m memSample
	if r.cfg.ServerPID != 0 {
		if v, err := procstat.RSS(r.cfg.ServerPID); err == nil {
			m.rss = v
		} else {
			r.countError("server_pid_unreadable")
		}
	}
	if r.cfg.MetricsURL != "" {
		got, err := procstat.Scrape(ctx, r.http, r.cfg.MetricsURL, "process_resident_memory_bytes", r.cfg.ConnGauge)
		if err != nil {
			r.countError("metrics_unreadable")
		} else {
			m.metricsRSS = int64(got["process_resident_memory_bytes"])
			m.metricsConns = int64(got[r.cfg.ConnGauge])
		}
	}
	return m
}

// serverCPU returns the server process's CPU time so far, or -1 if no
// server PID was given or it cannot be read.
func (r *run) serverCPU() time.Duration {
	if r.cfg.ServerPID == 0 {
		return -1
	}
	d, err := procstat.CPU(r.cfg.ServerPID)
	if err != nil {
		r.countError("server_pid_unreadable")
		return -1
	}
	return d
}

// serverReport compares two samples taken around open connections.
func (r *run) serverReport(before, after memSample, open int64) *report.ServerMemory {
	if r.cfg.ServerPID == 0 && r.cfg.MetricsURL == "" {
		return nil
	}
	s := &report.ServerMemory{PID: r.cfg.ServerPID, RSSBefore: before.rss, RSSAfter: after.rss, Conns: open,
		MetricsURL: r.cfg.MetricsURL, MetricsRSSBefore: before.metricsRSS, MetricsRSSAfter: after.metricsRSS, MetricsConns: after.metricsConns}
	if open > 0 && after.rss > 0 {
		s.PerConn = float64(after.rss-before.rss) / float64(open)
	}
	if n := after.metricsConns - before.metricsConns; n > 0 && after.metricsRSS > 0 {
		s.MetricsPerConn = float64(after.metricsRSS-before.metricsRSS) / float64(n)
	}
	return s
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// progress prints a status line every half second until the returned
// function is called.
func (r *run) progress(ctx context.Context) func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		var lastMsgs int64
		last := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(r.cfg.Progress, "\r\x1b[K")
				return
			case <-t.C:
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := r.stats(sctx, false)
			cancel()
			if err != nil && s.Processes == 0 {
				continue
			}
			now := time.Now()
			rate := float64(s.Messages-lastMsgs) / now.Sub(last).Seconds()
			lastMsgs, last = s.Messages, now
			var opened int64
			for _, p := range s.Phases {
				opened += p.Opened
			}
			fmt.Fprintf(r.cfg.Progress, "\r\x1b[K[%s %5.1fs] open %d (opened %d, pending %d, ready %d) | msgs %d (%s/s) | errors %d",
				r.cfg.Scenario, time.Since(r.res.Started).Seconds(), s.Open, opened, s.Pending, s.Ready,
				s.Messages, report.Count(rate), s.ErrorCount())
		}
	}()
	return func() { close(done); <-finished }
}
