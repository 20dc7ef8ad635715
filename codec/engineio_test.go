package codec

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestParseEIOPacket(t *testing.T) {
	tests := []struct {
		in   string
		typ  EIOType
		data string
		err  error
	}{
		{`0{"sid":"x"}`, EIOOpen, `{"sid":"x"}`, nil},
		{"1", EIOClose, "", nil},
		{"2", EIOPing, "", nil},
		{"2probe", EIOPing, "probe", nil},
		{"3", EIOPong, "", nil},
		{"3probe", EIOPong, "probe", nil},
		{`42["a",1]`, EIOMessage, `2["a",1]`, nil},
		{"4", EIOMessage, "", nil},
		{"4\x00\xff", EIOMessage, "\x00\xff", nil},
		{"5", EIOUpgrade, "", nil},
		{"6", EIONoop, "", nil},
		{"", 0, "", ErrEIOPacket},
		{"7", 0, "", ErrEIOPacket},
		{"/", 0, "", ErrEIOPacket},
		{"a4", 0, "", ErrEIOPacket},
		{" 4", 0, "", ErrEIOPacket},
		{"\x1e", 0, "", ErrEIOPacket},
		{"bAQID", 0, "", ErrEIOBinary},
		{"b", 0, "", ErrEIOBinary},
	}
	for _, tt := range tests {
		typ, data, err := ParseEIOPacket([]byte(tt.in))
		if typ != tt.typ || string(data) != tt.data || err != tt.err {
			t.Errorf("ParseEIOPacket(%q) = %v, %q, %v; want %v, %q, %v", tt.in, typ, data, err, tt.typ, tt.data, tt.err)
		}
		if err == nil && len(tt.in) == 1 && data != nil {
			t.Errorf("ParseEIOPacket(%q): data %q, want nil", tt.in, data)
		}
	}
}

func TestEIOTypeString(t *testing.T) {
	want := []string{"open", "close", "ping", "pong", "message", "upgrade", "noop", "unknown"}
	for i, w := range want {
		if got := EIOType(i).String(); got != w {
			t.Errorf("EIOType(%d) = %q, want %q", i, got, w)
		}
	}
}

// eioSplit is NextEIOPacket's loop, collecting the packets.
func eioSplit(payload []byte) [][]byte {
	var out [][]byte
	for p := payload; ; {
		pkt, rest, more := NextEIOPacket(p)
		out = append(out, pkt)
		if !more {
			return out
		}
		p = rest
	}
}

func TestNextEIOPacket(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{""}},
		{"2", []string{"2"}},
		{"4hello\x1e2\x1e6", []string{"4hello", "2", "6"}},
		{"\x1e", []string{"", ""}},
		{"4a\x1e", []string{"4a", ""}},
		{"\x1e\x1e4", []string{"", "", "4"}},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range eioSplit([]byte(tt.in)) {
			got = append(got, string(p))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("split %q = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Against strings.Split on random payloads.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = "4a\x1e"[r.IntN(3)]
		}
		var got []string
		for _, p := range eioSplit(b) {
			got = append(got, string(p))
		}
		if want := strings.Split(string(b), "\x1e"); !reflect.DeepEqual(got, want) {
			t.Fatalf("split %q = %q, want %q", b, got, want)
		}
	}
}

// TestEIOPayloadRoundTrip encodes packets as a polling body the way the
// reference encodePayload does (joined with 0x1e) and reads them back.
func TestEIOPayloadRoundTrip(t *testing.T) {
	type packet struct {
		typ  EIOType
		data string
	}
	packets := []packet{
		{EIOOpen, `{"sid":"abc"}`}, {EIOPing, ""}, {EIOPong, "probe"},
		{EIOMessage, `42["x",{"a":"\u00e9"}]`}, {EIOMessage, ""}, {EIONoop, ""}, {EIOClose, ""},
	}
	var body []byte
	for i, p := range packets {
		if i > 0 {
			body = append(body, EIOSeparator)
		}
		body = append(body, '0'+byte(p.typ))
		body = append(body, p.data...)
	}
	var got []packet
	for _, pkt := range eioSplit(body) {
		typ, data, err := ParseEIOPacket(pkt)
		if err != nil {
			t.Fatalf("ParseEIOPacket(%q): %v", pkt, err)
		}
		got = append(got, packet{typ, string(data)})
	}
	if !reflect.DeepEqual(got, packets) {
		t.Fatalf("got %+v, want %+v", got, packets)
	}
}

func TestAppendEIOOpen(t *testing.T) {
	got := AppendEIOOpen([]byte("x"), "Ws5nDDm2x9ujE3TNAAAB", []string{"websocket"}, 25000, 20000, 1000000)
	const golden = `x0{"sid":"Ws5nDDm2x9ujE3TNAAAB","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
	if string(got) != golden {
		t.Fatalf("got %s, want %s", got, golden)
	}
	if got := string(AppendEIOOpen(nil, "s", nil, 1, 2, 3)); got != `0{"sid":"s","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3}` {
		t.Errorf("no upgrades: %s", got)
	}
	// Whatever the strings hold, the packet is the open type and valid JSON
	// that reads back to the arguments.
	sid, ups := "a\"b\\c\x00\u2028", []string{"websocket", "we\"bt"}
	p := AppendEIOOpen(nil, sid, ups, 25000, 20000, 1<<20)
	typ, data, err := ParseEIOPacket(p)
	if err != nil || typ != EIOOpen {
		t.Fatalf("ParseEIOPacket: %v %v", typ, err)
	}
	var h struct {
		SID                       string
		Upgrades                  []string
		PingInterval, PingTimeout int
		MaxPayload                int
	}
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	if h.SID != sid || !reflect.DeepEqual(h.Upgrades, ups) || h.PingInterval != 25000 || h.PingTimeout != 20000 || h.MaxPayload != 1<<20 {
		t.Errorf("read back %+v", h)
	}
}

