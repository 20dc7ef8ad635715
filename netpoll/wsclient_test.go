package netpoll_test

// This file is the conformance suite's own raw-socket WebSocket client. It is
// deliberately independent of pushd's codec package: it encodes client frames
// and decodes server frames with its own few lines of code, so that a bug in
// codec cannot hide itself by being on both ends of the wire. It can also
// write what a well-behaved client never would (unmasked frames, reserved
// bits and opcodes, lying lengths, partial frames), and it writes every byte
// stream whole, split at random boundaries, or one byte at a time.

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Opcodes (RFC 6455 §5.2), spelled out here rather than taken from codec so
// that this client stays a second implementation.
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// wsGUID is the fixed GUID of the opening handshake (RFC 6455 §1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey computes Sec-WebSocket-Accept for key (RFC 6455 §4.2.2 item 5.4).
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// testKey is a valid Sec-WebSocket-Key: 16 bytes in base64 (§4.1).
const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// upgradeRequest returns a valid opening handshake for path, followed by the
// extra header lines (each "Name: value", without CRLF).
func upgradeRequest(path string, extra ...string) []byte {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\n")
	b.WriteString("Host: 127.0.0.1\r\n")
	b.WriteString("Upgrade: websocket\r\n")
	b.WriteString("Connection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + testKey + "\r\n")
	b.WriteString("Sec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// clientFrame is one frame the raw client sends. With only op and payload
// set it is a final, masked frame with the minimal length encoding; the other
// fields break the rules on purpose.
type clientFrame struct {
	op      byte
	payload []byte
	more    bool   // FIN clear: more fragments follow (§5.4)
	rsv     byte   // RSV1..RSV3 as a 3-bit value, RSV1 = 4 (§5.2)
	noMask  bool   // send unmasked, which a client must never do (§5.3)
	decl    uint64 // when non-zero, the length to declare instead of len(payload)
	form64  bool   // use the 64-bit length form whatever the length
	head    bool   // write the header only and no payload
}

// Constructors for the frames the cases use.
func textFrame(s string) clientFrame        { return clientFrame{op: opText, payload: []byte(s)} }
func binFrame(p []byte) clientFrame         { return clientFrame{op: opBinary, payload: p} }
func contFrame(s string) clientFrame        { return clientFrame{op: opCont, payload: []byte(s)} }
func pingFrame(p []byte) clientFrame        { return clientFrame{op: opPing, payload: p} }
func pongFrame(p []byte) clientFrame        { return clientFrame{op: opPong, payload: p} }
func opFrame(op byte, p string) clientFrame { return clientFrame{op: op, payload: []byte(p)} }

// closeFrame is a close frame with code and reason (§5.5.1).
func closeFrame(code int, reason string) clientFrame {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return clientFrame{op: opClose, payload: append(p, reason...)}
}

// fragment returns f with FIN cleared.
func (f clientFrame) fragment() clientFrame { f.more = true; return f }

// withRSV returns f with the reserved bits set to rsv.
func (f clientFrame) withRSV(rsv byte) clientFrame { f.rsv = rsv; return f }

// headerOnly returns f declaring n payload bytes of which none are sent.
func (f clientFrame) headerOnly(n uint64) clientFrame { f.decl, f.head = n, true; return f }

// appendTo appends the wire form of f to dst, masked with mask unless f says
// otherwise (§5.2, §5.3).
func (f clientFrame) appendTo(dst []byte, mask [4]byte) []byte {
	b0 := f.op&0x0f | (f.rsv&7)<<4
	if !f.more {
		b0 |= 0x80
	}
	var b1 byte
	if !f.noMask {
		b1 = 0x80
	}
	n := uint64(len(f.payload))
	if f.decl != 0 {
		n = f.decl
	}
	switch {
	case f.form64 || n > 0xffff:
		dst = binary.BigEndian.AppendUint64(append(dst, b0, b1|127), n)
	case n > 125:
		dst = binary.BigEndian.AppendUint16(append(dst, b0, b1|126), uint16(n))
	default:
		dst = append(dst, b0, b1|byte(n))
	}
	if !f.noMask {
		dst = append(dst, mask[:]...)
	}
	if f.head {
		return dst
	}
	start := len(dst)
	dst = append(dst, f.payload...)
	if !f.noMask {
		for i := range dst[start:] {
			dst[start+i] ^= mask[i&3]
		}
	}
	return dst
}

// encodeFrames returns the wire form of frames, each masked with a key drawn
// from rng so that the same seed gives the same bytes.
func encodeFrames(rng *rand.Rand, frames []clientFrame) []byte {
	var out []byte
	for _, f := range frames {
		var mask [4]byte
		binary.LittleEndian.PutUint32(mask[:], rng.Uint32())
		out = f.appendTo(out, mask)
	}
	return out
}

// serverFrame is one frame as read from the server, with the properties a
// server frame must have recorded rather than assumed.
type serverFrame struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool // a server must never mask (§5.1)
	minimal bool // whether the length used the minimal encoding (§5.2)
	payload []byte
}

// errLongFrame reports a server frame longer than the reader accepts.
var errLongFrame = errors.New("wsclient: server frame over the read limit")

// readServerFrame reads one frame from r. It returns io.EOF only when the
// stream ends cleanly between frames; an end inside a frame is
// io.ErrUnexpectedEOF.
func readServerFrame(r *bufio.Reader, limit int) (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return serverFrame{}, err
	}
	f := serverFrame{
		fin:    h[0]&0x80 != 0,
		rsv:    (h[0] >> 4) & 7,
		op:     h[0] & 0x0f,
		masked: h[1]&0x80 != 0,
	}
	n := uint64(h[1] & 0x7f)
	f.minimal = true
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, unexpected(err)
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
		f.minimal = n > 125
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, unexpected(err)
		}
		n = binary.BigEndian.Uint64(b[:])
		f.minimal = n > 0xffff
	}
	var mask [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return f, unexpected(err)
		}
	}
	if n > uint64(limit) {
		return f, fmt.Errorf("%w: %d bytes", errLongFrame, n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, unexpected(err)
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= mask[i&3]
		}
	}
	return f, nil
}

