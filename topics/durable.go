package topics

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker"
)

// durable is the live state of one durable topic for one period of
// interest (it belongs to a topicState): where the node's live stream of
// the topic stands in the topic's history, the per-node cache of recent
// messages, the repair of gaps, and the catch-ups of resuming subscribers.
//
// The live stream. Messages reach Deliver in the order the broker got them,
// each with its predecessor in the history (Prev). The node dispatches them
// to the shards only in an unbroken chain: head is the offset of the newest
// message dispatched, and the next one dispatched is always the one that
// follows head in the history. A message whose Prev is above head means
// the broker missed messages (a dropped republish, a reconnect): it and
// everything after it are held while a repair reads the missing ones from
// the history, then all are dispatched in order. If the history no longer
// has them, every subscriber is told (LossNotifier) before anything later
// is dispatched. Head tells where the history ended when interest began
// (until then messages are held) and, later, that it is ahead of head.
//
// The cache is the tail of that chain: chain holds the newest dispatched
// messages (and older ones read from the history that connect to them),
// each following the one before it, and base is the offset just before
// chain[0] when known. A subscriber resuming after an offset that is base
// or one of chain's offsets gets the rest of chain without any request.
//
// Catch-ups that the cache cannot serve wait for one history read that
// starts at the lowest waiting position; when it returns, every waiter that
// it (joined to the chain) covers is served, so a crowd resuming the same
// topic costs one request, not one each. A catch-up's outcome goes to its
// shard's queue under mu, the lock under which messages are dispatched, so
// on its loop the replay (up to head) comes exactly before the live
// messages after head.
type durable struct {
	// Immutable after newDurable.
	ts        *topicState
	ret       broker.Retention
	capLen    int // cache cap in messages: min(Config.CacheLen, ret.Size)
	capBytes  int
	maxReplay int
	timeout   time.Duration

	// mu guards everything below, and topicState.seq. Lock order:
	// durable.mu, then partition.mu (read), then Shard.mu.
	mu          sync.Mutex
	closed      bool
	epoch       string
	established bool   // head is known (the first Head arrived)
	head        uint64 // offset of the newest dispatched message, or where the history ended when interest began
	target      uint64 // the history is known to reach this offset (Head, a message's Prev)
	base        uint64 // offset just before chain[0] (or head when chain is empty)
	baseOK      bool
	chain       []*Message // contiguous, ending at head; one reference each
	chainBytes  int
	held        []broker.Message // live messages waiting for establishment or a repair
	repairing   bool
	gen         uint64 // bumped by every reset; a repair of an older generation is void
	waiters     []*catchUp
	joiners     []*Subscription // Resume subscriptions without a position, waiting for the first Head
	fetching    bool
	pin         uint64 // while fetching: the head when the read started; the chain keeps what came after it
	timerArmed  bool
}

// catchUp is one subscription waiting to resume after a position.
type catchUp struct {
	x      *Subscription
	since  codec.Position
	rounds int // history reads this catch-up has waited for
}

// Limits of the live path and catch-ups.
const (
	// holdMax bounds the live messages held during a repair. Past it the
	// oldest are dropped: they are in the history, so the repair reads
	// them back.
	holdMax = 1 << 16
	// repairBatch is how many messages one repair read asks for.
	repairBatch = 1000
	// maxRounds bounds the history reads one catch-up waits for.
	maxRounds = 3
	// retryWait is the pause before a failed repair read is retried.
	retryWait = 250 * time.Millisecond
)

func newDurable(ts *topicState, ret broker.Retention) *durable {
	h := ts.hub
	capLen := h.cfg.CacheLen
	if int64(capLen) > ret.Size {
		capLen = int(ret.Size)
	}
	return &durable{ts: ts, ret: ret, capLen: capLen, capBytes: h.cfg.CacheBytes,
		maxReplay: h.cfg.MaxReplay, timeout: h.cfg.CatchUpTimeout}
}

// deliver takes one live message from the broker (topicState.Deliver).
func (d *durable) deliver(bm broker.Message) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if !d.established || d.repairing {
		d.hold(bm)
		return
	}
	d.accept(bm)
}

// hold keeps bm until the chain can take it.
func (d *durable) hold(bm broker.Message) {
	if len(d.held) == holdMax {
		d.held[0] = broker.Message{}
		d.held = d.held[1:]
		d.ts.hub.heldDropped.Add(1)
	}
	d.held = append(d.held, bm)
}

