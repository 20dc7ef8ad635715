package natsbroker

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

// MailboxSubjectRoot starts the subject of every mailbox:
// <MailboxSubjectRoot>.<Prefix>.<name>. It lies outside the topics'
// subjects (<Prefix>.<topic>), so no client can subscribe or publish to a
// mailbox through a topic; New refuses a Prefix that starts with it.
const MailboxSubjectRoot = "_PUSHD_MBOX"

// mailQueueLen is the capacity of each mailbox worker's channel: requests
// are rare next to topic messages (one per polling request).
const mailQueueLen = 8192

// closeGrace is how long a closed mailbox keeps its NATS subscription,
// answering "no responders" itself: nats.go unsubscribes asynchronously,
// and a request the server routed to the subscription before it learned
// of the unsubscribe would otherwise be dropped by the client library
// without a word, and its requester would wait for its whole timeout.
const closeGrace = time.Second

// sweepEvery is how often pending requests are checked for their timeout
// and their retry: the precision of Request's timeout.
const sweepEvery = 50 * time.Millisecond

// noResponderGrace is how long after it was first sent a request that
// found no mailbox is sent again (every sweep) before it fails with
// ErrNoMailbox. nats.go sends a SUB asynchronously, so a mailbox opened a
// moment ago on another connection may not be known to the NATS server
// yet; a client that got its session ID from one node and asks another at
// once must still find it.
const noResponderGrace = 300 * time.Millisecond

var _ broker.Mailboxes = (*Broker)(nil)

// mailboxes implements broker.Mailboxes for a Broker. A mailbox is one
// ChanSubscribe on its literal subject into a worker's channel (no
// goroutine per mailbox); a request is one publish with a reply subject
// under this node's inbox, answered through one wildcard subscription per
// node. Its goroutines start with the first mailbox or request, so a node
// that uses neither pays for none.
type mailboxes struct {
	// Immutable after newMailboxes.
	b       *Broker
	subject string // MailboxSubjectRoot + "." + Prefix + "."
	parts   []*mailPart

	startWorkers sync.Once
	wg           sync.WaitGroup
	stop         chan struct{} // closed by close: stops the workers and the sweeper

	startReplies sync.Once
	repliesErr   error
	inbox        string             // this node's reply subjects: inbox + id
	rsub         *nats.Subscription // inbox + "*"

	// mu guards pending and next.
	mu      sync.Mutex
	pending map[uint64]*pendingRequest
	next    uint64
	closed  bool

	late atomic.Int64 // replies that came after their request ended
}

// mailPart is one mailbox worker, its channel and the mailboxes that feed
// it.
type mailPart struct {
	ch chan *nats.Msg // filled by nats.go's reader, read by the worker

	// mu guards handlers and closing; held for writing across the NATS
	// subscribe so the worker never sees a request of a mailbox before its
	// handler.
	mu       sync.RWMutex
	handlers map[*nats.Subscription]broker.MailHandler
	closing  []closedSub // closed mailboxes whose subscription ends after closeGrace
}

// closedSub is the subscription of a closed mailbox, kept until after.
type closedSub struct {
	nsub  *nats.Subscription
	after time.Time
}

type pendingRequest struct {
	done     func([]byte, error)
	deadline time.Time

	// For a retry after "no responders".
	subject string
	req     []byte
	sent    time.Time // first sent
	retry   bool      // send again at the next sweep
}

func newMailboxes(b *Broker, prefix string, workers int) *mailboxes {
	m := &mailboxes{
		b:       b,
		subject: MailboxSubjectRoot + "." + prefix + ".",
		parts:   make([]*mailPart, workers),
		stop:    make(chan struct{}),
		pending: make(map[uint64]*pendingRequest),
	}
	for i := range m.parts {
		m.parts[i] = &mailPart{ch: make(chan *nats.Msg, mailQueueLen), handlers: make(map[*nats.Subscription]broker.MailHandler)}
	}
	return m
}

// OpenMailbox implements broker.Mailboxes.
func (b *Broker) OpenMailbox(name string, h broker.MailHandler) (broker.Mailbox, error) {
	if b.closed.Load() {
		return nil, broker.ErrClosed
	}
	if !broker.ValidMailboxName(name) {
		return nil, broker.ErrMailboxName
	}
	m := b.mail
	m.startWorkers.Do(func() {
		m.wg.Add(len(m.parts))
		for _, p := range m.parts {
			go m.work(p)
		}
	})
	p := m.parts[hashTopic(name)%uint32(len(m.parts))]
	p.mu.Lock()
	defer p.mu.Unlock()
	nsub, err := b.nc.ChanSubscribe(m.subject+name, p.ch)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: open mailbox: %w", err)
	}
	p.handlers[nsub] = h
	return &mailbox{p: p, nsub: nsub}, nil
}

