package ws

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
)

// openDeflate upgrades on path offering permessage-deflate with offer, and
// returns the connection and the 101's extension header ("" if none).
func openDeflate(t *testing.T, l *testLoop, path, offer string) (*conn.Conn, *memTransport, string) {
	t.Helper()
	tr := &memTransport{}
	c := l.Open(tr)
	req := strings.Replace(upgradeReq, "/echo", path, 1)
	req = strings.Replace(req, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: "+offer+"\r\n\r\n", 1)
	if n, closeNow := c.Feed([]byte(req)); n != len(req) || closeNow || c.State() != conn.StateOpen {
		t.Fatalf("upgrade: consumed %d of %d, close %v, state %v: %q", n, len(req), closeNow, c.State(), tr.out.String())
	}
	head := tr.out.String()
	head = head[:strings.Index(head, "\r\n\r\n")+4]
	ext := ""
	for _, line := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(line, "Sec-WebSocket-Extensions: "); ok {
			ext = v
		}
	}
	tr.out.Reset()
	return c, tr, ext
}

// compressed returns payload compressed as one permessage-deflate message
// (RFC 7692 §7.2.1: a sync flush, its 00 00 ff ff removed).
func compressed(t *testing.T, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(payload)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// rsvFrame is clientFrame with RSV1 set (a compressed message's first frame).
func rsvFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	f := clientFrame(op, fin, payload)
	f[0] |= 0x40
	return f
}

// serverFrames splits b into frames: each header's byte 0 and its payload.
func serverFrames(t *testing.T, b []byte) (heads []byte, payloads [][]byte) {
	t.Helper()
	for len(b) > 0 {
		h, n, err := codec.ParseHeader(b)
		if err != nil {
			t.Fatalf("server frame: %v (% x)", err, b[:min(len(b), 16)])
		}
		heads = append(heads, b[0])
		payloads = append(payloads, b[n:n+int(h.Length)])
		b = b[n+int(h.Length):]
	}
	return heads, payloads
}

