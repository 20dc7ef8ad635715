package netpoll_test

// Timer-driven behaviour over real sockets, with short timers: the ping
// after an idle interval, the close when no frame follows it, the handshake
// deadline (also against a slowloris client) and the graceful stop.
//
// These tests are not parallel at the top level, so the Go test runner runs
// them before the parallel conformance groups start and their timing is not
// disturbed by the suite's load. Their bounds are still generous: the lower
// ones prove a timer did not fire early, the upper ones only that it fired.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// Heartbeat timers of the test server.
const (
	hbTick             = 10 * time.Millisecond
	hbPingInterval     = 200 * time.Millisecond
	hbPongTimeout      = 200 * time.Millisecond
	hbHandshakeTimeout = 300 * time.Millisecond
	hbCloseTimeout     = 200 * time.Millisecond
	// hbUpperBound bounds every "closed within" check: far above the timers,
	// far below anything a hung server would produce.
	hbUpperBound = 2 * time.Second
)

// heartbeatConfig is the engine configuration with short timers, and the
// WebSocket heartbeat of its echo endpoint.
func heartbeatConfig() (netpoll.Config, ws.Config) {
	return netpoll.Config{Loops: 2, Tick: hbTick, Conn: conn.Config{
			HandshakeTimeout: hbHandshakeTimeout,
			CloseTimeout:     hbCloseTimeout,
		}}, ws.Config{
			PingInterval: hbPingInterval,
			PongTimeout:  hbPongTimeout,
		}
}

// isClosedErr reports whether err means the peer closed the TCP connection.
func isClosedErr(err error) bool {
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET)
}