// accept puts one message on the chain, or starts a repair when messages
// are missing before it. mu held; established and not repairing.
func (d *durable) accept(bm broker.Message) {
	if bm.Epoch != d.epoch {
		d.reset(bm.Epoch, bm.Prev, codec.ReasonEpochChanged)
	}
	switch {
	case bm.Offset <= d.head:
		d.ts.hub.duplicates.Add(1)
	case bm.Prev > d.head:
		d.target = max(d.target, bm.Prev)
		d.hold(bm)
		d.startRepair()
	default:
		d.dispatch(bm)
	}
}

// onHead takes the broker's report of where the history ends.
func (d *durable) onHead(offset uint64, epoch string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
	case !d.established:
		d.establish(offset, epoch)
	case epoch != d.epoch:
		d.reset(epoch, offset, codec.ReasonEpochChanged)
		d.processHeld()
	case offset > d.head:
		d.target = max(d.target, offset)
		d.startRepair()
	}
}

// establish starts the chain where the history ended when interest began.
// Live messages that arrived before that report and are part of that
// history are dispatched rather than dropped: the chain starts just before
// the first of them.
func (d *durable) establish(head uint64, epoch string) {
	d.epoch, d.head, d.target = epoch, head, head
	if len(d.held) > 0 && d.held[0].Epoch == epoch && d.held[0].Offset <= head {
		d.head = d.held[0].Prev
	}
	d.base, d.baseOK = d.head, true
	d.established = true
	d.processHeld()
	ws := d.waiters
	d.waiters = nil
	for _, c := range ws {
		d.catchUpLocked(c)
	}
	for _, x := range d.joiners {
		x.st.shard.enqueueControl(x.st, &control{kind: ctlResolve, x: x, live: d.livePosition()})
	}
	d.joiners = nil
}

// livePosition is where a subscription that goes live now starts: every
// message accepted from now on is above it. mu held; established.
func (d *durable) livePosition() codec.Position {
	return codec.Position{Offset: d.head, Epoch: d.epoch}
}

// join makes a Resume subscription without a position live once the node
// knows where the topic's history ended when its interest began: from then
// on every stored message reaches it, so the caller's reply to the
// subscribe means "everything stored after this is yours". Any goroutine.
func (d *durable) join(x *Subscription) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		x.st.shard.enqueueControl(x.st, &control{kind: ctlResolve, x: x})
		return
	}
	if d.established {
		x.st.shard.enqueueControl(x.st, &control{kind: ctlResolve, x: x, live: d.livePosition()})
		return
	}
	d.joiners = append(d.joiners, x)
	d.armTimer()
}

// processHeld accepts the held messages in order until one needs a repair.
func (d *durable) processHeld() {
	held := d.held
	d.held = nil
	for i, bm := range held {
		if d.repairing {
			d.held = append(d.held, held[i:]...)
			return
		}
		d.accept(bm)
	}
	if !d.repairing && d.target > d.head {
		d.startRepair()
	}
}

// dispatch numbers bm, caches it and hands it to every shard with local
// subscribers. mu held.
func (d *durable) dispatch(bm broker.Message) {
	ts, h := d.ts, d.ts.hub
	// Under the read lock, as in topicState.Deliver.
	ts.part.mu.RLock()
	defer ts.part.mu.RUnlock()
	targets := ts.shards
	ts.seq++
	m := h.newMessage(ts.name, ts.seq, bm.Data, bm.Offset, bm.Epoch)
	m.stored = bm.Time
	d.head = bm.Offset
	d.target = max(d.target, d.head)
	d.cacheAppend(m)
	for _, st := range targets {
		m.Retain()
		st.shard.enqueue(st, m)
	}
	m.Release()
	if len(targets) > 0 {
		h.dispatched.Add(1)
	} else {
		h.noTopic.Add(1)
	}
}

// cacheAppend adds m, just dispatched, to the chain and trims it. mu held.
func (d *durable) cacheAppend(m *Message) {
	if d.capLen <= 0 && !d.fetching {
		d.base, d.baseOK = m.offset, true
		return
	}
	m.Retain()
	d.chain = append(d.chain, m)
	d.chainBytes += len(m.data)
	d.ts.hub.cacheMessages.Add(1)
	d.ts.hub.cacheBytes.Add(int64(len(m.data)))
	d.trim()
}

