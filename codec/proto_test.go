package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Command
	}{
		{"subscribe", `{"id":1,"type":"subscribe","topics":["a","b.c"]}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"a", "b.c"}}},
		{"unsubscribe", `{"id":2,"type":"unsubscribe","topics":["a"]}`,
			Command{ID: []byte("2"), Type: CmdUnsubscribe, Topics: []string{"a"}}},
		{"ping", `{"id":3,"type":"ping"}`, Command{ID: []byte("3"), Type: CmdPing}},
		{"publish object", `{"id":4,"type":"publish","topic":"a","data":{"x": [1, 2]}}`,
			Command{ID: []byte("4"), Type: CmdPublish, Topic: "a", Data: []byte(`{"x": [1, 2]}`)}},
		{"publish null data", `{"id":4,"type":"publish","topic":"a","data":null}`,
			Command{ID: []byte("4"), Type: CmdPublish, Topic: "a", Data: []byte(`null`)}},
		{"string id", `{"id":"req-\u00e9\"","type":"ping"}`, Command{ID: []byte(`"req-\u00e9\""`), Type: CmdPing}},
		{"negative float id", `{"id":-1.5e3,"type":"ping"}`, Command{ID: []byte("-1.5e3"), Type: CmdPing}},
		{"whitespace, field order, extra fields", " \n{ \"type\" : \"ping\", \"extra\": {\"a\":[]}, \"id\" : 7 }\t",
			Command{ID: []byte("7"), Type: CmdPing}},
		{"fields of other types ignored", `{"id":1,"type":"ping","topics":5,"topic":[],"data":1}`,
			Command{ID: []byte("1"), Type: CmdPing}},
		{"topics unvalidated", `{"id":1,"type":"subscribe","topics":["a b",""]}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"a b", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got, err := ParseCommand(in)
			if err != nil {
				t.Fatalf("ParseCommand: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range in {
				in[i] = 'x'
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("result aliases the input: %+v", got)
			}
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	tests := []struct {
		name, in, code string
		id             string // expected Command.ID; "" means nil
	}{
		{"empty", ``, CodeBadJSON, ""},
		{"array", `[1]`, CodeBadJSON, ""},
		{"null", `null`, CodeBadJSON, ""},
		{"string", `"ping"`, CodeBadJSON, ""},
		{"truncated", `{"id":1,"type":"ping"`, CodeBadJSON, ""},
		{"trailing garbage", `{"id":1,"type":"ping"} {}`, CodeBadJSON, ""},
		{"invalid literal", `{"id":1,"type":pong}`, CodeBadJSON, ""},
		{"invalid UTF-8", "{\"id\":\"\xff\",\"type\":\"ping\"}", CodeBadJSON, ""},
		{"missing id", `{"type":"ping"}`, CodeBadRequest, ""},
		{"null id", `{"id":null,"type":"ping"}`, CodeBadRequest, ""},
		{"bool id", `{"id":true,"type":"ping"}`, CodeBadRequest, ""},
		{"object id", `{"id":{"a":1},"type":"ping"}`, CodeBadRequest, ""},
		{"array id", `{"id":[1],"type":"ping"}`, CodeBadRequest, ""},
		{"names are case-sensitive", `{"ID":1,"type":"ping"}`, CodeBadRequest, ""},
		{"missing type", `{"id":1}`, CodeBadRequest, "1"},
		{"null type", `{"id":1,"type":null}`, CodeBadRequest, "1"},
		{"number type", `{"id":"a","type":3}`, CodeBadJSON, `"a"`},
		{"unknown type", `{"id":5,"type":"pong"}`, CodeUnknownCommand, "5"},
		{"type case", `{"id":5,"type":"PING"}`, CodeUnknownCommand, "5"},
		{"long unknown type", `{"id":5,"type":"` + strings.Repeat("z", 1000) + `"}`, CodeUnknownCommand, "5"},
		{"subscribe without topics", `{"id":6,"type":"subscribe"}`, CodeBadRequest, "6"},
		{"subscribe null topics", `{"id":6,"type":"subscribe","topics":null}`, CodeBadRequest, "6"},
		{"subscribe empty topics", `{"id":6,"type":"subscribe","topics":[]}`, CodeBadRequest, "6"},
		{"subscribe topics string", `{"id":6,"type":"subscribe","topics":"a"}`, CodeBadJSON, "6"},
		{"unsubscribe topics numbers", `{"id":6,"type":"unsubscribe","topics":[1]}`, CodeBadJSON, "6"},
		{"publish without topic", `{"id":8,"type":"publish","data":1}`, CodeBadRequest, "8"},
		{"publish topic number", `{"id":8,"type":"publish","topic":1,"data":1}`, CodeBadJSON, "8"},
		{"publish without data", `{"id":8,"type":"publish","topic":"a"}`, CodeBadRequest, "8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := ParseCommand([]byte(tt.in))
			var pe *ProtoError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ProtoError %s", err, tt.code)
			}
			if pe.Code != tt.code || pe.Message == "" {
				t.Fatalf("error %q %q, want code %q", pe.Code, pe.Message, tt.code)
			}
			if len(pe.Message) > 64 {
				t.Errorf("message of %d bytes echoes too much: %q", len(pe.Message), pe.Message)
			}
			if want := []byte(tt.id); tt.id == "" && cmd.ID != nil || tt.id != "" && !bytes.Equal(cmd.ID, want) {
				t.Errorf("ID = %q, want %q", cmd.ID, tt.id)
			}
			if got := pe.Error(); got != "codec: "+pe.Code+": "+pe.Message {
				t.Errorf("Error() = %q", got)
			}
		})
	}
}

