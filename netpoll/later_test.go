package netpoll

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
)

// Later runs its function after the loop has served the sockets that were
// ready when it was called; Execute, whose queue gnet runs to the end
// before polling, does not. The test holds the loop in a task while a
// client's upgrade request reaches the kernel, then queues one function
// each way and looks at whether the request had been fed.
func TestLaterRunsAfterReadySockets(t *testing.T) {
	srv, err := Start(Config{Addr: "127.0.0.1:0", Loops: 1, Routes: []conn.Route{ws.EchoRoute("/echo", ws.Config{})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	// A first connection creates pushd's state for the loop, and the
	// loop's waker; wait until the loop has it.
	first, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	var l *loop
	deadline := time.Now().Add(5 * time.Second)
	for {
		if list := *srv.loopList.Load(); len(list) == 1 {
			l = list[0]
			ready := make(chan bool, 1)
			_ = l.Execute(func() { ready <- l.wk != nil })
			if <-ready {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop has no waker after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted and registered in the loop
	fed0 := srv.Metrics().BytesFed.Load()
	type seen struct{ later, execute int64 }
	got := make(chan seen, 1)
	var s seen
	if err := l.Execute(func() {
		// The request is sent while the loop is busy here, so it is ready
		// in the kernel when the two functions are queued.
		if _, err := c.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")); err != nil {
			t.Error(err)
		}
		time.Sleep(50 * time.Millisecond)
		_ = l.Execute(func() { s.execute = srv.Metrics().BytesFed.Load() - fed0 })
		if err := l.Later(func() { s.later = srv.Metrics().BytesFed.Load() - fed0; got <- s }); err != nil {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case s = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the function given to Later never ran")
	}
	if s.execute != 0 {
		t.Fatalf("Execute's function ran after the socket was served (%d bytes fed): the test does not tell the two apart", s.execute)
	}
	if s.later == 0 {
		t.Fatal("Later's function ran before the loop served the ready socket")
	}
}
