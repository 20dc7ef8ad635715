package topics

import "github.com/pushd/pushd/topics/metric"

// LatencyBounds are the upper bounds, in seconds, of the delivery latency
// histogram: from a message's arrival at this node to the end of the
// event-loop batch that wrote it to its local subscribers' sockets.
var LatencyBounds = metric.ExponentialBounds(0.0001, 2, 16) // 100 µs … 3.3 s

// Stats is a snapshot of a Hub's counters. Gauges are current values;
// counters count since New.
type Stats struct {
	// Topics is the number of topics with at least one local subscriber
	// (gauge).
	Topics int64
	// UpstreamSubs is the number of broker subscriptions the Hub holds
	// (gauge), counted at the broker calls. It equals Topics by design
	// (one subscription per topic with local interest, no wildcard); a
	// difference means a bug.
	UpstreamSubs int64
	// Subscriptions is the number of local Subscriptions over all shards
	// (gauge).
	Subscriptions int64
	// Shards is the number of shards created by NewShard (gauge).
	Shards int64

	// MessagesIn counts messages the broker took from the bus.
	MessagesIn int64
	// Dispatched counts messages handed to at least one shard: those that
	// had local subscribers when they arrived. Each is encoded at most
	// once per wire format that a subscriber asked for.
	Dispatched int64
	// Handoffs counts Loop.Execute calls, one per shard per burst of
	// messages. Deliveries/Handoffs is the batching factor.
	Handoffs int64
	// Deliveries counts Subscriber.Deliver calls.
	Deliveries int64
	// MessagesLive is the number of messages not yet released by every
	// holder (gauge). It returns to zero when the node is idle; steady
	// growth means a leak or a stuck loop.
	MessagesLive int64

	// DroppedNoTopic counts messages that arrived after the node's interest
	// in their topic had ended (or for a period of interest it had since
	// replaced). Normal in small numbers during unsubscribe races.
	DroppedNoTopic int64
	// DroppedBroker counts messages the broker dropped because the Hub did
	// not take them fast enough (for core NATS: a fan-in queue was full).
	DroppedBroker int64
	// DroppedShardQueue counts (message, shard) hand-offs refused because
	// the shard's queue held Config.ShardQueueLen messages: its loop is not
	// keeping up.
	DroppedShardQueue int64
	// DroppedLoopStopped counts (message, shard) hand-offs released
	// undelivered because the shard's loop had stopped.
	DroppedLoopStopped int64

	// Reconnects counts reconnects of the broker's connection to the bus.
	// Core NATS delivers at most once: messages published while the node
	// was disconnected are lost, and seq is assigned when a message reaches
	// this node, so such losses (and DroppedBroker) leave no gap in seq;
	// only DroppedShardQueue does.
	Reconnects int64
	// BrokerRequests counts requests made to the bus other than
	// publishes (broker.Stats.Requests): history reads, catch-ups,
	// repairs, position checks.
	BrokerRequests int64
	// Connected reports whether the broker can reach the bus.
	Connected bool

	// Latency is the delivery latency histogram summed over shards
	// (seconds; see LatencyBounds).
	Latency metric.Snapshot

	// Durable topics.

	// DurableTopics is the number of durable topics with local interest
	// (gauge).
	DurableTopics int64
	// CatchUps counts resumes of a durable topic from a position;
	// CatchUpsCached those served from the node's cache without a
	// request, and CatchUpReads the history reads made for the others (one
	// read serves every resume of the topic waiting for it).
	CatchUps, CatchUpsCached, CatchUpReads int64
	// Repairs counts history reads that filled a gap in the live stream
	// (a dropped or never-delivered message, found by its successor's Prev
	// or by the broker's check).
	Repairs int64
	// Losses counts live-stream gaps the history could no longer fill, and
	// epoch changes: each told the topic's subscribers (LossNotifier).
	Losses int64
	// Duplicates counts live messages dropped because the node had already
	// dispatched them (after a repair read them first).
	Duplicates int64
	// HeldDropped counts messages dropped from a full hold: a repair's
	// (read back from the history) or a pending Resume's (Config.HoldLen).
	HeldDropped int64
	// CacheMessages and CacheBytes are the messages and payload bytes in
	// the per-topic caches (gauges). Cached messages also count in
	// MessagesLive.
	CacheMessages, CacheBytes int64
}

// Stats returns a snapshot of the Hub's counters. It takes each partition's
// read lock in turn and asks the broker for its own, so its cost grows with
// Topics: call it at scrape frequency, not per message. Safe for concurrent
// use.
func (h *Hub) Stats() Stats {
	bs := h.broker.Stats()
	st := Stats{
		UpstreamSubs:   h.upstreamSubs.Load(),
		Subscriptions:  h.subscriptions.Load(),
		MessagesLive:   h.messagesLive.Load(),
		MessagesIn:     bs.Received,
		Dispatched:     h.dispatched.Load(),
		DroppedNoTopic: h.noTopic.Load() + bs.Stale,
		DroppedBroker:  bs.Dropped,
		Reconnects:     bs.Reconnects,
		BrokerRequests: bs.Requests,
		Connected:      h.broker.Connected(),

		DurableTopics:  h.durableTopics.Load(),
		CatchUps:       h.catchUps.Load(),
		CatchUpsCached: h.catchUpsCached.Load(),
		CatchUpReads:   h.catchUpReads.Load(),
		Repairs:        h.repairs.Load(),
		Losses:         h.losses.Load(),
		Duplicates:     h.duplicates.Load(),
		HeldDropped:    h.heldDropped.Load(),
		CacheMessages:  h.cacheMessages.Load(),
		CacheBytes:     h.cacheBytes.Load(),
	}
	for i := range h.parts {
		p := &h.parts[i]
		p.mu.RLock()
		st.Topics += int64(len(p.topics))
		p.mu.RUnlock()
	}
	h.shardsMu.Lock()
	st.Shards = int64(len(h.shards))
	hs := make([]*metric.Histogram, len(h.shards))
	for i, s := range h.shards {
		st.Handoffs += s.handoffs.Load()
		st.Deliveries += s.deliveries.Load()
		st.DroppedShardQueue += s.droppedFull.Load()
		st.DroppedLoopStopped += s.droppedStop.Load()
		hs[i] = s.latency
	}
	h.shardsMu.Unlock()
	st.Latency = metric.Merge(LatencyBounds, hs...)
	return st
}
