package codec

import (
	"cmp"
	stdflate "compress/flate"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692): negotiation, compress-once for pushes, and
// capped inflation of client messages.
//
// pushd answers every accepted offer with server_no_context_takeover and
// client_no_context_takeover, so each message in either direction is a
// DEFLATE stream of its own: a push is compressed once and the same bytes go
// to every subscriber that negotiated the extension, and no connection keeps
// compression or decompression state between messages.

// Close errors of permessage-deflate. Shared values, like those in close.go.
var (
	// ErrBadDeflate is a compressed message that does not inflate: not valid
	// DEFLATE data (RFC 1951), or a back-reference before the start of the
	// message, which is what a client that ignores client_no_context_takeover
	// sends. The code is 1007, not 1002: the frames are well formed and the
	// extension was used as negotiated; what is wrong is the payload data,
	// which RFC 6455 §7.4.1 gives 1007 for ("data within a message that was
	// not consistent with the type of the message"), as invalid UTF-8 in a
	// text message is. npm ws answers the same.
	ErrBadDeflate = &CloseError{StatusInvalidPayload, "invalid compressed data"}
	// ErrCompressedBit is RSV1 on a control frame or a continuation frame:
	// RFC 7692 §6.1 allows the "Per-Message Compressed" bit only on the first
	// frame of a data message. A framing error, so 1002 (§7.4.1).
	ErrCompressedBit = &CloseError{StatusProtocolError, "RSV1 on a control or continuation frame"}
)

// bitRsv1 is RSV1 in header byte 0, the "Per-Message Compressed" bit
// (RFC 7692 §6); rsv1 is the same bit in ws.Header.Rsv, which holds
// RSV1..RSV3 as its three low bits.
const (
	bitRsv1 = 0x40
	rsv1    = 0x4
)

// deflateTail is what a receiver appends to a compressed message before
// inflating it: the 00 00 ff ff that the sender removed (RFC 7692 §7.2.2),
// then an empty final stored block (01 00 00 ff ff) so that the decoder ends
// with io.EOF at the end of the message instead of waiting for another block
// header; nats-server and gobwas/wsflate append the same nine bytes. A message
// that already ends with a final block (§7.2.3.4) stops the decoder before
// the tail, which is then ignored.
var deflateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// syncMarker is the empty stored block a sync flush ends with, removed from
// every compressed message (RFC 7692 §7.2.1).
const syncMarker = "\x00\x00\xff\xff"

// DeflateLevel is the klauspost/compress/flate level a Deflater uses,
// chosen with BenchmarkDeflateLevels on pushd's push frames (klauspost
// v1.20.3, 2 vCPU EPYC, 2026-12-07): on a 2 KB order-book push, levels 1, 2,
// 3, 5 and 6 give 657, 642, 626, 614 and 604 bytes in about 9.5, 9.7, 10.3,
// 12.6 and 12.5 µs, level 9 577 bytes in 43 µs, the standard library's level
// 1 661 bytes in 15 µs. A push is compressed once and its bytes are written
// to every subscriber, so level 3's 5% fewer bytes than level 1 are worth
// its 0.8 µs once per push; beyond it the CPU grows faster than the savings.
// Its encoder holds about 0.9 MB (level 1: 0.5 MB).
const DeflateLevel = 3

// DeflateMinSize is the size below which a push should be sent
// uncompressed. Under about 128 bytes klauspost's encoders emit a stored
// block, which is larger than the message (measured: a 112-byte push gives
// 118 bytes at levels 1–6; 143 bytes give 117), and every compressing
// subscriber would pay for inflating it. It is advice for the caller's
// policy; Compress compresses anything, and a caller may also send the
// plain form whenever the compressed one is not shorter.
const DeflateMinSize = 128

