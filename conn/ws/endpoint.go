package ws

import (
	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics"
)

// Admit decides whether a valid upgrade request may proceed, before the 101
// is written: it returns the client's identity (nil: anonymous) and the
// subprotocol to echo, or the HTTP rejection. It runs on the loop goroutine
// and must not block. It is session.Admit, which SSE shares.
type Admit = session.Admit

// loopEndpoint is one event loop's instance of a WebSocket endpoint. It
// implements conn.Endpoint.
type loopEndpoint struct {
	// Immutable after the route built it.
	cfg                  Config
	pingTicks, pongTicks uint64
	h                    Handler
	beat                 Heartbeater // h, when its protocol has its own heartbeat; else nil
	admit                Admit
	format               *topics.Format
	alloc                func() conn.Proto // a new per-connection struct embedding Conn
	conn                 func(conn.Proto) *Conn

	// Owned by the loop goroutine: scratch for large frames, and the
	// decoder and output buffer for compressed client messages.
	hdr        [14]byte
	iov2       [2][]byte
	infl       *codec.Inflater // made on the first compressed message
	inflateBuf []byte
}

// inflater returns the loop's decoder for compressed client messages.
func (e *loopEndpoint) inflater() *codec.Inflater {
	if e.infl == nil {
		e.infl = codec.NewInflater()
	}
	return e.infl
}

func newLoopEndpoint(l *conn.Loop, cfg Config, admit Admit, h Handler) *loopEndpoint {
	cfg = cfg.WithDefaults()
	beat, _ := h.(Heartbeater)
	return &loopEndpoint{
		cfg:       cfg,
		pingTicks: l.Ticks(cfg.PingInterval),
		pongTicks: l.Ticks(cfg.PongTimeout),
		h:         h,
		beat:      beat,
		admit:     admit,
		format:    PushFormat,
	}
}

// EndpointSpec describes a WebSocket endpoint whose connections run a
// protocol of another package (Socket.IO in conn/sio) on top of this
// package's frames, heartbeat and close handshake.
type EndpointSpec struct {
	Config  Config
	Admit   Admit   // runs before the 101; nil admits anyone anonymously
	Handler Handler // may also implement Heartbeater
	// Format is the wire format of the pushes the connections take; nil
	// means they take none.
	Format *topics.Format
	// New returns a new per-connection struct, the connection's
	// conn.Proto, which embeds a Conn; Conn returns that embedded Conn.
	New  func() conn.Proto
	Conn func(conn.Proto) *Conn
}

// NewEndpoint returns one event loop's instance of the endpoint s
// describes, for a conn.Route's New (or an endpoint that hands its
// WebSocket upgrades on to it). Any goroutine; the endpoint then belongs to
// l's goroutine.
func NewEndpoint(l *conn.Loop, s EndpointSpec) conn.Endpoint {
	e := newLoopEndpoint(l, s.Config, s.Admit, s.Handler)
	e.format, e.alloc, e.conn = s.Format, s.New, s.Conn
	return e
}

// Serve implements conn.Endpoint: the upgrade's validity (RFC 6455 §4.2.1,
// codec.CheckUpgrade), admission (Origin,
// token), then the 101 (§4.2.2) and the handler's Open. Any other request
// for the path (a plain GET, a POST) gets the upgrade's rejection.
func (e *loopEndpoint) Serve(c *conn.Conn, req *codec.HTTPRequest, _ []byte) *codec.HTTPError {
	if err := codec.CheckUpgrade(req); err != nil {
		he, ok := err.(*codec.HandshakeError)
		if !ok {
			he = &codec.HandshakeError{Status: 400, Reason: "bad request"}
		}
		return he
	}
	var id session.Identity
	proto := ""
	if e.admit != nil {
		var herr *codec.HandshakeError
		if id, proto, herr = e.admit(req); herr != nil {
			return herr
		}
	}
	var ext string
	var wbits uint8
	if e.cfg.Compression && req.WebSocketExtensions != "" {
		if neg := codec.NegotiateDeflate([]string{req.WebSocketExtensions}); neg.Accepted {
			ext, wbits = neg.Response, uint8(neg.ServerMaxWindowBits)
		}
	}
	p := e.alloc()
	w := e.conn(p)
	w.ep = e
	w.wbits = wbits
	w.lastActive = uint32(c.Loop().Now())
	// Count and open the connection before writing the 101, so a client
	// that has read its 101 is already counted; if the write fails, Closed
	// undoes both.
	c.Accepted(p)
	buf := codec.AppendUpgradeResponseExt(c.Scratch(), req.WebSocketKey, proto, ext)
	c.SetScratch(buf)
	if !c.Write(buf) {
		return nil
	}
	if wbits == 15 && e.format == PushFormat {
		// A push is compressed once with a 32 KiB window; a client that
		// asked for a smaller one gets plain pushes (codec.DeflateNegotiation.Compressible).
		c.SetFormat(DeflateFormat)
	} else {
		c.SetFormat(e.format)
	}
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

func (h *v1Handler) Open(c *conn.Conn, req *codec.HTTPRequest, id session.Identity) {
	v := c.Proto().(*v1Conn)
	if exp := v.sess.Start(h.env, c, id, req.RawQuery); exp != 0 {
		v.Rearm(c)
	}
}

func (h *v1Handler) Message(c *conn.Conn, op OpCode, p []byte) {
	c.Proto().(*v1Conn).sess.Command(h.env, c, op == OpText, p)
}

func (h *v1Handler) Ping(c *conn.Conn) bool { return c.Proto().(*v1Conn).sess.Allow(h.env, c) }

func (h *v1Handler) Expiry(c *conn.Conn) uint64 { return c.Proto().(*v1Conn).sess.ExpiryTick(h.env) }

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

func (echoHandler) Open(*conn.Conn, *codec.HTTPRequest, session.Identity) {}

func (echoHandler) Message(c *conn.Conn, op OpCode, p []byte) {
	c.Proto().(*Conn).WriteMessage(c, op, p)
}

func (echoHandler) Ping(*conn.Conn) bool { return true }

func (echoHandler) Expiry(*conn.Conn) uint64 { return 0 }

func (echoHandler) Expired(*conn.Conn) {}

func (echoHandler) Closed(*conn.Conn) {}
