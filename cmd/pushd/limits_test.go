package main

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// At the per-IP cap the extra connection gets 503 with Retry-After, and the
// admitted connections keep working.
func TestPerIPCap(t *testing.T) {
	n := testNode(t, "--max-conns-per-ip", "3")
	var admitted []*client
	for i := 0; i < 3; i++ {
		admitted = append(admitted, dial(t, n.wsURL()+"?topics=cap"))
	}
	_, resp, err := websocket.DefaultDialer.Dial(n.wsURL(), nil)
	if err == nil {
		t.Fatal("fourth connection from one IP was admitted")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth connection: err %v, response %+v; want 503 with Retry-After", err, resp)
	}
	if got := n.srv.Metrics().RejectedPerIP.Load(); got != 1 {
		t.Fatalf("per-IP rejections = %d, want 1", got)
	}
	if code, _ := publishHTTP(t, n, `{"topic":"cap","data":1}`); code != 200 {
		t.Fatal("publish failed")
	}
	for _, c := range admitted {
		if m := c.read(); m.Type != "message" {
			t.Fatalf("admitted client got %+v", m)
		}
	}
	// Closing one admitted connection frees a place.
	admitted[0].ws.Close()
	waitFor(t, "a free place", func() bool {
		c, resp, err := websocket.DefaultDialer.Dial(n.wsURL(), nil)
		if err == nil {
			c.Close()
			return true
		}
		if resp != nil {
			resp.Body.Close()
		}
		return false
	})
}

// A reconnect storm beyond the accept rate is shed with 503s, never a crash
// or a reset, and every client gets in after backing off.
func TestReconnectStormIsShed(t *testing.T) {
	n := testNode(t, "--accept-rate", "100", "--accept-burst", "20", "--max-conns-per-ip", "0")
	const clients = 150
	var refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				c, resp, err := websocket.DefaultDialer.Dial(n.wsURL(), nil)
				if err == nil {
					defer c.Close()
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, _, err := c.ReadMessage(); err != nil { // the welcome
						errs <- err
					}
					return
				}
				if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
					errs <- errors.New("storm: " + err.Error())
					return
				}
				refused.Add(1)
				secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				if secs < 1 {
					errs <- errors.New("503 without a usable Retry-After")
					return
				}
				// Back off with full jitter within the advised interval.
				time.Sleep(time.Duration(rand.Int64N(int64(secs) * int64(time.Second))))
			}
			errs <- errors.New("client never got in")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if refused.Load() == 0 {
		t.Fatal("the storm was never shed: the rate limit did not apply")
	}
	if got := n.srv.Metrics().RejectedRate.Load(); got != refused.Load() {
		t.Fatalf("rate rejections metric = %d, clients saw %d", got, refused.Load())
	}
	t.Logf("%d clients in, %d 503s on the way", clients, refused.Load())
}

// A ping flood gets no pongs once the budget is spent, then close 1008.
func TestPingFloodIsClosed(t *testing.T) {
	n := testNode(t, "--command-rate", "5", "--command-burst", "5")
	c := dial(t, n.wsURL())
	pongs := 0
	c.ws.SetPongHandler(func(string) error { pongs++; return nil })
	for i := 0; i < 50; i++ {
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
			break
		}
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("ping flood ended with %v, want close 1008", err)
	}
	if pongs == 0 || pongs > 6 {
		t.Fatalf("%d pongs, want between 1 and the burst (5, +1 refill)", pongs)
	}
}

// A trusted proxy carries many clients, so the per-IP cap does not apply
// to its address.
func TestTrustedProxyIsExemptFromPerIPCap(t *testing.T) {
	n := testNode(t, "--max-conns-per-ip", "1", "--trust-proxy", "127.0.0.1")
	for i := 0; i < 3; i++ {
		dial(t, n.wsURL())
	}
	if got := n.srv.Metrics().RejectedPerIP.Load(); got != 0 {
		t.Fatalf("%d per-IP rejections for a trusted proxy", got)
	}
}

// A slowloris handshake, one byte per second, is closed at the handshake
// deadline, not kept open by its trickle.
func TestSlowlorisHandshakeIsClosed(t *testing.T) {
	n := testNode(t, "--handshake-timeout", "2s")
	c, err := net.Dial("tcp", n.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		var b [1]byte
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, _ = c.Read(b[:]) // returns at EOF or reset
		closed <- time.Since(start)
	}()
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			break // closed under us: expected
		}
		select {
		case d := <-closed:
			if d < 1900*time.Millisecond || d > 5*time.Second {
				t.Fatalf("closed after %v, want at the 2 s deadline", d)
			}
			if got := n.srv.Metrics().HandshakeTimeouts.Load(); got != 1 {
				t.Fatalf("handshake timeouts = %d", got)
			}
			return
		case <-time.After(time.Second):
		}
	}
	t.Fatal("the trickling handshake was never closed")
}
