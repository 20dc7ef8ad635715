package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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

	// Durable topics (the broker's Retention):

	// CacheLen caps the recent messages the node caches per durable topic
	// it follows, to serve resumes without asking the broker (never more
	// than the topic's history Size). 0 takes the default; negative turns
	// the cache off. Default 256.
	CacheLen int
	// CacheBytes caps the payload bytes cached per durable topic. Default
	// 256 KiB.
	CacheBytes int
	// MaxReplay is the most messages one resume replays; a client that
	// missed more gets codec.ReasonLimit. Default 1000.
	MaxReplay int
	// HoldLen caps the live messages held for one subscription while its
	// Resume waits for the outcome of its other topics. Default 1024.
	HoldLen int
	// CatchUpTimeout bounds how long a resume or a history read waits for
	// the broker; past it the answer is codec.ReasonUnavailable. Default
	// 5 s.
	CatchUpTimeout time.Duration
	// MaxHistoryReads caps the Shard.History reads in flight; more get
	// ErrBusy. Default 64.
	MaxHistoryReads int

	// DrainSlice bounds how long one drain holds its loop: past it, a drain
	// hands the rest of its backlog (and of its flush) back to the loop,
	// which serves its sockets, timers and other tasks before the next
	// slice. Shorter slices interleave more and batch less. Default 5 ms.
	DrainSlice time.Duration
}

// Defaults used for zero Config fields.
const (
	DefaultShardQueueLen   = 65536
	DefaultCacheLen        = 256
	DefaultCacheBytes      = 256 << 10
	DefaultMaxReplay       = 1000
	DefaultHoldLen         = 1024
	DefaultCatchUpTimeout  = 5 * time.Second
	DefaultMaxHistoryReads = 64
	DefaultDrainSlice      = 5 * time.Millisecond
)

// partitions is the number of lock stripes of the topic registry.
const partitions = 16

// Errors of the Hub.
var (
	// ErrClosed is returned by Subscribe and Publish after Hub.Close.
	ErrClosed = errors.New("topics: hub closed")
	// ErrNotDurable is returned by History for a topic that keeps no
	// history (codec.CodeNotDurable).
	ErrNotDurable = errors.New("topics: topic keeps no history")
	// ErrEpochChanged is returned by History for a position of another
	// epoch (codec.CodeEpochChanged).
	ErrEpochChanged = errors.New("topics: the history of this position was replaced")
	// ErrBusy is returned by Shard.History when Config.MaxHistoryReads
	// reads are in flight (codec.CodeUnavailable).
	ErrBusy = errors.New("topics: too many history reads in flight")
)

