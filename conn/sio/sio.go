// Package sio serves Socket.IO v4 clients (Engine.IO protocol 4 carrying
// Socket.IO protocol 5) at one path, /socket.io/ by default: the Engine.IO
// handshake and heartbeat over WebSocket and over HTTP long-polling, the
// upgrade from polling to WebSocket, the main namespace joined with a
// CONNECT that may carry {"token"}, and pushd's events (subscribe,
// unsubscribe, publish with acks; pushes as message events), mapped onto
// the transport-neutral v1 session (conn/session). docs/protocol.md
// ("Socket.IO") is the client's view.
//
// The WebSocket transport runs on conn/ws: a connection is one allocation
// embedding the WebSocket state, the session and a few bytes of Socket.IO
// state, its pushes are one shared text frame per message (WSFormat), and
// Engine.IO's ping replaces the WebSocket ping (ws.Heartbeater), so one
// timer serves both (websocket.go).
//
// A polling session (engine.go) outlives the HTTP requests that carry it:
// it belongs to the event loop that answered its handshake, with a timer
// on that loop's endpoint wheel, a bounded queue of packets for the next
// poll, and the poll it holds until there are some (conn.Conn.Hold). A
// poll or POST that reaches another loop of the node is handed to the
// owner with Execute; one that reaches another node is forwarded through
// the broker's mailboxes, one per polling session (relay.go), so no load
// balancer needs sticky sessions. An upgrade moves the session onto the
// WebSocket connection (upgrade.go).
//
// Everything here runs on an event-loop goroutine unless a doc comment
// says otherwise.
package sio

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/wheel"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker"
)

// DefaultPath is where socket.io-client looks by default (its path option,
// "/socket.io" with the trailing slash it adds).
const DefaultPath = "/socket.io/"

// Config holds the Engine.IO timers and limits, and the wiring of
// polling sessions between nodes. Zero fields take the defaults listed
// beside them (see WithDefaults), which are the reference server's except
// MaxPayload.
type Config struct {
	// PingInterval is how often the server sends Engine.IO's ping ("2"),
	// announced in the handshake. Default 25s.
	PingInterval time.Duration
	// PingTimeout is how long the server waits for anything from the client
	// after a ping before it closes the connection (WebSocket close 4001),
	// announced in the handshake; the client waits PingInterval +
	// PingTimeout for a ping before it gives the server up. Default 20s.
	PingTimeout time.Duration
	// MaxPayload bounds one Engine.IO packet on WebSocket (close 1009 past
	// it) and one POST's payload over polling (413 past it), announced in
	// the handshake as maxPayload. Default 64 KiB (the reference's 1 MB is
	// far more than pushd's events need).
	MaxPayload int
	// ConnectTimeout bounds the time from the Engine.IO handshake to the
	// CONNECT that joins the main namespace; past it the connection is
	// closed (1008 "connect timeout"). Default 45s, the reference's.
	ConnectTimeout time.Duration
	// UpgradeTimeout bounds an upgrade from polling to WebSocket, from the
	// WebSocket's handshake to the client's upgrade packet; past it the
	// WebSocket is closed and the session stays on polling. Default 10s,
	// the reference's.
	UpgradeTimeout time.Duration

	// Relay carries the polling requests that reach a node other than
	// their session's owner to the owner: each polling session opens a
	// mailbox named by its sid. nil: such a request gets 400 "Session ID
	// unknown", as it would from the reference server without sticky
	// sessions. Set by the wiring, not a flag.
	Relay broker.Mailboxes
	// RelayTimeout bounds a relayed request, from the forward to the
	// owner's reply; a poll may wait up to a ping interval for packets.
	// Default PingInterval + PingTimeout.
	RelayTimeout time.Duration
	// Metrics receives the polling and relay counters; nil: counted
	// nowhere.
	Metrics *Metrics
	// Recovery is how long the state of a session that ended without the
	// client leaving (a lost connection, a pong that did not come, a
	// drain, an expired token) is kept for socket.io-client's connection
	// state recovery: a CONNECT with its pid and offset within that time
	// gets its subscriptions back, and the missed pushes of its durable
	// topics (recover.go). 0, the default, turns recovery off: the CONNECT
	// answer carries no pid.
	Recovery time.Duration
}