// DeflateNegotiation is the outcome of NegotiateDeflate.
type DeflateNegotiation struct {
	// Accepted reports whether an offer was accepted; if not, the
	// connection runs without the extension and Response is empty.
	Accepted bool
	// Response is the Sec-WebSocket-Extensions value to answer with.
	Response string
	// ServerMaxWindowBits is the base-2 logarithm of the largest LZ77
	// window the client accepts for messages from the server: 15 (32 KiB)
	// unless the accepted offer carried server_max_window_bits. pushd
	// compresses each push once with a 32 KiB window, so a push longer than
	// the window must go uncompressed to this client (see Compressible).
	ServerMaxWindowBits int
}

// Compressible reports whether a message of n uncompressed bytes may be sent
// compressed, as Deflater.Compress makes it, on a connection with this
// negotiation. Without context takeover a DEFLATE back-reference cannot reach
// before the start of the message, so a message no longer than the window
// never refers further back than the window, whatever window the encoder
// used (RFC 7692 §7.1.2.1 limits the distance, not the encoder).
//
// Compressible is pure.
func (d DeflateNegotiation) Compressible(n int) bool {
	return d.Accepted && n <= 1<<d.ServerMaxWindowBits
}

// deflateResponses holds the response for each window: index 0 for an offer
// without server_max_window_bits, 8..15 for one with it. Precomputed so that
// NegotiateDeflate does not allocate.
var deflateResponses = func() (r [16]string) {
	const base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	r[0] = base
	for bits := 8; bits <= 15; bits++ {
		r[bits] = base + "; server_max_window_bits=" + strconv.Itoa(bits)
	}
	return r
}()

// NegotiateDeflate picks the first permessage-deflate offer that pushd can
// accept from the client's Sec-WebSocket-Extensions header values, in the
// order given (RFC 7692 §5: the client lists offers by preference), and
// builds the answer.
//
// Several header values are read as one list joined by commas (RFC 7230
// §3.2.2). The syntax is RFC 6455 §9.1: comma-separated extensions, each a
// token followed by ";"-separated parameters, each a token with an optional
// "=" and a token or quoted-string value, optional whitespace around the
// separators, empty list elements ignored (RFC 7230 §7). Names are compared
// without regard to ASCII case. Other extensions are skipped.
//
// An offer is declined, and the next one tried, if it has a parameter RFC
// 7692 does not define for offers, a parameter twice, a value where none is
// allowed, or a window size that is not a decimal 8..15 without leading
// zeros (after unescaping a quoted value, §9.1), or if it is not well formed
// (§7: a server MUST decline such offers). Every well-formed offer is
// otherwise acceptable:
//
//   - server_no_context_takeover and client_no_context_takeover: pushd uses
//     both anyway (§7.1.1.1, §7.1.1.2).
//   - server_max_window_bits=N: answered with the same N (§7.1.2.1: the
//     server accepts by answering a value ≤ N); the caller then compresses
//     only messages of at most 2^N bytes for this client (Compressible).
//   - client_max_window_bits, with or without a value: a hint that the
//     client can limit its window; pushd does not answer it, which means
//     the client may use 32 KiB (§7.1.2.2), as its inflater always allows.
//     Answering it without a value in the offer is forbidden (§7.1.2.2),
//     and Chromium fails the connection if it does.
//
// The answer is always "permessage-deflate; server_no_context_takeover;
// client_no_context_takeover", plus "; server_max_window_bits=N" when the
// offer had it. A server may add both no_context_takeover parameters
// unasked (§7.1.1.1, §7.1.1.2), and a client MUST support
// client_no_context_takeover (§7.1.1.2). A client that rejects the answer
// anyway must fail the connection (§5), which the server sees as a close
// right after the 101; one that accepts it but keeps its context sends
// back-references the inflater rejects with ErrBadDeflate.
//
// NegotiateDeflate is pure and does not allocate for a single header value.
func NegotiateDeflate(values []string) DeflateNegotiation {
	var list string
	switch len(values) {
	case 0:
		return DeflateNegotiation{}
	case 1:
		list = values[0]
	default:
		list = strings.Join(values, ",")
	}
	for list != "" {
		var elem string
		elem, list = nextExtension(list)
		if bits, ok := parseDeflateOffer(elem); ok {
			return DeflateNegotiation{Accepted: true, Response: deflateResponses[bits], ServerMaxWindowBits: cmp.Or(bits, 15)}
		}
	}
	return DeflateNegotiation{}
}