func TestAppendEIOSmall(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{string(AppendEIOClose(nil)), "1"},
		{string(AppendEIOPing(nil)), "2"},
		{string(AppendEIOPong(nil)), "3"},
		{string(AppendEIOProbePong(nil)), "3probe"},
		{string(AppendEIONoop(nil)), "6"},
		{string(AppendEIOMessage(nil, []byte(`2["a"]`))), `42["a"]`},
		{string(AppendEIOMessage([]byte("6\x1e"), nil)), "6\x1e4"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestEIOErrorBodies checks each body against engine.io server.ts's
// Server.errors code and errorMessages text.
func TestEIOErrorBodies(t *testing.T) {
	messages := []string{"Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request",
		"Forbidden", "Unsupported protocol version"}
	bodies := []string{EIOErrUnknownTransport, EIOErrUnknownSID, EIOErrBadHandshakeMethod, EIOErrBadRequest,
		EIOErrForbidden, EIOErrUnsupportedProtocolVersion}
	for code, body := range bodies {
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if e.Code != code || e.Message != messages[code] {
			t.Errorf("%s: code %d message %q, want %d %q", body, e.Code, e.Message, code, messages[code])
		}
		// The reference writes JSON.stringify({code, message}): the same bytes.
		want, _ := json.Marshal(e)
		if string(want) != body {
			t.Errorf("body %s, JSON.stringify form %s", body, want)
		}
	}
}

func TestEIOAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	body := []byte("4hello\x1e2\x1e3probe\x1e42[\"x\"]")
	if n := testing.AllocsPerRun(100, func() {
		for p := body; ; {
			pkt, rest, more := NextEIOPacket(p)
			if _, _, err := ParseEIOPacket(pkt); err != nil {
				t.Fatal(err)
			}
			if !more {
				break
			}
			p = rest
		}
		buf = AppendEIOOpen(buf[:0], "Ws5nDDm2x9ujE3TNAAAB", []string{"websocket"}, 25000, 20000, 1000000)
		buf = AppendEIOProbePong(AppendEIOMessage(buf, body))
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

// FuzzEIOPayload splits a polling body and parses every packet, checking
// the splitter against strings.Split and each packet against re-encoding.
// A polling body arrives whole (its Content-Length is known), so nothing
// here is incremental; cuts instead places extra separators, making payloads
// with many packets from short inputs.
func FuzzEIOPayload(f *testing.F) {
	f.Add([]byte("4hello\x1e2\x1e6"), []byte{})
	f.Add([]byte(`0{"sid":"x","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3}`), []byte{2})
	f.Add([]byte("bAQIDBA==\x1e4x"), []byte{})
	f.Add([]byte("\x1e\x1e"), []byte{1, 0})
	f.Add([]byte("2probe3probe5"), []byte{6, 6})
	f.Fuzz(func(t *testing.T, payload, cuts []byte) {
		var b []byte
		for _, piece := range rqPieces(payload, cuts) {
			if b != nil {
				b = append(b, EIOSeparator)
			}
			b = append(b, piece...)
		}
		if b == nil {
			b = payload
		}
		pkts := eioSplit(b)
		want := bytes.Split(b, []byte{EIOSeparator})
		if len(pkts) != len(want) {
			t.Fatalf("%d packets, bytes.Split gives %d", len(pkts), len(want))
		}
		for i, pkt := range pkts {
			if !bytes.Equal(pkt, want[i]) {
				t.Fatalf("packet %d = %q, want %q", i, pkt, want[i])
			}
			typ, data, err := ParseEIOPacket(pkt)
			switch {
			case len(pkt) > 0 && pkt[0] == 'b':
				if err != ErrEIOBinary {
					t.Fatalf("%q: err %v, want ErrEIOBinary", pkt, err)
				}
			case len(pkt) == 0 || pkt[0] < '0' || pkt[0] > '6':
				if err != ErrEIOPacket {
					t.Fatalf("%q: err %v, want ErrEIOPacket", pkt, err)
				}
			default:
				if err != nil {
					t.Fatalf("%q: %v", pkt, err)
				}
				// Re-encoding gives the packet back.
				re := append([]byte{'0' + byte(typ)}, data...)
				if !bytes.Equal(re, pkt) {
					t.Fatalf("re-encoded %q, want %q", re, pkt)
				}
			}
		}
	})
}

func BenchmarkEIOPayload(b *testing.B) {
	var body []byte
	for i := range 10 {
		if i > 0 {
			body = append(body, EIOSeparator)
		}
		body = append(body, `42["message",{"topic":"a.b","seq":1234,"data":{"x":1}}]`...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		for p := body; ; {
			pkt, rest, more := NextEIOPacket(p)
			if _, _, err := ParseEIOPacket(pkt); err != nil {
				b.Fatal(err)
			}
			if !more {
				break
			}
			p = rest
		}
	}
}

func BenchmarkAppendEIOOpen(b *testing.B) {
	buf := make([]byte, 0, 256)
	ups := []string{"websocket"}
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEIOOpen(buf[:0], "Ws5nDDm2x9ujE3TNAAAB", ups, 25000, 20000, 1000000)
	}
}
