package jsbroker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// retryWait is how soon the monitor retries a check that failed (for
// example while NATS reconnects or a stream elects a leader).
const retryWait = 250 * time.Millisecond

// wake asks the monitor to look at new subscriptions and suspects now.
func (b *Broker) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// suspectEpoch asks the monitor to re-read st's epoch. Any goroutine.
func (b *Broker) suspectEpoch(st *stream) {
	b.mu.Lock()
	found := false
	for _, s := range b.suspect {
		found = found || s == st
	}
	if !found {
		b.suspect = append(b.suspect, st)
	}
	b.mu.Unlock()
	b.wake()
}

// monitor is the goroutine that gives new subscriptions their first Head,
// checks positions and epochs every CheckInterval and after each
// reconnect, and re-reads the epoch of streams a worker suspects.
func (b *Broker) monitor() {
	defer b.wg.Done()
	tick := time.NewTicker(b.cfg.CheckInterval)
	defer tick.Stop()
	status := b.status
	var retry <-chan time.Time
	full := false // a full check is due
	for {
		select {
		case <-b.done:
			return
		case <-b.kick:
		case <-retry:
		case _, ok := <-status:
			if !ok {
				status = nil
				continue
			}
			full = true // reconnected: republished messages were lost meanwhile
		case <-tick.C:
			full = true
		}
		retry = nil
		ok := b.startFresh()
		ok = b.checkSuspects() && ok
		if full {
			if b.checkAll() {
				full = false
			} else {
				ok = false
			}
		}
		if !ok {
			retry = time.After(retryWait)
		}
	}
}

// startFresh gives every new subscription its first Head, one multi_last
// request per stream and 1,024 topics. It reports false when a request
// failed; the subscriptions it did not serve wait for the retry.
func (b *Broker) startFresh() bool {
	b.mu.Lock()
	fresh := b.fresh
	b.fresh = nil
	b.mu.Unlock()
	if len(fresh) == 0 {
		return true
	}
	byStream := make(map[*stream][]*dsub)
	for _, d := range fresh {
		if !d.ended.Load() {
			byStream[d.st] = append(byStream[d.st], d)
		}
	}
	var failed []*dsub
	for st, subs := range byStream {
		heads, err := b.lastOffsets(st, subs)
		if err != nil {
			b.log.Debug("jsbroker: looking up where histories end", "stream", st.name, "err", err)
			failed = append(failed, subs...)
			continue
		}
		for _, d := range subs {
			head := heads[d.subject]
			b.toWorker(d.p, func() { d.start(head) })
		}
	}
	if len(failed) > 0 {
		b.mu.Lock()
		b.fresh = append(b.fresh, failed...)
		b.mu.Unlock()
		return false
	}
	return true
}

// checkSuspects re-reads the epoch of every suspected stream.
func (b *Broker) checkSuspects() bool {
	b.mu.Lock()
	sus := b.suspect
	b.suspect = nil
	b.mu.Unlock()
	ok := true
	for _, st := range sus {
		if !b.checkStream(st) {
			ok = false
			b.mu.Lock()
			b.suspect = append(b.suspect, st)
			b.mu.Unlock()
		}
	}
	return ok
}

// checkAll checks every stream. It reports false if any check failed.
func (b *Broker) checkAll() bool {
	ok := true
	for _, st := range b.streams {
		ok = b.checkStream(st) && ok
	}
	return ok
}

// checkStream re-reads st's epoch (recreating the stream if it is gone),
// then looks up where each subscribed topic's history ends: after an epoch
// change every subscription is reset to it, otherwise each is told what
// the check saw (dsub.observe).
func (b *Broker) checkStream(st *stream) bool {
	changed, err := b.readEpoch(st)
	if err != nil {
		b.log.Debug("jsbroker: stream check", "stream", st.name, "err", err)
		return false
	}
	if changed {
		b.log.Warn("jsbroker: history replaced (stream recreated); its subscribers start a new epoch",
			"stream", st.name, "epoch", st.currentEpoch())
	}
	st.mu.Lock()
	subs := make([]*dsub, 0, len(st.subs))
	for d := range st.subs {
		subs = append(subs, d)
	}
	st.mu.Unlock()
	if len(subs) == 0 {
		return true
	}
	heads, err := b.lastOffsets(st, subs)
	if err != nil {
		b.log.Debug("jsbroker: position check", "stream", st.name, "err", err)
		return false
	}
	for _, d := range subs {
		head := heads[d.subject]
		if changed {
			b.toWorker(d.p, func() { d.reset(head) })
		} else {
			b.toWorker(d.p, func() { d.observe(head) })
		}
	}
	return true
}

// readEpoch reads st's stream info, recreating the stream when it is
// missing, and reports whether the epoch changed.
func (b *Broker) readEpoch(st *stream) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*b.cfg.RequestTimeout)
	defer cancel()
	b.requests.Add(1)
	s, err := b.js.Stream(ctx, st.name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		old := st.currentEpoch()
		if err := b.ensure(ctx, st); err != nil {
			return false, err
		}
		return st.currentEpoch() != old, nil
	}
	if err != nil {
		return false, err
	}
	return st.setEpoch(s.CachedInfo().Created), nil
}
