//go:build linux

package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// startFloor runs the server on loopback ports and returns its addresses.
func startFloor(t *testing.T, maxPending int) (wsAddr, apiAddr string) {
	t.Helper()
	wsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, wsLn, apiLn, maxPending) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return wsLn.Addr().String(), apiLn.Addr().String()
}

func publish(t *testing.T, apiAddr, body string) {
	t.Helper()
	resp, err := http.Post("http://"+apiAddr+"/v1/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %s: %s", body, resp.Status)
	}
}

// dialReady connects a gorilla/websocket client subscribed to topics and to
// a probe topic of its own, and publishes probes until one arrives: then the
// loop has registered the connection for all its topics.
func dialReady(t *testing.T, wsAddr, apiAddr, topics, probe string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws?topics="+topics+","+probe, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			publish(t, apiAddr, `{"topic":"`+probe+`","data":0}`)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	_, msg, err := c.ReadMessage()
	close(stop)
	<-done
	if err != nil || !strings.Contains(string(msg), `"topic":"`+probe+`"`) {
		t.Fatalf("probe: %q, %v", msg, err)
	}
	return c
}

// readPush reads the next message that is not a probe.
func readPush(c *websocket.Conn) (int, []byte, error) {
	for {
		typ, msg, err := c.ReadMessage()
		if err != nil || !strings.Contains(string(msg), `"topic":"probe.`) {
			return typ, msg, err
		}
	}
}

// TestFloorPushes subscribes real gorilla/websocket clients and checks that
// each receives pushd's wire format, in order, per topic, and that the
// closing handshake completes.
func TestFloorPushes(t *testing.T) {
	wsAddr, apiAddr := startFloor(t, 1<<20)
	a := dialReady(t, wsAddr, apiAddr, "a", "probe.1")
	ab := dialReady(t, wsAddr, apiAddr, "a,b", "probe.2")
	b := dialReady(t, wsAddr, apiAddr, "b", "probe.3")
	publish(t, apiAddr, `{"topic":"a","data":{"x":1}}`)
	publish(t, apiAddr, `{"topic":"b","data":"two"}`)
	publish(t, apiAddr, `{"topic":"a","data":[3]}`)
	want := map[*websocket.Conn][]string{
		a:  {`{"type":"message","topic":"a","seq":1,"data":{"x":1}}`, `{"type":"message","topic":"a","seq":2,"data":[3]}`},
		b:  {`{"type":"message","topic":"b","seq":1,"data":"two"}`},
		ab: {`{"type":"message","topic":"a","seq":1,"data":{"x":1}}`, `{"type":"message","topic":"b","seq":1,"data":"two"}`, `{"type":"message","topic":"a","seq":2,"data":[3]}`},
	}
	for c, msgs := range want {
		for _, w := range msgs {
			typ, got, err := readPush(c)
			if err != nil || typ != websocket.TextMessage || string(got) != w {
				t.Fatalf("got %q (type %d, %v), want %q", got, typ, err, w)
			}
		}
	}
	// A ping is answered.
	pong := make(chan string, 1)
	b.SetPongHandler(func(s string) error { pong <- s; return nil })
	b.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second))
	publish(t, apiAddr, `{"topic":"b","data":"after"}`)
	if _, got, err := readPush(b); err != nil || !strings.Contains(string(got), "after") {
		t.Fatalf("after the ping: %q, %v", got, err)
	}
	if s := <-pong; s != "hi" {
		t.Fatalf("pong %q", s)
	}
	// Closing handshake: the server answers with a close frame and closes.
	a.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	_, _, err := readPush(a)
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("after close: %v", err)
	}
	ab.Close()
	b.Close()
}

func TestFloorRejects(t *testing.T) {
	wsAddr, apiAddr := startFloor(t, 1<<20)
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws?topics=bad..topic", nil); err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad topic: %v", err)
	}
	for _, body := range []string{`{"topic":"a"}`, `{"data":1}`, `nope`} {
		resp, err := http.Post("http://"+apiAddr+"/v1/publish", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("publish %s: %s", body, resp.Status)
		}
	}
}

// TestFloorSlowReader fills a subscriber that does not read (12 MB
// published, more than the kernel buffers hold): the floor must keep
// serving the other one and close the stuck one once -max-pending is passed.
func TestFloorSlowReader(t *testing.T) {
	wsAddr, apiAddr := startFloor(t, 64<<10)
	stuck := dialReady(t, wsAddr, apiAddr, "t", "probe.1")
	defer stuck.Close()
	live := dialReady(t, wsAddr, apiAddr, "t", "probe.2")
	defer live.Close()
	big := `{"topic":"t","data":"` + strings.Repeat("x", 60000) + `"}`
	received := make(chan int, 1)
	go func() {
		n := 0
		live.SetReadDeadline(time.Now().Add(30 * time.Second))
		for n < 200 {
			if _, _, err := readPush(live); err != nil {
				break
			}
			n++
		}
		received <- n
	}()
	for range 200 {
		publish(t, apiAddr, big)
	}
	if n := <-received; n != 200 {
		t.Fatalf("the live subscriber got %d of 200", n)
	}
	// The stuck one was closed: draining it ends in an error, not a hang.
	stuck.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := stuck.ReadMessage(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the stuck subscriber was not closed")
			}
			break
		}
	}
}