func inflate(t *testing.T, p []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeflateNegotiation(t *testing.T) {
	on := newTestLoop(Config{Compression: true})
	off := newTestLoop(Config{})
	for _, tc := range []struct {
		l     *testLoop
		offer string
		want  string
	}{
		{on, "permessage-deflate; client_max_window_bits", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{on, "permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"},
		{on, "x-webkit-deflate-frame", ""},
		{on, "permessage-deflate; bogus=1", ""},
		{off, "permessage-deflate", ""},
	} {
		_, _, ext := openDeflate(t, tc.l, "/ws", tc.offer)
		if ext != tc.want {
			t.Errorf("compression %v, offer %q: answered %q, want %q", tc.l == on, tc.offer, ext, tc.want)
		}
	}
}

// The echo of a large compressible message goes back compressed, of a
// small one plain; compressed client messages, whole or fragmented, are
// inflated.
func TestDeflateEcho(t *testing.T) {
	l := newTestLoop(Config{Compression: true})
	c, tr, ext := openDeflate(t, l, "/echo", "permessage-deflate")
	if ext == "" {
		t.Fatal("not negotiated")
	}
	big := []byte(strings.Repeat(`{"symbol":"BTC","price":97000.12,"qty":3},`, 40))
	small := []byte("hello")
	cb := compressed(t, big)
	in := append(rsvFrame(ws.OpText, true, cb), rsvFrame(ws.OpBinary, true, compressed(t, small))...)
	// The same big message fragmented into three frames: RSV1 on the first only (§6.1).
	in = append(in, rsvFrame(ws.OpText, false, cb[:10])...)
	in = append(in, clientFrame(ws.OpContinuation, false, cb[10:30])...)
	in = append(in, clientFrame(ws.OpContinuation, true, cb[30:])...)
	if n, _ := c.Feed(in); n != len(in) {
		t.Fatalf("consumed %d of %d", n, len(in))
	}
	heads, payloads := serverFrames(t, tr.out.Bytes())
	if len(heads) != 3 {
		t.Fatalf("%d frames echoed, want 3", len(heads))
	}
	for i, want := range [][]byte{big, small, big} {
		got := payloads[i]
		if heads[i]&0x40 != 0 {
			got = inflate(t, got)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("echo %d: %q", i, got)
		}
	}
	if heads[0]&0x40 == 0 || heads[1]&0x40 != 0 {
		t.Fatalf("RSV1 on the echoes: % x; want the big one compressed and the small one plain", heads)
	}
	if len(payloads[0]) >= len(big) {
		t.Fatalf("compressed echo is %d bytes for %d", len(payloads[0]), len(big))
	}
}

// A compressed command reaches the session; bad compressed input fails the
// connection with the right code.
func TestDeflateClientMessages(t *testing.T) {
	l := newTestLoopWith(testConfig{WS: Config{Compression: true, MaxMessageSize: 4096, MaxFrameSize: 4096}})
	c, tr, _ := openDeflate(t, l, "/ws", "permessage-deflate")
	tr.out.Reset()
	cmd := compressed(t, []byte(`{"id":7,"type":"ping"}`))
	c.Feed(rsvFrame(ws.OpText, true, cmd))
	if !strings.Contains(tr.out.String(), `{"type":"ok","id":7}`) {
		t.Fatalf("compressed ping: %q", tr.out.String())
	}
	cases := []struct {
		name string
		in   []byte
		code codec.StatusCode
	}{
		{"bomb", rsvFrame(ws.OpText, true, compressed(t, bytes.Repeat([]byte("a"), 1<<20))), codec.StatusMessageTooBig},
		{"corrupt", rsvFrame(ws.OpBinary, true, []byte{0xff, 0xff, 0xff, 0xff}), codec.StatusInvalidPayload},
		{"invalid UTF-8 inside", rsvFrame(ws.OpText, true, compressed(t, []byte("ok\xff"))), codec.StatusInvalidPayload},
		{"RSV1 on a ping", func() []byte { f := clientFrame(ws.OpPing, true, nil); f[0] |= 0x40; return f }(), codec.StatusProtocolError},
		{"RSV1 on a continuation", append(clientFrame(ws.OpText, false, []byte("a")), rsvFrame(ws.OpContinuation, true, []byte("b"))...), codec.StatusProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, tr, _ := openDeflate(t, l, "/ws", "permessage-deflate")
			tr.out.Reset()
			c.Feed(tc.in)
			_, payloads := serverFrames(t, tr.out.Bytes())
			last := payloads[len(payloads)-1]
			if len(last) < 2 || codec.StatusCode(binary.BigEndian.Uint16(last)) != tc.code {
				t.Fatalf("closed with % x, want %d", last, tc.code)
			}
		})
	}
	// Without the extension negotiated, RSV1 is a protocol error (RFC 6455 §5.2).
	plain := newTestLoop(Config{})
	c, tr = openConn(t, plain, "/ws")
	c.Feed(rsvFrame(ws.OpText, true, cmd))
	if !bytes.HasSuffix(tr.out.Bytes(), codec.AppendCloseFrame(nil, codec.StatusProtocolError, "reserved bits set")) {
		t.Fatalf("RSV1 without the extension: % x", tr.out.Bytes())
	}
}

// appendMaybeCompressed sends a message compressed only when that makes it
// smaller.
func TestAppendMaybeCompressed(t *testing.T) {
	var st DeflateStats
	json := []byte(strings.Repeat(`{"a":1},`, 100))
	b, start := appendMaybeCompressed([]byte("xx"), OpText, json, &st)
	heads, payloads := serverFrames(t, b[start:])
	if heads[0] != 0xc1 || !bytes.Equal(inflate(t, payloads[0]), json) || st.In.Load() != int64(len(json)) {
		t.Fatalf("compressible: head %x, stats in %d out %d", heads[0], st.In.Load(), st.Out.Load())
	}
	random := make([]byte, 500)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	b, start = appendMaybeCompressed(nil, OpBinary, random, &st)
	if heads, payloads = serverFrames(t, b[start:]); heads[0] != 0x82 || !bytes.Equal(payloads[0], random) {
		t.Fatalf("incompressible: head %x", heads[0])
	}
	b, start = appendMaybeCompressed(nil, OpText, []byte("tiny"), &st)
	if heads, _ = serverFrames(t, b[start:]); heads[0] != 0x81 || st.Skipped.Load() != 2 {
		t.Fatalf("tiny: head %x skipped %d", heads[0], st.Skipped.Load())
	}
}
