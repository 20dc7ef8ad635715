package conn

import (
	"errors"

	"github.com/pushd/pushd/codec"
)

// HTTP/1.1 on the event loop (RFC 7230): one request at a time per
// connection. A request head is parsed from the input buffer as it
// arrives; the request goes to the endpoint of its path once its body (if
// the endpoint takes one) is in, and the connection reads the next request
// only when the response is complete. Pipelined requests therefore wait in
// the input buffer, where a client that floods it is cut off.
//
// Request bodies are gathered whole before Serve, never streamed to the
// endpoint: the transports that take bodies (Engine.IO's POSTed packets)
// parse a complete payload, and their bodies are small and bounded per
// route (Route.MaxBody, 413 past it). A body that arrives with its head
// costs no copy: it is handed over in place. One that arrives in pieces is
// copied once into a buffer that grows with what has arrived, not with what
// the client declared, so a client announcing a large body and sending
// nothing costs nothing; the request deadline bounds how long it may take.
//
// The deadlines are the connection's one timer: HandshakeTimeout bounds the
// head and body of a request from its first byte (from the accept for the
// first request), KeepAliveTimeout bounds the silence between requests.

// pending is a request whose body is still arriving: the connection's proto
// while it is in StateRequest, until the body is complete.
type pending struct {
	ep   Endpoint
	req  codec.HTTPRequest
	body []byte
	want int
}

// maxPendingCap bounds the initial capacity of a pending body, so a client
// that announces a large body and sends it slowly costs what it sent.
const maxPendingCap = 16 << 10

// readHead parses the next request head at the start of p and dispatches
// the request. It returns the bytes consumed, 0 while the head is
// incomplete.
func (c *Conn) readHead(p []byte) int {
	if c.flags&flagCloseReq != 0 {
		return len(p) // a deadline passed or an answer was final; the close is on its way
	}
	if len(p) == 0 {
		return 0
	}
	if c.flags&flagIdle != 0 {
		// The first bytes of the next request: its head and body now have
		// the request deadline instead of the idle timeout.
		c.flags &^= flagIdle
		c.Arm(c.l.hsTicks)
	}
	req, n, err := codec.ParseRequest(p, c.l.reqLimits)
	if err == codec.ErrNeedMore {
		return 0
	}
	if err != nil {
		var he *codec.HandshakeError
		if !errors.As(err, &he) {
			he = &codec.HandshakeError{Status: 400, Reason: "bad request"}
		}
		c.Reject(he)
		return len(p)
	}
	c.flags &^= flagKeepAlive | flagHead | flagBodyUnread
	if req.KeepAlive {
		c.flags |= flagKeepAlive
	}
	if req.Method == "HEAD" {
		c.flags |= flagHead
	}
	c.state = StateRequest
	r := c.l.route(req.Path)
	if r == nil {
		c.Reject(&codec.HandshakeError{Status: 404, Reason: "not found"})
		return len(p)
	}
	cl := req.ContentLength
	switch {
	case cl <= 0:
	case r.maxBody == 0:
		c.flags |= flagBodyUnread
	case cl > r.maxBody:
		c.Reject(&codec.HandshakeError{Status: 413, Reason: "request body too large"})
		return len(p)
	case int64(len(p)-n) >= cl:
		// The whole body came with the head: hand it over in place.
		end := n + int(cl)
		c.serve(r.ep, &req, p[n:end])
		return end
	default:
		if req.ExpectContinue {
			c.Write([]byte(codec.ContinueResponse)) // RFC 7231 §5.1.1
		}
		pd := &pending{ep: r.ep, req: req, want: int(cl)}
		pd.body = append(make([]byte, 0, min(int(cl), max(maxPendingCap, len(p)-n))), p[n:]...)
		c.proto = pd
		return len(p)
	}
	c.serve(r.ep, &req, nil)
	return n
}

// readRequest takes the bytes that arrive while a request is in progress:
// the rest of its body, or nothing while an endpoint holds it (the next
// request waits in the input buffer, up to a bound).
func (c *Conn) readRequest(p []byte) int {
	if pd, ok := c.proto.(*pending); ok {
		k := min(len(p), pd.want-len(pd.body))
		pd.body = append(pd.body, p[:k]...)
		if len(pd.body) == pd.want {
			c.proto = nil
			c.serve(pd.ep, &pd.req, pd.body)
		}
		return k
	}
	if len(p) > c.l.maxHeld && c.flags&flagCloseReq == 0 {
		// More than a whole next request while this one is held: the
		// client is not waiting for its answer.
		c.CloseTransport()
	}
	if c.flags&flagCloseReq != 0 {
		return len(p)
	}
	return 0
}

// serve hands a complete request to its endpoint and, when the endpoint
// answered at once, finishes it.
func (c *Conn) serve(ep Endpoint, req *codec.HTTPRequest, body []byte) {
	c.state = StateRequest
	herr := ep.Serve(c, req, body)
	switch {
	case herr != nil:
		if c.state == StateRequest && c.flags&flagCloseReq == 0 {
			c.Reject(herr)
		}
	case c.state == StateRequest && c.proto == nil:
		c.finishRequest()
	}
}

// Hold is what an Endpoint's Serve calls to answer its request later: p
// holds the request (its Timer and Closed run, Feed does not) until it
// writes the response and calls RequestDone. The request deadline stops;
// p arms the timer itself (Arm) to bound the wait, as a long-poll does. It
// panics outside Serve. Loop goroutine only.
func (c *Conn) Hold(p Proto) {
	if p == nil || c.state != StateRequest || c.proto != nil {
		panic("conn: Hold outside Serve")
	}
	c.proto = p
	c.l.wheel.Stop(&c.timer)
}

