// Package static serves files held in memory over HTTP/1.1 on the event
// loop: pushd.js and the demo page, which cmd/pushd embeds. A file is
// answered with its Content-Type, a strong ETag and the Cache-Control its
// owner chose; a request that names the current ETag in If-None-Match gets
// 304 without the body (RFC 9110 §13.1.2, §15.4.5). GET and HEAD only.
//
// Everything here runs on the event-loop goroutine of the connection, like
// the rest of conn.
package static

import (
	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
)

// File is one file to serve. Its fields must not change once the route is
// built: every loop answers from them without a lock.
type File struct {
	Body         []byte
	ContentType  string // e.g. "text/javascript; charset=utf-8"
	ETag         string // a strong entity tag, quotes included (RFC 9110 §8.8.3)
	CacheControl string // e.g. "no-cache": revalidate with the ETag each time
}

// Route returns the endpoint-table entry serving f at path. Any goroutine.
func Route(path string, f File) conn.Route {
	return conn.Route{Path: path, New: func(*conn.Loop) conn.Endpoint {
		return &endpoint{f: f, header: [...][2]string{
			{"ETag", f.ETag},
			{"Cache-Control", f.CacheControl},
			// The type is ours to say: a browser must not guess another
			// from the bytes (a script served as something else, or the
			// reverse).
			{"X-Content-Type-Options", "nosniff"},
		}}
	}}
}

// endpoint is one loop's instance of a file's route.
type endpoint struct {
	// Immutable after Route built it.
	f      File
	header [3][2]string
}

// Serve implements conn.Endpoint: 200 with the file (its head only for
// HEAD), 304 when If-None-Match names its ETag, 405 for other methods.
func (e *endpoint) Serve(c *conn.Conn, req *codec.HTTPRequest, _ []byte) *codec.HTTPError {
	if req.Method != "GET" && req.Method != "HEAD" {
		return &codec.HTTPError{Status: 405, Reason: "method not allowed", Header: [][2]string{{"Allow", "GET, HEAD"}}}
	}
	if req.IfNoneMatch != "" && codec.NoneMatch(req.IfNoneMatch, e.f.ETag) {
		// A 304 carries the validators a 200 would (RFC 9110 §15.4.5) and
		// no body; its Content-Length, if any, must be the 200's (RFC 7230
		// §3.3.2).
		c.RespondHead(304, int64(len(e.f.Body)), e.header[:2]...)
		return nil
	}
	c.Respond(200, e.f.ContentType, e.f.Body, e.header[:]...)
	return nil
}