// protoDecode unmarshals out into a map of raw fields, failing unless out is
// valid JSON in valid UTF-8 (a text frame, RFC 6455 §5.6).
func protoDecode(t testing.TB, out []byte) map[string]json.RawMessage {
	t.Helper()
	if !utf8.Valid(out) {
		t.Fatalf("output is not valid UTF-8: %q", out)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("output %q is not a JSON object: %v", out, err)
	}
	return m
}

// protoString decodes the JSON string field key of m.
func protoString(t testing.TB, m map[string]json.RawMessage, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m[key], &s); err != nil {
		t.Fatalf("field %q = %s: %v", key, m[key], err)
	}
	return s
}

func TestAppendWelcomeOKError(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"welcome", AppendWelcome(nil, "n1-42", 25), `{"type":"welcome","session":"n1-42","ping_interval":25}`},
		{"welcome escaped", AppendWelcome(nil, "a\"b", 0), `{"type":"welcome","session":"a\"b","ping_interval":0}`},
		{"ok number", AppendOK(nil, []byte("17")), `{"type":"ok","id":17}`},
		{"ok string", AppendOK(nil, []byte(`"x\"y"`)), `{"type":"ok","id":"x\"y"}`},
		{"ok no id", AppendOK(nil, nil), `{"type":"ok","id":null}`},
		{"error", AppendError(nil, []byte("7"), CodeInvalidTopic, `topic "a b": bad`),
			`{"type":"error","id":7,"error":{"code":"invalid_topic","message":"topic \"a b\": bad"}}`},
		{"error no id", AppendError(nil, nil, CodeBadJSON, "invalid JSON"),
			`{"type":"error","error":{"code":"bad_json","message":"invalid JSON"}}`},
		{"error control chars", AppendError(nil, []byte(`"i"`), CodeInternal, "a\nb\x01\u2028"),
			`{"type":"error","id":"i","error":{"code":"internal","message":"a\nb\u0001\u2028"}}`},
		{"appends", AppendOK([]byte("prefix"), []byte("1")), `prefix{"type":"ok","id":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", tt.got, tt.want)
			}
			protoDecode(t, bytes.TrimPrefix(tt.got, []byte("prefix")))
		})
	}
}

// protoCheckPush decodes a push and checks that it carries topic, seq and
// exactly data, in the representation AppendPush documents.
func protoCheckPush(t testing.TB, out []byte, topic string, seq uint64, data []byte) {
	t.Helper()
	m := protoDecode(t, out)
	if typ := protoString(t, m, "type"); typ != "message" {
		t.Fatalf("type %q", typ)
	}
	if utf8.ValidString(topic) {
		if got := protoString(t, m, "topic"); got != topic {
			t.Fatalf("topic %q, want %q", got, topic)
		}
	}
	var gotSeq uint64
	if err := json.Unmarshal(m["seq"], &gotSeq); err != nil || gotSeq != seq {
		t.Fatalf("seq %s (%v), want %d", m["seq"], err, seq)
	}
	raw := m["data"]
	switch {
	case !utf8.Valid(data):
		if enc := protoString(t, m, "encoding"); enc != "base64" {
			t.Fatalf("encoding %q for binary data", enc)
		}
		got, err := base64.StdEncoding.DecodeString(protoString(t, m, "data"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("base64 data %q (%v), want %q", got, err, data)
		}
	case json.Valid(data):
		if !bytes.Equal(raw, bytes.TrimSpace(data)) {
			t.Fatalf("data %q, want %q unchanged", raw, data)
		}
		if _, ok := m["encoding"]; ok {
			t.Fatalf("encoding set for JSON data")
		}
	default:
		if got := protoString(t, m, "data"); got != string(data) {
			t.Fatalf("data %q, want %q as a string", got, data)
		}
		if _, ok := m["encoding"]; ok {
			t.Fatalf("encoding set for text data")
		}
	}
}

func TestAppendPush(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		golden string
	}{
		{"object", `{"price":1.5,"s":"\u00e9"}`,
			`{"type":"message","topic":"ticker.BTC","seq":1234,"data":{"price":1.5,"s":"\u00e9"}}`},
		{"number", `42`, `{"type":"message","topic":"ticker.BTC","seq":1234,"data":42}`},
		{"JSON string", `"hi"`, `{"type":"message","topic":"ticker.BTC","seq":1234,"data":"hi"}`},
		{"JSON with spaces", " [1, 2] ", `{"type":"message","topic":"ticker.BTC","seq":1234,"data": [1, 2] }`},
		{"text", "hello \"world\"\n\u2028\u00e9", `{"type":"message","topic":"ticker.BTC","seq":1234,"data":"hello \"world\"\n\u2028` + "\u00e9" + `"}`},
		{"truncated JSON", `{"a":`, `{"type":"message","topic":"ticker.BTC","seq":1234,"data":"{\"a\":"}`},
		{"empty", ``, `{"type":"message","topic":"ticker.BTC","seq":1234,"data":""}`},
		{"binary", "\x00\xff\xfe", `{"type":"message","topic":"ticker.BTC","seq":1234,"data":"AP/+","encoding":"base64"}`},
		{"JSON with invalid UTF-8", "\"\xff\"", `{"type":"message","topic":"ticker.BTC","seq":1234,"data":"Iv8i","encoding":"base64"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := AppendPush(nil, "ticker.BTC", 1234, []byte(tt.data))
			if string(out) != tt.golden {
				t.Fatalf("got\n%s\nwant\n%s", out, tt.golden)
			}
			protoCheckPush(t, out, "ticker.BTC", 1234, []byte(tt.data))
		})
	}
	// An invalid topic is still escaped into valid JSON.
	protoCheckPush(t, AppendPush(nil, "a\"b\\\n", 1<<63, nil), "a\"b\\\n", 1<<63, nil)
}