// mailbox is one open mailbox.
type mailbox struct {
	p    *mailPart
	nsub *nats.Subscription
	once sync.Once
}

// Close implements broker.Mailbox. The handler goes at once; the NATS
// subscription stays for closeGrace, answering "no responders" for the
// requests still routed to it (see closeGrace), and then goes too.
func (x *mailbox) Close() (err error) {
	x.once.Do(func() {
		x.p.mu.Lock()
		defer x.p.mu.Unlock()
		if _, live := x.p.handlers[x.nsub]; !live {
			return // the broker closed it
		}
		delete(x.p.handlers, x.nsub)
		x.p.closing = append(x.p.closing, closedSub{nsub: x.nsub, after: time.Now().Add(closeGrace)})
	})
	return err
}

// unsubscribe ends a closed mailbox's subscription.
func unsubscribe(nsub *nats.Subscription) {
	switch uerr := nsub.Unsubscribe(); {
	case uerr == nil, errors.Is(uerr, nats.ErrConnectionClosed),
		errors.Is(uerr, nats.ErrConnectionDraining), errors.Is(uerr, nats.ErrBadSubscription):
	default:
		// The connection is in trouble; the subscription ends with it.
	}
}

// expire ends the subscriptions of the part's closed mailboxes whose grace
// has passed.
func (p *mailPart) expire(now time.Time) {
	p.mu.Lock()
	i := 0
	for ; i < len(p.closing) && now.After(p.closing[i].after); i++ {
		unsubscribe(p.closing[i].nsub)
		p.closing[i] = closedSub{}
	}
	p.closing = p.closing[i:]
	if len(p.closing) == 0 {
		p.closing = nil
	}
	p.mu.Unlock()
}

// work hands the requests of one worker's mailboxes to their handlers.
func (m *mailboxes) work(p *mailPart) {
	defer m.wg.Done()
	t := time.NewTicker(closeGrace / 4)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			p.expire(now)
		case msg := <-p.ch:
			p.mu.RLock()
			h := p.handlers[msg.Sub]
			p.mu.RUnlock()
			switch {
			case h != nil:
				h(msg.Data, &replier{nc: m.b.nc, to: msg.Reply})
			case msg.Reply != "":
				// The mailbox closed after NATS routed the request to
				// it (the unsubscribe is asynchronous): answer as NATS
				// answers a request nobody subscribes to, so the
				// requester learns it at once instead of timing out.
				m.noResponder(msg.Reply)
			}
		case <-m.stop:
			return
		}
	}
}

// noResponder answers a request with NATS's "no responders" status (an
// empty message with the header Status: 503), which Request's reply
// handler turns into ErrNoMailbox after its grace period.
func (m *mailboxes) noResponder(to string) {
	msg := nats.NewMsg(to)
	msg.Header.Set("Status", "503")
	_ = m.b.nc.PublishMsg(msg)
}

// replier answers one request with a publish to its reply subject.
type replier struct {
	nc *nats.Conn
	to string
}

// errNoReplySubject is the answer to a message sent to a mailbox without a
// reply subject (a plain publish, not a Request).
var errNoReplySubject = errors.New("natsbroker: the request has no reply subject")

// Reply implements broker.Replier.
func (r *replier) Reply(data []byte) error {
	if r.to == "" {
		return errNoReplySubject
	}
	if err := r.nc.Publish(r.to, data); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return fmt.Errorf("natsbroker: reply: %w", broker.ErrTooLarge)
		}
		return fmt.Errorf("natsbroker: reply: %w", err)
	}
	return nil
}

// Request implements broker.Mailboxes. A bus without the mailbox answers
// the request at once with NATS's "no responders" status (nats.go asks the
// server for it), which becomes ErrNoMailbox.
func (b *Broker) Request(name string, req []byte, timeout time.Duration, done func([]byte, error)) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !broker.ValidMailboxName(name) {
		return broker.ErrMailboxName
	}
	m := b.mail
	if err := m.replies(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return broker.ErrClosed
	}
	m.next++
	id := m.next
	now := time.Now()
	m.pending[id] = &pendingRequest{done: done, deadline: now.Add(timeout), subject: m.subject + name, req: req, sent: now}
	m.mu.Unlock()
	if err := b.nc.PublishRequest(m.subject+name, m.inbox+strconv.FormatUint(id, 36), req); err != nil {
		m.mu.Lock()
		_, mine := m.pending[id]
		delete(m.pending, id)
		m.mu.Unlock()
		if !mine {
			return nil // the sweeper or close has called done already
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return fmt.Errorf("natsbroker: request: %w", broker.ErrTooLarge)
		}
		return fmt.Errorf("natsbroker: request: %w", err)
	}
	return nil
}

