package netpoll_test

// The machinery of the conformance suite: a case is a list of client frames
// and the exact server frames expected in reply, ending with the server's
// close frame and the end of the TCP stream. Every case runs three times, on
// three connections: its bytes (the upgrade request and the frames) written
// whole, split at random boundaries, and one byte per write. All three must
// match the expectation and each other.

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var seedFlag = flag.Uint64("conformance.seed", 0,
	"seed of the random write splits in the netpoll conformance suite (0 picks one from the clock)")

// baseSeed is the seed every case's split seed derives from; failures print
// it so a run can be repeated with -conformance.seed.
var baseSeed = sync.OnceValue(func() uint64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	return uint64(time.Now().UnixNano())
})

// exchangeSlots bounds the connections the suite drives at once, across all
// groups, so a 2-core machine under -race is loaded but not swamped.
var exchangeSlots = make(chan struct{}, 12)

// Time bounds. They are generous because the suite must not flake under
// -race on two busy cores; a conforming server takes milliseconds.
const (
	// caseTimeout bounds one exchange unless the case sets its own.
	caseTimeout = 20 * time.Second
	// failFastTimeout bounds an exchange whose client stops mid-message and
	// waits for the server to fail the connection on what it has seen.
	failFastTimeout = 5 * time.Second
	// closeGapMax bounds the time from the server's close frame to the end of
	// the TCP stream. After failing a connection or answering a client's
	// close the server closes TCP at once (RFC 6455 §7.1.1, §7.1.7), so this
	// is far below the engine's default 5 s close timeout.
	closeGapMax = 2 * time.Second
)

// expect is one server frame a case expects.
type expect struct {
	op      byte
	payload []byte // text, binary and pong payloads
	code    int    // close frames: the status code, or closeEmptyOr1000
}

// closeEmptyOr1000 accepts a close frame with no payload or with code 1000:
// the two correct answers to a client's empty close frame (§5.5.1: an
// endpoint replying to a close "typically echoes the status code it
// received", and there is none to echo).
const closeEmptyOr1000 = -1

func wantText(s string) expect  { return expect{op: opText, payload: []byte(s)} }
func wantBin(p []byte) expect   { return expect{op: opBinary, payload: p} }
func wantPong(p []byte) expect  { return expect{op: opPong, payload: p} }
func wantClose(code int) expect { return expect{op: opClose, code: code} }

// frameCase is one conformance case.
type frameCase struct {
	name    string
	send    []clientFrame // sent after the upgrade request, in the same stream
	want    []expect      // every server frame after the 101, in order
	timeout time.Duration // zero means caseTimeout
}

// echoCase is a case after which the connection is still open: the client
// then closes with 1000, and the server must answer with 1000 and close.
func echoCase(name string, send []clientFrame, want ...expect) frameCase {
	return frameCase{
		name: name,
		send: append(send, closeFrame(1000, "")),
		want: append(want, wantClose(1000)),
	}
}

// failCase is a case in which the server must send want and then fail the
// connection with code.
func failCase(name string, code int, send []clientFrame, want ...expect) frameCase {
	return frameCase{name: name, send: send, want: append(want, wantClose(code))}
}

// failFast marks c as one whose client stops sending mid-message: the server
// must decide on what it has, so the wait is short.
func failFast(c frameCase) frameCase {
	c.timeout = failFastTimeout
	return c
}

