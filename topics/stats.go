package topics

// Stats is a snapshot of a Hub's counters. Gauges are current values;
// counters count since New.
type Stats struct {
	// Topics is the number of topics with at least one local subscriber
	// (gauge).
	Topics int64
	// UpstreamSubs is the number of NATS subscriptions the Hub holds
	// (gauge), counted at the nats.go calls. It equals Topics by design
	// (one subscription per topic with local interest, no wildcard); a
	// difference means a bug.
	UpstreamSubs int64
	// Subscriptions is the number of local Subscriptions over all shards
	// (gauge).
	Subscriptions int64
	// Shards is the number of shards created by NewShard (gauge).
	Shards int64

	// MessagesIn counts messages the workers took from NATS.
	MessagesIn int64
	// FramesEncoded counts messages encoded into a Frame: those that had
	// local subscribers when their worker looked.
	FramesEncoded int64
	// Handoffs counts Loop.Execute calls, one per shard per burst of
	// messages. Deliveries/Handoffs is the batching factor.
	Handoffs int64
	// Deliveries counts Subscriber.Deliver calls.
	Deliveries int64
	// FramesLive is the number of frames not yet released by every holder
	// (gauge). It returns to zero when the node is idle; steady growth means
	// a leak or a stuck loop.
	FramesLive int64

	// DroppedNoTopic counts messages that arrived after the node's interest
	// in their topic had ended (or from a subscription it had since
	// replaced). Normal in small numbers during unsubscribe races.
	DroppedNoTopic int64
	// DroppedSlowNATS counts messages nats.go dropped because a worker's
	// channel (Config.QueueLen) was full: the sum of Subscription.Dropped
	// over live upstream subscriptions plus those already unsubscribed.
	// nats.go also reports each such episode once to the connection's
	// ErrorHandler as nats.ErrSlowConsumer.
	DroppedSlowNATS int64
	// DroppedShardQueue counts (frame, shard) hand-offs refused because the
	// shard's queue held Config.ShardQueueLen frames: its loop is not keeping
	// up.
	DroppedShardQueue int64
	// DroppedLoopStopped counts (frame, shard) hand-offs released undelivered
	// because the shard's loop had stopped.
	DroppedLoopStopped int64

	// Reconnects is the NATS connection's reconnect count
	// (nats.Conn.Stats().Reconnects). nats.go resubscribes every upstream
	// subscription after a reconnect by itself; messages published while
	// the node was disconnected are lost (core NATS is at-most-once). seq is
	// assigned when a message reaches this node, so such losses (and
	// DroppedSlowNATS) leave no gap in seq; only DroppedShardQueue does.
	Reconnects int64
}

// Stats returns a snapshot of the Hub's counters. It takes each partition's
// read lock in turn and asks nats.go for every live upstream subscription's
// drop count, so its cost grows with Topics: call it at scrape frequency,
// not per message. Safe for concurrent use.
func (h *Hub) Stats() Stats {
	st := Stats{
		UpstreamSubs:  h.upstreamSubs.Load(),
		Subscriptions: h.subscriptions.Load(),
		FramesLive:    h.framesLive.Load(),
		Reconnects:    int64(h.nc.Stats().Reconnects),
	}
	for _, p := range h.parts {
		st.MessagesIn += p.messagesIn.Load()
		st.FramesEncoded += p.framesOut.Load()
		st.DroppedNoTopic += p.noTopic.Load()
		p.mu.RLock()
		st.Topics += int64(len(p.topics))
		st.DroppedSlowNATS += p.retiredDrops
		for _, ts := range p.topics {
			if d, err := ts.nsub.Dropped(); err == nil {
				st.DroppedSlowNATS += int64(d)
			}
		}
		p.mu.RUnlock()
	}
	h.shardsMu.Lock()
	st.Shards = int64(len(h.shards))
	for _, s := range h.shards {
		st.Handoffs += s.handoffs.Load()
		st.Deliveries += s.deliveries.Load()
		st.DroppedShardQueue += s.droppedFull.Load()
		st.DroppedLoopStopped += s.droppedStop.Load()
	}
	h.shardsMu.Unlock()
	return st
}