// nextExtension splits list at its first comma outside a quoted-string
// (RFC 7230 §3.2.6; a backslash inside one escapes the next byte) and
// returns the element before it and the rest after it. An unterminated
// quoted-string runs to the end of the list.
func nextExtension(list string) (elem, rest string) {
	quoted := false
	for i := 0; i < len(list); i++ {
		switch c := list[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return list[:i], list[i+1:]
		}
	}
	return list, ""
}

// parseDeflateOffer parses one list element and reports whether it is a
// permessage-deflate offer pushd accepts (see NegotiateDeflate), with its
// server_max_window_bits (0 if absent). Other extensions, empty elements and
// malformed elements give false.
func parseDeflateOffer(elem string) (serverBits int, ok bool) {
	p := extParser{s: elem}
	p.skipOWS()
	if !asciiEqualFold(p.token(), "permessage-deflate") {
		return 0, false
	}
	var seen [4]bool // by deflate parameter index
	for {
		p.skipOWS()
		if p.done() {
			return serverBits, true
		}
		if p.s[p.pos] != ';' {
			return 0, false
		}
		p.pos++
		p.skipOWS()
		k := deflateParamOf(p.token())
		if k < 0 || seen[k] {
			return 0, false // §7: a parameter not defined for offers, or repeated
		}
		seen[k] = true
		value, hasValue, vok := p.paramValue()
		if !vok {
			return 0, false
		}
		switch k {
		case paramServerNoContext, paramClientNoContext:
			if hasValue {
				return 0, false
			}
		case paramServerMaxWindow:
			if serverBits = windowBits(value); serverBits == 0 {
				return 0, false // a value is required
			}
		case paramClientMaxWindow:
			if hasValue && windowBits(value) == 0 {
				return 0, false
			}
		}
	}
}

// extParser scans one extension element (RFC 6455 §9.1).
type extParser struct {
	s   string
	pos int
	buf [3]byte // the start of a parameter value (see paramValue)
}

func (p *extParser) done() bool { return p.pos >= len(p.s) }

// skipOWS skips spaces and tabs (RFC 7230 §3.2.3).
func (p *extParser) skipOWS() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

// token consumes a token and returns it, "" if none starts here.
func (p *extParser) token() string {
	start := p.pos
	for p.pos < len(p.s) && isTokenChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// paramValue consumes an optional "=" and value after a parameter name: a
// token, or a quoted-string whose unescaped content is a token (§9.1). It
// returns at most the value's first three bytes (no value pushd accepts is
// longer than two, so a cut value still fails windowBits), whether there was
// a value, and false if the syntax is broken.
func (p *extParser) paramValue() (v []byte, has, ok bool) {
	p.skipOWS()
	if p.done() || p.s[p.pos] != '=' {
		return nil, false, true
	}
	p.pos++
	p.skipOWS()
	if p.done() || p.s[p.pos] != '"' {
		tok := p.token()
		n := copy(p.buf[:], tok)
		return p.buf[:n], true, tok != ""
	}
	p.pos++ // opening DQUOTE
	n := 0  // unescaped length so far
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		if c == '"' {
			return p.buf[:min(n, len(p.buf))], true, n > 0
		}
		if c == '\\' && p.pos < len(p.s) {
			c = p.s[p.pos]
			p.pos++
		}
		if !isTokenChar(c) {
			return nil, true, false // §9.1: the unescaped value must be a token
		}
		if n < len(p.buf) {
			p.buf[n] = c
		}
		n++
	}
	return nil, true, false // unterminated
}

