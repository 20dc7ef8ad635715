package topics

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/metric"
)

// Shard is the part of the registry owned by one event loop: the loop's
// local subscribers per topic, and the queue through which the workers hand
// messages to the loop. Its Subscribe and Unsubscribe methods must be called
// only on the loop's goroutine; Stop is safe for concurrent use.
type Shard struct {
	// Immutable after NewShard.
	hub     *Hub
	loop    Loop
	drainFn func()

	// Owned by the loop goroutine.
	topics  map[string]*shardTopic
	spare   []queued                  // the drain's second queue slice, reused so steady state allocates nothing
	cur     []queued                  // the queue slice being drained: delivered up to next, written up to flushed
	next    int                       // cur[:next] are delivered
	flushed int                       // cur[:flushed] are written and released
	after   []*Message                // references to drop once the drain's flush completes (replays, held messages)
	ext     map[*Subscription]*subExt // resume state of the subscriptions with ext set

	// mu guards queue, scheduled and stopped. Workers take it to append; the
	// drain takes it to swap the queue out.
	mu        sync.Mutex
	queue     []queued
	scheduled bool // a drain has been handed to Loop.Execute and has not yet taken the queue
	stopped   bool // the loop is gone: Execute failed, or Stop was called

	// Statistics. Written by workers and the drain, read by Stats.
	handoffs     atomic.Int64 // Loop.Execute calls that scheduled a drain
	handBacks    atomic.Int64 // drains that ran out of their slice and handed the rest back to the loop
	deliveries   atomic.Int64 // Subscriber.Deliver calls
	droppedFull  atomic.Int64 // messages refused because queue was at ShardQueueLen
	droppedStop  atomic.Int64 // messages released undelivered because the loop stopped
	stopReported atomic.Bool
	latency      *metric.Histogram // arrival → written on this loop, seconds; written by the drain
}

// queued is one message waiting in a shard's queue for its topic's local
// subscribers, or a control item (m nil).
type queued struct {
	st *shardTopic
	m  *Message
	c  *control
}

// control is an event for the loop that must keep its place among a
// topic's messages: a resume's outcome, a loss on a durable topic, or a
// function to run (a history read's answer).
type control struct {
	kind   int
	x      *Subscription  // ctlResolve
	rec    codec.Recovery // ctlResolve: the outcome
	replay []*Message     // ctlResolve: one reference each, owned by the item
	pos    uint64         // ctlResolve: deliver only live messages above this offset
	live   codec.Position // ctlResolve: where it goes live without a replay (Offset 0: unknown)
	reason string         // ctlLoss
	fn     func()         // ctlFunc
}

// Kinds of control items.
const (
	ctlResolve = iota
	ctlLoss
	ctlFunc
)

// shardTopic is one shard's local subscribers of one topic. It exists while
// the shard has at least one, and is registered in the topic's state for
// that time.
type shardTopic struct {
	// Immutable after creation (ts is set by Hub.acquire before the shard
	// publishes st anywhere).
	name  string
	shard *Shard
	ts    *topicState

	// Owned by the shard's loop goroutine.
	subs []*Subscription
}

// Subscription is one Subscriber's interest in one topic on one Shard.
type Subscription struct {
	// Immutable after Subscribe.
	st  *shardTopic
	sub Subscriber

	// Owned by the shard's loop goroutine.
	idx int32 // the index in st.subs, so Unsubscribe is an O(1) swap-remove; -1 once unsubscribed
	// ext reports that the subscription has state in Shard.ext: a Resume
	// in progress, or a position to skip live messages up to. Kept out of
	// the struct so that the many subscriptions without either stay 32
	// bytes.
	ext bool
}

// subExt is the state of a Subscription with ext set. Owned by the
// shard's loop goroutine.
type subExt struct {
	pos  uint64   // deliver only messages above this offset; 0: no filter
	wait *pending // non-nil until the Resume that made it has its outcome
}

