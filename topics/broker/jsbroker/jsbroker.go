// Package jsbroker is the broker.Broker for durable topics: topics that
// match a history pattern keep their newest messages in a JetStream stream,
// and every other topic goes through a natsbroker.Broker exactly as before.
//
// # Streams
//
// One stream per pattern captures the plain subjects "<prefix>.<pattern>"
// that backends already publish to (with any NATS client; no JetStream
// API needed), keeping MaxMsgsPerSubject = Size messages per topic, none
// older than MaxAge = TTL. New creates the streams or updates them to the
// configuration; it fails when JetStream is unavailable.
//
// # Live path
//
// Each stream republishes every stored message (RePublish) to
// "_pushd_live.<prefix>.<topic>" with headers naming its stream sequence
// (the offset) and the sequence of the previous stored message of the same
// subject (Nats-Last-Sequence, the Prev of broker.Message). A node
// subscribes to that subject for each durable topic it has local interest
// in, one core subscription per topic like natsbroker, so NATS still routes
// a topic only to the nodes that want it, and no JetStream consumer exists
// per client or per subscription. Republished messages travel at most once:
// a receiver that sees Prev above what it delivered has missed messages
// and reads them back with History (package topics does).
//
// # Positions and epochs
//
// A monitor goroutine tells each new subscription's Sink where the history
// ends (Sink.Head), batching the lookups of many topics into one
// "multi_last" direct get per stream. It checks every CheckInterval, and at
// once after a NATS reconnect, that no subscription is behind its history
// (a dropped or never-routed republish), and reports one that stays behind
// for Grace with Sink.Head. The epoch is the stream's creation time, which
// survives restarts and changes when the stream is deleted and created
// again; the monitor re-reads it on every check and recreates a stream that
// has disappeared.
package jsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

// Storage is where a stream keeps its messages.
type Storage int

// Storage kinds. File storage survives a NATS server restart.
const (
	FileStorage Storage = iota
	MemoryStorage
)

// Config configures a Broker. Zero fields take their defaults.
type Config struct {
	// Prefix is the NATS subject prefix (natsbroker.Config.Prefix).
	// Default "pushd".
	Prefix string
	// History lists the durable topic patterns (ParsePatterns). Empty is
	// allowed: the broker then behaves like natsbroker.
	History []Pattern
	// Replicas is each stream's replica count (1 to 5; more than 1 needs
	// a NATS cluster). Default 1.
	Replicas int
	// Storage is the streams' storage. Default FileStorage.
	Storage Storage
	// Duplicates is the window within which a publish with a message ID
	// already stored is dropped (JetStream's duplicate window). Default 2
	// minutes, shortened to a pattern's TTL when that is smaller.
	Duplicates time.Duration
	// CheckInterval is the period of the position and epoch check.
	// Default 5 s.
	CheckInterval time.Duration
	// Grace is how long a subscription may stay behind the history a
	// check saw before Sink.Head reports it: the time a republished
	// message may still be in flight. Default 500 ms.
	Grace time.Duration
	// RequestTimeout bounds each request to JetStream. Default 5 s.
	RequestTimeout time.Duration
	// Workers and QueueLen configure the live-path workers of durable
	// topics and the natsbroker.Broker of the others (natsbroker.Config).
	Workers  int
	QueueLen int
	// Logger receives the broker's rare operational messages. Default
	// slog.Default().
	Logger *slog.Logger
}

// Defaults used for zero Config fields.
const (
	DefaultReplicas       = 1
	DefaultDuplicates     = 2 * time.Minute
	DefaultCheckInterval  = 5 * time.Second
	DefaultGrace          = 500 * time.Millisecond
	DefaultRequestTimeout = 5 * time.Second
)

// LiveRoot is the first token of the subjects streams republish to:
// "<LiveRoot>.<prefix>.<topic>". A prefix may not start with it.
const LiveRoot = "_pushd_live"

// maxMultiLast is the most subjects one multi_last direct get may answer
// (nats-server's maxAllowedResponses).
const maxMultiLast = 1024

// ErrJetStreamUnavailable means the NATS server has no JetStream (or it
// did not answer), so durable topics cannot work.
var ErrJetStreamUnavailable = errors.New("jsbroker: JetStream unavailable")