// hashName derives a stable number from a case name.
func hashName(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// streamCase is one client byte stream and the verdict on what the server
// sent back.
type streamCase struct {
	name    string
	stream  func() []byte           // built when run, so large streams do not all live at once
	timeout time.Duration           // zero means caseTimeout
	check   func(exchange) []string // the problems with what the server sent
	frames  []clientFrame           // what the stream holds after the request, for the failure log
}

// runCases runs every frame case three ways against the echo endpoint at
// addr+path and reports each as a subtest.
func runCases(t *testing.T, addr, path string, cases []frameCase) {
	t.Helper()
	scs := make([]streamCase, len(cases))
	for i, c := range cases {
		scs[i] = streamCase{
			name: c.name,
			stream: func() []byte {
				maskRNG := rand.New(rand.NewPCG(hashName(c.name), 1))
				return append(upgradeRequest(path), encodeFrames(maskRNG, c.send)...)
			},
			timeout: c.timeout,
			check:   func(ex exchange) []string { return checkExchange(ex, c.want) },
			frames:  c.send,
		}
	}
	runStreams(t, addr, scs)
}

// runStreams runs every case once per split mode, each on its own
// connection, and reports each case as a subtest: every mode must pass its
// check and summarize identically to the whole write. The exchanges run
// concurrently (bounded by exchangeSlots) and keep only their verdicts, so
// large cases do not pile up echoed payloads in memory.
func runStreams(t *testing.T, addr string, cases []streamCase) {
	t.Helper()
	type verdict struct {
		problems []string
		summary  string
	}
	seed := baseSeed()
	results := make([][]verdict, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		results[i] = make([]verdict, len(splitModes))
		for j, m := range splitModes {
			wg.Go(func() {
				exchangeSlots <- struct{}{}
				defer func() { <-exchangeSlots }()
				timeout := c.timeout
				if timeout == 0 {
					timeout = caseTimeout
				}
				ex := runExchange(addr, c.stream(), m, seed^hashName(c.name), timeout)
				results[i][j] = verdict{c.check(ex), summarize(ex)}
			})
		}
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for j, m := range splitModes {
				for _, p := range results[i][j].problems {
					t.Errorf("%s writes: %s", m, p)
				}
				if j > 0 && results[i][j].summary != results[i][0].summary {
					t.Errorf("%s writes differ from whole writes:\n  whole: %s\n  %s: %s",
						m, results[i][0].summary, m, results[i][j].summary)
				}
			}
			if t.Failed() {
				if len(c.frames) > 0 {
					t.Logf("client frames after the request: %s", describeClientFrames(c.frames))
				}
				t.Logf("random splits seeded by -conformance.seed=%d", seed)
			}
		})
	}
}

// checkExchange compares what the server sent with want and returns every
// difference, worded for the failure log.
func checkExchange(ex exchange, want []expect) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if ex.status != http.StatusSwitchingProtocols {
		add("handshake: status %d, want 101 (read ended with %v)", ex.status, ex.end)
		return problems
	}
	if got := ex.header.Get("Sec-WebSocket-Accept"); got != acceptKey(testKey) {
		add("handshake: Sec-WebSocket-Accept %q, want %q", got, acceptKey(testKey))
	}
	for i := range max(len(ex.frames), len(want)) {
		switch {
		case i >= len(ex.frames):
			add("frame %d: missing, want %s", i, describeExpect(want[i]))
			continue
		case i >= len(want):
			add("frame %d: unexpected %s", i, describeFrame(ex.frames[i]))
			continue
		}
		if p := frameMismatch(ex.frames[i], want[i]); p != "" {
			add("frame %d: %s", i, p)
		}
	}
	if !ex.closed() {
		add("server did not close the connection: reading ended with %v after %v", ex.end, ex.elapsed.Round(time.Millisecond))
	} else if ex.closeGap > closeGapMax {
		add("server closed TCP %v after its close frame, want at once (< %v)", ex.closeGap.Round(time.Millisecond), closeGapMax)
	}
	return problems
}