// WithDefaults returns c with every zero field set to its default. Pure.
func (c Config) WithDefaults() Config {
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 20 * time.Second
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 64 << 10
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 45 * time.Second
	}
	if c.UpgradeTimeout <= 0 {
		c.UpgradeTimeout = 10 * time.Second
	}
	if c.RelayTimeout <= 0 {
		c.RelayTimeout = c.PingInterval + c.PingTimeout
	}
	if c.Metrics == nil {
		c.Metrics = new(Metrics)
	}
	return c
}

// Metrics counts what the Socket.IO endpoints of a node do beyond the
// sessions' own counters. Fields are updated atomically; read them with
// Load from any goroutine.
type Metrics struct {
	PollingSessions atomic.Int64 // polling sessions open now (upgraded ones leave)
	Handshakes      atomic.Int64 // polling sessions opened
	Upgrades        atomic.Int64 // polling sessions moved onto a WebSocket
	UpgradesMoved   atomic.Int64 // of which moved to another event loop first
	UpgradesRefused atomic.Int64 // upgrades refused: the session is on another node, or already upgrading
	Relayed         atomic.Int64 // requests handed to the session's loop on this node
	Forwarded       atomic.Int64 // requests forwarded to another node's session
	ForwardFailed   atomic.Int64 // forwarded requests that got no answer (no such session anywhere, timeout)
	RelayServed     atomic.Int64 // requests from other nodes served here
	Kept            atomic.Int64 // session states kept for recovery now
	Recovered       atomic.Int64 // CONNECTs that recovered their session (socket.recovered true)
	NotRecovered    atomic.Int64 // CONNECTs that asked to recover and started anew
}

// Admission authenticates Socket.IO clients in two steps, because
// socket.io-client sends its credentials in the CONNECT packet, after the
// transport is open. Either function may be nil. Both run on a loop
// goroutine and must not block.
type Admission struct {
	// Request checks the request that opens the engine (the WebSocket
	// upgrade, or the polling handshake; a CORS preflight): its Origin
	// (403), and the token if the request carries one (401 for a bad
	// one). It returns the identity that token proves, nil when it
	// carries none. nil admits every request anonymously.
	Request func(req *codec.HTTPRequest) (session.Identity, *codec.HandshakeError)
	// Token checks the token of a CONNECT's auth payload, "" when the
	// payload has none and the request carried none either. It returns the
	// client's identity (nil: anonymous), or an error whose text may be
	// sent to the client (it must not contain the token). nil admits every
	// CONNECT anonymously.
	Token func(token string) (session.Identity, error)
}

// WSFormat is a push as one WebSocket text frame holding one Engine.IO
// message packet with the Socket.IO message event,
// 42["message",{"topic":…,"data":…}] (codec.AppendSIOPush), encoded once
// per message and shared by every Socket.IO WebSocket subscriber on every
// loop.
var WSFormat = topics.NewFormat("sio-ws", func(dst []byte, m *topics.Message) ([]byte, int) {
	at := len(dst)
	dst = codec.AppendFrameRoom(dst)
	dst = codec.AppendSIOPush(dst, m.Topic(), m.Data(), m.Offset(), m.Epoch())
	return dst, codec.FinishFrame(dst, at, ws.OpText)
})

// TextFormat is a push as the bare Engine.IO packet, the message event
// without a frame: what a polling session queues for its next poll,
// encoded once per message and shared by every polling subscriber.
var TextFormat = topics.NewFormat("sio-text", func(dst []byte, m *topics.Message) ([]byte, int) {
	at := len(dst)
	return codec.AppendSIOPush(dst, m.Topic(), m.Data(), m.Offset(), m.Epoch()), at
})

// upgrades is what the handshake over polling offers.
var upgrades = []string{"websocket"}

// shared is what the Socket.IO endpoints of every loop of a node share:
// the registry of polling sessions by sid, which is how a request that
// reaches another loop finds its session's owner. Safe for concurrent
// use.
type shared struct {
	cfg      Config
	relay    broker.Mailboxes
	metrics  *Metrics
	sessions sync.Map // sid → *engine; the engine is touched only by its own loop
	kept     sync.Map // pid → *kept; touched only by the loop that kept it
}

