package netpoll_test

// The conformance cases, grouped like the Autobahn TestSuite (its case
// numbers are cited where a case follows one). Each group is a function
// returning its cases, so the tables stay plain data and the tests that run
// them (conformance_test.go) stay short.

import (
	"bytes"
	"fmt"
	"strings"
)

// Sizes that hit every length form and its edges (§5.2): 7-bit up to 125,
// 16-bit from 126 to 65535, 64-bit from 65536.
var framingSizes = []int{0, 1, 125, 126, 127, 128, 65535, 65536}

// textPayload returns exactly n bytes of valid UTF-8 that mix 1-, 2-, 3- and
// 4-byte code points, so that fragment and write boundaries fall inside
// multi-byte sequences.
func textPayload(n int) string {
	runes := []string{"a", "µ", "€", "𝄞", "z", "ß", "κ", "✓", "😀", " "}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		r := runes[i%len(runes)]
		if b.Len()+len(r) > n {
			r = "."
		}
		b.WriteString(r)
	}
	return b.String()
}

// binPayload returns n bytes that cover every byte value.
func binPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8 + 3)
	}
	return p
}

// fragmentsOf cuts p into frames of size bytes: the first with op, the rest
// continuations, the last with FIN set. An empty p gives one empty frame.
func fragmentsOf(op byte, p []byte, size int) []clientFrame {
	var fs []clientFrame
	for first := true; first || len(p) > 0; first = false {
		n := min(size, len(p))
		f := clientFrame{op: opCont, payload: p[:n], more: len(p) > n}
		if first {
			f.op = op
		}
		fs = append(fs, f)
		p = p[n:]
	}
	return fs
}

// frames is shorthand for a frame list.
func frames(fs ...clientFrame) []clientFrame { return fs }

// framingCases: Autobahn group 1, text and binary messages of every length
// form echoed exactly, and the first length past the 64 KiB default limit
// refused from its header (§10.4 allows the limit; 1009 per §7.4.1).
func framingCases() []frameCase {
	var cs []frameCase
	for _, n := range framingSizes {
		s := textPayload(n)
		cs = append(cs, echoCase(fmt.Sprintf("1.1/text/%d", n), frames(textFrame(s)), wantText(s)))
		b := binPayload(n)
		cs = append(cs, echoCase(fmt.Sprintf("1.2/binary/%d", n), frames(binFrame(b)), wantBin(b)))
	}
	// Several messages of different sizes back to back in one stream.
	var send []clientFrame
	var want []expect
	for i, n := range framingSizes {
		if i%2 == 0 {
			send, want = append(send, textFrame(textPayload(n))), append(want, wantText(textPayload(n)))
		} else {
			send, want = append(send, binFrame(binPayload(n))), append(want, wantBin(binPayload(n)))
		}
	}
	cs = append(cs, echoCase("1.3/back-to-back", send, want...))
	// Over the default limit: the declared length alone must trigger 1009,
	// before any payload arrives.
	cs = append(cs,
		failFast(failCase("1.4/text/65537/header-only", 1009, frames(opFrame(opText, "").headerOnly(65537)))),
		failFast(failCase("1.4/binary/65537/header-only", 1009, frames(opFrame(opBinary, "").headerOnly(65537)))),
		failFast(failCase("1.4/binary/2^62/header-only", 1009, frames(opFrame(opBinary, "").headerOnly(1<<62)))),
	)
	return cs
}

