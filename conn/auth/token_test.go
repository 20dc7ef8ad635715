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
		req      codec.Request
		token    string
		protocol string
	}{
		{"none", codec.Request{}, "", ""},
		{"bearer", codec.Request{Authorization: "Bearer " + jwtA}, jwtA, ""},
		{"bearer scheme is case-insensitive", codec.Request{Authorization: "bEaReR  " + jwtA}, jwtA, ""},
		{"basic is ignored", codec.Request{Authorization: "Basic dXNlcjpwYXNz", RawQuery: "token=" + jwtB}, jwtB, ""},
		{"empty bearer falls through", codec.Request{Authorization: "Bearer ", RawQuery: "token=" + jwtB}, jwtB, ""},
		{"query", codec.Request{RawQuery: "topics=a,b&token=" + jwtB}, jwtB, ""},
		{"query percent-encoded", codec.Request{RawQuery: "token=" + "eyJhbGciOiJIUzI1NiJ9%2EeyJzdWIiOiJiIn0.sigB"}, jwtB, ""},
		{"query first non-empty", codec.Request{RawQuery: "token=&token=" + jwtB + "&token=" + jwtC}, jwtB, ""},
		{"query name must match exactly", codec.Request{RawQuery: "xtoken=" + jwtA + "&tokens=" + jwtC}, "", ""},
		{"protocol", codec.Request{Protocols: []string{ProtocolV1, TokenProtocolPrefix + jwtC}}, jwtC, ProtocolV1},
		{"protocol, token offered first", codec.Request{Protocols: []string{TokenProtocolPrefix + jwtC, ProtocolV1}}, jwtC, ProtocolV1},
		{"protocol without pushd.v1 selects none", codec.Request{Protocols: []string{TokenProtocolPrefix + jwtC}}, jwtC, ""},
		{"empty token protocol ignored", codec.Request{Protocols: []string{ProtocolV1, TokenProtocolPrefix}}, "", ProtocolV1},
		{"other protocols only", codec.Request{Protocols: []string{"chat", "mqtt"}}, "", ""},
		{"bearer beats query and protocol", codec.Request{
			Authorization: "Bearer " + jwtA, RawQuery: "token=" + jwtB,
			Protocols: []string{ProtocolV1, TokenProtocolPrefix + jwtC},
		}, jwtA, ProtocolV1},
		{"query beats protocol", codec.Request{RawQuery: "token=" + jwtB, Protocols: []string{ProtocolV1, TokenProtocolPrefix + jwtC}}, jwtB, ProtocolV1},
		{"pushd.v1 echoed with a query token", codec.Request{RawQuery: "token=" + jwtB, Protocols: []string{ProtocolV1}}, jwtB, ProtocolV1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token, protocol := TokenFrom(&tc.req)
			if token != tc.token || protocol != tc.protocol {
				t.Errorf("TokenFrom = %q, %q; want %q, %q", token, protocol, tc.token, tc.protocol)
			}
			for _, p := range tc.req.Protocols {
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
	req, _, err := codec.ParseUpgrade([]byte(raw), codec.UpgradeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	token, protocol := TokenFrom(&req)
	if token != tok || protocol != ProtocolV1 {
		t.Fatalf("TokenFrom = %q, %q; want the token and pushd.v1", token, protocol)
	}
}
