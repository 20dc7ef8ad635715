// Package broker defines the seam between pushd's topic registry
// (package topics) and the message bus that carries messages between
// publishers and pushd nodes. A Broker subscribes to a topic when the node
// gets its first local subscriber of it and unsubscribes after the last one
// leaves, publishes, and, where the bus keeps a history, reads it.
//
// Topics that keep a history ("durable" topics, configured per broker) get
// offsets: the broker numbers each message with its position in the topic's
// history and names the history with an epoch, tells the Sink the
// predecessor of every message so the receiver can see a gap, and answers
// History reads. Every other topic stays at-most-once.
//
// The package holds only the interface and its value types. Implementations
// live in sub-packages (natsbroker for core NATS, jsbroker for JetStream
// history in front of it); they import this package,
// never package topics, so the registry's own tests can run against a real
// implementation without an import cycle.
package broker

import (
	"context"
	"errors"
	"time"
)

// Broker is the message bus as a topics.Hub sees it. Every method is safe
// for concurrent use.
type Broker interface {
	// Subscribe starts this node's interest in topic, a valid topic name
	// (codec.ValidTopic). From then until Unsubscribe, every message
	// published to the topic is handed to sink.Deliver. The Hub calls it
	// once per period of local interest, with a new Sink each time.
	Subscribe(topic string, sink Sink) (Subscription, error)

	// Publish hands data for topic to the bus without waiting for it to be
	// confirmed: a nil error means only that the broker has it buffered. It
	// never blocks for a network round trip, so an event loop may call it.
	Publish(topic string, data []byte) error

	// PublishWait publishes msgs in order and returns once the bus has
	// confirmed every one of them, or when ctx ends. On error, a prefix of
	// msgs may have been published. acks[i] belongs to msgs[i]; for a topic
	// without history its Offset is 0 and its Epoch "".
	PublishWait(ctx context.Context, msgs []Outgoing) (acks []Ack, err error)

	// History reads stored messages of one topic. A broker or topic that
	// keeps none answers ErrNoHistory.
	History(ctx context.Context, req HistoryRequest) (HistoryResult, error)

	// Retention reports whether topic keeps a history, and its limits.
	// The answer for a topic never changes during the broker's life.
	Retention(topic string) (Retention, bool)

	// Connected reports whether the broker can currently reach the bus.
	Connected() bool

	// Stats returns the broker's counters.
	Stats() Stats

	// Close stops the broker's goroutines and drops its subscriptions.
	// Messages still in flight are discarded. Idempotent.
	Close()
}

// Sink receives the messages of one Subscribe call. The topics.Hub
// implements it.
type Sink interface {
	// Deliver hands over one message of the subscription's topic. The
	// broker calls it on a goroutine of its own, never on an event loop.
	// Calls for one subscription never overlap and come in the order the
	// bus delivered the messages; calls for different subscriptions may
	// run concurrently. Deliver must not block for long. It may still be
	// called briefly after Unsubscribe returned, for messages already in
	// flight; the Sink drops those.
	Deliver(m Message)

	// Head reports, for a durable topic, the offset of the newest message
	// the topic's history holds (0: none) in epoch. The broker calls it
	// once soon after Subscribe, so the Sink knows where the live stream
	// starts, and again whenever it finds the history ahead of the
	// messages it has delivered (after a reconnect, a dropped message, or
	// a periodic check), so the Sink can read what it missed. Same
	// goroutine rules as Deliver: calls never overlap Deliver calls of the
	// same subscription. Never called for a topic without history.
	Head(offset uint64, epoch string)
}

// Subscription is one Subscribe call's interest.
type Subscription interface {
	// Unsubscribe ends the interest. Messages already in flight may still
	// reach the Sink. It returns an error only for an unexpected failure;
	// unsubscribing while the bus is unreachable or closing is not one.
	Unsubscribe() error
}

