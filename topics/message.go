package topics

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"
)

// MaxFormats is the number of wire formats a process may register.
const MaxFormats = 16

// Format is one wire encoding of pushes: the v1 WebSocket text frame, a
// compressed frame, an SSE event, an Engine.IO packet. Transports register
// theirs once (NewFormat) and name it to every Message they deliver; topics
// itself knows none of them.
type Format struct {
	// Immutable after NewFormat.
	name   string
	id     int
	encode Encoder

	built atomic.Int64 // encodings made, for Stats and tests
}

// Encoder appends m's encoding in one format to dst and returns the
// extended buffer and the offset at which the encoding starts in it (an
// encoder may reserve room in front, to write a header backwards once it
// knows the length). It runs once per message per format that has a
// subscriber, on whichever goroutine asks first, and must be safe for
// concurrent use (pure, in practice).
type Encoder func(dst []byte, m *Message) (b []byte, start int)

var formatRegistry struct {
	mu   sync.Mutex
	all  []*Format
	byID [MaxFormats]atomic.Pointer[Format] // byID[i] has ID i+1; read without the lock
}

// NewFormat registers a wire format. Call it once per format, typically
// from a package-level variable of the transport that owns the format; it
// panics past MaxFormats. Any goroutine.
func NewFormat(name string, enc Encoder) *Format {
	formatRegistry.mu.Lock()
	defer formatRegistry.mu.Unlock()
	if len(formatRegistry.all) == MaxFormats {
		panic(fmt.Sprintf("topics: more than %d formats (registering %q)", MaxFormats, name))
	}
	f := &Format{name: name, id: len(formatRegistry.all), encode: enc}
	formatRegistry.all = append(formatRegistry.all, f)
	formatRegistry.byID[f.id].Store(f)
	return f
}

// ID returns the format's registration number, 1 to MaxFormats, so that a
// subscriber can keep its format in one byte (0 meaning none). Any
// goroutine.
func (f *Format) ID() uint8 { return uint8(f.id + 1) }

// Name returns the name the format was registered with. Any goroutine.
func (f *Format) Name() string { return f.name }

// Encodings returns how many messages have been encoded in this format
// since the process started. Any goroutine.
func (f *Format) Encodings() int64 { return f.built.Load() }

// Formats returns every registered format, in registration order. Any
// goroutine.
func Formats() []*Format {
	formatRegistry.mu.Lock()
	defer formatRegistry.mu.Unlock()
	return append([]*Format(nil), formatRegistry.all...)
}

// Message is one published message as this node received it, shared by
// every local subscriber on every event loop. Its encodings are built
// lazily, once per format that some subscriber asks for, and the same bytes
// then go to every subscriber of that format.
//
// A Message is reference-counted: the goroutine that dispatches it holds
// one reference, each shard queue one more, and a Subscriber that keeps it
// past its Loop's Flush must Retain it. The last Release returns its
// buffers to the Hub's pools, after which it must not be used.
type Message struct {
	refs atomic.Int32

	// Written by the dispatching goroutine before the first hand-off,
	// then read-only until the last Release.
	hub     *Hub
	topic   string
	seq     uint64
	offset  uint64
	epoch   string
	data    []byte
	arrived time.Time
	stored  time.Time // when the bus stored it (durable topics), for the cache's TTL

	// mu serializes building encodings. enc[i] is written under mu before
	// bit i of built is set, and never again until the last Release, so
	// a reader that sees the bit may read enc[i] without the lock.
	mu    sync.Mutex
	built atomic.Uint32
	enc   [MaxFormats]encoding
}

// encoding is one built format: buf.B[start:].
type encoding struct {
	buf   *bytebufferpool.ByteBuffer
	start int
}

// Topic returns the topic the message was published to. Safe for
// concurrent use, like every accessor of a Message held by the caller.
func (m *Message) Topic() string { return m.topic }

// Seq returns the message's sequence number: per topic and per node, it
// counts from 1 since this node's interest in the topic began (see
// Shard.Subscribe). A message of a durable topic that this node read from
// the history rather than received live (a replay) has seq 0.
func (m *Message) Seq() uint64 { return m.seq }

// Offset returns the message's position in its topic's history, or 0 on
// a topic without history.
func (m *Message) Offset() uint64 { return m.offset }

// Epoch names the history Offset belongs to; "" on a topic without
// history.
func (m *Message) Epoch() string { return m.epoch }

// Data returns the publisher's payload. It must not be modified.
func (m *Message) Data() []byte { return m.data }

// Bytes returns the message encoded in format f, building the encoding if
// no one has asked for it yet. The slice is shared by every subscriber of
// f, must not be modified, and is valid until the caller's reference is
// released. Safe for concurrent use; concurrent first calls for one format
// build it once.
func (m *Message) Bytes(f *Format) []byte {
	if m.built.Load()&(1<<f.id) == 0 {
		m.build(f)
	}
	e := &m.enc[f.id]
	return e.buf.B[e.start:]
}

// BytesOf is Bytes for the format whose ID is id (Format.ID). It panics
// for an ID no format has.
func (m *Message) BytesOf(id uint8) []byte {
	return m.Bytes(formatRegistry.byID[id-1].Load())
}

func (m *Message) build(f *Format) {
	bit := uint32(1) << f.id
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.built.Load()&bit != 0 {
		return
	}
	b := m.hub.bufs.Get()
	var start int
	b.B, start = f.encode(b.B[:0], m)
	m.enc[f.id] = encoding{buf: b, start: start}
	m.built.Store(m.built.Load() | bit) // only under mu: no update is lost
	f.built.Add(1)
}

// Retain adds a reference, to keep m past the Flush that follows its
// delivery. Safe for concurrent use; the caller must already hold a
// reference (for a Subscriber: be inside Deliver).
func (m *Message) Retain() {
	if m.refs.Add(1) <= 1 {
		panic("topics: Retain of a released Message")
	}
}

// Release drops a reference. The last one returns the encodings' buffers
// to the pool. Safe for concurrent use; each Retain (and the delivery
// reference the Subscriber does not own) is matched by exactly one
// Release.
func (m *Message) Release() {
	n := m.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("topics: Message released more often than retained")
	}
	h := m.hub
	for built := m.built.Load(); built != 0; built &= built - 1 {
		i := bits.TrailingZeros32(built)
		h.bufs.Put(m.enc[i].buf)
		m.enc[i] = encoding{}
	}
	m.built.Store(0)
	m.topic, m.seq, m.offset, m.epoch, m.data, m.arrived, m.stored = "", 0, 0, "", nil, time.Time{}, time.Time{}
	h.messagesLive.Add(-1)
	h.messages.Put(m)
}

// newMessage returns a message holding one reference, the caller's. data
// becomes the message's: the caller must not touch it afterwards. Safe for
// concurrent use.
func (h *Hub) newMessage(topic string, seq uint64, data []byte, offset uint64, epoch string) *Message {
	m := h.messages.Get().(*Message)
	m.hub, m.topic, m.seq, m.data, m.offset, m.epoch = h, topic, seq, data, offset, epoch
	m.arrived = time.Now()
	m.refs.Store(1)
	h.messagesLive.Add(1)
	return m
}
