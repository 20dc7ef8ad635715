package codec

import (
	"bytes"
	"math"
	"strings"
)

// DefaultMaxBody is the default of RequestLimits.MaxBody: 1 MiB, about the
// reference Engine.IO server's maxHttpBufferSize (1e6 bytes).
const DefaultMaxBody = 1 << 20

// RequestLimits bounds a request parsed by ParseRequest. Zero fields take
// the defaults.
type RequestLimits struct {
	MaxHeaderBytes int   // whole request head incl. request line and final CRLFCRLF; default 8192
	MaxHeaders     int   // header field count; default 64
	MaxBody        int64 // largest Content-Length accepted; default DefaultMaxBody; negative: no body at all
}

// HTTPError is a rejected HTTP request: the same type as HandshakeError, so
// an upgrade and a plain request are answered the same way, with
// AppendHTTPError(dst, e.Status, e.Reason, e.Header...).
type HTTPError = HandshakeError

// HTTPRequest is a parsed HTTP/1.1 (or 1.0) request head. Its strings are
// copies sharing one allocation, valid after the parsed buffer is reused.
// A header that is absent reads as "".
type HTTPRequest struct {
	Method     string // "GET", "HEAD", "POST" or "OPTIONS"
	Path       string // request-target path without the query, e.g. "/socket.io/"
	RawQuery   string // after '?', undecoded, "" if none
	ProtoMinor int    // 1 for HTTP/1.1, 0 for HTTP/1.0

	Host          string // Host value; "" only for an HTTP/1.0 request without one
	Origin        string
	Authorization string
	Cookie        string // the Cookie header, see CookieValue
	XForwardedFor string // first element of the first X-Forwarded-For header

	Accept         string // all Accept headers joined with ", "
	IfNoneMatch    string // all If-None-Match headers joined with ", "
	LastEventID    string // SSE reconnection point (WHATWG HTML §9.2)
	ContentType    string
	ContentLength  int64 // -1 if absent; the body follows the head and is the caller's to read
	KeepAlive      bool  // the connection may carry another request after this one
	ExpectContinue bool  // "Expect: 100-continue": answer 100 Continue before reading the body

	AccessControlRequestMethod  string // CORS preflight (Fetch standard §3.2.2)
	AccessControlRequestHeaders string // joined with ", "

	UpgradeWebSocket    bool     // Upgrade lists the token "websocket"
	ConnectionUpgrade   bool     // Connection lists the token "upgrade"
	WebSocketKey        string   // Sec-WebSocket-Key as sent
	WebSocketVersion    string   // Sec-WebSocket-Version as sent
	WebSocketProtocols  []string // Sec-WebSocket-Protocol tokens in order, from all such headers
	WebSocketExtensions string   // Sec-WebSocket-Extensions headers joined with ", "

	Headers int // number of header fields
}

// Methods ParseRequest accepts; anything else is answered 405 with Allow.
const allowedMethods = "GET, HEAD, POST, OPTIONS"