// RequestDone ends the request a Proto held (Hold) once its response is
// written: the connection reads the client's next request, or closes when
// the request asked for that. The Proto is forgotten: none of its methods
// runs again for this connection. It does nothing unless a request is held.
// Loop goroutine only.
func (c *Conn) RequestDone() {
	if c.state != StateRequest || c.proto == nil {
		return
	}
	if _, ok := c.proto.(*pending); ok {
		return
	}
	c.finishRequest()
}

// finishRequest ends the request in progress, whose response is written.
func (c *Conn) finishRequest() {
	c.proto = nil
	c.state = StateHandshake
	c.l.metrics.Requests.Add(1)
	if c.flags&flagCloseReq != 0 {
		return
	}
	if !c.KeepAlive() {
		c.lingerClose()
		return
	}
	c.flags |= flagIdle
	c.Arm(c.l.idleTicks)
	if c.l.feeding != c && c.l.resume != nil {
		// The client's next request may be waiting in the input buffer;
		// no new bytes will call Feed for it.
		c.l.resume(c.tr)
	}
}

// lingerClose closes the connection after a response without a reset:
// the write side is shut down so the client reads the response and EOF,
// and input is discarded until the client closes or the close timeout
// passes (closing with unread input would make Linux send RST, which can
// destroy the response before the client reads it).
func (c *Conn) lingerClose() {
	c.state = StateFailed
	c.ShutdownWrite()
	c.Arm(c.l.closeTicks)
}

// KeepAlive reports whether the connection will read another request after
// the response to the one in progress: the request allowed it (RFC 7230
// §6.3), its body was read or it had none, and the server is not draining.
// Loop goroutine only.
func (c *Conn) KeepAlive() bool {
	return c.flags&(flagKeepAlive|flagBodyUnread) == flagKeepAlive && !c.l.draining
}

// connectionHeader is the Connection field of a response to the request
// in progress: "keep-alive" (which an HTTP/1.0 client needs to keep the
// connection, RFC 7230 §A.1.2) or "close" (§6.6).
func (c *Conn) connectionHeader() [2]string {
	if c.KeepAlive() {
		return [2]string{"Connection", "keep-alive"}
	}
	return [2]string{"Connection", "close"}
}

// RespondHead writes the head of a response to the request in progress:
// the status line, Content-Length n, the Connection field and header. The
// caller writes the n body bytes next, with Write or Writev, unless the
// request is a HEAD (IsHead). It reports whether the connection is still
// usable. Loop goroutine only.
func (c *Conn) RespondHead(status int, n int64, header ...[2]string) bool {
	buf := c.appendHead(status, "", n, header)
	return c.Write(buf)
}

// Respond writes a complete response to the request in progress: the
// status line, Content-Length, Content-Type (unless contentType is ""), the
// Connection field, header, and body, which is left out for a HEAD (RFC
// 7231 §4.3.2). A large body goes out without a copy. It reports whether
// the connection is still usable. Loop goroutine only.
func (c *Conn) Respond(status int, contentType string, body []byte, header ...[2]string) bool {
	buf := c.appendHead(status, contentType, int64(len(body)), header)
	switch {
	case c.IsHead() || len(body) == 0:
		return c.Write(buf)
	case len(body) <= 1024:
		buf = append(buf, body...)
		c.l.scratch = buf[:0]
		return c.Write(buf)
	}
	c.l.iov2[0], c.l.iov2[1] = buf, body
	ok := c.Writev(c.l.iov2[:])
	c.l.iov2[0], c.l.iov2[1] = nil, nil
	return ok
}

// appendHead builds a response head in the loop's scratch buffer.
func (c *Conn) appendHead(status int, contentType string, n int64, header [][2]string) []byte {
	h := append(c.l.hdrs[:0], c.connectionHeader())
	if contentType != "" {
		h = append(h, [2]string{"Content-Type", contentType})
	}
	h = append(h, header...)
	buf := codec.AppendResponseHeadLen(c.l.scratch[:0], status, n, h...)
	clear(h)
	c.l.hdrs = h[:0]
	c.l.scratch = buf[:0]
	return buf
}

// IsHead reports whether the request in progress is a HEAD, whose response
// carries no body. Loop goroutine only.
func (c *Conn) IsHead() bool { return c.flags&flagHead != 0 }

// pending implements Proto only so that the base's timer, close and
// shutdown paths treat a body in transit like any request in progress.

// Feed is never called: readRequest feeds the body.
func (pd *pending) Feed(*Conn, []byte) int { return 0 }

// Timer: the request deadline passed before the body was complete.
func (pd *pending) Timer(c *Conn) {
	c.l.metrics.HandshakeTimeouts.Add(1)
	c.CloseTransport()
}

// Send fails: there is no protocol yet.
func (pd *pending) Send(*Conn, []byte) bool { return false }

// Close drops the connection (a shutdown while the body arrives).
func (pd *pending) Close(c *Conn, _ codec.StatusCode, _ string) { c.CloseTransport() }

// SlowConsumer drops the connection (checkOutbound never calls it before
// StateOpen; kept for the interface).
func (pd *pending) SlowConsumer(c *Conn) { c.CloseTransport() }

// Closed releases nothing: the body buffer goes with the pending request.
func (pd *pending) Closed(*Conn) {}
