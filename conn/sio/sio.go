// Package sio serves Socket.IO v4 clients (Engine.IO protocol 4 carrying
// Socket.IO protocol 5) at one path, /socket.io/ by default: the Engine.IO
// handshake and heartbeat, the main namespace joined with a CONNECT that
// may carry {"token"}, and pushd's events (subscribe, unsubscribe, publish
// with acks; pushes as message events), mapped onto the transport-neutral
// v1 session (conn/session). docs/protocol.md ("Socket.IO") is the client's
// view.
//
// The WebSocket transport runs on conn/ws: a connection is one allocation
// embedding the WebSocket state, the session and a few bytes of Socket.IO
// state, its pushes are one shared text frame per message (WSFormat), and
// Engine.IO's ping replaces the WebSocket ping (ws.Heartbeater), so one
// timer serves both.
//
// Everything here runs on the connection's event-loop goroutine unless a
// doc comment says otherwise.
package sio

import (
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/topics"
)

// DefaultPath is where socket.io-client looks by default (its path option,
// "/socket.io" with the trailing slash it adds).
const DefaultPath = "/socket.io/"

// Config holds the Engine.IO timers and limits. Zero fields take the
// defaults listed beside them (see WithDefaults), which are the reference
// server's except MaxPayload.
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
	// it), announced in the handshake as maxPayload. Default 64 KiB (the
	// reference's 1 MB is far more than pushd's events need).
	MaxPayload int
	// ConnectTimeout bounds the time from the Engine.IO handshake to the
	// CONNECT that joins the main namespace; past it the connection is
	// closed (1008 "connect timeout"). Default 45s, the reference's.
	ConnectTimeout time.Duration
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
	return c
}

// Admission authenticates Socket.IO clients in two steps, because
// socket.io-client sends its credentials in the CONNECT packet, after the
// transport is open. Either function may be nil. Both run on a loop
// goroutine and must not block.
type Admission struct {
	// Request checks the request that opens the engine (the WebSocket
	// upgrade): its Origin (403), and the token if the request carries one
	// (401 for a bad one). It returns the identity that token proves, nil
	// when it carries none. nil admits every request anonymously.
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

// Route returns the endpoint-table entry of Socket.IO at path (normally
// DefaultPath): every connection runs a session.Session with the loop's
// session.Env, admitted by adm, and counts into m. Any goroutine.
func Route(path string, cfg Config, adm Admission, scfg session.Config, m *session.Metrics) conn.Route {
	cfg = cfg.WithDefaults()
	scfg.PingInterval = cfg.PingInterval
	wcfg := ws.Config{
		MaxFrameSize:   cfg.MaxPayload,
		MaxMessageSize: cfg.MaxPayload,
		PingInterval:   cfg.PingInterval,
		PongTimeout:    cfg.PingTimeout,
	}
	return conn.Route{Path: path, New: func(l *conn.Loop) conn.Endpoint {
		h := &handler{
			cfg:          cfg,
			adm:          adm,
			env:          session.NewEnv(scfg, l.Shard(), m, l),
			metrics:      m,
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
		return &endpoint{ws: ws.NewEndpoint(l, ws.EndpointSpec{
			Config:  wcfg,
			Admit:   admit,
			Handler: h,
			Format:  WSFormat,
			New:     func() conn.Proto { return new(wsConn) },
			Conn:    func(p conn.Proto) *ws.Conn { return &p.(*wsConn).Conn },
		})}
	}}
}

// endpoint is one event loop's Socket.IO endpoint. It implements
// conn.Endpoint.
type endpoint struct {
	ws conn.Endpoint // the WebSocket transport
}

// Serve implements conn.Endpoint: it checks the Engine.IO query (EIO=4,
// transport=websocket, no sid) and hands the upgrade to the WebSocket
// transport. Refusals carry Engine.IO's error bodies (as text: a WebSocket
// client reads only the status).
func (e *endpoint) Serve(c *conn.Conn, req *codec.HTTPRequest, body []byte) *codec.HTTPError {
	if v, _ := codec.QueryValue(req.RawQuery, "EIO"); v != "4" {
		return &codec.HandshakeError{Status: 400, Reason: codec.EIOErrUnsupportedProtocolVersion}
	}
	switch v, _ := codec.QueryValue(req.RawQuery, "transport"); v {
	case "websocket":
	case "polling": // a WebSocket upgrade that says it is not one
		return &codec.HandshakeError{Status: 400, Reason: codec.EIOErrBadRequest}
	default:
		return &codec.HandshakeError{Status: 400, Reason: codec.EIOErrUnknownTransport}
	}
	if _, ok := codec.QueryValue(req.RawQuery, "sid"); ok {
		// An upgrade of a polling session; this node serves WebSocket
		// sessions only, so no sid is known.
		return &codec.HandshakeError{Status: 400, Reason: codec.EIOErrUnknownSID}
	}
	return e.ws.Serve(c, req, body)
}
