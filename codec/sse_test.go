package codec

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sseEvent is an event as an EventSource dispatches it.
type sseEvent struct {
	id, typ, data string
}

// sseParser is a reference event-stream parser following Blink's
// EventSourceParser (the rules in WHATWG HTML §9.2.6): lines end at CR, LF or
// CRLF, even across chunks; a leading BOM is dropped; a line starting with
// ':' is a comment; one space after the colon is stripped; "data" lines join
// with LF; an "id" holding NUL is ignored; the last event id is set at every
// blank line; a blank line fires an event only if the data buffer is not
// empty; "retry" takes ASCII digits only.
type sseParser struct {
	started   bool // the BOM check is done
	pendingCR bool // the last chunk ended in CR: a following LF belongs to it
	line      []byte

	data    []byte
	hasData bool
	typ     string
	idBuf   string
	lastID  string
	retry   int // -1 until set
	events  []sseEvent
}

func newSSEParser() *sseParser { return &sseParser{retry: -1} }

func (p *sseParser) feed(chunk []byte) {
	for _, c := range chunk {
		if !p.started {
			if len(p.line) < 3 && bytes.HasPrefix([]byte("\xef\xbb\xbf"), append(p.line, c)) {
				p.line = append(p.line, c)
				if len(p.line) == 3 {
					p.line, p.started = p.line[:0], true
				}
				continue
			}
			p.started = true
		}
		if p.pendingCR {
			p.pendingCR = false
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\r':
			p.pendingCR = true
			p.processLine()
		case '\n':
			p.processLine()
		default:
			p.line = append(p.line, c)
		}
	}
}

func (p *sseParser) processLine() {
	line := string(p.line)
	p.line = p.line[:0]
	if line == "" {
		p.lastID = p.idBuf
		if p.hasData {
			typ := p.typ
			if typ == "" {
				typ = "message"
			}
			p.events = append(p.events, sseEvent{p.lastID, typ, string(p.data)})
		}
		p.data, p.hasData, p.typ = p.data[:0], false, ""
		return
	}
	if line[0] == ':' {
		return
	}
	field, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch field {
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data, p.hasData = append(p.data, value...), true
	case "event":
		p.typ = value
	case "id":
		if !strings.Contains(value, "\x00") {
			p.idBuf = value
		}
	case "retry":
		if n, err := strconv.Atoi(value); err == nil && value != "" && strings.Trim(value, "0123456789") == "" {
			p.retry = n
		}
	}
}

