package topics

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
)

// TestFrameEncoding checks a Message's encoding in the v1 WebSocket format,
// built in place (codec.AppendFrameRoom, FinishFrame), against the
// straightforward one (codec.AppendFrame around codec.AppendPush) on both
// sides of each payload-length boundary of RFC 6455 §5.2 (125/126 and
// 65535/65536 bytes).
func TestFrameEncoding(t *testing.T) {
	ns := startNATS(t, -1)
	h := newHub(t, connect(t, ns), testConfig{})
	const topic = "enc.t"
	overhead := len(codec.AppendPush(nil, topic, 7, []byte(`""`))) - 2 // JSON around a string's quotes
	tests := []struct {
		name       string
		payloadLen int
		headerLen  int
	}{
		{"tiny", overhead + 2, 2},
		{"125", 125, 2},
		{"126", 126, 4},
		{"65535", 65535, 4},
		{"65536", 65536, 10},
		{"1MiB", 1 << 20, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(`"` + strings.Repeat("x", tt.payloadLen-overhead-2) + `"`)
			payload := codec.AppendPush(nil, topic, 7, data)
			if len(payload) != tt.payloadLen {
				t.Fatalf("test setup: payload is %d bytes, want %d", len(payload), tt.payloadLen)
			}
			m := h.newMessage(topic, 7, data, 0, "")
			defer m.Release()
			want := codec.AppendFrame(nil, ws.OpText, true, payload)
			if got := m.Bytes(pushFormat); !bytes.Equal(got, want) {
				t.Fatalf("frame differs from AppendFrame: got %d bytes, header % x; want %d bytes, header % x",
					len(got), got[:min(len(got), 10)], len(want), want[:10])
			}
			if got := len(m.Bytes(pushFormat)) - len(payload); got != tt.headerLen {
				t.Errorf("header is %d bytes, want %d", got, tt.headerLen)
			}
			if p := decodeFrame(t, m.Bytes(pushFormat)); p.Seq != 7 || p.Topic != topic || m.Seq() != 7 || m.Topic() != topic {
				t.Errorf("decoded seq %d topic %q; Message says %d %q", p.Seq, p.Topic, m.Seq(), m.Topic())
			}
		})
	}
	if live := h.Stats().MessagesLive; live != 0 {
		t.Errorf("MessagesLive = %d after releasing every message", live)
	}
}

func TestMessageRefcount(t *testing.T) {
	ns := startNATS(t, -1)
	h := newHub(t, connect(t, ns), testConfig{})
	mustPanic := func(t *testing.T, what string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		fn()
	}
	for _, extra := range []int{0, 1, 5} {
		t.Run(fmt.Sprintf("%d extra references", extra), func(t *testing.T) {
			f := h.newMessage("ref", 1, []byte("1"), 0, "")
			f.Bytes(pushFormat) // an encoding to return to the pool
			for range extra {
				f.Retain()
			}
			for i := range extra {
				f.Release()
				if live := h.Stats().MessagesLive; live != 1 {
					t.Fatalf("after %d of %d releases: MessagesLive = %d, want 1", i+1, extra+1, live)
				}
			}
			f.Release()
			if live := h.Stats().MessagesLive; live != 0 {
				t.Fatalf("after the last release: MessagesLive = %d, want 0", live)
			}
			mustPanic(t, "Release of a released message", f.Release)
			f.refs.Store(0) // undo the failed Release so Retain's own check runs
			mustPanic(t, "Retain of a released message", f.Retain)
		})
	}
}

// countingFormat is a second wire format whose encoder counts its calls.
var (
	countingCalls  atomic.Int64
	countingFormat = NewFormat("test-counting", func(dst []byte, m *Message) ([]byte, int) {
		countingCalls.Add(1)
		return append(append(dst, "count:"...), m.Data()...), len("count:")
	})
	// unusedFormat is registered but asked for by no subscriber.
	unusedCalls atomic.Int64
	_           = NewFormat("test-unused", func(dst []byte, m *Message) ([]byte, int) {
		unusedCalls.Add(1)
		return dst, len(dst)
	})
)