// frameMismatch reports how got differs from w, or "" if it matches. Every
// server frame must be final, unmasked, free of reserved bits and use the
// minimal length encoding: the echo endpoint never fragments (§5.1, §5.2).
func frameMismatch(got serverFrame, w expect) string {
	var bad []string
	if !got.fin {
		bad = append(bad, "FIN clear")
	}
	if got.rsv != 0 {
		bad = append(bad, fmt.Sprintf("RSV=%d", got.rsv))
	}
	if got.masked {
		bad = append(bad, "masked")
	}
	if !got.minimal {
		bad = append(bad, "non-minimal length encoding")
	}
	if len(bad) > 0 {
		return fmt.Sprintf("%s has %s", describeFrame(got), strings.Join(bad, ", "))
	}
	if got.op != w.op {
		return fmt.Sprintf("got %s, want %s", describeFrame(got), describeExpect(w))
	}
	if got.op != opClose {
		if !bytes.Equal(got.payload, w.payload) {
			return fmt.Sprintf("got %s, want %s%s", describeFrame(got), describeExpect(w), firstDiff(got.payload, w.payload))
		}
		return ""
	}
	code, reason, ok := closePayload(got.payload)
	switch {
	case !ok:
		return fmt.Sprintf("malformed close payload % x", got.payload)
	case len(got.payload) > 125:
		return fmt.Sprintf("close payload of %d bytes (§5.5: at most 125)", len(got.payload))
	case w.code == closeEmptyOr1000 && (code == 0 || code == 1000):
		return ""
	case code != w.code:
		return fmt.Sprintf("got %s (reason %q), want %s", describeFrame(got), reason, describeExpect(w))
	}
	return ""
}

// firstDiff locates the first differing byte of two payloads.
func firstDiff(got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("; first difference at byte %d: got %#02x, want %#02x", i, got[i], want[i])
		}
	}
	return ""
}

// opName names an opcode.
func opName(op byte) string {
	switch op {
	case opCont:
		return "cont"
	case opText:
		return "text"
	case opBinary:
		return "binary"
	case opClose:
		return "close"
	case opPing:
		return "ping"
	case opPong:
		return "pong"
	}
	return fmt.Sprintf("op%#x", op)
}

// describePayload is a short, stable description of a payload: the bytes
// themselves when short, else the length and a checksum.
func describePayload(p []byte) string {
	if len(p) <= 32 {
		if utf8.Valid(p) {
			return fmt.Sprintf("%dB %q", len(p), p)
		}
		return fmt.Sprintf("%dB % x", len(p), p)
	}
	return fmt.Sprintf("%dB crc32=%08x", len(p), crc32.ChecksumIEEE(p))
}

func describeFrame(f serverFrame) string {
	if f.op == opClose {
		if code, reason, ok := closePayload(f.payload); ok && len(f.payload) >= 2 {
			return fmt.Sprintf("close(%d %q)", code, reason)
		}
		return fmt.Sprintf("close(%s)", describePayload(f.payload))
	}
	return fmt.Sprintf("%s(%s)", opName(f.op), describePayload(f.payload))
}

func describeExpect(w expect) string {
	switch {
	case w.op != opClose:
		return fmt.Sprintf("%s(%s)", opName(w.op), describePayload(w.payload))
	case w.code == closeEmptyOr1000:
		return "close(empty or 1000)"
	}
	return fmt.Sprintf("close(%d)", w.code)
}

// describeClientFrames lists what a case sent, for the failure log.
func describeClientFrames(fs []clientFrame) string {
	var parts []string
	for i, f := range fs {
		if i == 12 {
			parts = append(parts, fmt.Sprintf("... %d frames in all", len(fs)))
			break
		}
		var flags []string
		if f.more {
			flags = append(flags, "FIN=0")
		}
		if f.rsv != 0 {
			flags = append(flags, fmt.Sprintf("RSV=%d", f.rsv))
		}
		if f.noMask {
			flags = append(flags, "unmasked")
		}
		if f.head {
			flags = append(flags, fmt.Sprintf("header only, declared %d", f.decl))
		}
		desc := describePayload(f.payload)
		if f.op == opClose && len(f.payload) >= 2 {
			desc = fmt.Sprintf("%d %q", binary.BigEndian.Uint16(f.payload), f.payload[2:])
		}
		parts = append(parts, fmt.Sprintf("%s(%s)%v", opName(f.op), desc, flags))
	}
	return strings.Join(parts, " ")
}

// summarize condenses an exchange into a string that must be identical
// however the client's bytes were split.
func summarize(ex exchange) string {
	parts := []string{fmt.Sprint(ex.status)}
	for _, f := range ex.frames {
		parts = append(parts, describeFrame(f))
	}
	if ex.closed() {
		parts = append(parts, "closed")
	} else {
		parts = append(parts, fmt.Sprintf("open (%v)", ex.end))
	}
	return strings.Join(parts, " | ")
}
