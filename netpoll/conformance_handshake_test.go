package netpoll_test

// The opening handshake over real sockets (RFC 6455 §4.2.1–4.2.2): every
// malformed request gets its status and the connection closed, a valid one
// gets 101 with the right Sec-WebSocket-Accept, and the bytes behind the
// request are kept. Like the frame cases, each request is written whole, in
// random pieces and one byte at a time.

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// rawRequest joins a request line and header lines into a request head.
func rawRequest(requestLine string, headers ...string) []byte {
	return []byte(requestLine + "\r\n" + strings.Join(append(headers, ""), "\r\n") + "\r\n")
}

// Header lines of a valid request, for building invalid ones.
const (
	hHost       = "Host: 127.0.0.1"
	hUpgrade    = "Upgrade: websocket"
	hConnection = "Connection: Upgrade"
	hKey        = "Sec-WebSocket-Key: " + testKey
	hVersion    = "Sec-WebSocket-Version: 13"
	getEcho     = "GET " + echoPath + " HTTP/1.1"
)

// handshakeCase is one request and the response it must get.
type handshakeCase struct {
	name    string
	request []byte
	status  int
	header  map[string]string // header fields the response must carry (values compared case-insensitively)
	frames  []clientFrame     // sent right behind the request (101 only)
	want    []expect          // server frames expected after a 101
}

// manyHeaders returns n distinct header lines of about width bytes each.
func manyHeaders(n, width int) []string {
	hs := make([]string, n)
	for i := range hs {
		name := fmt.Sprintf("X-Filler-%d: ", i)
		hs[i] = name + strings.Repeat("v", max(1, width-len(name)))
	}
	return hs
}

// handshakeCases lists the requests and their required responses.
func handshakeCases() []handshakeCase {
	valid := func(extra ...string) []byte {
		return rawRequest(getEcho, append([]string{hHost, hUpgrade, hConnection, hKey, hVersion}, extra...)...)
	}
	ok := func(name string, req []byte) handshakeCase {
		return handshakeCase{name: name, request: req, status: http.StatusSwitchingProtocols,
			frames: frames(closeFrame(1000, "")), want: []expect{wantClose(1000)}}
	}
	key15 := base64.StdEncoding.EncodeToString([]byte("fifteen bytes!!"))
	key17 := base64.StdEncoding.EncodeToString([]byte("seventeen bytes!!"))
	return []handshakeCase{
		ok("valid", valid()),
		ok("valid/header-names-any-case", rawRequest(getEcho, "host: 127.0.0.1", "upgrade: WebSocket",
			"connection: upgrade", "sec-websocket-key: "+testKey, "sec-websocket-version: 13")),
		ok("valid/connection-token-list", rawRequest(getEcho, hHost, hUpgrade, "Connection: keep-alive, Upgrade", hKey, hVersion)),
		ok("valid/extra-headers", valid("Origin: http://example.com", "User-Agent: conformance", "Accept: */*")),
		{
			name: "valid/first-frame-in-same-write", request: valid(), status: http.StatusSwitchingProtocols,
			frames: frames(textFrame("first"), binFrame([]byte{1, 2, 3}), closeFrame(1000, "")),
			want:   []expect{wantText("first"), wantBin([]byte{1, 2, 3}), wantClose(1000)},
		},
		{
			// The bytes behind the head are not part of it: a first frame
			// larger than the header limit must not turn into a 431.
			name: "valid/large-first-frame-in-same-write", request: valid(), status: http.StatusSwitchingProtocols,
			frames: frames(binFrame(binPayload(20000)), closeFrame(1000, "")),
			want:   []expect{wantBin(binPayload(20000)), wantClose(1000)},
		},
		ok("valid/head-just-under-8KiB", valid("X-Big: "+strings.Repeat("b", 8<<10-300))),
		ok("valid/60-header-fields", valid(manyHeaders(55, 14)...)),
		{name: "unknown-path", request: rawRequest("GET /nope HTTP/1.1", hHost, hUpgrade, hConnection, hKey, hVersion),
			status: http.StatusNotFound},
		{name: "method-POST", request: rawRequest("POST "+echoPath+" HTTP/1.1", hHost, hUpgrade, hConnection, hKey, hVersion,
			"Content-Length: 0"), status: http.StatusMethodNotAllowed},
		{name: "missing-Host", request: rawRequest(getEcho, hUpgrade, hConnection, hKey, hVersion), status: http.StatusBadRequest},
		{name: "missing-Upgrade", request: rawRequest(getEcho, hHost, hConnection, hKey, hVersion), status: http.StatusBadRequest},
		{name: "Upgrade-not-websocket", request: rawRequest(getEcho, hHost, "Upgrade: h2c", hConnection, hKey, hVersion),
			status: http.StatusBadRequest},
		{name: "missing-Connection", request: rawRequest(getEcho, hHost, hUpgrade, hKey, hVersion), status: http.StatusBadRequest},
		{name: "Connection-without-upgrade", request: rawRequest(getEcho, hHost, hUpgrade, "Connection: keep-alive", hKey, hVersion),
			status: http.StatusBadRequest},
		{name: "missing-key", request: rawRequest(getEcho, hHost, hUpgrade, hConnection, hVersion), status: http.StatusBadRequest},
		{name: "key-not-base64", request: rawRequest(getEcho, hHost, hUpgrade, hConnection, "Sec-WebSocket-Key: not base64 at all!", hVersion),
			status: http.StatusBadRequest},
		{name: "key-15-bytes", request: rawRequest(getEcho, hHost, hUpgrade, hConnection, "Sec-WebSocket-Key: "+key15, hVersion),
			status: http.StatusBadRequest},
		{name: "key-17-bytes", request: rawRequest(getEcho, hHost, hUpgrade, hConnection, "Sec-WebSocket-Key: "+key17, hVersion),
			status: http.StatusBadRequest},
		{name: "version-8", request: rawRequest(getEcho, hHost, hUpgrade, hConnection, hKey, "Sec-WebSocket-Version: 8"),
			status: http.StatusUpgradeRequired, header: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "2000-headers", request: valid(manyHeaders(2000, 16)...), status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "100-small-headers", request: valid(manyHeaders(100, 14)...), status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "head-over-8KiB", request: valid("X-Big: " + strings.Repeat("b", 8<<10)), status: http.StatusRequestHeaderFieldsTooLarge},
	}
}

