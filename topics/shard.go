package topics

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/codec"
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
	topics map[string]*shardTopic
	spare  []queued // the drain's second queue slice, reused so steady state allocates nothing

	// mu guards queue, scheduled and stopped. Workers take it to append; the
	// drain takes it to swap the queue out.
	mu        sync.Mutex
	queue     []queued
	scheduled bool // a drain has been handed to Loop.Execute and has not yet taken the queue
	stopped   bool // the loop is gone: Execute failed, or Stop was called

	// Statistics. Written by workers and the drain, read by Stats.
	handoffs     atomic.Int64 // Loop.Execute calls that scheduled a drain
	deliveries   atomic.Int64 // Subscriber.Deliver calls
	droppedFull  atomic.Int64 // messages refused because queue was at ShardQueueLen
	droppedStop  atomic.Int64 // messages released undelivered because the loop stopped
	stopReported atomic.Bool
	latency      *metric.Histogram // arrival → written on this loop, seconds; written by the drain
}

// queued is one message waiting in a shard's queue for its topic's local
// subscribers.
type queued struct {
	st *shardTopic
	m  *Message
}

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

	// Owned by the shard's loop goroutine: the index in st.subs, so
	// Unsubscribe is an O(1) swap-remove; -1 once unsubscribed.
	idx int
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
	x := &Subscription{st: st, sub: sub, idx: len(st.subs)}
	st.subs = append(st.subs, x)
	s.hub.subscriptions.Add(1)
	return x, nil
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
	last := len(st.subs) - 1
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
	s.queue = append(s.queue, queued{st, m})
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
		q[i].m.Release()
	}
	s.droppedStop.Add(int64(len(q)))
	if err != nil && s.stopReported.CompareAndSwap(false, true) {
		s.hub.log.Warn("topics: event loop stopped; dropping its messages", "err", err)
	}
}

// drain delivers every queued message to the local subscribers of its topic,
// flushes the loop once, and releases the messages. It runs on the loop
// goroutine through Loop.Execute.
// flushDeliveries is how many deliveries a drain queues before it asks the
// loop to flush. At 5,000 subscribers it still lets ~50 messages share one
// writev per socket, while bounding the loop's outbox to ~256K entries.
const flushDeliveries = 1 << 18

func (s *Shard) drain() {
	s.mu.Lock()
	q := s.queue
	s.queue = s.spare[:0]
	s.scheduled = false
	s.mu.Unlock()
	s.spare = nil

	var n, pending int64
	for i := range q {
		it := &q[i]
		// Backwards, and re-checking the length, so that a subscriber
		// removed during the walk (which Deliver must not do, but a
		// failing write path might) costs nobody else a delivery.
		for j := len(it.st.subs) - 1; j >= 0; j-- {
			if j < len(it.st.subs) {
				it.st.subs[j].sub.Deliver(it.m)
				pending++
			}
		}
		// What the subscribers queue lives until Flush: flush whenever a
		// long backlog has queued flushDeliveries, so a loop that fell
		// behind does not hold backlog × subscribers entries at once.
		if pending >= flushDeliveries {
			s.loop.Flush()
			n += pending
			pending = 0
		}
	}
	if pending > 0 {
		s.loop.Flush()
		n += pending
	}
	if n > 0 {
		s.deliveries.Add(n)
	}
	if len(q) > 0 {
		// Every message of the batch has now been written (or queued in
		// gnet's outbound buffer) on this loop: its latency from arrival.
		now := time.Now()
		for i := range q {
			s.latency.Observe(now.Sub(q[i].m.arrived).Seconds())
		}
	}
	for i := range q {
		q[i].m.Release()
		q[i] = queued{}
	}
	s.spare = q[:0]
}
