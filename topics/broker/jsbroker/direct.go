package jsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/topics/broker"
)

// Reading history uses JetStream's direct get (nats-server
// jetstream_api.go JSApiMsgGetRequest), which nats.go v1.55 wraps only for
// one message: a batch ("batch" with "next_by_subj") answers several
// messages then an end-of-batch status, and "multi_last" the newest message
// of each listed subject, all on one reply subject. Direct gets bypass the
// JetStream API queue and may be served by any caught-up replica.

// DefaultHistoryLimit is the number of messages History returns when the
// request has no limit.
const DefaultHistoryLimit = 100

// Errors of the direct-get path.
var (
	errNoResponders = errors.New("jsbroker: no responders (stream missing or without a leader)")
	errStaleReplica = errors.New("jsbroker: history replica behind the stream; retry")
)

// requestMux routes the many responses of direct gets from one wildcard
// inbox subscription to the request that asked, so a request costs no
// subscription of its own.
type requestMux struct {
	// Immutable after newRequestMux.
	nc     *nats.Conn
	prefix string // "<inbox>."
	sub    *nats.Subscription

	// mu guards next and waiting.
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan *nats.Msg
}

func newRequestMux(nc *nats.Conn) (*requestMux, error) {
	x := &requestMux{nc: nc, prefix: nc.NewInbox() + ".", waiting: make(map[string]chan *nats.Msg)}
	sub, err := nc.Subscribe(x.prefix+"*", x.route)
	if err != nil {
		return nil, fmt.Errorf("jsbroker: response subscription: %w", err)
	}
	x.sub = sub
	return x, nil
}

// route hands one response to its request. It never blocks: a request
// sizes its channel for every response it can get.
func (x *requestMux) route(m *nats.Msg) {
	token := m.Subject[len(x.prefix):]
	x.mu.Lock()
	ch := x.waiting[token]
	x.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default:
		}
	}
}

// open registers a request that expects at most n responses.
func (x *requestMux) open(n int) (reply string, ch chan *nats.Msg, closeFn func()) {
	ch = make(chan *nats.Msg, n)
	x.mu.Lock()
	x.next++
	token := strconv.FormatUint(x.next, 36)
	x.waiting[token] = ch
	x.mu.Unlock()
	return x.prefix + token, ch, func() {
		x.mu.Lock()
		delete(x.waiting, token)
		x.mu.Unlock()
	}
}

func (x *requestMux) close() { _ = x.sub.Unsubscribe() }

