package jsbroker

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/topics/broker"
)

// Headers of a republished or directly read stream message
// (nats-server stream.go: JSSequence, JSLastSequence, JSTimeStamp, ...).
const (
	hdrSequence   = "Nats-Sequence"
	hdrLast       = "Nats-Last-Sequence"
	hdrTimeStamp  = "Nats-Time-Stamp"
	hdrSubject    = "Nats-Subject"
	hdrNumPending = "Nats-Num-Pending"
)

// ctlQueueLen is the capacity of each worker's control queue.
const ctlQueueLen = 1024

// partition is one live-path worker, its channels and the durable
// subscriptions that feed it.
type partition struct {
	// Immutable after newPartition.
	ch  chan *nats.Msg // filled by nats.go's reader (ChanSubscribe), read by the worker
	ctl chan func()    // functions to run on the worker (monitor results, timers)

	// mu guards subs and retiredDrops. subscribeDurable holds it across
	// the NATS subscribe, so the worker never sees a message of a
	// subscription before it is registered.
	mu           sync.RWMutex
	subs         map[*nats.Subscription]*dsub
	retiredDrops int64

	// Written by the worker; atomics so Stats may read.
	received atomic.Int64
	stale    atomic.Int64
}

func newPartition(queueLen int) *partition {
	return &partition{
		ch:   make(chan *nats.Msg, queueLen),
		ctl:  make(chan func(), ctlQueueLen),
		subs: make(map[*nats.Subscription]*dsub),
	}
}

// dsub is one durable topic's subscription: its republish subject's core
// subscription and what its Sink has been told.
type dsub struct {
	// Immutable after subscribeDurable.
	b       *Broker
	p       *partition
	st      *stream
	topic   string
	subject string // the plain subject the stream stores the topic under
	sink    broker.Sink
	nsub    *nats.Subscription

	ended atomic.Bool

	// Owned by the worker goroutine.
	started  bool      // the Sink has had its first Head
	known    uint64    // the highest offset the Sink has been given, by Deliver or Head
	lastTime time.Time // stored time of the newest delivered message; zero until one
	expect   uint64    // a check saw the history at this offset, beyond known; 0: none pending
}

// subscribeDurable subscribes to topic's republish subject and queues the
// subscription for its first Head.
func (b *Broker) subscribeDurable(st *stream, topic string, sink broker.Sink) (broker.Subscription, error) {
	p := b.parts[hashTopic(topic)%uint32(len(b.parts))]
	d := &dsub{b: b, p: p, st: st, topic: topic, subject: b.prefix + topic, sink: sink}
	p.mu.Lock()
	nsub, err := b.nc.ChanSubscribe(LiveRoot+"."+d.subject, p.ch)
	if err != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("jsbroker: subscribe %q: %w", topic, err)
	}
	d.nsub = nsub
	p.subs[nsub] = d
	p.mu.Unlock()
	st.mu.Lock()
	st.subs[d] = struct{}{}
	st.mu.Unlock()
	b.subs.Add(1)
	b.mu.Lock()
	b.fresh = append(b.fresh, d)
	b.mu.Unlock()
	b.wake()
	return d, nil
}

// Unsubscribe implements broker.Subscription. Idempotent.
func (d *dsub) Unsubscribe() error {
	if !d.ended.CompareAndSwap(false, true) {
		return nil
	}
	p, b := d.p, d.b
	p.mu.Lock()
	if _, live := p.subs[d.nsub]; live {
		if n, err := d.nsub.Dropped(); err == nil {
			p.retiredDrops += int64(n)
		}
		delete(p.subs, d.nsub)
	}
	p.mu.Unlock()
	d.st.mu.Lock()
	delete(d.st.subs, d)
	d.st.mu.Unlock()
	b.subs.Add(-1)
	switch err := d.nsub.Unsubscribe(); {
	case err == nil, errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrBadSubscription):
		return nil
	default:
		return fmt.Errorf("jsbroker: unsubscribe %q: %w", d.topic, err)
	}
}

