package netpoll_test

// permessage-deflate (RFC 7692) conformance of the echo endpoint, in the
// spirit of Autobahn groups 12 and 13: compressed messages of many sizes,
// whole and fragmented, text and binary, under every negotiation parameter
// a client may offer, over real sockets. The raw client compresses with the
// standard library (an implementation independent of pushd's), checks the
// server's answer to each offer, and inflates the echoes.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// dialDeflate upgrades with the given Sec-WebSocket-Extensions offer and
// returns the connection and the server's answer to it.
func dialDeflate(t *testing.T, addr, offer string) (*rawConn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{c: c, br: bufio.NewReader(c), rng: rand.New(rand.NewPCG(3, 4))}
	if _, err := c.Write(upgradeRequest(echoPath, "Sec-WebSocket-Extensions: "+offer)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, h, err := readResponseHead(rc.br)
	if err != nil || status != http.StatusSwitchingProtocols {
		t.Fatalf("offer %q: status %d, %v", offer, status, err)
	}
	return rc, h.Get("Sec-WebSocket-Extensions")
}

// deflateMessage compresses p as one permessage-deflate message (§7.2.1).
func deflateMessage(p []byte, level int) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, level)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflateMessage inflates one permessage-deflate message (§7.2.2).
func inflateMessage(p []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))))
}

// fragments cuts p into n frames of a compressed message: RSV1 on the
// first only (§6.1), op on the first, continuations after.
func fragments(op byte, p []byte, n int) []clientFrame {
	var out []clientFrame
	size := max(1, (len(p)+n-1)/n)
	for i := 0; i == 0 || len(p) > 0; i++ {
		k := min(size, len(p))
		f := clientFrame{op: opCont, payload: p[:k], more: len(p) > k}
		if i == 0 {
			f.op, f.rsv = op, 4
		}
		out = append(out, f)
		p = p[k:]
	}
	return out
}

// readMessage reads one whole message (its frames), returning the opcode,
// whether it was compressed, and the payload as sent.
func readMessage(t *testing.T, rc *rawConn) (op byte, compressed bool, payload []byte) {
	t.Helper()
	for first := true; ; first = false {
		f, err := rc.read(10 * time.Second)
		if err != nil {
			t.Fatalf("reading the echo: %v", err)
		}
		if f.masked {
			t.Fatal("a masked server frame")
		}
		if first {
			op, compressed = f.op, f.rsv&4 != 0
		} else if f.rsv != 0 {
			t.Fatalf("RSV %d on a continuation frame (§6.1)", f.rsv)
		}
		payload = append(payload, f.payload...)
		if f.fin {
			return op, compressed, payload
		}
	}
}

func TestConformanceDeflate(t *testing.T) {
	t.Parallel()
	const limit = 1 << 18
	srv := startServer(t, netpoll.Config{Loops: 2}, ws.Config{Compression: true, MaxFrameSize: limit, MaxMessageSize: limit})
	rng := rand.New(rand.NewPCG(12, 13))
	text := func(n int) []byte {
		words := []string{"alpha", "beta", "gamma", "delta", "é", "日本", " ", "\n", "{\"k\":1}"}
		var b strings.Builder
		for b.Len() < n {
			w := words[rng.IntN(len(words))]
			if b.Len()+len(w) > n {
				w = strings.Repeat("x", n-b.Len()) // valid UTF-8 of exactly n bytes
			}
			b.WriteString(w)
		}
		return []byte(b.String())
	}
	binary := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.IntN(4)) // compressible, not text
		}
		return p
	}
	offers := []struct {
		offer string
		bits  int // the window the server's answer must name (15: none named)
	}{
		{"permessage-deflate", 15},
		{"permessage-deflate; client_max_window_bits", 15},
		{"permessage-deflate; client_no_context_takeover", 15},
		{"permessage-deflate; server_no_context_takeover", 15},
		{"permessage-deflate; client_max_window_bits=9", 15},
		{"permessage-deflate; server_max_window_bits=9", 9},
		{"permessage-deflate; server_max_window_bits=12; client_max_window_bits=10", 12},
		{"permessage-deflate; server_max_window_bits=15; client_no_context_takeover; server_no_context_takeover", 15},
		{"x-unknown, permessage-deflate; bogus, permessage-deflate; server_max_window_bits=10", 10},
	}
	all := []int{0, 16, 64, 127, 128, 256, 511, 512, 1000, 4096, 32768, 65535, 65536, limit}
	some := []int{0, 128, 511, 512, 4096, 65536}
	for i, o := range offers {
		sizes := some
		if i == 0 {
			sizes = all // every size once; the other offers at the boundaries
		}
		t.Run(o.offer, func(t *testing.T) {
			rc, answer := dialDeflate(t, srv.Addr(), o.offer)
			defer rc.Close()
			want := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
			if o.bits != 15 || strings.Contains(o.offer, "server_max_window_bits=15") {
				want += fmt.Sprintf("; server_max_window_bits=%d", o.bits)
			}
			if answer != want {
				t.Fatalf("answered %q, want %q", answer, want)
			}
			for _, size := range sizes {
				for _, frames := range []int{1, 2, 5} {
					for _, op := range []byte{opText, opBinary} {
						msg := binary(size)
						if op == opText {
							msg = text(size)
						}
						level := []int{flate.BestSpeed, flate.DefaultCompression, flate.HuffmanOnly}[rng.IntN(3)]
						if err := rc.send(fragments(op, deflateMessage(msg, level), frames)...); err != nil {
							t.Fatal(err)
						}
						gotOp, compressed, p := readMessage(t, rc)
						if compressed {
							if size > 1<<o.bits {
								t.Fatalf("size %d: a compressed echo beyond the client's %d-bit window", size, o.bits)
							}
							var err error
							if p, err = inflateMessage(p); err != nil {
								t.Fatalf("size %d: the echo does not inflate: %v", size, err)
							}
						}
						if gotOp != op || !bytes.Equal(p, msg) {
							t.Fatalf("size %d, %d frames, op %d: echo op %d, %d bytes, differs", size, frames, op, gotOp, len(p))
						}
						if size >= 512 && size <= 1<<o.bits && !compressed {
							t.Fatalf("size %d: a compressible echo went plain", size)
						}
					}
				}
			}
		})
	}
}

// gorilla/websocket's compression (its own flate, with context takeover
// off) round-trips through the echo endpoint.
func TestConformanceDeflateGorilla(t *testing.T) {
	t.Parallel()
	srv := startServer(t, netpoll.Config{Loops: 1}, ws.Config{Compression: true, MaxFrameSize: 1 << 20, MaxMessageSize: 1 << 20})
	d := websocket.Dialer{EnableCompression: true}
	c, resp, err := d.Dial("ws://"+srv.Addr()+echoPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatal("not negotiated")
	}
	c.EnableWriteCompression(true)
	for _, n := range []int{1, 200, 5000, 300000} {
		msg := bytes.Repeat([]byte("pushd compresses once "), n/22+1)[:n]
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: %v", n, err)
		}
	}
}
