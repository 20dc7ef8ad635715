package codec

import (
	"bufio"
	"bytes"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// rqPollingGET is what socket.io-client 4.8 sends from Chrome for a long-poll.
const rqPollingGET = "GET /socket.io/?EIO=4&transport=polling&t=PXm3x1a&sid=Ws5nDDm2x9ujE3TNAAAB HTTP/1.1\r\n" +
	"Host: push.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"sec-ch-ua-platform: \"Linux\"\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n" +
	"Accept: */*\r\n" +
	"Origin: https://app.example.com\r\n" +
	"Sec-Fetch-Site: same-site\r\n" +
	"Sec-Fetch-Mode: cors\r\n" +
	"Sec-Fetch-Dest: empty\r\n" +
	"Referer: https://app.example.com/\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: io=Ws5nDDm2x9ujE3TNAAAB; session=abc.def.ghi\r\n" +
	"\r\n"

// rqPollingPOST is an Engine.IO POST with its body right behind the head.
const rqPollingPOST = "POST /socket.io/?EIO=4&transport=polling&t=PXm3x1b&sid=Ws5nDDm2x9ujE3TNAAAB HTTP/1.1\r\n" +
	"Host: push.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"Content-Length: 19\r\n" +
	"Content-type: text/plain;charset=UTF-8\r\n" +
	"Accept: */*\r\n" +
	"Origin: https://app.example.com\r\n" +
	"\r\n"

const rqPollingPOSTBody = "42[\"sub\",\"a.b\"]\x1e3\x1e6"

// rqWantReject checks that err is an *HTTPError with the given status and,
// if header is not nil, exactly those extra headers.
func rqWantReject(t *testing.T, err error, status int, header [][2]string) {
	t.Helper()
	hsWantReject(t, err, status, header)
}

func TestParseRequestValid(t *testing.T) {
	tests := []struct {
		name string
		head string
		want HTTPRequest
	}{
		{
			name: "polling GET",
			head: rqPollingGET,
			want: HTTPRequest{
				Method: "GET", Path: "/socket.io/", RawQuery: "EIO=4&transport=polling&t=PXm3x1a&sid=Ws5nDDm2x9ujE3TNAAAB",
				ProtoMinor: 1, Host: "push.example.com", Origin: "https://app.example.com",
				Cookie: "io=Ws5nDDm2x9ujE3TNAAAB; session=abc.def.ghi", Accept: "*/*",
				ContentLength: -1, KeepAlive: true, Headers: 13,
			},
		},
		{
			name: "polling POST",
			head: rqPollingPOST,
			want: HTTPRequest{
				Method: "POST", Path: "/socket.io/", RawQuery: "EIO=4&transport=polling&t=PXm3x1b&sid=Ws5nDDm2x9ujE3TNAAAB",
				ProtoMinor: 1, Host: "push.example.com", Origin: "https://app.example.com",
				Accept: "*/*", ContentType: "text/plain;charset=UTF-8", ContentLength: 19, KeepAlive: true, Headers: 6,
			},
		},
		{
			name: "EventSource reconnect",
			head: hsRequest("GET /events?topics=a HTTP/1.1",
				"Host: h:8080", "Accept: text/event-stream", "Cache-Control: no-cache",
				"Last-Event-ID: 7:1234", "Connection: close"),
			want: HTTPRequest{
				Method: "GET", Path: "/events", RawQuery: "topics=a", ProtoMinor: 1, Host: "h:8080",
				Accept: "text/event-stream", LastEventID: "7:1234", ContentLength: -1, Headers: 5,
			},
		},
		{
			name: "CORS preflight",
			head: hsRequest("OPTIONS /socket.io/?EIO=4 HTTP/1.1",
				"Host: h", "Origin: https://a.example", "Access-Control-Request-Method: POST",
				"Access-Control-Request-Headers: x-token", "access-control-request-headers: content-type,, x-b"),
			want: HTTPRequest{
				Method: "OPTIONS", Path: "/socket.io/", RawQuery: "EIO=4", ProtoMinor: 1, Host: "h",
				Origin: "https://a.example", AccessControlRequestMethod: "POST",
				AccessControlRequestHeaders: "x-token, content-type,, x-b", ContentLength: -1, KeepAlive: true, Headers: 5,
			},
		},
		{
			name: "HTTP/1.0 without Host, keep-alive",
			head: hsRequest("HEAD /static/app.js HTTP/1.0", "Connection: Keep-Alive", "If-None-Match: \"x1\"",
				"If-None-Match: W/\"x2\", \"x3\"", "Expect: 100-continue"),
			want: HTTPRequest{
				Method: "HEAD", Path: "/static/app.js", IfNoneMatch: "\"x1\", W/\"x2\", \"x3\"",
				ContentLength: -1, KeepAlive: true, Headers: 4,
			},
		},
		{
			name: "HTTP/1.0 closes by default",
			head: hsRequest("GET / HTTP/1.0", "Host: h"),
			want: HTTPRequest{Method: "GET", Path: "/", Host: "h", ContentLength: -1, Headers: 1},
		},
		{
			name: "close wins over keep-alive",
			head: hsRequest("GET / HTTP/1.1", "Host: h", "Connection: keep-alive", "connection: CLOSE"),
			want: HTTPRequest{Method: "GET", Path: "/", ProtoMinor: 1, Host: "h", ContentLength: -1, Headers: 3},
		},
		{
			name: "Expect and zero body",
			head: hsRequest("POST /p HTTP/1.1", "Host: h", "Expect: 100-Continue", "Content-Length: 000"),
			want: HTTPRequest{
				Method: "POST", Path: "/p", ProtoMinor: 1, Host: "h", ContentLength: 0,
				KeepAlive: true, ExpectContinue: true, Headers: 3,
			},
		},
		{
			name: "WebSocket upgrade",
			head: hsBrowserRequest,
			want: HTTPRequest{
				Method: "GET", Path: "/ws", RawQuery: "topics=a,b", ProtoMinor: 1, Host: "push.example.com",
				Origin: "https://app.example.com", Cookie: "session=abcdef0123456789", ContentLength: -1,
				KeepAlive: true, UpgradeWebSocket: true, ConnectionUpgrade: true,
				WebSocketKey: "dGhlIHNhbXBsZSBub25jZQ==", WebSocketVersion: "13",
				WebSocketExtensions: "permessage-deflate; client_max_window_bits", Headers: 13,
			},
		},
		{
			name: "protocol lists, extensions, X-Forwarded-For, OWS, case",
			head: hsRequest("GET /a?x=%20y HTTP/1.1",
				"hOsT: \t [::1]:80 \t",
				"Sec-WebSocket-Protocol: v1.pushd, bearer.abc",
				"SEC-WEBSOCKET-PROTOCOL: ,chat ,",
				"Sec-WebSocket-Protocol:",
				"Sec-WebSocket-Extensions: a",
				"Sec-WebSocket-Extensions: b; x=1",
				"Authorization: Bearer xyz",
				"X-Forwarded-For: 203.0.113.7, 10.0.0.1",
				"X-Forwarded-For: 10.0.0.2",
				"Content-Type: text/plain",
				"X-Empty:",
				"X-Obs-Text: caf\xc3\xa9"),
			want: HTTPRequest{
				Method: "GET", Path: "/a", RawQuery: "x=%20y", ProtoMinor: 1, Host: "[::1]:80",
				Authorization: "Bearer xyz", XForwardedFor: "203.0.113.7", ContentType: "text/plain",
				ContentLength: -1, KeepAlive: true,
				WebSocketProtocols:  []string{"v1.pushd", "bearer.abc", "chat"},
				WebSocketExtensions: "a, b; x=1", Headers: 12,
			},
		},
		{
			name: "single protocol",
			head: hsRequest("GET / HTTP/1.1", "Host: h", "Sec-WebSocket-Protocol:  , v1 ,"),
			want: HTTPRequest{
				Method: "GET", Path: "/", ProtoMinor: 1, Host: "h", ContentLength: -1, KeepAlive: true,
				WebSocketProtocols: []string{"v1"}, Headers: 2,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "body bytes\x00\xff"
			p := []byte(tt.head + body)
			orig := bytes.Clone(p)
			req, n, err := ParseRequest(p, RequestLimits{})
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if n != len(tt.head) {
				t.Errorf("n = %d, want %d", n, len(tt.head))
			}
			if !reflect.DeepEqual(req, tt.want) {
				t.Errorf("req =\n%+v\nwant\n%+v", req, tt.want)
			}
			if !bytes.Equal(p, orig) {
				t.Errorf("ParseRequest modified its input")
			}
			for i := range p {
				p[i] = 'x'
			}
			if !reflect.DeepEqual(req, tt.want) {
				t.Errorf("req aliases the input buffer: %+v", req)
			}
		})
	}
}

func TestParseRequestReject(t *testing.T) {
	allow := [][2]string{{"Allow", "GET, HEAD, POST, OPTIONS"}}
	get := func(headers ...string) string {
		return hsRequest("GET / HTTP/1.1", append([]string{"Host: h"}, headers...)...)
	}
	tests := []struct {
		name   string
		head   string
		status int
		header [][2]string
	}{
		{"PUT", hsRequest("PUT / HTTP/1.1", "Host: h"), 405, allow},
		{"lowercase get", hsRequest("get / HTTP/1.1", "Host: h"), 405, allow},
		{"DELETE before head is complete", "DELETE / HTTP/1.1\r\nHost: x", 405, allow},
		{"CONNECT", hsRequest("CONNECT h:443 HTTP/1.1", "Host: h"), 405, allow},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, nil},
		{"HTTP/1.2", hsRequest("GET / HTTP/1.2", "Host: h"), 505, nil},
		{"HTTP/0.9 style", "GET /\r\n\r\n", 400, nil},
		{"lowercase http", hsRequest("GET / http/1.1", "Host: h"), 400, nil},
		{"version without minor", hsRequest("GET / HTTP/1", "Host: h"), 400, nil},
		{"version with two digits", hsRequest("GET / HTTP/1.10", "Host: h"), 400, nil},
		{"version check before method", hsRequest("PUT / HTTP/3.0", "Host: h"), 505, nil},
		{"TLS client hello, no line end yet", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, nil},
		{"double space", hsRequest("GET  / HTTP/1.1", "Host: h"), 400, nil},
		{"trailing space", hsRequest("GET / HTTP/1.1 ", "Host: h"), 400, nil},
		{"space in target", hsRequest("GET /a b HTTP/1.1", "Host: h"), 400, nil},
		{"absolute form", hsRequest("GET http://h/ HTTP/1.1", "Host: h"), 400, nil},
		{"asterisk form", hsRequest("OPTIONS * HTTP/1.1", "Host: h"), 400, nil},
		{"fragment", hsRequest("GET /#x HTTP/1.1", "Host: h"), 400, nil},
		{"bad escape in path", hsRequest("GET /%zz HTTP/1.1", "Host: h"), 400, nil},
		{"non-ASCII target", hsRequest("GET /\xc3\xa9 HTTP/1.1", "Host: h"), 400, nil},
		{"bare LF", "GET / HTTP/1.1\r\nHost: x\n\r\n", 400, nil},
		{"NUL in value", get("X-A: a\x00b"), 400, nil},
		{"space before colon", get("X-A : b"), 400, nil},
		{"obs-fold", get("X-A: b", " c"), 400, nil},
		{"missing Host", hsRequest("GET / HTTP/1.1", "X: y"), 400, nil},
		{"empty Host", hsRequest("GET / HTTP/1.1", "Host:  "), 400, nil},
		{"empty Host, HTTP/1.0 still checked for syntax", hsRequest("GET / HTTP/1.0", "Host: a b"), 400, nil},
		{"Host with markup", get("X: y")[:len("GET / HTTP/1.1\r\nHost: h")] + "<x>\r\n\r\n", 400, nil},
		{"Host with userinfo", hsRequest("GET / HTTP/1.1", "Host: u@h"), 400, nil},
		{"repeated Host", get("Host: h"), 400, nil},
		{"repeated Content-Length, same value", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 1", "Content-Length: 1"), 400, nil},
		{"Content-Length list", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 1, 1"), 400, nil},
		{"Content-Length signed", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: +1"), 400, nil},
		{"Content-Length empty", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length:"), 400, nil},
		{"Content-Length hex", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 0x10"), 400, nil},
		{"repeated Cookie", get("Cookie: a=1", "Cookie: b=2"), 400, nil},
		{"repeated Origin", get("Origin: a", "Origin: b"), 400, nil},
		{"repeated Authorization", get("Authorization: a", "Authorization: b"), 400, nil},
		{"repeated Last-Event-ID", get("Last-Event-ID: 1", "Last-Event-ID: 2"), 400, nil},
		{"repeated Content-Type", get("Content-Type: a", "Content-Type: b"), 400, nil},
		{"repeated Access-Control-Request-Method", get("Access-Control-Request-Method: GET", "Access-Control-Request-Method: GET"), 400, nil},
		{"repeated key", get("Sec-WebSocket-Key: a", "Sec-WebSocket-Key: b"), 400, nil},
		{"repeated version", get("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13"), 400, nil},
		{"bad protocol token", get("Sec-WebSocket-Protocol: a b"), 400, nil},
		{"body too large", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 1048577"), 413, nil},
		{"body length beyond int64", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 99999999999999999999999999"), 413, nil},
		{"body length beyond int64 then junk", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 99999999999999999999999999x"), 400, nil},
		{"chunked", hsRequest("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"), 411, nil},
		{"gzip, chunked", hsRequest("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: gzip, Chunked"), 411, nil},
		{"chunked with Content-Length", hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 3", "Transfer-Encoding: chunked"), 411, nil},
		{"gzip", hsRequest("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: gzip"), 501, nil},
		{"empty Transfer-Encoding", hsRequest("GET / HTTP/1.1", "Host: h", "Transfer-Encoding:"), 501, nil},
		{"chunked then gzip", hsRequest("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked, gzip"), 501, nil},
		{"unknown expectation", get("Expect: 200-ok"), 417, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, n, err := ParseRequest([]byte(tt.head), RequestLimits{})
			rqWantReject(t, err, tt.status, tt.header)
			if n != 0 || !reflect.DeepEqual(req, HTTPRequest{}) {
				t.Errorf("n = %d, req = %+v on error, want zero values", n, req)
			}
		})
	}
}

func TestParseRequestLimits(t *testing.T) {
	many := func(n int) []string {
		hs := []string{"Host: h"}
		for i := range n {
			hs = append(hs, "X-H"+strconv.Itoa(i)+": v")
		}
		return hs
	}
	post := func(cl string) string { return hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: "+cl) }
	tests := []struct {
		name string
		head string
		lim  RequestLimits
		want int // status; 0 means success
	}{
		{"64 headers", hsRequest("GET / HTTP/1.1", many(63)...), RequestLimits{}, 0},
		{"65 headers", hsRequest("GET / HTTP/1.1", many(64)...), RequestLimits{}, 431},
		{"custom MaxHeaders", hsRequest("GET / HTTP/1.1", many(2)...), RequestLimits{MaxHeaders: 2}, 431},
		{"value over 8192", hsRequest("GET / HTTP/1.1", "Host: h", "X: "+strings.Repeat("a", 9000)), RequestLimits{}, 431},
		{"value over 8192, large byte limit", hsRequest("GET / HTTP/1.1", "Host: h", "X: "+strings.Repeat("a", 9000)), RequestLimits{MaxHeaderBytes: 10000}, 0},
		{"request line over the limit", "GET /" + strings.Repeat("a", 9000), RequestLimits{}, 431},
		{"default body limit", post("1048576"), RequestLimits{}, 0},
		{"custom body limit", post("11"), RequestLimits{MaxBody: 10}, 413},
		{"custom body limit, at it", post("10"), RequestLimits{MaxBody: 10}, 0},
		{"no body allowed", post("1"), RequestLimits{MaxBody: -1}, 413},
		{"no body allowed, zero length", post("0"), RequestLimits{MaxBody: -1}, 0},
		{"huge limit", post("9223372036854775807"), RequestLimits{MaxBody: 1<<63 - 1}, 0},
		{"huge limit, one more", post("9223372036854775808"), RequestLimits{MaxBody: 1<<63 - 1}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseRequest([]byte(tt.head), tt.lim)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				return
			}
			rqWantReject(t, err, tt.want, nil)
		})
	}
}

// TestParseRequestExactLimit pins the boundary as for ParseUpgrade.
func TestParseRequestExactLimit(t *testing.T) {
	head := rqPollingGET
	lim := RequestLimits{MaxHeaderBytes: len(head)}
	if _, n, err := ParseRequest([]byte(head+"next request"), lim); err != nil || n != len(head) {
		t.Fatalf("exact limit: n=%d err=%v, want %d, nil", n, err, len(head))
	}
	longer := strings.Replace(head, "Host:", "X: y\r\nHost:", 1)
	if _, _, err := ParseRequest([]byte(longer[:len(head)]), lim); err != ErrNeedMore {
		t.Fatalf("prefix at the limit: err=%v, want ErrNeedMore", err)
	}
	_, _, err := ParseRequest([]byte(longer[:len(head)+1]), lim)
	rqWantReject(t, err, 431, nil)
}

// rqCheckSplits feeds every prefix of p into ParseRequest the way a server
// does (bytes accumulate; parse again after each read) and checks that each
// gives ErrNeedMore or the same result as the whole input.
func rqCheckSplits(t *testing.T, p []byte, lim RequestLimits) {
	t.Helper()
	wantReq, wantN, wantErr := ParseRequest(p, lim)
	for k := 0; k <= len(p); k++ {
		req, n, err := ParseRequest(p[:k], lim)
		if err == ErrNeedMore {
			if n != 0 || !reflect.DeepEqual(req, HTTPRequest{}) {
				t.Fatalf("split %d: ErrNeedMore with n=%d req=%+v", k, n, req)
			}
			continue
		}
		if !reflect.DeepEqual(req, wantReq) || n != wantN || !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("split %d: got (%+v, %d, %v), want (%+v, %d, %v)", k, req, n, err, wantReq, wantN, wantErr)
		}
	}
}

func TestParseRequestSplits(t *testing.T) {
	heads := map[string]string{
		"polling GET":    rqPollingGET,
		"polling POST":   rqPollingPOST + rqPollingPOSTBody,
		"pipelined":      rqPollingGET + rqPollingGET,
		"browser":        hsBrowserRequest + "\x81\x80abcd",
		"PUT":            hsRequest("PUT / HTTP/1.1", "Host: h"),
		"505":            hsRequest("GET / HTTP/2.0", "Host: h"),
		"413":            hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: 99999999"),
		"411":            hsRequest("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"),
		"malformed line": hsRequest("GET / HTTP/1.1", "Host: h", "bad line"),
		"missing Host":   hsRequest("GET / HTTP/1.1", "X: y"),
		"bare LF":        "GET / HTTP/1.1\r\nHost: x\n\r\n",
		"TLS":            "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\x00",
		"joined lists":   hsRequest("GET / HTTP/1.1", "Host: h", "Accept: a", "Accept: b", "Sec-WebSocket-Protocol: x, y", "Sec-WebSocket-Protocol: z"),
	}
	for name, head := range heads {
		t.Run(name, func(t *testing.T) {
			rqCheckSplits(t, []byte(head), RequestLimits{})
			rqCheckSplits(t, []byte(head), RequestLimits{MaxHeaderBytes: 64, MaxHeaders: 3, MaxBody: 5})
		})
	}
}

// TestParseRequestByteByByte feeds a POST one byte at a time, then reads
// its body and the next request behind it, as a keep-alive connection does.
func TestParseRequestByteByByte(t *testing.T) {
	stream := []byte(rqPollingPOST + rqPollingPOSTBody + rqPollingGET)
	var buf []byte
	var got []HTTPRequest
	for _, c := range stream {
		buf = append(buf, c)
		for {
			req, n, err := ParseRequest(buf, RequestLimits{})
			if err == ErrNeedMore {
				break
			}
			if err != nil {
				t.Fatalf("after %d buffered bytes: %v", len(buf), err)
			}
			if req.ContentLength > 0 && int64(len(buf)-n) < req.ContentLength {
				break // the body is not all here yet
			}
			got = append(got, req)
			buf = buf[n+int(max(req.ContentLength, 0)):]
		}
	}
	if len(got) != 2 || got[0].Method != "POST" || got[0].ContentLength != int64(len(rqPollingPOSTBody)) || got[1].Method != "GET" || len(buf) != 0 {
		t.Fatalf("got %+v, %d bytes left", got, len(buf))
	}
}

// rqRandomRequest builds a plain request that is valid or nearly so: random
// method, version, letter case, whitespace, list syntax, headers pushd reads
// (repeated where that is allowed) and others, and sometimes one broken byte.
func rqRandomRequest(r *rand.Rand) []byte {
	pick := func(opts ...string) string { return opts[r.IntN(len(opts))] }
	randCase := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if r.IntN(2) == 0 {
				b[i] = byte(strings.ToUpper(string(c))[0])
			} else {
				b[i] = byte(strings.ToLower(string(c))[0])
			}
		}
		return string(b)
	}
	ows := func() string { return pick("", "", " ", "\t", "  \t ") }
	randBytes := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	const targetChars = "abcXYZ019-._~!$&'()*+,;=:@/?%41"
	const valueChars = "abc XYZ019-._~!$&'()*+,;=:@/?\"\t\x80\xff\xc3\xa9<>{}"
	method := pick("GET", "GET", "POST", "HEAD", "OPTIONS")
	version := pick("HTTP/1.1", "HTTP/1.1", "HTTP/1.0")
	var headers []string
	if version == "HTTP/1.1" || r.IntN(2) == 0 {
		headers = append(headers, randCase("Host")+":"+ows()+pick("example.com", "a.b:8080", "[::1]:80", "h")+ows())
	}
	single := []string{"Origin", "Authorization", "Cookie", "Last-Event-ID", "Content-Type", "Access-Control-Request-Method", "Content-Length"}
	r.Shuffle(len(single), func(i, j int) { single[i], single[j] = single[j], single[i] })
	for _, name := range single[:r.IntN(len(single))] {
		value := randBytes(valueChars, r.IntN(20))
		switch name {
		case "Content-Length":
			value = pick("0", "5", "0012", "1048576")
		case "Cookie":
			value = pick("a=b", "io=x; s=\"q\"", "a=1;b=2", "")
		}
		headers = append(headers, randCase(name)+":"+ows()+value+ows())
	}
	for range r.IntN(8) {
		name := pick("Accept", "If-None-Match", "Access-Control-Request-Headers", "Sec-WebSocket-Extensions",
			"Sec-WebSocket-Protocol", "Connection", "Upgrade", "X-Forwarded-For", "Expect", "User-Agent",
			"X-"+randBytes("abcdef-_!#", 1+r.IntN(5)))
		value := randBytes(valueChars, r.IntN(20))
		switch name {
		case "Sec-WebSocket-Protocol":
			value = pick("a", "a, b", "v1.pushd,bearer.x", " , x ,", "")
		case "Connection":
			value = pick("close", "keep-alive", "Upgrade", "keep-alive, Upgrade", "")
		case "Expect":
			value = pick("100-continue", "")
		}
		headers = append(headers, randCase(name)+":"+ows()+value+ows())
	}
	r.Shuffle(len(headers), func(i, j int) { headers[i], headers[j] = headers[j], headers[i] })
	req := []byte(hsRequest(method+" /"+randBytes(targetChars, r.IntN(12))+" "+version, headers...))
	if r.IntN(4) == 0 { // break or perturb one byte
		req[r.IntN(len(req))] = byte(r.Uint32())
	}
	return req
}

func TestParseRequestRandomAgainstNetHTTP(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	accepted := 0
	for i := range 4000 {
		p := rqRandomRequest(r)
		if _, _, err := ParseRequest(p, RequestLimits{}); err == nil {
			accepted++
		}
		rqCompareNetHTTP(t, p)
		if i%40 == 0 {
			rqCheckSplits(t, p, RequestLimits{})
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d of 4000 random requests accepted: the generator no longer exercises the success path", accepted)
	}
}

// rqJoin joins the non-empty trimmed values of a header the way ParseRequest
// documents.
func rqJoin(vs []string, tokens bool) string {
	var out []string
	for _, v := range vs {
		v = strings.Trim(v, " \t")
		if !tokens {
			if v != "" {
				out = append(out, v)
			}
			continue
		}
		for _, e := range strings.Split(v, ",") {
			if e = strings.Trim(e, " \t"); e != "" {
				out = append(out, e)
			}
		}
	}
	return strings.Join(out, ", ")
}

// rqHasToken reports whether a comma-separated list in any of vs holds tok.
func rqHasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for _, e := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(e, " \t"), tok) {
				return true
			}
		}
	}
	return false
}

// rqCompareNetHTTP checks that a head ParseRequest accepts is read the same
// way by net/http.
func rqCompareNetHTTP(t *testing.T, p []byte) {
	t.Helper()
	req, n, err := ParseRequest(p, RequestLimits{})
	if err != nil {
		return
	}
	hr, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(p[:n])))
	if herr != nil {
		t.Fatalf("ParseRequest accepted %q but net/http says %v", p[:n], herr)
	}
	if hr.Method != req.Method || hr.ProtoMajor != 1 || hr.ProtoMinor != req.ProtoMinor {
		t.Errorf("method/proto %s %d, net/http %s %d.%d", req.Method, req.ProtoMinor, hr.Method, hr.ProtoMajor, hr.ProtoMinor)
	}
	if path, query, _ := strings.Cut(hr.RequestURI, "?"); path != req.Path || query != req.RawQuery {
		t.Errorf("target %q?%q, net/http %q", req.Path, req.RawQuery, hr.RequestURI)
	}
	if hr.Host != req.Host {
		t.Errorf("host %q, net/http %q", req.Host, hr.Host)
	}
	for _, f := range []struct{ name, got string }{
		{"Origin", req.Origin},
		{"Authorization", req.Authorization},
		{"Cookie", req.Cookie},
		{"Last-Event-ID", req.LastEventID},
		{"Content-Type", req.ContentType},
		{"Access-Control-Request-Method", req.AccessControlRequestMethod},
		{"Sec-WebSocket-Key", req.WebSocketKey},
		{"Sec-WebSocket-Version", req.WebSocketVersion},
	} {
		if want := hr.Header.Get(f.name); f.got != want {
			t.Errorf("%s %q, net/http %q", f.name, f.got, want)
		}
	}
	for _, f := range []struct {
		name, got string
		tokens    bool
	}{
		{"Accept", req.Accept, false},
		{"If-None-Match", req.IfNoneMatch, false},
		{"Access-Control-Request-Headers", req.AccessControlRequestHeaders, false},
		{"Sec-WebSocket-Extensions", req.WebSocketExtensions, false},
		{"Sec-WebSocket-Protocol", strings.Join(req.WebSocketProtocols, ", "), true},
	} {
		if want := rqJoin(hr.Header.Values(f.name), f.tokens); f.got != want {
			t.Errorf("%s %q, net/http %q", f.name, f.got, want)
		}
	}
	xff, _, _ := strings.Cut(hr.Header.Get("X-Forwarded-For"), ",")
	if want := strings.Trim(xff, " \t"); req.XForwardedFor != want {
		t.Errorf("X-Forwarded-For %q, net/http %q", req.XForwardedFor, want)
	}
	wantCL := hr.ContentLength
	if hr.Header.Get("Content-Length") == "" {
		wantCL = -1 // net/http says 0 for a request without a body
	}
	if req.ContentLength != wantCL {
		t.Errorf("ContentLength %d, net/http %d", req.ContentLength, wantCL)
	}
	if req.KeepAlive == hr.Close {
		t.Errorf("KeepAlive %v, net/http Close %v", req.KeepAlive, hr.Close)
	}
	if want := rqHasToken(hr.Header.Values("Upgrade"), "websocket"); req.UpgradeWebSocket != want {
		t.Errorf("UpgradeWebSocket %v, want %v", req.UpgradeWebSocket, want)
	}
	if want := rqHasToken(hr.Header.Values("Connection"), "upgrade"); req.ConnectionUpgrade != want {
		t.Errorf("ConnectionUpgrade %v, want %v", req.ConnectionUpgrade, want)
	}
	if want := hr.ProtoMinor == 1 && rqHasToken(hr.Header.Values("Expect"), "100-continue"); req.ExpectContinue != want {
		t.Errorf("ExpectContinue %v, want %v", req.ExpectContinue, want)
	}
	_, fields, _ := bytes.Cut(p[:n], []byte("\r\n"))
	mh, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(fields))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("net/textproto: %v", err)
	}
	count := 0
	for _, vs := range mh {
		count += len(vs)
	}
	if req.Headers != count {
		t.Errorf("Headers = %d, net/textproto counts %d", req.Headers, count)
	}
}