// pingCases: Autobahn group 2. A ping is answered by a pong with the same
// payload (§5.5.2, §5.5.3); a pong nobody asked for is ignored (§5.5.3); a
// control frame over 125 bytes fails the connection (§5.5).
func pingCases() []frameCase {
	bin125 := binPayload(125)
	bin125[0], bin125[1] = 0xfe, 0xff
	var tenPings []clientFrame
	var tenPongs []expect
	for i := range 10 {
		p := []byte(fmt.Sprintf("ping %d", i))
		tenPings, tenPongs = append(tenPings, pingFrame(p)), append(tenPongs, wantPong(p))
	}
	return []frameCase{
		echoCase("2.1/ping/empty", frames(pingFrame(nil)), wantPong(nil)),
		echoCase("2.2/ping/text", frames(pingFrame([]byte("Hello, world!"))), wantPong([]byte("Hello, world!"))),
		echoCase("2.3/ping/binary", frames(pingFrame([]byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff})),
			wantPong([]byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff})),
		echoCase("2.4/ping/125", frames(pingFrame(bin125)), wantPong(bin125)),
		failCase("2.5/ping/126", 1002, frames(textFrame("before"), pingFrame(binPayload(126))), wantText("before")),
		failFast(failCase("2.5/ping/126/header-only", 1002, frames(pingFrame(nil).headerOnly(126)))),
		failCase("2.x/pong/126", 1002, frames(textFrame("before"), pongFrame(binPayload(126))), wantText("before")),
		echoCase("2.7/pong/unsolicited-empty", frames(pongFrame(nil), textFrame("after")), wantText("after")),
		echoCase("2.8/pong/unsolicited-payload", frames(pongFrame([]byte("unsolicited")), textFrame("after")), wantText("after")),
		echoCase("2.9/pong-then-ping", frames(pongFrame([]byte("unsolicited")), pingFrame([]byte("solicited"))),
			wantPong([]byte("solicited"))),
		echoCase("2.10/ten-pings", tenPings, tenPongs...),
		echoCase("2.12/ping-between-fragments",
			frames(textFrame("frag1").fragment(), pingFrame([]byte("p")), contFrame("frag2")),
			wantPong([]byte("p")), wantText("frag1frag2")),
		echoCase("2.12/pings-between-binary-fragments",
			frames(binFrame([]byte{1}).fragment(), pingFrame([]byte("a")), contFrame("\x02").fragment(),
				pingFrame([]byte("b")), pingFrame(nil), contFrame("\x03")),
			wantPong([]byte("a")), wantPong([]byte("b")), wantPong(nil), wantBin([]byte{1, 2, 3})),
		echoCase("2.13/pong-between-fragments",
			frames(textFrame("frag1").fragment(), pongFrame([]byte("p")), contFrame("frag2")),
			wantText("frag1frag2")),
	}
}

// rsvCases: Autobahn group 3. With no extension negotiated every reserved bit
// must be zero, on every opcode, else the connection fails (§5.2). The
// message sent before the bad frame is echoed first, and nothing after it is
// answered.
func rsvCases() []frameCase {
	var cs []frameCase
	for rsv := byte(1); rsv <= 7; rsv++ {
		cs = append(cs, failCase(fmt.Sprintf("3.%d/text/rsv=%d", rsv, rsv), 1002,
			frames(textFrame("hello"), textFrame("bad").withRSV(rsv), pingFrame([]byte("after"))), wantText("hello")))
	}
	cs = append(cs,
		failCase("3.8/binary/rsv=4", 1002, frames(textFrame("hello"), binFrame([]byte{0, 1, 2}).withRSV(4)), wantText("hello")),
		failCase("3.9/ping/rsv=2", 1002, frames(textFrame("hello"), pingFrame([]byte("p")).withRSV(2)), wantText("hello")),
		failCase("3.10/pong/rsv=6", 1002, frames(textFrame("hello"), pongFrame(nil).withRSV(6)), wantText("hello")),
		failCase("3.11/close/rsv=1", 1002, frames(textFrame("hello"), closeFrame(1000, "").withRSV(1)), wantText("hello")),
		failCase("3.12/continuation/rsv=4", 1002, frames(textFrame("frag1").fragment(), contFrame("frag2").withRSV(4))),
		failCase("3.13/first-fragment/rsv=1", 1002, frames(textFrame("frag1").fragment().withRSV(1), contFrame("frag2"))),
	)
	return cs
}

// opcodeCases: Autobahn group 4. Opcodes 0x3–0x7 and 0xB–0xF are reserved
// (§5.2, §11.8) and fail the connection; a ping after them gets no pong.
func opcodeCases() []frameCase {
	var cs []frameCase
	for _, op := range []byte{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf} {
		group := "4.1"
		if op > 7 {
			group = "4.2"
		}
		cs = append(cs,
			failCase(fmt.Sprintf("%s/op=%#x/empty", group, op), 1002,
				frames(textFrame("hello"), opFrame(op, ""), pingFrame([]byte("after"))), wantText("hello")),
			failCase(fmt.Sprintf("%s/op=%#x/payload", group, op), 1002,
				frames(textFrame("hello"), opFrame(op, "reserved"), textFrame("after")), wantText("hello")),
		)
	}
	return cs
}