// The parameters of permessage-deflate (RFC 7692 §7), as indexes.
const (
	paramServerNoContext = iota
	paramClientNoContext
	paramServerMaxWindow
	paramClientMaxWindow
)

// deflateParamOf returns the index of a permessage-deflate parameter name,
// or -1 for a name §7 does not define.
func deflateParamOf(name string) int {
	switch {
	case asciiEqualFold(name, "server_no_context_takeover"):
		return paramServerNoContext
	case asciiEqualFold(name, "client_no_context_takeover"):
		return paramClientNoContext
	case asciiEqualFold(name, "server_max_window_bits"):
		return paramServerMaxWindow
	case asciiEqualFold(name, "client_max_window_bits"):
		return paramClientMaxWindow
	}
	return -1
}

// windowBits parses a window size value: a decimal 8..15 without leading
// zeros (RFC 7692 §7.1.2.1, §7.1.2.2). It returns 0 for anything else.
func windowBits(v []byte) int {
	switch {
	case len(v) == 1 && (v[0] == '8' || v[0] == '9'):
		return int(v[0] - '0')
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + int(v[1]-'0')
	}
	return 0
}

// asciiEqualFold reports whether s equals the lower-case ASCII string lower,
// ignoring ASCII case in s (unlike strings.EqualFold, no Unicode folding).
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// CheckClientHeaderDeflate is CheckClientHeader for a connection that
// negotiated permessage-deflate: RSV1, the "Per-Message Compressed" bit, is
// allowed on a text or binary frame, which starts a message (RFC 7692 §6.1),
// and is ErrCompressedBit on a control or continuation frame. RSV2 and RSV3
// stay ErrReservedBits. Every other rule and its order are CheckClientHeader's.
//
// CheckClientHeaderDeflate is pure and never allocates.
func CheckClientHeaderDeflate(h ws.Header, inMessage bool) error {
	compressed := h.Rsv&rsv1 != 0
	h.Rsv &^= rsv1
	if err := CheckClientHeader(h, inMessage); err != nil {
		return err
	}
	if compressed && h.OpCode != ws.OpText && h.OpCode != ws.OpBinary {
		return ErrCompressedBit
	}
	return nil
}

// AppendCompressedFrameHeader is AppendFrameHeader with RSV1 set: the header
// of the first (or only) frame of a message compressed with
// permessage-deflate. Continuation frames of the message carry RSV1 = 0
// (RFC 7692 §6.1), so write them with AppendFrameHeader; n is the length of
// this frame's compressed payload.
//
// AppendCompressedFrameHeader is pure; it does not allocate when dst has 10
// bytes of spare capacity.
func AppendCompressedFrameHeader(dst []byte, op ws.OpCode, fin bool, n int) []byte {
	start := len(dst)
	dst = AppendFrameHeader(dst, op, fin, n)
	dst[start] |= bitRsv1
	return dst
}

// PutCompressedFrameHeader is PutFrameHeader with RSV1 set (see
// AppendCompressedFrameHeader): it writes the header into the end of dst and
// returns where it starts, so a caller can reserve 10 bytes, append the
// compressed payload after them with Deflater.Compress, and put the header in
// front without moving the payload:
//
//	buf = append(buf[:0], make([]byte, 10)...)
//	buf = deflater.Compress(buf, push)
//	start := codec.PutCompressedFrameHeader(buf[:10], ws.OpText, true, len(buf)-10)
//	frame := buf[start:]
//
// It panics if len(dst) < ServerHeaderLen(n) or n is negative.
//
// PutCompressedFrameHeader is pure and never allocates.
func PutCompressedFrameHeader(dst []byte, op ws.OpCode, fin bool, n int) (start int) {
	start = PutFrameHeader(dst, op, fin, n)
	dst[start] |= bitRsv1
	return start
}

