package broker

import (
	"errors"
	"time"
)

// Mailboxes is a point-to-point channel between pushd nodes, beside the
// broadcast of topics: a node opens a mailbox under a name that is unique
// in the cluster (an Engine.IO session ID), and any node can send a request
// to that name and get the owner's reply without knowing which node owns
// it. Engine.IO long-polling uses it so that no load balancer needs sticky
// sessions: a polling request that reaches a node other than its session's
// owner is forwarded to the owner and answered with the owner's reply.
//
// A Broker whose bus can carry requests implements it (natsbroker does:
// one NATS subscription per open mailbox). Every method is safe for
// concurrent use and never blocks for a network round trip, so an event
// loop may call it; results come back on goroutines of the broker, which
// hand them to an event loop with its Execute.
type Mailboxes interface {
	// OpenMailbox starts receiving the requests sent to name on this node.
	// name must be a valid mailbox name (ValidMailboxName) and should be
	// unique in the cluster; when two nodes open the same name, each
	// request reaches one of them. h is called for every request, on a
	// goroutine of the broker (never an event loop), in the order the bus
	// delivered them, never concurrently for one mailbox.
	OpenMailbox(name string, h MailHandler) (Mailbox, error)

	// Request sends req to the mailbox name, wherever it is open, and
	// arranges for done to be called exactly once, on a goroutine of the
	// broker: with the reply, or with ErrNoMailbox when no node has the
	// mailbox open, ErrTimeout when no reply came within timeout, or
	// ErrClosed when the broker closed first. A mailbox opened a moment
	// before on another node counts as open: a broker whose bus learns of
	// it asynchronously retries briefly before ErrNoMailbox. The broker
	// keeps req until done runs: the caller must not modify it. An error
	// returned by Request itself (a closed broker, a bad name, a message
	// over the bus's limit) means done will not be called.
	Request(name string, req []byte, timeout time.Duration, done func(reply []byte, err error)) error
}

// MailHandler handles one request to a mailbox: req is the request (the
// handler owns it), r the way to answer. It runs on a goroutine of the
// broker and must not block for long; it may keep r and answer later, from
// any goroutine, or never (the requester then times out).
type MailHandler func(req []byte, r Replier)

// Replier answers one request to a mailbox.
type Replier interface {
	// Reply sends the answer. It never blocks for a network round trip; a
	// nil error means only that the broker has it buffered. Call it at most
	// once, from any goroutine.
	Reply(data []byte) error
}

// Mailbox is one OpenMailbox call's mailbox.
type Mailbox interface {
	// Close stops receiving. Requests already in flight may still reach
	// the handler; requests sent afterwards get ErrNoMailbox (or reach
	// another node that opened the same name). Idempotent; any goroutine.
	Close() error
}

// Errors of Mailboxes.
var (
	// ErrNoMailbox means no node has the mailbox open.
	ErrNoMailbox = errors.New("broker: no such mailbox")
	// ErrTimeout means the request got no reply in time.
	ErrTimeout = errors.New("broker: request timed out")
	// ErrMailboxName means a name that ValidMailboxName refuses.
	ErrMailboxName = errors.New("broker: invalid mailbox name")
)

// MaxMailboxName bounds the length of a mailbox name.
const MaxMailboxName = 64

// ValidMailboxName reports whether name can name a mailbox: 1 to
// MaxMailboxName bytes of A-Z a-z 0-9 _ -, one token of a bus subject.
// Pure; any goroutine.
func ValidMailboxName(name string) bool {
	if len(name) == 0 || len(name) > MaxMailboxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
