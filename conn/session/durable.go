package session

import (
	"errors"
	"slices"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker"
)

// Commands that wait for an answer from off the loop — a subscribe with
// positions (the resume's outcome), a history read, a client publish to a
// durable topic (the stream's ack) — return at once and reply later. The
// commands that arrive meanwhile are kept and run, in order, after that
// reply, so every reply still comes in command order (docs/protocol.md §2).

// deferred holds the commands that arrived while an earlier one waits.
type deferred struct {
	cmds  []deferredCmd
	bytes int
}

// deferredCmd is one waiting command.
type deferredCmd struct {
	msg     []byte // a copy; nil when refused
	text    bool
	refused bool // over the command budget (or the wait queue's bounds): its reply is rate_limited
}

// Bounds of the commands kept while one waits; more are refused with
// rate_limited, in order like the others.
const (
	maxDeferred      = 64
	maxDeferredBytes = 256 << 10
)

// keep adds a command that arrived while another waits.
func (d *deferred) keep(e *Env, text bool, msg []byte, allowed bool) {
	if allowed && (len(d.cmds) >= maxDeferred || d.bytes+len(msg) > maxDeferredBytes) {
		e.metrics.RateLimited.Add(1)
		allowed = false
	}
	if !allowed {
		d.cmds = append(d.cmds, deferredCmd{refused: true})
		return
	}
	d.cmds = append(d.cmds, deferredCmd{msg: slices.Clone(msg), text: text})
	d.bytes += len(msg)
}

// wait marks the session as waiting for the answer to the current command.
func (s *Session) wait(e *Env) {
	if e.later == nil {
		e.later = make(map[*Session]*deferred)
	}
	e.later[s] = new(deferred)
}

// answered runs once the waiting command has been replied to: the kept
// commands run in order, until one of them waits in turn.
func (s *Session) answered(e *Env, p Peer) {
	d := e.later[s]
	delete(e.later, s)
	if d == nil {
		return // the connection closed meanwhile
	}
	for i, c := range d.cmds {
		if !p.Open() {
			return
		}
		s.run(e, p, c.text, c.msg, !c.refused)
		if next := e.later[s]; next != nil {
			next.cmds = append(next.cmds, d.cmds[i+1:]...)
			for _, c := range d.cmds[i+1:] {
				next.bytes += len(c.msg)
			}
			return
		}
	}
}

// anyDurable reports whether a topic of names keeps a history: its
// subscribe then waits (resume) until the node follows the history, so the
// ok means every message stored after it will be delivered.
func (s *Session) anyDurable(e *Env, names []string) bool {
	if e.shard == nil {
		return false
	}
	for _, t := range names {
		if codec.ValidTopic(t) == nil && e.shard.Hub().Durable(t) {
			return true
		}
	}
	return false
}

// resume subscribes to names like Subscribe, resuming the topics that since
// names after their positions (topics.Shard.Resume). A topic it already has
// is resumed again when since names it (the replay starts at the given
// position), and left alone otherwise. The ok, with "recovered" and
// "reasons", is sent when every outcome is known, before any replayed or
// live message of these topics. It returns the error to report now; nil
// means the reply comes later.
func (s *Session) resume(e *Env, p Peer, id []byte, names []string, since map[string]codec.Position) *codec.ProtoError {
	if !p.Open() {
		return nil // closed (or closing) while the command was handled
	}
	if perr := s.check(e, names, false); perr != nil {
		return perr
	}
	s.wait(e)
	var mine []*topics.Subscription
	perr := s.resumeWants(e, p, names, since, &mine, func(recs []codec.Recovery) {
		// Without an id (StartAt), only outcomes are worth a message.
		if p.Open() && (id != nil || len(recs) > 0) {
			var live []codec.Live
			if id != nil {
				live = liveAt(e, mine)
			}
			e.send(p, codec.AppendSubscribeOK(e.buf(), id, recs, live))
		}
		// The replay is delivered right after this returns: the commands
		// that waited run after it, so their replies follow it too.
		e.shard.Defer(func() { s.answered(e, p) })
	})
	if perr != nil {
		delete(e.later, s)
	}
	return perr
}

// liveAt lists where the durable subscriptions xs went live without a
// replay (topics.Shard.LiveAt), for the subscribe's reply: the client
// resumes from there after a reconnect, even if no message came
// meanwhile. From a Resume's done only.
func liveAt(e *Env, xs []*topics.Subscription) []codec.Live {
	var live []codec.Live
	for _, x := range xs {
		if at, ok := e.shard.LiveAt(x); ok {
			live = append(live, codec.Live{Topic: x.Topic(), At: at})
		}
	}
	return live
}

// resumeWants subscribes names (checked) through topics.Shard.Resume: a
// topic it already has is resumed again when since names it, and left
// alone otherwise. done is Resume's; the subscriptions made are stored in
// *made (when not nil) before done can run.
func (s *Session) resumeWants(e *Env, p Peer, names []string, since map[string]codec.Position, made *[]*topics.Subscription, done func([]codec.Recovery)) *codec.ProtoError {
	var wants []topics.Want
	for i, t := range names {
		if slices.Contains(names[:i], t) {
			continue
		}
		pos, has := since[t]
		if s.subscribed(t) {
			if !has {
				continue
			}
			s.Unsubscribe(e, []string{t})
		}
		w := topics.Want{Topic: t}
		if has {
			w.Since = &pos
		}
		wants = append(wants, w)
	}
	xs, err := e.shard.Resume(p, wants, done)
	if err != nil {
		return &codec.ProtoError{Code: codec.CodeInternal, Message: "subscribe failed"}
	}
	if made != nil {
		*made = xs // done runs later, on the loop (Shard.Resume)
	}
	s.subs = append(s.subs, xs...)
	return nil
}