// pending is a Subscription of a Resume whose outcome is not complete yet.
// Owned by the shard's loop goroutine.
type pending struct {
	batch    *resumeBatch
	recIdx   int  // index of its Recovery in batch.recs; -1 without a position
	skip     bool // until resolved: drop live messages (the replay will hold them)
	resolved bool
	lost     string         // a loss the subscription must be told of once it goes live
	pos      uint64         // from the outcome
	live     codec.Position // from the outcome: see Shard.LiveAt
	replay   []*Message     // from the outcome; one reference each
	held     []*Message     // live messages after the outcome; one reference each
}

// resumeBatch is one Resume call: its subscriptions get live messages only
// after done ran with every outcome. Owned by the shard's loop goroutine.
type resumeBatch struct {
	subs []*Subscription
	recs []codec.Recovery
	left int // subscriptions without their outcome yet
	done func([]codec.Recovery)
}

// Want is one topic of a Resume.
type Want struct {
	Topic string
	// Since, when set, is the position to resume after: every stored
	// message of the topic after it is replayed before the live ones.
	Since *codec.Position
}

// Topic returns the subscribed topic name. Safe for concurrent use.
func (x *Subscription) Topic() string { return x.st.name }

// Subscribe adds sub as a local subscriber of topic. When sub is the node's
// first subscriber of topic on any shard, the Hub subscribes to the topic's
// NATS subject; from then on the topic's sequence numbers count from 1 again
// (they are per node and per period of interest, so a client can tell a new
// subscription's numbering from a gap). The caller ensures that no
// (topic, sub) pair is subscribed twice. It returns an error wrapping
// codec.ErrInvalidTopic for a bad name, ErrClosed after Hub.Close, and the
// NATS error if the upstream subscription fails (for example on a closed
// connection; while nats.go is reconnecting it succeeds, and the
// subscription is sent on reconnect). Loop goroutine only.
func (s *Shard) Subscribe(topic string, sub Subscriber) (*Subscription, error) {
	if err := codec.ValidTopic(topic); err != nil {
		return nil, fmt.Errorf("topics: subscribe: %w", err)
	}
	return s.subscribe(topic, sub)
}

// subscribe adds sub as a local subscriber of topic, a valid name.
func (s *Shard) subscribe(topic string, sub Subscriber) (*Subscription, error) {
	if s.hub.closed.Load() {
		return nil, ErrClosed
	}
	st := s.topics[topic]
	if st == nil {
		// Clone: the name becomes a long-lived map key, and the caller's
		// string may view a reused read buffer.
		st = &shardTopic{name: strings.Clone(topic), shard: s}
		if err := s.hub.acquire(st); err != nil {
			return nil, err
		}
		s.topics[st.name] = st
	}
	x := &Subscription{st: st, sub: sub, idx: int32(len(st.subs))}
	st.subs = append(st.subs, x)
	s.hub.subscriptions.Add(1)
	return x, nil
}

