package topics

// Subscriber is one local subscriber of a topic: in pushd, a client
// connection of any transport. topics knows nothing else about it.
type Subscriber interface {
	// Deliver queues m for writing to the subscriber, typically as
	// m.Bytes(format) for the subscriber's wire format. It is called only
	// on the goroutine of the Loop the subscription was made on, during a
	// drain, and it must not write to a socket or change subscriptions:
	// the Loop's Flush, called right after the drain, does the writing. m
	// stays valid until that Flush returns; to keep it longer, call
	// m.Retain and later m.Release.
	Deliver(m *Message)
}

// Loop is one event loop as topics sees it. netpoll implements it.
type Loop interface {
	// Execute runs fn on the loop's goroutine. Safe to call from any
	// goroutine. It returns an error if the loop has stopped, in which case
	// fn never runs.
	Execute(fn func()) error
	// Flush writes whatever the subscribers queued during a drain. topics
	// calls it on the loop's goroutine at the end of each drain that
	// delivered at least one message, and also in the middle of a drain that
	// delivers a long backlog (every flushDeliveries deliveries), so what a
	// loop holds between flushes stays bounded.
	Flush()
}

// LossNotifier is implemented by Subscribers that want to know when the
// live stream of a durable topic lost messages on this node that the
// history no longer holds (reason codec.ReasonTrimmed), or when the
// topic's history was replaced (codec.ReasonEpochChanged). Such a
// subscriber cannot get those messages any more without being told: pushd
// closes the connection with a reconnect code, and the client's resume then
// says recovered:false. A Subscriber that does not implement it just keeps
// receiving the live stream.
type LossNotifier interface {
	// HistoryLost is called on the loop goroutine of x's Shard, after
	// every message dispatched before the loss and before any after it.
	// It may unsubscribe x and the subscriber's other subscriptions.
	HistoryLost(x *Subscription, reason string)
}