// trim drops the chain's oldest messages past the caps or the TTL. While
// a history read runs, it keeps what was dispatched since the read started
// (up to MaxReplay messages more than the cap), so that the read, which
// ends at or after that point, joins the chain when it returns however
// fast the topic moves. mu held.
func (d *durable) trim() {
	var now time.Time
	if d.ret.TTL > 0 {
		now = time.Now()
	}
	n := 0
	for n < len(d.chain) {
		m := d.chain[n]
		left := len(d.chain) - n
		if d.fetching && m.offset > d.pin && left <= max(d.capLen, 0)+d.maxReplay {
			break
		}
		over := left > d.capLen || d.chainBytes > d.capBytes
		expired := d.ret.TTL > 0 && !m.stored.IsZero() && now.Sub(m.stored) > d.ret.TTL
		if !over && !expired {
			break
		}
		d.base, d.baseOK = m.offset, true
		d.chainBytes -= len(m.data)
		d.ts.hub.cacheMessages.Add(-1)
		d.ts.hub.cacheBytes.Add(-int64(len(m.data)))
		m.Release()
		d.chain[n] = nil
		n++
	}
	if n > 0 {
		d.chain = d.chain[n:]
		if len(d.chain) == 0 {
			d.chain = nil
		}
	}
}

// releaseChain empties the cache. mu held.
func (d *durable) releaseChain() {
	for i, m := range d.chain {
		d.ts.hub.cacheMessages.Add(-1)
		d.ts.hub.cacheBytes.Add(-int64(len(m.data)))
		m.Release()
		d.chain[i] = nil
	}
	d.chain, d.chainBytes = nil, 0
}

// reset abandons the chain: the history was replaced (a new epoch) or lost
// messages that cannot be read back. Every subscriber is told why, then the
// chain restarts at head. mu held.
func (d *durable) reset(epoch string, head uint64, reason string) {
	d.notifyLoss(reason)
	d.releaseChain()
	if epoch != d.epoch {
		kept := d.held[:0]
		for _, bm := range d.held {
			if bm.Epoch == epoch {
				kept = append(kept, bm)
			}
		}
		d.held = kept
	}
	d.epoch, d.head, d.target = epoch, head, head
	d.base, d.baseOK = head, true
	d.repairing = false
	d.gen++
}

// notifyLoss tells every shard with subscribers of the topic that the live
// stream lost messages for good. mu held.
func (d *durable) notifyLoss(reason string) {
	ts := d.ts
	ts.part.mu.RLock()
	defer ts.part.mu.RUnlock()
	targets := ts.shards
	for _, st := range targets {
		st.shard.enqueueControl(st, &control{kind: ctlLoss, reason: reason})
	}
	if len(targets) > 0 {
		ts.hub.losses.Add(1)
	}
}

// startRepair reads the messages after head from the history; live
// messages are held meanwhile. mu held.
func (d *durable) startRepair() {
	if d.repairing || d.closed {
		return
	}
	d.repairing = true
	after, gen := d.head, d.gen
	d.ts.hub.repairs.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		res, err := d.ts.hub.broker.History(ctx, broker.HistoryRequest{Topic: d.ts.name, After: after, Limit: repairBatch})
		cancel()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.repairDone(after, gen, res, err)
	}()
}

// repairDone applies a repair read. mu held.
func (d *durable) repairDone(after, gen uint64, res broker.HistoryResult, err error) {
	if d.closed || gen != d.gen || !d.repairing || d.head != after {
		return // a reset made this read void
	}
	if err != nil || res.Epoch != d.epoch {
		// Unreachable, or the stream was just replaced (the broker's Head
		// in the new epoch will reset the chain): try again shortly.
		if err != nil {
			d.ts.hub.log.Debug("topics: history repair read failed", "topic", d.ts.name, "err", err)
		}
		time.AfterFunc(retryWait, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if !d.closed && d.repairing && d.gen == gen && d.head == after {
				d.repairing = false
				d.startRepair()
			}
		})
		return
	}
	d.repairing = false
	if !res.Continuous {
		// What followed head is gone from the history: the subscribers lost
		// it. Go on with what the history still has.
		d.reset(d.epoch, d.head, codec.ReasonTrimmed)
		d.baseOK = false
	}
	for _, bm := range res.Messages {
		if bm.Offset > d.head {
			d.dispatch(bm)
		}
	}
	if res.More {
		d.startRepair()
	} else {
		// The history, as read, ends at head: a target beyond it was
		// stale (or expired); a held message with a higher Prev starts
		// another repair by itself.
		d.target = d.head
	}
	d.processHeld()
}

// catchUp resumes c.x after c.since: from the cache at once when it
// covers the position, otherwise after a (shared) history read. The
// outcome reaches c.x's shard queue. Any goroutine.
func (d *durable) catchUp(c *catchUp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ts.hub.catchUps.Add(1)
	if d.closed {
		d.resolve(c, codec.ReasonUnavailable, nil, 0)
		return
	}
	d.catchUpLocked(c)
}