// Resume subscribes sub to every topic of wants, like Subscribe, and
// resumes those with a position: it returns at once, without waiting for
// the network, and done runs later on the loop goroutine with one
// codec.Recovery per want that had a Since, in the order of wants. A
// durable topic recovers when every message after the position is still
// in the history (reason codec.ReasonEpochChanged, ReasonTrimmed,
// ReasonLimit when more than Config.MaxReplay were missed, or
// ReasonUnavailable when the history could not be read in time); a topic
// without history answers ReasonNotDurable. Either way the subscription
// stays, and goes live.
//
// A durable topic without a position also waits, until the node knows
// where the topic's history ended when its interest began (one JetStream
// request for the node's first subscriber; none after): from done on,
// every message stored is delivered to it.
//
// Order, for each subscription of the call: nothing is delivered before
// done returns (so the caller can reply first); then the replayed messages,
// oldest first; then the live ones, with no gap and no duplicate between
// the two. Live messages that arrive meanwhile are held (at most
// Config.HoldLen per subscription; past it a recovered topic turns into
// ReasonLimit and other topics lose their oldest held messages). done must
// not subscribe or unsubscribe.
//
// With no wants, done still runs, later, with no outcomes.
//
// Errors are Subscribe's; on error no subscription is made and done never
// runs. The caller ensures that no (topic, sub) pair is subscribed twice.
// Loop goroutine only.
func (s *Shard) Resume(sub Subscriber, wants []Want, done func([]codec.Recovery)) ([]*Subscription, error) {
	for _, w := range wants {
		if err := codec.ValidTopic(w.Topic); err != nil {
			return nil, fmt.Errorf("topics: subscribe: %w", err)
		}
	}
	if len(wants) == 0 {
		// No subscription would ever complete the batch.
		if done != nil {
			s.Defer(func() { done(nil) })
		}
		return nil, nil
	}
	b := &resumeBatch{done: done, left: len(wants)}
	xs := make([]*Subscription, 0, len(wants))
	for _, w := range wants {
		x, err := s.subscribe(w.Topic, sub)
		if err != nil {
			for _, x := range xs {
				s.Unsubscribe(x)
			}
			return nil, err
		}
		pw := &pending{batch: b, recIdx: -1}
		s.setExt(x).wait = pw
		if w.Since != nil {
			pw.recIdx = len(b.recs)
			b.recs = append(b.recs, codec.Recovery{Topic: x.st.name})
		}
		xs = append(xs, x)
	}
	b.subs = xs
	for i, w := range wants {
		x := xs[i]
		d := x.st.ts.dur
		switch {
		case w.Since == nil && d != nil:
			d.join(x)
		case w.Since == nil:
			s.enqueueControl(x.st, &control{kind: ctlResolve, x: x})
		case d == nil:
			rec := codec.Recovery{Topic: x.st.name, Reason: codec.ReasonNotDurable}
			s.enqueueControl(x.st, &control{kind: ctlResolve, x: x, rec: rec})
		default:
			s.ext[x].wait.skip = true
			d.catchUp(&catchUp{x: x, since: *w.Since})
		}
	}
	return xs, nil
}

// LiveAt reports, while the done of the Resume that made x runs, where a
// durable subscription of it went live without a replay: every message
// stored after that position reaches x (the subscribe's reply can tell
// the client where it stands, to resume from there later). ok is false
// for a topic that recovered (its position is the one it resumed from), a
// topic without history, an outcome that came without one (the history
// unavailable), and outside done. Loop goroutine only.
func (s *Shard) LiveAt(x *Subscription) (pos codec.Position, ok bool) {
	if x == nil || !x.ext {
		return codec.Position{}, false
	}
	w := s.ext[x].wait
	if w == nil || !w.resolved || w.live.Offset == 0 && w.live.Epoch == "" {
		return codec.Position{}, false
	}
	return w.live, true
}

// Defer runs fn on the loop goroutine later, after everything already in
// the shard's queue (in particular after the drain in progress has flushed
// what it delivered): for work that must follow a Resume's replay. Loop
// goroutine only.
func (s *Shard) Defer(fn func()) {
	s.enqueueControl(nil, &control{kind: ctlFunc, fn: fn})
}

// PublishWait publishes msgs like Hub.PublishWait, without waiting: done
// runs later on the loop goroutine with the acks (offsets and epochs on
// durable topics). It shares Config.MaxHistoryReads with History: past it,
// done gets ErrBusy. Loop goroutine only.
func (s *Shard) PublishWait(msgs []broker.Outgoing, done func([]broker.Ack, error)) {
	h := s.hub
	reply := func(acks []broker.Ack, err error) {
		s.enqueueControl(nil, &control{kind: ctlFunc, fn: func() { done(acks, err) }})
	}
	select {
	case h.historyReads <- struct{}{}:
	default:
		reply(nil, ErrBusy)
		return
	}
	go func() {
		defer func() { <-h.historyReads }()
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.CatchUpTimeout)
		defer cancel()
		reply(h.PublishWait(ctx, msgs))
	}()
}

