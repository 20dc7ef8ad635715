package topics

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/valyala/bytebufferpool"

	"github.com/pushd/pushd/codec"
)

// Config configures a Hub. Zero fields take their defaults.
type Config struct {
	// Prefix is the NATS subject prefix: topic "a.b" travels on subject
	// "<Prefix>.a.b". It must itself be a valid topic name (codec.ValidTopic).
	// Default "pushd".
	Prefix string
	// Workers is the number of fan-in workers, each reading its own channel.
	// A topic always maps to the same worker (by hash), which keeps
	// per-topic order and lets that worker own the topic's sequence number.
	// Default 4.
	Workers int
	// QueueLen is the capacity of each worker's channel. nats.go's reader
	// never blocks on it: when it is full the message is dropped and counted
	// in Stats.DroppedSlowNATS. Default 65536.
	QueueLen int
	// ShardQueueLen caps the frames waiting in one shard's queue for its
	// loop to drain. Past it, frames for that loop are dropped and counted in
	// Stats.DroppedShardQueue rather than letting a stuck loop grow memory
	// without bound; clients see the gap in seq. Default 65536.
	ShardQueueLen int
	// Logger receives the hub's rare operational messages (a loop that
	// stopped, an upstream unsubscribe that failed). Default slog.Default().
	Logger *slog.Logger
}

// Defaults used for zero Config fields.
const (
	DefaultPrefix        = "pushd"
	DefaultWorkers       = 4
	DefaultQueueLen      = 65536
	DefaultShardQueueLen = 65536
)

// ErrClosed is returned by Subscribe and Publish after Hub.Close.
var ErrClosed = errors.New("topics: hub closed")

// Hub is the node's topic registry and its NATS side: it holds one NATS
// subscription per topic that has at least one local subscriber, encodes
// each arriving message once, and hands it to every Shard (event loop) that
// has subscribers of the topic. Safe for concurrent use unless a method says
// otherwise.
type Hub struct {
	// Immutable after New.
	nc            *nats.Conn
	prefix        string // Config.Prefix + "."
	log           *slog.Logger
	parts         []*partition
	shardQueueLen int
	done          chan struct{} // closed by Close to stop the workers
	wg            sync.WaitGroup

	closeOnce sync.Once
	closed    atomic.Bool

	// Pools for Frames and their buffers; safe for concurrent use.
	frames sync.Pool
	bufs   bytebufferpool.Pool

	framesLive    atomic.Int64 // encoded frames not yet released by every holder
	upstreamSubs  atomic.Int64 // NATS subscriptions made and not yet unsubscribed
	subscriptions atomic.Int64 // local Subscriptions over all shards

	// shardsMu guards shards, the list Stats sums and Close stops.
	shardsMu sync.Mutex
	shards   []*Shard
}

// partition is one worker and the topics that hash to it. Splitting the
// topic map by worker means a worker's lookup only ever contends with
// subscription changes of its own topics, never with the other workers.
type partition struct {
	// Immutable after New.
	ch chan *nats.Msg // filled by nats.go's reader goroutine, read by the worker

	// mu guards topics, retiredDrops and, in every topicState of the map,
	// nsub and shards.
	mu           sync.RWMutex
	topics       map[string]*topicState
	retiredDrops int64 // nats.go slow-consumer drops of subscriptions already unsubscribed

	// Written only by the worker goroutine; atomics so that Stats may read.
	messagesIn atomic.Int64
	framesOut  atomic.Int64
	noTopic    atomic.Int64
}

// topicState is this node's interest in one topic. It exists exactly while
// at least one shard has a local subscriber of the topic, and so does its
// NATS subscription.
type topicState struct {
	// Immutable after creation.
	name string

	// Guarded by partition.mu.
	nsub *nats.Subscription
	// shards lists the shards with at least one local subscriber. It is
	// copy-on-write: replaced under the write lock and never modified in
	// place, so the worker may keep using a snapshot after RUnlock.
	shards []*shardTopic

	// Owned by the partition's worker goroutine.
	seq uint64
}

