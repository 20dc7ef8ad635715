package ws

import (
	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

// Admit decides whether a valid upgrade request may proceed, before the 101
// is written: it returns the client's identity (nil: anonymous) and the
// subprotocol to echo, or the HTTP rejection. It runs on the loop goroutine
// and must not block.
type Admit func(req *codec.Request) (session.Identity, string, *codec.HandshakeError)

// loopEndpoint is one event loop's instance of a WebSocket endpoint. It
// implements conn.Endpoint.
type loopEndpoint struct {
	// Immutable after the route built it.
	cfg                  Config
	pingTicks, pongTicks uint64
	h                    Handler
	admit                Admit
	alloc                func() conn.Proto // a new per-connection struct embedding Conn
	conn                 func(conn.Proto) *Conn

	// Owned by the loop goroutine: scratch for large frames.
	hdr  [14]byte
	iov2 [2][]byte
}

func newLoopEndpoint(l *conn.Loop, cfg Config, admit Admit, h Handler) *loopEndpoint {
	cfg = cfg.WithDefaults()
	return &loopEndpoint{
		cfg:       cfg,
		pingTicks: l.Ticks(cfg.PingInterval),
		pongTicks: l.Ticks(cfg.PongTimeout),
		h:         h,
		admit:     admit,
	}
}

// Accept implements conn.Endpoint: admission (Origin, token), then the 101
// (RFC 6455 §4.2.2) and the handler's Open.
func (e *loopEndpoint) Accept(c *conn.Conn, req *codec.Request) *codec.HandshakeError {
	var id session.Identity
	proto := ""
	if e.admit != nil {
		var herr *codec.HandshakeError
		if id, proto, herr = e.admit(req); herr != nil {
			return herr
		}
	}
	p := e.alloc()
	w := e.conn(p)
	w.ep = e
	w.lastActive = uint32(c.Loop().Now())
	// Count and open the connection before writing the 101, so a client
	// that has read its 101 is already counted; if the write fails, Closed
	// undoes both.
	c.Accepted(p)
	buf := codec.AppendUpgradeResponse(c.Scratch(), req.Key, proto)
	c.SetScratch(buf)
	if !c.Write(buf) {
		return nil
	}
	c.SetFormat(PushFormat)
	w.armOpen(c, e.pingTicks)
	e.h.Open(c, req, id)
	return nil
}

// v1Conn is one connection of the v1 protocol endpoint: the WebSocket state
// and the session in one allocation.
type v1Conn struct {
	Conn
	sess session.Session
}

// v1Handler runs the v1 session on an event loop's WebSocket connections.
type v1Handler struct{ env *session.Env }

// V1Route returns the endpoint-table entry of the pushd protocol v1 over
// WebSocket at path: admit (may be nil: anyone) runs before the 101, and
// every connection runs a session.Session with the loop's session.Env.
// Sessions count into m. Any goroutine.
func V1Route(path string, cfg Config, admit Admit, scfg session.Config, m *session.Metrics) conn.Route {
	cfg = cfg.WithDefaults()
	scfg.PingInterval = cfg.PingInterval
	return conn.Route{Path: path, New: func(l *conn.Loop) conn.Endpoint {
		h := &v1Handler{env: session.NewEnv(scfg, l.Shard(), m, l)}
		e := newLoopEndpoint(l, cfg, admit, h)
		e.alloc = func() conn.Proto { return new(v1Conn) }
		e.conn = func(p conn.Proto) *Conn { return &p.(*v1Conn).Conn }
		return e
	}}
}

func (h *v1Handler) Open(c *conn.Conn, req *codec.Request, id session.Identity) {
	v := c.Proto().(*v1Conn)
	if exp := v.sess.Start(h.env, c, id, req.RawQuery); exp != 0 {
		v.SetExpiry(c, exp)
	}
}

func (h *v1Handler) Message(c *conn.Conn, op OpCode, p []byte) {
	c.Proto().(*v1Conn).sess.Command(h.env, c, op == OpText, p)
}

func (h *v1Handler) Ping(c *conn.Conn) bool { return c.Proto().(*v1Conn).sess.Allow(h.env, c) }

func (h *v1Handler) Expired(c *conn.Conn) { c.Proto().(*v1Conn).sess.Expired(h.env, c) }

func (h *v1Handler) Closed(c *conn.Conn) { c.Proto().(*v1Conn).sess.Closed(h.env) }

// echoHandler sends every complete data message back with its opcode. It
// serves RFC 6455 conformance suites and is off unless configured.
type echoHandler struct{}

// EchoRoute returns the endpoint-table entry of an echo endpoint at path:
// every complete data message comes back with its opcode. Any goroutine.
func EchoRoute(path string, cfg Config) conn.Route {
	return conn.Route{Path: path, New: func(l *conn.Loop) conn.Endpoint {
		e := newLoopEndpoint(l, cfg, nil, echoHandler{})
		e.alloc = func() conn.Proto { return new(Conn) }
		e.conn = func(p conn.Proto) *Conn { return p.(*Conn) }
		return e
	}}
}

func (echoHandler) Open(*conn.Conn, *codec.Request, session.Identity) {}

func (echoHandler) Message(c *conn.Conn, op OpCode, p []byte) {
	c.Proto().(*Conn).WriteMessage(c, op, p)
}

func (echoHandler) Ping(*conn.Conn) bool { return true }

func (echoHandler) Expired(*conn.Conn) {}

func (echoHandler) Closed(*conn.Conn) {}