// Deflater compresses whole messages for permessage-deflate with no context
// takeover (RFC 7692 §7.1.1.1): each call is a DEFLATE stream of its own, so
// the result can be sent to every client that negotiated the extension,
// whatever it received before. It holds a klauspost/compress/flate encoder at
// DeflateLevel (about 0.9 MB): keep one per goroutine that compresses (a
// topics worker, say), or pool them.
//
// A Deflater is not safe for concurrent use: one goroutine at a time.
type Deflater struct {
	w   *flate.Writer
	out appendWriter
}

// appendWriter is an io.Writer that appends to buf.
type appendWriter struct{ buf []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.buf = append(a.buf, p...)
	return len(p), nil
}

// NewDeflater returns a Deflater. It allocates the encoder's tables once;
// Compress then allocates nothing. Any goroutine may call it.
func NewDeflater() *Deflater {
	d := &Deflater{}
	w, err := flate.NewWriter(&d.out, DeflateLevel)
	if err != nil {
		panic("codec: flate.NewWriter: " + err.Error()) // only for an invalid level
	}
	d.w = w
	return d
}

// Compress appends the permessage-deflate payload of the message src to dst
// and returns the extended slice: src compressed as a fresh DEFLATE stream,
// ended by a sync flush whose trailing 00 00 ff ff is removed (RFC 7692
// §7.2.1). Send it with RSV1 set on the first frame
// (AppendCompressedFrameHeader). The output is at most a few bytes longer
// than src when src does not compress (stored blocks); whether to send the
// compressed or the plain form is the caller's choice per message (§6: a
// sender may leave any message uncompressed).
//
// Compress does not allocate when dst has room for the output. It must not
// be called concurrently on the same Deflater.
func (d *Deflater) Compress(dst, src []byte) []byte {
	d.out.buf = dst
	d.w.Reset(&d.out)
	// Writes to an appendWriter cannot fail, and neither can the encoder
	// then: Write and Flush only return the underlying writer's errors.
	_, _ = d.w.Write(src)
	_ = d.w.Flush()
	out := d.out.buf
	d.out.buf = nil // do not keep the caller's buffer alive
	if len(out) >= len(dst)+len(syncMarker) && string(out[len(out)-len(syncMarker):]) == syncMarker {
		out = out[:len(out)-len(syncMarker)]
	}
	return out
}

// Inflater inflates compressed client messages with a cap on the output. It
// keeps no state between messages: every call starts a fresh DEFLATE stream,
// as client_no_context_takeover (which pushd always answers) obliges the
// client to compress (RFC 7692 §7.1.1.2). So one Inflater can serve every
// connection of an event loop, and an idle connection holds nothing for
// decompression. It holds a compress/flate decoder (about 40 KB with its
// 32 KiB window): keep one per event loop, or pool them.
//
// The decoder is the standard library's, not klauspost's: klauspost v1.20.3
// keeps its Huffman tables across Reset, and a malformed message whose
// code-length tree is empty is then decoded with the previous message's
// tables (TestInflateNoStateAcrossMessages; found by FuzzInflate), so one
// connection's data would shape what another's bad message inflates to.
// compress/flate clears them. Client messages are small commands, so its
// speed is not what matters.
//
// An Inflater is not safe for concurrent use: one goroutine at a time.
type Inflater struct {
	fr  io.Reader         // compress/flate's decompressor
	rst stdflate.Resetter // the same decompressor
	src partsReader
	one [1][]byte // backs src.parts for Inflate without allocating
}

// NewInflater returns an Inflater. It allocates the decoder once; Inflate
// then allocates only to grow dst. Any goroutine may call it.
func NewInflater() *Inflater {
	f := &Inflater{}
	fr := stdflate.NewReader(&f.src)
	f.fr, f.rst = fr, fr.(stdflate.Resetter)
	return f
}