// fragmentationCases: Autobahn group 5. Fragments of any size, empty ones
// included, make one message (§5.4); control frames may come between them but
// may not be fragmented themselves; continuations need an open message and
// a new data frame may not start inside one.
func fragmentationCases() []frameCase {
	hello := []byte("Hello, fragmented world!")
	cs := []frameCase{
		failCase("5.1/ping-fragmented", 1002, frames(pingFrame([]byte("frag1")).fragment(), contFrame("frag2"))),
		failCase("5.2/pong-fragmented", 1002, frames(pongFrame([]byte("frag1")).fragment(), contFrame("frag2"))),
		failCase("5.2/close-fragmented", 1002, frames(closeFrame(1000, "").fragment(), contFrame(""))),
		echoCase("5.3/text/2", frames(textFrame("frag1").fragment(), contFrame("frag2")), wantText("frag1frag2")),
		echoCase("5.4/binary/2", frames(binFrame([]byte{1, 2}).fragment(), contFrame("\x03")), wantBin([]byte{1, 2, 3})),
		echoCase("5.5/text/1-byte-fragments", fragmentsOf(opText, hello, 1), wantText(string(hello))),
		echoCase("5.5/binary/1-byte-fragments", fragmentsOf(opBinary, hello, 1), wantBin(hello)),
		echoCase("5.5/text/3-byte-fragments", fragmentsOf(opText, []byte(textPayload(100)), 3), wantText(textPayload(100))),
		echoCase("5.6/text/ping-between", frames(textFrame("frag1").fragment(), pingFrame([]byte("ping")), contFrame("frag2")),
			wantPong([]byte("ping")), wantText("frag1frag2")),
		failCase("5.9/continuation-without-message/final", 1002, frames(contFrame("cont"), textFrame("after"))),
		failCase("5.10/continuation-without-message/more", 1002, frames(contFrame("cont").fragment(), textFrame("after"))),
		failCase("5.11/continuation-after-message", 1002,
			frames(textFrame("whole"), contFrame("cont")), wantText("whole")),
		failCase("5.15/text-then-stray-fragments", 1002,
			frames(textFrame("frag1").fragment(), contFrame("frag2"), contFrame("frag3").fragment(), textFrame("frag4")),
			wantText("frag1frag2")),
		failCase("5.17/text-inside-fragmented-text/more", 1002,
			frames(textFrame("frag1").fragment(), textFrame("frag2").fragment(), contFrame("frag3"))),
		failCase("5.18/text-inside-fragmented-text/final", 1002,
			frames(textFrame("frag1").fragment(), textFrame("frag2"))),
		failCase("5.18/binary-inside-fragmented-text", 1002,
			frames(textFrame("frag1").fragment(), binFrame([]byte("frag2")))),
		echoCase("5.19/pings-between-five-fragments",
			frames(textFrame("f1").fragment(), contFrame("f2").fragment(), pingFrame([]byte("p1")),
				contFrame("f3").fragment(), contFrame("f4").fragment(), pingFrame([]byte("p2")), contFrame("f5")),
			wantPong([]byte("p1")), wantPong([]byte("p2")), wantText("f1f2f3f4f5")),
		echoCase("5.x/empty-first-fragment", frames(textFrame("").fragment(), contFrame("body")), wantText("body")),
		echoCase("5.x/empty-final-fragment", frames(textFrame("body").fragment(), contFrame("")), wantText("body")),
		echoCase("5.x/empty-middle-fragments",
			frames(binFrame([]byte("a")).fragment(), contFrame("").fragment(), contFrame("").fragment(), contFrame("b")),
			wantBin([]byte("ab"))),
		echoCase("5.x/all-fragments-empty",
			frames(textFrame("").fragment(), contFrame("").fragment(), contFrame("")), wantText("")),
		echoCase("5.x/two-fragmented-messages",
			frames(textFrame("a").fragment(), contFrame("b"), binFrame([]byte("c")).fragment(), contFrame("d")),
			wantText("ab"), wantBin([]byte("cd"))),
		{
			name: "5.x/close-between-fragments",
			send: frames(textFrame("frag1").fragment(), closeFrame(1000, "bye"), contFrame("frag2")),
			want: []expect{wantClose(1000)},
		},
	}
	return cs
}