// ParseRequest parses the HTTP/1.1 or HTTP/1.0 request head at the start of
// p: every request on the WebSocket port, upgrades (then CheckUpgrade)
// and the plain HTTP transports (static files, SSE, Engine.IO
// long-polling).
//
// On success it returns the request and n, the length of the head including
// its final CRLFCRLF. The body, req.ContentLength bytes when that is
// positive, follows at p[n:] whatever the method is; the caller reads or
// skips it before the next request on the connection.
//
// It returns ErrNeedMore while p holds no complete head and len(p) is at most
// lim.MaxHeaderBytes; call it again with more bytes. Otherwise it returns a
// *HTTPError to answer with (and then close the connection):
//   - 400 for a malformed request line or header line, (CRLF line ends, no obsolete line folding, no space before
//     the colon, a token method, an origin-form target with valid
//     percent-escapes in the path), a version that is not "HTTP/" DIGIT "."
//     DIGIT, an HTTP/1.1 request without a Host, a Host that is not
//     uri-host [":" port] (RFC 7230 §5.4), a Content-Length that is not
//     1*DIGIT (§3.3.2), or a repeated Host, Content-Length, Content-Type,
//     Origin, Authorization, Cookie (RFC 6265 §5.4), Last-Event-ID,
//     Access-Control-Request-Method, Sec-WebSocket-Key or
//     Sec-WebSocket-Version, or a bad Sec-WebSocket-Protocol token;
//   - 405 (with Allow: GET, HEAD, POST, OPTIONS) for any other method;
//   - 505 for a well-formed version other than HTTP/1.1 and HTTP/1.0
//     (RFC 7231 §6.6.6);
//   - 431 when the head is longer than MaxHeaderBytes or has more than
//     MaxHeaders fields (RFC 6585 §5);
//   - 413 when Content-Length exceeds MaxBody (RFC 7231 §6.5.11);
//   - 411 for a Transfer-Encoding whose last coding is chunked, 501 for any
//     other Transfer-Encoding. Request bodies must come with a
//     Content-Length (the clients of these transports always send one);
//     411 Length Required tells a chunking client what to do instead (RFC
//     7231 §6.5.10), and 501 is what RFC 7230 §3.3.1 asks for a coding the
//     server does not implement. Refusing Transfer-Encoding also closes the
//     door to request smuggling with both framings (RFC 7230 §3.3.3 item 3);
//   - 417 for an Expect other than 100-continue (RFC 7231 §5.1.1).
//
// Lines are checked as they complete, so a request that is already wrong is
// rejected without waiting for the rest of the head, and the outcome for a
// stream never depends on how it was split. Header names are
// case-insensitive and values may carry surrounding spaces or tabs. A call is
// linear in min(len(p), MaxHeaderBytes). Reasons never contain request
// bytes. ParseRequest is pure, never panics, and may be called from any
// goroutine.
func ParseRequest(p []byte, lim RequestLimits) (req HTTPRequest, n int, err error) {
	maxBytes, maxHeaders := lim.MaxHeaderBytes, lim.MaxHeaders
	if maxBytes <= 0 {
		maxBytes = DefaultMaxHeaderBytes
	}
	if maxHeaders <= 0 {
		maxHeaders = DefaultMaxHeaders
	}
	h := requestHead{maxBody: lim.MaxBody, contentLength: -1}
	h.protocols.tokens = true
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBody
	}
	fields, n, err := scanHead(p, maxBytes, maxHeaders, h.requestLine, h.add)
	if err != nil {
		return HTTPRequest{}, 0, err
	}
	if h.minor == 1 && len(h.host) == 0 {
		// RFC 7230 §5.4. An empty Host is missing too:
		// an origin-form target always has an authority.
		return HTTPRequest{}, 0, badRequest("missing Host header")
	}
	return h.request(p[:n], fields), n, nil
}

// Bits of requestHead.seen: the header fields that must not repeat.
const (
	seenHost = 1 << iota
	seenContentLength
	seenContentType
	seenOrigin
	seenAuthorization
	seenCookie
	seenLastEventID
	seenACRMethod
	seenKey
	seenVersion
	seenXFF
)

// requestHead collects what ParseRequest needs while scanHead walks the
// lines; the slices alias the parsed buffer until request copies them.
type requestHead struct {
	maxBody int64

	method, path, query []byte
	minor               int

	host, origin, auth, cookie, xff []byte
	lastEventID, contentType        []byte
	acrMethod, key, version         []byte
	seen                            uint32

	accept, ifNoneMatch, acrHeaders, extensions, protocols listField

	contentLength                     int64
	connClose, connKeepAlive          bool
	connUpgrade, upgradeWS, expect100 bool
}

// listField tracks a header that may repeat, whose values are joined with
// ", " (RFC 7230 §3.2.2). Only the first value is kept while walking: the
// join is built from the head itself in the rare case there is more than one.
type listField struct {
	first  []byte
	n      int // values seen (tokens, for a token list)
	size   int // length of the joined string
	tokens bool
}

// add records one value, or every token of it for a token list.
func (l *listField) add(value []byte) {
	if !l.tokens {
		l.addOne(value)
		return
	}
	for elem := range bytes.SplitSeq(value, []byte{','}) {
		l.addOne(trimOWS(elem))
	}
}

func (l *listField) addOne(v []byte) {
	if len(v) == 0 {
		return // empty list elements are allowed and mean nothing, RFC 7230 §7
	}
	if l.n > 0 {
		l.size += len(", ")
	} else {
		l.first = v
	}
	l.n++
	l.size += len(v)
}

