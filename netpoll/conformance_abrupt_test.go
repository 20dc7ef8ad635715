package netpoll_test

// Clients that vanish: a TCP connection dropped (with a FIN or a reset) at
// any point of the handshake or of a frame must cost the engine nothing that
// outlives it, and must not disturb the other connections of its loop.

import (
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// TestAbruptDisconnects drops connections at every kind of cut and then
// checks that the engine still echoes and holds no open connection.
func TestAbruptDisconnects(t *testing.T) {
	t.Parallel()
	srv := startServer(t, netpoll.Config{Loops: 2}, ws.Config{})
	addr := srv.Addr()

	rng := rand.New(rand.NewPCG(7, 7))
	request := upgradeRequest(echoPath)
	// A stream with a complete message, a fragmented one left open, a ping
	// and a large frame, so the cuts fall in every state.
	stream := append(append([]byte(nil), request...), encodeFrames(rng, frames(
		textFrame("complete"),
		textFrame("open fragment").fragment(),
		pingFrame([]byte("p")),
		contFrame(textPayload(3000)).fragment(),
	))...)
	cuts := []int{1, len(request) / 2, len(request) - 1, len(request), len(request) + 1, len(request) + 5,
		len(request) + 20, len(request) + 40, len(stream) - 1000, len(stream)}
	for i, cut := range cuts {
		for _, reset := range []bool{false, true} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(stream[:cut]); err != nil {
				t.Fatalf("cut %d: write: %v", i, err)
			}
			time.Sleep(5 * time.Millisecond) // let the engine take the bytes in
			if reset {
				// SO_LINGER 0 makes Close send a reset instead of a FIN.
				if err := c.(*net.TCPConn).SetLinger(0); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
		}
	}

	rc, err := dialRaw(addr, echoPath)
	if err != nil {
		t.Fatalf("dial after the drops: %v", err)
	}
	if err := rc.send(textFrame("still serving")); err != nil {
		t.Fatal(err)
	}
	if f, err := rc.read(5 * time.Second); err != nil {
		t.Fatalf("read: %v", err)
	} else if p := frameMismatch(f, wantText("still serving")); p != "" {
		t.Fatal(p)
	}
	// The echo answers a frame sent after the 101 arrived, so the upgrade's
	// bookkeeping is done by now: the count is not vacuously zero.
	if n := srv.Metrics().Open.Load(); n < 1 {
		t.Errorf("open connection count %d with a client connected, want at least 1", n)
	}
	if err := rc.send(closeFrame(1000, "")); err != nil {
		t.Fatal(err)
	}
	if f, err := rc.read(5 * time.Second); err != nil {
		t.Fatalf("read: %v", err)
	} else if p := frameMismatch(f, wantClose(1000)); p != "" {
		t.Fatal(p)
	}
	rc.Close()

	deadline := time.Now().Add(5 * time.Second)
	for srv.Metrics().Open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.Metrics().Open.Load(); n != 0 {
		t.Errorf("%d connections still open in the engine's count after every client left", n)
	}
}
