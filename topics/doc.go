// Package topics is pushd's topic registry: which local subscribers want which
// topic, the broker subscriptions that bring those topics to this node, and
// the fan-out that hands each message to the event loops that have
// subscribers.
//
// It knows nothing of sockets, transports or wire formats. A Subscriber is
// anything with a Deliver method; a Loop is anything that can run a function
// on its own goroutine; a Format is an encoder a transport registers; the
// message bus is a broker.Broker (package topics/broker).
//
// # Durable topics
//
// A topic the broker keeps a history of (broker.Broker.Retention) has a
// durable state per period of interest (durable.go): messages are
// dispatched only as an unbroken chain of the history (a gap is repaired
// from the history first, or reported through LossNotifier), the chain's
// tail is a per-node cache, and Shard.Resume replays what a subscriber
// missed, from the cache or from one history read shared by every
// subscriber waiting for the same topic, before its live messages:
//
//	broker worker ── Deliver(m, Prev) ──► durable.mu: Prev == head? dispatch + cache
//	                                          │ no: hold; repair goroutine reads (head, …] → dispatch, then the held
//	Shard.Resume (loop) ── catchUp ──────────► durable.mu: cache covers the position? outcome + replay now
//	                                          │ no: wait for the shared history read (fetch goroutine)
//	                                          ▼ outcome queued on the shard under durable.mu, ordered with dispatches
//	loop: drain ── control item → done(outcomes) → replay → held live → live
//
// # Data flow
//
//	broker goroutine (natsbroker: a fan-in worker; all messages of one topic on one goroutine)
//	   │ broker.Sink.Deliver — the topic's topicState is the Sink
//	   ▼
//	topicState.Deliver: seq++ ; wrap the payload once in a pooled Message
//	   │ for each shard with ≥1 subscriber: Retain, append to the shard's queue
//	   ▼ the first append into an idle queue calls Loop.Execute(drain) — once per burst
//	event loop goroutine: drain
//	   │ for each queued message, Deliver to every local subscriber of its topic;
//	   │ a subscriber asks m.Bytes(format): built lazily once per format, shared
//	   │ Loop.Flush (every flushDeliveries, and at the end), then Release every message
//	   ▼
//	subscribers (pushd: connections) write the encoded bytes
//
// # Ownership
//
//	what                                   owner / guard
//	Hub config, broker                     immutable after New
//	partition.topics, topicState.bsub,     partition.mu (write: first/last local
//	topicState.shards (copy-on-write)        subscriber of a topic; read: Deliver)
//	topicState.seq                         the broker goroutine delivering the topic (durable: durable.mu)
//	durable (chain, head, held, waiters)   durable.mu
//	Subscription.pos and .wait, resume     the Shard's loop goroutine
//	batches, Shard.after
//	Shard.topics, shardTopic.subs,         the Shard's loop goroutine
//	Subscription.idx, Shard.spare
//	Shard.queue, scheduled, stopped        Shard.mu (Deliver appends, the drain swaps)
//	Message reference count                atomic; any goroutine
//	Message encodings                      built under Message.mu, published by an atomic bit
//
// # Lock order
//
// durable.mu is taken before partition.mu (read, for the shard list of a
// dispatch) and Shard.mu (to queue); so nothing holding partition.mu may
// take durable.mu: a period of interest's durable state is closed after the
// partition lock is released. partition.mu is taken before the broker's
// own locks (Subscribe and
// Unsubscribe call the broker while holding it, so the first-subscriber and
// last-subscriber decisions and the upstream subscription change are one
// atomic step); a broker never holds its locks while calling Sink.Deliver.
// Shard.mu and Message.mu are leaves: nothing else is locked while they are
// held. Loop.Execute is called with partition.mu held for reading (and
// durable.mu for a durable topic), because a dispatch queues its message on
// every shard before a new shard can register: it must not block, and the
// loop goroutine never waits for those locks while its queue is full.
// Hub.shardsMu is a leaf too. The fan-out path takes one partition read lock per message and
// one Shard.mu per (message, shard); it takes no lock per subscriber.
package topics
