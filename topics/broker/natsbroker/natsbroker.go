// Package natsbroker is the core-NATS implementation of broker.Broker: one
// NATS subscription per topic with local interest, so the NATS cluster
// routes each message only to the nodes that want it, and a few worker
// goroutines that hand the messages to the topic registry. It also
// implements broker.Mailboxes (mailbox.go): point-to-point requests to a
// named mailbox on whichever node opened it, with NATS request/reply.
//
// Core NATS delivers at most once: messages published while the node is
// disconnected, or dropped because a worker fell behind, are lost (and
// counted in Stats.Dropped where the node can see them).
package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker"
)

// Config configures a Broker. Zero fields take their defaults.
type Config struct {
	// Prefix is the NATS subject prefix: topic "a.b" travels on subject
	// "<Prefix>.a.b". It must itself be a valid topic name (codec.ValidTopic).
	// Default "pushd".
	Prefix string
	// Workers is the number of goroutines that hand messages to the
	// registry, each reading its own channel. A topic always maps to the
	// same worker (by hash), which keeps per-topic order. Default 4.
	Workers int
	// QueueLen is the capacity of each worker's channel. nats.go's reader
	// never blocks on it: when it is full the message is dropped and
	// counted in Stats.Dropped. Default 65536.
	QueueLen int
	// Logger receives the broker's rare operational messages. Default
	// slog.Default().
	Logger *slog.Logger
}

// Defaults used for zero Config fields.
const (
	DefaultPrefix   = "pushd"
	DefaultWorkers  = 4
	DefaultQueueLen = 65536
)

// Broker is a broker.Broker on one nats.Conn. Safe for concurrent use.
type Broker struct {
	// Immutable after New.
	nc     *nats.Conn
	prefix string // Config.Prefix + "."
	log    *slog.Logger
	parts  []*partition
	done   chan struct{} // closed by Close to stop the workers
	wg     sync.WaitGroup

	closeOnce sync.Once
	closed    atomic.Bool
	subs      atomic.Int64 // NATS subscriptions made and not yet unsubscribed

	// flushMu guards waiters and flushing: PublishWait callers waiting for
	// the next flush, and whether a flush goroutine is running.
	flushMu  sync.Mutex
	waiters  []chan error
	flushing bool
	flushes  atomic.Int64 // round trips made for PublishWait callers

	mail *mailboxes // broker.Mailboxes (mailbox.go)
}

// partition is one worker, its channel and the subscriptions that feed it.
type partition struct {
	// Immutable after New.
	ch chan *nats.Msg // filled by nats.go's reader goroutine, read by the worker

	// mu guards sinks and retiredDrops. Subscribe holds it for writing
	// across the NATS subscribe call, so the worker never sees a message
	// of a subscription before its sink is registered.
	mu           sync.RWMutex
	sinks        map[*nats.Subscription]broker.Sink
	retiredDrops int64 // nats.go slow-consumer drops of ended subscriptions

	// Written by the worker goroutine; atomics so that Stats may read.
	received atomic.Int64
	stale    atomic.Int64
}

// sub is one topic's NATS subscription.
type sub struct {
	b    *Broker
	p    *partition
	nsub *nats.Subscription
	once sync.Once
}