// Broker is a broker.Broker with JetStream history for durable topics.
// Safe for concurrent use.
type Broker struct {
	// Immutable after New.
	nc      *nats.Conn
	js      jetstream.JetStream
	vol     *natsbroker.Broker
	cfg     Config
	prefix  string // Config.Prefix + "."
	log     *slog.Logger
	streams []*stream
	parts   []*partition
	mux     *requestMux
	status  chan nats.Status // reconnects, from nc.StatusChanged
	kick    chan struct{}    // wakes the monitor for new subscriptions or a suspected epoch change
	done    chan struct{}    // closed by Close
	wg      sync.WaitGroup

	closeOnce sync.Once
	closed    atomic.Bool
	requests  atomic.Int64 // JetStream requests other than publishes
	subs      atomic.Int64 // durable subscriptions held

	// mu guards fresh and suspect.
	mu      sync.Mutex
	fresh   []*dsub   // subscriptions whose Sink has not had its first Head
	suspect []*stream // streams whose epoch a worker suspects changed
}

// stream is one pattern's JetStream stream.
type stream struct {
	// Immutable after New.
	name    string
	pattern Pattern
	toks    []string // pattern tokens
	subject string   // "<prefix>.<pattern>"
	ret     broker.Retention
	cfg     jetstream.StreamConfig

	epoch atomic.Pointer[string] // from StreamInfo.Created

	// mu guards subs, the durable subscriptions on this stream (for the
	// monitor's checks).
	mu   sync.Mutex
	subs map[*dsub]struct{}
}

// New returns a Broker on nc: it creates or updates one stream per
// pattern (failing with ErrJetStreamUnavailable when JetStream does not
// answer), then starts its workers and monitor. The Broker does not own
// nc: Close leaves it open. Any goroutine.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Broker, error) {
	if nc == nil {
		return nil, errors.New("jsbroker: nil NATS connection")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jsbroker: %w", err)
	}
	vol, err := natsbroker.New(nc, natsbroker.Config{Prefix: cfg.Prefix, Workers: cfg.Workers, QueueLen: cfg.QueueLen, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	b := &Broker{
		nc: nc, js: js, vol: vol, cfg: cfg, prefix: cfg.Prefix + ".", log: cfg.Logger,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	for _, p := range cfg.History {
		b.streams = append(b.streams, b.newStream(p))
	}
	for _, st := range b.streams {
		if err := b.ensure(ctx, st); err != nil {
			vol.Close()
			return nil, err
		}
	}
	if b.mux, err = newRequestMux(nc); err != nil {
		vol.Close()
		return nil, err
	}
	b.parts = make([]*partition, cfg.Workers)
	for i := range b.parts {
		b.parts[i] = newPartition(cfg.QueueLen)
	}
	b.status = nc.StatusChanged(nats.CONNECTED)
	b.wg.Add(len(b.parts) + 1)
	for _, p := range b.parts {
		go b.work(p)
	}
	go b.monitor()
	return b, nil
}

func (cfg *Config) setDefaults() error {
	if cfg.Prefix == "" {
		cfg.Prefix = natsbroker.DefaultPrefix
	}
	if err := codec.ValidTopic(cfg.Prefix); err != nil {
		return fmt.Errorf("jsbroker: prefix: %w", err)
	}
	if first, _, _ := strings.Cut(cfg.Prefix, "."); first == LiveRoot {
		return fmt.Errorf("jsbroker: prefix may not start with %q", LiveRoot)
	}
	if err := checkPatterns(cfg.History); err != nil {
		return fmt.Errorf("jsbroker: %w", err)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return fmt.Errorf("jsbroker: replicas %d is not from 1 to 5", cfg.Replicas)
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = DefaultDuplicates
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = natsbroker.DefaultWorkers
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = natsbroker.DefaultQueueLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return nil
}

func (b *Broker) newStream(p Pattern) *stream {
	st := &stream{
		name:    streamName(b.cfg.Prefix, p.Topics),
		pattern: p,
		toks:    strings.Split(p.Topics, "."),
		subject: b.prefix + p.Topics,
		ret:     broker.Retention{Size: p.Size, TTL: p.TTL},
		subs:    make(map[*dsub]struct{}),
	}
	dup := b.cfg.Duplicates
	if p.TTL > 0 && p.TTL < dup {
		dup = p.TTL
	}
	storage := jetstream.FileStorage
	if b.cfg.Storage == MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	st.cfg = jetstream.StreamConfig{
		Name:              st.name,
		Description:       "pushd history of topics " + p.Topics + " (managed by pushd; --history)",
		Subjects:          []string{st.subject},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: p.Size,
		MaxAge:            p.TTL,
		Discard:           jetstream.DiscardOld,
		Storage:           storage,
		Replicas:          b.cfg.Replicas,
		Duplicates:        dup,
		AllowDirect:       true,
		// Source ">" maps every stored subject S to LiveRoot.S.
		RePublish: &jetstream.RePublish{Source: ">", Destination: LiveRoot + ".>"},
	}
	return st
}

// ensure creates or updates st's stream and records its epoch. A server
// without JetStream fails at once; other failures (a cluster still
// electing its JetStream leader, a replica short) are retried until ctx
// ends, the last one then returned.
func (b *Broker) ensure(ctx context.Context, st *stream) error {
	for {
		err := b.ensureOnce(ctx, st)
		if err == nil || errors.Is(err, ErrJetStreamUnavailable) || permanent(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retryWait):
		}
	}
}

func (b *Broker) ensureOnce(ctx context.Context, st *stream) error {
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	b.requests.Add(1)
	s, err := b.js.CreateOrUpdateStream(rctx, st.cfg)
	if err != nil {
		// No responders on the JetStream API: the server runs no JetStream.
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
			errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%w (stream %s for %q): %v", ErrJetStreamUnavailable, st.name, st.pattern.Topics, err)
		}
		return fmt.Errorf("jsbroker: stream %s for %q: %w", st.name, st.pattern.Topics, err)
	}
	st.setEpoch(s.CachedInfo().Created)
	return nil
}

// permanent reports whether a stream creation error is the configuration's
// fault (overlapping subjects, an invalid or unchangeable setting), which
// retrying cannot fix. "Name in use" is not: another node created the
// stream between our update and our create, and the retry updates it.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode == jetstream.JSErrCodeStreamNameInUse {
		return false
	}
	return apiErr.Code == 400 || apiErr.Code == 500 // 503s (no leader yet, a replica short) pass
}