// closeAll ends every subscription of the partition (Broker.Close).
func (p *partition) closeAll(b *Broker) {
	p.mu.RLock()
	all := make([]*dsub, 0, len(p.subs))
	for _, d := range p.subs {
		all = append(all, d)
	}
	p.mu.RUnlock()
	for _, d := range all {
		if err := d.Unsubscribe(); err != nil {
			b.log.Warn("jsbroker: unsubscribe at close", "topic", d.topic, "err", err)
		}
	}
}

// work is one worker's loop. Like natsbroker's, its data channel is never
// closed (nats.go may still send on it); done stops it.
func (b *Broker) work(p *partition) {
	defer b.wg.Done()
	for {
		select {
		case m := <-p.ch:
			b.handle(p, m)
		case fn := <-p.ctl:
			fn()
		case <-b.done:
			return
		}
	}
}

// handle delivers one republished message. A message whose offset is not
// above what the Sink already knows is delivered anyway (the Sink drops
// duplicates), but if it was stored later than the newest delivered one,
// the stream has restarted its sequences: the monitor checks the epoch.
func (b *Broker) handle(p *partition, m *nats.Msg) {
	p.received.Add(1)
	p.mu.RLock()
	d := p.subs[m.Sub]
	p.mu.RUnlock()
	if d == nil {
		p.stale.Add(1)
		return
	}
	seq, prev, ts, ok := parseLive(m.Header)
	if !ok {
		// Not a republished stream message: someone published on the
		// live subject directly.
		p.stale.Add(1)
		return
	}
	if seq <= d.known && !d.lastTime.IsZero() && ts.After(d.lastTime) {
		b.suspectEpoch(d.st)
	}
	if seq > d.known {
		d.known, d.lastTime = seq, ts
	}
	if d.expect != 0 && seq >= d.expect {
		d.expect = 0
	}
	d.sink.Deliver(broker.Message{Data: m.Data, Offset: seq, Epoch: d.st.currentEpoch(), Prev: prev, Time: ts})
}

// parseLive reads the headers RePublish adds.
func parseLive(h nats.Header) (seq, prev uint64, ts time.Time, ok bool) {
	seq, err1 := strconv.ParseUint(first(h, hdrSequence), 10, 64)
	prev, err2 := strconv.ParseUint(first(h, hdrLast), 10, 64)
	ts, err3 := time.Parse(time.RFC3339Nano, first(h, hdrTimeStamp))
	return seq, prev, ts, err1 == nil && err2 == nil && err3 == nil && seq > 0
}

// first returns the first value of header key, matched exactly (the
// server writes these names in this case).
func first(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// start gives the Sink its first Head: the history's newest offset when
// the subscription began. Worker goroutine only.
func (d *dsub) start(head uint64) {
	if d.ended.Load() || d.started {
		return
	}
	d.started = true
	d.known = max(d.known, head)
	d.sink.Head(head, d.st.currentEpoch())
}

// reset tells the Sink that the stream was replaced: its history now ends
// at head, in a new epoch. Worker goroutine only.
func (d *dsub) reset(head uint64) {
	if d.ended.Load() {
		return
	}
	d.started = true
	d.known, d.lastTime, d.expect = head, time.Time{}, 0
	d.sink.Head(head, d.st.currentEpoch())
}

// observe records that a check saw the history end at head. If the Sink
// has not had that far within Grace, the message is not in flight but
// lost, and Head reports it. Worker goroutine only.
func (d *dsub) observe(head uint64) {
	if d.ended.Load() || !d.started || head <= d.known {
		return
	}
	if d.expect == 0 {
		time.AfterFunc(d.b.cfg.Grace, func() { d.b.toWorker(d.p, d.confirm) })
	}
	d.expect = max(d.expect, head)
}

// confirm runs Grace after observe: a history still ahead is reported.
func (d *dsub) confirm() {
	if d.ended.Load() || d.expect == 0 {
		return
	}
	head := d.expect
	d.expect = 0
	if head > d.known {
		d.known = head
		d.sink.Head(head, d.st.currentEpoch())
	}
}

// toWorker runs fn on p's worker, unless the broker closes first. Any
// goroutine but a worker's.
func (b *Broker) toWorker(p *partition, fn func()) {
	select {
	case p.ctl <- fn:
	case <-b.done:
	}
}

// hashTopic is 32-bit FNV-1a (as natsbroker's): a topic always maps to the
// same worker, which keeps its messages in order.
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
