package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCommandPositions(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Command
	}{
		{"subscribe since", `{"id":1,"type":"subscribe","topics":["user.42","news"],"since":{"user.42":{"offset":1234,"epoch":"E-1_x"}}}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"user.42", "news"},
				Since: map[string]Position{"user.42": {1234, "E-1_x"}}}},
		{"offset 0 without epoch", `{"id":1,"type":"subscribe","topics":["a"],"since":{"a":{"offset":0}}}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"a"}, Since: map[string]Position{"a": {}}}},
		{"largest offset", `{"id":1,"type":"subscribe","topics":["a"],"since":{"a":{"offset":9007199254740991,"epoch":"e"}}}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"a"}, Since: map[string]Position{"a": {MaxOffset, "e"}}}},
		{"null since", `{"id":1,"type":"subscribe","topics":["a"],"since":null}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"a"}}},
		{"empty since", `{"id":1,"type":"subscribe","topics":["a"],"since":{}}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"a"}}},
		{"null position skipped", `{"id":1,"type":"subscribe","topics":["a"],"since":{"a":null}}`,
			Command{ID: []byte("1"), Type: CmdSubscribe, Topics: []string{"a"}}},
		{"unsubscribe ignores since", `{"id":1,"type":"unsubscribe","topics":["a"],"since":5}`,
			Command{ID: []byte("1"), Type: CmdUnsubscribe, Topics: []string{"a"}}},
		{"history", `{"id":2,"type":"history","topic":"user.42","since":{"offset":1234,"epoch":"E"},"limit":100}`,
			Command{ID: []byte("2"), Type: CmdHistory, Topic: "user.42", HistorySince: &Position{1234, "E"}, Limit: 100}},
		{"history bare", `{"id":2,"type":"history","topic":"a"}`,
			Command{ID: []byte("2"), Type: CmdHistory, Topic: "a"}},
		{"history null fields", `{"id":2,"type":"history","topic":"a","since":null,"limit":null}`,
			Command{ID: []byte("2"), Type: CmdHistory, Topic: "a"}},
		{"history max limit, extra fields", `{"id":2,"type":"history","topic":"a","limit":1000,"since":{"offset":7,"epoch":"e","x":[]}}`,
			Command{ID: []byte("2"), Type: CmdHistory, Topic: "a", HistorySince: &Position{7, "e"}, Limit: MaxHistoryLimit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseCommand: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCommandPositionErrors(t *testing.T) {
	sub := func(since string) string {
		return `{"id":9,"type":"subscribe","topics":["a","b"],"since":` + since + `}`
	}
	hist := func(rest string) string { return `{"id":9,"type":"history","topic":"a"` + rest + `}` }
	tests := []struct{ name, in, code, msg string }{
		{"since not an object", sub(`[1]`), CodeBadJSON, "since must be an object"},
		{"since a number", sub(`5`), CodeBadJSON, "since must be an object"},
		{"position not an object", sub(`{"a":5}`), CodeBadJSON, "since must be an object"},
		{"unknown topic", sub(`{"c":{"offset":1,"epoch":"e"}}`), CodeBadRequest, "since names a topic that is not in topics"},
		{"missing offset", sub(`{"a":{"epoch":"e"}}`), CodeBadRequest, "since: missing offset"},
		{"offset string", sub(`{"a":{"offset":"1","epoch":"e"}}`), CodeBadJSON, "offset must be a number"},
		{"offset bool", sub(`{"a":{"offset":true,"epoch":"e"}}`), CodeBadJSON, "offset must be a number"},
		{"negative offset", sub(`{"a":{"offset":-1,"epoch":"e"}}`), CodeBadRequest, "offset must not be negative"},
		{"negative zero", sub(`{"a":{"offset":-0,"epoch":"e"}}`), CodeBadRequest, "offset must not be negative"},
		{"fraction", sub(`{"a":{"offset":1.5,"epoch":"e"}}`), CodeBadRequest, "offset must be an integer"},
		{"exponent", sub(`{"a":{"offset":1e3,"epoch":"e"}}`), CodeBadRequest, "offset must be an integer"},
		{"huge exponent", sub(`{"a":{"offset":100000000000000000000e400,"epoch":"e"}}`), CodeBadRequest, "offset must be an integer"},
		{"2^53", sub(`{"a":{"offset":9007199254740992,"epoch":"e"}}`), CodeBadRequest, "offset too large"},
		{"2^64", sub(`{"a":{"offset":18446744073709551616,"epoch":"e"}}`), CodeBadRequest, "offset too large"},
		{"very long", sub(`{"a":{"offset":` + strings.Repeat("9", 500) + `,"epoch":"e"}}`), CodeBadRequest, "offset too large"},
		{"missing epoch", sub(`{"a":{"offset":3}}`), CodeBadRequest, "since: missing epoch"},
		{"null epoch", sub(`{"a":{"offset":3,"epoch":null}}`), CodeBadRequest, "since: missing epoch"},
		{"epoch number", sub(`{"a":{"offset":3,"epoch":3}}`), CodeBadJSON, "since: epoch must be a string"},
		{"empty epoch", sub(`{"a":{"offset":3,"epoch":""}}`), CodeBadRequest, "since: invalid epoch"},
		{"epoch with dot", sub(`{"a":{"offset":3,"epoch":"a.b"}}`), CodeBadRequest, "since: invalid epoch"},
		{"epoch too long", sub(`{"a":{"offset":3,"epoch":"` + strings.Repeat("e", MaxEpochLen+1) + `"}}`), CodeBadRequest, "since: invalid epoch"},
		{"history without topic", `{"id":9,"type":"history"}`, CodeBadRequest, "missing topic"},
		{"history topic number", `{"id":9,"type":"history","topic":1}`, CodeBadJSON, "topic must be a string"},
		{"history since array", hist(`,"since":[]`), CodeBadJSON, "since must be an object"},
		{"history since negative", hist(`,"since":{"offset":-5,"epoch":"e"}`), CodeBadRequest, "offset must not be negative"},
		{"history limit 0", hist(`,"limit":0`), CodeBadRequest, "limit must be an integer from 1 to 1000"},
		{"history limit negative", hist(`,"limit":-1`), CodeBadRequest, "limit must be an integer from 1 to 1000"},
		{"history limit 1001", hist(`,"limit":1001`), CodeBadRequest, "limit must be an integer from 1 to 1000"},
		{"history limit huge", hist(`,"limit":99999999999999999999999`), CodeBadRequest, "limit must be an integer from 1 to 1000"},
		{"history limit fraction", hist(`,"limit":2.5`), CodeBadRequest, "limit must be an integer from 1 to 1000"},
		{"history limit string", hist(`,"limit":"10"`), CodeBadJSON, "limit must be a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := ParseCommand([]byte(tt.in))
			var pe *ProtoError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ProtoError", err)
			}
			if pe.Code != tt.code || pe.Message != tt.msg {
				t.Fatalf("error %s %q, want %s %q", pe.Code, pe.Message, tt.code, tt.msg)
			}
			if string(cmd.ID) != "9" {
				t.Fatalf("ID %q, want 9", cmd.ID)
			}
		})
	}
}

func TestParseCountAgainstStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	check := func(s string) {
		t.Helper()
		n, code := parseCount(json.RawMessage(s), MaxOffset)
		want, err := strconv.ParseUint(s, 10, 64)
		switch {
		case err == nil && want <= MaxOffset:
			if code != countOK || n != want {
				t.Fatalf("parseCount(%s) = %d, %d; want %d", s, n, code, want)
			}
		case err == nil || errors.Is(err, strconv.ErrRange):
			if code != countTooLarge {
				t.Fatalf("parseCount(%s) code %d, want too large", s, code)
			}
		}
	}
	for _, s := range []string{"0", "1", "9007199254740991", "9007199254740992", "9007199254740990", "18446744073709551615", "18446744073709551616"} {
		check(s)
	}
	for range 10000 {
		check(strconv.FormatUint(r.Uint64()>>r.IntN(64), 10))
	}
}

func TestAppendPushAt(t *testing.T) {
	got := AppendPushAt(nil, "user.42", 7, 1234, "E1", []byte(`{"a":1}`))
	want := `{"type":"message","topic":"user.42","seq":7,"offset":1234,"epoch":"E1","data":{"a":1}}`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	got = AppendPushAt(nil, "t", 0, MaxOffset, "e\"", []byte{0xff})
	want = `{"type":"message","topic":"t","seq":0,"offset":9007199254740991,"epoch":"e\"","data":"/w==","encoding":"base64"}`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	r := rand.New(rand.NewPCG(9, 10))
	buf := make([]byte, 0, 64)
	for range 3000 {
		data := protoRandomData(r)
		seq, off := r.Uint64(), r.Uint64()
		buf = AppendPushAt(buf[:0], "t.x", seq, off, "ep", data)
		checkPushAt(t, buf, "t.x", seq, off, "ep", data)
		// The durable push is the volatile one with two fields more.
		vol := AppendPush(nil, "t.x", seq, data)
		stripped := bytes.Replace(buf, []byte(`,"offset":`+strconv.FormatUint(off, 10)+`,"epoch":"ep"`), nil, 1)
		if !bytes.Equal(stripped, vol) {
			t.Fatalf("AppendPushAt without its position %s != AppendPush %s", stripped, vol)
		}
	}
}

// checkPushAt decodes a durable push and checks every field.
func checkPushAt(t testing.TB, out []byte, topic string, seq, offset uint64, epoch string, data []byte) {
	t.Helper()
	protoCheckPush(t, out, topic, seq, data)
	m := protoDecode(t, out)
	var gotOff uint64
	if err := json.Unmarshal(m["offset"], &gotOff); err != nil || gotOff != offset {
		t.Fatalf("offset %s (%v), want %d", m["offset"], err, offset)
	}
	if got := protoString(t, m, "epoch"); utf8.ValidString(epoch) && got != epoch {
		t.Fatalf("epoch %q, want %q", got, epoch)
	}
}

func TestAppendSubscribeOK(t *testing.T) {
	tests := []struct {
		name string
		recs []Recovery
		want string
	}{
		{"none", nil, `{"type":"ok","id":1}`},
		{"all recovered", []Recovery{{"user.42", true, ""}, {"b", true, ""}},
			`{"type":"ok","id":1,"recovered":{"user.42":true,"b":true}}`},
		{"mixed", []Recovery{{"user.42", true, ""}, {"b", false, ReasonTrimmed}, {"c", false, ReasonNotDurable}},
			`{"type":"ok","id":1,"recovered":{"user.42":true,"b":false,"c":false},"reasons":{"b":"trimmed","c":"not_durable"}}`},
		{"escaped", []Recovery{{"a\"", false, ReasonLimit}},
			`{"type":"ok","id":1,"recovered":{"a\"":false},"reasons":{"a\"":"limit"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendSubscribeOK(nil, []byte("1"), tt.recs, nil)
			if string(got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			protoDecode(t, got)
		})
	}
}