// replies starts, once, the reply subscription and the timeout sweeper.
func (m *mailboxes) replies() error {
	m.startReplies.Do(func() {
		m.inbox = m.b.nc.NewInbox() + "."
		// One nats.go subscription with a handler: one goroutine for the
		// node's replies, whatever the number of requests.
		m.rsub, m.repliesErr = m.b.nc.Subscribe(m.inbox+"*", m.reply)
		if m.repliesErr != nil {
			m.repliesErr = fmt.Errorf("natsbroker: reply subscription: %w", m.repliesErr)
			return
		}
		m.wg.Add(1)
		go m.sweep()
	})
	return m.repliesErr
}

// reply runs on nats.go's goroutine of the reply subscription.
func (m *mailboxes) reply(msg *nats.Msg) {
	id, err := strconv.ParseUint(msg.Subject[len(m.inbox):], 36, 64)
	if err != nil {
		return
	}
	noResponders := len(msg.Data) == 0 && msg.Header.Get("Status") == "503"
	m.mu.Lock()
	p := m.pending[id]
	if p != nil && noResponders && time.Since(p.sent) < noResponderGrace {
		p.retry = true // the sweeper sends it again
		m.mu.Unlock()
		return
	}
	delete(m.pending, id)
	m.mu.Unlock()
	switch {
	case p == nil:
		m.late.Add(1)
	case noResponders:
		p.done(nil, broker.ErrNoMailbox)
	default:
		p.done(msg.Data, nil)
	}
}

// sweep fails the requests whose timeout has passed.
func (m *mailboxes) sweep() {
	defer m.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	var due []*pendingRequest
	var again []uint64
	for {
		select {
		case now := <-t.C:
			m.mu.Lock()
			for id, p := range m.pending {
				switch {
				case now.After(p.deadline):
					due = append(due, p)
					delete(m.pending, id)
				case p.retry:
					p.retry = false
					again = append(again, id)
				}
			}
			m.mu.Unlock()
			for i, p := range due {
				p.done(nil, broker.ErrTimeout)
				due[i] = nil
			}
			due = due[:0]
			for _, id := range again {
				m.resend(id)
			}
			again = again[:0]
		case <-m.stop:
			return
		}
	}
}

// resend publishes a pending request again after "no responders".
func (m *mailboxes) resend(id uint64) {
	m.mu.Lock()
	p := m.pending[id]
	m.mu.Unlock()
	if p == nil {
		return
	}
	if err := m.b.nc.PublishRequest(p.subject, m.inbox+strconv.FormatUint(id, 36), p.req); err != nil {
		m.mu.Lock()
		_, mine := m.pending[id]
		delete(m.pending, id)
		m.mu.Unlock()
		if mine {
			p.done(nil, fmt.Errorf("natsbroker: request: %w", err))
		}
	}
}

// close ends every mailbox and fails every pending request with
// ErrClosed, then stops the goroutines.
func (m *mailboxes) close() {
	for _, p := range m.parts {
		p.mu.Lock()
		for nsub := range p.handlers {
			_ = nsub.Unsubscribe()
			delete(p.handlers, nsub)
		}
		for _, c := range p.closing {
			_ = c.nsub.Unsubscribe()
		}
		p.closing = nil
		p.mu.Unlock()
	}
	if m.rsub != nil {
		_ = m.rsub.Unsubscribe()
	}
	m.mu.Lock()
	m.closed = true
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, p := range pending {
		p.done(nil, broker.ErrClosed)
	}
	close(m.stop)
	m.wg.Wait()
}

// MailboxStats returns the number of open mailboxes, of requests waiting
// for a reply, and of replies that arrived after their request had timed
// out. Any goroutine.
func (b *Broker) MailboxStats() (open, pending int, late int64) {
	m := b.mail
	for _, p := range m.parts {
		p.mu.RLock()
		open += len(p.handlers)
		p.mu.RUnlock()
	}
	m.mu.Lock()
	pending = len(m.pending)
	m.mu.Unlock()
	return open, pending, m.late.Load()
}