// protoRandomData returns random payloads of several flavours: JSON, text,
// text with JSON-like punctuation, and arbitrary bytes.
func protoRandomData(r *rand.Rand) []byte {
	n := r.IntN(200)
	switch r.IntN(4) {
	case 0:
		b, _ := json.Marshal(map[string]any{"n": r.Float64(), "s": strings.Repeat("\u00e9\"", r.IntN(5)), "a": []int{r.IntN(9)}})
		return b
	case 1:
		var b []byte
		for range n {
			b = utf8.AppendRune(b, rune(r.IntN(0x2100))) // control chars, ASCII, U+2028/U+2029 and more
		}
		return b
	case 2:
		const alphabet = `{}[]":,\ 0123abc` + "\n\t"
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return b
	default:
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
}

func TestAppendPushRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 64)
	for range 5000 {
		data := protoRandomData(r)
		seq := r.Uint64()
		buf = AppendPush(buf[:0], "t.x", seq, data)
		protoCheckPush(t, buf, "t.x", seq, data)
	}
}

// TestAppendJSONStringAgainstEncodingJSON checks appendJSONString byte for
// byte against encoding/json (HTML escaping off), which writes the same
// escapes, including \ufffd for invalid UTF-8 and \u2028, \u2029.
func TestAppendJSONStringAgainstEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	inputs := []string{"", "plain", "\x00\x1f\x7f\"\\/\b\f\n\r\t", "\u2028\u2029\u00e9\U0001F600", "\xff\xc3", "\xed\xa0\x80", "a\xe2\x80"}
	for range 2000 {
		inputs = append(inputs, string(protoRandomData(r)))
	}
	for _, s := range inputs {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := appendJSONString(nil, s)
		if !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json %s", s, got, want.Bytes())
		}
	}
}

func TestProtoAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	payloads := map[string][]byte{
		"json":   []byte(`[` + strings.Repeat(`{"a":1},`, 12) + `{"a":1}]`),
		"text":   bytes.Repeat([]byte("plain text over thirty-two bytes "), 3),
		"binary": bytes.Repeat([]byte{0xff, 0}, 50),
	}
	for name, data := range payloads {
		if isJSON := json.Valid(data); isJSON != (name == "json") || utf8.Valid(data) != (name != "binary") {
			t.Fatalf("payload %s does not take its path", name)
		}
		if n := testing.AllocsPerRun(100, func() { buf = AppendPush(buf[:0], "ticker.BTC", 1, data) }); n != 0 {
			t.Errorf("AppendPush %s: %v allocs, want 0", name, n)
		}
	}
	id := []byte("12")
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendOK(buf[:0], id)
		buf = AppendError(buf[:0], id, CodeForbidden, "token does not allow publish")
		buf = AppendWelcome(buf[:0], "node1-000001", 25)
	}); n != 0 {
		t.Errorf("AppendOK/AppendError/AppendWelcome: %v allocs, want 0", n)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"type":"subscribe","topics":["a","b.c"]}`,
		`{"id":"x","type":"publish","topic":"a","data":{"k":[1,2]}}`,
		`{"id":2,"type":"pong"}`,
		`{"id":{},"type":"ping"}`,
		`[`,
		`{"id":3,"type":"subscribe","topics":["user.42"],"since":{"user.42":{"offset":1234,"epoch":"E"}}}`,
		`{"id":4,"type":"history","topic":"user.42","since":{"offset":1234,"epoch":"E"},"limit":100}`,
		`{"id":5,"type":"history","topic":"a","since":{"offset":-1e9},"limit":1.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		cmd, err := ParseCommand(p)
		if err != nil {
			var pe *ProtoError
			if !errors.As(err, &pe) {
				t.Fatalf("err %T %v is not a *ProtoError", err, err)
			}
			switch pe.Code {
			case CodeBadJSON, CodeBadRequest, CodeUnknownCommand:
			default:
				t.Fatalf("unexpected code %q", pe.Code)
			}
			protoDecode(t, AppendError(nil, cmd.ID, pe.Code, pe.Message))
		} else {
			switch cmd.Type {
			case CmdPing:
			case CmdSubscribe, CmdUnsubscribe:
				if len(cmd.Topics) == 0 {
					t.Fatalf("%s without topics", cmd.Type)
				}
				for topic, pos := range cmd.Since {
					if !contains(cmd.Topics, topic) {
						t.Fatalf("since names %q, not in topics %q", topic, cmd.Topics)
					}
					checkFuzzPosition(t, pos)
				}
				if cmd.Type == CmdUnsubscribe && cmd.Since != nil {
					t.Fatalf("unsubscribe with since")
				}
			case CmdHistory:
				if cmd.HistorySince != nil {
					checkFuzzPosition(t, *cmd.HistorySince)
				}
				if cmd.Limit < 0 || cmd.Limit > MaxHistoryLimit {
					t.Fatalf("limit %d accepted", cmd.Limit)
				}
			case CmdPublish:
				if !json.Valid(cmd.Data) {
					t.Fatalf("publish data %q is not JSON", cmd.Data)
				}
			default:
				t.Fatalf("accepted type %q", cmd.Type)
			}
			if len(cmd.ID) == 0 {
				t.Fatalf("accepted without an id")
			}
		}
		if cmd.ID != nil && (!validJSON(cmd.ID) || cmd.ID[0] != '"' && cmd.ID[0] != '-' && (cmd.ID[0] < '0' || cmd.ID[0] > '9')) {
			t.Fatalf("id %q is not a JSON number or string", cmd.ID)
		}
		protoDecode(t, AppendOK(nil, cmd.ID))
	})
}