func TestAppendSubscribeOKPositions(t *testing.T) {
	live := []Live{{"b", Position{7, "E1"}}, {"c", Position{0, "E2"}}}
	got := AppendSubscribeOK(nil, []byte(`"s"`), []Recovery{{"a", true, ""}, {"b", false, ReasonTrimmed}}, live)
	want := `{"type":"ok","id":"s","recovered":{"a":true,"b":false},"reasons":{"b":"trimmed"},` +
		`"positions":{"b":{"offset":7,"epoch":"E1"},"c":{"offset":0,"epoch":"E2"}}}`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	protoDecode(t, got)
	got = AppendSubscribeOK(nil, []byte("2"), nil, live[:1])
	if want := `{"type":"ok","id":2,"positions":{"b":{"offset":7,"epoch":"E1"}}}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	var reply struct {
		Positions map[string]struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		} `json:"positions"`
	}
	if err := json.Unmarshal(got, &reply); err != nil || reply.Positions["b"].Offset != 7 || reply.Positions["b"].Epoch != "E1" {
		t.Fatalf("%s decodes as %+v: %v", got, reply, err)
	}
}

func TestAppendHistoryOK(t *testing.T) {
	msgs := []HistoryMessage{
		{"user.42", 3, 10, "E", []byte(`{"a":1}`)},
		{"user.42", 0, 12, "E", []byte("hi")},
	}
	got := AppendHistoryOK(nil, []byte(`"h"`), "E", msgs, true, true)
	want := `{"type":"ok","id":"h","epoch":"E","messages":[` +
		`{"type":"message","topic":"user.42","seq":3,"offset":10,"epoch":"E","data":{"a":1}},` +
		`{"type":"message","topic":"user.42","seq":0,"offset":12,"epoch":"E","data":"hi"}],"more":true,"trimmed":true}`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	var reply struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(got, &reply); err != nil || len(reply.Messages) != 2 {
		t.Fatalf("reply %s: %v", got, err)
	}
	for i, raw := range reply.Messages {
		checkPushAt(t, raw, "user.42", msgs[i].Seq, msgs[i].Offset, "E", msgs[i].Data)
	}
	if got := AppendHistoryOK(nil, []byte("2"), "", nil, false, false); string(got) != `{"type":"ok","id":2,"messages":[]}` {
		t.Fatalf("empty history reply %s", got)
	}
	if got := AppendHistoryOK(nil, nil, "E", nil, false, false); string(got) != `{"type":"ok","epoch":"E","messages":[]}` {
		t.Fatalf("history answer without id %s", got)
	}
}

func TestAppendPublishOK(t *testing.T) {
	got := AppendPublishOK(nil, []byte(`"p"`), 42, "E1")
	if want := `{"type":"ok","id":"p","offset":42,"epoch":"E1"}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	protoDecode(t, got)
}

func TestDurableAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	data := []byte(`{"price":1.5}`)
	recs := []Recovery{{"a", true, ""}, {"b", false, ReasonTrimmed}}
	msgs := []HistoryMessage{{"a", 1, 2, "E", data}}
	id := []byte("3")
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendPushAt(buf[:0], "ticker.BTC", 1, 99, "E", data)
		buf = AppendSubscribeOK(buf[:0], id, recs, []Live{{"c", Position{5, "E"}}})
		buf = AppendHistoryOK(buf[:0], id, "E", msgs, false, false)
		buf = AppendPublishOK(buf[:0], id, 7, "E")
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

func FuzzAppendPushAt(f *testing.F) {
	f.Add("user.42", uint64(1), uint64(1234), "E1", []byte(`{"p":1}`))
	f.Add("a", uint64(0), uint64(0), "", []byte("text \u2028"))
	f.Add("a\"", uint64(1<<64-1), uint64(MaxOffset), "e\xff", []byte{0xff, 0})
	f.Fuzz(func(t *testing.T, topic string, seq, offset uint64, epoch string, data []byte) {
		checkPushAt(t, AppendPushAt(nil, topic, seq, offset, epoch, data), topic, seq, offset, epoch, data)
	})
}

func BenchmarkAppendPushAt(b *testing.B) {
	data := []byte(`{"symbol":"BTC-USD","price":64231.57,"size":0.0153,"side":"buy","ts":1732230000123,"id":"t-9"}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = AppendPushAt(buf[:0], "ticker.BTC", 123456, 9876543, "lq3v8k2p1a", data)
	}
}