// checkHandshake returns how ex differs from what hc expects.
func checkHandshake(ex exchange, hc handshakeCase) []string {
	if hc.status == http.StatusSwitchingProtocols {
		problems := checkExchange(ex, hc.want)
		if ex.status == http.StatusSwitchingProtocols {
			problems = append(problems, checkUpgradeHeaders(ex.header)...)
		}
		return problems
	}
	var problems []string
	if ex.status != hc.status {
		problems = append(problems, fmt.Sprintf("status %d, want %d (read ended with %v)", ex.status, hc.status, ex.end))
	}
	for k, v := range hc.header {
		if got := ex.header.Get(k); !strings.EqualFold(got, v) {
			problems = append(problems, fmt.Sprintf("header %s: %q, want %q", k, got, v))
		}
	}
	if !ex.closed() {
		problems = append(problems, fmt.Sprintf("connection not closed after the rejection: %v", ex.end))
	}
	return problems
}

// checkUpgradeHeaders checks the fields a 101 must carry (§4.2.2 item 5).
func checkUpgradeHeaders(h http.Header) []string {
	var problems []string
	if !strings.EqualFold(h.Get("Upgrade"), "websocket") {
		problems = append(problems, fmt.Sprintf("Upgrade: %q, want websocket", h.Get("Upgrade")))
	}
	if !strings.Contains(strings.ToLower(h.Get("Connection")), "upgrade") {
		problems = append(problems, fmt.Sprintf("Connection: %q, want Upgrade", h.Get("Connection")))
	}
	// No extension or subprotocol was requested and accepted, so none may be
	// claimed (§4.2.2 item 5.4–5.5, §9.1).
	for _, k := range []string{"Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"} {
		if v := h.Get(k); v != "" {
			problems = append(problems, fmt.Sprintf("unexpected %s: %q", k, v))
		}
	}
	return problems
}

// TestConformanceHandshake runs every handshake case three ways, like the
// frame cases.
func TestConformanceHandshake(t *testing.T) {
	t.Parallel()
	addr := startServer(t, netpoll.Config{Loops: 2}, ws.Config{}).Addr()
	var cases []streamCase
	for _, hc := range handshakeCases() {
		cases = append(cases, streamCase{
			name: hc.name,
			stream: func() []byte {
				maskRNG := rand.New(rand.NewPCG(hashName(hc.name), 1))
				return append(append([]byte(nil), hc.request...), encodeFrames(maskRNG, hc.frames)...)
			},
			// A rejection comes at once; don't wait long for a missing one.
			timeout: failFastTimeout,
			check:   func(ex exchange) []string { return checkHandshake(ex, hc) },
			frames:  hc.frames,
		})
	}
	runStreams(t, addr, cases)
}