// New returns a Broker on nc and starts its workers. The Broker does not own
// nc: Close leaves it open. nc's reconnect options apply; nats.go
// resubscribes by itself after a reconnect. Any goroutine.
func New(nc *nats.Conn, cfg Config) (*Broker, error) {
	if nc == nil {
		return nil, errors.New("natsbroker: nil NATS connection")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if err := codec.ValidTopic(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("natsbroker: prefix: %w", err)
	}
	if strings.HasPrefix(cfg.Prefix+".", MailboxSubjectRoot+".") {
		return nil, fmt.Errorf("natsbroker: prefix %q: %s is reserved for mailboxes", cfg.Prefix, MailboxSubjectRoot)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Broker{
		nc:     nc,
		prefix: cfg.Prefix + ".",
		log:    cfg.Logger,
		parts:  make([]*partition, cfg.Workers),
		done:   make(chan struct{}),
	}
	for i := range b.parts {
		b.parts[i] = &partition{
			ch:    make(chan *nats.Msg, cfg.QueueLen),
			sinks: make(map[*nats.Subscription]broker.Sink),
		}
	}
	b.mail = newMailboxes(b, cfg.Prefix, cfg.Workers)
	b.wg.Add(len(b.parts))
	for _, p := range b.parts {
		go b.work(p)
	}
	return b, nil
}

// Subject returns the NATS subject topic travels on. Any goroutine.
func (b *Broker) Subject(topic string) string { return b.prefix + topic }

// Subscribe implements broker.Broker: one ChanSubscribe on the topic's
// literal subject, into the channel of the worker the topic hashes to (no
// goroutine per subscription). While nats.go is reconnecting it succeeds,
// and the subscription is sent on reconnect.
func (b *Broker) Subscribe(topic string, sink broker.Sink) (broker.Subscription, error) {
	if b.closed.Load() {
		return nil, broker.ErrClosed
	}
	p := b.parts[hashTopic(topic)%uint32(len(b.parts))]
	p.mu.Lock()
	defer p.mu.Unlock()
	nsub, err := b.nc.ChanSubscribe(b.prefix+topic, p.ch)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribe %q: %w", topic, err)
	}
	p.sinks[nsub] = sink
	b.subs.Add(1)
	return &sub{b: b, p: p, nsub: nsub}, nil
}

// Unsubscribe implements broker.Subscription. Idempotent.
func (s *sub) Unsubscribe() (err error) {
	s.once.Do(func() {
		p := s.p
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, live := p.sinks[s.nsub]; !live {
			return // Close ended it already
		}
		if d, derr := s.nsub.Dropped(); derr == nil {
			p.retiredDrops += int64(d)
		}
		delete(p.sinks, s.nsub)
		s.b.subs.Add(-1)
		// A closed or draining connection has dropped (or is dropping) the
		// subscription already.
		switch uerr := s.nsub.Unsubscribe(); {
		case uerr == nil, errors.Is(uerr, nats.ErrConnectionClosed),
			errors.Is(uerr, nats.ErrConnectionDraining), errors.Is(uerr, nats.ErrBadSubscription):
		default:
			err = fmt.Errorf("natsbroker: unsubscribe %q: %w", s.nsub.Subject, uerr)
		}
	})
	return err
}

// work is the loop of one worker. nats.go's reader goroutine fills p.ch
// through ChanSubscribe and never blocks on it: a full channel drops the
// message and counts it in the subscription's Dropped. The channel is never
// closed, since nats.go may still send on it; done stops the worker.
func (b *Broker) work(p *partition) {
	defer b.wg.Done()
	for {
		select {
		case m := <-p.ch:
			p.received.Add(1)
			p.mu.RLock()
			sink := p.sinks[m.Sub]
			p.mu.RUnlock()
			if sink == nil { // the subscription ended while m was queued
				p.stale.Add(1)
				continue
			}
			// m.Data is the message's private copy; the sink owns it now.
			sink.Deliver(broker.Message{Data: m.Data})
		case <-b.done:
			return
		}
	}
}

// Publish implements broker.Broker with nats.Conn.Publish, which only
// buffers.
func (b *Broker) Publish(topic string, data []byte) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if err := b.nc.Publish(b.prefix+topic, data); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return fmt.Errorf("natsbroker: publish %q: %w (%d bytes)", topic, broker.ErrTooLarge, b.nc.MaxPayload())
		}
		return fmt.Errorf("natsbroker: publish %q: %w", topic, err)
	}
	return nil
}

