//go:build linux

package worker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pushd/pushd/loadtest/internal/tmpl"
	"github.com/pushd/pushd/loadtest/internal/wsclient"
	"github.com/pushd/pushd/loadtest/procstat"
)

// Engine runs a worker's client loops and carries out the coordinator's
// requests. It is the same code whether the worker is the coordinator's
// own process or a child process.
type Engine struct {
	// Static after New.
	setup  Setup
	topics []string
	path   tmpl.T
	sub    tmpl.T
	loops  []*loopState

	mu  sync.Mutex
	ops map[uint64]context.CancelFunc // mu guards ops
}

// New starts an engine's loops. Safe to call from any goroutine.
func New(s Setup) (*Engine, error) {
	if len(s.Topics) == 0 {
		return nil, errors.New("worker: no topics")
	}
	target, err := netip.ParseAddrPort(s.Target)
	if err != nil {
		return nil, fmt.Errorf("worker: target: %w", err)
	}
	e := &Engine{setup: s, topics: s.Topics, ops: make(map[uint64]context.CancelFunc)}
	if e.path, err = tmpl.Parse(s.Path); err != nil {
		return nil, err
	}
	if e.sub, err = tmpl.Parse(s.SubscribeFrame); err != nil {
		return nil, err
	}
	var sources []netip.Addr
	for _, src := range s.Sources {
		a, err := netip.ParseAddr(src)
		if err != nil {
			return nil, fmt.Errorf("worker: source: %w", err)
		}
		sources = append(sources, a)
	}
	cfg := wsclient.Config{
		Target: target, Host: s.Host, ExtraHeaders: s.ExtraHeaders, Sources: sources,
		HandshakeTimeout: s.HandshakeTimeout, CloseTimeout: s.CloseTimeout,
		MaxInflight: s.MaxInflight, ReadBufferSize: s.ReadBufferSize,
	}
	for range max(s.Loops, 1) {
		ls := newLoopState(e)
		l, err := wsclient.NewLoop(cfg, ls)
		if err != nil {
			e.Close()
			return nil, err
		}
		ls.l = l
		e.loops = append(e.loops, ls)
		go l.Run()
	}
	return e, nil
}

// Close stops every loop, dropping their connections, and waits for them.
// Safe to call from any goroutine, more than once.
func (e *Engine) Close() {
	for _, ls := range e.loops {
		ls.l.Stop()
	}
	for _, ls := range e.loops {
		<-ls.l.Done()
	}
}

// Handle carries out one request and returns its response. It may be
// called from several goroutines at once: a stats request is answered
// while an open is in progress. ctx cancels the request, and so does a
// later cancel request naming its ID.
func (e *Engine) Handle(ctx context.Context, req Request) Response {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.ops[req.ID] = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.ops, req.ID)
		e.mu.Unlock()
	}()
	resp := Response{ID: req.ID}
	var err error
	switch req.Op {
	case OpOpen:
		err = e.open(ctx, req.Open)
	case OpChurn:
		err = e.churn(ctx, req.Churn)
	case OpStorm:
		resp.Start, err = e.storm(ctx, req.Storm)
	case OpClose:
		err = e.closeAll(ctx, req.Close)
	case OpStats:
		resp.Stats = e.Stats(req.Full)
	case OpCancel:
		e.mu.Lock()
		if c := e.ops[req.Cancel]; c != nil {
			c()
		}
		e.mu.Unlock()
	default:
		err = fmt.Errorf("worker: unknown op %q", req.Op)
	}
	if err != nil {
		resp.Err = err.Error()
	}
	return resp
}

func checkPhase(p int) error {
	if p < 0 || p >= MaxPhases {
		return fmt.Errorf("worker: phase %d out of range", p)
	}
	return nil
}

// dialRange dials ids [from, to) of first+…, each on loop id % len(loops).
func (e *Engine) dialRange(first, from, to, phase int) {
	n := len(e.loops)
	for li, ls := range e.loops {
		ls.l.Execute(func() {
			for i := from; i < to; i++ {
				if gid := first + i; gid%n == li {
					ls.dial(gid, phase)
				}
			}
		})
	}
}

