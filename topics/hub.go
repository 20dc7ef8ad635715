package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/valyala/bytebufferpool"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/metric"
)

// Config configures a Hub. Zero fields take their defaults.
type Config struct {
	// ShardQueueLen caps the messages waiting in one shard's queue for its
	// loop to drain. Past it, messages for that loop are dropped and
	// counted in Stats.DroppedShardQueue rather than letting a stuck loop
	// grow memory without bound; clients see the gap in seq. Default 65536.
	ShardQueueLen int
	// Logger receives the hub's rare operational messages (a loop that
	// stopped, an upstream unsubscribe that failed). Default slog.Default().
	Logger *slog.Logger
}

// Defaults used for zero Config fields.
const DefaultShardQueueLen = 65536

// partitions is the number of lock stripes of the topic registry.
const partitions = 16

// ErrClosed is returned by Subscribe and Publish after Hub.Close.
var ErrClosed = errors.New("topics: hub closed")

// Hub is the node's topic registry: it holds one broker subscription per
// topic that has at least one local subscriber, turns each arriving message
// into a shared Message, and hands it to every Shard (event loop) that has
// subscribers of the topic. Safe for concurrent use unless a method says
// otherwise.
type Hub struct {
	// Immutable after New.
	broker        broker.Broker
	log           *slog.Logger
	parts         [partitions]partition
	shardQueueLen int

	closeOnce sync.Once
	closed    atomic.Bool

	// Pools for Messages and their encodings' buffers; safe for
	// concurrent use.
	messages sync.Pool
	bufs     bytebufferpool.Pool

	messagesLive  atomic.Int64 // messages not yet released by every holder
	upstreamSubs  atomic.Int64 // broker subscriptions made and not yet ended
	subscriptions atomic.Int64 // local Subscriptions over all shards
	dispatched    atomic.Int64 // messages handed to at least one shard
	noTopic       atomic.Int64 // messages that arrived after interest ended

	// shardsMu guards shards, the list Stats sums and Close stops.
	shardsMu sync.Mutex
	shards   []*Shard
}

// partition is one lock stripe of the registry: the topics that hash to it.
type partition struct {
	// mu guards topics and, in every topicState of the map, bsub and
	// shards.
	mu     sync.RWMutex
	topics map[string]*topicState
}

// topicState is this node's interest in one topic, for one period of
// interest: it exists exactly while at least one shard has a local
// subscriber of the topic, and so does its broker subscription. It is the
// broker.Sink of that subscription.
type topicState struct {
	// Immutable after creation.
	name string
	hub  *Hub
	part *partition

	// Guarded by part.mu.
	bsub broker.Subscription
	// shards lists the shards with at least one local subscriber. It is
	// copy-on-write: replaced under the write lock and never modified in
	// place, so Deliver may keep using a snapshot after RUnlock. It is
	// empty once the period of interest has ended.
	shards []*shardTopic

	// Owned by the broker goroutine that delivers this subscription's
	// messages (the broker.Sink contract: calls never overlap).
	seq uint64
}

// New returns a Hub that subscribes and publishes through b. The Hub does
// not own b: Close leaves it running. Safe to call from any goroutine.
func New(b broker.Broker, cfg Config) (*Hub, error) {
	if b == nil {
		return nil, errors.New("topics: nil broker")
	}
	if cfg.ShardQueueLen <= 0 {
		cfg.ShardQueueLen = DefaultShardQueueLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Hub{broker: b, log: cfg.Logger, shardQueueLen: cfg.ShardQueueLen}
	h.messages.New = func() any { return new(Message) }
	for i := range h.parts {
		h.parts[i].topics = make(map[string]*topicState)
	}
	return h, nil
}

// Broker returns the broker the Hub was created with. Any goroutine.
func (h *Hub) Broker() broker.Broker { return h.broker }

// NewShard returns the part of the registry owned by loop. Create exactly one
// Shard per event loop: a burst of messages then costs one Loop.Execute per
// loop. Safe to call from any goroutine.
func (h *Hub) NewShard(loop Loop) *Shard {
	s := &Shard{hub: h, loop: loop, topics: make(map[string]*shardTopic), latency: metric.NewHistogram(LatencyBounds)}
	s.drainFn = s.drain // one method value, so handing off allocates nothing
	h.shardsMu.Lock()
	h.shards = append(h.shards, s)
	h.shardsMu.Unlock()
	if h.closed.Load() {
		s.Stop()
	}
	return s
}

// Publish sends data to topic through the broker, so it reaches the
// subscribers of every node, this one included. It only buffers: a nil
// error does not mean the bus has the message (see PublishWait). It never
// waits for the network, so an event loop may call it. It returns an error
// wrapping codec.ErrInvalidTopic for a bad name, and ErrClosed after Close.
// Safe for concurrent use.
func (h *Hub) Publish(topic string, data []byte) error {
	if err := codec.ValidTopic(topic); err != nil {
		return fmt.Errorf("topics: publish: %w", err)
	}
	if h.closed.Load() {
		return ErrClosed
	}
	return h.broker.Publish(topic, data)
}

// PublishWait publishes msgs and returns once the bus has confirmed all of
// them or ctx ends (broker.Broker.PublishWait). Every topic is validated
// first, so an invalid name publishes nothing. Not for event loops: it
// waits for the network. Safe for concurrent use.
func (h *Hub) PublishWait(ctx context.Context, msgs []broker.Outgoing) ([]broker.Ack, error) {
	for i, m := range msgs {
		if err := codec.ValidTopic(m.Topic); err != nil {
			return nil, fmt.Errorf("topics: message %d: %w", i, err)
		}
	}
	if h.closed.Load() {
		return nil, ErrClosed
	}
	return h.broker.PublishWait(ctx, msgs)
}

// History reads stored messages of a topic (broker.Broker.History). Not
// for event loops. Safe for concurrent use.
func (h *Hub) History(ctx context.Context, req broker.HistoryRequest) (broker.HistoryResult, error) {
	if err := codec.ValidTopic(req.Topic); err != nil {
		return broker.HistoryResult{}, fmt.Errorf("topics: history: %w", err)
	}
	return h.broker.History(ctx, req)
}

// Close ends every broker subscription and stops every shard (their queued
// messages are released; later Subscribe and Publish calls return
// ErrClosed). It leaves the broker running. Local Subscriptions stay valid
// for Unsubscribe, which is then purely local. Close is idempotent and safe
// for concurrent use.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		for i := range h.parts {
			p := &h.parts[i]
			p.mu.Lock()
			for name, ts := range p.topics {
				ts.shards = nil
				h.endInterestLocked(ts)
				delete(p.topics, name)
			}
			p.mu.Unlock()
		}
		h.shardsMu.Lock()
		shards := slices.Clone(h.shards)
		h.shardsMu.Unlock()
		for _, s := range shards {
			s.Stop()
		}
	})
}

