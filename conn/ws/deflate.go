package ws

import (
	"sync"
	"sync/atomic"

	"github.com/valyala/bytebufferpool"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics"
)

// permessage-deflate (RFC 7692), negotiated with server_no_context_takeover
// and client_no_context_takeover (codec.NegotiateDeflate), so that:
//
//   - each push is compressed once, as one more wire format (DeflateFormat),
//     and the same bytes go to every compressing subscriber on every loop;
//   - client messages are inflated with a per-loop decoder reset for each
//     message, so an idle connection keeps no compression state (its
//     negotiated window fits in a byte of padding: no extra memory);
//   - pushes under codec.DeflateMinSize, and any whose compressed form is not
//     smaller, go uncompressed: a receiver reads both.

// DeflateFormat is the v1 push as one WebSocket text frame compressed with
// permessage-deflate (RSV1 set), or the plain frame when compression would
// not make it smaller. Connections that negotiated the extension with a
// 32 KiB window take it.
var DeflateFormat = topics.NewFormat("ws-v1-deflate", func(dst []byte, m *topics.Message) ([]byte, int) {
	json := bytebufferpool.Get()
	defer bytebufferpool.Put(json)
	json.B = appendPushJSON(json.B[:0], m)
	return appendMaybeCompressed(dst, OpText, json.B, &pushDeflate)
})

// appendPushJSON appends the v1 push JSON of m: the payload of both push
// formats.
func appendPushJSON(dst []byte, m *topics.Message) []byte {
	if m.Offset() != 0 {
		// A durable topic's push carries its position in the history.
		return codec.AppendPushAt(dst, m.Topic(), m.Seq(), m.Offset(), m.Epoch(), m.Data())
	}
	return codec.AppendPush(dst, m.Topic(), m.Seq(), m.Data())
}

// DeflateStats counts bytes before and after compression. Safe for
// concurrent use.
type DeflateStats struct {
	In, Out  atomic.Int64 // message bytes given to the compressor, and frame payload bytes it produced
	Skipped  atomic.Int64 // messages sent uncompressed: under codec.DeflateMinSize, or not made smaller
	Inflated atomic.Int64 // client messages inflated
}

// pushDeflate counts pushes (each once, whatever the number of
// subscribers); replyDeflate counts per-connection frames (replies, echo).
var pushDeflate, replyDeflate DeflateStats

// CompressionStats returns the counters of compressed pushes and of
// compressed per-connection frames. Any goroutine.
func CompressionStats() (pushes, frames *DeflateStats) { return &pushDeflate, &replyDeflate }

// appendMaybeCompressed appends one final frame with opcode op carrying
// payload: compressed (RSV1) when that is worth it, plain otherwise. It
// returns the buffer and the frame's start, like a topics.Encoder.
func appendMaybeCompressed(dst []byte, op OpCode, payload []byte, st *DeflateStats) ([]byte, int) {
	at := len(dst)
	dst = codec.AppendFrameRoom(dst)
	if len(payload) >= codec.DeflateMinSize {
		d := getDeflater()
		dst = d.Compress(dst, payload)
		putDeflater(d)
		if n := len(dst) - at - codec.MaxServerHeaderLen; n < len(payload) {
			st.In.Add(int64(len(payload)))
			st.Out.Add(int64(n))
			return dst, at + codec.PutCompressedFrameHeader(dst[at:at+codec.MaxServerHeaderLen], op, true, n)
		}
		dst = dst[:at+codec.MaxServerHeaderLen]
	}
	st.Skipped.Add(1)
	dst = append(dst, payload...)
	return dst, codec.FinishFrame(dst, at, op)
}

// deflaters is a free list of compressors. A codec.Deflater holds about
// 0.9 MB, so they are kept, not dropped at every garbage collection as a
// sync.Pool would: at most one per goroutine that compresses at once (the
// event loops, and a broker worker that builds a push's encoding first).
var deflaters struct {
	mu   sync.Mutex
	free []*codec.Deflater
}

func getDeflater() *codec.Deflater {
	deflaters.mu.Lock()
	defer deflaters.mu.Unlock()
	if n := len(deflaters.free); n > 0 {
		d := deflaters.free[n-1]
		deflaters.free = deflaters.free[:n-1]
		return d
	}
	return codec.NewDeflater()
}

func putDeflater(d *codec.Deflater) {
	deflaters.mu.Lock()
	deflaters.free = append(deflaters.free, d)
	deflaters.mu.Unlock()
}
