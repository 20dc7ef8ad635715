package sio

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/session"
)

// fuzzPieces splits data into pieces of the sizes given by cuts (as
// codec's fuzz targets do): byte i of cuts is the size of piece i.
func fuzzPieces(data, cuts []byte) [][]byte {
	var pieces [][]byte
	for _, c := range cuts {
		k := min(len(data), int(c)%32)
		pieces = append(pieces, data[:k])
		data = data[k:]
	}
	return append(pieces, data)
}

// FuzzPollingPost POSTs an arbitrary payload to a session that has joined
// the namespace with a token, the request arriving in pieces of random
// sizes, then polls. Whatever the payload, the server must not panic, the
// POST gets "ok" (or 400 once the session is gone), the poll's answer is a
// payload whose every packet parses as Engine.IO (and a message as
// Socket.IO), and the session's queue stays within its bounds.
func FuzzPollingPost(f *testing.F) {
	for _, s := range []string{
		`421["subscribe",["a"]]`, "3\x1e6\x1e1", `42["publish",{"topic":"allowed","data":1}]`,
		`451-3["x",{"_placeholder":true,"num":0}]` + "\x1ebAQID", "40\x1e40/x,", `42["error"]`, "2probe", "4", "",
		`4299999999999999999999["subscribe","a"]`, "\x1e\x1e", "5", "41",
	} {
		f.Add([]byte(s), []byte{3, 7, 1})
	}
	bus := newTestBus(f)
	f.Fuzz(func(t *testing.T, payload, cuts []byte) {
		if len(payload) > 4096 {
			return
		}
		nd := newPollNode(t, bus, 1, Config{MaxPayload: 4096}, tokenAdmission(time.Time{}),
			session.Config{Publish: func(string, []byte) error { return nil }}, false)
		sid := nd.join(0, `{"token":"good"}`)
		hc := nd.dial(0)
		req := "POST " + DefaultPath + "?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: x\r\n" +
			"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(payload)) + "\r\n\r\n" + string(payload)
		var buf []byte
		for _, piece := range fuzzPieces([]byte(req), cuts) {
			buf = append(buf, piece...)
			n, _ := hc.c.Feed(buf)
			buf = buf[n:]
		}
		nd.run()
		r := hc.resp()
		if r.status != 200 || r.body != "ok" {
			t.Fatalf("POST %q: %d %q", payload, r.status, r.body)
		}
		eng := nd.engine(sid)
		if eng != nil && eng.outBytes > nd.loops[0].Config().MaxOutbound {
			t.Fatalf("queued %d bytes", eng.outBytes)
		}
		for { // the answers, then the DISCONNECT and the close packet if it ended
			if e := nd.engine(sid); e != nil && len(e.out) == 0 && e.flags&eClosing == 0 {
				break // nothing to take: a poll would be held
			}
			ans := nd.pollNow(0, sid)
			if ans.status != 200 {
				if ans.status != 400 || ans.body != codec.EIOErrUnknownSID {
					t.Fatalf("poll after %q: %d %q", payload, ans.status, ans.body)
				}
				break
			}
			for _, p := range strings.Split(ans.body, "\x1e") {
				typ, _, err := codec.ParseEIOPacket([]byte(p))
				if err != nil {
					t.Fatalf("after %q: server packet %q: %v", payload, p, err)
				}
				if typ == codec.EIOMessage {
					if _, err := codec.ParseSIOPacket([]byte(p)); err != nil {
						t.Fatalf("after %q: server packet %q: %v", payload, p, err)
					}
				}
			}

		}
	})
}
