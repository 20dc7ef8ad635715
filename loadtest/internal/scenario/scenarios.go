//go:build linux

package scenario

import (
	"context"
	"errors"
	"time"

	"github.com/pushd/pushd/loadtest/internal/hist"
	"github.com/pushd/pushd/loadtest/internal/payload"
	"github.com/pushd/pushd/loadtest/internal/report"
	"github.com/pushd/pushd/loadtest/internal/worker"
)

// idle opens Conns connections, holds them for Hold while they answer the
// server's pings, and measures the server's memory growth.
func (r *run) idle(ctx context.Context) error {
	c := r.cfg
	memBefore := r.serverMem(ctx)
	hBefore, _ := r.stats(ctx, true)
	err := r.openAll(ctx, c.Conns, c.ConnectRate, 0)
	held := time.Now()
	if err == nil {
		err = sleep(ctx, c.Hold)
	}
	hold := time.Since(held)
	final := r.finalStats()
	memAfter := r.serverMem(context.Background())
	r.closeAll(false)
	conn := connectReport(final, 0)
	r.res.Connect = &conn
	r.res.Idle = &report.Idle{Hold: report.Sec(hold), OpenAtEnd: final.Open, Pings: final.Pings, ClosedByServer: final.ClosedByServer}
	r.res.Server = r.serverReport(memBefore, memAfter, final.Open)
	r.harnessMemory(hBefore, final)
	r.res.Errors = r.errorsOf(final)
	return err
}

// fanout opens Conns subscribers, waits until each has received a probe,
// then publishes each step's messages at its rate and counts what arrives.
func (r *run) fanout(ctx context.Context) error {
	c := r.cfg
	f := &report.Fanout{Subscribers: c.Conns, Topics: len(c.Topics), Size: c.Size, Publisher: c.Publisher}
	r.res.Fanout = f
	hBefore, _ := r.stats(ctx, true)
	err := r.openAll(ctx, c.Conns, c.ConnectRate, 0)
	var pub publisher
	if err == nil {
		pub, err = newPublisher(ctx, c)
	}
	if err == nil {
		defer pub.Close()
		f.Ready, err = r.warmup(ctx, pub)
	}
	type stepRun struct {
		start    int64 // wall clock of the first publish, Unix ns
		pubCalls *hist.Hist
		cpu      time.Duration // server CPU over the step, -1 if unknown
	}
	var runs []stepRun
	seq := make([]int64, len(c.Topics))
	for k := 0; err == nil && k < len(c.Rates); k++ {
		st := report.Step{Rate: c.Rates[k], Messages: c.Messages[k]}
		var before *worker.Stats
		if before, err = r.stats(ctx, false); err != nil {
			break
		}
		published := make([]int64, len(c.Topics))
		calls := &hist.Hist{}
		cpuBefore := r.serverCPU()
		start := time.Now()
		runs = append(runs, stepRun{start: start.UnixNano(), pubCalls: calls, cpu: -1})
		var buf []byte
		for i := 0; i < st.Messages && err == nil; i++ {
			if err = sleep(ctx, time.Until(start.Add(time.Duration(float64(i)/st.Rate*1e9)))); err != nil {
				break
			}
			t := i % len(c.Topics)
			seq[t]++
			t0 := time.Now()
			buf = payload.Append(buf[:0], payload.Fields{Time: t0.UnixNano(), Step: k, Seq: seq[t]}, c.Size)
			if perr := pub.Publish(ctx, c.Topics[t], buf); perr != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
					break
				}
				st.PublishErrors++
				r.countError(publishKind(perr))
				continue
			}
			calls.Record(int64(time.Since(t0)))
			published[t]++
		}
		if ferr := pub.Flush(ctx); ferr != nil && err == nil {
			err = ferr
		}
		pubEnd := time.Now()
		st.PublishSeconds = report.Sec(pubEnd.Sub(start))
		for t, n := range published {
			st.Published += n
			if t < len(before.TopicOpen) {
				st.Expected += n * before.TopicOpen[t]
			}
		}
		if st.PublishSeconds > 0 {
			st.AchievedRate = float64(st.Published) / float64(st.PublishSeconds)
		}
		f.Steps = append(f.Steps, st)
		if err == nil {
			err = r.drain(ctx, k, st.Expected, pubEnd)
		}
		if cpuAfter := r.serverCPU(); cpuBefore >= 0 && cpuAfter >= 0 {
			runs[k].cpu = cpuAfter - cpuBefore
		}
	}
	final := r.finalStats()
	r.harnessMemory(hBefore, final)
	r.closeAll(false)
	conn := connectReport(final, 0)
	r.res.Connect = &conn
	f.Probes = final.Probes
	for k := range f.Steps {
		st := &f.Steps[k]
		got := final.Step(k)
		st.Delivered, st.Dup, st.OutOfOrder = got.Unique, got.Dup, got.OutOfOrder
		st.Lost = max(0, st.Expected-got.Unique)
		st.Latency = report.Summarise(got.Latency)
		st.PublishCall = report.Summarise(runs[k].pubCalls)
		if got.LastRecv > runs[k].start {
			st.DeliveriesPerSec = float64(got.Unique) / time.Duration(got.LastRecv-runs[k].start).Seconds()
		}
		if cpu := runs[k].cpu; cpu >= 0 {
			st.ServerCPUSeconds = cpu.Seconds()
			if st.Delivered > 0 {
				st.ServerCPUPerDelivery = float64(cpu.Nanoseconds()) / float64(st.Delivered)
			}
		}
	}
	r.res.Errors = r.errorsOf(final)
	return err
}