// partFor returns the lock stripe of topic.
func (h *Hub) partFor(topic string) *partition {
	return &h.parts[hashTopic(topic)%partitions]
}

// hashTopic is 32-bit FNV-1a: stable, allocation-free and good enough to
// spread topic names over a handful of stripes.
func hashTopic(s string) uint32 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime32
	}
	return h
}

// acquire registers st, a shard's first local subscriber set for its topic,
// in the topic's state, creating the state and its broker subscription when
// st is the node's first. Doing both under the partition lock makes "first
// subscriber → subscribe upstream" atomic against a concurrent "last
// subscriber → unsubscribe upstream" from another shard. Safe for concurrent
// use.
func (h *Hub) acquire(st *shardTopic) error {
	p := h.partFor(st.name)
	p.mu.Lock()
	defer p.mu.Unlock()
	if h.closed.Load() {
		return ErrClosed
	}
	ts := p.topics[st.name]
	if ts == nil {
		ts = &topicState{name: st.name, hub: h, part: p}
		bsub, err := h.broker.Subscribe(st.name, ts)
		if err != nil {
			return fmt.Errorf("topics: subscribe upstream %q: %w", st.name, err)
		}
		ts.bsub = bsub
		p.topics[st.name] = ts
		h.upstreamSubs.Add(1)
	}
	// Clip forces append to copy: Deliver may be reading the old slice.
	ts.shards = append(slices.Clip(ts.shards), st)
	st.ts = ts
	return nil
}

// release removes st, whose shard has just lost its last local subscriber of
// the topic, from the topic's state, and drops the state and its broker
// subscription when no shard is left. Safe for concurrent use.
func (h *Hub) release(st *shardTopic) {
	p := h.partFor(st.name)
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := st.ts
	i := slices.Index(ts.shards, st)
	if i < 0 {
		return
	}
	// A new slice, never an in-place delete: Deliver may hold the old one.
	rest := make([]*shardTopic, 0, len(ts.shards)-1)
	rest = append(append(rest, ts.shards[:i]...), ts.shards[i+1:]...)
	ts.shards = rest
	if len(rest) == 0 && p.topics[ts.name] == ts {
		delete(p.topics, ts.name)
		h.endInterestLocked(ts)
	}
}

// endInterestLocked ends ts's broker subscription. ts.part.mu must be held
// for writing. Messages of the subscription still in flight then find no
// shard in Deliver and are dropped.
func (h *Hub) endInterestLocked(ts *topicState) {
	if ts.bsub == nil {
		return
	}
	if err := ts.bsub.Unsubscribe(); err != nil {
		h.log.Warn("topics: upstream unsubscribe failed", "topic", ts.name, "err", err)
	}
	ts.bsub = nil
	h.upstreamSubs.Add(-1)
}

// Deliver implements broker.Sink: it numbers the message, wraps it once in
// a shared Message and hands it to every shard with local subscribers of
// the topic. It runs on the broker's goroutine for this subscription, which
// is what makes the unsynchronized seq++ safe.
func (ts *topicState) Deliver(bm broker.Message) {
	h := ts.hub
	ts.part.mu.RLock()
	targets := ts.shards // copy-on-write snapshot: safe after RUnlock
	ts.part.mu.RUnlock()
	if len(targets) == 0 {
		// Interest ended while the message was in flight; a new period of
		// interest has its own topicState and starts clean at seq 1.
		h.noTopic.Add(1)
		return
	}
	ts.seq++
	m := h.newMessage(ts.name, ts.seq, bm.Data, bm.Offset, bm.Epoch)
	for _, st := range targets {
		m.Retain()
		st.shard.enqueue(st, m)
	}
	m.Release()
	h.dispatched.Add(1)
}