// History reads the stored messages of a durable topic after since, like
// Hub.History, without waiting: done runs later on the loop goroutine with
// the answer. Loop goroutine only.
func (s *Shard) History(topic string, since codec.Position, limit int, done func(HistoryPage, error)) {
	h := s.hub
	reply := func(p HistoryPage, err error) {
		s.enqueueControl(nil, &control{kind: ctlFunc, fn: func() { done(p, err) }})
	}
	select {
	case h.historyReads <- struct{}{}:
	default:
		reply(HistoryPage{}, ErrBusy)
		return
	}
	go func() {
		defer func() { <-h.historyReads }()
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.CatchUpTimeout)
		defer cancel()
		reply(h.History(ctx, topic, since, limit))
	}()
}

// Unsubscribe removes x. When x was the node's last subscriber of its topic
// on any shard, the Hub unsubscribes the topic's NATS subject. Unsubscribe
// is idempotent; x must have been returned by this Shard's Subscribe. It must
// not be called from inside Subscriber.Deliver. Loop goroutine only.
func (s *Shard) Unsubscribe(x *Subscription) {
	if x == nil || x.idx < 0 {
		return
	}
	st := x.st
	if st.shard != s {
		panic("topics: Unsubscribe on a Shard the Subscription was not made on")
	}
	if x.ext {
		// The entry stays until the Resume completes: its outcome still
		// counts for the batch.
		if w := s.ext[x].wait; w != nil {
			releaseAll(w.replay)
			releaseAll(w.held)
			w.replay, w.held = nil, nil
		} else {
			s.dropExt(x)
		}
	}
	last := int32(len(st.subs) - 1)
	moved := st.subs[last]
	st.subs[x.idx] = moved
	moved.idx = x.idx
	st.subs[last] = nil
	st.subs = st.subs[:last]
	x.idx = -1
	s.hub.subscriptions.Add(-1)
	if last == 0 {
		delete(s.topics, st.name)
		s.hub.release(st)
		return
	}
	// Give back the memory of a crowd that has left.
	if c := cap(st.subs); c > 64 && len(st.subs) < c/4 {
		st.subs = append([]*Subscription(nil), st.subs...)
	}
}

// Stop tells the shard that its loop has stopped or is about to: messages
// waiting in its queue are released undelivered, and later messages are
// dropped at once instead of being handed to the loop. The shard's
// subscriptions are untouched; Unsubscribe them from the loop goroutine (or
// after it has exited) to release the Hub's upstream interest. Call it when a
// Loop stops without running every function Execute accepted, since such a
// loop never runs the drain that would release them; Hub.Close calls it for
// every shard. Idempotent; safe for concurrent use.
func (s *Shard) Stop() { s.stop(nil) }

// enqueue appends m, for which the caller has taken a reference that now
// belongs to the queue, to the shard's queue, and hands a drain to the loop
// when none is pending: a burst of messages costs one Loop.Execute. Called by
// the workers; safe for concurrent use.
func (s *Shard) enqueue(st *shardTopic, m *Message) {
	s.mu.Lock()
	switch {
	case s.stopped:
		s.mu.Unlock()
		m.Release()
		s.droppedStop.Add(1)
		return
	case len(s.queue) >= s.hub.shardQueueLen:
		s.mu.Unlock()
		m.Release()
		s.droppedFull.Add(1)
		return
	}
	s.queue = append(s.queue, queued{st: st, m: m})
	s.scheduleLocked()
}

// enqueueControl appends a control item to the queue. Unlike messages,
// control items are never refused for a full queue: each stands for a
// subscriber's outcome, and there are at most a few per subscription. On a
// stopped shard the item's references are released. Safe for concurrent
// use.
func (s *Shard) enqueueControl(st *shardTopic, c *control) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		releaseAll(c.replay)
		return
	}
	s.queue = append(s.queue, queued{st: st, c: c})
	s.scheduleLocked()
}

