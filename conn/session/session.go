// Package session is pushd's client protocol v1 (docs/protocol.md) without
// its transport: commands and replies, permissions, the command budget, the
// personal topic, subscription limits and token expiry. It talks to its
// connection through Peer, a narrow interface that a WebSocket connection
// implements today and an SSE stream or a Socket.IO socket can implement
// too; adding a transport does not touch this package.
//
// A Session is the per-connection state and Env what the sessions of one
// event loop share. Everything runs on that loop's goroutine.
package session

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics"
)

// Identity is an authenticated client, as the session needs to see it.
type Identity interface {
	// Subject is the user ID.
	Subject() string
	// Expiry is when the credentials expire; the zero time means never.
	Expiry() time.Time
	// CanSubscribe reports whether the client may subscribe to topic.
	CanSubscribe(topic string) bool
	// CanPublish reports whether the client may publish to topic.
	CanPublish(topic string) bool
}

// Admit decides whether a request may open a session, before the
// transport answers it (a WebSocket's 101, an SSE stream's 200): it returns
// the client's identity (nil: anonymous) and, for a WebSocket, the
// subprotocol to echo, or the HTTP rejection. It runs on the loop
// goroutine and must not block.
type Admit func(req *codec.HTTPRequest) (Identity, string, *codec.HTTPError)

// Peer is the session's view of its connection. Every method runs on the
// connection's loop goroutine.
type Peer interface {
	// Subscriber receives the pushes of the session's subscriptions, in
	// the connection's wire format.
	topics.Subscriber
	// Send writes one complete v1 message (a JSON object) in the
	// transport's framing, and reports whether the connection is still
	// usable.
	Send(p []byte) bool
	// Close ends the connection with a pushd close code (docs/protocol.md
	// §6), which the transport maps onto its own means.
	Close(code codec.StatusCode, reason string)
	// Open reports whether the connection is open and still takes pushes.
	Open() bool
}

// Clock is the loop's coarse clock: the timing wheel's ticks. conn.Loop
// implements it.
type Clock interface {
	// Now returns the current tick. Loop goroutine only.
	Now() uint64
	// TickOf returns the tick a time falls in. Loop goroutine only.
	TickOf(t time.Time) uint64
	// TickDuration returns the length of a tick. Any goroutine.
	TickDuration() time.Duration
}

// Env is what the sessions of one event loop share: the configuration, the
// loop's topic shard and clock, the counters, and a scratch buffer for
// replies. Loop goroutine only, except NewEnv.
type Env struct {
	// Immutable after NewEnv.
	cfg     Config
	shard   *topics.Shard
	metrics *Metrics
	clock   Clock

	// Owned by the loop goroutine.
	scratch []byte
	// later holds, for each session whose command waits for an answer
	// from off the loop (durable.go), the commands that arrived since; not
	// in Session, which every connection carries.
	later map[*Session]*deferred
}

// NewEnv returns the environment of one event loop's sessions. shard may
// be nil (a server without topics: every subscribe then fails with
// internal). Any goroutine; the Env then belongs to the loop goroutine.
func NewEnv(cfg Config, shard *topics.Shard, m *Metrics, clock Clock) *Env {
	return &Env{cfg: cfg.WithDefaults(), shard: shard, metrics: m, clock: clock, scratch: make([]byte, 0, 512)}
}

// Session is one client's protocol state. The zero value is ready for
// Start. Loop goroutine only.
type Session struct {
	subs    []*topics.Subscription
	ident   Identity
	tokens  float32 // command rate-limit bucket
	refill  uint32  // tick of the last refill
	strikes uint16  // commands refused in a row
}

// Start begins a v1 session on a connection that has just been accepted:
// it sends the welcome, then does what Begin does, and subscribes the
// topics named in rawQuery's topics parameter (the connection's URL query;
// "" for none). Errors go to the client as error messages without an id.
// It returns the tick at which the client's credentials expire, 0 for
// never: the transport arms its timer for it and calls Expired then.
func (s *Session) Start(e *Env, p Peer, id Identity, rawQuery string) (expires uint64) {
	interval := int((e.cfg.PingInterval + time.Second - 1) / time.Second)
	if !e.send(p, codec.AppendWelcome(e.buf(), nuid.Next(), interval)) {
		return s.init(e, id)
	}
	expires, perr := s.Begin(e, p, id)
	if perr != nil {
		e.replyError(p, nil, perr)
	}
	if rawQuery == "" || !p.Open() {
		return expires
	}
	names, perr := TopicsFromQuery(rawQuery)
	if perr == nil && len(names) > 0 {
		perr = s.Subscribe(e, p, names)
	}
	if perr != nil {
		e.replyError(p, nil, perr)
	}
	return expires
}