// epochOf turns a stream's creation time into an epoch: base 36 of its
// nanoseconds, a short codec.ValidEpoch string.
func epochOf(created time.Time) string {
	return strconv.FormatInt(created.UnixNano(), 36)
}

// setEpoch records the stream's creation time and reports whether the
// epoch changed.
func (st *stream) setEpoch(created time.Time) bool {
	e := epochOf(created)
	old := st.epoch.Swap(&e)
	return old != nil && *old != e
}

// currentEpoch returns the stream's epoch as last seen.
func (st *stream) currentEpoch() string { return *st.epoch.Load() }

// match returns the stream keeping topic's history, or nil.
func (b *Broker) match(topic string) *stream {
	for _, st := range b.streams {
		if matchTopic(st.toks, topic) {
			return st
		}
	}
	return nil
}

// Subject returns the NATS subject topic travels on. Any goroutine.
func (b *Broker) Subject(topic string) string { return b.prefix + topic }

// StreamName returns the stream that keeps topic's history, or "" for a
// topic without one. Any goroutine.
func (b *Broker) StreamName(topic string) string {
	if st := b.match(topic); st != nil {
		return st.name
	}
	return ""
}

// Retention implements broker.Broker.
func (b *Broker) Retention(topic string) (broker.Retention, bool) {
	if st := b.match(topic); st != nil {
		return st.ret, true
	}
	return broker.Retention{}, false
}

// Subscribe implements broker.Broker. A durable topic gets one core
// subscription on its republish subject, feeding the worker the topic
// hashes to, and its Sink a first Head from the monitor; any other topic is
// natsbroker's.
func (b *Broker) Subscribe(topic string, sink broker.Sink) (broker.Subscription, error) {
	if b.closed.Load() {
		return nil, broker.ErrClosed
	}
	st := b.match(topic)
	if st == nil {
		return b.vol.Subscribe(topic, sink)
	}
	return b.subscribeDurable(st, topic, sink)
}

// Publish implements broker.Broker with a core publish: a durable topic's
// stream captures it like any backend's publish.
func (b *Broker) Publish(topic string, data []byte) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return b.vol.Publish(topic, data)
}

