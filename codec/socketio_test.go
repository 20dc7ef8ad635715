package codec

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSIOPacketValid(t *testing.T) {
	tests := []struct {
		in   string
		want SIOPacket
	}{
		// The examples of socket.io-protocol's Readme, with the "4" prefix.
		{"40", SIOPacket{SIOConnect, "/", -1, nil}},
		{`40{"token":"123"}`, SIOPacket{SIOConnect, "/", -1, []byte(`{"token":"123"}`)}},
		{`40/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}`, SIOPacket{SIOConnect, "/admin", -1, []byte(`{"sid":"oSO0OpakMV_3jnilAAAA"}`)}},
		{"40/admin", SIOPacket{SIOConnect, "/admin", -1, nil}},
		{"40/admin,", SIOPacket{SIOConnect, "/admin", -1, nil}},
		{"40/,", SIOPacket{SIOConnect, "/", -1, nil}},
		{"41", SIOPacket{SIODisconnect, "/", -1, nil}},
		{"41/admin,", SIOPacket{SIODisconnect, "/admin", -1, nil}},
		{`42["foo"]`, SIOPacket{SIOEvent, "/", -1, []byte(`["foo"]`)}},
		{`42/admin,["bar"]`, SIOPacket{SIOEvent, "/admin", -1, []byte(`["bar"]`)}},
		{`4212["foo"]`, SIOPacket{SIOEvent, "/", 12, []byte(`["foo"]`)}},
		{`42/admin,13["bar",{"a":[1,2]},"x"]`, SIOPacket{SIOEvent, "/admin", 13, []byte(`["bar",{"a":[1,2]},"x"]`)}},
		{`42[5,"number name"]`, SIOPacket{SIOEvent, "/", -1, []byte(`[5,"number name"]`)}},
		{`42["connected"]`, SIOPacket{SIOEvent, "/", -1, []byte(`["connected"]`)}},
		{`42[ "x" ] `, SIOPacket{SIOEvent, "/", -1, []byte(`[ "x" ] `)}},
		{`4312["bar"]`, SIOPacket{SIOAck, "/", 12, []byte(`["bar"]`)}},
		{`43/admin,13[]`, SIOPacket{SIOAck, "/admin", 13, []byte(`[]`)}},
		{`430[]`, SIOPacket{SIOAck, "/", 0, []byte(`[]`)}},
		{`4300012[]`, SIOPacket{SIOAck, "/", 12, []byte(`[]`)}},
		{`439223372036854775807[]`, SIOPacket{SIOAck, "/", 1<<63 - 1, []byte(`[]`)}},
		{`44{"message":"Not authorized"}`, SIOPacket{SIOConnectError, "/", -1, []byte(`{"message":"Not authorized"}`)}},
		{`44"Not authorized"`, SIOPacket{SIOConnectError, "/", -1, []byte(`"Not authorized"`)}},
		{"42/caf\u00e9/\u2603,[\"x\"]", SIOPacket{SIOEvent, "/caf\u00e9/\u2603", -1, []byte(`["x"]`)}},
	}
	for _, tt := range tests {
		got, err := ParseSIOPacket([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSIOPacket(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if ref, ok := sioRefDecode([]byte(tt.in)); !ok || !sioSameAsRef(got, ref) {
			t.Errorf("%q: reference decoder gives %+v, %v", tt.in, ref, ok)
		}
	}
}

func TestParseSIOPacketInvalid(t *testing.T) {
	tests := []struct {
		in  string
		err error
	}{
		{"", ErrSIOPacket},
		{"4", ErrSIOPacket},
		{"3probe", ErrSIOPacket},
		{`2["x"]`, ErrSIOPacket},
		{"47", ErrSIOPacket},
		{"4a", ErrSIOPacket},
		{`45-["x"]`, ErrSIOBinary},
		{`451-["x",{"_placeholder":true,"num":0}]`, ErrSIOBinary},
		{`461-12[{"_placeholder":true,"num":0}]`, ErrSIOBinary},
		{`401{}`, ErrSIOPacket},                     // ack id on CONNECT
		{`411`, ErrSIOPacket},                       // ack id on DISCONNECT
		{`441{"message":"x"}`, ErrSIOPacket},        // ack id on CONNECT_ERROR
		{`43["x"]`, ErrSIOPacket},                   // ACK without ack id
		{`43/a,["x"]`, ErrSIOPacket},                // ACK without ack id
		{`439223372036854775808[]`, ErrSIOPacket},   // overflows int64
		{"42/a\x00,[\"x\"]", ErrSIOPacket},          // control character in namespace
		{"42/a\xff,[\"x\"]", ErrSIOPacket},          // invalid UTF-8 in namespace
		{`40[]`, ErrSIOPayload},                     // CONNECT data must be an object
		{`40"x"`, ErrSIOPayload},                    // CONNECT data must be an object
		{`40{`, ErrSIOPayload},                      // not JSON
		{`41{}`, ErrSIOPayload},                     // DISCONNECT carries nothing
		{`41/a,{}`, ErrSIOPayload},                  // DISCONNECT carries nothing
		{`42`, ErrSIOPayload},                       // EVENT without data
		{`42/a,`, ErrSIOPayload},                    // EVENT without data
		{`4212`, ErrSIOPayload},                     // EVENT without data
		{`42[]`, ErrSIOPayload},                     // EVENT without name
		{`42{"a":1}`, ErrSIOPayload},                // EVENT data must be an array
		{`42[null]`, ErrSIOPayload},                 // name neither string nor number
		{`42[["x"]]`, ErrSIOPayload},                // name neither string nor number
		{`42[true]`, ErrSIOPayload},                 // name neither string nor number
		{`42["disconnect"]`, ErrSIOPayload},         // reserved
		{`42["connect",1]`, ErrSIOPayload},          // reserved
		{`42["newListener"]`, ErrSIOPayload},        // reserved
		{`42["\u0063onnect_error"]`, ErrSIOPayload}, // reserved, escaped
		{`42 ["x"]`, ErrSIOPayload},                 // leading whitespace
		{`42["x"`, ErrSIOPayload},                   // not JSON
		{`42["x"]]`, ErrSIOPayload},                 // not JSON
		{"42[\"\xff\"]", ErrSIOPayload},             // invalid UTF-8
		{`43/a,1{}`, ErrSIOPayload},                 // ACK data must be an array
		{`431`, ErrSIOPayload},                      // ACK without data
		{`44[]`, ErrSIOPayload},                     // CONNECT_ERROR: string or object
		{`44`, ErrSIOPayload},                       // CONNECT_ERROR without data
	}
	for _, tt := range tests {
		got, err := ParseSIOPacket([]byte(tt.in))
		if err != tt.err || !reflect.DeepEqual(got, SIOPacket{}) {
			t.Errorf("ParseSIOPacket(%q) = %+v, %v; want %v", tt.in, got, err, tt.err)
		}
	}
}

func TestSIOTypeString(t *testing.T) {
	want := []string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK", "UNKNOWN"}
	for i, w := range want {
		if got := SIOType(i).String(); got != w {
			t.Errorf("SIOType(%d) = %q, want %q", i, got, w)
		}
	}
}

// sioRef is a packet as the reference decoder reads it.
type sioRef struct {
	typ  SIOType
	nsp  string
	id   string // the ack id's digits, "" if none
	data any    // decoded JSON (numbers as json.Number), nil if absent
}

// sioRefDecode decodes an Engine.IO message packet the way socket.io-parser's
// Decoder.decodeString and isPayloadValid do, written from their source as
// plainly as possible, with encoding/json standing in for JSON.parse. It
// leaves out two accidents of JavaScript's Number() coercion: "" and " "
// compare equal to 0, so the reference reads an empty packet as CONNECT and
// a space as an ack-id digit. Binary types are refused here.
func sioRefDecode(p []byte) (sioRef, bool) {
	if len(p) < 2 || p[0] != '4' {
		return sioRef{}, false
	}
	str := string(p[1:])
	if str[0] < '0' || str[0] > '4' {
		return sioRef{}, false
	}
	r := sioRef{typ: SIOType(str[0] - '0'), nsp: "/"}
	i := 0
	if i+1 < len(str) && str[i+1] == '/' {
		start := i + 1
		for i++; i < len(str) && str[i] != ','; i++ {
		}
		r.nsp = str[start:min(i, len(str))]
	}
	if i+1 < len(str) && '0' <= str[i+1] && str[i+1] <= '9' {
		start := i + 1
		for i++; i < len(str) && '0' <= str[i] && str[i] <= '9'; i++ {
		}
		r.id = str[start:i]
		i--
	}
	if i++; i < len(str) {
		d := json.NewDecoder(strings.NewReader(str[i:]))
		d.UseNumber()
		if !json.Valid([]byte(str[i:])) || d.Decode(&r.data) != nil {
			return sioRef{}, false
		}
		if !sioRefPayloadValid(r.typ, r.data) {
			return sioRef{}, false
		}
	}
	return r, true
}

// sioRefPayloadValid is socket.io-parser's isPayloadValid.
func sioRefPayloadValid(typ SIOType, payload any) bool {
	switch typ {
	case SIOConnect:
		_, ok := payload.(map[string]any)
		return ok
	case SIODisconnect:
		return false // JSON.parse never gives undefined
	case SIOConnectError:
		switch payload.(type) {
		case string, map[string]any:
			return true
		}
		return false
	case SIOEvent:
		a, ok := payload.([]any)
		if !ok || len(a) == 0 {
			return false
		}
		switch name := a[0].(type) {
		case json.Number:
			return true
		case string:
			for _, r := range []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"} {
				if name == r {
					return false
				}
			}
			return true
		}
		return false
	case SIOAck:
		_, ok := payload.([]any)
		return ok
	}
	return false
}

// sioSameAsRef reports whether a packet ParseSIOPacket returned is the one
// the reference decoder read.
func sioSameAsRef(got SIOPacket, ref sioRef) bool {
	id := int64(-1)
	if ref.id != "" {
		n, err := strconv.ParseInt(ref.id, 10, 64)
		if err != nil {
			return false
		}
		id = n
	}
	if got.Type != ref.typ || got.Namespace != ref.nsp || got.AckID != id {
		return false
	}
	if got.Data == nil {
		return ref.data == nil
	}
	return reflect.DeepEqual(sioDecodeJSON(got.Data), ref.data)
}

func sioDecodeJSON(b []byte) any {
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return "undecodable"
	}
	return v
}

// sioCheckAgainstRef checks one input against the reference decoder: what
// ParseSIOPacket accepts, the reference reads the same way; what only the
// reference accepts is one of the documented strict cases.
func sioCheckAgainstRef(t *testing.T, p []byte) {
	t.Helper()
	got, err := ParseSIOPacket(p)
	ref, refOK := sioRefDecode(p)
	switch {
	case err == nil:
		if !refOK || !sioSameAsRef(got, ref) {
			t.Fatalf("ParseSIOPacket(%q) = %+v; reference %+v, %v", p, got, ref, refOK)
		}
	case err == ErrSIOBinary:
		if len(p) < 2 || p[0] != '4' || (p[1] != '5' && p[1] != '6') {
			t.Fatalf("ParseSIOPacket(%q): ErrSIOBinary for a non-binary type", p)
		}
	case refOK:
		if !sioDocumentedStrictness(p, ref) {
			t.Fatalf("ParseSIOPacket(%q): %v; the reference accepts %+v", p, err, ref)
		}
	}
}

// sioDocumentedStrictness reports whether the reference's reading of p is
// one ParseSIOPacket documents refusing.
func sioDocumentedStrictness(p []byte, ref sioRef) bool {
	_, afterID := sioRefSplit(p)
	switch {
	case ref.typ == SIOAck && ref.id == "":
		return true // ACK without ack id
	case ref.typ != SIOAck && ref.typ != SIOEvent && ref.id != "":
		return true // ack id where the type has none
	case (ref.typ == SIOEvent || ref.typ == SIOAck || ref.typ == SIOConnectError) && ref.data == nil:
		return true // EVENT, ACK or CONNECT_ERROR without data
	case !validNamespace([]byte(ref.nsp)):
		return true // namespace with control characters or invalid UTF-8
	case len(afterID) > 0 && isJSONSpace(afterID[0]):
		return true // whitespace before the data
	case !utf8.Valid(afterID):
		return true // invalid UTF-8 in the data (encoding/json replaces it)
	}
	if ref.id != "" {
		if _, err := strconv.ParseInt(ref.id, 10, 64); err != nil {
			return true // ack id beyond int64
		}
	}
	return false
}

// sioRefSplit returns the head (up to the ack id) and the data of p as the
// reference decoder splits them.
func sioRefSplit(p []byte) (head, data []byte) {
	i := 2
	if i < len(p) && p[i] == '/' {
		if j := bytes.IndexByte(p[i:], ','); j >= 0 {
			i += j + 1
		} else {
			i = len(p)
		}
	}
	i = skipDigits(p, i)
	return p[:i], p[i:]
}

func TestSIOEventName(t *testing.T) {
	tests := []struct {
		data string
		name string
		args []string
	}{
		{`["foo"]`, "foo", nil},
		{`["foo",1,"two",{"three":[3]},[4,[5]],null,true,false,-1.5e3]`, "foo",
			[]string{`1`, `"two"`, `{"three":[3]}`, `[4,[5]]`, `null`, `true`, `false`, `-1.5e3`}},
		{" [ \"a b\" , { \"x\" : \"]\" } , \"\\\"]\" ] ", "a b", []string{`{ "x" : "]" }`, `"\"]"`}},
		{`["caf\u00e9 \ud83d\ude00 \n\"\\\/"]`, "caf\u00e9 \U0001F600 \n\"\\/", nil},
		{`["\ud800x"]`, "\ufffdx", nil},                     // lone high surrogate
		{`["\udc00\ud800\udc00"]`, "\ufffd\U00010000", nil}, // lone low, then a pair
		{`["\ud800\u0041"]`, "\ufffdA", nil},                // high surrogate and no low one
		{`[12,"x"]`, "12", []string{`"x"`}},
		{`[-0.5]`, "-0.5", nil},
		{`["connected"]`, "connected", nil},
	}
	for _, tt := range tests {
		name, args, err := SIOEventName([]byte(tt.data))
		if err != nil || string(name) != tt.name {
			t.Errorf("SIOEventName(%s) = %q, %v; want %q", tt.data, name, err, tt.name)
			continue
		}
		var got []string
		for a, ok := args.Next(); ok; a, ok = args.Next() {
			got = append(got, string(a))
		}
		if !reflect.DeepEqual(got, tt.args) {
			t.Errorf("SIOEventName(%s) args %q, want %q", tt.data, got, tt.args)
		}
		if _, ok := args.Next(); ok {
			t.Errorf("Next after the end returned an element")
		}
		sioCheckEventName(t, []byte(tt.data))
	}
	for _, bad := range []string{``, `[]`, `{}`, `"x"`, `[null]`, `[{}]`, `["disconnect"]`, `["\u0064isconnecting",1]`,
		`["removeListener"]`, `["x"`, `["x",]`, "[\"\xff\"]", `["x"] 1`} {
		if name, _, err := SIOEventName([]byte(bad)); err != ErrSIOPayload {
			t.Errorf("SIOEventName(%q) = %q, %v; want ErrSIOPayload", bad, name, err)
		}
	}
	// A name without escapes is a slice of data, not a copy.
	data := []byte(`["subscribe","a.b"]`)
	if n := testing.AllocsPerRun(100, func() {
		name, args, err := SIOEventName(data)
		if err != nil || string(name) != "subscribe" {
			t.Fatal(name, err)
		}
		for _, ok := args.Next(); ok; _, ok = args.Next() {
		}
	}); n != 0 {
		t.Errorf("SIOEventName: %v allocs, want 0", n)
	}
}

// sioCheckEventName checks SIOEventName on data against encoding/json: the
// name is the first element decoded (or a number's text), and the arguments
// are the remaining elements as json.RawMessage sees them.
func sioCheckEventName(t *testing.T, data []byte) {
	t.Helper()
	name, args, err := SIOEventName(data)
	var raw []json.RawMessage
	refOK := utf8.Valid(data) && json.Unmarshal(data, &raw) == nil && len(raw) > 0
	var refName string
	if refOK {
		switch raw[0][0] {
		case '"':
			refOK = json.Unmarshal(raw[0], &refName) == nil
			for _, r := range sioReserved {
				refOK = refOK && refName != r
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			refName = string(raw[0])
		default:
			refOK = false
		}
	}
	if (err == nil) != refOK {
		t.Fatalf("SIOEventName(%q): err %v; encoding/json ok=%v", data, err, refOK)
	}
	if err != nil {
		return
	}
	if string(name) != refName {
		t.Fatalf("SIOEventName(%q) name %q, encoding/json %q", data, name, refName)
	}
	i := 1
	for a, ok := args.Next(); ok; a, ok = args.Next() {
		if i >= len(raw) || !bytes.Equal(a, raw[i]) {
			t.Fatalf("SIOEventName(%q) arg %d = %q, encoding/json %q", data, i, a, raw[i:])
		}
		i++
	}
	if i != len(raw) {
		t.Fatalf("SIOEventName(%q): %d args, encoding/json %d", data, i-1, len(raw)-1)
	}
}

func TestParseSIOArgs(t *testing.T) {
	args, err := ParseSIOArgs([]byte(` [1, "a" ,[]] `))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for a, ok := args.Next(); ok; a, ok = args.Next() {
		got = append(got, string(a))
	}
	if want := []string{"1", `"a"`, "[]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	if args, err := ParseSIOArgs([]byte(`[]`)); err != nil {
		t.Error(err)
	} else if _, ok := args.Next(); ok {
		t.Error("element in []")
	}
	for _, bad := range []string{``, `{}`, `1`, `[1,]`, `[`, ` `} {
		if _, err := ParseSIOArgs([]byte(bad)); err != ErrSIOPayload {
			t.Errorf("ParseSIOArgs(%q) = %v", bad, err)
		}
	}
	var zero SIOArgs
	if _, ok := zero.Next(); ok {
		t.Error("zero SIOArgs has an element")
	}
}

func TestAppendSIO(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{string(AppendSIOConnect(nil, "/", "oSO0OpakMV_3jnilAAAA", "")), `40{"sid":"oSO0OpakMV_3jnilAAAA"}`},
		{string(AppendSIOConnect(nil, "", "a", "p1")), `40{"sid":"a","pid":"p1"}`},
		{string(AppendSIOConnect(nil, "/admin", "a", "")), `40/admin,{"sid":"a"}`},
		{string(AppendSIOConnect(nil, "admin", "a", "")), `40/admin,{"sid":"a"}`},
		{string(AppendSIOConnect(nil, "/a,b\x1e\n", "a\"", "")), `40/ab,{"sid":"a\""}`},
		{string(AppendSIOConnectError(nil, "/", "Not authorized")), `44{"message":"Not authorized"}`},
		{string(AppendSIOConnectError(nil, "/admin", "Invalid namespace")), `44/admin,{"message":"Invalid namespace"}`},
		{string(AppendSIOEvent(nil, "/", -1, "foo")), `42["foo"]`},
		{string(AppendSIOEvent(nil, "/admin", -1, "bar")), `42/admin,["bar"]`},
		{string(AppendSIOEvent(nil, "/", 12, "foo")), `4212["foo"]`},
		{string(AppendSIOEvent(nil, "/", -1, "message", []byte(`{"topic":"a.b","seq":1}`), []byte("7:1"))), `42["message",{"topic":"a.b","seq":1},"7:1"]`},
		{string(AppendSIOEvent(nil, "/", -1, "m", []byte("not json\xff"), []byte(""), []byte(" 1 "))), `42["m","not json\ufffd","", 1 ]`},
		{string(AppendSIOEventHead(nil, "/admin", 3, "x\"")), `42/admin,3["x\""`},
		{string(AppendSIOAck(nil, "/", 12, []byte(`"bar"`))), `4312["bar"]`},
		{string(AppendSIOAck(nil, "/admin", 13)), `43/admin,13[]`},
		{string(AppendSIOAck(nil, "/", 1, []byte("1"), []byte("[2]"))), `431[1,[2]]`},
		{string(AppendSIODisconnect(nil, "/")), `41`},
		{string(AppendSIODisconnect(nil, "/admin")), `41/admin,`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
		sioCheckAgainstRef(t, []byte(tt.want))
	}
}

// TestSIORoundTrip encodes packets and parses them back.
func TestSIORoundTrip(t *testing.T) {
	names := []string{"message", "caf\u00e9", "a\"b\\c\n", "\u2028", "connected", ""}
	nsps := []string{"/", "/admin", "/caf\u00e9"}
	argSets := [][][]byte{nil, {[]byte(`1`)}, {[]byte(`{"a":[1,"]"]}`), []byte(`"x"`), []byte(`null`)}}
	for _, nsp := range nsps {
		for _, id := range []int64{-1, 0, 42, 1<<63 - 1} {
			for _, name := range names {
				for _, args := range argSets {
					p := AppendSIOEvent(nil, nsp, id, name, args...)
					pkt, err := ParseSIOPacket(p)
					if err != nil || pkt.Type != SIOEvent || pkt.Namespace != nsp || pkt.AckID != id {
						t.Fatalf("%s: %+v, %v", p, pkt, err)
					}
					gotName, it, err := SIOEventName(pkt.Data)
					if err != nil || string(gotName) != name {
						t.Fatalf("%s: name %q, %v", p, gotName, err)
					}
					for _, want := range args {
						if a, ok := it.Next(); !ok || !bytes.Equal(a, want) {
							t.Fatalf("%s: arg %q, want %q", p, a, want)
						}
					}
					if _, ok := it.Next(); ok {
						t.Fatalf("%s: extra arg", p)
					}
					sioCheckAgainstRef(t, p)
					if id < 0 {
						continue
					}
					p = AppendSIOAck(nil, nsp, id, args...)
					pkt, err = ParseSIOPacket(p)
					if err != nil || pkt.Type != SIOAck || pkt.Namespace != nsp || pkt.AckID != id {
						t.Fatalf("%s: %+v, %v", p, pkt, err)
					}
					sioCheckAgainstRef(t, p)
				}
			}
		}
		for _, p := range [][]byte{AppendSIOConnect(nil, nsp, "sid", "pid"), AppendSIOConnectError(nil, nsp, "no"), AppendSIODisconnect(nil, nsp)} {
			pkt, err := ParseSIOPacket(p)
			if err != nil || pkt.Namespace != nsp {
				t.Fatalf("%s: %+v, %v", p, pkt, err)
			}
			sioCheckAgainstRef(t, p)
		}
	}
}

func TestSIOAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	p := []byte(`4212["subscribe",{"topics":["a.b","c"]},"\u00e9"]`)
	data := []byte(`{"topic":"a.b","seq":1234,"data":{"x":1}}`)
	if n := testing.AllocsPerRun(100, func() {
		pkt, err := ParseSIOPacket(p)
		if err != nil {
			t.Fatal(err)
		}
		buf = AppendSIOEvent(buf[:0], "/", -1, "message", data)
		buf = AppendSIOAck(buf, "/", pkt.AckID, data)
		buf = AppendSIOConnect(buf, "/", "sid", "pid")
		buf = AppendSIOConnectError(buf, "/", "x")
		buf = AppendSIODisconnect(buf, "/")
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
	// An escaped event name is decoded on the stack for the reserved-name
	// check.
	p = []byte(`42["\u0073ubscribe"]`)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := ParseSIOPacket(p); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("escaped name: %v allocs, want 0", n)
	}
}

func FuzzParseSIOPacket(f *testing.F) {
	for _, s := range []string{
		"40", `40{"token":"123"}`, `40/admin,{"sid":"x"}`, "41/admin,", `42["foo"]`, `4212["foo",{"a":[1]}]`,
		`43/admin,13["bar"]`, `44{"message":"Not authorized"}`, `451-["baz",{"_placeholder":true,"num":0}]`,
		`42["\u0063onnect"]`, `42[5]`, `43["x"]`, `42 ["x"]`, "42/a\x00,[\"x\"]", `439223372036854775808[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		sioCheckAgainstRef(t, p)
		pkt, err := ParseSIOPacket(p)
		if err != nil {
			return
		}
		// Encode the packet again with the encoders and read it back.
		var re []byte
		switch pkt.Type {
		case SIOEvent:
			name, args, err := SIOEventName(pkt.Data)
			if err != nil {
				t.Fatalf("%q: accepted, but SIOEventName says %v", p, err)
			}
			var as [][]byte
			for a, ok := args.Next(); ok; a, ok = args.Next() {
				as = append(as, a)
			}
			re = AppendSIOEvent(nil, pkt.Namespace, pkt.AckID, string(name), as...)
		case SIOAck:
			args, err := ParseSIOArgs(pkt.Data)
			if err != nil {
				t.Fatalf("%q: accepted, but ParseSIOArgs says %v", p, err)
			}
			var as [][]byte
			for a, ok := args.Next(); ok; a, ok = args.Next() {
				as = append(as, a)
			}
			re = AppendSIOAck(nil, pkt.Namespace, pkt.AckID, as...)
		case SIODisconnect:
			re = AppendSIODisconnect(nil, pkt.Namespace)
		default:
			return
		}
		pkt2, err := ParseSIOPacket(re)
		if err != nil || pkt2.Type != pkt.Type || pkt2.Namespace != pkt.Namespace || pkt2.AckID != pkt.AckID {
			t.Fatalf("%q re-encoded as %q: %+v, %v", p, re, pkt2, err)
		}
		if pkt.Type == SIOEvent && pkt.Data[skipJSONSpace(pkt.Data, 1)] == '"' || pkt.Type != SIOEvent {
			// A number name comes back as a string; everything else is equal.
			if !reflect.DeepEqual(sioDecodeJSON(pkt.Data), sioDecodeJSON(pkt2.Data)) {
				t.Fatalf("%q re-encoded as %q: data differs", p, re)
			}
		}
	})
}

func FuzzSIOEventName(f *testing.F) {
	for _, s := range []string{
		`["foo"]`, `["foo",1,"two",{"three":[3]},[4,[5]],null,true,false,-1.5e3]`, `["\ud800x"]`,
		`["\udc00\ud800\udc00"]`, `[12,"x"]`, `["disconnect"]`, `["\u0064isconnect"]`, ` [ "a" , "]" ] `, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sioCheckEventName(t, data)
		// appendJSONUnquote against encoding/json on any valid string.
		if validJSON(data) {
			if i := skipJSONSpace(data, 0); data[i] == '"' {
				var want string
				if err := json.Unmarshal(data, &want); err != nil {
					t.Fatal(err)
				}
				end := jsonStringEnd(data, i)
				if got := appendJSONUnquote(nil, data[i+1:end-1]); string(got) != want {
					t.Fatalf("unquote %q = %q, encoding/json %q", data, got, want)
				}
			}
		}
	})
}

func BenchmarkParseSIOPacket(b *testing.B) {
	p := []byte(`4212["subscribe",{"topics":["orders.eu","prices.btc"]}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		pkt, err := ParseSIOPacket(p)
		if err != nil {
			b.Fatal(err)
		}
		name, args, err := SIOEventName(pkt.Data)
		if err != nil || string(name) != "subscribe" {
			b.Fatal(err)
		}
		for _, ok := args.Next(); ok; _, ok = args.Next() {
		}
	}
}

func BenchmarkAppendSIOEvent(b *testing.B) {
	buf := make([]byte, 0, 512)
	data := []byte(`{"topic":"orders.eu","seq":1234,"data":{"id":"o-1","qty":3,"price":"12.50"}}`)
	offset := []byte(`"7:1234"`)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSIOEvent(buf[:0], "/", -1, "message", data, offset)
	}
}