// scheduleLocked hands a drain to the loop unless one is pending, and
// unlocks s.mu (Execute must not run under it).
func (s *Shard) scheduleLocked() {
	schedule := !s.scheduled
	s.scheduled = true
	s.mu.Unlock()
	if !schedule {
		return
	}
	s.handoffs.Add(1)
	if err := s.loop.Execute(s.drainFn); err != nil {
		s.stop(err)
	}
}

// stop marks the shard stopped and releases its queue. err is the Execute
// error that revealed the stop, or nil for Stop.
func (s *Shard) stop(err error) {
	s.mu.Lock()
	s.stopped = true
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	// A drain running right now works on a slice it swapped out earlier,
	// never on q, so nothing is released twice.
	for i := range q {
		if q[i].m != nil {
			q[i].m.Release()
		} else {
			releaseAll(q[i].c.replay)
		}
	}
	s.droppedStop.Add(int64(len(q)))
	if err != nil && s.stopReported.CompareAndSwap(false, true) {
		s.hub.log.Warn("topics: event loop stopped; dropping its messages", "err", err)
	}
}

// flushDeliveries is how many deliveries a drain queues before it flushes.
// At 5,000 subscribers it still lets ~50 messages share one writev per
// socket, while bounding the loop's outbox to ~256K entries.
const flushDeliveries = 1 << 18

// drain delivers the queued messages to the local subscribers of their
// topics and flushes the loop, in slices: it delivers at most
// flushDeliveries, then flushes for what is left of Config.DrainSlice, and
// when time runs out (a flush still writing, or messages not yet
// delivered) it hands the rest back to the loop with Later and returns,
// so the loop serves its sockets, its timers and its other tasks, and the
// Go scheduler its other goroutines, between slices. Messages are released
// once the flush that wrote them completes. It runs on the loop goroutine
// through Loop.Execute.
func (s *Shard) drain() {
	if s.step(s.hub.cfg.DrainSlice) {
		s.handBack()
	}
}

// Settle delivers every message queued for this shard so far and completes
// the loop's flush before it returns, however long that takes: for a loop
// task that must find every message dispatched before it delivered (a
// session moving to another loop hands over what it has received). Loop
// goroutine only.
func (s *Shard) Settle() {
	// The first loop finishes a drain in progress (or, with none, takes
	// the queue); the second takes what was queued meanwhile.
	for s.step(math.MaxInt64) {
	}
	for s.step(math.MaxInt64) {
	}
}

// step is one slice of a drain (see drain), within budget: it finishes a
// flush in progress, or takes the queue when the last slice is done,
// delivers at most flushDeliveries pushes and flushes them. It reports
// whether work is left: a flush still writing, or messages not yet
// delivered. Loop goroutine only.
func (s *Shard) step(budget time.Duration) (more bool) {
	start := time.Now()
	if s.flushed < s.next {
		// A flush of delivered messages is in progress: finish it first.
		if !s.loop.Flush(budget) {
			return true
		}
		s.written()
	}
	if s.next == len(s.cur) {
		s.recycle()
		s.mu.Lock()
		s.cur = s.queue
		s.queue = s.spare[:0]
		s.scheduled = false
		s.mu.Unlock()
		s.spare = nil
	}

	var pending int64
	for ; s.next < len(s.cur) && pending < flushDeliveries; s.next++ {
		it := &s.cur[s.next]
		if it.c != nil {
			pending += s.control(it.st, it.c)
			continue
		}
		// Backwards, and re-checking the length, so that a subscriber
		// removed during the walk (which Deliver must not do, but a
		// failing write path might) costs nobody else a delivery.
		subs := it.st.subs
		for j := len(subs) - 1; j >= 0; j-- {
			if j >= len(it.st.subs) {
				continue
			}
			x := it.st.subs[j]
			if x.ext && !s.passes(x, it.m) {
				continue
			}
			x.sub.Deliver(it.m)
			pending++
		}
	}
	if pending > 0 {
		s.deliveries.Add(pending)
	}
	if pending > 0 || len(s.after) > 0 || s.flushed < s.next {
		if !s.loop.Flush(max(budget-time.Since(start), 0)) {
			return true
		}
		s.written()
	}
	if s.next < len(s.cur) {
		return true // more of the backlog: after the loop's other work
	}
	s.recycle()
	return false
}