// rqCompareUpgrade checks CheckUpgrade against ParseUpgrade on the same
// bytes: whenever ParseRequest accepts a head, ParseRequest + CheckUpgrade
// answers exactly as ParseUpgrade does, but for the documented "00" case.
func rqCompareUpgrade(t *testing.T, p []byte) {
	t.Helper()
	ureq, un, uerr := ParseUpgrade(p, UpgradeLimits{})
	req, n, err := ParseRequest(p, RequestLimits{})
	if err != nil {
		if uerr == nil {
			// Only ParseRequest's own refusals may reject an upgrade
			// ParseUpgrade accepts.
			var he *HTTPError
			if !errors.As(err, &he) {
				t.Fatalf("ParseUpgrade accepted, ParseRequest says %v", err)
			}
			switch he.Reason {
			case "invalid Host header", "repeated Content-Length header", "repeated Content-Type header",
				"repeated Cookie header", "repeated Last-Event-ID header",
				"repeated Access-Control-Request-Method header", "unsupported expectation":
			default:
				t.Fatalf("ParseUpgrade accepted %q, ParseRequest says %v", p, err)
			}
		}
		return
	}
	cerr := CheckUpgrade(&req)
	switch {
	case uerr == nil:
		if cerr != nil || n != un || !reflect.DeepEqual(req.UpgradeRequest(), ureq) {
			t.Fatalf("ParseUpgrade (%+v, %d); ParseRequest+CheckUpgrade (%+v, %d, %v)", ureq, un, req.UpgradeRequest(), n, cerr)
		}
	case cerr == nil:
		if uerr.(*HandshakeError).Reason != "request body not allowed" || req.ContentLength != 0 {
			t.Fatalf("ParseUpgrade says %v for %q, CheckUpgrade accepts", uerr, p)
		}
	case !reflect.DeepEqual(cerr, uerr):
		t.Fatalf("ParseUpgrade says %v, CheckUpgrade %v, for %q", uerr, cerr, p)
	}
}