// unexpected turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// closePayload splits a close frame's payload into its code and reason.
// An empty payload gives code 0. ok is false for a payload of 1 byte or a
// reason that is not UTF-8 (§5.5.1), which a server must not send.
func closePayload(p []byte) (code int, reason string, ok bool) {
	switch {
	case len(p) == 0:
		return 0, "", true
	case len(p) == 1:
		return 0, "", false
	}
	code = int(binary.BigEndian.Uint16(p))
	return code, string(p[2:]), utf8.Valid(p[2:])
}

// splitMode is how a client byte stream is cut into writes.
type splitMode int

const (
	// wholeWrite writes the stream with one Write call.
	wholeWrite splitMode = iota
	// randomSplits cuts the stream at random boundaries drawn from a seeded
	// rng: mostly tiny pieces that cut headers and code points, some large.
	randomSplits
	// byteWrites writes the stream one byte per Write call. Past
	// byteWritesMax bytes (more than any 64 KiB message with its request) the
	// rest of a large stream goes in random pieces, which keeps the run time
	// bounded: a 1 MiB message byte by byte would take tens of seconds.
	byteWrites
)

// splitModes lists every mode; each case runs once per mode.
var splitModes = []splitMode{wholeWrite, randomSplits, byteWrites}

func (m splitMode) String() string {
	switch m {
	case wholeWrite:
		return "whole"
	case randomSplits:
		return "random"
	case byteWrites:
		return "bytes"
	}
	return fmt.Sprintf("splitMode(%d)", int(m))
}

// Pacing of the split writers. With TCP_NODELAY every write leaves as its
// own segment, and a server that keeps up reads it alone; one that falls
// behind reads several at once, which is a split worth testing too. A short
// pause every pauseEvery writes guarantees some reads end exactly on a write
// boundary, without paying a timer on every write (a 200 µs sleep costs
// about 2 ms on the 2-core test machine).
const (
	writePause      = 200 * time.Microsecond
	pauseEvery      = 32
	pausedWritesMax = 1024
	byteWritesMax   = 80 << 10
)

// writeStream writes b to c cut according to m. It stops at the first
// write error and returns it: a server that fails the connection half-way
// closes the socket under the writer, which is expected.
func writeStream(c net.Conn, b []byte, m splitMode, rng *rand.Rand) error {
	if m == wholeWrite {
		_, err := c.Write(b)
		return err
	}
	for writes := 1; len(b) > 0; writes++ {
		n := 1
		if m == randomSplits || writes > byteWritesMax {
			n = randomChunk(rng, len(b))
		}
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if writes%pauseEvery == 0 && writes <= pausedWritesMax {
			time.Sleep(writePause)
		}
	}
	return nil
}

// randomChunk picks the size of the next write, at most left: mostly tiny
// pieces (to cut headers and code points), sometimes medium, sometimes large.
func randomChunk(rng *rand.Rand, left int) int {
	var n int
	switch r := rng.IntN(10); {
	case r < 5:
		n = 1 + rng.IntN(8)
	case r < 8:
		n = 1 + rng.IntN(512)
	default:
		n = 1 + rng.IntN(64<<10)
	}
	return min(n, left)
}

// exchange is what the raw client observed on one connection: the handshake
// response, the server frames in order, and how the stream ended.
type exchange struct {
	status   int         // HTTP status of the handshake response (0 if none)
	header   http.Header // its header fields
	frames   []serverFrame
	end      error         // the error that ended reading: io.EOF, a reset, a timeout, ...
	closeGap time.Duration // from reading the first close frame to end (0 without one)
	writeErr error         // the writer's error, if it stopped early
	elapsed  time.Duration // from the first write to end
}