// written accounts for the messages delivered since the last complete
// flush, now written (or queued in the transport's outbound buffer): their
// latency from arrival, and their references. Loop goroutine only.
func (s *Shard) written() {
	if s.flushed == s.next && len(s.after) == 0 {
		return
	}
	now := time.Now()
	for i := s.flushed; i < s.next; i++ {
		if m := s.cur[i].m; m != nil {
			s.latency.Observe(now.Sub(m.arrived).Seconds())
			m.Release()
		}
		s.cur[i] = queued{}
	}
	s.flushed = s.next
	releaseAll(s.after)
	clear(s.after)
	s.after = s.after[:0]
}

// recycle keeps the fully drained queue slice as the spare. Loop goroutine
// only.
func (s *Shard) recycle() {
	if s.cur != nil {
		s.spare = s.cur[:0]
	}
	s.cur, s.next, s.flushed = nil, 0, 0
}

// handBack schedules the rest of a drain after the loop's next poll of its
// sockets (Loop.Later), and yields the processor to other goroutines (the NATS client, the HTTP API,
// another loop) in case every processor is running a loop. Loop goroutine
// only.
func (s *Shard) handBack() {
	s.handBacks.Add(1)
	if err := s.loop.Later(s.drainFn); err != nil {
		// The loop is stopping: nothing will write what is queued.
		for i := s.flushed; i < len(s.cur); i++ {
			it := &s.cur[i]
			if it.m != nil {
				it.m.Release()
			} else if i >= s.next {
				releaseAll(it.c.replay) // a control item not handled: it owns its replay
			}
			*it = queued{}
		}
		releaseAll(s.after)
		clear(s.after)
		s.after = s.after[:0]
		s.droppedStop.Add(int64(len(s.cur) - s.next))
		s.recycle()
		s.stop(err)
		return
	}
	runtime.Gosched()
}

// setExt gives x an ext entry (or returns its entry). Loop goroutine only.
func (s *Shard) setExt(x *Subscription) *subExt {
	if x.ext {
		return s.ext[x]
	}
	if s.ext == nil {
		s.ext = make(map[*Subscription]*subExt)
	}
	e := new(subExt)
	s.ext[x] = e
	x.ext = true
	return e
}

// dropExt removes x's ext entry. Loop goroutine only.
func (s *Shard) dropExt(x *Subscription) {
	if x.ext {
		delete(s.ext, x)
		x.ext = false
	}
}

// passes reports whether live message m goes to x, which has an ext
// entry: not while its Resume waits (m is held or skipped instead), and
// not at or below its position; past its position the entry goes. Loop
// goroutine only.
func (s *Shard) passes(x *Subscription, m *Message) bool {
	e := s.ext[x]
	if e.wait != nil {
		s.hold(x, e.wait, m)
		return false
	}
	if m.offset <= e.pos {
		return false
	}
	s.dropExt(x)
	return true
}

