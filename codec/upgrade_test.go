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
	"unicode"
)

// hsBrowserRequest is what a browser sends (Chrome 120 shape) to /ws?topics=a,b.
const hsBrowserRequest = "GET /ws?topics=a,b HTTP/1.1\r\n" +
	"Host: push.example.com\r\n" +
	"Connection: Upgrade\r\n" +
	"Pragma: no-cache\r\n" +
	"Cache-Control: no-cache\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n" +
	"Upgrade: websocket\r\n" +
	"Origin: https://app.example.com\r\n" +
	"Sec-WebSocket-Version: 13\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=abcdef0123456789\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
	"\r\n"

// hsRequest builds a request head from a request line and header lines.
func hsRequest(requestLine string, headers ...string) string {
	var b strings.Builder
	b.WriteString(requestLine + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// hsMinimal returns the required headers of a valid request, with extra
// appended; a non-empty drop removes the required headers starting with it.
func hsMinimal(drop string, extra ...string) []string {
	base := []string{
		"Host: example.com",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version: 13",
	}
	var out []string
	for _, h := range base {
		if drop == "" || !strings.HasPrefix(h, drop) {
			out = append(out, h)
		}
	}
	return append(out, extra...)
}

// hsWantReject checks that err is a *HandshakeError with the given status
// and, if header is not nil, exactly those extra headers.
func hsWantReject(t *testing.T, err error, status int, header [][2]string) {
	t.Helper()
	var he *HandshakeError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v, want *HandshakeError %d", err, status)
	}
	if he.Status != status {
		t.Fatalf("status = %d (%q), want %d", he.Status, he.Reason, status)
	}
	if he.Reason == "" {
		t.Errorf("empty reason")
	}
	if header != nil && !reflect.DeepEqual(he.Header, header) {
		t.Errorf("header = %q, want %q", he.Header, header)
	}
}

func TestParseUpgradeValid(t *testing.T) {
	tests := []struct {
		name string
		head string
		want Request
	}{
		{
			name: "browser",
			head: hsBrowserRequest,
			want: Request{
				Path: "/ws", RawQuery: "topics=a,b", Host: "push.example.com",
				Key: "dGhlIHNhbXBsZSBub25jZQ==", Origin: "https://app.example.com", Headers: 13,
			},
		},
		{
			name: "minimal no query",
			head: hsRequest("GET /ws HTTP/1.1", hsMinimal("")...),
			want: Request{Path: "/ws", Host: "example.com", Key: "dGhlIHNhbXBsZSBub25jZQ==", Headers: 5},
		},
		{
			name: "empty query",
			head: hsRequest("GET /? HTTP/1.1", hsMinimal("")...),
			want: Request{Path: "/", Host: "example.com", Key: "dGhlIHNhbXBsZSBub25jZQ==", Headers: 5},
		},
		{
			name: "case-insensitive names and tokens, OWS, lists",
			head: hsRequest("GET /a/b?x=%20y&token=t HTTP/1.1",
				"hOsT: \t example.com:8080 \t",
				"UPGRADE: h2c, WebSocket",
				"connection: keep-alive,  UPGRADE ",
				"sec-websocket-key:dGhlIHNhbXBsZSBub25jZQ==",
				"SEC-WEBSOCKET-VERSION:   13",
				"Sec-WebSocket-Protocol: v1.pushd, bearer.abc",
				"Sec-WebSocket-Protocol: ,chat ,",
				"Authorization: Bearer xyz",
				"X-Forwarded-For: 203.0.113.7, 10.0.0.1",
				"X-Forwarded-For: 10.0.0.2",
				"Content-Length: 0",
				"X-Empty:",
				"X-Obs-Text: caf\xc3\xa9",
			),
			want: Request{
				Path: "/a/b", RawQuery: "x=%20y&token=t", Host: "example.com:8080",
				Key: "dGhlIHNhbXBsZSBub25jZQ==", Protocols: []string{"v1.pushd", "bearer.abc", "chat"},
				Authorization: "Bearer xyz", XForwardedFor: "203.0.113.7", Headers: 13,
			},
		},
		{
			name: "Upgrade and Connection split over repeated headers",
			head: hsRequest("GET /ws HTTP/1.1",
				"Host: h", "Upgrade: foo", "Upgrade: websocket", "Connection: keep-alive", "Connection: upgrade",
				"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==", "Sec-WebSocket-Version: 13"),
			want: Request{Path: "/ws", Host: "h", Key: "AAAAAAAAAAAAAAAAAAAAAA==", Headers: 7},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trailer := "\x81\x85\x01\x02\x03\x04frame" // a first frame right behind the head
			p := []byte(tt.head + trailer)
			orig := bytes.Clone(p)
			req, n, err := ParseUpgrade(p, UpgradeLimits{})
			if err != nil {
				t.Fatalf("ParseUpgrade: %v", err)
			}
			if n != len(tt.head) {
				t.Errorf("n = %d, want %d", n, len(tt.head))
			}
			if !reflect.DeepEqual(req, tt.want) {
				t.Errorf("req =\n%+v\nwant\n%+v", req, tt.want)
			}
			if !bytes.Equal(p, orig) {
				t.Errorf("ParseUpgrade modified its input")
			}
			// Strings are copies: scribbling over the buffer must not change them.
			for i := range p {
				p[i] = 'x'
			}
			if !reflect.DeepEqual(req, tt.want) {
				t.Errorf("req aliases the input buffer: %+v", req)
			}
		})
	}
}