// PublishWait implements broker.Broker: it buffers every message, then
// waits for a flush (a PING/PONG round trip with the server) sent after
// them, so a nil error means the NATS server has received them all. Core
// NATS gives no stronger guarantee: no offsets, no storage, and subscribers
// that are disconnected miss the message.
//
// Concurrent callers share round trips: while one flush is in flight, the
// callers that arrive wait together for the next one, so N concurrent
// publishers cost about one round trip each time, not N.
func (b *Broker) PublishWait(ctx context.Context, msgs []broker.Outgoing) ([]broker.Ack, error) {
	for _, m := range msgs {
		if err := b.Publish(m.Topic, m.Data); err != nil {
			return nil, err
		}
	}
	if err := b.flush(ctx); err != nil {
		return nil, fmt.Errorf("natsbroker: flush: %w", err)
	}
	return make([]broker.Ack, len(msgs)), nil
}

// flushTimeout bounds one shared round trip; each caller's ctx bounds its
// own wait.
const flushTimeout = 10 * time.Second

// flush waits for a round trip that starts after the call, sharing it with
// every other caller that joined before it started.
func (b *Broker) flush(ctx context.Context) error {
	done := make(chan error, 1)
	b.flushMu.Lock()
	b.waiters = append(b.waiters, done)
	if !b.flushing {
		b.flushing = true
		go b.flushLoop()
	}
	b.flushMu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushLoop makes round trips while callers wait: each one takes every
// caller that is waiting when it starts (their messages are all in the
// connection's buffer ahead of the PING) and answers all of them. It runs
// on its own goroutine, at most one at a time.
func (b *Broker) flushLoop() {
	for {
		b.flushMu.Lock()
		waiting := b.waiters
		b.waiters = nil
		if len(waiting) == 0 {
			b.flushing = false
			b.flushMu.Unlock()
			return
		}
		b.flushMu.Unlock()
		b.flushes.Add(1)
		err := b.nc.FlushTimeout(flushTimeout)
		for _, done := range waiting {
			done <- err // buffered: a caller that gave up does not block us
		}
	}
}

// Flushes returns how many round trips PublishWait callers have shared
// since New. Any goroutine.
func (b *Broker) Flushes() int64 { return b.flushes.Load() }

// History implements broker.Broker: core NATS keeps no history.
func (b *Broker) History(context.Context, broker.HistoryRequest) (broker.HistoryResult, error) {
	return broker.HistoryResult{}, broker.ErrNoHistory
}

// Retention implements broker.Broker: core NATS keeps no history.
func (b *Broker) Retention(string) (broker.Retention, bool) { return broker.Retention{}, false }

// Connected implements broker.Broker.
func (b *Broker) Connected() bool { return b.nc.IsConnected() }

// Stats implements broker.Broker. It asks nats.go for every live
// subscription's drop count, so its cost grows with the number of topics:
// call it at scrape frequency.
func (b *Broker) Stats() broker.Stats {
	st := broker.Stats{
		Subscriptions: b.subs.Load(),
		Reconnects:    int64(b.nc.Stats().Reconnects),
	}
	for _, p := range b.parts {
		st.Received += p.received.Load()
		st.Stale += p.stale.Load()
		p.mu.RLock()
		st.Dropped += p.retiredDrops
		for nsub := range p.sinks {
			if d, err := nsub.Dropped(); err == nil {
				st.Dropped += int64(d)
			}
		}
		p.mu.RUnlock()
	}
	return st
}

// Close implements broker.Broker: it ends every subscription and stops the
// workers; messages still in their channels are discarded. It leaves the
// NATS connection open and returns once the workers have exited.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		for _, p := range b.parts {
			p.mu.Lock()
			for nsub := range p.sinks {
				if d, err := nsub.Dropped(); err == nil {
					p.retiredDrops += int64(d)
				}
				_ = nsub.Unsubscribe()
				delete(p.sinks, nsub)
				b.subs.Add(-1)
			}
			p.mu.Unlock()
		}
		b.mail.close()
		close(b.done)
		b.wg.Wait()
	})
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
