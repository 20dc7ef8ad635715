package topics

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
)

// TestFrameEncoding checks the in-place encoding against the straightforward
// one (codec.AppendFrame around codec.AppendPush) on both sides of each
// payload-length boundary of RFC 6455 §5.2 (125/126 and 65535/65536 bytes).
func TestFrameEncoding(t *testing.T) {
	ns := startNATS(t, -1)
	h := newHub(t, connect(t, ns), Config{})
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
			f := h.newFrame(topic, 7, data)
			defer f.Release()
			want := codec.AppendFrame(nil, ws.OpText, true, payload)
			if got := f.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("frame differs from AppendFrame: got %d bytes, header % x; want %d bytes, header % x",
					len(got), got[:min(len(got), 10)], len(want), want[:10])
			}
			if got := len(f.Bytes()) - len(payload); got != tt.headerLen {
				t.Errorf("header is %d bytes, want %d", got, tt.headerLen)
			}
			if p := decodeFrame(t, f.Bytes()); p.Seq != 7 || p.Topic != topic || f.Seq() != 7 || f.Topic() != topic {
				t.Errorf("decoded seq %d topic %q; Frame says %d %q", p.Seq, p.Topic, f.Seq(), f.Topic())
			}
		})
	}
	if live := h.Stats().FramesLive; live != 0 {
		t.Errorf("FramesLive = %d after releasing every frame", live)
	}
}

func TestFrameRefcount(t *testing.T) {
	ns := startNATS(t, -1)
	h := newHub(t, connect(t, ns), Config{})
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
			f := h.newFrame("ref", 1, []byte("1"))
			for range extra {
				f.Retain()
			}
			for i := range extra {
				f.Release()
				if live := h.Stats().FramesLive; live != 1 {
					t.Fatalf("after %d of %d releases: FramesLive = %d, want 1", i+1, extra+1, live)
				}
			}
			f.Release()
			if live := h.Stats().FramesLive; live != 0 {
				t.Fatalf("after the last release: FramesLive = %d, want 0", live)
			}
			mustPanic(t, "Release of a released frame", f.Release)
			f.refs.Store(0) // undo the failed Release so Retain's own check runs
			mustPanic(t, "Retain of a released frame", f.Retain)
		})
	}
}