// Message is one message as the bus delivered it.
type Message struct {
	// Data is the payload. The receiver owns it: the broker does not touch
	// it after Deliver.
	Data []byte
	// Offset is the message's position in the topic's history, strictly
	// increasing along it; 0 on a topic without history.
	Offset uint64
	// Epoch names the history Offset belongs to; it changes when the
	// history is lost or recreated. "" on a topic without history.
	Epoch string
	// Prev is the offset of the topic's previous message in the history,
	// as the bus knew it when it stored this one: 0 when it held none (the
	// first message, or every older one had expired). A receiver that
	// delivered offset N and next gets Prev > N has missed messages. 0 on
	// a topic without history.
	Prev uint64
	// Time is when the bus stored the message; zero without history.
	Time time.Time
}

// Outgoing is one message to publish.
type Outgoing struct {
	Topic string
	Data  []byte
	// ID, when set, makes a retried publish idempotent on a bus that
	// deduplicates (a message with the same Topic and ID within the bus's
	// window is stored once; the same ID on another topic is another
	// message). Ignored where the bus keeps no history.
	ID string
}

// Ack is the bus's confirmation of one published message.
type Ack struct {
	Offset    uint64 // position in the topic's history; 0 without history
	Epoch     string // "" without history
	Duplicate bool   // the bus had already stored a message with the same ID
}

// HistoryRequest asks for stored messages of Topic after a position.
type HistoryRequest struct {
	Topic string
	// After is the offset the reader has already seen; messages with a
	// larger offset are returned. 0 means from the oldest stored message.
	After uint64
	// Limit caps the messages returned; 0 means the broker's default.
	Limit int
}

// HistoryResult is an answer to a HistoryRequest.
type HistoryResult struct {
	// Messages are the stored messages after the request's After, in
	// offset order, each following the one before it directly in the
	// topic's history (Messages[i].Prev == Messages[i-1].Offset).
	Messages []Message
	// Epoch names the history the offsets belong to.
	Epoch string
	// Continuous reports that nothing of the topic stored after After has
	// been removed, so Messages[0] is the first message after After: the
	// history still holds a message of the topic at or before After (its
	// oldest messages go first), or After is 0. Messages[0].Prev is then
	// After. When false, messages after After may have been removed
	// (expired or pushed out by newer ones) before the first one returned,
	// or After is beyond the end of the history.
	Continuous bool
	// More reports that messages after the last returned one exist and
	// Limit cut the answer short.
	More bool
}

// Retention is how much history a durable topic keeps.
type Retention struct {
	// Size is the number of messages kept per topic (the newest ones).
	Size int64
	// TTL is how long a message is kept; 0 means no age limit.
	TTL time.Duration
}

// Stats are a broker's counters, counted since it was created.
type Stats struct {
	// Subscriptions is the number of subscriptions held (gauge).
	Subscriptions int64
	// Received counts messages taken from the bus, Stale among them
	// included.
	Received int64
	// Stale counts messages that arrived for a subscription that had
	// already ended; they are dropped. Normal in small numbers when
	// interest ends while messages are in flight.
	Stale int64
	// Dropped counts messages the broker lost because the Hub did not
	// take them fast enough (for core NATS: the subscription's pending
	// limit was reached, a "slow consumer").
	Dropped int64
	// Reconnects counts reconnects of the connection to the bus.
	Reconnects int64
	// Requests counts requests made to the bus other than publishes:
	// history reads, catch-ups, gap repairs, position checks, stream
	// lookups. A figure bounded by design, not by traffic: a thousand
	// clients resuming one topic must not make a thousand requests.
	Requests int64
}

// Errors a Broker returns.
var (
	// ErrNoHistory means the topic keeps no history.
	ErrNoHistory = errors.New("broker: topic keeps no history")
	// ErrClosed means the broker was closed.
	ErrClosed = errors.New("broker: closed")
	// ErrTooLarge means a message is over the bus's payload limit.
	ErrTooLarge = errors.New("broker: message over the payload limit")
)