func (d *durable) catchUpLocked(c *catchUp) {
	if d.established && d.serve(c) {
		d.ts.hub.catchUpsCached.Add(1)
		return
	}
	d.waiters = append(d.waiters, c)
	if d.established {
		d.fetch()
		return
	}
	d.armTimer()
}

// armTimer makes sure the catch-ups and joins waiting for the first Head
// are answered after the timeout even if it never comes (JetStream
// unreachable). mu held.
func (d *durable) armTimer() {
	if !d.timerArmed {
		d.timerArmed = true
		time.AfterFunc(d.timeout, d.expireWaiters)
	}
}

// expireWaiters answers "unavailable" to catch-ups still waiting for the
// first Head.
func (d *durable) expireWaiters() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timerArmed = false
	if d.established {
		return
	}
	for _, c := range d.waiters {
		d.resolve(c, codec.ReasonUnavailable, nil, 0)
	}
	d.waiters = nil
	for _, x := range d.joiners {
		x.st.shard.enqueueControl(x.st, &control{kind: ctlResolve, x: x})
	}
	d.joiners = nil
}

// serve resolves c from the epoch check and the chain, and reports
// whether it did. mu held; established.
func (d *durable) serve(c *catchUp) bool {
	x := c.since.Offset
	if x != 0 && c.since.Epoch != d.epoch {
		d.resolve(c, codec.ReasonEpochChanged, nil, d.head)
		return true
	}
	i, ok := d.covers(x)
	if !ok {
		return false
	}
	if len(d.chain)-i > d.maxReplay {
		d.resolve(c, codec.ReasonLimit, nil, d.head)
		return true
	}
	d.resolve(c, "", retainAll(nil, d.chain[i:]), d.head)
	return true
}

// covers reports whether the chain holds everything of the topic after
// position x, and the index of the first message after it. The chain is
// every message of the topic in (base, head] (or in [chain[0], head] when
// base is unknown), so any x in that range is covered, whether or not it
// is one of the topic's own offsets: the offsets of a history are shared
// by all its topics, and a position means "everything stored after it".
func (d *durable) covers(x uint64) (int, bool) {
	lo, ok := d.base, d.baseOK
	if !ok && len(d.chain) > 0 {
		lo, ok = d.chain[0].offset, true
	}
	if !ok || x < lo || x > d.head {
		return 0, false
	}
	return sort.Search(len(d.chain), func(i int) bool { return d.chain[i].offset > x }), true
}

// fetch starts the history read for the waiting catch-ups, from the lowest
// waiting offset, unless one is running. mu held.
func (d *durable) fetch() {
	if d.fetching || len(d.waiters) == 0 {
		return
	}
	from := d.waiters[0].since.Offset
	for _, c := range d.waiters[1:] {
		from = min(from, c.since.Offset)
	}
	d.fetching, d.pin = true, d.head
	d.ts.hub.catchUpReads.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		res, err := d.ts.hub.broker.History(ctx, broker.HistoryRequest{Topic: d.ts.name, After: from, Limit: d.maxReplay + 1})
		cancel()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.fetchDone(from, res, err)
	}()
}