// StartAt is Start for a client that reconnects naming a position in one
// history (SSE's Last-Event-ID): the topics of rawQuery and the personal
// topic that keep a history resume after pos (a topic whose history has
// another epoch gets epoch_changed and starts live, like the topics
// without history). When the outcomes are known, an ok without id carries
// "recovered" and "reasons" (docs/protocol.md §3a), before any replayed
// message. Errors go to the client as error messages without an id; as
// with Start, a refused rawQuery does not keep the personal topic from
// being subscribed.
func (s *Session) StartAt(e *Env, p Peer, id Identity, rawQuery string, pos codec.Position) (expires uint64) {
	interval := int((e.cfg.PingInterval + time.Second - 1) / time.Second)
	if !e.send(p, codec.AppendWelcome(e.buf(), nuid.Next(), interval)) {
		return s.init(e, id)
	}
	expires = s.init(e, id)
	var names []string
	if id != nil && e.cfg.PersonalTopic != nil {
		if t := e.cfg.PersonalTopic(id); t != "" {
			names = append(names, t)
		}
	}
	personal := len(names)
	var perr *codec.ProtoError
	if rawQuery != "" {
		var q []string
		if q, perr = TopicsFromQuery(rawQuery); perr == nil && len(q) > 0 {
			// All or nothing, as Start's subscribe: checked apart from
			// the personal topic, which the token need not allow.
			if perr = s.check(e, q, false); perr == nil {
				names = append(names, q...)
			}
		}
	}
	if personal > 0 && len(names) > e.cfg.MaxTopicsPerCommand {
		// One more than a command may name: the personal topic starts
		// live, as with Start, and the others resume.
		if err := s.subscribe(e, p, names[:personal], true); err != nil {
			e.replyError(p, nil, err)
		}
		names = names[personal:]
	}
	if len(names) > 0 && p.Open() {
		since := make(map[string]codec.Position)
		for _, t := range names {
			if codec.ValidTopic(t) == nil && e.shard != nil && e.shard.Hub().Durable(t) {
				since[t] = pos
			}
		}
		if rerr := s.resume(e, p, nil, names, since); rerr != nil && perr == nil {
			perr = rerr
		}
	}
	if perr != nil && p.Open() {
		e.replyError(p, nil, perr)
	}
	return expires
}

// Begin begins the session without any v1 message, for transports that
// speak another protocol over it (Socket.IO): it fills the command budget,
// records the identity (nil: anonymous) and subscribes an authenticated
// client's personal topic. It returns the tick at which the credentials
// expire (0: never) and the error subscribing the personal topic, if any.
func (s *Session) Begin(e *Env, p Peer, id Identity) (expires uint64, perr *codec.ProtoError) {
	expires = s.init(e, id)
	if id != nil && e.cfg.PersonalTopic != nil && p.Open() {
		// The personal topic is the server's choice, not the client's, so
		// it bypasses the token's subscribe patterns.
		if t := e.cfg.PersonalTopic(id); t != "" {
			perr = s.subscribe(e, p, []string{t}, true)
		}
	}
	return expires, perr
}

// init sets the identity and the full command budget, and returns the
// expiry tick.
func (s *Session) init(e *Env, id Identity) (expires uint64) {
	s.ident = id
	s.tokens = float32(e.cfg.CommandBurst)
	s.refill = uint32(e.clock.Now())
	return s.ExpiryTick(e)
}

// ExpiryTick returns the tick at which the client's credentials expire: the
// tick after the one the expiry falls in, so never before it; 0 for an
// anonymous client or credentials that never expire. It is computed from
// the identity each time, so a transport need not store it.
func (s *Session) ExpiryTick(e *Env) uint64 {
	if s.ident == nil {
		return 0
	}
	exp := s.ident.Expiry()
	if exp.IsZero() {
		return 0
	}
	return max(e.clock.TickOf(exp)+1, 1)
}