func TestCheckUpgrade(t *testing.T) {
	heads := []string{
		hsBrowserRequest,
		hsRequest("GET /ws HTTP/1.1", hsMinimal("")...),
		hsRequest("GET /ws HTTP/1.0", hsMinimal("")...),
		hsRequest("POST /ws HTTP/1.1", hsMinimal("")...),
		hsRequest("HEAD /ws HTTP/1.0", hsMinimal("Host")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Upgrade", "Upgrade: h2c")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Connection", "Connection: keep-alive")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Content-Length: 5")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Content-Length: 0")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Content-Length: 00")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key", "Sec-WebSocket-Key: "+strings.Repeat("A", 40))...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Protocol: c")...),
	}
	for i, head := range heads {
		t.Run(strconv.Itoa(i), func(t *testing.T) { rqCompareUpgrade(t, []byte(head)) })
	}
	// The answers themselves, so the comparison cannot pass by both drifting.
	for _, tt := range []struct {
		head   string
		status int
	}{
		{heads[2], 400}, {heads[3], 405}, {heads[5], 400}, {heads[7], 400}, {heads[10], 426}, {heads[13], 400},
	} {
		req, _, err := ParseRequest([]byte(tt.head), RequestLimits{})
		if err != nil {
			t.Fatalf("ParseRequest: %v", err)
		}
		hsWantReject(t, CheckUpgrade(&req), tt.status, nil)
	}
	req, _, _ := ParseRequest([]byte(heads[0]), RequestLimits{})
	if n := testing.AllocsPerRun(100, func() {
		if CheckUpgrade(&req) != nil {
			t.Fatal("rejected")
		}
		_ = req.UpgradeRequest()
	}); n != 0 {
		t.Errorf("CheckUpgrade + UpgradeRequest: %v allocs, want 0", n)
	}
}

func TestCheckUpgradeRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 4000 {
		rqCompareUpgrade(t, hsRandomRequest(r))
	}
}

// TestParseRequestReasonHasNoSecrets makes sure no rejection echoes a
// header value.
func TestParseRequestReasonHasNoSecrets(t *testing.T) {
	const secret = "s3cr3tT0k3n"
	heads := []string{
		hsRequest("GET / HTTP/1.1", "Host: h", "Authorization: "+secret, "Authorization: "+secret),
		hsRequest("GET / HTTP/1.1", "Host: h", "Cookie: a="+secret, "Cookie: a="+secret),
		hsRequest("GET / HTTP/1.1", "Host: "+secret+"<"),
		hsRequest("POST / HTTP/1.1", "Host: h", "Content-Length: "+secret),
		hsRequest("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: "+secret),
		hsRequest("GET / HTTP/1.1", "Host: h", "Expect: "+secret),
		hsRequest(secret+" / HTTP/1.1", "Host: h"),
		hsRequest("GET / HTTP/"+secret, "Host: h"),
	}
	for i, head := range heads {
		_, _, err := ParseRequest([]byte(head), RequestLimits{})
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("head %d: err = %v", i, err)
		}
	}
}

func TestParseRequestAllocs(t *testing.T) {
	for name, head := range map[string]string{"polling GET": rqPollingGET, "polling POST": rqPollingPOST} {
		p := []byte(head)
		if n := testing.AllocsPerRun(100, func() {
			if _, _, err := ParseRequest(p, RequestLimits{}); err != nil {
				t.Fatal(err)
			}
		}); n != 1 {
			t.Errorf("%s: %v allocs, want 1 (the shared string)", name, n)
		}
	}
	p := []byte(hsRequest("GET / HTTP/1.1", "Host: h", "Accept: a", "Accept: b"))
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseRequest(p, RequestLimits{}) }); n != 1 {
		t.Errorf("joined header: %v allocs, want 1", n)
	}
	p = []byte(rqPollingGET[:100])
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseRequest(p, RequestLimits{}) }); n != 0 {
		t.Errorf("incomplete head: %v allocs, want 0", n)
	}
}

