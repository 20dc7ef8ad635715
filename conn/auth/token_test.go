package auth

import (
	"testing"

	"github.com/pushd/pushd/codec"
)

func TestTokenFrom(t *testing.T) {
	const jwtA = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sigA"
	const jwtB = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiIn0.sigB"
	const jwtC = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjIn0.sigC"
	cases := []struct {
		name     string
		req      codec.HTTPRequest
		token    string
		protocol string
	}{
		{"none", codec.HTTPRequest{}, "", ""},
		{"bearer", codec.HTTPRequest{Authorization: "Bearer " + jwtA}, jwtA, ""},
		{"bearer scheme is case-insensitive", codec.HTTPRequest{Authorization: "bEaReR  " + jwtA}, jwtA, ""},
		{"basic is ignored", codec.HTTPRequest{Authorization: "Basic dXNlcjpwYXNz", RawQuery: "token=" + jwtB}, jwtB, ""},
		{"empty bearer falls through", codec.HTTPRequest{Authorization: "Bearer ", RawQuery: "token=" + jwtB}, jwtB, ""},
		{"query", codec.HTTPRequest{RawQuery: "topics=a,b&token=" + jwtB}, jwtB, ""},
		{"query percent-encoded", codec.HTTPRequest{RawQuery: "token=" + "eyJhbGciOiJIUzI1NiJ9%2EeyJzdWIiOiJiIn0.sigB"}, jwtB, ""},
		{"query first non-empty", codec.HTTPRequest{RawQuery: "token=&token=" + jwtB + "&token=" + jwtC}, jwtB, ""},
		{"query name must match exactly", codec.HTTPRequest{RawQuery: "xtoken=" + jwtA + "&tokens=" + jwtC}, "", ""},
		{"protocol", codec.HTTPRequest{WebSocketProtocols: []string{ProtocolV1, TokenProtocolPrefix + jwtC}}, jwtC, ProtocolV1},
		{"protocol, token offered first", codec.HTTPRequest{WebSocketProtocols: []string{TokenProtocolPrefix + jwtC, ProtocolV1}}, jwtC, ProtocolV1},
		{"protocol without pushd.v1 selects none", codec.HTTPRequest{WebSocketProtocols: []string{TokenProtocolPrefix + jwtC}}, jwtC, ""},
		{"empty token protocol ignored", codec.HTTPRequest{WebSocketProtocols: []string{ProtocolV1, TokenProtocolPrefix}}, "", ProtocolV1},
		{"other protocols only", codec.HTTPRequest{WebSocketProtocols: []string{"chat", "mqtt"}}, "", ""},
		{"bearer beats query and protocol", codec.HTTPRequest{
			Authorization: "Bearer " + jwtA, RawQuery: "token=" + jwtB,
			WebSocketProtocols: []string{ProtocolV1, TokenProtocolPrefix + jwtC},
		}, jwtA, ProtocolV1},
		{"query beats protocol", codec.HTTPRequest{RawQuery: "token=" + jwtB, WebSocketProtocols: []string{ProtocolV1, TokenProtocolPrefix + jwtC}}, jwtB, ProtocolV1},
		{"pushd.v1 echoed with a query token", codec.HTTPRequest{RawQuery: "token=" + jwtB, WebSocketProtocols: []string{ProtocolV1}}, jwtB, ProtocolV1},
		{"cookie", codec.HTTPRequest{Cookie: "theme=dark; " + TokenCookie + "=" + jwtA}, jwtA, ""},
		{"cookie quoted", codec.HTTPRequest{Cookie: TokenCookie + `="` + jwtA + `"`}, jwtA, ""},
		{"cookie name must match exactly", codec.HTTPRequest{Cookie: "Pushd_token=" + jwtA + "; pushd_tokens=" + jwtB}, "", ""},
		{"empty cookie ignored", codec.HTTPRequest{Cookie: TokenCookie + "="}, "", ""},
		{"query beats cookie", codec.HTTPRequest{RawQuery: "token=" + jwtB, Cookie: TokenCookie + "=" + jwtA}, jwtB, ""},
		{"bearer beats cookie", codec.HTTPRequest{Authorization: "Bearer " + jwtC, Cookie: TokenCookie + "=" + jwtA}, jwtC, ""},
		{"protocol beats cookie", codec.HTTPRequest{WebSocketProtocols: []string{ProtocolV1, TokenProtocolPrefix + jwtC}, Cookie: TokenCookie + "=" + jwtA}, jwtC, ProtocolV1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token, protocol := TokenFrom(&tc.req)
			if token != tc.token || protocol != tc.protocol {
				t.Errorf("TokenFrom = %q, %q; want %q, %q", token, protocol, tc.token, tc.protocol)
			}
			for _, p := range tc.req.WebSocketProtocols {
				if protocol != "" && protocol == p && p != ProtocolV1 {
					t.Errorf("echoed protocol %q is not pushd.v1", p)
				}
			}
			if token != "" && (protocol == token || protocol == TokenProtocolPrefix+token) {
				t.Errorf("echoed protocol %q carries the token", protocol)
			}
		})
	}
}

// TestTokenFromParsedRequest runs TokenFrom on a request parsed by codec,
// the way the engine gets it, with the token in a browser-style
// Sec-WebSocket-Protocol header.
func TestTokenFromParsedRequest(t *testing.T) {
	const tok = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"
	raw := "GET /ws?topics=a HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: pushd.v1, pushd.token." + tok + "\r\n\r\n"
	req, _, err := codec.ParseRequest([]byte(raw), codec.RequestLimits{})
	if err != nil {
		t.Fatal(err)
	}
	token, protocol := TokenFrom(&req)
	if token != tok || protocol != ProtocolV1 {
		t.Fatalf("TokenFrom = %q, %q; want the token and pushd.v1", token, protocol)
	}
}
