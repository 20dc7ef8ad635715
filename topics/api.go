package topics

// Subscriber is one local subscriber of a topic: in pushd, a WebSocket
// connection. topics knows nothing else about it.
type Subscriber interface {
	// Deliver queues f for writing to the subscriber. It is called only on
	// the goroutine of the Loop the subscription was made on, during a drain,
	// and it must not write to a socket or change subscriptions: the Loop's
	// Flush, called right after the drain, does the writing. f stays valid
	// until that Flush returns; to keep it longer, call f.Retain and later
	// f.Release.
	Deliver(f *Frame)
}

// Loop is one event loop as topics sees it. netpoll implements it.
type Loop interface {
	// Execute runs fn on the loop's goroutine. Safe to call from any
	// goroutine. It returns an error if the loop has stopped, in which case
	// fn never runs.
	Execute(fn func()) error
	// Flush writes whatever the subscribers queued during a drain. topics
	// calls it on the loop's goroutine at the end of each drain that
	// delivered at least one frame, and also in the middle of a drain that
	// delivers a long backlog (every flushDeliveries deliveries), so what a
	// loop holds between flushes stays bounded.
	Flush()
}