// SubscribeThen is Subscribe for a transport that answers in its own
// protocol, with the v1 rule for durable topics: when a topic of names
// keeps a history, the subscription waits until the node follows it, and
// done runs later on the loop, before any message of these topics is
// delivered; from then on every message stored is delivered (a client
// told "subscribed" at done misses nothing published after). later
// reports whether done will run; when false, the subscribe is complete
// (or refused with perr, or the peer closed meanwhile) and done never
// runs. done must not subscribe or unsubscribe. Loop goroutine only.
func (s *Session) SubscribeThen(e *Env, p Peer, names []string, done func()) (later bool, perr *codec.ProtoError) {
	if !s.anyDurable(e, names) {
		return false, s.Subscribe(e, p, names)
	}
	if !p.Open() {
		return false, nil
	}
	if perr := s.check(e, names, false); perr != nil {
		return false, perr
	}
	if perr := s.resumeWants(e, p, names, nil, nil, func([]codec.Recovery) { done() }); perr != nil {
		return false, perr
	}
	return true, nil
}

// history reads the stored messages of a durable topic for the client
// (topics.Shard.History): the client must be allowed to subscribe to it.
// It returns the error to report now; nil means the reply comes later.
func (s *Session) history(e *Env, p Peer, cmd *codec.Command) *codec.ProtoError {
	if e.shard == nil {
		return &codec.ProtoError{Code: codec.CodeInternal, Message: "this endpoint has no topics"}
	}
	if err := codec.ValidTopic(cmd.Topic); err != nil {
		return &codec.ProtoError{Code: codec.CodeInvalidTopic, Message: err.Error()}
	}
	if !s.mayRead(e, cmd.Topic) {
		e.metrics.Forbidden.Add(1)
		return &codec.ProtoError{Code: codec.CodeForbidden, Message: "the token does not allow reading " + cmd.Topic}
	}
	var since codec.Position
	if cmd.HistorySince != nil {
		since = *cmd.HistorySince
	}
	id := cmd.ID
	s.wait(e)
	e.shard.History(cmd.Topic, since, cmd.Limit, func(page topics.HistoryPage, err error) {
		switch {
		case !p.Open():
		case err != nil:
			e.replyError(p, id, historyError(err))
		default:
			page = page.Cut(codec.MaxHistoryBytes)
			e.send(p, codec.AppendHistoryOK(e.buf(), id, page.Epoch, page.Messages, page.More, page.Trimmed))
		}
		s.answered(e, p)
	})
	return nil
}

// historyError is the reply to a history read that failed.
func historyError(err error) *codec.ProtoError {
	switch {
	case errors.Is(err, topics.ErrNotDurable):
		return &codec.ProtoError{Code: codec.CodeNotDurable, Message: "this topic keeps no history"}
	case errors.Is(err, topics.ErrEpochChanged):
		return &codec.ProtoError{Code: codec.CodeEpochChanged, Message: "the history of this position was replaced"}
	case errors.Is(err, codec.ErrInvalidTopic):
		return &codec.ProtoError{Code: codec.CodeInvalidTopic, Message: err.Error()}
	}
	return &codec.ProtoError{Code: codec.CodeUnavailable, Message: "the history could not be read; retry"}
}

// publishDurable publishes a client's message to a durable topic and
// answers once the stream stored it: {"type":"ok","id":…,"offset":N,"epoch":"E"}.
// The caller has checked the permissions.
func (s *Session) publishDurable(e *Env, p Peer, id []byte, topic string, data []byte) {
	s.wait(e)
	e.publishStored(topic, data, func(ack broker.Ack, perr *codec.ProtoError) {
		switch {
		case !p.Open():
		case perr != nil:
			e.replyError(p, id, perr)
		default:
			e.send(p, codec.AppendPublishOK(e.buf(), id, ack.Offset, ack.Epoch))
		}
		s.answered(e, p)
	})
}

// publishStored publishes one message to a durable topic through its
// history; done runs later on the loop with the stored message's position,
// or the error to answer.
func (e *Env) publishStored(topic string, data []byte, done func(broker.Ack, *codec.ProtoError)) {
	e.shard.PublishWait([]broker.Outgoing{{Topic: topic, Data: slices.Clone(data)}}, func(acks []broker.Ack, err error) {
		if err != nil {
			code := codec.CodeInternal
			if errors.Is(err, broker.ErrTooLarge) {
				code = codec.CodeBadRequest
			}
			done(broker.Ack{}, &codec.ProtoError{Code: code, Message: "publish failed"})
			return
		}
		e.metrics.ClientPublishes.Add(1)
		done(acks[0], nil)
	})
}

// PublishThen is Publish for a transport that answers in its own protocol,
// with the v1 rule for durable topics: on a durable topic the message goes
// through the topic's history, and done runs later on the loop with its
// position once stored, or with the error to answer (perr); on any other
// topic PublishThen publishes at once. later reports whether done will
// run; when false, the publish is done or refused (perr) and done never
// runs. Loop goroutine only.
func (s *Session) PublishThen(e *Env, topic string, data []byte, done func(offset uint64, epoch string, perr *codec.ProtoError)) (later bool, perr *codec.ProtoError) {
	if perr := s.mayPublish(e, topic); perr != nil {
		return false, perr
	}
	if e.shard == nil || !e.shard.Hub().Durable(topic) {
		return false, s.Publish(e, topic, data)
	}
	e.publishStored(topic, data, func(ack broker.Ack, perr *codec.ProtoError) { done(ack.Offset, ack.Epoch, perr) })
	return true, nil
}