// waitClosed reads from c, discarding what arrives, until the peer closes
// the connection, and returns how long that took from start. It fails the
// test if the connection is still open after hbUpperBound or more.
func waitClosed(t *testing.T, c net.Conn, r io.Reader, start time.Time) time.Duration {
	t.Helper()
	if err := c.SetReadDeadline(start.Add(hbUpperBound + time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, r)
	if err == nil {
		err = io.EOF // io.Copy reports a clean EOF as nil
	}
	if !isClosedErr(err) {
		t.Fatalf("connection not closed by the server: %v after %v", err, time.Since(start))
	}
	return time.Since(start)
}

// TestHeartbeat checks the per-loop timing wheel's timers from outside.
func TestHeartbeat(t *testing.T) {
	cfg, wcfg := heartbeatConfig()
	addr := startServer(t, cfg, wcfg).Addr()
	url := "ws://" + addr + echoPath

	t.Run("answering client stays connected", func(t *testing.T) {
		t.Parallel()
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		var pings atomic.Int32
		c.SetPingHandler(func(data string) error {
			pings.Add(1)
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		msgs := make(chan []byte, 1)
		readErr := make(chan error, 1)
		go func() {
			for {
				_, p, err := c.ReadMessage()
				if err != nil {
					readErr <- err
					return
				}
				msgs <- p
			}
		}()
		// Five ping intervals of silence but for pongs.
		select {
		case err := <-readErr:
			t.Fatalf("connection ended while answering pings: %v", err)
		case <-time.After(5 * hbPingInterval):
		}
		if n := pings.Load(); n < 3 {
			t.Errorf("saw %d pings in %v, want at least 3 (one per idle interval of %v)", n, 5*hbPingInterval, hbPingInterval)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
			t.Fatalf("write: %v", err)
		}
		select {
		case p := <-msgs:
			if string(p) != "still here" {
				t.Errorf("echo %q, want %q", p, "still here")
			}
		case err := <-readErr:
			t.Fatalf("connection ended: %v", err)
		case <-time.After(hbUpperBound):
			t.Fatal("no echo")
		}
	})

	t.Run("active client is not pinged", func(t *testing.T) {
		t.Parallel()
		// Any inbound frame re-arms the idle timer (DESIGN §6), so a client
		// that sends a message every quarter interval is never pinged, and
		// never needs to pong to stay connected.
		rc, err := dialRaw(addr, echoPath)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		for i := range 3 * 4 {
			msg := []byte{byte('a' + i)}
			if err := rc.send(textFrame(string(msg))); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			f, err := rc.read(hbUpperBound)
			if err != nil {
				t.Fatalf("read echo %d: %v", i, err)
			}
			if f.op != opText || !bytes.Equal(f.payload, msg) {
				t.Fatalf("message %d: got %s, want the echo %q (no ping while active)", i, describeFrame(f), msg)
			}
			time.Sleep(hbPingInterval / 4)
		}
	})

	t.Run("silent client is closed after the pong timeout", func(t *testing.T) {
		t.Parallel()
		rc, err := dialRaw(addr, echoPath)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		start := time.Now()
		var pingAt time.Time
		var closeCode = -1
		for {
			f, err := rc.read(hbUpperBound + time.Second)
			if err != nil {
				if !isClosedErr(err) {
					t.Fatalf("read: %v after %v", err, time.Since(start))
				}
				break
			}
			switch f.op {
			case opPing:
				if pingAt.IsZero() {
					pingAt = time.Now()
				}
			case opClose:
				code, _, ok := closePayload(f.payload)
				if !ok {
					t.Errorf("malformed close payload % x", f.payload)
				}
				closeCode = code
			default:
				t.Errorf("unexpected %s", describeFrame(f))
			}
		}
		end := time.Now()
		if pingAt.IsZero() {
			t.Fatal("closed without a ping first")
		}
		t.Logf("ping after %v of silence, closed %v after the ping (close code %d)",
			pingAt.Sub(start).Round(time.Millisecond), end.Sub(pingAt).Round(time.Millisecond), closeCode)
		// The wheel's clock is advanced by a ticker hop, so a timer may fire a
		// few ticks early; the bounds only rule out a ping or close that did
		// not wait for its interval at all.
		if d := pingAt.Sub(start); d < hbPingInterval/2 {
			t.Errorf("pinged after %v of silence, want about the %v ping interval", d, hbPingInterval)
		}
		if d := end.Sub(pingAt); d < hbPongTimeout/2 {
			t.Errorf("closed %v after the ping, want about the %v pong timeout", d, hbPongTimeout)
		}
		if d := end.Sub(start); d < hbPingInterval {
			t.Errorf("closed after %v, want no sooner than the %v ping interval", d, hbPingInterval)
		}
		if d := end.Sub(start); d > hbUpperBound {
			t.Errorf("closed after %v, want within ping interval + pong timeout (%v) plus slack (< %v)",
				d, hbPingInterval+hbPongTimeout, hbUpperBound)
		}
		if closeCode != -1 && closeCode != 4001 {
			t.Errorf("close code %d, want 4001 (heartbeat timeout) or no close frame", closeCode)
		}
	})

	t.Run("no handshake is closed at the deadline", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		d := waitClosed(t, c, c, time.Now())
		if d < hbHandshakeTimeout-50*time.Millisecond || d > hbUpperBound {
			t.Errorf("closed after %v, want about the %v handshake timeout", d, hbHandshakeTimeout)
		}
	})

	t.Run("slowloris handshake is closed at the deadline", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		done := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			// One byte every 100 ms: each byte would re-arm a naive idle
			// timer, but the deadline bounds the whole handshake.
			defer close(stopped)
			for _, b := range upgradeRequest(echoPath) {
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
		d := waitClosed(t, c, c, start)
		close(done)
		<-stopped
		if d < hbHandshakeTimeout-50*time.Millisecond || d > hbUpperBound {
			t.Errorf("closed after %v, want about the %v handshake timeout", d, hbHandshakeTimeout)
		}
	})
}

// TestGracefulShutdown checks that Shutdown sends close 1001 to every open
// connection (RFC 6455 §7.4.1: the server is going away) and then stops.
func TestGracefulShutdown(t *testing.T) {
	cfg, wcfg := heartbeatConfig()
	cfg.Addr = "127.0.0.1:0"
	wcfg.PingInterval = time.Minute         // no pings in the way
	cfg.Conn.HandshakeTimeout = time.Minute // only the stop may close the idle socket
	cfg.Routes = []conn.Route{ws.EchoRoute(echoPath, wcfg)}
	srv, err := netpoll.Start(cfg)
	if err != nil {
		t.Fatalf("netpoll.Start: %v", err)
	}
	addr := srv.Addr()

	gc, _, err := websocket.DefaultDialer.Dial("ws://"+addr+echoPath, nil)
	if err != nil {
		t.Fatalf("gorilla dial: %v", err)
	}
	defer gc.Close()
	rc, err := dialRaw(addr, echoPath)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	defer rc.Close()
	// Prove both are open before the stop.
	if err := gc.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := gc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, p, err := gc.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("gorilla echo: %q, %v", p, err)
	}
	if err := rc.send(textFrame("hi")); err != nil {
		t.Fatal(err)
	}
	if f, err := rc.read(5 * time.Second); err != nil || f.op != opText {
		t.Fatalf("raw echo: %v, %v", describeFrame(f), err)
	}
	// A connection in the middle of a fragmented message, and one that has
	// not sent its upgrade request yet.
	mid, err := dialRaw(addr, echoPath)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	defer mid.Close()
	if err := mid.send(textFrame("frag1").fragment()); err != nil {
		t.Fatal(err)
	}
	pre, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Close()
	time.Sleep(50 * time.Millisecond) // let the engine take in both

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- srv.Shutdown(ctx)
	}()

	// gorilla answers the close itself and reports it as a CloseError.
	_, _, err = gc.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("gorilla client: %v, want close 1001", err)
	}
	// The raw clients do not answer: the server must not wait for them
	// longer than its close timeout.
	for name, c := range map[string]*rawConn{"raw client": rc, "client mid-message": mid} {
		f, err := c.read(5 * time.Second)
		if err != nil {
			t.Errorf("%s: %v, want a close frame", name, err)
			continue
		}
		if code, _, _ := closePayload(f.payload); f.op != opClose || code != 1001 {
			t.Errorf("%s: got %s, want close(1001)", name, describeFrame(f))
		}
		if _, err := c.read(5 * time.Second); !isClosedErr(err) {
			t.Errorf("%s after the close frame: %v, want EOF", name, err)
		}
	}
	// No WebSocket yet, so no close frame: just the end of the stream.
	waitClosed(t, pre, pre, time.Now())
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after Shutdown returned")
	}
}
