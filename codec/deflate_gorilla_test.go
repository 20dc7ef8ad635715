package codec_test

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/codec"
)

// TestDeflateGorillaInterop runs a real gorilla/websocket client with
// compression against codec's functions over an in-memory pipe, at the byte
// level: gorilla's own offer is negotiated with NegotiateDeflate, pushes
// built with Deflater and PutCompressedFrameHeader are read by gorilla's
// inflater, and gorilla's compressed (and fragmented) messages are checked
// with CheckClientHeaderDeflate and inflated with InflateParts.
func TestDeflateGorillaInterop(t *testing.T) {
	cside, sside := net.Pipe()
	defer cside.Close()
	defer sside.Close()
	deadline := time.Now().Add(20 * time.Second)
	sside.SetDeadline(deadline)
	cside.SetDeadline(deadline)

	type dialed struct {
		c   *websocket.Conn
		err error
	}
	dialDone := make(chan dialed, 1)
	go func() {
		d := websocket.Dialer{EnableCompression: true, NetDial: func(string, string) (net.Conn, error) { return cside, nil }}
		c, _, err := d.Dial("ws://pushd.test/ws", nil)
		dialDone <- dialed{c, err}
	}()

	// The upgrade request, and its Sec-WebSocket-Extensions values.
	br := bufio.NewReader(sside)
	var head []byte
	var exts []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the request: %v", err)
		}
		head = append(head, line...)
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Sec-WebSocket-Extensions") {
			exts = append(exts, strings.TrimSpace(value))
		}
		if line == "\r\n" {
			break
		}
	}
	req, _, err := codec.ParseUpgrade(head, codec.UpgradeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	neg := codec.NegotiateDeflate(exts)
	if !neg.Accepted {
		t.Fatalf("gorilla's offer %q declined", exts)
	}
	resp := codec.AppendUpgradeResponse(nil, req.Key, "")
	resp = append(resp[:len(resp)-2], "Sec-WebSocket-Extensions: "+neg.Response+"\r\n\r\n"...)
	if _, err := sside.Write(resp); err != nil {
		t.Fatal(err)
	}
	dd := <-dialDone
	if dd.err != nil {
		t.Fatalf("gorilla rejected the answer %q: %v", neg.Response, dd.err)
	}
	client := dd.c

	r := rand.New(rand.NewPCG(11, 12))
	random := make([]byte, 100_000)
	for i := range random {
		random[i] = byte('a' + r.IntN(20))
	}
	messages := [][]byte{pushJSON100(), pushJSON2K(), random, []byte("x")}

	// Server to client: compress once, send the same frame bytes twice.
	d := codec.NewDeflater()
	for _, msg := range messages {
		buf := d.Compress(make([]byte, 10), msg)
		start := codec.PutCompressedFrameHeader(buf[:10], ws.OpText, true, len(buf)-10)
		frame := buf[start:]
		go func() {
			sside.Write(frame)
			sside.Write(frame)
		}()
		for range 2 {
			typ, got, err := client.ReadMessage()
			if err != nil || typ != websocket.TextMessage || !bytes.Equal(got, msg) {
				t.Fatalf("gorilla read %d bytes (type %d), %v; want the %d-byte push", len(got), typ, err, len(msg))
			}
		}
	}

	// Client to server: gorilla compresses with compress/flate and cuts
	// messages longer than its write buffer into fragments.
	f := codec.NewInflater()
	for _, msg := range messages {
		wrote := make(chan error, 1)
		go func() { wrote <- client.WriteMessage(websocket.BinaryMessage, msg) }()
		var parts [][]byte
		inMessage := false
		for {
			var hb [14]byte
			if _, err := io.ReadFull(br, hb[:2]); err != nil {
				t.Fatal(err)
			}
			need := 2 + map[byte]int{126: 2, 127: 8}[hb[1]&0x7f] + 4
			if _, err := io.ReadFull(br, hb[2:need]); err != nil {
				t.Fatal(err)
			}
			h, n, err := codec.ParseHeader(hb[:need])
			if err != nil || n != need {
				t.Fatalf("header % x: %v", hb[:need], err)
			}
			if err := codec.CheckClientHeaderDeflate(h, inMessage); err != nil {
				t.Fatalf("gorilla's frame %+v: %v", h, err)
			}
			if first := !inMessage; (h.Rsv == 4) != first {
				t.Fatalf("frame %+v: RSV1 must be set on the first frame only", h)
			}
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(br, payload); err != nil {
				t.Fatal(err)
			}
			codec.Unmask(payload, h.Mask, 0)
			parts = append(parts, payload)
			inMessage = !h.Fin
			if h.Fin {
				break
			}
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		got, err := f.InflateParts(nil, parts, len(msg))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("inflating gorilla's %d-byte message in %d frames: %d bytes, %v", len(msg), len(parts), len(got), err)
		}
		t.Logf("gorilla sent %d bytes as %d frames", len(msg), len(parts))
	}
}