func TestParseUpgradeReject(t *testing.T) {
	allowGET := [][2]string{{"Allow", "GET"}}
	version13 := [][2]string{{"Sec-WebSocket-Version", "13"}}
	tests := []struct {
		name   string
		head   string
		status int
		header [][2]string
	}{
		{"POST", hsRequest("POST /ws HTTP/1.1", hsMinimal("")...), 405, allowGET},
		{"lowercase get", hsRequest("get /ws HTTP/1.1", hsMinimal("")...), 405, allowGET},
		{"HEAD before head is complete", "HEAD / HTTP/1.1\r\nHost: x", 405, allowGET},
		{"HTTP/1.0", hsRequest("GET /ws HTTP/1.0", hsMinimal("")...), 400, nil},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, nil},
		{"TLS client hello, no line end yet", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, nil},
		{"control byte in method, no line end yet", "GE\x00", 400, nil},
		{"no version", hsRequest("GET /ws", hsMinimal("")...), 400, nil},
		{"double space", hsRequest("GET  /ws HTTP/1.1", hsMinimal("")...), 400, nil},
		{"trailing space", hsRequest("GET /ws HTTP/1.1 ", hsMinimal("")...), 400, nil},
		{"empty request line", hsRequest("", hsMinimal("")...), 400, nil},
		{"absolute form", hsRequest("GET http://example.com/ws HTTP/1.1", hsMinimal("")...), 400, nil},
		{"asterisk form", hsRequest("GET * HTTP/1.1", hsMinimal("")...), 400, nil},
		{"fragment", hsRequest("GET /ws#x HTTP/1.1", hsMinimal("")...), 400, nil},
		{"bad escape in path", hsRequest("GET /w%zz HTTP/1.1", hsMinimal("")...), 400, nil},
		{"truncated escape in path", hsRequest("GET /w%4?a=b HTTP/1.1", hsMinimal("")...), 400, nil},
		{"non-ASCII target", hsRequest("GET /w\xc3\xa9 HTTP/1.1", hsMinimal("")...), 400, nil},
		{"bare LF request line", "GET /ws HTTP/1.1\nHost: x\n\n", 400, nil},
		{"bare LF header", "GET /ws HTTP/1.1\r\nHost: x\n\r\n", 400, nil},
		{"bare CR in value", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "X-A: a\rb")...), 400, nil},
		{"NUL in value", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "X-A: a\x00b")...), 400, nil},
		{"space before colon", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "X-A : b")...), 400, nil},
		{"no colon", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "X-A b")...), 400, nil},
		{"empty name", hsRequest("GET /ws HTTP/1.1", hsMinimal("", ": b")...), 400, nil},
		{"obs-fold", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "X-A: b", " c")...), 400, nil},
		{"missing Host", hsRequest("GET /ws HTTP/1.1", hsMinimal("Host")...), 400, nil},
		{"empty Host", hsRequest("GET /ws HTTP/1.1", hsMinimal("Host", "Host: \t")...), 400, nil},
		{"repeated Host", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "host: b")...), 400, nil},
		{"missing Upgrade", hsRequest("GET /ws HTTP/1.1", hsMinimal("Upgrade")...), 400, nil},
		{"other Upgrade", hsRequest("GET /ws HTTP/1.1", hsMinimal("Upgrade", "Upgrade: h2c")...), 400, nil},
		{"Upgrade substring only", hsRequest("GET /ws HTTP/1.1", hsMinimal("Upgrade", "Upgrade: websockets")...), 400, nil},
		{"missing Connection", hsRequest("GET /ws HTTP/1.1", hsMinimal("Connection")...), 400, nil},
		{"Connection keep-alive", hsRequest("GET /ws HTTP/1.1", hsMinimal("Connection", "Connection: keep-alive")...), 400, nil},
		{"Connection substring", hsRequest("GET /ws HTTP/1.1", hsMinimal("Connection", "Connection: upgraded")...), 400, nil},
		{"missing key", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key")...), 400, nil},
		{"key not base64", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==")...), 400, nil},
		{"key of 15 bytes", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA")...), 400, nil},
		{"key of 17 bytes", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=")...), 400, nil},
		{"key unpadded", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ")...), 400, nil},
		{"repeated key", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==")...), 400, nil},
		{"missing version", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version")...), 426, version13},
		{"version 8", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8")...), 426, version13},
		{"version list", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 8")...), 426, version13},
		{"version before key", hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-", "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5")...), 426, version13},
		{"repeated version", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Sec-WebSocket-Version: 13")...), 400, nil},
		{"repeated Origin", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Origin: a", "Origin: b")...), 400, nil},
		{"repeated Authorization", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Authorization: a", "Authorization: b")...), 400, nil},
		{"bad protocol token", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Sec-WebSocket-Protocol: a b")...), 400, nil},
		{"body", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Content-Length: 5")...), 400, nil},
		{"chunked", hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Transfer-Encoding: chunked")...), 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := ParseUpgrade([]byte(tt.head), UpgradeLimits{})
			hsWantReject(t, err, tt.status, tt.header)
			if n != 0 {
				t.Errorf("n = %d on error, want 0", n)
			}
		})
	}
}

func TestParseUpgradeLimits(t *testing.T) {
	many := func(n int) []string {
		var hs []string
		for i := range n {
			hs = append(hs, "X-H"+strconv.Itoa(i)+": v")
		}
		return hs
	}
	bigValue := "X-Big: " + strings.Repeat("a", 9000)
	tests := []struct {
		name string
		head string
		lim  UpgradeLimits
		want int // status; 0 means success
	}{
		{"2000 headers", hsRequest("GET /ws HTTP/1.1", hsMinimal("", many(2000)...)...), UpgradeLimits{}, 431},
		{"2000 headers, large byte limit", hsRequest("GET /ws HTTP/1.1", hsMinimal("", many(2000)...)...), UpgradeLimits{MaxHeaderBytes: 1 << 20}, 431},
		{"64 headers", hsRequest("GET /ws HTTP/1.1", hsMinimal("", many(59)...)...), UpgradeLimits{}, 0},
		{"65 headers", hsRequest("GET /ws HTTP/1.1", hsMinimal("", many(60)...)...), UpgradeLimits{}, 431},
		{"custom MaxHeaders", hsRequest("GET /ws HTTP/1.1", hsMinimal("", many(1)...)...), UpgradeLimits{MaxHeaders: 5}, 431},
		{"value over 8192", hsRequest("GET /ws HTTP/1.1", hsMinimal("", bigValue)...), UpgradeLimits{}, 431},
		{"value over 8192, large byte limit", hsRequest("GET /ws HTTP/1.1", hsMinimal("", bigValue)...), UpgradeLimits{MaxHeaderBytes: 10000}, 0},
		{"request line over the limit", "GET /" + strings.Repeat("a", 9000), UpgradeLimits{}, 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseUpgrade([]byte(tt.head), tt.lim)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				return
			}
			hsWantReject(t, err, tt.want, nil)
		})
	}
}

// TestParseUpgradeExactLimit pins the boundary: a head of exactly
// MaxHeaderBytes is accepted, one byte more is 431, and a shorter incomplete
// prefix of at most MaxHeaderBytes asks for more.
func TestParseUpgradeExactLimit(t *testing.T) {
	head := hsRequest("GET /ws HTTP/1.1", hsMinimal("")...)
	lim := UpgradeLimits{MaxHeaderBytes: len(head)}
	if _, n, err := ParseUpgrade([]byte(head+"trailing frame bytes"), lim); err != nil || n != len(head) {
		t.Fatalf("exact limit: n=%d err=%v, want %d, nil", n, err, len(head))
	}
	longer := hsRequest("GET /ws HTTP/1.1", hsMinimal("", "X: y")...)
	if _, _, err := ParseUpgrade([]byte(longer[:len(head)]), lim); err != ErrNeedMore {
		t.Fatalf("prefix at the limit: err=%v, want ErrNeedMore", err)
	}
	_, _, err := ParseUpgrade([]byte(longer[:len(head)+1]), lim)
	hsWantReject(t, err, 431, nil)
}

// hsCheckSplits feeds every split of head into ParseUpgrade the way a server
// does (bytes accumulate; parse again after each read) and checks that each
// split gives the same result as the whole input.
func hsCheckSplits(t *testing.T, head []byte, lim UpgradeLimits) {
	t.Helper()
	wantReq, wantN, wantErr := ParseUpgrade(head, lim)
	for k := 0; k <= len(head); k++ {
		req, n, err := ParseUpgrade(head[:k], lim)
		if err == ErrNeedMore {
			if n != 0 {
				t.Fatalf("split %d: n=%d with ErrNeedMore", k, n)
			}
			req, n, err = ParseUpgrade(head, lim)
		}
		if !reflect.DeepEqual(req, wantReq) || n != wantN || !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("split %d: got (%+v, %d, %v), want (%+v, %d, %v)", k, req, n, err, wantReq, wantN, wantErr)
		}
	}
}

func TestParseUpgradeSplits(t *testing.T) {
	heads := map[string]string{
		"browser":         hsBrowserRequest + "\x81\x80abcd",
		"POST":            hsRequest("POST /ws HTTP/1.1", hsMinimal("")...),
		"bad version":     hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version", "Sec-WebSocket-Version: 7")...),
		"malformed line":  hsRequest("GET /ws HTTP/1.1", hsMinimal("", "bad line")...),
		"bare LF":         "GET /ws HTTP/1.1\r\nHost: x\n\r\n",
		"bare LF request": "GET /ws HTTP/1.1\nHost: x\r\n\r\n",
		"CR in method":    "GE\rT /ws HTTP/1.1\r\n\r\n",
		"TLS":             "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\x00",
	}
	for name, head := range heads {
		t.Run(name, func(t *testing.T) {
			hsCheckSplits(t, []byte(head), UpgradeLimits{})
			hsCheckSplits(t, []byte(head), UpgradeLimits{MaxHeaderBytes: 64, MaxHeaders: 3})
		})
	}
}

// TestParseUpgradeByteByByte feeds a valid request one byte at a time.
func TestParseUpgradeByteByByte(t *testing.T) {
	head := []byte(hsBrowserRequest)
	want, _, err := ParseUpgrade(head, UpgradeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	for i, c := range head {
		buf = append(buf, c)
		req, n, err := ParseUpgrade(buf, UpgradeLimits{})
		if i < len(head)-1 {
			if err != ErrNeedMore {
				t.Fatalf("after %d bytes: err=%v, want ErrNeedMore", i+1, err)
			}
			continue
		}
		if err != nil || n != len(head) || !reflect.DeepEqual(req, want) {
			t.Fatalf("complete: (%+v, %d, %v), want (%+v, %d, nil)", req, n, err, want, len(head))
		}
	}
}

// TestParseUpgradeAgainstNetHTTP checks accepted requests against net/http's
// parser: whatever ParseUpgrade accepts, http.ReadRequest accepts too, with
// the same target, Host and key.
func TestParseUpgradeAgainstNetHTTP(t *testing.T) {
	heads := []string{
		hsBrowserRequest,
		hsRequest("GET /a/b?x=%20y HTTP/1.1", "hOsT: \t example.com:8080 \t", "UPGRADE: h2c, WebSocket",
			"connection: keep-alive,  UPGRADE ", "sec-websocket-key:dGhlIHNhbXBsZSBub25jZQ==", "SEC-WEBSOCKET-VERSION:   13"),
	}
	for i, head := range heads {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			hsCompareNetHTTP(t, []byte(head))
		})
	}
}

// hsRandomRequest builds a request that is valid or nearly so: random
// letter case, whitespace, list syntax, extra headers, target characters and
// value bytes (including obs-text), and sometimes one broken piece.
func hsRandomRequest(r *rand.Rand) []byte {
	pick := func(opts ...string) string { return opts[r.IntN(len(opts))] }
	randCase := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if r.IntN(2) == 0 {
				b[i] = byte(unicode.ToUpper(rune(c)))
			} else {
				b[i] = byte(unicode.ToLower(rune(c)))
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
	target := "/" + randBytes(targetChars, r.IntN(12))
	headers := []string{
		randCase("Host") + ":" + ows() + pick("example.com", "a.b:8080", "[::1]:80", "h") + ows(),
		randCase("Upgrade") + ":" + ows() + pick("websocket", "WebSocket", "h2c, websocket", "websocket ,") + ows(),
		randCase("Connection") + ":" + ows() + pick("Upgrade", "keep-alive, Upgrade", "upgrade,close") + ows(),
		randCase("Sec-WebSocket-Key") + ":" + ows() + pick("dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA==", "x3JJHMbDL1EzLkh9GBhXDw==") + ows(),
		randCase("Sec-WebSocket-Version") + ":" + ows() + "13" + ows(),
	}
	for range r.IntN(6) {
		name := pick("Origin", "Sec-WebSocket-Protocol", "Authorization", "X-Forwarded-For", "Cookie", "User-Agent", "X-"+randBytes("abcdef-_!#", 1+r.IntN(5)))
		value := randBytes(valueChars, r.IntN(20))
		if name == "Sec-WebSocket-Protocol" {
			value = pick("a", "a, b", "v1.pushd,bearer.x", " , x ,")
		}
		headers = append(headers, randCase(name)+":"+ows()+value+ows())
	}
	r.Shuffle(len(headers), func(i, j int) { headers[i], headers[j] = headers[j], headers[i] })
	req := []byte(hsRequest("GET "+target+" HTTP/1.1", headers...))
	if r.IntN(4) == 0 { // break or perturb one byte
		req[r.IntN(len(req))] = byte(r.Uint32())
	}
	return req
}

// TestParseUpgradeRandomAgainstNetHTTP runs hsCompareNetHTTP and the split
// check on random near-valid requests, which reach the success path far
// more often than the fuzzer does.
func TestParseUpgradeRandomAgainstNetHTTP(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	accepted := 0
	for i := range 4000 {
		p := hsRandomRequest(r)
		if _, _, err := ParseUpgrade(p, UpgradeLimits{}); err == nil {
			accepted++
		}
		hsCompareNetHTTP(t, p)
		if i%40 == 0 {
			hsCheckSplits(t, p, UpgradeLimits{})
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d of 4000 random requests accepted: the generator no longer exercises the success path", accepted)
	}
}

// hsCompareNetHTTP checks that a head ParseUpgrade accepts is read the same
// way by net/http.
func hsCompareNetHTTP(t *testing.T, p []byte) {
	t.Helper()
	req, n, err := ParseUpgrade(p, UpgradeLimits{})
	if err != nil {
		return
	}
	hr, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(p[:n])))
	if herr != nil {
		t.Fatalf("ParseUpgrade accepted %q but net/http says %v", p[:n], herr)
	}
	if path, query, _ := strings.Cut(hr.RequestURI, "?"); path != req.Path || query != req.RawQuery {
		t.Errorf("target %q?%q, net/http %q", req.Path, req.RawQuery, hr.RequestURI)
	}
	if hr.Host != req.Host {
		t.Errorf("host %q, net/http %q", req.Host, hr.Host)
	}
	for _, f := range []struct{ name, got string }{
		{"Sec-WebSocket-Key", req.Key},
		{"Origin", req.Origin},
		{"Authorization", req.Authorization},
	} {
		if want := hr.Header.Get(f.name); f.got != want {
			t.Errorf("%s %q, net/http %q", f.name, f.got, want)
		}
	}
	xff, _, _ := strings.Cut(hr.Header.Get("X-Forwarded-For"), ",")
	if want := strings.Trim(xff, " \t"); req.XForwardedFor != want {
		t.Errorf("X-Forwarded-For %q, net/http %q", req.XForwardedFor, want)
	}
	var protos []string
	for _, v := range hr.Header.Values("Sec-WebSocket-Protocol") {
		for _, e := range strings.Split(v, ",") {
			if e = strings.Trim(e, " \t"); e != "" {
				protos = append(protos, e)
			}
		}
	}
	if !reflect.DeepEqual(req.Protocols, protos) {
		t.Errorf("protocols %q, net/http %q", req.Protocols, protos)
	}
	// Count with net/textproto: http.ReadRequest moves Host out of Header
	// and adds Cache-Control for "Pragma: no-cache" (RFC 7234 §5.4).
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

func TestHandshakeErrorMessage(t *testing.T) {
	_, _, err := ParseUpgrade([]byte(hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version")...)), UpgradeLimits{})
	if got, want := err.Error(), "codec: handshake rejected: 426 unsupported WebSocket version"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestParseUpgradeReasonHasNoSecrets makes sure no rejection echoes a header
// value: reasons go to logs and response bodies.
func TestParseUpgradeReasonHasNoSecrets(t *testing.T) {
	const secret = "s3cr3tT0k3n"
	heads := []string{
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Authorization: "+secret, "Authorization: "+secret)...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Key", "Sec-WebSocket-Key: "+secret)...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", "Sec-WebSocket-Protocol: "+secret+" x")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("", secret+": a\x00")...),
		hsRequest("GET /ws HTTP/1.1", hsMinimal("Sec-WebSocket-Version", "Sec-WebSocket-Version: "+secret)...),
	}
	for i, head := range heads {
		_, _, err := ParseUpgrade([]byte(head), UpgradeLimits{})
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("head %d: err = %v", i, err)
		}
	}
}

func FuzzParseUpgrade(f *testing.F) {
	f.Add([]byte(hsBrowserRequest), uint16(7), uint16(0))
	f.Add([]byte(hsRequest("POST /ws HTTP/1.1", hsMinimal("")...)), uint16(3), uint16(100))
	f.Add([]byte("GET /ws HTTP/1.1\nHost: x\n\n"), uint16(1), uint16(0))
	f.Fuzz(func(t *testing.T, p []byte, chunk, maxBytes uint16) {
		lim := UpgradeLimits{MaxHeaderBytes: int(maxBytes), MaxHeaders: int(chunk % 70)}
		wantReq, wantN, wantErr := ParseUpgrade(p, lim)
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
			// The result must not depend on the bytes after n.
			if r2, n2, err2 := ParseUpgrade(p[:wantN], lim); err2 != nil || n2 != wantN || !reflect.DeepEqual(r2, wantReq) {
				t.Fatalf("head alone: (%+v, %d, %v)", r2, n2, err2)
			}
			if lim.MaxHeaders == 0 || lim.MaxHeaders >= DefaultMaxHeaders {
				hsCompareNetHTTP(t, p)
			}
		case *HandshakeError:
			switch e.Status {
			case 400, 405, 426, 431:
			default:
				t.Fatalf("unexpected status %d", e.Status)
			}
		default:
			if wantErr != ErrNeedMore || len(p) > limBytes {
				t.Fatalf("err = %v with len(p)=%d, limit %d", wantErr, len(p), limBytes)
			}
		}
		// Feed growing prefixes as a server would, in steps of chunk bytes.
		step := int(chunk%64) + 1
		for k := 0; k < len(p); k += step {
			req, n, err := ParseUpgrade(p[:k], lim)
			if err == ErrNeedMore {
				if n != 0 || !reflect.DeepEqual(req, Request{}) {
					t.Fatalf("prefix %d: ErrNeedMore with n=%d req=%+v", k, n, req)
				}
				continue
			}
			if !reflect.DeepEqual(req, wantReq) || n != wantN || !reflect.DeepEqual(err, wantErr) {
				t.Fatalf("prefix %d: (%+v, %d, %v), whole: (%+v, %d, %v)", k, req, n, err, wantReq, wantN, wantErr)
			}
		}
	})
}

func BenchmarkParseUpgrade(b *testing.B) {
	p := []byte(hsBrowserRequest)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, _, err := ParseUpgrade(p, UpgradeLimits{}); err != nil {
			b.Fatal(err)
		}
	}
}