// directRequest is the JSON body of a direct get.
type directRequest struct {
	Seq       uint64   `json:"seq,omitempty"`
	NextBy    string   `json:"next_by_subj,omitempty"`
	Batch     int      `json:"batch,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
	UpToSeq   uint64   `json:"up_to_seq,omitempty"` // multi_last only
}

// directGet sends one batch or multi_last direct get to st and collects
// its responses: the messages, and the number of matching messages still
// pending after them (from the end-of-batch status). A 404 is an empty
// answer. It waits at most RequestTimeout.
func (b *Broker) directGet(ctx context.Context, st *stream, req directRequest, most int) ([]*nats.Msg, uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	reply, ch, done := b.mux.open(most + 2)
	defer done()
	b.requests.Add(1)
	if err := b.nc.PublishRequest("$JS.API.DIRECT.GET."+st.name, reply, body); err != nil {
		return nil, 0, fmt.Errorf("jsbroker: direct get: %w", err)
	}
	var msgs []*nats.Msg
	for {
		select {
		case m := <-ch:
			switch status := first(m.Header, "Status"); status {
			case "":
				msgs = append(msgs, m)
			case "204": // end of batch
				pending, _ := strconv.ParseUint(first(m.Header, hdrNumPending), 10, 64)
				return msgs, pending, nil
			case "404":
				return msgs, 0, nil
			case "503":
				return nil, 0, errNoResponders
			default:
				return nil, 0, fmt.Errorf("jsbroker: direct get on %s: status %s %s", st.name, status, first(m.Header, "Description"))
			}
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("jsbroker: direct get on %s: %w", st.name, ctx.Err())
		case <-b.done:
			return nil, 0, broker.ErrClosed
		}
	}
}

// lastOffsets returns the offset of the newest stored message of each
// subscription's subject (absent: none), with one multi_last request per
// 1,024 subjects.
func (b *Broker) lastOffsets(st *stream, subs []*dsub) (map[string]uint64, error) {
	heads := make(map[string]uint64, len(subs))
	for len(subs) > 0 {
		n := min(len(subs), maxMultiLast)
		subjects := make([]string, n)
		for i, d := range subs[:n] {
			subjects[i] = d.subject
		}
		subs = subs[n:]
		msgs, _, err := b.directGet(context.Background(), st, directRequest{MultiLast: subjects}, n)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			seq, err := strconv.ParseUint(first(m.Header, hdrSequence), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("jsbroker: multi_last answer without a sequence: %w", err)
			}
			heads[first(m.Header, hdrSubject)] = seq
		}
	}
	return heads, nil
}

// History implements broker.Broker with batch direct gets: from the
// message at req.After (asked for too: if it is still stored, so is
// everything after it, since retention removes a subject's oldest messages
// first; otherwise continuous decides) up to req.Limit messages after it.
func (b *Broker) History(ctx context.Context, req broker.HistoryRequest) (broker.HistoryResult, error) {
	st := b.match(req.Topic)
	if st == nil {
		return broker.HistoryResult{}, broker.ErrNoHistory
	}
	if b.closed.Load() {
		return broker.HistoryResult{}, broker.ErrClosed
	}
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res broker.HistoryResult
		if res, err = b.history(ctx, st, req.Topic, req.After, limit); !errors.Is(err, errStaleReplica) && !errors.Is(err, errNoResponders) {
			return res, err
		}
		select {
		case <-time.After(retryWait):
		case <-ctx.Done():
			return broker.HistoryResult{}, ctx.Err()
		}
	}
	return broker.HistoryResult{}, err
}

func (b *Broker) history(ctx context.Context, st *stream, topic string, after uint64, limit int) (broker.HistoryResult, error) {
	res := broker.HistoryResult{Epoch: st.currentEpoch(), Continuous: after == 0}
	subject := b.prefix + topic
	start, batch := max(after, 1), limit
	if after > 0 {
		batch++ // the message at after itself
	}
	var out []broker.Message
	var pending uint64
	for firstRound := true; ; firstRound = false {
		msgs, np, err := b.directGet(ctx, st, directRequest{Seq: start, NextBy: subject, Batch: batch}, batch)
		if err != nil {
			return res, err
		}
		pending = np
		got, err := storedMessages(msgs, res.Epoch)
		if err != nil {
			return res, err
		}
		var lastSeq uint64
		if len(got) > 0 {
			lastSeq = got[len(got)-1].Offset
		}
		if firstRound && after > 0 {
			if res.Continuous, err = b.continuous(ctx, st, subject, after, got); err != nil {
				return res, err
			}
			if len(got) > 0 && got[0].Offset == after {
				got = got[1:]
			}
		}
		out = append(out, got...)
		if len(out) >= limit || pending == 0 || len(msgs) == 0 {
			break
		}
		// max_bytes cut the batch short: continue after the last one.
		start = lastSeq + 1
		batch = limit - len(out)
	}
	if len(out) > limit {
		out, pending = out[:limit], pending+uint64(len(out)-limit)
	}
	res.More = pending > 0
	prev := uint64(0)
	if res.Continuous {
		prev = after
	}
	for i := range out {
		out[i].Prev = prev
		prev = out[i].Offset
	}
	res.Messages = out
	return res, nil
}

// continuous reports whether nothing of the topic stored after position
// after has been removed, given the first messages the history holds at or
// after it (got). Retention removes a subject's oldest messages first, so
// the answer is yes when the topic still has a message at or before after:
// the message at after itself (the common case, no request), or an older
// one (one multi_last request). It is yes too when nothing could have been
// removed in between: the topic's first stored message right after the
// position (offsets are shared by the pattern's topics, so a position
// taken from another topic often is), or no message of any topic after
// it. A position beyond the end of the history is no position of it: no.
func (b *Broker) continuous(ctx context.Context, st *stream, subject string, after uint64, got []broker.Message) (bool, error) {
	if len(got) > 0 && (got[0].Offset == after || got[0].Offset == after+1) {
		return true, nil
	}
	if len(got) == 0 {
		// Nothing at or after it: trimmed, beyond the end, or a replica
		// that has not caught up with it. Ask the leader.
		stored, err := b.leaderHas(ctx, st, subject, after)
		if err != nil {
			return false, err
		}
		if stored {
			return false, errStaleReplica
		}
		last, err := b.lastSeq(ctx, st)
		if err != nil {
			return false, err
		}
		if after > last {
			return false, nil
		}
		if after == last {
			return true, nil // nothing of any topic was stored after it
		}
	}
	msgs, _, err := b.directGet(ctx, st, directRequest{MultiLast: []string{subject}, UpToSeq: after}, 1)
	return len(msgs) > 0, err
}

// lastSeq returns the stream's last sequence, from the leader.
func (b *Broker) lastSeq(ctx context.Context, st *stream) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	b.requests.Add(1)
	s, err := b.js.Stream(ctx, st.name)
	if err != nil {
		return 0, fmt.Errorf("jsbroker: stream info: %w", err)
	}
	return s.CachedInfo().State.LastSeq, nil
}

// storedMessages converts direct-get answers into broker messages.
func storedMessages(msgs []*nats.Msg, epoch string) ([]broker.Message, error) {
	out := make([]broker.Message, 0, len(msgs))
	for _, m := range msgs {
		seq, err := strconv.ParseUint(first(m.Header, hdrSequence), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("jsbroker: stored message without a sequence: %w", err)
		}
		ts, _ := time.Parse(time.RFC3339Nano, first(m.Header, hdrTimeStamp))
		out = append(out, broker.Message{Data: m.Data, Offset: seq, Epoch: epoch, Time: ts})
	}
	return out, nil
}

// leaderHas asks the stream leader (the JetStream API, not a possibly
// stale direct-get replica) whether subject has a message at or after seq.
func (b *Broker) leaderHas(ctx context.Context, st *stream, subject string, seq uint64) (bool, error) {
	body, _ := json.Marshal(directRequest{Seq: seq, NextBy: subject})
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	b.requests.Add(1)
	resp, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+st.name, body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return false, errNoResponders
		}
		return false, fmt.Errorf("jsbroker: message get: %w", err)
	}
	var r struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return false, fmt.Errorf("jsbroker: message get answer: %w", err)
	}
	switch {
	case r.Message != nil:
		return true, nil
	case r.Error != nil && r.Error.Code == 404:
		return false, nil
	case r.Error != nil:
		return false, fmt.Errorf("jsbroker: message get: %d %s", r.Error.Code, r.Error.Description)
	}
	return false, errors.New("jsbroker: empty message get answer")
}
