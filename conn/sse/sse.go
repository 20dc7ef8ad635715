// Package sse is pushd's Server-Sent Events transport (WHATWG HTML §9.2):
// GET /sse?topics=a,b answers a text/event-stream that carries the v1
// protocol one way, server to client. The stream runs a conn/session
// Session over a conn.Proto, with the WebSocket endpoint's rules
// (admission, permissions, limits, the personal topic, token expiry) and
// the slow-consumer policy of conn.Conn; pushes are encoded once per
// message for every SSE subscriber (PushFormat).
//
// On the wire (docs/protocol.md §12): every v1 message (the welcome, an
// error, each push) is one event whose data is the message's JSON;
// pushes on durable topics carry an id (codec.AppendEventID); a comment
// line (": ping") goes out every PingInterval; and when the server ends
// the stream it sends an event of type "close" with a pushd close code,
// then ends the response.
//
// Everything here runs on the connection's event-loop goroutine.
package sse

import (
	"math/rand/v2"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics"
)

// Config holds the SSE timers. Zero fields take the defaults listed beside
// them (see WithDefaults).
type Config struct {
	// PingInterval is how often a comment line goes out on every stream:
	// it keeps proxies from timing the stream out (the spec suggests about
	// every 15 s) and finds dead clients, whose socket then fails or
	// fills. Default 25s.
	PingInterval time.Duration
	// MinRetry and MaxRetry bound the reconnection delay each stream gives
	// its client ("retry:"), drawn at random per stream so the clients of
	// a draining node do not all come back at once. Defaults 1s and 5s.
	MinRetry, MaxRetry time.Duration
}

// WithDefaults returns c with every zero field set to its default. Pure.
func (c Config) WithDefaults() Config {
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.MinRetry <= 0 {
		c.MinRetry = time.Second
	}
	if c.MaxRetry < c.MinRetry {
		c.MaxRetry = max(c.MinRetry, 5*time.Second)
	}
	return c
}

// PushFormat is the v1 push as one SSE event: an id line on a durable
// topic (topic:epoch:offset, codec.AppendEventID), and a data line with the
// JSON of codec.AppendPush. It is built once per message and shared by every
// SSE subscriber on every loop. The encoder writes the push JSON first and
// builds the event from it further on in the same buffer, so nothing is
// copied twice and nothing is allocated beyond the pooled buffer.
var PushFormat = topics.NewFormat("sse-v1", func(dst []byte, m *topics.Message) ([]byte, int) {
	return appendPushEvent(dst, m.Topic(), m.Seq(), m.Data(), m.Epoch(), m.Offset())
})

// appendPushEvent is PushFormat's encoder: it appends the push JSON (with
// offset and epoch on a durable topic, codec.AppendPushAt), then
// the id, then the event built from both, and returns the buffer and where
// the event starts. A push without a position (offset 0) has no id.
func appendPushEvent(dst []byte, topic string, seq uint64, data []byte, epoch string, offset uint64) ([]byte, int) {
	at := len(dst)
	if offset != 0 && epoch != "" {
		dst = codec.AppendPushAt(dst, topic, seq, offset, epoch, data)
	} else {
		dst = codec.AppendPush(dst, topic, seq, data)
	}
	end := len(dst)
	if offset != 0 && epoch != "" {
		dst = codec.AppendEventID(dst, topic, epoch, offset)
	}
	idEnd := len(dst)
	// The event reads the JSON and the id from earlier in dst; append
	// may move dst, but the old array still holds them unchanged.
	return codec.AppendSSEEvent(dst, dst[end:idEnd], "", dst[at:end]), idEnd
}

// Route returns the endpoint-table entry of the v1 protocol over SSE at
// path: admit (may be nil: anyone) runs before the response, and every
// stream runs a session.Session with the loop's session.Env. Sessions count
// into m. Any goroutine.
func Route(path string, cfg Config, admit session.Admit, scfg session.Config, m *session.Metrics) conn.Route {
	cfg = cfg.WithDefaults()
	scfg.PingInterval = cfg.PingInterval
	return conn.Route{Path: path, New: func(l *conn.Loop) conn.Endpoint {
		return &endpoint{
			cfg:       cfg,
			pingTicks: l.Ticks(cfg.PingInterval),
			admit:     admit,
			env:       session.NewEnv(scfg, l.Shard(), m, l),
		}
	}}
}

// endpoint is one loop's instance of the SSE route. It implements
// conn.Endpoint.
type endpoint struct {
	// Immutable after Route built it.
	cfg       Config
	pingTicks uint64
	admit     session.Admit

	// Owned by the loop goroutine.
	env *session.Env
	hdr [3][2]string // response header scratch
}

// stream is one SSE connection: the session and its timers, in one
// allocation. It implements conn.Proto.
type stream struct {
	ep      *endpoint
	expires uint64 // wheel tick at which the credentials expire; 0 = never
	sess    session.Session
}