// rqPieces splits data into pieces of the sizes given by cuts (each byte a
// size mod 64), the last piece being whatever is left.
func rqPieces(data, cuts []byte) [][]byte {
	var pieces [][]byte
	for _, c := range cuts {
		k := min(len(data), int(c)%64)
		pieces = append(pieces, data[:k])
		data = data[k:]
	}
	return append(pieces, data)
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(rqPollingGET), []byte{7, 100}, uint16(0), int16(0))
	f.Add([]byte(rqPollingPOST+rqPollingPOSTBody), []byte{3}, uint16(100), int16(20))
	f.Add([]byte(hsBrowserRequest), []byte{1, 1, 1, 200}, uint16(0), int16(-1))
	f.Add([]byte(hsRequest("GET / HTTP/1.1", "Host: h", "Accept: a", "accept: b", "Sec-WebSocket-Protocol: x,y")), []byte{}, uint16(0), int16(0))
	f.Add([]byte("GET / HTTP/1.1\nHost: x\n\n"), []byte{1}, uint16(0), int16(0))
	f.Fuzz(func(t *testing.T, p, cuts []byte, maxBytes uint16, maxBody int16) {
		lim := RequestLimits{MaxHeaderBytes: int(maxBytes), MaxHeaders: len(cuts) % 70, MaxBody: int64(maxBody)}
		wantReq, wantN, wantErr := ParseRequest(p, lim)
		if wantN < 0 || wantN > len(p) {
			t.Fatalf("n = %d outside [0, %d]", wantN, len(p))
		}
		limBytes := lim.MaxHeaderBytes
		if limBytes <= 0 {
			limBytes = DefaultMaxHeaderBytes
		}
		switch e := wantErr.(type) {
		case nil:
			if wantN > limBytes || !bytes.HasSuffix(p[:wantN], []byte("\r\n\r\n")) {
				t.Fatalf("n = %d: head %q does not end in CRLFCRLF within the limit", wantN, p[:wantN])
			}
			if r2, n2, err2 := ParseRequest(p[:wantN], lim); err2 != nil || n2 != wantN || !reflect.DeepEqual(r2, wantReq) {
				t.Fatalf("head alone: (%+v, %d, %v)", r2, n2, err2)
			}
			maxBody := lim.MaxBody
			if maxBody == 0 {
				maxBody = DefaultMaxBody
			}
			if wantReq.ContentLength < -1 || wantReq.ContentLength > max(maxBody, 0) {
				t.Fatalf("ContentLength %d with MaxBody %d", wantReq.ContentLength, lim.MaxBody)
			}
			if lim.MaxHeaders == 0 || lim.MaxHeaders >= DefaultMaxHeaders {
				rqCompareNetHTTP(t, p)
				if lim.MaxHeaderBytes == 0 {
					rqCompareUpgrade(t, p)
				}
			}
		case *HTTPError:
			switch e.Status {
			case 400, 405, 411, 413, 417, 431, 501, 505:
			default:
				t.Fatalf("unexpected status %d", e.Status)
			}
			if e.Reason == "" || strings.ContainsAny(e.Reason, "\r\n") {
				t.Fatalf("reason %q", e.Reason)
			}
		default:
			if wantErr != ErrNeedMore || len(p) > limBytes {
				t.Fatalf("err = %v with len(p)=%d, limit %d", wantErr, len(p), limBytes)
			}
		}
		// Feed the input in the pieces cuts gives, accumulating as a
		// connection does: the first answer that is not ErrNeedMore must be
		// the whole input's.
		var acc []byte
		for _, piece := range rqPieces(p, cuts) {
			acc = append(acc, piece...)
			req, n, err := ParseRequest(acc, lim)
			if err == ErrNeedMore {
				if n != 0 || !reflect.DeepEqual(req, HTTPRequest{}) {
					t.Fatalf("prefix %d: ErrNeedMore with n=%d req=%+v", len(acc), n, req)
				}
				continue
			}
			if !reflect.DeepEqual(req, wantReq) || n != wantN || !reflect.DeepEqual(err, wantErr) {
				t.Fatalf("prefix %d: (%+v, %d, %v), whole: (%+v, %d, %v)", len(acc), req, n, err, wantReq, wantN, wantErr)
			}
			break
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	for _, bc := range []struct{ name, head string }{
		{"pollingGET", rqPollingGET},
		{"pollingPOST", rqPollingPOST},
		{"upgrade", hsBrowserRequest},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := []byte(bc.head)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, _, err := ParseRequest(p, RequestLimits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseRequestUpgrade is the WebSocket endpoint's path through the
// general parser, to compare with BenchmarkParseUpgrade.
func BenchmarkParseRequestUpgrade(b *testing.B) {
	p := []byte(hsBrowserRequest)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		req, _, err := ParseRequest(p, RequestLimits{})
		if err == nil {
			err = CheckUpgrade(&req)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
