package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/conn/ws"
)

// gorilla/websocket with EnableCompression negotiates permessage-deflate
// and receives pushes compressed once for every compressing subscriber; a
// client without it gets the same pushes plain.
func TestCompressedPushesToGorilla(t *testing.T) {
	n := testNode(t)
	zd := websocket.Dialer{EnableCompression: true}
	zipped, resp, err := zd.Dial(n.wsURL()+"?topics=zip", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zipped.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("extensions %q: not negotiated", ext)
	}
	plain := dial(t, n.wsURL()+"?topics=zip")
	read := func(c *websocket.Conn) map[string]any {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := read(zipped); m["type"] != "welcome" {
		t.Fatalf("first message %v", m)
	}
	waitFor(t, "interest", func() bool { return n.hub.Stats().Subscriptions == 2 })
	pushes, _ := ws.CompressionStats()
	before := pushes.In.Load()
	data := `{"book":[` + strings.TrimSuffix(strings.Repeat(`{"price":97000.5,"qty":3},`, 60), ",") + `]}`
	if code, body := publishHTTP(t, n, `{"topic":"zip","data":`+data+`}`); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	for _, m := range []map[string]any{read(zipped), read(plain.ws)} {
		b, _ := json.Marshal(m["data"])
		var want any
		_ = json.Unmarshal([]byte(data), &want)
		w, _ := json.Marshal(want)
		if m["topic"] != "zip" || string(b) != string(w) {
			t.Fatalf("push %v", m)
		}
	}
	if got := pushes.In.Load() - before; got < int64(len(data)) || got > int64(len(data))+200 {
		t.Fatalf("%d bytes compressed for one push of %d bytes to one compressing subscriber", got, len(data))
	}
	// A compressed command works too (gorilla compresses what it sends).
	zipped.EnableWriteCompression(true)
	if err := zipped.WriteMessage(websocket.TextMessage, []byte(`{"id":5,"type":"ping","pad":"`+strings.Repeat("y", 400)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if m := read(zipped); m["type"] != "ok" || m["id"] != float64(5) {
		t.Fatalf("reply to a compressed ping: %v", m)
	}
}