// closed reports whether the server closed the TCP connection: a clean EOF,
// or a reset, which a server that closes with unread bytes in its receive
// buffer sends instead of a FIN (the bytes it had already sent are still
// read first).
func (e exchange) closed() bool {
	return e.end == io.EOF || errors.Is(e.end, syscall.ECONNRESET)
}

// runExchange dials addr, writes stream (an upgrade request and any frames
// after it) cut according to mode, and reads the response and every server
// frame until the server closes the connection or timeout passes. It never
// answers the server: the observation is exactly what the server sent in
// reply to stream.
func runExchange(addr string, stream []byte, mode splitMode, seed uint64, timeout time.Duration) exchange {
	var ex exchange
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		ex.end = err
		return ex
	}
	defer c.Close()
	if err := c.(*net.TCPConn).SetNoDelay(true); err != nil {
		ex.end = err
		return ex
	}
	start := time.Now()
	if err := c.SetDeadline(start.Add(timeout)); err != nil {
		ex.end = err
		return ex
	}
	wrote := make(chan error, 1)
	go func() {
		wrote <- writeStream(c, stream, mode, rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)))
	}()
	br := bufio.NewReaderSize(c, 64<<10)
	ex.status, ex.header, ex.end = readResponseHead(br)
	if ex.end == nil && ex.status != http.StatusSwitchingProtocols {
		// A rejection carries no frames: what matters is that the server
		// closes after its response. Discard any body.
		_, ex.end = io.Copy(io.Discard, br)
		if ex.end == nil {
			ex.end = io.EOF
		}
	}
	var closeAt time.Time
	for ex.end == nil {
		var f serverFrame
		f, ex.end = readServerFrame(br, 16<<20)
		if ex.end != nil {
			break
		}
		ex.frames = append(ex.frames, f)
		if f.op == opClose && closeAt.IsZero() {
			closeAt = time.Now()
		}
	}
	now := time.Now()
	ex.elapsed = now.Sub(start)
	if !closeAt.IsZero() {
		ex.closeGap = now.Sub(closeAt)
	}
	c.Close() // unblocks a writer that is still going
	ex.writeErr = <-wrote
	return ex
}

// readResponseHead reads an HTTP/1.1 response head from br with its own tiny
// parser (status line and header fields, §4.2.2 and RFC 9112 §4) rather than
// net/http, leaving br at the first byte after the blank line.
func readResponseHead(br *bufio.Reader) (int, http.Header, error) {
	line, err := readLine(br)
	if err != nil {
		return 0, nil, err
	}
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || proto != "HTTP/1.1" || len(rest) < 3 {
		return 0, nil, fmt.Errorf("wsclient: bad status line %q", line)
	}
	var status int
	if _, err := fmt.Sscanf(rest[:3], "%d", &status); err != nil {
		return 0, nil, fmt.Errorf("wsclient: bad status line %q", line)
	}
	h := http.Header{}
	for {
		line, err := readLine(br)
		if err != nil {
			return status, h, err
		}
		if line == "" {
			return status, h, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return status, h, fmt.Errorf("wsclient: bad header line %q", line)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
}

// readLine reads one CRLF-terminated line without the CRLF.
func readLine(br *bufio.Reader) (string, error) {
	s, err := br.ReadString('\n')
	if err != nil {
		return "", unexpected(err)
	}
	if !strings.HasSuffix(s, "\r\n") {
		return "", fmt.Errorf("wsclient: line without CRLF: %q", s)
	}
	return s[:len(s)-2], nil
}

// rawConn is an open WebSocket connection driven by the raw client, for the
// tests that talk back and forth rather than replaying a fixed stream.
type rawConn struct {
	c   net.Conn
	br  *bufio.Reader
	rng *rand.Rand
}

// dialRaw connects to addr and completes the opening handshake on path. Any
// failure is returned; the caller closes the connection.
func dialRaw(addr, path string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, br: bufio.NewReader(c), rng: rand.New(rand.NewPCG(1, 2))}
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Write(upgradeRequest(path)); err != nil {
		c.Close()
		return nil, err
	}
	status, h, err := readResponseHead(rc.br)
	if err == nil && status != http.StatusSwitchingProtocols {
		err = fmt.Errorf("wsclient: handshake status %d", status)
	}
	if err == nil && h.Get("Sec-WebSocket-Accept") != acceptKey(testKey) {
		err = fmt.Errorf("wsclient: wrong Sec-WebSocket-Accept %q", h.Get("Sec-WebSocket-Accept"))
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return rc, c.SetDeadline(time.Time{})
}

// send writes frames, each masked with a fresh key.
func (rc *rawConn) send(frames ...clientFrame) error {
	_, err := rc.c.Write(encodeFrames(rc.rng, frames))
	return err
}

// read reads the next server frame, waiting at most d.
func (rc *rawConn) read(d time.Duration) (serverFrame, error) {
	if err := rc.c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return serverFrame{}, err
	}
	return readServerFrame(rc.br, 16<<20)
}

// Close closes the TCP connection.
func (rc *rawConn) Close() error { return rc.c.Close() }