// Inflate appends the inflated form of one compressed message (its payload,
// all fragments concatenated, RSV1 having been set on its first frame) to
// dst and returns the extended slice. It appends the 00 00 ff ff the sender
// removed (RFC 7692 §7.2.2) without writing into compressed.
//
// limit bounds the inflated size: as soon as more than limit bytes come out,
// Inflate stops and returns ErrMessageTooBig (1009). It never inflates more
// than limit+1 bytes, so a deflate bomb costs at most that much of dst and the
// decoder's fixed window. Corrupt data, a truncated stream and
// back-references to a previous message give ErrBadDeflate (1007). On error
// dst is returned with its original length.
//
// Inflate does not allocate when dst has room for the output. It must not
// be called concurrently on the same Inflater.
func (f *Inflater) Inflate(dst, compressed []byte, limit int) ([]byte, error) {
	f.one[0] = compressed
	out, err := f.InflateParts(dst, f.one[:], limit)
	f.one[0] = nil
	return out, err
}

// InflateParts is Inflate for a message whose compressed payload is split
// into parts, read in order as one stream: the unmasked payloads of a
// fragmented message's frames, say, where they still lie in the connection's
// read buffer, so they need not be copied together first.
//
// Feeding a message frame by frame as frames arrive is not offered: the flate
// decoders (the standard library's and klauspost's) pull their input and
// treat running out as a sticky error, so a paused stream could not resume
// without a goroutine or a copy of the decoder state per connection, which
// is the per-connection cost permessage-deflate must not add here.
func (f *Inflater) InflateParts(dst []byte, parts [][]byte, limit int) ([]byte, error) {
	start := len(dst)
	limit = max(limit, 0)
	empty := true
	for _, p := range parts {
		empty = empty && len(p) == 0
	}
	if empty {
		// A sender following §7.2.1 sends 0x00 for an empty message; an
		// empty payload plus the tail is not DEFLATE, but it can only mean
		// an empty message, and zlib-based receivers (npm ws) read it so.
		return dst, nil
	}
	f.src.reset(parts)
	defer f.src.reset(nil) // keep no reference to the caller's bytes
	if err := f.rst.Reset(&f.src, nil); err != nil {
		return dst, ErrBadDeflate
	}
	for {
		left := limit + 1 - (len(dst) - start) // one byte past the limit proves it passed
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(left, max(cap(dst)-start, 512)))
		}
		room := dst[len(dst):cap(dst)]
		room = room[:min(len(room), left)]
		n, err := f.fr.Read(room)
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst[:start], ErrMessageTooBig
		}
		switch {
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst[:start], ErrBadDeflate
		}
	}
}

// partsReader reads parts in order, then deflateTail. It implements
// compress/flate's Reader (io.Reader and io.ByteReader) so the decoder reads
// it directly instead of wrapping it in a bufio.Reader it would allocate.
type partsReader struct {
	parts [][]byte
	cur   []byte
	tail  int // bytes of deflateTail already read
}

func (r *partsReader) reset(parts [][]byte) {
	r.parts, r.cur, r.tail = parts, nil, 0
}

// next makes cur non-empty, or reports false at the end of the parts.
func (r *partsReader) next() bool {
	for len(r.cur) == 0 {
		if len(r.parts) == 0 {
			return false
		}
		r.cur, r.parts = r.parts[0], r.parts[1:]
	}
	return true
}

// Read implements io.Reader.
func (r *partsReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.next() {
		n := copy(p, r.cur)
		r.cur = r.cur[n:]
		return n, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(p, deflateTail[r.tail:])
	r.tail += n
	return n, nil
}

// ReadByte implements io.ByteReader.
func (r *partsReader) ReadByte() (byte, error) {
	if r.next() {
		c := r.cur[0]
		r.cur = r.cur[1:]
		return c, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	c := deflateTail[r.tail]
	r.tail++
	return c, nil
}