// Texts for group 6: valid ones (§8.1 requires the whole message to be
// UTF-8, and these are) and invalid ones (RFC 3629 forbids each), labelled.
var (
	validTexts = []struct{ name, s string }{
		{"ascii", "Hello, world!"},
		{"autobahn-6.2.1", "Hello-µ@ßöäüàá-UTF-8!!"},
		{"kosme", "κόσμε"},
		{"U+0080", "\u0080"},
		{"U+07FF", "\u07ff"},
		{"U+0800", "\u0800"},
		{"U+D7FF", "\ud7ff"},
		{"U+E000", "\ue000"},
		{"U+FFFD", "\ufffd"},
		{"U+FFFF", "\uffff"},
		{"U+10000", "\U00010000"},
		{"U+1D11E", "𝄞"},
		{"U+10FFFF", "\U0010ffff"},
		{"mixed-1000", textPayload(1000)},
	}
	invalidTexts = []struct{ name, s string }{
		{"overlong-C0-80", "\xc0\x80"},
		{"overlong-C1-BF", "\xc1\xbf"},
		{"overlong-E0-80-80", "\xe0\x80\x80"},
		{"overlong-E0-9F-BF", "\xe0\x9f\xbf"},
		{"overlong-F0-80-80-80", "\xf0\x80\x80\x80"},
		{"overlong-F0-8F-BF-BF", "\xf0\x8f\xbf\xbf"},
		{"surrogate-ED-A0-80", "\xed\xa0\x80"},
		{"surrogate-ED-BF-BF", "\xed\xbf\xbf"},
		{"surrogate-pair", "\xed\xa0\x80\xed\xb0\x80"},
		{"above-10FFFF-F4-90-80-80", "\xf4\x90\x80\x80"},
		{"F5", "\xf5\x80\x80\x80"},
		{"F8-five-bytes", "\xf8\x88\x80\x80\x80"},
		{"FC-six-bytes", "\xfc\x84\x80\x80\x80\x80"},
		{"FE", "\xfe"},
		{"FF", "\xff"},
		{"FE-FE-FF-FF", "\xfe\xfe\xff\xff"},
		{"lone-continuation-80", "\x80"},
		{"lone-continuation-BF", "a\xbfb"},
		{"truncated-C2", "abc\xc2"},
		{"truncated-E2-82", "price \xe2\x82"},
		{"truncated-F0-9F-98", "smile \xf0\x9f\x98"},
		{"truncated-then-ascii", "\xe2\x82a"},
		{"autobahn-6.3.1", "κόσμε\xed\xa0\x80edited"},
	}
)

