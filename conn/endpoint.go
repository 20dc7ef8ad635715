package conn

import "github.com/pushd/pushd/codec"

// Endpoint serves the requests for one path: the v1 WebSocket protocol,
// the echo endpoint, SSE, static files, later Engine.IO. Each event loop
// has its own instance (Route.New), so an Endpoint may keep per-loop state
// without locks. Its methods run on the loop goroutine.
type Endpoint interface {
	// Serve handles one request whose head (and body, see Route.MaxBody)
	// has arrived. body is the request body when the route takes bodies,
	// else nil; it and req are valid only during the call, so an endpoint
	// that holds the request copies what it needs. Serve does exactly one
	// of four things:
	//
	//   - Reject: return the HTTP error to answer with; the connection is
	//     closed after the answer (RFC 7230 §6.6: the request's framing
	//     may not be trusted). Nothing may have been written.
	//   - Answer now: write the whole response (Respond, or Write with a
	//     head from RespondHead) and return nil. The connection then
	//     reads the next request, or closes when the request said so.
	//   - Take the connection over: call c.Accepted(p) with the Proto that
	//     runs it from then on (a WebSocket, an SSE stream), write the
	//     answer (101, an event-stream head) and return nil.
	//   - Hold the request: call c.Hold(p) and return nil. p answers later,
	//     from the loop goroutine (a long-poll that a push completes), and
	//     then calls c.RequestDone; until then the client's next request
	//     waits in the input buffer.
	Serve(c *Conn, req *codec.HTTPRequest, body []byte) *codec.HTTPError
}

// Ticker is an Endpoint with timers of its own, beyond its connections'
// (Engine.IO polling sessions, which outlive the requests that carry
// them): the loop calls Advance after its timing wheel has advanced, with
// the current tick. Loop goroutine only.
type Ticker interface {
	Advance(now uint64)
}

// Drainer is an Endpoint with state beyond its connections that a graceful
// stop must end too (Engine.IO polling sessions without a request in
// progress): Loop.CloseAll calls CloseAll with its code and reason before
// it closes the connections. Loop goroutine only.
type Drainer interface {
	CloseAll(code codec.StatusCode, reason string)
}

// Flusher is an Endpoint that queues pushes outside the loop's outbox
// (Engine.IO polling sessions answer a held poll with what they queued):
// the loop calls Flush when its own flush of the outbox completes (Flush,
// or the FlushFor call that reports true), after a drain's slice of
// pushes, when subscribers may change again. Loop goroutine only.
type Flusher interface {
	Flush()
}

// Route is one entry of the endpoint table: requests for Path go to the
// endpoint New builds for each event loop. Paths match exactly, without the
// query string.
type Route struct {
	Path string
	New  func(l *Loop) Endpoint
	// MaxBody is the largest request body the endpoint reads; a longer
	// Content-Length is answered 413 before the body is read (RFC 7231
	// §6.5.11). 0 means the endpoint reads none: a request with a body
	// reaches Serve without it, and the connection is closed after the
	// answer instead of reading the body as the next request.
	MaxBody int64
}

// routed is one loop's instance of a Route.
type routed struct {
	ep      Endpoint
	maxBody int64
}

// route returns the endpoint for path, nil if none.
func (l *Loop) route(path string) *routed { return l.endpoints[path] }