// Serve implements conn.Endpoint. It refuses what an EventSource cannot be
// told in-band (the browser retries a stream that ends, but gives up on a
// response that is not 200, WHATWG HTML §9.2.3): a method other than GET
// (405), a body (400), a refused Origin or token (403, 401), and topics the
// session would refuse (400, 403). Then it answers 200 with the stream
// head, starts the session (welcome, personal topic, ?topics=) and arms
// the heartbeat.
func (e *endpoint) Serve(c *conn.Conn, req *codec.HTTPRequest, _ []byte) *codec.HTTPError {
	switch {
	case req.Method != "GET":
		return &codec.HTTPError{Status: 405, Reason: "method not allowed", Header: [][2]string{{"Allow", "GET"}}}
	case req.ContentLength > 0:
		return &codec.HTTPError{Status: 400, Reason: "request body not allowed"}
	}
	var id session.Identity
	if e.admit != nil {
		var herr *codec.HTTPError
		if id, _, herr = e.admit(req); herr != nil {
			return herr
		}
	}
	names, perr := session.TopicsFromQuery(req.RawQuery)
	if perr == nil && len(names) > 0 {
		perr = e.env.Check(id, names)
	}
	if perr != nil {
		return refusal(perr)
	}
	s := &stream{ep: e}
	c.Accepted(s)
	buf := e.appendHead(c.Scratch(), req.Origin)
	c.SetScratch(buf)
	if !c.Write(buf) {
		return nil
	}
	c.SetFormat(PushFormat)
	// Last-Event-ID names where a reconnecting stream's durable topics
	// resume (docs/protocol.md §12); an id that does not parse is ignored,
	// as a browser never sends one pushd did not write.
	var exp uint64
	if _, epoch, offset, ok := codec.ParseEventID(req.LastEventID); ok {
		exp = s.sess.StartAt(e.env, c, id, req.RawQuery, codec.Position{Offset: offset, Epoch: epoch})
	} else {
		exp = s.sess.Start(e.env, c, id, req.RawQuery)
	}
	if exp != 0 {
		s.expires = exp
	}
	s.arm(c, e.pingTicks)
	return nil
}

// appendHead builds the response head and the retry field in dst (the
// connection's scratch buffer). A cross-origin request gets its Origin
// back in Access-Control-Allow-Origin (the admitter has allowed it): an
// EventSource is a CORS request, and without the header the page cannot
// read the stream. Credentials (the token cookie) are not allowed across
// origins: a cross-origin page passes the token in ?token=.
func (e *endpoint) appendHead(dst []byte, origin string) []byte {
	h := e.hdr[:0]
	if origin != "" {
		h = append(h, [2]string{"Access-Control-Allow-Origin", origin}, [2]string{"Vary", "Origin"})
	}
	dst = codec.AppendSSEResponseHead(dst, h...)
	clear(e.hdr[:])
	span := e.cfg.MaxRetry - e.cfg.MinRetry
	retry := e.cfg.MinRetry + time.Duration(rand.Int64N(int64(span)+1))
	dst = codec.AppendSSERetry(dst, int(retry/time.Millisecond))
	return append(dst, '\n')
}

// refusal maps a session error onto the HTTP answer that ends an
// EventSource's attempts.
func refusal(perr *codec.ProtoError) *codec.HTTPError {
	switch perr.Code {
	case codec.CodeForbidden:
		return &codec.HTTPError{Status: 403, Reason: perr.Message}
	case codec.CodeInternal:
		return &codec.HTTPError{Status: 503, Reason: perr.Message}
	}
	return &codec.HTTPError{Status: 400, Reason: perr.Message}
}

// Feed implements conn.Proto: an SSE client has nothing to say after its
// request, so whatever it sends is discarded.
func (s *stream) Feed(_ *conn.Conn, p []byte) int { return len(p) }

// Timer implements conn.Proto: token expiry (close 4002), else the
// heartbeat comment. A write that fails or passes the outbound cap ends a
// dead or stuck client's stream.
func (s *stream) Timer(c *conn.Conn) {
	if s.expires != 0 && c.Loop().Now() >= s.expires {
		s.sess.Expired(s.ep.env, c)
		return
	}
	c.Loop().Metrics().PingsSent.Add(1)
	buf := codec.AppendSSEComment(c.Scratch(), "ping")
	c.SetScratch(buf)
	if c.Write(buf) {
		s.arm(c, s.ep.pingTicks)
	}
}

// arm arms the timer for the given number of ticks, or for the tick the
// credentials expire in if that comes first.
func (s *stream) arm(c *conn.Conn, ticks uint64) {
	if s.expires != 0 && s.expires <= c.Loop().Now()+ticks {
		c.ArmAt(s.expires)
		return
	}
	c.Arm(ticks)
}

// Send implements conn.Proto: one v1 message as one event of the default
// type ("message"), its JSON as the data.
func (s *stream) Send(c *conn.Conn, p []byte) bool {
	buf := codec.AppendSSEEvent(c.Scratch(), nil, "", p)
	c.SetScratch(buf)
	return c.Write(buf)
}

// Close implements conn.Proto: the close event with code and reason,
// queued behind whatever the client has not read yet, then the end of the
// response. The write side is shut down at once when nothing is queued;
// either way the connection is dropped after the close timeout unless the
// client closes first, as an EventSource does when its stream ends.
func (s *stream) Close(c *conn.Conn, code codec.StatusCode, reason string) {
	if c.State() != conn.StateOpen {
		return
	}
	c.SetState(conn.StateClosing) // before writing: nothing may follow the close event
	buf := codec.AppendSSEClose(c.Scratch(), code, reason)
	c.SetScratch(buf)
	if !c.WriteFinal(buf) {
		return
	}
	c.ShutdownWrite()
	c.Arm(c.Loop().CloseTicks())
}

// SlowConsumer implements conn.Proto: close 4000 ("slow consumer"),
// queued behind the backlog.
func (s *stream) SlowConsumer(c *conn.Conn) {
	s.Close(c, codec.StatusSlowConsumer, "slow consumer")
}

// Closed implements conn.Proto: the session's subscriptions go.
func (s *stream) Closed(*conn.Conn) { s.sess.Closed(s.ep.env) }