// formatRecorder asks for countingFormat and checks the shared bytes.
type formatRecorder struct {
	loop *testLoop
	tb   testing.TB
	seen atomic.Int64
	prev []byte // owned by the loop goroutine: the bytes of the last message seen
}

func (r *formatRecorder) Deliver(m *Message) {
	b := m.Bytes(countingFormat)
	if want := string(m.Data()); string(b) != want {
		r.tb.Errorf("countingFormat bytes %q, want %q", b, want)
	}
	r.prev = b
	r.seen.Add(1)
}

// A second format is encoded once per message, however many subscribers of
// it there are on however many loops, and the subscribers of each format
// share one buffer; a format nobody asks for is never encoded.
func TestEncodeOncePerFormat(t *testing.T) {
	ns := startNATS(t, -1)
	nc := connect(t, ns)
	h := newHub(t, nc, testConfig{})
	loops := []*testLoop{newTestLoop(t), newTestLoop(t), newTestLoop(t)}
	var frs []*formatRecorder
	var recs []*recorder
	for _, l := range loops {
		s := h.NewShard(l)
		for range 7 {
			fr := &formatRecorder{loop: l, tb: t}
			l.do(t, func() {
				if _, err := s.Subscribe("fmt.once", fr); err != nil {
					t.Errorf("Subscribe: %v", err)
				}
			})
			frs = append(frs, fr)
		}
		r := &recorder{loop: l, tb: t}
		subscribe(t, s, r, "fmt.once")
		recs = append(recs, r)
	}
	flush(t, nc)
	calls0, unused0, v1Before := countingCalls.Load(), unusedCalls.Load(), pushFormat.Encodings()
	const n = 50
	for i := range n {
		if err := h.Publish("fmt.once", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, fr := range frs {
		waitFor(t, "deliveries", func() bool { return fr.seen.Load() == n })
	}
	for _, r := range recs {
		waitFor(t, "v1 deliveries", func() bool { return len(r.received(t)) == n })
	}
	if got := countingCalls.Load() - calls0; got != n {
		t.Errorf("counting encoder ran %d times for %d messages to %d subscribers on %d loops, want %d",
			got, n, len(frs), len(loops), n)
	}
	if got := countingFormat.Encodings(); got < n {
		t.Errorf("countingFormat.Encodings() = %d, want ≥ %d", got, n)
	}
	if got := pushFormat.Encodings() - v1Before; got != n {
		t.Errorf("v1 format encoded %d times, want %d", got, n)
	}
	if got := unusedCalls.Load() - unused0; got != 0 {
		t.Errorf("a format no subscriber asked for was encoded %d times", got)
	}
	// Subscribers of one format on one loop got the very same bytes.
	for i := 0; i < len(frs); i += 7 {
		l := frs[i].loop
		l.do(t, func() {
			for _, fr := range frs[i+1 : i+7] {
				if &fr.prev[0] != &frs[i].prev[0] {
					t.Errorf("two subscribers of one format got different buffers")
				}
			}
		})
	}
	waitIdle(t, h)
}

// Concurrent first calls of Bytes for one format build it once.
func TestBytesConcurrentBuild(t *testing.T) {
	ns := startNATS(t, -1)
	h := newHub(t, connect(t, ns), testConfig{})
	before := countingCalls.Load()
	const rounds = 200
	for range rounds {
		m := h.newMessage("race", 1, []byte("x"), 0, "")
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got := string(m.Bytes(countingFormat)); got != "x" {
					t.Errorf("Bytes = %q", got)
				}
			}()
		}
		wg.Wait()
		m.Release()
	}
	if got := countingCalls.Load() - before; got != rounds {
		t.Errorf("encoder ran %d times for %d messages", got, rounds)
	}
}
