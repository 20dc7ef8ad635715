package netpoll_test

// The second client implementation: gorilla/websocket, a widely used client
// that shares no code with pushd or with the raw client. Several gorilla
// clients exchange messages of many sizes with the echo endpoint at once,
// some in fragments (gorilla fragments any message larger than its write
// buffer), and close normally.

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
)

// gorillaSizes are the message sizes the gorilla clients cycle through, up
// to the engine's default 64 KiB message limit.
var gorillaSizes = []int{0, 1, 2, 125, 126, 127, 1000, 4095, 4096, 4097, 20000, 65535, 65536}

// TestGorillaClient runs three gorilla clients at once per dialer setting.
func TestGorillaClient(t *testing.T) {
	t.Parallel()
	addr := startServer(t, netpoll.Config{Loops: 2}, ws.Config{}).Addr()
	url := "ws://" + addr + echoPath
	dialers := map[string]*websocket.Dialer{
		"default-buffers": {HandshakeTimeout: 5 * time.Second},
		// A 256-byte write buffer makes gorilla send every larger message as
		// several fragments.
		"fragmenting": {HandshakeTimeout: 5 * time.Second, WriteBufferSize: 256, ReadBufferSize: 256},
	}
	for name, d := range dialers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var wg sync.WaitGroup
			for client := range 3 {
				wg.Go(func() {
					if err := gorillaExchange(d, url, client); err != nil {
						t.Errorf("client %d: %v", client, err)
					}
				})
			}
			wg.Wait()
		})
	}
}

// gorillaExchange connects with d, sends 100 text and binary messages of
// gorillaSizes one at a time and then 20 back to back, checks every echo,
// and closes with 1000, expecting 1000 back.
func gorillaExchange(d *websocket.Dialer, url string, client int) error {
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if resp.StatusCode != 101 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return err
	}
	message := func(i int) (int, []byte) {
		n := gorillaSizes[(i+client)%len(gorillaSizes)]
		if i%2 == 0 {
			return websocket.TextMessage, []byte(textPayload(n))
		}
		p := binPayload(n)
		if n > 0 {
			p[0] = byte(i) // tell the messages apart
		}
		return websocket.BinaryMessage, p
	}
	check := func(i int) error {
		typ, p, err := c.ReadMessage()
		if err != nil {
			return fmt.Errorf("message %d: read: %w", i, err)
		}
		wantType, want := message(i)
		if typ != wantType || !bytes.Equal(p, want) {
			return fmt.Errorf("message %d: got type %d %s, want type %d %s",
				i, typ, describePayload(p), wantType, describePayload(want))
		}
		return nil
	}
	for i := range 100 {
		if err := c.WriteMessage(message(i)); err != nil {
			return fmt.Errorf("message %d: write: %w", i, err)
		}
		if err := check(i); err != nil {
			return err
		}
	}
	// Back to back: the server sees several messages per read.
	for i := 100; i < 120; i++ {
		if err := c.WriteMessage(message(i)); err != nil {
			return fmt.Errorf("message %d: write: %w", i, err)
		}
	}
	for i := 100; i < 120; i++ {
		if err := check(i); err != nil {
			return err
		}
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
		return fmt.Errorf("write close: %w", err)
	}
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		return fmt.Errorf("after close: %v, want close 1000", err)
	}
	return nil
}