// Route returns the endpoint-table entry of Socket.IO at path (normally
// DefaultPath): every connection and polling session runs a
// session.Session with the loop's session.Env, admitted by adm, and counts
// into m. Any goroutine.
func Route(path string, cfg Config, adm Admission, scfg session.Config, m *session.Metrics) conn.Route {
	cfg = cfg.WithDefaults()
	scfg.PingInterval = cfg.PingInterval
	wcfg := ws.Config{
		MaxFrameSize:   cfg.MaxPayload,
		MaxMessageSize: cfg.MaxPayload,
		PingInterval:   cfg.PingInterval,
		PongTimeout:    cfg.PingTimeout,
	}
	sh := &shared{cfg: cfg, relay: cfg.Relay, metrics: cfg.Metrics}
	return conn.Route{Path: path, MaxBody: int64(cfg.MaxPayload), New: func(l *conn.Loop) conn.Endpoint {
		e := &endpoint{}
		h := &handler{
			cfg:          cfg,
			adm:          adm,
			env:          session.NewEnv(scfg, l.Shard(), m, l),
			metrics:      m,
			loop:         l,
			ep:           e,
			connectTicks: l.Ticks(cfg.ConnectTimeout),
			buf:          make([]byte, 0, 256),
		}
		var admit ws.Admit
		if adm.Request != nil {
			admit = func(req *codec.HTTPRequest) (session.Identity, string, *codec.HandshakeError) {
				id, herr := adm.Request(req)
				return id, "", herr
			}
		}
		*e = endpoint{
			shared:       sh,
			h:            h,
			loop:         l,
			pingTicks:    l.Ticks(cfg.PingInterval),
			pongTicks:    l.Ticks(cfg.PingTimeout),
			closeTicks:   l.CloseTicks(),
			upgradeTicks: l.Ticks(cfg.UpgradeTimeout),
			keepTicks:    l.Ticks(cfg.Recovery),
			maxOut:       l.Config().MaxOutbound,
			wheel:        wheel.New(256, engineOfTimer, (*engine).fire),
		}
		e.ws = ws.NewEndpoint(l, ws.EndpointSpec{
			Config:  wcfg,
			Admit:   admit,
			Handler: wsHandler{h},
			Format:  WSFormat,
			New:     func() conn.Proto { return new(wsConn) },
			Conn:    func(p conn.Proto) *ws.Conn { return &p.(*wsConn).Conn },
		})
		e.up = ws.NewEndpoint(l, ws.EndpointSpec{
			Config:  wcfg,
			Admit:   admit,
			Handler: upHandler{e},
			Format:  WSFormat,
			New:     func() conn.Proto { return new(upConn) },
			Conn:    func(p conn.Proto) *ws.Conn { return &p.(*upConn).Conn },
		})
		return e
	}}
}

// endpoint is one event loop's Socket.IO endpoint, for both transports,
// and the owner of the loop's polling sessions. It implements
// conn.Endpoint, and conn.Ticker, conn.Drainer and conn.Flusher for the
// polling sessions.
type endpoint struct {
	// Immutable after Route's New.
	shared *shared
	h      *handler
	loop   *conn.Loop
	ws     conn.Endpoint // transport=websocket without a sid
	up     conn.Endpoint // transport=websocket with a sid: an upgrade from polling
	maxOut int           // queued bytes a polling session may hold (conn.Config.MaxOutbound)
	// Timers in wheel ticks.
	pingTicks, pongTicks, closeTicks uint64
	upgradeTicks, keepTicks          uint64

	// Owned by the loop goroutine.
	wheel   *wheel.Wheel[engine] // the polling sessions' timers
	engines []*engine            // this loop's polling sessions
	ready   []*engine            // sessions with a poll to answer at the next flush
	upFor   *engine              // the session of the upgrade being served (Serve → upHandler.Open)
	kept    []*kept              // states kept for recovery on this loop, oldest first
	payload []byte               // where a poll's answer is built
	hdr     [6][2]string         // response header scratch
}

// Serve implements conn.Endpoint: it checks the Engine.IO query and hands
// the request to its transport. A WebSocket request gets Engine.IO's error
// bodies on a refusal, as text (a WebSocket client reads only the status);
// a polling request gets them as JSON, and the connection stays open.
func (e *endpoint) Serve(c *conn.Conn, req *codec.HTTPRequest, body []byte) *codec.HTTPError {
	if v, _ := codec.QueryValue(req.RawQuery, "EIO"); v != "4" {
		return e.refuse(c, req, codec.EIOCodeUnsupportedProtocolVersion)
	}
	sid, hasSID := codec.QueryValue(req.RawQuery, "sid")
	switch v, _ := codec.QueryValue(req.RawQuery, "transport"); v {
	case "websocket":
		if hasSID {
			return e.upgrade(c, req, body, sid)
		}
		return e.ws.Serve(c, req, body)
	case "polling":
		if req.UpgradeWebSocket { // a WebSocket upgrade that says it is not one
			return e.refuse(c, req, codec.EIOCodeBadRequest)
		}
		e.polling(c, req, body, sid, hasSID)
		e.flushReady()
		return nil
	}
	return e.refuse(c, req, codec.EIOCodeUnknownTransport)
}

