package codec

// The reference WebSocket upgrade parser. It was pushd's upgrade parser
// before HTTP/1.1 came to the event loop; production now parses every
// request with ParseRequest and checks an upgrade with CheckUpgrade. It
// stays here, in the tests only, as an independent second implementation:
// the upgrade tests hold it to net/http, and rqCompareUpgrade (http_test.go)
// holds ParseRequest + CheckUpgrade to it.

import (
	"bytes"
	"strings"
)

// UpgradeLimits bounds an upgrade request. Zero fields take the defaults.
type UpgradeLimits struct {
	MaxHeaderBytes int // whole request head incl. request line and final CRLFCRLF; default 8192
	MaxHeaders     int // header field count; default 64
}

// Request is a parsed WebSocket upgrade request (RFC 6455 §4.1, §4.2.1). Its
// strings are copies, valid after the parsed buffer is reused.
type Request struct {
	Path          string   // request-target path without the query, e.g. "/ws"
	RawQuery      string   // after '?', undecoded, "" if none
	Host          string   // Host header value
	Key           string   // Sec-WebSocket-Key as sent
	Origin        string   // Origin header value, "" if absent (non-browser client)
	Protocols     []string // Sec-WebSocket-Protocol tokens in order, from all such headers
	Authorization string   // Authorization header value, "" if absent
	XForwardedFor string   // first element of the first X-Forwarded-For header, "" if absent
	Headers       int      // number of header fields
}

// ParseUpgrade parses the HTTP/1.1 upgrade request head at the start of p.
//
// On success it returns the request and n, the length of the head including
// its final CRLFCRLF. Bytes after n (a client may send its first frame right
// behind the request) are not consumed: the caller keeps them.
//
// It returns ErrNeedMore while p holds no complete head and len(p) is at most
// lim.MaxHeaderBytes; call it again with more bytes. Otherwise it returns a
// *HandshakeError to answer with:
//   - 431 when the head is longer than MaxHeaderBytes or has more than
//     MaxHeaders fields;
//   - 405 (with Allow: GET) for a method other than GET (§4.1 item 2);
//   - 400 for anything but HTTP/1.1, a malformed request line or header line
//     (RFC 7230 §3: lines end in CRLF; no obsolete line folding, no space
//     before the colon), a request-target that is not a path, a missing or
//     repeated Host, an Upgrade without the token "websocket", a Connection
//     without the token "upgrade" (§4.2.1 items 3 and 4), a request body, a
//     repeated Sec-WebSocket-Key, Origin or Authorization, a bad
//     Sec-WebSocket-Protocol token, or a Sec-WebSocket-Key that is not base64
//     of 16 bytes (§4.2.1 item 5);
//   - 426 (with Sec-WebSocket-Version: 13) when Sec-WebSocket-Version is not
//     13 (§4.2.2 item 4). It is checked before the key, so clients of older
//     drafts, which send no such key, learn which version to use.
//
// Lines are checked as they complete, so a request that is already wrong
// (e.g. a TLS handshake or a POST) is rejected without waiting for the rest
// of the head. The outcome for a stream never depends on how it was split:
// a prefix gives ErrNeedMore or the same answer as the whole. Header names
// are case-insensitive and values may carry surrounding spaces or tabs. A
// call is linear in min(len(p), MaxHeaderBytes). Path routing (404) is the
// caller's job. ParseUpgrade is pure and never panics.
func ParseUpgrade(p []byte, lim UpgradeLimits) (req Request, n int, err error) {
	maxBytes, maxHeaders := lim.MaxHeaderBytes, lim.MaxHeaders
	if maxBytes <= 0 {
		maxBytes = DefaultMaxHeaderBytes
	}
	if maxHeaders <= 0 {
		maxHeaders = DefaultMaxHeaders
	}
	var h upgradeHeaders
	fields, n, err := scanHead(p, maxBytes, maxHeaders, h.requestLine, h.add)
	if err != nil {
		return Request{}, 0, err
	}
	if herr := h.check(); herr != nil {
		return Request{}, 0, herr
	}
	return h.request(fields), n, nil
}

// requestLine checks "GET /path?query HTTP/1.1" (RFC 7230 §3.1.1: single
// spaces, origin-form target, §5.3.1) and records the target.
func (h *upgradeHeaders) requestLine(line []byte) *HandshakeError {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errMalformedRequestLine()
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		return errMalformedRequestLine()
	}
	target, version := rest[:sp2], rest[sp2+1:]
	if !isToken(method) {
		return errMalformedRequestLine()
	}
	if string(version) != "HTTP/1.1" {
		return badRequest("HTTP/1.1 required")
	}
	if string(method) != "GET" {
		return &HandshakeError{Status: 405, Reason: "method not allowed", Header: [][2]string{{"Allow", "GET"}}}
	}
	path, query, herr := parseTarget(target)
	h.path, h.query = path, query
	return herr
}

// upgradeHeaders collects the request-line and header values ParseUpgrade
// needs while it walks the lines; the slices alias the parsed buffer until
// request copies them.
type upgradeHeaders struct {
	path, query                           []byte
	host, key, version, origin, auth, xff []byte
	hasHost, hasKey, hasVersion           bool
	hasOrigin, hasAuth, hasXFF            bool
	upgradeWS, connUpgrade                bool
	hasBody                               bool
	protocols                             [][]byte
}

