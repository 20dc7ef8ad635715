package netpoll

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/conn/ws"
)

// A refused connection whose peer reset it at once: the 503 Write fails
// inside OnOpen and gnet runs OnClose there. The connection must still be
// uncounted, or a drain waits for it forever. (Found in review.)
func TestRefusedResetConnectionsAreUncounted(t *testing.T) {
	srv, err := Start(Config{Addr: "127.0.0.1:0", Loops: 1, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	holder, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST before the server writes its 503
	}
	holder.Close()
	// Refused connections linger 2 s and are closed on a tick.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && srv.connections() != 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if n := srv.connections(); n != 0 {
		t.Errorf("connections() = %d after every peer left, want 0", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// A 503 whose Write fails (the peer reset) has closed the fd inside the
// Write; the main reactor may already have given that number to a new
// client. refuse must not shut down or track it, or the new client loses its
// connection. (Found in review: ~60 broken upgrades in 4 s before the fix.)
func TestRefuseNeverTouchesAReusedFd(t *testing.T) {
	tp, err := auth.ParseTrustedProxies([]string{"127.0.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(Config{Addr: "127.0.0.1:0", Loops: 2, MaxConnsPerIP: 1, TrustedProxies: tp,
		Routes: []conn.Route{ws.EchoRoute("/echo", ws.Config{})}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	holder, err := net.Dial("tcp", srv.Addr()) // uses 127.0.0.1's only slot
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	time.Sleep(50 * time.Millisecond)
	var good, broken, dialErrs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() { // refused and reset from 127.0.0.1
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
				if err != nil {
					dialErrs.Add(1)
					continue
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) { // admitted clients from other loopback addresses
			defer wg.Done()
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(g+1))}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := d.Dial("tcp", srv.Addr())
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(2 * time.Second))
				_, _ = io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
				line, err := bufio.NewReader(c).ReadString('\n')
				switch {
				case err == nil && strings.HasPrefix(line, "HTTP/1.1 101"):
					good.Add(1)
				case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
					broken.Add(1) // the symptom: our socket was shut down under us
					t.Logf("admitted client got %q, %v", line, err)
				} // a timeout on a loaded machine is not this bug
				c.Close()
			}
		}(g)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if good.Load() == 0 {
		t.Fatalf("no admitted client got in (dial errors %d)", dialErrs.Load())
	}
	if broken.Load() > 0 {
		t.Errorf("%d admitted clients lost their connection", broken.Load())
	}
}