// Hub is the node's topic registry: it holds one broker subscription per
// topic that has at least one local subscriber, turns each arriving message
// into a shared Message, and hands it to every Shard (event loop) that has
// subscribers of the topic. Safe for concurrent use unless a method says
// otherwise.
type Hub struct {
	// Immutable after New.
	broker        broker.Broker
	cfg           Config
	log           *slog.Logger
	parts         [partitions]partition
	shardQueueLen int
	historyReads  chan struct{} // a semaphore: one token per Shard.History read in flight

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

	// Durable topics.
	durableTopics  atomic.Int64 // gauge
	catchUps       atomic.Int64 // resumes of a durable topic from a position
	catchUpsCached atomic.Int64 // ... served from the cache, with no broker request
	catchUpReads   atomic.Int64 // history reads made for resumes (each serves many)
	repairs        atomic.Int64 // history reads made to repair the live stream
	losses         atomic.Int64 // live-stream losses that could not be repaired, and epoch changes
	duplicates     atomic.Int64 // live messages dropped as already dispatched
	heldDropped    atomic.Int64 // held messages dropped past holdMax or HoldLen
	cacheMessages  atomic.Int64 // gauge
	cacheBytes     atomic.Int64 // gauge: payload bytes

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

	// For a durable topic, its history state; nil otherwise.
	dur *durable

	// Owned by the broker goroutine that delivers this subscription's
	// messages (the broker.Sink contract: calls never overlap); for a
	// durable topic, guarded by dur.mu.
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
	if cfg.CacheLen == 0 {
		cfg.CacheLen = DefaultCacheLen
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.MaxReplay <= 0 {
		cfg.MaxReplay = DefaultMaxReplay
	}
	if cfg.HoldLen <= 0 {
		cfg.HoldLen = DefaultHoldLen
	}
	if cfg.CatchUpTimeout <= 0 {
		cfg.CatchUpTimeout = DefaultCatchUpTimeout
	}
	if cfg.MaxHistoryReads <= 0 {
		cfg.MaxHistoryReads = DefaultMaxHistoryReads
	}
	if cfg.DrainSlice <= 0 {
		cfg.DrainSlice = DefaultDrainSlice
	}
	h := &Hub{broker: b, cfg: cfg, log: cfg.Logger, shardQueueLen: cfg.ShardQueueLen,
		historyReads: make(chan struct{}, cfg.MaxHistoryReads)}
	h.messages.New = func() any { return new(Message) }
	for i := range h.parts {
		h.parts[i].topics = make(map[string]*topicState)
	}
	return h, nil
}

// Broker returns the broker the Hub was created with. Any goroutine.
func (h *Hub) Broker() broker.Broker { return h.broker }

// Durable reports whether topic keeps a history (broker.Broker.Retention).
// Any goroutine.
func (h *Hub) Durable(topic string) bool {
	_, ok := h.broker.Retention(topic)
	return ok
}

// Hub returns the Hub the shard belongs to. Any goroutine.
func (s *Shard) Hub() *Hub { return s.hub }

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

// HistoryPage is an answer to a history read.
type HistoryPage struct {
	// Epoch names the history the offsets belong to.
	Epoch string
	// Messages are the stored messages after the position asked for, in
	// order. Seq is the node's seq for a message it received live and
	// still caches, 0 for one read from the history.
	Messages []codec.HistoryMessage
	// More reports that the limit cut the answer short.
	More bool
	// Trimmed reports that the history no longer holds the message at the
	// position asked for: messages may be missing before the first one.
	Trimmed bool
}

// Cut returns the page cut after the messages whose payloads first reach
// maxBytes (with More set), keeping at least one message, so that one
// reply stays well under a connection's outbound cap. Pure.
func (p HistoryPage) Cut(maxBytes int) HistoryPage {
	size := 0
	for i, m := range p.Messages {
		if size += len(m.Data); size > maxBytes && i > 0 {
			p.Messages, p.More = p.Messages[:i], true
			break
		}
	}
	return p
}

// History reads the stored messages of a durable topic after since (from
// the oldest when since.Offset is 0), at most limit of them (0: the
// codec.DefaultHistoryLimit; at most codec.MaxHistoryLimit), from this
// node's cache when it holds them, otherwise from the broker. Errors:
// codec.ErrInvalidTopic (wrapped), ErrNotDurable, ErrEpochChanged when
// since names another epoch, ErrClosed, or the broker's (the history is
// unreachable). Not for event loops: it may wait for the network
// (Shard.History is the loops' version). Safe for concurrent use.
func (h *Hub) History(ctx context.Context, topic string, since codec.Position, limit int) (HistoryPage, error) {
	if err := codec.ValidTopic(topic); err != nil {
		return HistoryPage{}, fmt.Errorf("topics: history: %w", err)
	}
	if h.closed.Load() {
		return HistoryPage{}, ErrClosed
	}
	if _, ok := h.broker.Retention(topic); !ok {
		return HistoryPage{}, ErrNotDurable
	}
	if limit <= 0 {
		limit = codec.DefaultHistoryLimit
	}
	limit = min(limit, codec.MaxHistoryLimit)
	if page, ok := h.historyFromCache(topic, since, limit); ok {
		return page, nil
	}
	res, err := h.broker.History(ctx, broker.HistoryRequest{Topic: topic, After: since.Offset, Limit: limit})
	if err != nil {
		return HistoryPage{}, fmt.Errorf("topics: history: %w", err)
	}
	if since.Offset != 0 && since.Epoch != res.Epoch {
		return HistoryPage{}, ErrEpochChanged
	}
	page := HistoryPage{Epoch: res.Epoch, More: res.More, Trimmed: !res.Continuous,
		Messages: make([]codec.HistoryMessage, len(res.Messages))}
	for i, m := range res.Messages {
		page.Messages[i] = codec.HistoryMessage{Topic: topic, Offset: m.Offset, Epoch: m.Epoch, Data: m.Data}
	}
	return page, nil
}

// historyFromCache answers a history read from the cache of a durable
// topic this node follows, when the cache covers the position.
func (h *Hub) historyFromCache(topic string, since codec.Position, limit int) (HistoryPage, bool) {
	p := h.partFor(topic)
	p.mu.RLock()
	ts := p.topics[topic]
	p.mu.RUnlock()
	if ts == nil || ts.dur == nil {
		return HistoryPage{}, false
	}
	d := ts.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || !d.established || since.Offset != 0 && since.Epoch != d.epoch {
		return HistoryPage{}, false
	}
	i, ok := d.covers(since.Offset)
	if !ok {
		return HistoryPage{}, false
	}
	msgs := d.chain[i:]
	page := HistoryPage{Epoch: d.epoch, More: len(msgs) > limit}
	msgs = msgs[:min(len(msgs), limit)]
	page.Messages = make([]codec.HistoryMessage, len(msgs))
	for j, m := range msgs {
		// A copy: the Message may be recycled once the lock is released.
		page.Messages[j] = codec.HistoryMessage{Topic: topic, Seq: m.seq, Offset: m.offset, Epoch: m.epoch,
			Data: append([]byte(nil), m.data...)}
	}
	return page, true
}

// Close ends every broker subscription and stops every shard (their queued
// messages are released; later Subscribe and Publish calls return
// ErrClosed). It leaves the broker running. Local Subscriptions stay valid
// for Unsubscribe, which is then purely local. Close is idempotent and safe
// for concurrent use.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		var ended []*topicState
		for i := range h.parts {
			p := &h.parts[i]
			p.mu.Lock()
			for name, ts := range p.topics {
				ts.shards = nil
				h.endInterestLocked(ts)
				delete(p.topics, name)
				ended = append(ended, ts)
			}
			p.mu.Unlock()
		}
		for _, ts := range ended {
			ts.endDurable()
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
		if ret, ok := h.broker.Retention(st.name); ok {
			// Before Subscribe: the broker may call Head at once.
			ts.dur = newDurable(ts, ret)
			h.durableTopics.Add(1)
		}
		bsub, err := h.broker.Subscribe(st.name, ts)
		if err != nil {
			if ts.dur != nil {
				h.durableTopics.Add(-1)
			}
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
	ts := st.ts
	i := slices.Index(ts.shards, st)
	if i < 0 {
		p.mu.Unlock()
		return
	}
	// A new slice, never an in-place delete: Deliver may hold the old one.
	rest := make([]*shardTopic, 0, len(ts.shards)-1)
	rest = append(append(rest, ts.shards[:i]...), ts.shards[i+1:]...)
	ts.shards = rest
	ended := len(rest) == 0 && p.topics[ts.name] == ts
	if ended {
		delete(p.topics, ts.name)
		h.endInterestLocked(ts)
	}
	p.mu.Unlock()
	if ended {
		// After the partition lock: durable.mu comes before it.
		ts.endDurable()
	}
}

// endDurable releases a durable topic's state once its period of interest
// has ended.
func (ts *topicState) endDurable() {
	if ts.dur != nil {
		ts.dur.close()
		ts.hub.durableTopics.Add(-1)
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

// Head implements broker.Sink: for a durable topic, where the history
// ends (see durable).
func (ts *topicState) Head(offset uint64, epoch string) {
	if ts.dur != nil {
		ts.dur.onHead(offset, epoch)
	}
}

// Deliver implements broker.Sink: it numbers the message, wraps it once in
// a shared Message and hands it to every shard with local subscribers of
// the topic. It runs on the broker's goroutine for this subscription, which
// is what makes the unsynchronized seq++ safe. A durable topic's message
// goes through its history state instead, which dispatches in the same way
// once the message continues the topic's history without a gap.
func (ts *topicState) Deliver(bm broker.Message) {
	if ts.dur != nil {
		ts.dur.deliver(bm)
		return
	}
	h := ts.hub
	// The shards are read and the message queued on each under the read
	// lock, so a shard that registers (under the write lock) either has
	// the message queued on the shards it joins, before it registered, or
	// gets it too: a subscriber moving between loops (subscribe on the
	// new one, then Settle and unsubscribe on the old) misses nothing.
	ts.part.mu.RLock()
	defer ts.part.mu.RUnlock()
	targets := ts.shards
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