// hold keeps m for x, whose Resume is not complete: before x's own outcome
// a durable topic's messages are skipped (the replay will hold them);
// after it, and for topics without a position, they wait for the batch.
// Loop goroutine only.
func (s *Shard) hold(x *Subscription, w *pending, m *Message) {
	if w.skip {
		return
	}
	if len(w.held) >= s.hub.cfg.HoldLen {
		s.hub.heldDropped.Add(1)
		if w.recIdx >= 0 && w.batch.recs[w.recIdx].Recovered {
			// The replay and what follows it no longer fit: not recovered.
			w.batch.recs[w.recIdx] = codec.Recovery{Topic: x.st.name, Reason: codec.ReasonLimit}
			releaseAll(w.replay)
			releaseAll(w.held)
			w.replay, w.held, w.pos = nil, w.held[:0], 0
		} else {
			w.held[0].Release()
			w.held = append(w.held[:0], w.held[1:]...)
		}
	}
	m.Retain()
	w.held = append(w.held, m)
}

// control handles one control item and returns the deliveries it made.
// Loop goroutine only.
func (s *Shard) control(st *shardTopic, c *control) int64 {
	switch c.kind {
	case ctlFunc:
		c.fn()
	case ctlResolve:
		x := c.x
		var w *pending
		if x.ext {
			w = s.ext[x].wait
		}
		if w == nil || w.resolved || x.idx < 0 {
			releaseAll(c.replay)
			if w != nil && !w.resolved {
				w.resolved = true
				return s.resolved(w)
			}
			return 0
		}
		w.resolved, w.skip = true, false
		w.replay, w.pos, w.live = c.replay, c.pos, c.live
		if w.recIdx >= 0 {
			rec := c.rec
			rec.Topic = x.st.name
			w.batch.recs[w.recIdx] = rec
		}
		return s.resolved(w)
	case ctlLoss:
		var lost []*Subscription
		for _, x := range st.subs {
			var w *pending
			if x.ext {
				w = s.ext[x].wait
			}
			switch {
			case w == nil:
				lost = append(lost, x)
			case !w.resolved && w.skip:
				// Its outcome is computed after the loss.
			case w.recIdx >= 0 && w.batch.recs[w.recIdx].Recovered:
				// Not told yet: its outcome changes instead.
				w.batch.recs[w.recIdx] = codec.Recovery{Topic: x.st.name, Reason: c.reason}
				releaseAll(w.replay)
				releaseAll(w.held)
				w.replay, w.held, w.pos = nil, nil, 0
			case w.recIdx < 0:
				// Live without a position once the batch completes: told
				// then.
				w.lost = c.reason
			}
		}
		for _, x := range lost {
			if x.idx < 0 {
				continue
			}
			if ln, ok := x.sub.(LossNotifier); ok {
				ln.HistoryLost(x, c.reason)
			}
		}
	}
	return 0
}

// resolved counts one more outcome of w's batch; with the last, done runs
// and every subscription of the batch gets its replay, then its held
// messages, and goes live. It returns the deliveries made. Loop goroutine
// only.
func (s *Shard) resolved(w *pending) int64 {
	b := w.batch
	if b.left--; b.left > 0 {
		return 0
	}
	if b.done != nil {
		b.done(b.recs)
	}
	var n int64
	var lost []*Subscription
	var reasons []string
	for _, x := range b.subs {
		var w *pending
		if x.ext {
			w = s.ext[x].wait
			s.dropExt(x)
		}
		if x.idx < 0 || w == nil {
			continue
		}
		for _, m := range w.replay {
			x.sub.Deliver(m)
			n++
		}
		for _, m := range w.held {
			if w.pos != 0 && m.offset <= w.pos {
				continue
			}
			x.sub.Deliver(m)
			n++
		}
		if last := len(w.held); w.pos != 0 && (last == 0 || w.held[last-1].offset <= w.pos) {
			s.setExt(x).pos = w.pos // live messages up to pos are in the replay
		}
		// The subscribers may keep them until the next Flush.
		s.after = append(append(s.after, w.replay...), w.held...)
		w.replay, w.held = nil, nil
		if w.lost != "" {
			lost, reasons = append(lost, x), append(reasons, w.lost)
		}
	}
	for i, x := range lost {
		if ln, ok := x.sub.(LossNotifier); ok && x.idx >= 0 {
			ln.HistoryLost(x, reasons[i])
		}
	}
	return n
}