// write appends the joined values to b, walking the header lines of head,
// which scanHead has already validated, to find the field called name.
func (l *listField) write(b *strings.Builder, head []byte, name string) {
	if l.n <= 1 {
		b.Write(l.first)
		return
	}
	sep := false
	each := func(v []byte) {
		if len(v) == 0 {
			return
		}
		if sep {
			b.WriteString(", ")
		}
		b.Write(v)
		sep = true
	}
	_, lines, _ := bytes.Cut(head, []byte("\r\n")) // skip the request line
	for {
		line, rest, _ := bytes.Cut(lines, []byte("\r\n"))
		if len(line) == 0 {
			return // the blank line ending the head
		}
		lines = rest
		// Names are tokens, so the first colon ends the name.
		k, v, _ := bytes.Cut(line, []byte{':'})
		if !equalFoldLower(k, name) {
			continue
		}
		v = trimOWS(v)
		if !l.tokens {
			each(v)
			continue
		}
		for elem := range bytes.SplitSeq(v, []byte{','}) {
			each(trimOWS(elem))
		}
	}
}

// requestLine checks "METHOD /path?query HTTP/1.x" (RFC 7230 §3.1.1: single
// spaces, origin-form target, §5.3.1) and records it.
func (h *requestHead) requestLine(line []byte) *HandshakeError {
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
	// HTTP-version = "HTTP/" DIGIT "." DIGIT, RFC 7230 §2.6.
	if len(version) != 8 || string(version[:5]) != "HTTP/" || !isDigit(version[5]) || version[6] != '.' || !isDigit(version[7]) {
		return badRequest("malformed HTTP version")
	}
	switch string(version) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		return &HandshakeError{Status: 505, Reason: "HTTP/1.1 or HTTP/1.0 required"}
	}
	switch string(method) {
	case "GET", "HEAD", "POST", "OPTIONS":
	default:
		// Methods are case-sensitive (RFC 7231 §4.1): "get" is not GET.
		return &HandshakeError{Status: 405, Reason: "method not allowed", Header: [][2]string{{"Allow", allowedMethods}}}
	}
	path, query, herr := parseTarget(target)
	h.method, h.path, h.query = method, path, query
	return herr
}

// add checks one header line and records it if ParseRequest needs it.
func (h *requestHead) add(line []byte) *HandshakeError {
	name, value, herr := splitHeaderLine(line)
	if herr != nil {
		return herr
	}
	// Grouped by first letter so a common header costs a few comparisons.
	switch {
	case equalFoldLower(name, "host"):
		if !validHost(value) {
			return badRequest("invalid Host header")
		}
		return h.single(&h.host, value, seenHost, "Host")
	case equalFoldLower(name, "connection"):
		// A list of options, RFC 7230 §6.1; the tokens are case-insensitive.
		h.connClose = h.connClose || listHasToken(value, "close")
		h.connKeepAlive = h.connKeepAlive || listHasToken(value, "keep-alive")
		h.connUpgrade = h.connUpgrade || listHasToken(value, "upgrade")
	case equalFoldLower(name, "content-length"):
		return h.addContentLength(value)
	case equalFoldLower(name, "transfer-encoding"):
		return h.addTransferEncoding(value)
	case equalFoldLower(name, "content-type"):
		return h.single(&h.contentType, value, seenContentType, "Content-Type")
	case equalFoldLower(name, "cookie"):
		// A user agent sends one Cookie header (RFC 6265 §5.4); two would
		// make the session cookie ambiguous.
		return h.single(&h.cookie, value, seenCookie, "Cookie")
	case equalFoldLower(name, "origin"):
		// Repeated Origin or Authorization is ambiguous and the caller makes
		// security decisions on them: refuse rather than pick one.
		return h.single(&h.origin, value, seenOrigin, "Origin")
	case equalFoldLower(name, "authorization"):
		return h.single(&h.auth, value, seenAuthorization, "Authorization")
	case equalFoldLower(name, "accept"):
		h.accept.add(value)
	case equalFoldLower(name, "if-none-match"):
		h.ifNoneMatch.add(value)
	case equalFoldLower(name, "last-event-id"):
		return h.single(&h.lastEventID, value, seenLastEventID, "Last-Event-ID")
	case equalFoldLower(name, "expect"):
		return h.addExpect(value)
	case equalFoldLower(name, "x-forwarded-for"):
		if h.seen&seenXFF == 0 {
			first, _, _ := bytes.Cut(value, []byte{','})
			h.xff = trimOWS(first)
			h.seen |= seenXFF
		}
	case equalFoldLower(name, "access-control-request-method"):
		return h.single(&h.acrMethod, value, seenACRMethod, "Access-Control-Request-Method")
	case equalFoldLower(name, "access-control-request-headers"):
		h.acrHeaders.add(value)
	case equalFoldLower(name, "upgrade"):
		// A list of protocols (RFC 7230 §6.7), the token case-insensitive
		// (RFC 6455 §4.2.1 item 3).
		h.upgradeWS = h.upgradeWS || listHasToken(value, "websocket")
	case equalFoldLower(name, "sec-websocket-key"):
		// RFC 6455 §11.3.1: must not appear more than once in a request.
		return h.single(&h.key, value, seenKey, "Sec-WebSocket-Key")
	case equalFoldLower(name, "sec-websocket-version"):
		return h.single(&h.version, value, seenVersion, "Sec-WebSocket-Version")
	case equalFoldLower(name, "sec-websocket-protocol"):
		for elem := range bytes.SplitSeq(value, []byte{','}) {
			if elem = trimOWS(elem); len(elem) > 0 && !isToken(elem) {
				return badRequest("invalid Sec-WebSocket-Protocol token")
			}
		}
		h.protocols.add(value)
	case equalFoldLower(name, "sec-websocket-extensions"):
		h.extensions.add(value)
	}
	return nil
}

