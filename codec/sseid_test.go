package codec

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEventID(t *testing.T) {
	id := string(AppendEventID(nil, "orders.eu", "E8x-2_", 1234))
	if id != "orders.eu:E8x-2_:1234" {
		t.Fatalf("AppendEventID = %q", id)
	}
	topic, epoch, off, ok := ParseEventID(id)
	if !ok || topic != "orders.eu" || epoch != "E8x-2_" || off != 1234 {
		t.Fatalf("ParseEventID(%q) = %q %q %d %v", id, topic, epoch, off, ok)
	}
	if _, _, off, ok := ParseEventID("a:e:9007199254740991"); !ok || off != maxEventOffset {
		t.Fatalf("largest offset: %d %v", off, ok)
	}
	for _, bad := range []string{
		"", "a", "a:e", "a:e:", ":e:1", "a::1", "a:e:0", "a:e:01", "a:e:-1", "a:e:+1", "a:e:1x",
		"a:e:9007199254740992", "a:e:99999999999999999999", "a..b:e:1", "a:e.f:1", "a:e:1:2",
		"a:" + strings.Repeat("e", 65) + ":1", "a b:e:1", "a:e:1 ", " a:e:1",
	} {
		if _, _, _, ok := ParseEventID(bad); ok {
			t.Errorf("ParseEventID(%q) accepted", bad)
		}
	}
	if _, _, _, ok := ParseEventID("a:" + strings.Repeat("e", 64) + ":1"); !ok {
		t.Error("a 64-byte epoch refused")
	}
}

// FuzzEventID: ParseEventID never panics; whatever it accepts is written
// back byte for byte by AppendEventID, and whatever AppendEventID writes
// from valid parts reads back. The input is also cut into the three parts
// where cuts says, to reach valid ids often.
func FuzzEventID(f *testing.F) {
	f.Add("orders.eu:E8x2:1234", []byte{})
	f.Add("a:b:9007199254740991", []byte{1, 2})
	f.Add("ticker.BTC", []byte{3, 5})
	f.Add("x:y:0", []byte{})
	f.Fuzz(func(t *testing.T, id string, cuts []byte) {
		if topic, epoch, off, ok := ParseEventID(id); ok {
			if back := string(AppendEventID(nil, topic, epoch, off)); back != id {
				t.Fatalf("ParseEventID(%q) then AppendEventID = %q", id, back)
			}
		}
		pieces := rqPieces([]byte(id), cuts)
		if len(pieces) < 3 {
			return
		}
		topic, epoch := string(pieces[0]), string(pieces[1])
		off := uint64(len(pieces[2])) * 7919
		valid := ValidTopic(topic) == nil && eventEpochOK(epoch) && off >= 1
		gt, ge, goff, ok := ParseEventID(string(AppendEventID(nil, topic, epoch, off)))
		if ok != valid || ok && (gt != topic || ge != epoch || goff != off) {
			t.Fatalf("parts %q %q %d (valid %v) read back as %q %q %d %v", topic, epoch, off, valid, gt, ge, goff, ok)
		}
	})
}

func TestAppendSSEClose(t *testing.T) {
	got := string(AppendSSEClose(nil, StatusTokenExpired, "token \"expired\"\n"))
	const want = "event: close\ndata: {\"type\":\"close\",\"code\":4002,\"reason\":\"token \\\"expired\\\"\\n\"}\n\n"
	if got != want {
		t.Fatalf("AppendSSEClose = %q, want %q", got, want)
	}
	p := newSSEParser()
	p.feed([]byte(got))
	if len(p.events) != 1 || p.events[0].typ != "close" {
		t.Fatalf("events %q", p.events)
	}
	var msg struct {
		Type   string
		Code   int
		Reason string
	}
	if err := json.Unmarshal([]byte(p.events[0].data), &msg); err != nil || msg.Type != "close" || msg.Code != 4002 || msg.Reason != "token \"expired\"\n" {
		t.Fatalf("data %q: %+v %v", p.events[0].data, msg, err)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendSSEClose(buf[:0], 4000, "slow consumer") }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