// add checks one header line (RFC 7230 §3.2) and records it if ParseUpgrade
// needs it.
func (h *upgradeHeaders) add(line []byte) *HandshakeError {
	name, value, herr := splitHeaderLine(line)
	if herr != nil {
		return herr
	}
	var dup string // name of a header seen twice that must not repeat
	switch {
	case equalFoldLower(name, "host"):
		dup = repeated(h.hasHost, "Host")
		h.host, h.hasHost = value, true
	case equalFoldLower(name, "upgrade"):
		// The header may repeat; its value is a list of protocols
		// (RFC 7230 §6.7) and the token is case-insensitive (§4.2.1 item 3).
		h.upgradeWS = h.upgradeWS || listHasToken(value, "websocket")
	case equalFoldLower(name, "connection"):
		h.connUpgrade = h.connUpgrade || listHasToken(value, "upgrade")
	case equalFoldLower(name, "sec-websocket-key"):
		// §11.3.1: must not appear more than once in a request.
		dup = repeated(h.hasKey, "Sec-WebSocket-Key")
		h.key, h.hasKey = value, true
	case equalFoldLower(name, "sec-websocket-version"):
		dup = repeated(h.hasVersion, "Sec-WebSocket-Version")
		h.version, h.hasVersion = value, true
	case equalFoldLower(name, "sec-websocket-protocol"):
		for elem := range bytes.SplitSeq(value, []byte{','}) {
			elem = trimOWS(elem)
			if len(elem) == 0 {
				continue // empty list elements are allowed, RFC 7230 §7
			}
			if !isToken(elem) {
				return badRequest("invalid Sec-WebSocket-Protocol token")
			}
			h.protocols = append(h.protocols, elem)
		}
	case equalFoldLower(name, "origin"):
		// A repeated Origin or Authorization is ambiguous, and the caller makes
		// security decisions on them: refuse rather than pick one.
		dup = repeated(h.hasOrigin, "Origin")
		h.origin, h.hasOrigin = value, true
	case equalFoldLower(name, "authorization"):
		dup = repeated(h.hasAuth, "Authorization")
		h.auth, h.hasAuth = value, true
	case equalFoldLower(name, "x-forwarded-for"):
		if !h.hasXFF {
			first, _, _ := bytes.Cut(value, []byte{','})
			h.xff, h.hasXFF = trimOWS(first), true
		}
	case equalFoldLower(name, "content-length"):
		// The bytes after the head are WebSocket frames: a body would be
		// misread as frames.
		h.hasBody = h.hasBody || string(value) != "0"
	case equalFoldLower(name, "transfer-encoding"):
		h.hasBody = true
	}
	if dup != "" {
		return badRequest("repeated " + dup + " header")
	}
	return nil
}

// check applies the checks that need the whole head.
func (h *upgradeHeaders) check() *HandshakeError {
	switch {
	case len(h.host) == 0:
		// RFC 7230 §5.4; §4.1 item 4 needs the authority, so empty is missing.
		return badRequest("missing Host header")
	case !h.upgradeWS:
		return badRequest(`Upgrade header must contain "websocket"`)
	case !h.connUpgrade:
		return badRequest(`Connection header must contain "upgrade"`)
	case h.hasBody:
		return badRequest("request body not allowed")
	case string(h.version) != "13":
		return &HandshakeError{
			Status: 426,
			Reason: "unsupported WebSocket version",
			Header: [][2]string{{"Sec-WebSocket-Version", "13"}},
		}
	case !validKey(h.key):
		return badRequest("Sec-WebSocket-Key must be base64 of 16 bytes")
	}
	return nil
}

// request copies the recorded values into a Request. All strings share one
// allocation: a connect storm is thousands of upgrades per second, and the
// strings live exactly as long as each other (while the caller looks at req).
func (h *upgradeHeaders) request(headers int) Request {
	fields := [...][]byte{h.path, h.query, h.host, h.key, h.origin, h.auth, h.xff}
	total := 0
	for _, f := range fields {
		total += len(f)
	}
	for _, p := range h.protocols {
		total += len(p)
	}
	var b strings.Builder
	b.Grow(total)
	for _, f := range fields {
		b.Write(f)
	}
	for _, p := range h.protocols {
		b.Write(p)
	}
	all := b.String()
	next := func(n int) string {
		s := all[:n]
		all = all[n:]
		return s
	}
	req := Request{
		Path:          next(len(h.path)),
		RawQuery:      next(len(h.query)),
		Host:          next(len(h.host)),
		Key:           next(len(h.key)),
		Origin:        next(len(h.origin)),
		Authorization: next(len(h.auth)),
		XForwardedFor: next(len(h.xff)),
		Headers:       headers,
	}
	if len(h.protocols) > 0 {
		req.Protocols = make([]string, len(h.protocols))
		for i, p := range h.protocols {
			req.Protocols[i] = next(len(p))
		}
	}
	return req
}

// UpgradeRequest returns the upgrade view of r, the Request ParseUpgrade
// would have returned for the same head, sharing r's strings. It does not
// allocate. Any goroutine may call it while no other writes r.
func (r *HTTPRequest) UpgradeRequest() Request {
	return Request{
		Path:          r.Path,
		RawQuery:      r.RawQuery,
		Host:          r.Host,
		Key:           r.WebSocketKey,
		Origin:        r.Origin,
		Protocols:     r.WebSocketProtocols,
		Authorization: r.Authorization,
		XForwardedFor: r.XForwardedFor,
		Headers:       r.Headers,
	}
}