// single records the value of a header that must not repeat. The reason
// names the header in its canonical form rather than echoing the client's
// bytes.
func (h *requestHead) single(dst *[]byte, value []byte, bit uint32, canonical string) *HandshakeError {
	if h.seen&bit != 0 {
		return badRequest("repeated " + canonical + " header")
	}
	h.seen |= bit
	*dst = value
	return nil
}

// addContentLength checks Content-Length = 1*DIGIT (RFC 7230 §3.3.2). A
// repeated one is refused even with equal values: two lengths are how
// request smuggling starts, and no client of ours sends them.
func (h *requestHead) addContentLength(value []byte) *HandshakeError {
	if h.seen&seenContentLength != 0 {
		return badRequest("repeated Content-Length header")
	}
	h.seen |= seenContentLength
	if len(value) == 0 {
		return badRequest("invalid Content-Length")
	}
	var n int64
	tooLarge := false
	for _, c := range value {
		if !isDigit(c) {
			return badRequest("invalid Content-Length")
		}
		// Saturate instead of overflowing: any number this large is over
		// every limit, and the rest of the digits are still checked.
		d := int64(c - '0')
		if tooLarge || n > (math.MaxInt64-d)/10 {
			tooLarge = true
			continue
		}
		n = n*10 + d
	}
	if tooLarge || n > max(h.maxBody, 0) {
		return &HandshakeError{Status: 413, Reason: "request body too large"}
	}
	h.contentLength = n
	return nil
}

// addTransferEncoding refuses every Transfer-Encoding; see ParseRequest.
func (h *requestHead) addTransferEncoding(value []byte) *HandshakeError {
	last := value
	if i := bytes.LastIndexByte(value, ','); i >= 0 {
		last = value[i+1:]
	}
	if equalFoldLower(trimOWS(last), "chunked") {
		return &HandshakeError{Status: 411, Reason: "Content-Length required; chunked request bodies are not supported"}
	}
	return &HandshakeError{Status: 501, Reason: "Transfer-Encoding not supported"}
}

// addExpect accepts the one expectation HTTP/1.1 defines (RFC 7231 §5.1.1).
func (h *requestHead) addExpect(value []byte) *HandshakeError {
	for elem := range bytes.SplitSeq(value, []byte{','}) {
		elem = trimOWS(elem)
		switch {
		case len(elem) == 0:
		case equalFoldLower(elem, "100-continue"):
			// An HTTP/1.0 client cannot expect a 1xx answer: ignore it there.
			h.expect100 = h.minor == 1
		default:
			return &HandshakeError{Status: 417, Reason: "unsupported expectation"}
		}
	}
	return nil
}

