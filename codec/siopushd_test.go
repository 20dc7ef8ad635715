package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSIOAuth(t *testing.T) {
	tests := []struct {
		in   string
		want SIOAuth
		err  string // ProtoError code, "" for success
	}{
		{"", SIOAuth{}, ""},
		{`{}`, SIOAuth{}, ""},
		{`{"token":"abc"}`, SIOAuth{Token: "abc"}, ""},
		{`{"token":null,"x":[1,{}]}`, SIOAuth{}, ""},
		{`{"pid":"p1","offset":"e:1","token":"t"}`, SIOAuth{Token: "t", PID: "p1", Offset: "e:1"}, ""},
		{`{"token":"\u00e9\n"}`, SIOAuth{Token: "\u00e9\n"}, ""},
		{`{"token":12}`, SIOAuth{}, CodeBadJSON},
		{`{"pid":{}}`, SIOAuth{}, CodeBadJSON},
		{`{"offset":true}`, SIOAuth{}, CodeBadJSON},
		{`[]`, SIOAuth{}, CodeBadJSON},
		{`null`, SIOAuth{}, CodeBadJSON},
		{`{"token":"a"`, SIOAuth{}, CodeBadJSON},
		{"{\"token\":\"\xff\"}", SIOAuth{}, CodeBadJSON},
	}
	for _, tt := range tests {
		got, err := ParseSIOAuth([]byte(tt.in))
		if code := protoCode(err); code != tt.err || got != tt.want {
			t.Errorf("ParseSIOAuth(%q) = %+v, %v; want %+v, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// protoCode returns err's ProtoError code, "" for nil, "?" for another error.
func protoCode(err error) string {
	if err == nil {
		return ""
	}
	if pe, ok := err.(*ProtoError); ok {
		return pe.Code
	}
	return "?"
}

func TestParseSIOEvent(t *testing.T) {
	tests := []struct {
		in   string
		want Command
		err  string
	}{
		{`["subscribe",["a","b.c"]]`, Command{Type: CmdSubscribe, Topics: []string{"a", "b.c"}}, ""},
		{`["subscribe","a"]`, Command{Type: CmdSubscribe, Topics: []string{"a"}}, ""},
		{`["subscribe",{"topics":["a"],"since":{}}]`, Command{Type: CmdSubscribe, Topics: []string{"a"}}, ""},
		{`["subscribe",{"topics":"a"}]`, Command{Type: CmdSubscribe, Topics: []string{"a"}}, ""},
		{`[ "unsubscribe" , [ "x" ] , 1 ]`, Command{Type: CmdUnsubscribe, Topics: []string{"x"}}, ""},
		{`["sub\u0073cribe",["a"]]`, Command{Type: CmdSubscribe, Topics: []string{"a"}}, ""},
		{`["publish",{"topic":"a","data":{"x":[1]}}]`, Command{Type: CmdPublish, Topic: "a", Data: []byte(`{"x":[1]}`)}, ""},
		{`["publish",{"topic":"a","data":null}]`, Command{Type: CmdPublish, Topic: "a", Data: []byte(`null`)}, ""},
		{`["subscribe"]`, Command{Type: CmdSubscribe}, CodeBadRequest},
		{`["subscribe",null]`, Command{Type: CmdSubscribe}, CodeBadRequest},
		{`["subscribe",[]]`, Command{Type: CmdSubscribe}, CodeBadRequest},
		{`["subscribe",{}]`, Command{Type: CmdSubscribe}, CodeBadRequest},
		{`["subscribe",{"topics":{"topics":["a"]}}]`, Command{Type: CmdSubscribe}, CodeBadRequest},
		{`["subscribe",[1]]`, Command{Type: CmdSubscribe}, CodeBadJSON},
		{`["subscribe",7]`, Command{Type: CmdSubscribe}, CodeBadJSON},
		{`["subscribe",{"topics":[2]}]`, Command{Type: CmdSubscribe}, CodeBadJSON},
		{`["publish"]`, Command{Type: CmdPublish}, CodeBadJSON},
		{`["publish","a","b"]`, Command{Type: CmdPublish}, CodeBadJSON},
		{`["publish",{"data":1}]`, Command{Type: CmdPublish}, CodeBadRequest},
		{`["publish",{"topic":"a"}]`, Command{Type: CmdPublish, Topic: "a"}, CodeBadRequest},
		{`["publish",{"topic":1,"data":1}]`, Command{Type: CmdPublish}, CodeBadJSON},
		{`["ping"]`, Command{}, CodeUnknownCommand},
		{`[5,"x"]`, Command{}, CodeUnknownCommand},
		{`["disconnect"]`, Command{}, CodeBadJSON},
		{`[]`, Command{}, CodeBadJSON},
		{`{}`, Command{}, CodeBadJSON},
	}
	for _, tt := range tests {
		got, err := ParseSIOEvent([]byte(tt.in))
		if code := protoCode(err); code != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSIOEvent(%q) = %+v, %v; want %+v, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
	long := `["` + strings.Repeat("x", 100) + `"]`
	if _, err := ParseSIOEvent([]byte(long)); err == nil || len(err.Error()) > 100 {
		t.Errorf("a long unknown name is echoed whole: %v", err)
	}
}

func TestParseSIOEventDoesNotAlias(t *testing.T) {
	in := []byte(`["publish",{"topic":"a","data":{"k":"v"}}]`)
	cmd, err := ParseSIOEvent(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'x'
	}
	if cmd.Topic != "a" || string(cmd.Data) != `{"k":"v"}` {
		t.Fatalf("the command changed with its input: %+v", cmd)
	}
}

func TestParseSIOBinaryHead(t *testing.T) {
	tests := []struct {
		in   string
		want SIOPacket
		n    int
	}{
		{`451-["baz",{"_placeholder":true,"num":0}]`, SIOPacket{SIOBinaryEvent, "/", -1, []byte(`["baz",{"_placeholder":true,"num":0}]`)}, 1},
		{`452-12["a",{},{}]`, SIOPacket{SIOBinaryEvent, "/", 12, []byte(`["a",{},{}]`)}, 2},
		{`451-/admin,7["a"]`, SIOPacket{SIOBinaryEvent, "/admin", 7, []byte(`["a"]`)}, 1},
		{`461-/admin,13[{"_placeholder":true,"num":0}]`, SIOPacket{SIOBinaryAck, "/admin", 13, []byte(`[{"_placeholder":true,"num":0}]`)}, 1},
		{`450-`, SIOPacket{SIOBinaryEvent, "/", -1, nil}, 0},
		{`45123456-0x`, SIOPacket{SIOBinaryEvent, "/", 0, []byte("x")}, 123456},
	}
	for _, tt := range tests {
		got, n, err := ParseSIOBinaryHead([]byte(tt.in))
		if err != nil || n != tt.n || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSIOBinaryHead(%q) = %+v, %d, %v; want %+v, %d", tt.in, got, n, err, tt.want, tt.n)
		}
		if _, err := ParseSIOPacket([]byte(tt.in)); err != ErrSIOBinary {
			t.Errorf("ParseSIOPacket(%q) = %v, want ErrSIOBinary", tt.in, err)
		}
	}
	for _, in := range []string{"", "45", "451", "45-", "45x-", "42[\"a\"]", "451234567-[]", "461-[]", "451-/a\x00,[]", "451-99999999999999999999[]", "351-[]"} {
		if _, _, err := ParseSIOBinaryHead([]byte(in)); err != ErrSIOPacket {
			t.Errorf("ParseSIOBinaryHead(%q) = %v, want ErrSIOPacket", in, err)
		}
	}
}

func TestAppendSIOPush(t *testing.T) {
	tests := []struct {
		topic  string
		data   string
		offset uint64
		epoch  string
		want   string
	}{
		{"a.b", `{"p":1}`, 0, "", `42["message",{"topic":"a.b","data":{"p":1}}]`},
		{"a", `hello`, 0, "", `42["message",{"topic":"a","data":"hello"}]`},
		{"a", "\xff\x00", 0, "", `42["message",{"topic":"a","data":"/wA=","encoding":"base64"}]`},
		{"a", `1`, 12, "E-1", `42["message",{"topic":"a","offset":12,"epoch":"E-1","data":1},"a:E-1:12"]`},
		{"a", ``, 0, "", `42["message",{"topic":"a","data":""}]`},
	}
	for _, tt := range tests {
		got := AppendSIOPush(nil, tt.topic, []byte(tt.data), tt.offset, tt.epoch)
		if string(got) != tt.want {
			t.Errorf("AppendSIOPush(%q, %q) = %s, want %s", tt.topic, tt.data, got, tt.want)
		}
		sioCheckPush(t, got, tt.topic, []byte(tt.data), tt.offset, tt.epoch)
	}
}

// sioCheckPush checks that out is a message event ParseSIOPacket accepts,
// whose one argument carries topic, data, offset and epoch as
// AppendSIOPush documents.
func sioCheckPush(t testing.TB, out []byte, topic string, data []byte, offset uint64, epoch string) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Fatalf("%q: not valid UTF-8", out)
	}
	pkt, err := ParseSIOPacket(out)
	if err != nil || pkt.Type != SIOEvent || pkt.AckID != -1 || pkt.Namespace != "/" {
		t.Fatalf("%q: ParseSIOPacket = %+v, %v", out, pkt, err)
	}
	var ev []json.RawMessage
	if err := json.Unmarshal(pkt.Data, &ev); err != nil || len(ev) < 2 || len(ev) > 3 || string(ev[0]) != `"message"` {
		t.Fatalf("%q: not [\"message\", obj] or [\"message\", obj, id]: %v", out, err)
	}
	// The recovery offset: the event id of a valid durable position.
	wantID := offset >= 1 && offset <= MaxOffset && ValidEpoch(epoch) && ValidTopic(topic) == nil
	if wantID != (len(ev) == 3) {
		t.Fatalf("%q: %d arguments for topic %q, epoch %q, offset %d", out, len(ev), topic, epoch, offset)
	}
	if wantID {
		var id string
		if err := json.Unmarshal(ev[2], &id); err != nil {
			t.Fatalf("%q: id %v", out, err)
		}
		if tp, ep, off, ok := ParseEventID(id); !ok || tp != topic || ep != epoch || off != offset {
			t.Fatalf("%q: id %q reads back as %q %q %d %v", out, id, tp, ep, off, ok)
		}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(ev[1], &m); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if utf8.ValidString(topic) {
		var got string
		if json.Unmarshal(m["topic"], &got); got != topic {
			t.Fatalf("topic %q, want %q", got, topic)
		}
	}
	_, hasOffset := m["offset"]
	_, hasEpoch := m["epoch"]
	if hasOffset != (epoch != "") || hasEpoch != (epoch != "") {
		t.Fatalf("%q: offset/epoch present %v/%v for epoch %q", out, hasOffset, hasEpoch, epoch)
	}
	if epoch != "" {
		var gotOff uint64
		if err := json.Unmarshal(m["offset"], &gotOff); err != nil || gotOff != offset {
			t.Fatalf("offset %s, want %d", m["offset"], offset)
		}
	}
	raw := m["data"]
	switch {
	case !utf8.Valid(data):
		var s, enc string
		json.Unmarshal(raw, &s)
		json.Unmarshal(m["encoding"], &enc)
		got, err := base64.StdEncoding.DecodeString(s)
		if enc != "base64" || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("base64 data %q (%v, %q), want %q", got, err, enc, data)
		}
	case json.Valid(data):
		if !bytes.Equal(raw, bytes.TrimSpace(data)) {
			t.Fatalf("data %q, want %q unchanged", raw, data)
		}
	default:
		var s string
		if json.Unmarshal(raw, &s); s != string(data) {
			t.Fatalf("data %q, want %q as a string", s, data)
		}
	}
}

func TestAppendSIOPublishAck(t *testing.T) {
	if got := AppendSIOPublishAck(nil, "/", 7, 1842, "Kq3x"); string(got) != `437[{"ok":true,"offset":1842,"epoch":"Kq3x"}]` {
		t.Fatalf("got %s", got)
	} else if pkt, err := ParseSIOPacket(got); err != nil || pkt.Type != SIOAck || pkt.AckID != 7 {
		t.Fatalf("%s parses as %+v, %v", got, pkt, err)
	}
	if got := AppendSIOPublishAck([]byte("x"), "/", -1, 1, "E"); string(got) != "x" {
		t.Fatalf("without an ack id: %s", got)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { AppendSIOPublishAck(buf, "/", 12, 99, "E") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func TestAppendSIOResult(t *testing.T) {
	perr := &ProtoError{Code: CodeForbidden, Message: `no "x"`}
	tests := []struct {
		nsp  string
		id   int64
		perr *ProtoError
		want string
	}{
		{"/", 3, nil, `433[{"ok":true}]`},
		{"/", 0, perr, `430[{"error":{"code":"forbidden","message":"no \"x\""}}]`},
		{"/admin", 12, nil, `43/admin,12[{"ok":true}]`},
		{"/", -1, perr, `42["error",{"error":{"code":"forbidden","message":"no \"x\""}}]`},
		{"/", -1, nil, ``},
	}
	for _, tt := range tests {
		got := AppendSIOResult(nil, tt.nsp, tt.id, tt.perr)
		if string(got) != tt.want {
			t.Errorf("AppendSIOResult(%q, %d, %v) = %s, want %s", tt.nsp, tt.id, tt.perr, got, tt.want)
		}
		if len(got) > 0 {
			if _, err := ParseSIOPacket(got); err != nil {
				t.Errorf("%s does not parse: %v", got, err)
			}
		}
	}
}

func TestAppendSIOConnectRefusal(t *testing.T) {
	got := AppendSIOConnectRefusal(nil, "/", CodeUnauthorized, "invalid token: expired")
	if want := `44{"message":"invalid token: expired","data":{"code":"unauthorized"}}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	got = AppendSIOConnectRefusal(nil, "/admin", CodeInvalidNamespace, "Invalid namespace")
	if want := `44/admin,{"message":"Invalid namespace","data":{"code":"invalid_namespace"}}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := ParseSIOPacket(got); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseSIOAuth(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"token":"abc"}`, `{"token":1}`, `{"pid":"p","offset":"o","x":null}`, `[1]`, `{"token":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseSIOAuth(data)
		if err != nil {
			if protoCode(err) != CodeBadJSON || a != (SIOAuth{}) {
				t.Fatalf("%q: %v with %+v", data, err, a)
			}
			return
		}
		if len(data) == 0 {
			return
		}
		// Accepted: an object, whose string fields encoding/json reads alike.
		var ref struct {
			Token, PID, Offset *string
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(data, &fields) != nil || fields == nil {
			t.Fatalf("%q accepted but is not a JSON object", data)
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			// encoding/json matches field names case-insensitively; ours
			// match exactly, so a differently-cased key of another type is
			// fine for us.
			return
		}
		for _, f := range []struct {
			key string
			got string
		}{{"token", a.Token}, {"pid", a.PID}, {"offset", a.Offset}} {
			var want string
			if raw, ok := present(fields, f.key); ok {
				if json.Unmarshal(raw, &want) != nil {
					t.Fatalf("%q: %s is not a string but was accepted", data, f.key)
				}
			}
			if f.got != want {
				t.Fatalf("%q: %s = %q, want %q", data, f.key, f.got, want)
			}
		}
	})
}

func FuzzParseSIOEvent(f *testing.F) {
	for _, s := range []string{
		`["subscribe",["a","b.c"]]`, `["subscribe","a"]`, `["subscribe",{"topics":["a"]}]`, `["unsubscribe",[]]`,
		`["publish",{"topic":"a","data":{"x":1}}]`, `["publish",{"topic":"a"}]`, `["x"]`, `[1]`, `["subscribe",[1]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := ParseSIOEvent(data)
		if err != nil {
			if _, ok := err.(*ProtoError); !ok {
				t.Fatalf("%q: %T %v", data, err, err)
			}
			return
		}
		// Accepted: the event decodes the same way with encoding/json.
		var ev []json.RawMessage
		if json.Unmarshal(data, &ev) != nil || len(ev) < 2 {
			t.Fatalf("%q accepted as %+v but is not an array of at least 2", data, cmd)
		}
		var name string
		if json.Unmarshal(ev[0], &name) != nil || name != cmd.Type {
			t.Fatalf("%q: type %q, name %q", data, cmd.Type, name)
		}
		switch cmd.Type {
		case CmdSubscribe, CmdUnsubscribe:
			if len(cmd.Topics) == 0 {
				t.Fatalf("%q: no topics accepted", data)
			}
		case CmdPublish:
			var p struct {
				Topic string          `json:"topic"`
				Data  json.RawMessage `json:"data"`
			}
			if json.Unmarshal(ev[1], &p) != nil || !json.Valid(cmd.Data) {
				t.Fatalf("%q: publish %+v", data, cmd)
			}
		default:
			t.Fatalf("%q: type %q", data, cmd.Type)
		}
	})
}

func FuzzParseSIOBinaryHead(f *testing.F) {
	for _, s := range []string{`451-["baz",{"_placeholder":true,"num":0}]`, `452-12["a"]`, `461-/admin,13[]`, `450-`, `45-`, `451-/a`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		pkt, n, err := ParseSIOBinaryHead(p)
		if err != nil {
			return
		}
		if _, perr := ParseSIOPacket(p); perr != ErrSIOBinary {
			t.Fatalf("%q: a binary head, but ParseSIOPacket says %v", p, perr)
		}
		if n < 0 || n > 999999 || pkt.Namespace == "" || pkt.Namespace[0] != '/' {
			t.Fatalf("%q: %+v, %d", p, pkt, n)
		}
		// The ack id and namespace can be answered: the ACK parses back.
		if pkt.AckID >= 0 {
			out := AppendSIOResult(nil, pkt.Namespace, pkt.AckID, &ProtoError{Code: CodeBadRequest, Message: "binary"})
			back, err := ParseSIOPacket(out)
			if err != nil || back.AckID != pkt.AckID || back.Namespace != pkt.Namespace {
				t.Fatalf("%q: answer %q parses as %+v, %v", p, out, back, err)
			}
		}
	})
}

func FuzzAppendSIOPush(f *testing.F) {
	f.Add("ticker.BTC", []byte(`{"p":1}`), uint64(0), "")
	f.Add("a", []byte("text \u2028"), uint64(5), "E")
	f.Add("a\"", []byte{0xff, 0}, uint64(1<<53-1), "e\xff")
	f.Add("orders.eu", []byte(`{"n":1}`), uint64(1842), "Kq3x")
	f.Add("orders.eu", []byte(`1`), uint64(1<<53), "Kq3x")
	f.Fuzz(func(t *testing.T, topic string, data []byte, offset uint64, epoch string) {
		sioCheckPush(t, AppendSIOPush(nil, topic, data, offset, epoch), topic, data, offset, epoch)
	})
}

func BenchmarkAppendSIOPush(b *testing.B) {
	data := []byte(`{"symbol":"BTC-USD","price":64231.57,"size":0.0153,"side":"buy","ts":1732230000123,"id":"t-9"}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = AppendSIOPush(buf[:0], "ticker.BTC", data, 0, "")
	}
}
