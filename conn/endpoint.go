package conn

import "github.com/pushd/pushd/codec"

// Endpoint serves the requests for one path: the v1 WebSocket protocol,
// the echo endpoint, later SSE, Socket.IO or static assets. Each event loop
// has its own instance (Route.New), so an Endpoint may keep per-loop state
// without locks. Its methods run on the loop goroutine.
type Endpoint interface {
	// Accept takes a connection whose request head for the endpoint's path
	// has arrived. To refuse, it returns the HTTP error to answer with,
	// and the connection is closed after the answer. To take it, it calls
	// c.Accepted with the Proto that runs the connection from then on,
	// writes its own answer (a 101, response headers, …) and returns nil.
	Accept(c *Conn, req *codec.Request) *codec.HandshakeError
}

// Route is one entry of the endpoint table: requests for Path go to the
// endpoint New builds for each event loop.
type Route struct {
	Path string
	New  func(l *Loop) Endpoint
}

// route returns the endpoint for path, nil if none.
func (l *Loop) route(path string) Endpoint { return l.endpoints[path] }
