package netpoll_test

import (
	"bytes"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// A message far larger than --max-outbound, sent to a client that reads, is
// delivered whole and does not close it (the old rule closed it as a slow
// consumer); a client that stops reading behind the same message is still
// closed with 4000 once its backlog has not drained for the timeout.
func TestLargeMessageToAReadingClient(t *testing.T) {
	const size = 8 << 20
	srv := startServer(t, netpoll.Config{Loops: 2, Conn: conn.Config{
		MaxOutbound:         1 << 20,
		SlowConsumerTimeout: 300 * time.Millisecond,
		CloseTimeout:        10 * time.Second,
	}}, ws.Config{MaxFrameSize: size, MaxMessageSize: size})
	url := "ws://" + srv.Addr() + echoPath
	msg := bytes.Repeat([]byte("0123456789abcdef"), size/16)

	// A small receive buffer keeps the kernel from taking the whole echo at
	// once, so most of it waits in pushd's outbound buffer.
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
	}}
	d := websocket.Dialer{NetDialContext: small.DialContext, WriteBufferSize: 64 << 10}

	reader, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	reader.SetReadLimit(size + 1)
	for round := 0; round < 3; round++ {
		if err := reader.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		_ = reader.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, got, err := reader.ReadMessage()
		if err != nil {
			t.Fatalf("round %d: the reading client lost its echo: %v", round, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("round %d: echo of %d bytes differs (got %d)", round, len(msg), len(got))
		}
	}

	stalled, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.SetReadLimit(size + 1)
	if err := stalled.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Metrics().SlowConsumers.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that never reads was not closed as a slow consumer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reading now, it gets the backlog and then close 4000.
	_ = stalled.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, _, err := stalled.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, 4000) {
			t.Fatalf("stalled client ended with %v, want close 4000", err)
		}
		break
	}
	if got := srv.Metrics().SlowConsumers.Load(); got != 1 {
		t.Fatalf("%d slow consumers, want only the stalled one", got)
	}
}

// A large frame trickled in small pieces costs O(n) through the whole
// engine: each received byte is handed to the state machine about once
// (gnet's buffer never holds a partial payload that Peek would copy again
// on every read), and the echo comes back intact.
func TestTrickledFrameCostsLinear(t *testing.T) {
	const size = 4 << 20
	srv := startServer(t, netpoll.Config{Loops: 1, Conn: conn.Config{MaxOutbound: 2 * size}},
		ws.Config{MaxFrameSize: size, MaxMessageSize: size})
	c, err := dialRaw(srv.Addr(), echoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte{0xa5}, size)
	frame := encodeFrames(c.rng, []clientFrame{binFrame(payload)})
	before := srv.Metrics().BytesFed.Load()
	for i := 0; i < len(frame); i += 64 {
		if _, err := c.c.Write(frame[i:min(i+64, len(frame))]); err != nil {
			t.Fatal(err)
		}
	}
	f, err := c.read(30 * time.Second)
	if err != nil || f.op != opBinary || !bytes.Equal(f.payload, payload) {
		t.Fatalf("echo: op %v, %d bytes, err %v", f.op, len(f.payload), err)
	}
	fed := srv.Metrics().BytesFed.Load() - before
	if ratio := float64(fed) / float64(len(frame)); ratio > 1.01 {
		t.Fatalf("%d bytes handed to the state machine for a %d-byte frame in 64-byte pieces: %.3f per byte, want about 1",
			fed, len(frame), ratio)
	}
	t.Logf("%.4f bytes handed per byte received", float64(fed)/float64(len(frame)))
}