// refuse answers a request the Engine.IO query rules out: a WebSocket
// upgrade with the error body as the rejection (the connection closes), a
// polling request with the JSON error (it stays open).
func (e *endpoint) refuse(c *conn.Conn, req *codec.HTTPRequest, code int) *codec.HTTPError {
	status, body := codec.EIOErrorBody(code)
	if req.UpgradeWebSocket {
		return &codec.HandshakeError{Status: status, Reason: body}
	}
	e.respondError(c, req.Origin, code)
	return nil
}

// polling serves a request of the polling transport: a CORS preflight, the
// handshake (a GET without a sid), or a poll or POST for a session, which
// goes to the session wherever it is (route).
func (e *endpoint) polling(c *conn.Conn, req *codec.HTTPRequest, body []byte, sid string, hasSID bool) {
	origin := req.Origin
	switch {
	case req.Method == "OPTIONS":
		e.preflight(c, req)
	case !hasSID && req.Method == "GET":
		e.handshake(c, req)
	case !hasSID:
		e.respondError(c, origin, codec.EIOCodeBadHandshakeMethod)
	case req.Method == "GET":
		e.route(c, codec.EIORelayPoll, sid, origin, nil)
	case req.Method != "POST":
		e.respondError(c, origin, codec.EIOCodeBadRequest)
	case strings.HasPrefix(req.ContentType, "application/octet-stream"):
		// Binary payloads are protocol 3's; protocol 4 sends text (the
		// reference server refuses them the same way).
		e.respondError(c, origin, codec.EIOCodeBadRequest)
	default:
		e.route(c, codec.EIORelayPost, sid, origin, body)
	}
}

// handshake opens a polling session (engine.io-protocol "Handshake"): the
// request is admitted (Origin, and a token if it carries one), the session
// is registered on this loop, in the node's registry and, with a relay, in
// a mailbox named by its sid, and the open packet answers the request.
func (e *endpoint) handshake(c *conn.Conn, req *codec.HTTPRequest) {
	var id session.Identity
	if e.h.adm.Request != nil {
		var herr *codec.HandshakeError
		if id, herr = e.h.adm.Request(req); herr != nil {
			c.Respond(herr.Status, "text/plain; charset=utf-8", []byte(herr.Reason+"\n"), append(e.headers(req.Origin), herr.Header...)...)
			return
		}
	}
	now := e.loop.Now()
	eng := &engine{ep: e, sid: secretID(), lastPing: now, idx: int32(len(e.engines))}
	e.engines = append(e.engines, eng)
	eng.sock.aux = id
	eng.sock.deadline = now + e.h.connectTicks
	// Fill the command budget, which the packets before the CONNECT draw
	// on too; the CONNECT begins the session again with its identity.
	eng.sock.sess.Begin(e.h.env, eng, nil)
	e.shared.sessions.Store(eng.sid, eng)
	if e.shared.relay != nil {
		// Without a mailbox the session still works through this node
		// (and any load balancer that keeps a client on it).
		if mbox, err := e.shared.relay.OpenMailbox(eng.sid, eng.mailHandler()); err == nil {
			eng.mbox = mbox
		}
	}
	eng.arm()
	m := e.shared.metrics
	m.Handshakes.Add(1)
	m.PollingSessions.Add(1)
	cfg := e.h.cfg
	b := codec.AppendEIOOpen(e.h.buf[:0], eng.sid, upgrades,
		int(cfg.PingInterval/time.Millisecond), int(cfg.PingTimeout/time.Millisecond), cfg.MaxPayload)
	e.h.buf = b[:0]
	e.respondPayload(c, req.Origin, b)
}