// warmup publishes a probe to every topic every 200 ms until every open
// subscriber has received one, proving that its subscription is in place
// wherever the server sets subscriptions up asynchronously.
func (r *run) warmup(ctx context.Context, pub publisher) (int64, error) {
	deadline := time.Now().Add(r.cfg.Warmup)
	var buf []byte
	for {
		s, err := r.stats(ctx, false)
		if err != nil {
			return 0, err
		}
		if s.Ready >= s.Open || time.Now().After(deadline) {
			if s.Open == 0 {
				return 0, errors.New("no subscriber is connected")
			}
			return s.Ready, nil
		}
		for _, t := range r.cfg.Topics {
			buf = payload.Append(buf[:0], payload.Fields{Time: time.Now().UnixNano()}, 0)
			if err := pub.Publish(ctx, t, buf); err != nil {
				if ctx.Err() != nil {
					return s.Ready, ctx.Err()
				}
				r.countError(publishKind(err))
			}
		}
		pub.Flush(ctx)
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return s.Ready, err
		}
	}
}

// drain waits until step k's expected deliveries have arrived, or Drain
// has passed since the last publish.
func (r *run) drain(ctx context.Context, k int, expected int64, pubEnd time.Time) error {
	for {
		s, err := r.stats(ctx, false)
		if err != nil {
			return err
		}
		if s.Step(k).Unique >= expected || time.Since(pubEnd) > r.cfg.Drain {
			return nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// churn opens ChurnRate connections per second for ChurnDuration, each
// closed after Lifetime, then drops Storm clients at once and lets them
// reconnect together.
func (r *run) churn(ctx context.Context) error {
	c := r.cfg
	ch := &report.Churn{Rate: c.ChurnRate, Duration: report.Sec(c.ChurnDuration), Lifetime: report.Sec(c.Lifetime)}
	r.res.Churn = ch
	hBefore, _ := r.stats(ctx, true)
	const steady, stormOpen, stormRedial = 0, 1, 2
	n := len(r.workers)
	_, err := r.each(ctx, func(i int) worker.Request {
		return worker.Request{Op: worker.OpChurn, Churn: &worker.ChurnArgs{
			First: i * 10_000_000, Rate: c.ChurnRate / float64(n), Duration: c.ChurnDuration, Lifetime: c.Lifetime, Phase: steady}}
	})
	var stormStart int64
	var mid *worker.Stats
	if err == nil && c.Storm > 0 {
		err = r.openAll(ctx, c.Storm, 0, stormOpen)
		if err == nil {
			mid = r.finalStats()
			shares, _ := r.split(c.Storm)
			var resps []worker.Response
			resps, err = r.each(ctx, func(i int) worker.Request {
				return worker.Request{Op: worker.OpStorm, Storm: &worker.StormArgs{Count: shares[i], Phase: stormRedial}}
			})
			for _, resp := range resps {
				if resp.Start != 0 && (stormStart == 0 || resp.Start < stormStart) {
					stormStart = resp.Start
				}
			}
		}
	}
	final := r.finalStats()
	if mid != nil {
		r.harnessMemory(hBefore, mid)
	}
	r.res.Harness.CPUSeconds = final.CPUSeconds
	r.closeAll(true)
	ch.Steady = connectReport(final, steady)
	if c.Storm > 0 {
		ph := final.Phase(stormRedial)
		s := &report.Storm{Count: c.Storm, Reconnected: ph.Opened, Failed: ph.Failed, Time: report.Summarise(ph.Connect)}
		if stormStart > 0 && ph.LastOpen > stormStart {
			d := time.Duration(ph.LastOpen - stormStart)
			s.Seconds = report.Sec(d)
			s.Rate = float64(ph.Opened) / d.Seconds()
		}
		ch.Storm = s
	}
	r.res.Errors = r.errorsOf(final)
	return err
}