// fetchDone serves the catch-ups that waited for a history read from
// offset from. mu held.
func (d *durable) fetchDone(from uint64, res broker.HistoryResult, err error) {
	d.fetching = false
	ws := d.waiters
	d.waiters = nil
	if d.closed || err != nil || res.Epoch != d.epoch {
		if err != nil {
			d.ts.hub.log.Debug("topics: history read for a resume failed", "topic", d.ts.name, "err", err)
		}
		for _, c := range ws {
			if err == nil && c.since.Offset != 0 && c.since.Epoch != res.Epoch {
				d.resolve(c, codec.ReasonEpochChanged, nil, d.head)
			} else {
				d.resolve(c, codec.ReasonUnavailable, nil, d.head)
			}
		}
		return
	}
	run := make([]*Message, len(res.Messages))
	for i, bm := range res.Messages {
		run[i] = d.ts.hub.newMessage(d.ts.name, 0, bm.Data, bm.Offset, bm.Epoch)
		run[i].stored = bm.Time
	}
	d.joinFront(run, from, res.Continuous)
	last := from
	if len(run) > 0 {
		last = run[len(run)-1].offset
	}
	var again []*catchUp
	for _, c := range ws {
		if d.serve(c) {
			continue
		}
		x := c.since.Offset
		// The read covers every position from lo to last: from itself
		// when continuous, otherwise from its first message on (one of
		// the topic's messages at or before the position is stored).
		lo, covered := from, res.Continuous
		if !covered && len(run) > 0 {
			lo, covered = run[0].offset, true
		}
		inRun := covered && x >= lo && x <= last
		idx := sort.Search(len(run), func(i int) bool { return run[i].offset > x })
		switch {
		case inRun:
			replay := run[idx:]
			if len(replay) > d.maxReplay {
				d.resolve(c, codec.ReasonLimit, nil, d.head)
				continue
			}
			if last >= d.head {
				// The read reaches the live head: the live stream after
				// it follows without a gap.
				d.resolve(c, "", retainAll(nil, replay), last)
				continue
			}
			if j, ok := d.covers(last); ok {
				all := retainAll(retainAll(nil, replay), d.chain[j:])
				if len(all) > d.maxReplay {
					releaseAll(all)
					d.resolve(c, codec.ReasonLimit, nil, d.head)
					continue
				}
				d.resolve(c, "", all, d.head)
				continue
			}
			again = append(again, c) // a hole between the read and the chain
		case x < from:
			again = append(again, c)
		case x < lo || !covered:
			// What followed the position is gone from the history.
			d.resolve(c, codec.ReasonTrimmed, nil, d.head)
		case x > last && res.More:
			again = append(again, c)
		case x > last && x <= d.head && !(d.baseOK && x >= d.base):
			again = append(again, c) // maybe in messages the cache has dropped
		default:
			// Beyond what the history held when read: not a position of
			// this history.
			d.resolve(c, codec.ReasonTrimmed, nil, d.head)
		}
	}
	releaseAll(run)
	d.trim()
	for _, c := range again {
		if c.rounds++; c.rounds >= maxRounds {
			d.resolve(c, codec.ReasonUnavailable, nil, d.head)
		} else {
			d.waiters = append(d.waiters, c)
		}
	}
	d.fetch()
}

// joinFront puts the messages of a history read in front of the chain
// where they connect to it: the read covers every position from its start
// (from, when continuous; otherwise its first message) to its last
// message, and the chain's lowest covered position falls in that range.
// Each message it keeps gets a reference of the chain's. mu held.
func (d *durable) joinFront(run []*Message, from uint64, continuous bool) {
	if d.capLen <= 0 || len(run) == 0 {
		return
	}
	lo, front := from, run
	if !continuous {
		lo, front = run[0].offset, run[1:]
	}
	cb, ok := d.base, d.baseOK
	if !ok && len(d.chain) > 0 {
		cb, ok = d.chain[0].offset, true
	}
	if !ok || cb < lo || cb > run[len(run)-1].offset {
		return
	}
	k := sort.Search(len(front), func(i int) bool { return front[i].offset > cb })
	joined := make([]*Message, 0, k+len(d.chain))
	joined = append(retainAll(joined, front[:k]), d.chain...)
	for _, m := range front[:k] {
		d.chainBytes += len(m.data)
		d.ts.hub.cacheMessages.Add(1)
		d.ts.hub.cacheBytes.Add(int64(len(m.data)))
	}
	d.chain, d.base, d.baseOK = joined, lo, true
}

// resolve sends a catch-up's outcome to its subscription's shard: reason
// "" with the replay (whose references pass to the queue), or why not.
// After it, the subscription gets live messages above pos. mu held.
func (d *durable) resolve(c *catchUp, reason string, replay []*Message, pos uint64) {
	rec := codec.Recovery{Topic: d.ts.name, Recovered: reason == "", Reason: reason}
	ctl := &control{kind: ctlResolve, x: c.x, rec: rec, replay: replay, pos: pos}
	if reason != "" && reason != codec.ReasonUnavailable && pos != 0 {
		// Not recovered, live after pos: where the client stands now.
		// (Unavailable is worth a retry from the client's own position.)
		ctl.live = codec.Position{Offset: pos, Epoch: d.epoch}
	}
	c.x.st.shard.enqueueControl(c.x.st, ctl)
}

// close ends the state when the period of interest ends: the cache is
// released and waiting catch-ups are answered.
func (d *durable) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	d.releaseChain()
	d.held = nil
	for _, c := range d.waiters {
		d.resolve(c, codec.ReasonUnavailable, nil, 0)
	}
	d.waiters = nil
	for _, x := range d.joiners {
		x.st.shard.enqueueControl(x.st, &control{kind: ctlResolve, x: x})
	}
	d.joiners = nil
}

// retainAll appends ms to dst, retaining each.
func retainAll(dst, ms []*Message) []*Message {
	for _, m := range ms {
		m.Retain()
		dst = append(dst, m)
	}
	return dst
}

// releaseAll releases every message of ms.
func releaseAll(ms []*Message) {
	for _, m := range ms {
		m.Release()
	}
}