// TopicsFromQuery returns the topics named in a URL query's topics
// parameters (?topics=a,b&topics=c), empty names skipped, or a bad_request
// error for a malformed query. Pure.
func TopicsFromQuery(rawQuery string) ([]string, *codec.ProtoError) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, &codec.ProtoError{Code: codec.CodeBadRequest, Message: "malformed query string"}
	}
	var names []string
	for _, v := range q["topics"] {
		for _, t := range strings.Split(v, ",") {
			if t != "" {
				names = append(names, t)
			}
		}
	}
	return names, nil
}

// Check applies a subscribe's checks to names for a client with identity
// id (nil: anonymous), without subscribing: the topic count, each name's
// validity and the token's permission, and the subscription limit for a
// fresh connection. It returns the error Subscribe would report for the
// same names on a new session, nil if they would all be accepted. A
// transport that cannot report errors in-band once it has answered the
// request (SSE) calls it first, to refuse the request instead.
func (e *Env) Check(id Identity, names []string) *codec.ProtoError {
	var s Session
	s.ident = id
	return s.check(e, names, false)
}

// Identity returns the client's identity, nil when anonymous.
func (s *Session) Identity() Identity { return s.ident }

// Expired ends the session whose credentials have expired: close 4002.
// The transport calls it when the tick Start returned comes.
func (s *Session) Expired(e *Env, p Peer) {
	e.metrics.TokenExpired.Add(1)
	p.Close(codec.StatusTokenExpired, "token expired")
}

// Closed drops every subscription of the session. The transport calls it
// once, when the connection has closed.
func (s *Session) Closed(e *Env) {
	delete(e.later, s)
	for i, x := range s.subs {
		e.shard.Unsubscribe(x)
		s.subs[i] = nil
	}
	s.subs = nil
}

// Topics returns the topics the session is subscribed to.
func (s *Session) Topics() []string {
	out := make([]string, len(s.subs))
	for i, x := range s.subs {
		out[i] = x.Topic()
	}
	return out
}

// Allow spends one unit of the command budget: a token bucket of
// CommandBurst refilled at CommandRate per second from the loop's clock,
// shared by commands and transport-level pings. Without a unit it counts a
// strike, and closes the connection with 1008 once the strikes in a row
// exceed the burst. It reports whether the command may run.
func (s *Session) Allow(e *Env, p Peer) bool {
	now := uint32(e.clock.Now())
	if elapsed := now - s.refill; elapsed > 0 {
		s.tokens += float32(float64(elapsed) * e.cfg.CommandRate * e.clock.TickDuration().Seconds())
		if limit := float32(e.cfg.CommandBurst); s.tokens > limit {
			s.tokens = limit
		}
		s.refill = now
	}
	if s.tokens >= 1 {
		s.tokens--
		s.strikes = 0
		return true
	}
	e.metrics.RateLimited.Add(1)
	s.strikes++
	if int(s.strikes) > e.cfg.CommandBurst {
		p.Close(codec.StatusPolicyViolation, "rate limit exceeded")
	}
	return false
}

// Subscribe subscribes the session to names, all or nothing: every name is
// validated and checked against the token and the limits first. Topics it
// already has are fine. It returns the error to report, nil on success.
func (s *Session) Subscribe(e *Env, p Peer, names []string) *codec.ProtoError {
	return s.subscribe(e, p, names, false)
}

// subscribe is Subscribe; trusted skips the token check (for the
// server-chosen personal topic).
func (s *Session) subscribe(e *Env, p Peer, names []string, trusted bool) *codec.ProtoError {
	if !p.Open() {
		return nil // closed (or closing) while the command was handled
	}
	if perr := s.check(e, names, trusted); perr != nil {
		return perr
	}
	for _, t := range names {
		if s.subscribed(t) {
			continue
		}
		x, err := e.shard.Subscribe(t, p)
		if err != nil {
			return &codec.ProtoError{Code: codec.CodeInternal, Message: "subscribe failed"}
		}
		s.subs = append(s.subs, x)
	}
	return nil
}

