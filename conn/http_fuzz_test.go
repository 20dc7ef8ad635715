package conn

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/pushd/pushd/codec"
)

// feedHTTP feeds in to a fresh connection of the HTTP test loop in chunks
// of the given sizes (cycled; nil means one chunk), keeping unconsumed
// bytes the way netpoll keeps them in gnet's buffer. It returns what the
// connection wrote, without interim 100 Continue answers (they depend on
// whether a body came with its head), and whether it asked to be closed.
func feedHTTP(t *testing.T, in []byte, chunks []int) ([]byte, bool) {
	l, _, _, _ := newHTTPLoop(Config{MaxHeaderBytes: 512, MaxHeaders: 8})
	tr := &memTransport{}
	c := l.Open(tr)
	var pending []byte
	closed := false
	for i, k := 0, 0; i < len(in) && !closed; k++ {
		n := len(in) - i
		if len(chunks) > 0 {
			n = min(n, chunks[k%len(chunks)])
		}
		pending = append(pending, in[i:i+n]...)
		i += n
		consumed, closeNow := c.Feed(pending)
		if consumed < 0 || consumed > len(pending) {
			t.Fatalf("Feed consumed %d of %d bytes", consumed, len(pending))
		}
		pending = pending[consumed:]
		closed = closeNow || tr.closed || c.State() == StateClosed || c.State() == StateFailed
	}
	return bytes.ReplaceAll(tr.out.Bytes(), []byte(codec.ContinueResponse), nil), closed
}

// FuzzRequests drives the base connection's HTTP handling with arbitrary
// client bytes: request heads, bodies, pipelined and held requests. It
// must never panic or consume more than it was given, and splitting the
// input at random points must not change what the server answers or
// whether it closes.
func FuzzRequests(f *testing.F) {
	f.Add([]byte(get("/file")+get("/file")), int64(1))
	f.Add([]byte(post("/body", "hello")+get("/big")), int64(2))
	f.Add([]byte(post("/body", "hi", "Expect: 100-continue")+"GET /file HTTP/1.0\r\n\r\n"), int64(3))
	f.Add([]byte(get("/hold")+get("/file")), int64(4))
	f.Add([]byte(post("/file", "unread")+get("/file")), int64(5))
	f.Add([]byte(post("/body", string(make([]byte, 65)))), int64(6))
	f.Add([]byte("HEAD /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), int64(7))
	f.Add([]byte("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"), int64(8))
	f.Add([]byte("POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), int64(9))
	f.Add([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), int64(10))
	f.Fuzz(func(t *testing.T, in []byte, seed int64) {
		if len(in) > 1<<14 {
			return
		}
		whole, wholeClosed := feedHTTP(t, in, nil)
		rng := rand.New(rand.NewSource(seed))
		chunks := make([]int, 1+rng.Intn(8))
		for i := range chunks {
			chunks[i] = 1 + rng.Intn(64)
		}
		split, splitClosed := feedHTTP(t, in, chunks)
		if !bytes.Equal(whole, split) || wholeClosed != splitClosed {
			t.Fatalf("chunks %v changed the result:\nwhole %q (closed %v)\nsplit %q (closed %v)", chunks, whole, wholeClosed, split, splitClosed)
		}
	})
}
