package wsclient

import (
	"bytes"
	"strings"
	"testing"
)

// The worked example of RFC 6455 §1.3.
const (
	rfcKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

func TestAcceptFor(t *testing.T) {
	if got := string(acceptFor([]byte(rfcKey))); got != rfcAccept {
		t.Fatalf("acceptFor = %s, want %s", got, rfcAccept)
	}
}

func TestAppendRequest(t *testing.T) {
	got := string(appendRequest(nil, "/ws?topics=a", "127.0.0.1:8080", []byte(rfcKey), "Authorization: Bearer x\r\n"))
	for _, want := range []string{
		"GET /ws?topics=a HTTP/1.1\r\n", "Host: 127.0.0.1:8080\r\n", "Upgrade: websocket\r\n",
		"Connection: Upgrade\r\n", "Sec-WebSocket-Key: " + rfcKey + "\r\n", "Sec-WebSocket-Version: 13\r\n",
		"Authorization: Bearer x\r\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("request lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, "\r\n\r\n") {
		t.Errorf("request does not end with an empty line")
	}
}

func TestParseResponse(t *testing.T) {
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + rfcAccept + "\r\n\r\n"
	tests := []struct {
		name string
		in   string
		used int
		kind string // "" for success
	}{
		{"complete", ok, len(ok), ""},
		{"with frame after", ok + "\x81\x02hi", len(ok), ""},
		{"case-insensitive names", "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nsec-websocket-accept: " + rfcAccept + "\r\n\r\n", -1, ""},
		{"partial", ok[:40], 0, ""},
		{"503", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n", 0, "http_503"},
		{"wrong accept", strings.Replace(ok, rfcAccept, "xxxxxxxxxxxxxxxxxxxxxxxxxxxx", 1), 0, "bad_handshake"},
		{"no upgrade", strings.Replace(ok, "Upgrade: websocket\r\n", "", 1), 0, "bad_handshake"},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", 0, "bad_handshake"},
		{"endless header", "HTTP/1.1 101 OK\r\n" + strings.Repeat("X-A: b\r\n", 2000), 0, "bad_handshake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			used, err := parseResponse([]byte(tc.in), []byte(rfcKey))
			if tc.kind != "" {
				re, isResp := err.(*responseError)
				if !isResp || re.Kind != tc.kind {
					t.Fatalf("err = %v, want kind %s", err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			want := tc.used
			if want < 0 {
				want = bytes.Index([]byte(tc.in), []byte("\r\n\r\n")) + 4
			}
			if used != want {
				t.Fatalf("used = %d, want %d", used, want)
			}
		})
	}
}
