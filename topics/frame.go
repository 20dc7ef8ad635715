package topics

import (
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"

	"github.com/pushd/pushd/codec"
)

// maxHeaderLen is the longest server frame header: 2 bytes plus a 64-bit
// extended payload length, and no masking key because a server never masks
// (RFC 6455 §5.1, §5.2).
const maxHeaderLen = 10

// headerRoom is appended in front of every payload and later overwritten by
// the real header, so the payload never moves.
var headerRoom [maxHeaderLen]byte

// Frame is one push message encoded once as a complete WebSocket text frame
// (RFC 6455 §5.2: FIN set, opcode 0x1, unmasked) and shared by every local
// subscriber of the message. It is reference-counted: the worker that
// encodes it holds one reference, each shard queue one more, and a
// Subscriber that keeps it past its Loop's Flush must Retain it. The last
// Release returns the buffer to the Hub's pool, after which Bytes must not be
// used.
type Frame struct {
	refs atomic.Int32

	// Written by the encoding worker before the first hand-off, then
	// read-only until the last Release.
	hub   *Hub
	buf   *bytebufferpool.ByteBuffer
	start int // buf.B[start:] is the frame
	topic string
	seq   uint64
}

// Bytes returns the whole WebSocket frame, header and payload. The slice is
// valid until the caller's reference is released and must not be modified:
// every subscriber of the message shares it. Safe for concurrent use.
func (f *Frame) Bytes() []byte { return f.buf.B[f.start:] }

// Topic returns the topic the message was published to. Safe for concurrent
// use.
func (f *Frame) Topic() string { return f.topic }

// Seq returns the message's sequence number: per topic and per node, it
// counts from 1 since this node's interest in the topic began (see
// Shard.Subscribe). Safe for concurrent use.
func (f *Frame) Seq() uint64 { return f.seq }

// Retain adds a reference, to keep f past the Flush that follows its
// delivery. Safe for concurrent use; the caller must already hold a
// reference (for a Subscriber: be inside Deliver).
func (f *Frame) Retain() {
	if f.refs.Add(1) <= 1 {
		panic("topics: Retain of a released Frame")
	}
}

// Release drops a reference. The last one returns the buffer to the pool.
// Safe for concurrent use; each Retain (and the delivery reference the
// Subscriber does not own) is matched by exactly one Release.
func (f *Frame) Release() {
	n := f.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("topics: Frame released more often than retained")
	}
	h := f.hub
	h.bufs.Put(f.buf)
	f.buf, f.start, f.topic, f.seq = nil, 0, "", 0
	h.framesLive.Add(-1)
	h.frames.Put(f)
}

// newFrame encodes the push {"type":"message","topic":…,"seq":…,"data":…}
// as one text frame and returns it holding one reference, the caller's.
// The payload is appended after maxHeaderLen reserved bytes and the header
// is then written right in front of it, so the frame is built in place with
// no copy and, in steady state, no allocation. Safe for concurrent use.
func (h *Hub) newFrame(topic string, seq uint64, data []byte) *Frame {
	b := h.bufs.Get()
	b.B = append(b.B[:0], headerRoom[:]...)
	b.B = codec.AppendPush(b.B, topic, seq, data)
	start := codec.PutFrameHeader(b.B[:maxHeaderLen], ws.OpText, true, len(b.B)-maxHeaderLen)

	f := h.frames.Get().(*Frame)
	f.hub, f.buf, f.start, f.topic, f.seq = h, b, start, topic, seq
	f.refs.Store(1)
	h.framesLive.Add(1)
	return f
}