// utf8Cases: Autobahn group 6. Text must be UTF-8 (§5.6, §8.1), judged
// across fragments; invalid text fails the connection with 1007 (§7.4.1),
// and as soon as the bytes seen so far cannot begin valid UTF-8 (fail fast),
// without waiting for the rest of the message.
func utf8Cases() []frameCase {
	var cs []frameCase
	for _, v := range validTexts {
		cs = append(cs, echoCase("6.2/valid/"+v.name, frames(textFrame(v.s)), wantText(v.s)))
		if len(v.s) <= 16 {
			cs = append(cs, echoCase("6.2/valid-1-byte-fragments/"+v.name,
				fragmentsOf(opText, []byte(v.s), 1), wantText(v.s)))
			for cut := 1; cut < len(v.s); cut++ {
				cs = append(cs, echoCase(fmt.Sprintf("6.2/valid-split/%s/at-%d", v.name, cut),
					frames(textFrame(v.s[:cut]).fragment(), contFrame(v.s[cut:])), wantText(v.s)))
			}
		}
	}
	for _, v := range invalidTexts {
		cs = append(cs,
			failCase("6.3/invalid/"+v.name, 1007, frames(textFrame(v.s))),
			failCase("6.3/invalid-after-valid-message/"+v.name, 1007,
				frames(textFrame("valid"), textFrame(v.s), textFrame("after")), wantText("valid")),
			failCase("6.3/invalid-in-last-fragment/"+v.name, 1007,
				frames(textFrame("κόσμε").fragment(), contFrame(v.s))),
			failCase("6.3/invalid-1-byte-fragments/"+v.name, 1007, fragmentsOf(opText, []byte(v.s), 1)),
		)
	}
	cs = append(cs,
		// Binary messages carry any bytes.
		echoCase("6.x/binary-not-checked", frames(binFrame([]byte("\xc0\x80\xed\xa0\x80\xff"))),
			wantBin([]byte("\xc0\x80\xed\xa0\x80\xff"))),
		// A code point left open at the end of the message.
		failCase("6.3/truncated-across-fragments", 1007, frames(textFrame("\xe2\x82").fragment(), contFrame(""))),
		// Fail fast: the client sends part of a message and waits; the server
		// must fail on what it already has (Autobahn 6.4).
		failFast(failCase("6.4/fail-fast/F5-in-first-fragment", 1007,
			frames(textFrame("ok \xf5 then more").fragment()))),
		failFast(failCase("6.4/fail-fast/C0-in-first-fragment", 1007, frames(textFrame("\xc0").fragment()))),
		failFast(failCase("6.4/fail-fast/FF-in-first-fragment", 1007, frames(textFrame("abc\xff").fragment()))),
		failFast(failCase("6.4/fail-fast/surrogate-in-first-fragment", 1007,
			frames(textFrame("κόσμε\xed\xa0\x80").fragment()))),
		failFast(failCase("6.4.1/fail-fast/F4-90-80-80-in-second-fragment", 1007,
			frames(textFrame("κόσμε").fragment(), contFrame("\xf4\x90\x80\x80").fragment()))),
		failFast(failCase("6.4.2/fail-fast/F4-then-90", 1007,
			frames(textFrame("κόσμε\xf4").fragment(), contFrame("\x90").fragment()))),
		failFast(failCase("6.4/fail-fast/after-valid-message", 1007,
			frames(textFrame("valid"), textFrame("\xf5").fragment()), wantText("valid"))),
	)
	return cs
}

// Close codes for group 7. A close with a valid code is answered with the
// same code (§5.5.1); codes that are reserved, unassigned or never sent on
// the wire fail the connection with 1002 (§7.4.1, §7.4.2).
var (
	validCloseCodes   = []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}
	invalidCloseCodes = []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
)