// New returns a Hub that subscribes through nc and starts its workers. The
// Hub does not own nc: Close leaves it open. nc's reconnect options apply;
// nats.go resubscribes the Hub's subscriptions by itself after a reconnect.
// Safe to call from any goroutine.
func New(nc *nats.Conn, cfg Config) (*Hub, error) {
	if nc == nil {
		return nil, errors.New("topics: nil NATS connection")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if err := codec.ValidTopic(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("topics: prefix: %w", err)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.ShardQueueLen <= 0 {
		cfg.ShardQueueLen = DefaultShardQueueLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Hub{
		nc:            nc,
		prefix:        cfg.Prefix + ".",
		log:           cfg.Logger,
		parts:         make([]*partition, cfg.Workers),
		shardQueueLen: cfg.ShardQueueLen,
		done:          make(chan struct{}),
	}
	h.frames.New = func() any { return new(Frame) }
	for i := range h.parts {
		h.parts[i] = &partition{
			ch:     make(chan *nats.Msg, cfg.QueueLen),
			topics: make(map[string]*topicState),
		}
	}
	h.wg.Add(len(h.parts))
	for _, p := range h.parts {
		go h.work(p)
	}
	return h, nil
}

// NewShard returns the part of the registry owned by loop. Create exactly one
// Shard per event loop: a burst of messages then costs one Loop.Execute per
// loop. Safe to call from any goroutine.
func (h *Hub) NewShard(loop Loop) *Shard {
	s := &Shard{hub: h, loop: loop, topics: make(map[string]*shardTopic)}
	s.drainFn = s.drain // one method value, so handing off allocates nothing
	h.shardsMu.Lock()
	h.shards = append(h.shards, s)
	h.shardsMu.Unlock()
	if h.closed.Load() {
		s.Stop()
	}
	return s
}

// Publish sends data to topic through NATS, so it reaches the subscribers of
// every node, this one included. Like nats.Conn.Publish it only buffers:
// a nil error does not mean the server has the message. It returns an error
// wrapping codec.ErrInvalidTopic for a bad name, and ErrClosed after Close.
// Safe for concurrent use.
func (h *Hub) Publish(topic string, data []byte) error {
	if err := codec.ValidTopic(topic); err != nil {
		return fmt.Errorf("topics: publish: %w", err)
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.nc.Publish(h.prefix+topic, data); err != nil {
		return fmt.Errorf("topics: publish %q: %w", topic, err)
	}
	return nil
}

// Close unsubscribes every upstream NATS subscription, stops the workers and
// stops every shard (their queued frames are released; later Subscribe and
// Publish calls return ErrClosed). Messages still in the workers' channels
// are discarded. It leaves the NATS connection open. Local Subscriptions stay
// valid for Unsubscribe, which is then purely local. Close is idempotent and
// safe for concurrent use; it returns once the workers have exited.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		for _, p := range h.parts {
			p.mu.Lock()
			for name, ts := range p.topics {
				h.unsubscribeUpstreamLocked(p, ts)
				delete(p.topics, name)
			}
			p.mu.Unlock()
		}
		close(h.done)
		h.wg.Wait()
		h.shardsMu.Lock()
		shards := slices.Clone(h.shards)
		h.shardsMu.Unlock()
		for _, s := range shards {
			s.Stop()
		}
	})
}

// partFor returns the partition (and so the worker) that owns topic.
func (h *Hub) partFor(topic string) *partition {
	return h.parts[hashTopic(topic)%uint32(len(h.parts))]
}

// hashTopic is 32-bit FNV-1a: stable, allocation-free and good enough to
// spread topic names over a handful of workers.
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
// in the topic's state, creating the state and its NATS subscription when st
// is the node's first. Doing both under the partition lock makes "first
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
		nsub, err := h.nc.ChanSubscribe(h.prefix+st.name, p.ch)
		if err != nil {
			return fmt.Errorf("topics: subscribe upstream %q: %w", st.name, err)
		}
		ts = &topicState{name: st.name, nsub: nsub}
		p.topics[st.name] = ts
		h.upstreamSubs.Add(1)
	}
	// Clip forces append to copy: the worker may be reading the old slice.
	ts.shards = append(slices.Clip(ts.shards), st)
	st.ts = ts
	return nil
}

// release removes st, whose shard has just lost its last local subscriber of
// the topic, from the topic's state, and drops the state and its NATS
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
	// A new slice, never an in-place delete: the worker may hold the old one.
	rest := make([]*shardTopic, 0, len(ts.shards)-1)
	rest = append(append(rest, ts.shards[:i]...), ts.shards[i+1:]...)
	ts.shards = rest
	if len(rest) == 0 && p.topics[ts.name] == ts {
		delete(p.topics, ts.name)
		h.unsubscribeUpstreamLocked(p, ts)
	}
}

// unsubscribeUpstreamLocked ends ts's NATS subscription, keeping its
// slow-consumer drop count for Stats. p.mu must be held for writing.
// Messages of the subscription still in the worker's channel are then
// dropped by the worker, because they no longer match ts.nsub.
func (h *Hub) unsubscribeUpstreamLocked(p *partition, ts *topicState) {
	if ts.nsub == nil {
		return
	}
	if d, err := ts.nsub.Dropped(); err == nil {
		p.retiredDrops += int64(d)
	}
	// A closed or draining connection has dropped (or is dropping) the
	// subscription already; anything else is worth a log line.
	switch err := ts.nsub.Unsubscribe(); {
	case err == nil, errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrBadSubscription):
	default:
		h.log.Warn("topics: upstream unsubscribe failed", "topic", ts.name, "err", err)
	}
	ts.nsub = nil
	h.upstreamSubs.Add(-1)
}