// validHost reports whether v is uri-host [":" port] as far as its bytes go
// (RFC 7230 §5.4, RFC 3986 §3.2.2): the same byte set net/http's server
// accepts, which keeps markup and quotes out of a value callers may echo.
func validHost(v []byte) bool {
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			continue
		}
		switch c {
		case '!', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', ':', ';', '=', '[', ']', '_', '~':
			continue
		}
		return false
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// request copies the recorded values into an HTTPRequest. All strings share
// one allocation; the protocol list adds a second.
func (h *requestHead) request(head []byte, headers int) HTTPRequest {
	singles := [...][]byte{
		h.path, h.query, h.host, h.origin, h.auth, h.cookie, h.xff,
		h.lastEventID, h.contentType, h.acrMethod, h.key, h.version,
	}
	lists := [...]struct {
		f    *listField
		name string
	}{
		{&h.accept, "accept"},
		{&h.ifNoneMatch, "if-none-match"},
		{&h.acrHeaders, "access-control-request-headers"},
		{&h.extensions, "sec-websocket-extensions"},
		{&h.protocols, "sec-websocket-protocol"},
	}
	total := 0
	for _, f := range singles {
		total += len(f)
	}
	for _, l := range lists {
		total += l.f.size
	}
	var b strings.Builder
	b.Grow(total)
	for _, f := range singles {
		b.Write(f)
	}
	for _, l := range lists {
		l.f.write(&b, head, l.name)
	}
	all := b.String()
	next := func(n int) string {
		s := all[:n]
		all = all[n:]
		return s
	}
	req := HTTPRequest{
		Method:        methodString(h.method),
		Path:          next(len(h.path)),
		RawQuery:      next(len(h.query)),
		ProtoMinor:    h.minor,
		Host:          next(len(h.host)),
		Origin:        next(len(h.origin)),
		Authorization: next(len(h.auth)),
		Cookie:        next(len(h.cookie)),
		XForwardedFor: next(len(h.xff)),
		LastEventID:   next(len(h.lastEventID)),
		ContentType:   next(len(h.contentType)),
		ContentLength: h.contentLength,
		// RFC 7230 §6.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only
		// with "keep-alive".
		KeepAlive:                  !h.connClose && (h.minor == 1 || h.connKeepAlive),
		ExpectContinue:             h.expect100,
		AccessControlRequestMethod: next(len(h.acrMethod)),
		UpgradeWebSocket:           h.upgradeWS,
		ConnectionUpgrade:          h.connUpgrade,
		WebSocketKey:               next(len(h.key)),
		WebSocketVersion:           next(len(h.version)),
		Headers:                    headers,
	}
	req.Accept = next(h.accept.size)
	req.IfNoneMatch = next(h.ifNoneMatch.size)
	req.AccessControlRequestHeaders = next(h.acrHeaders.size)
	req.WebSocketExtensions = next(h.extensions.size)
	if h.protocols.n > 0 {
		// The tokens were written joined with ", " and contain neither.
		protos := next(h.protocols.size)
		req.WebSocketProtocols = make([]string, 0, h.protocols.n)
		for p := range strings.SplitSeq(protos, ", ") {
			req.WebSocketProtocols = append(req.WebSocketProtocols, p)
		}
	}
	return req
}

// methodString returns one of the accepted methods as a constant string, so
// the method costs no copy.
func methodString(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	}
	return "OPTIONS"
}

// CheckUpgrade applies to a request from ParseRequest the checks that make
// it a valid WebSocket upgrade, in this order: 400 unless HTTP/1.1, 405 (Allow: GET) unless GET,
// then 400 for a missing Host, an Upgrade without "websocket", a Connection
// without "upgrade" or a body, 426 (Sec-WebSocket-Version: 13) unless the
// version is 13, and 400 for a Sec-WebSocket-Key that is not base64 of 16
// bytes (RFC 6455 §4.2.1, §4.2.2). The line-level answers (malformed lines,
// repeated keys or versions, bad protocol tokens) ParseRequest has already
// given. The tests hold these answers to the reference upgrade parser of
// upgrade_ref_test.go, which differs only in refusing a Content-Length of
// "00" (ParseRequest reads it as the zero it is).
// CheckUpgrade returns nil or a *HandshakeError; it does not allocate for a
// valid upgrade, is pure and may be called from any goroutine.
func CheckUpgrade(req *HTTPRequest) error {
	switch {
	case req.ProtoMinor != 1:
		return badRequest("HTTP/1.1 required")
	case req.Method != "GET":
		return &HandshakeError{Status: 405, Reason: "method not allowed", Header: [][2]string{{"Allow", "GET"}}}
	case req.Host == "":
		return badRequest("missing Host header")
	case !req.UpgradeWebSocket:
		return badRequest(`Upgrade header must contain "websocket"`)
	case !req.ConnectionUpgrade:
		return badRequest(`Connection header must contain "upgrade"`)
	case req.ContentLength > 0:
		return badRequest("request body not allowed")
	case req.WebSocketVersion != "13":
		return &HandshakeError{
			Status: 426,
			Reason: "unsupported WebSocket version",
			Header: [][2]string{{"Sec-WebSocket-Version", "13"}},
		}
	case !validKey(req.WebSocketKey):
		return badRequest("Sec-WebSocket-Key must be base64 of 16 bytes")
	}
	return nil
}