// closeCases: Autobahn group 7. The close handshake (§5.5.1, §7): the
// server answers a close with a close and then closes TCP, answers nothing
// after it, and validates the close payload.
func closeCases() []frameCase {
	reason123 := strings.Repeat("r", 123)
	cs := []frameCase{
		{name: "7.1.1/text-then-close", send: frames(textFrame("hello"), closeFrame(1000, "")),
			want: []expect{wantText("hello"), wantClose(1000)}},
		{name: "7.1.2/close-twice", send: frames(closeFrame(1000, ""), closeFrame(1000, "")),
			want: []expect{wantClose(1000)}},
		{name: "7.1.3/ping-after-close", send: frames(closeFrame(1000, ""), pingFrame([]byte("p"))),
			want: []expect{wantClose(1000)}},
		{name: "7.1.4/text-after-close", send: frames(closeFrame(1000, ""), textFrame("ignored")),
			want: []expect{wantClose(1000)}},
		{name: "7.1.5/fragment-close-continuation",
			send: frames(textFrame("frag1").fragment(), closeFrame(1000, ""), contFrame("frag2")),
			want: []expect{wantClose(1000)}},
		{name: "7.3.1/empty", send: frames(opFrame(opClose, "")), want: []expect{wantClose(closeEmptyOr1000)}},
		failCase("7.3.2/one-byte", 1002, frames(opFrame(opClose, "\x03"))),
		{name: "7.3.3/1000-no-reason", send: frames(closeFrame(1000, "")), want: []expect{wantClose(1000)}},
		{name: "7.3.4/1000-reason", send: frames(closeFrame(1000, "Hello World!")), want: []expect{wantClose(1000)}},
		{name: "7.3.5/1000-123-byte-reason", send: frames(closeFrame(1000, reason123)), want: []expect{wantClose(1000)}},
		failCase("7.3.6/126-byte-payload", 1002, frames(closeFrame(1000, reason123+"x"))),
		failCase("7.5.1/reason-invalid-utf8", 1007, frames(closeFrame(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"))),
		failCase("7.5.x/reason-truncated-utf8", 1007, frames(closeFrame(1000, "bye \xe2\x82"))),
	}
	for _, code := range validCloseCodes {
		cs = append(cs,
			frameCase{name: fmt.Sprintf("7.7/valid/%d", code), send: frames(closeFrame(code, "")),
				want: []expect{wantClose(code)}},
			frameCase{name: fmt.Sprintf("7.7/valid/%d/reason", code), send: frames(closeFrame(code, "reason ✓")),
				want: []expect{wantClose(code)}},
		)
	}
	for _, code := range invalidCloseCodes {
		cs = append(cs, failCase(fmt.Sprintf("7.9/invalid/%d", code), 1002, frames(closeFrame(code, ""))))
	}
	cs = append(cs,
		failCase("7.9/invalid/1005-between-fragments", 1002,
			frames(textFrame("frag1").fragment(), closeFrame(1005, ""), contFrame("frag2"))),
		frameCase{name: "7.x/close-after-pipelined-messages",
			send: frames(textFrame("a"), binFrame([]byte("b")), pingFrame([]byte("c")), closeFrame(3000, "done")),
			want: []expect{wantText("a"), wantBin([]byte("b")), wantPong([]byte("c")), wantClose(3000)}},
	)
	return cs
}

// miscCases: Autobahn group 10 (a 64 KiB text message, whole and
// auto-fragmented at 1300 bytes), and the protocol errors of §5 that the
// groups above do not reach: an unmasked client frame (§5.1: the server
// MUST close) and a 64-bit length with its top bit set (§5.2).
func miscCases() []frameCase {
	big := textPayload(65536)
	var many []clientFrame
	var manyEchoes []expect
	for i := range 100 {
		if i%2 == 0 {
			s := textPayload(i)
			many, manyEchoes = append(many, textFrame(s)), append(manyEchoes, wantText(s))
		} else {
			b := binPayload(i * 3)
			many, manyEchoes = append(many, binFrame(b)), append(manyEchoes, wantBin(b))
		}
	}
	// More than one read buffer's worth of small messages in one stream: the
	// engine must take every complete frame out of each read and keep the
	// partial one for the next.
	var flood []clientFrame
	var floodEchoes []expect
	for i := range 5000 {
		p := binPayload(1 + i%200)
		p[0] = byte(i)
		flood, floodEchoes = append(flood, binFrame(p)), append(floodEchoes, wantBin(p))
	}
	unmasked := textFrame("unmasked")
	unmasked.noMask = true
	overflow := opFrame(opBinary, "").headerOnly(1<<63 | 5)
	overflow.form64 = true
	return []frameCase{
		echoCase("10.1.1/text-65536/one-frame", frames(textFrame(big)), wantText(big)),
		echoCase("10.1.1/text-65536/auto-fragmented-1300", fragmentsOf(opText, []byte(big), 1300), wantText(big)),
		echoCase("10.x/100-messages-in-one-stream", many, manyEchoes...),
		echoCase("10.x/5000-messages-in-one-stream", flood, floodEchoes...),
		failCase("10.x/unmasked-frame", 1002, frames(textFrame("masked"), unmasked), wantText("masked")),
		failCase("10.x/unmasked-ping", 1002, frames(clientFrame{op: opPing, payload: []byte("p"), noMask: true})),
		failFast(failCase("10.x/64-bit-length-top-bit", 1002, frames(textFrame("first"), overflow), wantText("first"))),
	}
}

// largeSizes and largeFragmentSizes drive Autobahn group 9 with a 1 MiB
// message limit.
var (
	largeSizes         = []int{64 << 10, 256 << 10, 1 << 20}
	largeFragmentSizes = []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10}
)

// largeCases: Autobahn group 9 at a 1 MiB message and frame limit: messages
// up to the limit in one frame and in fragments of many sizes are echoed
// exactly; one byte past the limit fails with 1009 (§7.4.1), judged from the
// declared length before the payload arrives (§10.4).
func largeCases(limit int) []frameCase {
	var cs []frameCase
	for _, n := range largeSizes {
		s := textPayload(n)
		b := binPayload(n)
		cs = append(cs,
			echoCase(fmt.Sprintf("9.1/text/%dKiB/one-frame", n>>10), frames(textFrame(s)), wantText(s)),
			echoCase(fmt.Sprintf("9.2/binary/%dKiB/one-frame", n>>10), frames(binFrame(b)), wantBin(b)),
		)
		for _, fs := range largeFragmentSizes {
			cs = append(cs,
				echoCase(fmt.Sprintf("9.3/text/%dKiB/fragments-%d", n>>10, fs), fragmentsOf(opText, []byte(s), fs), wantText(s)),
				echoCase(fmt.Sprintf("9.4/binary/%dKiB/fragments-%d", n>>10, fs), fragmentsOf(opBinary, b, fs), wantBin(b)),
			)
		}
	}
	// Invalid UTF-8 in the last byte of a large fragmented text message.
	bad := []byte(textPayload(limit))
	bad[len(bad)-1] = 0xff
	cs = append(cs, failCase("9.x/text/limit/invalid-last-byte", 1007, fragmentsOf(opText, bad, 4<<10)))
	// Pings between the fragments of a message at the limit.
	var pinged []clientFrame
	var pongs []expect
	s := textPayload(limit)
	for i, f := range fragmentsOf(opText, []byte(s), 64<<10) {
		p := []byte(fmt.Sprintf("ping %d", i))
		pinged, pongs = append(pinged, f, pingFrame(p)), append(pongs, wantPong(p))
	}
	cs = append(cs, echoCase("9.x/text/limit/pings-between-64KiB-fragments", pinged, append(pongs[:len(pongs)-1:len(pongs)-1],
		wantText(s), pongs[len(pongs)-1])...))
	full := binPayload(limit)
	overByFragment := append(fragmentsOf(opBinary, full, 64<<10), contFrame("x"))
	overByFragment[len(overByFragment)-2].more = true
	overByHeader := append(fragmentsOf(opBinary, full, 64<<10), opFrame(opCont, "").headerOnly(1))
	overByHeader[len(overByHeader)-2].more = true
	cs = append(cs,
		failFast(failCase("9.x/limit+1/one-frame/header-only", 1009,
			frames(opFrame(opBinary, "").headerOnly(uint64(limit)+1)))),
		failFast(failCase("9.x/limit+1/text/one-frame/header-only", 1009,
			frames(textFrame("before"), opFrame(opText, "").headerOnly(uint64(limit)+1)), wantText("before"))),
		failCase("9.x/limit+1/across-fragments", 1009, overByFragment),
		failFast(failCase("9.x/limit+1/across-fragments/header-only", 1009, overByHeader)),
	)
	return cs
}

// frameLimitCases run against a server whose frame limit (4 KiB) is below
// its message limit (16 KiB): each frame and each message is judged on its
// own (1009 for either, §7.4.1).
func frameLimitCases() []frameCase {
	msg := binPayload(16 << 10)
	overMsg := append(fragmentsOf(opBinary, msg, 4<<10), contFrame("x"))
	overMsg[len(overMsg)-2].more = true
	return []frameCase{
		echoCase("limits/frame-at-limit", frames(binFrame(binPayload(4<<10))), wantBin(binPayload(4<<10))),
		echoCase("limits/message-at-limit-in-4KiB-frames", fragmentsOf(opBinary, msg, 4<<10), wantBin(msg)),
		failFast(failCase("limits/frame-over-limit/header-only", 1009, frames(opFrame(opBinary, "").headerOnly(4<<10+1)))),
		failFast(failCase("limits/fragment-over-frame-limit/header-only", 1009,
			frames(binFrame([]byte("ok")).fragment(), opFrame(opCont, "").headerOnly(4<<10+1)))),
		failCase("limits/message-over-limit", 1009, overMsg),
		// A control frame is bounded by §5.5, not by the frame limit: a
		// 125-byte ping is fine even with a tiny frame limit elsewhere.
		echoCase("limits/ping-125", frames(pingFrame(bytes.Repeat([]byte("p"), 125))), wantPong(bytes.Repeat([]byte("p"), 125))),
	}
}