// preflight answers a CORS preflight (Fetch standard §3.2.2): a page of an
// admitted Origin may send GET and POST with the headers it asked for
// (socket.io-client's extraHeaders); a refused Origin gets 403.
// socket.io-client's requests without extraHeaders are "simple" and need
// no preflight, only Access-Control-Allow-Origin on the answer.
func (e *endpoint) preflight(c *conn.Conn, req *codec.HTTPRequest) {
	if e.h.adm.Request != nil {
		if _, herr := e.h.adm.Request(req); herr != nil {
			c.Respond(herr.Status, "text/plain; charset=utf-8", []byte(herr.Reason+"\n"), e.headers(req.Origin)...)
			return
		}
	}
	h := append(e.headers(req.Origin), [2]string{"Access-Control-Allow-Methods", "GET, POST"},
		[2]string{"Access-Control-Max-Age", "600"})
	if req.AccessControlRequestHeaders != "" {
		h = append(h, [2]string{"Access-Control-Allow-Headers", req.AccessControlRequestHeaders})
	}
	c.Respond(200, "", nil, h...)
}

// headers returns the header fields of every polling answer, built in the
// endpoint's scratch: no caching (the reference's), and for a cross-origin
// request its Origin back in Access-Control-Allow-Origin, so the page may
// read the answer. Credentials are not allowed across origins (no
// Access-Control-Allow-Credentials), as for SSE: a page of another origin
// passes its token in the CONNECT's auth payload, which is what
// socket.io-client does; leave withCredentials false.
func (e *endpoint) headers(origin string) [][2]string {
	h := append(e.hdr[:0], [2]string{"Cache-Control", "no-store"})
	if origin != "" {
		h = append(h, [2]string{"Access-Control-Allow-Origin", origin}, [2]string{"Vary", "Origin"})
	}
	return h
}

// respondPayload answers a poll (or the handshake) with an Engine.IO
// payload.
func (e *endpoint) respondPayload(c *conn.Conn, origin string, payload []byte) {
	c.Respond(200, "text/plain; charset=UTF-8", payload, e.headers(origin)...)
}

// okBody is the answer to a POST that was taken (text/html, as the
// reference sends it: text/plain made some browsers offer a download).
var okBody = []byte("ok")

// respondOK answers a POST that was taken.
func (e *endpoint) respondOK(c *conn.Conn, origin string) {
	c.Respond(200, "text/html", okBody, e.headers(origin)...)
}

// respondError answers a polling request with Engine.IO error code code:
// the reference server's status and JSON body.
func (e *endpoint) respondError(c *conn.Conn, origin string, code int) {
	status, body := codec.EIOErrorBody(code)
	c.Respond(status, "application/json", []byte(body), e.headers(origin)...)
}

// respondUnavailable answers a request whose session's owner could not be
// reached (a relay that failed or timed out): 503, after which
// socket.io-client opens a new session.
func (e *endpoint) respondUnavailable(c *conn.Conn, origin string) {
	c.Respond(503, "text/plain; charset=utf-8", []byte("session owner unavailable\n"), e.headers(origin)...)
}

// flushReady answers the polls of the sessions marked ready: after a drain
// of pushes (Flush), a timer (Advance), a request served, or a relayed one.
func (e *endpoint) flushReady() {
	for i := 0; i < len(e.ready); i++ {
		eng := e.ready[i]
		e.ready[i] = nil
		eng.flush() // may mark more sessions ready: the loop reads len again
	}
	e.ready = e.ready[:0]
}

// Flush implements conn.Flusher: pushes delivered to polling sessions go
// to their waiting polls.
func (e *endpoint) Flush() { e.flushReady() }

// Advance implements conn.Ticker: the polling sessions' timers, and the
// end of recovery states past their time.
func (e *endpoint) Advance(now uint64) {
	e.wheel.Advance(now)
	e.flushReady()
	e.expireKept(now)
}

// CloseAll implements conn.Drainer: every polling session of the loop ends
// with code (1001 when the server stops: Engine.IO's close packet, which
// socket.io-client reconnects after, to another node).
func (e *endpoint) CloseAll(code codec.StatusCode, reason string) {
	for _, eng := range append([]*engine(nil), e.engines...) {
		eng.Close(code, reason)
	}
	e.flushReady()
}

// removeEngine forgets a finished session.
func (e *endpoint) removeEngine(eng *engine) {
	if eng.idx < 0 {
		return
	}
	last := e.engines[len(e.engines)-1]
	e.engines[eng.idx] = last
	last.idx = eng.idx
	e.engines[len(e.engines)-1] = nil
	e.engines = e.engines[:len(e.engines)-1]
	eng.idx = -1
	e.shared.metrics.PollingSessions.Add(-1)
}