// check is subscribe's validation: everything but the subscribing.
func (s *Session) check(e *Env, names []string, trusted bool) *codec.ProtoError {
	switch {
	case e.shard == nil:
		return &codec.ProtoError{Code: codec.CodeInternal, Message: "this endpoint has no topics"}
	case len(names) == 0:
		return &codec.ProtoError{Code: codec.CodeBadRequest, Message: "no topics"}
	case len(names) > e.cfg.MaxTopicsPerCommand:
		return &codec.ProtoError{Code: codec.CodeTooManyTopics, Message: "too many topics in one command"}
	}
	for _, t := range names {
		if err := codec.ValidTopic(t); err != nil {
			return &codec.ProtoError{Code: codec.CodeInvalidTopic, Message: err.Error()}
		}
		if !trusted && !s.mayRead(e, t) {
			e.metrics.Forbidden.Add(1)
			return &codec.ProtoError{Code: codec.CodeForbidden, Message: "the token does not allow subscribing to " + t}
		}
	}
	fresh := 0
	for i, t := range names {
		if !s.subscribed(t) && !slices.Contains(names[:i], t) {
			fresh++
		}
	}
	if len(s.subs)+fresh > e.cfg.MaxSubscriptions {
		return &codec.ProtoError{Code: codec.CodeTooManyTopics, Message: "subscription limit reached"}
	}
	return nil
}

func (s *Session) subscribed(topic string) bool {
	return slices.ContainsFunc(s.subs, func(x *topics.Subscription) bool { return x.Topic() == topic })
}

// Unsubscribe ends the session's subscriptions to names; names it does not
// have, even invalid ones, are ignored.
func (s *Session) Unsubscribe(e *Env, names []string) {
	for _, t := range names {
		i := slices.IndexFunc(s.subs, func(x *topics.Subscription) bool { return x.Topic() == t })
		if i < 0 {
			continue
		}
		e.shard.Unsubscribe(s.subs[i])
		last := len(s.subs) - 1
		s.subs[i] = s.subs[last]
		s.subs[last] = nil
		s.subs = s.subs[:last]
	}
}

// Publish publishes data to topic for the client: allowed only when the
// server enables client publishing and the token allows the topic. It
// returns the error to report, nil on success.
func (s *Session) Publish(e *Env, topic string, data []byte) *codec.ProtoError {
	if perr := s.mayPublish(e, topic); perr != nil {
		return perr
	}
	if err := e.cfg.Publish(topic, data); err != nil {
		return &codec.ProtoError{Code: codec.CodeInternal, Message: "publish failed"}
	}
	e.metrics.ClientPublishes.Add(1)
	return nil
}

// mayRead reports whether the client may subscribe to topic or read its
// history: an anonymous client may, an authenticated one where its token
// allows, and always its own personal topic (to resume it after a
// reconnect, although the token need not grant it).
func (s *Session) mayRead(e *Env, topic string) bool {
	if s.ident == nil || s.ident.CanSubscribe(topic) {
		return true
	}
	return e.cfg.PersonalTopic != nil && e.cfg.PersonalTopic(s.ident) == topic
}

// mayPublish checks that the client may publish to topic.
func (s *Session) mayPublish(e *Env, topic string) *codec.ProtoError {
	if e.cfg.Publish == nil {
		e.metrics.Forbidden.Add(1)
		return &codec.ProtoError{Code: codec.CodeForbidden, Message: "publishing from clients is disabled"}
	}
	if err := codec.ValidTopic(topic); err != nil {
		return &codec.ProtoError{Code: codec.CodeInvalidTopic, Message: err.Error()}
	}
	if s.ident != nil && !s.ident.CanPublish(topic) {
		e.metrics.Forbidden.Add(1)
		return &codec.ProtoError{Code: codec.CodeForbidden, Message: "the token does not allow publishing to " + topic}
	}
	return nil
}

// buf returns the Env's scratch buffer, emptied.
func (e *Env) buf() []byte { return e.scratch[:0] }

// send writes b (built in the scratch buffer) and keeps the buffer.
func (e *Env) send(p Peer, b []byte) bool {
	e.scratch = b[:0]
	return p.Send(b)
}
