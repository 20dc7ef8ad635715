package ws

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/conn"
)

// feedAll feeds in to a fresh echo connection in chunks of the given sizes
// (cycled; nil means one chunk), keeping unconsumed bytes the way netpoll
// keeps them in gnet's buffer, and returns what the connection wrote and
// whether it asked to be closed.
func feedAll(t *testing.T, in []byte, chunks []int) ([]byte, bool) {
	l := newTestLoop(Config{MaxFrameSize: 1 << 12, MaxMessageSize: 1 << 13})
	c, tr := openConn(t, l, "/echo")
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
		closed = closeNow || tr.closed || c.State() == conn.StateClosed || c.State() == conn.StateFailed
	}
	return tr.out.Bytes(), closed
}

// FuzzFeed drives the connection state machine with arbitrary client bytes
// after a valid upgrade. It must never panic or consume more than it was
// given, and splitting the input at random points must not change what the
// server writes back or whether it closes.
func FuzzFeed(f *testing.F) {
	f.Add(clientFrame(ws.OpText, true, []byte("hello")), int64(1))
	f.Add(append(clientFrame(ws.OpText, false, []byte("hel")), clientFrame(ws.OpContinuation, true, []byte("lo"))...), int64(2))
	f.Add(append(clientFrame(ws.OpPing, true, []byte("p")), clientFrame(ws.OpBinary, true, []byte{0, 1, 2})...), int64(3))
	f.Add(clientFrame(ws.OpClose, true, []byte{0x03, 0xe8}), int64(4))
	f.Add(clientFrame(ws.OpText, true, []byte{0xf5}), int64(5))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, int64(6)) // unmasked
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(7))
	// Empty frames: an empty final continuation, an empty first fragment,
	// an empty whole message.
	f.Add(append(clientFrame(ws.OpText, false, []byte("abc")), clientFrame(ws.OpContinuation, true, nil)...), int64(8))
	f.Add(append(clientFrame(ws.OpBinary, false, nil), clientFrame(ws.OpContinuation, true, []byte{1})...), int64(9))
	f.Add(clientFrame(ws.OpText, true, nil), int64(10))
	f.Fuzz(func(t *testing.T, in []byte, seed int64) {
		if len(in) > 1<<15 {
			return
		}
		whole, wholeClosed := feedAll(t, in, nil)
		rng := rand.New(rand.NewSource(seed))
		chunks := make([]int, 1+rng.Intn(8))
		for i := range chunks {
			chunks[i] = 1 + rng.Intn(64)
		}
		split, splitClosed := feedAll(t, in, chunks)
		if !bytes.Equal(whole, split) || wholeClosed != splitClosed {
			t.Fatalf("chunks %v changed the result:\nwhole %x (closed %v)\nsplit %x (closed %v)", chunks, whole, wholeClosed, split, splitClosed)
		}
	})
}