// checkFuzzPosition fails unless p is a position ParseCommand may accept.
func checkFuzzPosition(t *testing.T, p Position) {
	t.Helper()
	if p.Offset > MaxOffset || p.Offset > 0 && !ValidEpoch(p.Epoch) || p.Epoch != "" && !ValidEpoch(p.Epoch) {
		t.Fatalf("position %+v accepted", p)
	}
}

func FuzzAppendPush(f *testing.F) {
	f.Add("ticker.BTC", uint64(1), []byte(`{"p":1}`))
	f.Add("a", uint64(0), []byte("text \u2028"))
	f.Add("a\"", uint64(1<<64-1), []byte{0xff, 0})
	f.Fuzz(func(t *testing.T, topic string, seq uint64, data []byte) {
		protoCheckPush(t, AppendPush(nil, topic, seq, data), topic, seq, data)
	})
}

func BenchmarkAppendPush(b *testing.B) {
	data := []byte(`{"symbol":"BTC-USD","price":64231.57,"size":0.0153,"side":"buy","ts":1732230000123,"id":"t-9"}`)
	for len(data) < 100 {
		data = append(data[:len(data)-1], ` }`...)
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = AppendPush(buf[:0], "ticker.BTC", 123456, data)
	}
}

func BenchmarkParseCommand(b *testing.B) {
	p := []byte(`{"id":17,"type":"subscribe","topics":["ticker.BTC","ticker.ETH","news.crypto"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCommand(p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestValidJSONAgainstEncodingJSON checks validJSON against its definition,
// json.Valid(p) && utf8.Valid(p), on hand-picked edge cases and on random
// mutations of them.
func TestValidJSONAgainstEncodingJSON(t *testing.T) {
	cases := []string{
		``, ` `, `0`, `-0`, `01`, `-`, `1.`, `.1`, `1.5e`, `1.5e+`, `1.5E-07`, `1e5`, `-12.34e+56`, `+1`, `0x10`, `1 2`,
		`true`, `false`, `null`, `tru`, `nul`, `truee`, `True`, `NaN`, `Infinity`,
		`""`, `"`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\ud800"`, `"\u12"`, `"\u12G4"`, `"\x"`, "\"\t\"", "\"\x7f\"",
		"\"\xc3\xa9\"", "\"\xff\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x80\xa8\"",
		`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1,[2,[3]]]`, `[`, `]`, `[[]`, `[]]`, `[}`,
		`{}`, `{ }`, `{"a":1}`, `{"a" : [1, {"b":null}] , "c":"d"}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{1:2}`, `{"a":1]`, `[1}`,
		" \t\r\n{\"a\":1}\n ", "\v1", "\u00a01", "{\"a\":1}\x00", "[1]\xff",
		strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
		strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth),
		strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
		strings.Repeat("[", 200) + strings.Repeat("]", 199),
	}
	check := func(p []byte) {
		t.Helper()
		if got, want := validJSON(p), json.Valid(p) && utf8.Valid(p); got != want {
			t.Fatalf("validJSON(%.200q) = %v, want %v", p, got, want)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	const alphabet = "{}[]\",:\\/ -+.eE0123456789tfnulrsabu\xc3\xa9\xff\t\n"
	for _, c := range cases {
		check([]byte(c))
		if len(c) > 200 {
			continue
		}
		for range 300 {
			p := []byte(c)
			for range 1 + r.IntN(3) {
				switch k := r.IntN(3); {
				case k == 0 && len(p) > 0: // replace
					p[r.IntN(len(p))] = alphabet[r.IntN(len(alphabet))]
				case k == 1: // insert
					j := r.IntN(len(p) + 1)
					p = append(p[:j], append([]byte{alphabet[r.IntN(len(alphabet))]}, p[j:]...)...)
				case len(p) > 0: // delete
					j := r.IntN(len(p))
					p = append(p[:j], p[j+1:]...)
				}
			}
			check(p)
		}
	}
	for range 3000 {
		check(protoRandomData(r))
	}
}

func TestValidJSONAllocs(t *testing.T) {
	for _, p := range [][]byte{[]byte(`{"a":[1,2,{"b":"c"}]}`), []byte(`plain text, not JSON`), []byte(strings.Repeat("[", 500))} {
		if n := testing.AllocsPerRun(50, func() { validJSON(p) }); n != 0 {
			t.Errorf("validJSON(%.20q): %v allocs, want 0", p, n)
		}
	}
}
