package auth

import (
	"net/url"
	"slices"
	"strings"

	"github.com/pushd/pushd/codec"
)

// ProtocolV1 is the WebSocket subprotocol of pushd's client protocol v1. A
// client that offers it gets it echoed in Sec-WebSocket-Protocol.
const ProtocolV1 = "pushd.v1"

// TokenProtocolPrefix marks the Sec-WebSocket-Protocol element that carries
// a token: a browser, which cannot set headers on a WebSocket, connects with
//
//	new WebSocket(url, ["pushd.v1", "pushd.token." + jwt])
//
// A JWT is three base64url segments joined by dots, all of which are
// token characters (RFC 7230 §3.2.6), so it is a legal protocol element
// (RFC 6455 §4.1 item 10). The server echoes "pushd.v1" only.
const TokenProtocolPrefix = "pushd.token."

// TokenQueryParam is the query parameter that may carry the token:
// wss://host/ws?token=<jwt>. Query strings end up in proxy access logs;
// prefer the subprotocol form in browsers.
const TokenQueryParam = "token"

// TokenCookie is the cookie that may carry the token, for browsers that
// cannot set a header: an EventSource (SSE) sends the cookies of its
// origin and nothing else. A cookie is an ambient credential, sent by the
// browser whatever page starts the request, so a deployment that sets it
// should also set --allowed-origins and give the cookie SameSite=Strict
// (docs/security.md).
const TokenCookie = "pushd_token"

// TokenFrom returns the token a request carries and, for a WebSocket
// upgrade, the subprotocol to select in the 101 response.
//
// The token is looked for, in this order: an Authorization header with the
// Bearer scheme (RFC 6750 §2.1; the scheme name is case-insensitive), the
// first non-empty ?token= query parameter (RFC 6750 §2.3), the first
// Sec-WebSocket-Protocol element that starts with TokenProtocolPrefix, and
// the first valid TokenCookie cookie (RFC 6265 §4.2.1). A credential the
// client chose for this request thus beats the ambient cookie. An empty
// result means the request carries none.
//
// protocol is ProtocolV1 when the client offered it, and "" otherwise; it is
// never the token element: echoing it would put the token in the response,
// where proxies and browser tooling log it. RFC 6455 §4.2.2 item 5.4 lets
// the server select only a value the client offered; Chromium also fails a
// connection whose client offered protocols and whose 101 selects none, so
// a browser that sends the token as a protocol must offer "pushd.v1" too.
// Pure; safe for concurrent use.
func TokenFrom(req *codec.HTTPRequest) (token, protocol string) {
	if slices.Contains(req.WebSocketProtocols, ProtocolV1) {
		protocol = ProtocolV1
	}
	if t := bearer(req.Authorization); t != "" {
		return t, protocol
	}
	if t := queryToken(req.RawQuery); t != "" {
		return t, protocol
	}
	for _, p := range req.WebSocketProtocols {
		if t, ok := strings.CutPrefix(p, TokenProtocolPrefix); ok && t != "" {
			return t, protocol
		}
	}
	if t, ok := codec.CookieValue(req.Cookie, TokenCookie); ok && t != "" {
		return t, protocol
	}
	return "", protocol
}

// bearer returns the credentials of an Authorization: Bearer header value,
// or "" for any other scheme.
func bearer(v string) string {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return ""
	}
	return strings.Trim(v[len(scheme):], " \t")
}

// queryToken returns the first non-empty TokenQueryParam value of an
// undecoded query string. A value that is not valid percent-encoding is
// returned as is; Verify then rejects it as malformed.
func queryToken(raw string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != TokenQueryParam || v == "" {
			continue
		}
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		if v != "" {
			return v
		}
	}
	return ""
}
