package netpoll_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// A connection that arrives while the server drains, even after every
// client has gone, gets 503 with Retry-After rather than a refused
// connection; the server stops once no connection has arrived for
// DrainQuiet.
func TestDrainAnswers503UntilQuiet(t *testing.T) {
	const quiet = 400 * time.Millisecond
	srv, err := netpoll.Start(netpoll.Config{Addr: "127.0.0.1:0", Loops: 1, DrainQuiet: quiet,
		Routes: []conn.Route{ws.EchoRoute(echoPath, ws.Config{})}})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// No client was connected, so only the quiet period keeps the port
	// open: keep knocking for longer than one quiet period.
	for i := 0; i < 4; i++ {
		time.Sleep(quiet / 2)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attempt %d, %v into the drain: %v (want a 503)", i, time.Since(start), err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("attempt %d: %s, Retry-After %q", i, resp.Status, resp.Header.Get("Retry-After"))
		}
		resp.Body.Close()
		c.Close()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Shutdown did not return after the knocking stopped")
	}
	if d := time.Since(start); d < 2*quiet+quiet/2 {
		t.Errorf("stopped after %v, before the last knock was %v quiet", d, quiet)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("port still open after Shutdown returned")
	}
}
