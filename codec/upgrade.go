package codec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// ErrNeedMore means the bytes seen so far hold no complete request head yet.
// It is a normal answer on a non-blocking socket: keep the bytes and call
// ParseUpgrade or ParseRequest again when more arrive.
var ErrNeedMore = errors.New("codec: need more bytes")

// Default limits of UpgradeLimits.
const (
	DefaultMaxHeaderBytes = 8192
	DefaultMaxHeaders     = 64
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

// HandshakeError is a rejected upgrade request (or, as HTTPError, any
// request ParseRequest rejects): the HTTP status to answer with, a short
// reason for the response body and logs, and extra response headers. Reason never contains request header values, which may be secret.
// Write the answer with AppendHTTPError(dst, e.Status, e.Reason, e.Header...).
type HandshakeError struct {
	Status int
	Reason string
	Header [][2]string // e.g. {"Sec-WebSocket-Version", "13"} on 426
}

// Error implements error. It is safe for concurrent use.
func (e *HandshakeError) Error() string {
	return "codec: handshake rejected: " + strconv.Itoa(e.Status) + " " + e.Reason
}

func badRequest(reason string) *HandshakeError {
	return &HandshakeError{Status: 400, Reason: reason}
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

// scanHead walks the request head at the start of p line by line for
// ParseUpgrade and ParseRequest: it hands the request line to requestLine
// and each header line to header as soon as the line is complete, so a
// request that is already wrong is answered without waiting for the rest.
// On reaching the blank line it returns the number of header fields and the
// length of the head; the checks that need the whole head are the caller's.
//
// It returns ErrNeedMore while the first maxBytes bytes of p hold no complete
// head and len(p) <= maxBytes, a 431 when the head is longer than maxBytes or
// has more than maxHeaders fields, a 400 for a line not ended by CRLF, and
// whatever requestLine or header return. The callbacks must not keep line
// beyond the call, except as slices of p the caller copies before returning.
func scanHead(p []byte, maxBytes, maxHeaders int, requestLine, header func(line []byte) *HandshakeError) (fields, n int, err error) {
	w := p
	if len(w) > maxBytes {
		w = w[:maxBytes]
	}
	// incomplete is the answer when w holds no complete head.
	incomplete := error(ErrNeedMore)
	if len(p) > maxBytes {
		incomplete = &HandshakeError{Status: 431, Reason: "request header too large"}
	}

	pos := 0
	for lineNo := 0; ; lineNo++ {
		i := bytes.IndexByte(w[pos:], '\n')
		if i < 0 {
			if lineNo == 0 && !methodPrefixOK(w) {
				// Not HTTP at all (a TLS ClientHello, say): answer now rather
				// than wait for a line end that may never come.
				return 0, 0, errMalformedRequestLine()
			}
			return 0, 0, incomplete
		}
		end := pos + i // index of the '\n'
		if i == 0 || w[end-1] != '\r' {
			if lineNo == 0 {
				// The same answer methodPrefixOK's check gives for this line.
				return 0, 0, errMalformedRequestLine()
			}
			return 0, 0, badRequest("line not terminated by CRLF")
		}
		line := w[pos : end-1]
		pos = end + 1
		switch {
		case lineNo == 0:
			if herr := requestLine(line); herr != nil {
				return 0, 0, herr
			}
		case len(line) == 0:
			return lineNo - 1, pos, nil
		case lineNo > maxHeaders:
			return 0, 0, &HandshakeError{Status: 431, Reason: "too many header fields"}
		default:
			if herr := header(line); herr != nil {
				return 0, 0, herr
			}
		}
	}
}

// methodPrefixOK reports whether the incomplete request line b may still
// become valid: its bytes up to the first space must all be token characters,
// as the method is. A byte that fails makes requestLine answer
// errMalformedRequestLine whatever follows, so answering that early does not
// depend on how the stream was split.
func methodPrefixOK(b []byte) bool {
	for _, c := range b {
		if c == ' ' {
			return true
		}
		if !isTokenChar(c) {
			return false
		}
	}
	return true
}

func errMalformedRequestLine() *HandshakeError { return badRequest("malformed request line") }

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

// parseTarget checks an origin-form request-target (RFC 7230 §5.3.1) and
// splits it at the first '?' into the path and the undecoded query.
func parseTarget(target []byte) (path, query []byte, herr *HandshakeError) {
	if len(target) == 0 || target[0] != '/' {
		return nil, nil, badRequest("request target must be a path")
	}
	for _, c := range target {
		// RFC 3986 characters are all visible ASCII; '#' never reaches a server.
		if c <= ' ' || c >= 0x7f || c == '#' {
			return nil, nil, badRequest("invalid character in request target")
		}
	}
	path, query, _ = bytes.Cut(target, []byte{'?'})
	if !validEscapes(path) {
		// RFC 3986 §2.1. The query is left to the caller's parser, which can
		// reject or tolerate a stray '%' per parameter.
		return nil, nil, badRequest("malformed percent-encoding in path")
	}
	return path, query, nil
}

// validEscapes reports whether every '%' in b starts a "%XX" escape.
func validEscapes[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
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

// splitHeaderLine checks one header line (RFC 7230 §3.2) and returns its
// name and its value without surrounding whitespace.
func splitHeaderLine(line []byte) (name, value []byte, herr *HandshakeError) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		// Also rejects obsolete line folding (a line starting with SP or HT),
		// which RFC 7230 §3.2.4 tells servers to reject.
		return nil, nil, badRequest("malformed header line")
	}
	name = line[:colon]
	if !isToken(name) {
		// Includes whitespace before the colon, RFC 7230 §3.2.4.
		return nil, nil, badRequest("malformed header name")
	}
	value = trimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, badRequest("invalid character in header value")
		}
	}
	return name, value, nil
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

// repeated returns name if seen, else "". The reason then names the header
// in its canonical form rather than echoing the client's bytes.
func repeated(seen bool, name string) string {
	if seen {
		return name
	}
	return ""
}

// validKey reports whether key is a valid Sec-WebSocket-Key: base64 that
// decodes to exactly 16 bytes (§4.1 item 7, §4.2.1 item 5).
func validKey[T string | []byte](key T) bool {
	const encodedLen = 24 // base64 of 16 bytes, with "==" padding
	if len(key) != encodedLen {
		return false
	}
	var buf [18]byte // base64.StdEncoding.DecodedLen(24)
	var in [encodedLen]byte
	copy(in[:], key)
	n, err := base64.StdEncoding.Decode(buf[:], in[:])
	return err == nil && n == 16
}

// listHasToken reports whether the comma-separated list value holds token,
// compared case-insensitively; token must be lower case.
func listHasToken(value []byte, token string) bool {
	for elem := range bytes.SplitSeq(value, []byte{','}) {
		if equalFoldLower(trimOWS(elem), token) {
			return true
		}
	}
	return false
}

// equalFoldLower reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case in b.
func equalFoldLower(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// trimOWS removes optional whitespace (SP and HTAB, RFC 7230 §3.2.3) around b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// isToken reports whether b is a non-empty RFC 7230 §3.2.6 token.
func isToken[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !isTokenChar(b[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c is an RFC 7230 tchar.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
