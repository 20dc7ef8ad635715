package topics

import "time"

// Subscriber is one local subscriber of a topic: in pushd, a client
// connection of any transport. topics knows nothing else about it.
type Subscriber interface {
	// Deliver queues m for writing to the subscriber, typically as
	// m.Bytes(format) for the subscriber's wire format. It is called only
	// on the goroutine of the Loop the subscription was made on, during a
	// drain, and it must not write to a socket or change subscriptions:
	// the Loop's Flush, called right after the drain's slice, does the
	// writing. m stays valid until that Flush reports it is done; to keep
	// it longer, call m.Retain and later m.Release.
	Deliver(m *Message)
}

// Loop is one event loop as topics sees it. netpoll implements it.
type Loop interface {
	// Execute runs fn on the loop's goroutine. Safe to call from any
	// goroutine. It returns an error if the loop has stopped, in which case
	// fn never runs. It must not block: topics calls it while holding a
	// topic's locks (see the package's lock order).
	Execute(fn func()) error
	// Later runs fn on the loop's goroutine after the loop has served the
	// sockets that are ready by then: a drain that used up its slice
	// hands the rest back with it. (Execute may run before them: an event
	// loop may run its task queue to the end before it polls again.) Loop
	// goroutine only. It returns an error if the loop has stopped.
	Later(fn func()) error
	// Flush writes whatever the subscribers queued during a drain, for
	// about budget at most, and reports whether all of it is written. It
	// must make progress on every call (write at least one subscriber's
	// pushes), so that calling it again finishes. topics calls it on the
	// loop's goroutine after each slice of a drain (at most
	// flushDeliveries deliveries), and again in the next slice while it
	// reports false; the delivered messages stay valid until it reports
	// true.
	Flush(budget time.Duration) (done bool)
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