// PublishWait implements broker.Broker: a message for a durable topic is
// published with a JetStream publish and waits for the stream's ack, whose
// sequence is the message's offset (Ack.Duplicate when Outgoing.ID was
// already stored within the duplicate window); the others are published
// like natsbroker's. It retries while the stream has no leader, until ctx
// ends. On error, a prefix of msgs may have been published.
func (b *Broker) PublishWait(ctx context.Context, msgs []broker.Outgoing) ([]broker.Ack, error) {
	if b.closed.Load() {
		return nil, broker.ErrClosed
	}
	acks := make([]broker.Ack, len(msgs))
	flush := false
	for i, m := range msgs {
		st := b.match(m.Topic)
		if st == nil {
			if err := b.vol.Publish(m.Topic, m.Data); err != nil {
				return acks[:i], err
			}
			flush = true
			continue
		}
		ack, err := b.publishDurable(ctx, st, m)
		if err != nil {
			return acks[:i], err
		}
		acks[i] = ack
	}
	if flush {
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := ctx.Deadline(); !ok {
			fctx, cancel = context.WithTimeout(ctx, b.cfg.RequestTimeout)
		}
		defer cancel()
		if err := b.nc.FlushWithContext(fctx); err != nil {
			return acks, fmt.Errorf("jsbroker: flush: %w", err)
		}
	}
	return acks, nil
}

func (b *Broker) publishDurable(ctx context.Context, st *stream, m broker.Outgoing) (broker.Ack, error) {
	if mp := b.nc.MaxPayload(); mp > 0 && int64(len(m.Data)) > mp {
		return broker.Ack{}, fmt.Errorf("jsbroker: publish %q: %w (%d bytes)", m.Topic, broker.ErrTooLarge, mp)
	}
	msg := &nats.Msg{Subject: b.prefix + m.Topic, Data: m.Data}
	opts := []jetstream.PublishOpt{
		jetstream.WithExpectStream(st.name),
		jetstream.WithRetryAttempts(math.MaxInt32), // until ctx ends: a leader election takes seconds
		jetstream.WithRetryWait(100 * time.Millisecond),
	}
	if m.ID != "" {
		// JetStream deduplicates per stream, and a stream keeps every
		// topic of its pattern: the id is the client's per topic. A topic
		// never holds ':', so "<topic>:<id>" never collides.
		opts = append(opts, jetstream.WithMsgID(m.Topic+":"+m.ID))
	}
	pa, err := b.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return broker.Ack{}, fmt.Errorf("jsbroker: publish %q: %w", m.Topic, broker.ErrTooLarge)
		}
		return broker.Ack{}, fmt.Errorf("jsbroker: publish %q: %w", m.Topic, err)
	}
	return broker.Ack{Offset: pa.Sequence, Epoch: st.currentEpoch(), Duplicate: pa.Duplicate}, nil
}

// Connected implements broker.Broker.
func (b *Broker) Connected() bool { return b.nc.IsConnected() }

// Stats implements broker.Broker: natsbroker's counters plus the durable
// subscriptions' and the JetStream requests. Call it at scrape frequency.
func (b *Broker) Stats() broker.Stats {
	st := b.vol.Stats()
	st.Subscriptions += b.subs.Load()
	st.Requests += b.requests.Load()
	for _, p := range b.parts {
		st.Received += p.received.Load()
		st.Stale += p.stale.Load()
		p.mu.RLock()
		st.Dropped += p.retiredDrops
		for nsub := range p.subs {
			if d, err := nsub.Dropped(); err == nil {
				st.Dropped += int64(d)
			}
		}
		p.mu.RUnlock()
	}
	return st
}

// Close implements broker.Broker: it ends every subscription and stops the
// workers and the monitor. It leaves the NATS connection and the streams.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		for _, p := range b.parts {
			p.closeAll(b)
		}
		close(b.done)
		b.wg.Wait()
		b.nc.RemoveStatusListener(b.status)
		b.mux.close()
		b.vol.Close()
	})
}

var _ broker.Mailboxes = (*Broker)(nil)

// OpenMailbox implements broker.Mailboxes with the natsbroker.Broker of
// the volatile topics: mailboxes have no history.
func (b *Broker) OpenMailbox(name string, h broker.MailHandler) (broker.Mailbox, error) {
	return b.vol.OpenMailbox(name, h)
}

// Request implements broker.Mailboxes (OpenMailbox).
func (b *Broker) Request(name string, req []byte, timeout time.Duration, done func(reply []byte, err error)) error {
	return b.vol.Request(name, req, timeout, done)
}