func (e *Engine) open(ctx context.Context, a *OpenArgs) error {
	if a == nil || a.Count < 0 {
		return errors.New("worker: bad open arguments")
	}
	if err := checkPhase(a.Phase); err != nil {
		return err
	}
	err := pace(ctx, a.Count, a.Rate, func(from, to int) { e.dialRange(a.First, from, to, a.Phase) })
	if err != nil {
		return err
	}
	return e.waitFor(ctx, func(s *Stats) bool { return s.Pending == 0 })
}

func (e *Engine) churn(ctx context.Context, a *ChurnArgs) error {
	if a == nil || a.Rate <= 0 || a.Duration <= 0 {
		return errors.New("worker: churn needs a rate and a duration")
	}
	if err := checkPhase(a.Phase); err != nil {
		return err
	}
	for _, ls := range e.loops {
		ls.l.Execute(func() { ls.lifetimeOf[a.Phase] = a.Lifetime })
	}
	count := int(a.Rate * a.Duration.Seconds())
	if err := pace(ctx, count, a.Rate, func(from, to int) { e.dialRange(a.First, from, to, a.Phase) }); err != nil {
		return err
	}
	return e.waitFor(ctx, func(s *Stats) bool { return s.Pending == 0 && s.Phase(a.Phase).Open == 0 })
}

func (e *Engine) storm(ctx context.Context, a *StormArgs) (int64, error) {
	if a == nil || a.Count < 0 {
		return 0, errors.New("worker: bad storm arguments")
	}
	if err := checkPhase(a.Phase); err != nil {
		return 0, err
	}
	start := time.Now().UnixNano()
	n := len(e.loops)
	for i, ls := range e.loops {
		share := a.Count / n
		if i < a.Count%n {
			share++
		}
		ls.l.Execute(func() { ls.storm(share, a.Phase) })
	}
	return start, e.waitFor(ctx, func(s *Stats) bool { return s.Pending == 0 })
}

func (e *Engine) closeAll(ctx context.Context, a *CloseArgs) error {
	graceful := a != nil && a.Graceful
	for _, ls := range e.loops {
		ls.l.Execute(func() { ls.closeAll(graceful) })
	}
	return e.waitFor(ctx, func(s *Stats) bool { return s.Open == 0 && s.Pending == 0 })
}

// waitFor polls the loops' statistics until done reports true.
func (e *Engine) waitFor(ctx context.Context, done func(*Stats) bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if done(e.Stats(false)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Stats merges the loops' statistics; full adds histograms and this
// process's memory. Safe for concurrent use.
func (e *Engine) Stats(full bool) *Stats {
	total := &Stats{Processes: 1}
	ch := make(chan *Stats, len(e.loops))
	want := 0
	for _, ls := range e.loops {
		if ls.l.Execute(func() { ch <- ls.snapshot(full) }) {
			want++
		}
	}
	for range want {
		select {
		case s := <-ch:
			total.Merge(s)
		case <-time.After(5 * time.Second):
			// A loop that stops between Execute and running the task
			// still runs it (Run drains its queue), so this is a bug
			// guard, not an expected path.
			return total
		}
	}
	if full {
		total.RSS = procstat.SelfRSS()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		total.HeapInUse = int64(ms.HeapInuse)
		var ru unix.Rusage
		if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
			total.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
		}
	}
	return total
}

// pace calls emit(from, to) so that item i is emitted at start + i/rate,
// batching whatever is due at each wake-up. rate <= 0 emits everything at
// once. It returns ctx's error if ctx ends first.
func pace(ctx context.Context, count int, rate float64, emit func(from, to int)) error {
	if rate <= 0 {
		if count > 0 {
			emit(0, count)
		}
		return ctx.Err()
	}
	start := time.Now()
	sent := 0
	for sent < count {
		due := min(count, int(time.Since(start).Seconds()*rate)+1)
		if due > sent {
			emit(sent, due)
			sent = due
		}
		if sent == count {
			break
		}
		wait := time.Until(start.Add(time.Duration(float64(sent) / rate * float64(time.Second))))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(wait, time.Millisecond)):
		}
	}
	return nil
}
