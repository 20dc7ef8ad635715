package codec

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAcceptKey(t *testing.T) {
	tests := []struct{ key, want string }{
		{"dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, // RFC 6455 §1.3 and §4.2.2
		{"", hsNaiveAccept("")},
		{strings.Repeat("k", 100), hsNaiveAccept(strings.Repeat("k", 100))}, // longer than the stack buffer
	}
	for _, tt := range tests {
		if got := AcceptKey(tt.key); got != tt.want {
			t.Errorf("AcceptKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// hsNaiveAccept is the straightforward §4.2.2 computation.
func hsNaiveAccept(key string) string {
	h := sha1.New()
	io.WriteString(h, key+"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// hsReadResponse parses raw with net/http to prove it is a well-formed
// response, and checks that nothing follows it.
func hsReadResponse(t *testing.T, raw []byte) (*http.Response, string) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(raw))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("http.ReadResponse(%q): %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if rest, _ := io.ReadAll(r); len(rest) != 0 {
		t.Fatalf("%d bytes after the response: %q", len(rest), rest)
	}
	return resp, string(body)
}

func TestAppendUpgradeResponse(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	tests := []struct {
		name, protocol, golden string
		wantProto              string
	}{
		{
			name: "no protocol",
			golden: "HTTP/1.1 101 Switching Protocols\r\n" +
				"Upgrade: websocket\r\n" +
				"Connection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
				"\r\n",
		},
		{
			name: "protocol", protocol: "v1.pushd", wantProto: "v1.pushd",
			golden: "HTTP/1.1 101 Switching Protocols\r\n" +
				"Upgrade: websocket\r\n" +
				"Connection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
				"Sec-WebSocket-Protocol: v1.pushd\r\n" +
				"\r\n",
		},
		{
			name: "injection attempt", protocol: "x\r\nSet-Cookie: a=b", wantProto: "xSet-Cookie: a=b",
			golden: "HTTP/1.1 101 Switching Protocols\r\n" +
				"Upgrade: websocket\r\n" +
				"Connection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
				"Sec-WebSocket-Protocol: xSet-Cookie: a=b\r\n" +
				"\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			got := AppendUpgradeResponse(prefix, key, tt.protocol)
			if string(got[:4]) != "keep" || string(got[4:]) != tt.golden {
				t.Fatalf("got\n%q\nwant\n%q", got, "keep"+tt.golden)
			}
			resp, _ := hsReadResponse(t, got[4:])
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("status %d", resp.StatusCode)
			}
			if v := resp.Header.Get("Sec-WebSocket-Accept"); v != AcceptKey(key) {
				t.Errorf("accept %q", v)
			}
			if v := resp.Header.Get("Sec-WebSocket-Protocol"); v != tt.wantProto {
				t.Errorf("protocol %q, want %q", v, tt.wantProto)
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("header injection: %q", resp.Header)
			}
		})
	}
}

func TestAppendHTTPError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		reason     string
		header     [][2]string
		golden     string
		wantStatus int
	}{
		{
			name: "426", status: 426, reason: "unsupported WebSocket version",
			header: [][2]string{{"Sec-WebSocket-Version", "13"}}, wantStatus: 426,
			golden: "HTTP/1.1 426 Upgrade Required\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Content-Length: 30\r\n" +
				"Connection: close\r\n" +
				"Sec-WebSocket-Version: 13\r\n" +
				"\r\n" +
				"unsupported WebSocket version\n",
		},
		{
			name: "405", status: 405, reason: "method not allowed", header: [][2]string{{"Allow", "GET"}}, wantStatus: 405,
			golden: "HTTP/1.1 405 Method Not Allowed\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Content-Length: 19\r\n" +
				"Connection: close\r\n" +
				"Allow: GET\r\n" +
				"\r\n" +
				"method not allowed\n",
		},
		{
			name: "431 empty reason", status: 431, wantStatus: 431,
			golden: "HTTP/1.1 431 Request Header Fields Too Large\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Content-Length: 1\r\n" +
				"Connection: close\r\n" +
				"\r\n" +
				"\n",
		},
		{
			name: "out of range", status: 42, reason: "x", wantStatus: 500,
			golden: "HTTP/1.1 500 Internal Server Error\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Content-Length: 2\r\n" +
				"Connection: close\r\n" +
				"\r\n" +
				"x\n",
		},
		{
			name: "unregistered status", status: 599, reason: "x", wantStatus: 599,
			golden: "HTTP/1.1 599 Unknown\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Content-Length: 2\r\n" +
				"Connection: close\r\n" +
				"\r\n" +
				"x\n",
		},
		{
			name: "hostile header", status: 400, reason: "bad\r\n\r\nHTTP/1.1 200 OK", wantStatus: 400,
			header: [][2]string{{"Bad Name", "v"}, {"X-A", "a\r\nSet-Cookie: s"}, {"", "v"}},
			golden: "HTTP/1.1 400 Bad Request\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Content-Length: 23\r\n" +
				"Connection: close\r\n" +
				"X-A: aSet-Cookie: s\r\n" +
				"\r\n" +
				"bad\r\n\r\nHTTP/1.1 200 OK\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendHTTPError(nil, tt.status, tt.reason, tt.header...)
			if string(got) != tt.golden {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.golden)
			}
			resp, body := hsReadResponse(t, got)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if body != tt.reason+"\n" {
				t.Errorf("body %q", body)
			}
			if !resp.Close {
				t.Errorf("response does not close the connection")
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("header injection: %q", resp.Header)
			}
		})
	}
}

// TestHandshakeErrorResponse writes every rejection ParseUpgrade produces in
// TestParseUpgradeReject's shapes and checks net/http reads it back.
func TestHandshakeErrorResponse(t *testing.T) {
	heads := []string{
		hsRequest("POST /ws HTTP/1.1", hsMinimal("")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Host")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", "X: "+strings.Repeat("a", 9000))...),
	}
	for _, head := range heads {
		_, _, err := ParseUpgrade([]byte(head), UpgradeLimits{})
		he, ok := err.(*HandshakeError)
		if !ok {
			t.Fatalf("err = %v", err)
		}
		resp, body := hsReadResponse(t, AppendHTTPError(nil, he.Status, he.Reason, he.Header...))
		if resp.StatusCode != he.Status || body != he.Reason+"\n" {
			t.Errorf("status %d body %q, want %d %q", resp.StatusCode, body, he.Status, he.Reason)
		}
		for _, kv := range he.Header {
			if got := resp.Header.Get(kv[0]); got != kv[1] {
				t.Errorf("%s: %q, want %q", kv[0], got, kv[1])
			}
		}
	}
}

func TestResponseAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		_ = AppendUpgradeResponse(buf[:0], "dGhlIHNhbXBsZSBub25jZQ==", "v1.pushd")
	}); n != 0 {
		t.Errorf("AppendUpgradeResponse: %v allocs, want 0", n)
	}
	hdr := [][2]string{{"Sec-WebSocket-Version", "13"}}
	if n := testing.AllocsPerRun(100, func() {
		_ = AppendHTTPError(buf[:0], 426, "unsupported WebSocket version", hdr...)
	}); n != 0 {
		t.Errorf("AppendHTTPError: %v allocs, want 0", n)
	}
}

func BenchmarkAppendUpgradeResponse(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendUpgradeResponse(buf[:0], "dGhlIHNhbXBsZSBub25jZQ==", "")
	}
}