// sseNormalize turns CRLF and CR into LF, as a client reads data.
func sseNormalize(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func TestAppendSSEEvent(t *testing.T) {
	tests := []struct {
		id, event, data, golden string
	}{
		{"7:42", "", `{"a":1}`, "id: 7:42\ndata: {\"a\":1}\n\n"},
		{"", "push", "x", "event: push\ndata: x\n\n"},
		{"", "", "", "data: \n\n"},
		{"1", "e", "a\nb\r\nc\rd", "id: 1\nevent: e\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"", "", "a\n", "data: a\ndata: \n\n"},
		{"", "", "\r\n\r\n", "data: \ndata: \ndata: \n\n"},
		{"", "", " lead", "data:  lead\n\n"},
		{"a\nb", "", "x", "data: x\n\n"},
		{"a\x00b", "", "x", "data: x\n\n"},
		{"", "ev\r\ndata: evil", "x", "event: evdata: evil\ndata: x\n\n"},
	}
	for _, tt := range tests {
		got := AppendSSEEvent([]byte("prev"), []byte(tt.id), tt.event, []byte(tt.data))
		if string(got[4:]) != tt.golden {
			t.Errorf("AppendSSEEvent(%q, %q, %q) = %q, want %q", tt.id, tt.event, tt.data, got[4:], tt.golden)
		}
	}
}

func TestAppendSSECommentRetry(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{string(AppendSSEComment(nil, "")), ":\n"},
		{string(AppendSSEComment(nil, "ping")), ": ping\n"},
		{string(AppendSSEComment(nil, "a\r\nb")), ": a\n: b\n"},
		{string(AppendSSERetry(nil, 3000)), "retry: 3000\n"},
		{string(AppendSSERetry(nil, -1)), "retry: 0\n"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestSSERoundTrip writes a stream of random events, comments and retries
// and reads it back with the reference parser, whole and in random chunks.
func TestSSERoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	randText := func(alphabet []string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	dataAlphabet := []string{"a", "b", " ", ":", "\n", "\r", "\r\n", "\u00e9", "\U0001F600", "\x00", "data: x", "\ufeff"}
	idAlphabet := []string{"1", "7", ":", " ", "a", "\u00e9", "\ufeff"}
	for round := range 300 {
		var stream []byte
		var want []sseEvent
		lastID, retry := "", -1
		if round%2 == 0 {
			stream = append(stream, "\xef\xbb\xbf"...) // a BOM a server may send
		}
		for range r.IntN(10) {
			switch r.IntN(5) {
			case 0:
				stream = AppendSSEComment(stream, randText(dataAlphabet, r.IntN(5)))
			case 1:
				retry = r.IntN(10000)
				stream = AppendSSERetry(stream, retry)
			default:
				id := randText(idAlphabet, r.IntN(4))
				if r.IntN(8) == 0 {
					id += "\n" // cannot be sent: left out
				}
				event := randText([]string{"a", "b", "-"}, r.IntN(3))
				data := randText(dataAlphabet, r.IntN(12))
				stream = AppendSSEEvent(stream, []byte(id), event, []byte(data))
				if id != "" && !strings.ContainsAny(id, "\r\n\x00") {
					lastID = id
				}
				if event == "" {
					event = "message"
				}
				want = append(want, sseEvent{lastID, event, sseNormalize(data)})
			}
		}
		p := newSSEParser()
		p.feed(stream)
		if !reflect.DeepEqual(p.events, want) || p.retry != retry {
			t.Fatalf("stream %q:\nevents %q retry %d\nwant   %q retry %d", stream, p.events, p.retry, want, retry)
		}
		// In random chunks.
		q := newSSEParser()
		for rest := stream; len(rest) > 0; {
			k := min(len(rest), 1+r.IntN(8))
			q.feed(rest[:k])
			rest = rest[k:]
		}
		if !reflect.DeepEqual(q.events, p.events) {
			t.Fatalf("stream %q in chunks: %q, whole: %q", stream, q.events, p.events)
		}
	}
}

func TestAppendSSEResponseHead(t *testing.T) {
	head := AppendSSEResponseHead(nil, [2]string{"Access-Control-Allow-Origin", "https://app.example.com"})
	const golden = "HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-store\r\n" +
		"X-Accel-Buffering: no\r\n" +
		"Access-Control-Allow-Origin: https://app.example.com\r\n" +
		"\r\n"
	if string(head) != golden {
		t.Fatalf("got %q, want %q", head, golden)
	}
	stream := AppendSSEEvent(append(head, ":\n"...), []byte("1"), "", []byte("x"))
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(stream)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.ContentLength != -1 {
		t.Errorf("status %d, type %q, length %d", resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	p := newSSEParser()
	p.feed(body.Bytes())
	if want := []sseEvent{{"1", "message", "x"}}; !reflect.DeepEqual(p.events, want) {
		t.Errorf("events %q, want %q", p.events, want)
	}
}

func TestSSEAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	id := []byte("7:1234")
	data := []byte("{\"topic\":\"a.b\",\"data\":\"line one\\nline two\"}\nsecond line")
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendSSEResponseHead(buf[:0], [2]string{"Access-Control-Allow-Origin", "*"})
		buf = AppendSSEEvent(buf, id, "push", data)
		buf = AppendSSEComment(buf, "keep-alive")
		buf = AppendSSERetry(buf, 3000)
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

// FuzzSSERoundTrip checks that any id, event type and data written by
// AppendSSEEvent read back as the reference parser sees them, fed in the
// chunks cuts gives.
func FuzzSSERoundTrip(f *testing.F) {
	f.Add([]byte("7:42"), "push", []byte("a\nb\r\nc\rd"), []byte{3, 1})
	f.Add([]byte("a\x00"), "", []byte(""), []byte{})
	f.Add([]byte(""), "e\rv", []byte("\r"), []byte{1, 0, 1})
	f.Fuzz(func(t *testing.T, id []byte, event string, data, cuts []byte) {
		stream := AppendSSEEvent(nil, []byte("base"), "", nil) // an id for an unsendable one to fall back to
		stream = AppendSSEEvent(stream, id, event, data)
		p := newSSEParser()
		for _, piece := range rqPieces(stream, cuts) {
			p.feed(piece)
		}
		wantID := "base"
		if len(id) > 0 && !bytes.ContainsAny(id, "\r\n\x00") {
			wantID = string(id)
		}
		wantType := strings.NewReplacer("\r", "", "\n", "").Replace(event)
		if wantType == "" {
			wantType = "message"
		}
		want := []sseEvent{{"base", "message", ""}, {wantID, wantType, sseNormalize(string(data))}}
		if !reflect.DeepEqual(p.events, want) {
			t.Fatalf("stream %q: events %q, want %q", stream, p.events, want)
		}
	})
}

func BenchmarkAppendSSEEvent(b *testing.B) {
	buf := make([]byte, 0, 512)
	id := []byte("7:1234")
	data := []byte(`{"topic":"orders.eu","seq":1234,"data":{"id":"o-1","qty":3,"price":"12.50"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = AppendSSEEvent(buf[:0], id, "", data)
	}
}
