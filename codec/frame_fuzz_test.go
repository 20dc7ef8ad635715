package codec_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
)

// Fuzz targets for the frame half of codec. Each one checks against an
// independent reference (gobwas's reader, the standard library), and the two
// that model streaming input also replay the input in pieces whose sizes come
// from the fuzzer's cuts argument: byte i of cuts is the size of piece i, and
// whatever is left after the last cut is one final piece.
//
// Run one with, for example:
//
//	go test -run '^$' -fuzz FuzzParseHeader -fuzztime 20s ./codec

// frameFuzzPieces splits data into pieces of the sizes given by cuts.
func frameFuzzPieces(data, cuts []byte) [][]byte {
	var pieces [][]byte
	for _, c := range cuts {
		k := min(len(data), int(c)%16)
		pieces = append(pieces, data[:k])
		data = data[k:]
	}
	return append(pieces, data)
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, []byte{1, 1, 3})
	f.Add([]byte{0x82, 0x7e, 0x01, 0x00}, []byte{3})
	f.Add([]byte{0x02, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}, []byte{5, 0, 5})
	f.Add([]byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, []byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, []byte{2})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		h, n, err := codec.ParseHeader(data)
		checkParseHeaderFuzz(t, data, h, n, err)

		// Accumulate pieces the way a connection accumulates reads; the first
		// answer that is not ErrShortHeader must be the whole input's answer.
		var acc []byte
		for _, p := range frameFuzzPieces(data, cuts) {
			acc = append(acc, p...)
			ph, pn, perr := codec.ParseHeader(acc)
			if perr == codec.ErrShortHeader {
				continue
			}
			if ph != h || pn != n || perr != err {
				t.Fatalf("after %d of %d bytes: %+v, %d, %v; whole input gave %+v, %d, %v",
					len(acc), len(data), ph, pn, perr, h, n, err)
			}
			break
		}
	})
}

// checkParseHeaderFuzz checks one ParseHeader result against ws.ReadHeader on
// the same bytes.
func checkParseHeaderFuzz(t *testing.T, data []byte, h ws.Header, n int, err error) {
	t.Helper()
	refH, refN, refErr := refParseHeader(data)
	refShort := errors.Is(refErr, io.EOF) || errors.Is(refErr, io.ErrUnexpectedEOF)
	switch {
	case err == nil:
		if refErr != nil || h != refH || n != refN {
			t.Fatalf("ParseHeader = %+v, %d; ws.ReadHeader = %+v, %d, %v", h, n, refH, refN, refErr)
		}
		// The size follows from byte 1 alone (§5.2); a non-minimal length
		// form is accepted, so ws.HeaderSize(h) may be smaller.
		want := 2 + map[byte]int{126: 2, 127: 8}[data[1]&0x7f]
		if h.Masked {
			want += 4
		}
		if n != want {
			t.Fatalf("n = %d for %+v, want %d", n, h, want)
		}
		// The header alone parses the same: nothing past n was read.
		if h2, n2, err2 := codec.ParseHeader(data[:n]); h2 != h || n2 != n || err2 != nil {
			t.Fatalf("ParseHeader(data[:n]) = %+v, %d, %v", h2, n2, err2)
		}
	case err == codec.ErrShortHeader:
		if !refShort {
			t.Fatalf("ParseHeader short, ws.ReadHeader = %+v, %v", refH, refErr)
		}
	case err == codec.ErrLengthOverflow:
		// gobwas reads the masking key before it looks at the length, so on
		// a masked header cut inside the key it reports a short read instead.
		overflowLen := len(data) >= 10 && data[1]&0x7f == 127 && data[2]&0x80 != 0
		if !overflowLen || (refErr != ws.ErrHeaderLengthMSB && !refShort) {
			t.Fatalf("ParseHeader overflow, ws.ReadHeader = %+v, %v", refH, refErr)
		}
	default:
		t.Fatalf("ParseHeader returned unexpected error %v", err)
	}
	if err != nil && (n != 0 || h != (ws.Header{})) {
		t.Fatalf("on error got %+v, %d; want zero values", h, n)
	}
	if err == nil {
		// Whatever the header says, CheckClientHeader must not panic and
		// must agree with gobwas's checker on accept/reject.
		for _, inMessage := range []bool{false, true} {
			checkAgainstGobwasCheck(t, h, inMessage)
		}
	}
}

func FuzzUTF8(f *testing.F) {
	for _, tc := range utf8TestCases {
		f.Add([]byte(tc.in), []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		checkUTF8Chunked(t, data, frameFuzzPieces(data, cuts))
	})
}

func FuzzClosePayload(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x03})
	f.Add([]byte{0x03, 0xe8})
	f.Add([]byte("\x03\xe9going away"))
	f.Add([]byte("\x0f\xa0\xed\xa0\x80"))
	f.Add([]byte("\x03\xee"))
	f.Add([]byte("\x13\x87" + "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€"))
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := codec.ParseClosePayload(p)
		switch {
		case len(p) == 0:
			if code != codec.StatusNoStatus || reason != nil || err != nil {
				t.Fatalf("empty: %d, %q, %v", code, reason, err)
			}
		case len(p) == 1:
			if err != codec.ErrBadCloseLength {
				t.Fatalf("1 byte: err %v", err)
			}
		default:
			wire := codec.StatusCode(p[0])<<8 | codec.StatusCode(p[1])
			var want error
			switch {
			case !refValidCloseCode(wire):
				want = codec.ErrBadCloseCode
			case !utf8.Valid(p[2:]):
				want = codec.ErrInvalidUTF8
			}
			if err != want {
				t.Fatalf("ParseClosePayload(% x) error %v, want %v", p, err, want)
			}
			// gobwas's checker agrees except on the IANA codes 1012–1014,
			// which it predates, and on codes from 5000 up, which it does
			// not check (§7.4.2 defines nothing above 4999).
			refErr := ws.CheckCloseFrameData(ws.StatusCode(wire), string(p[2:]))
			comparable := !(wire >= 1012 && wire <= 1014) && wire < 5000
			if comparable && (err == nil) != (refErr == nil) {
				t.Fatalf("ParseClosePayload(% x) = %v, ws.CheckCloseFrameData = %v", p, err, refErr)
			}
			if err != nil {
				if code != 0 || reason != nil {
					t.Fatalf("on error got %d, %q", code, reason)
				}
				break
			}
			if code != wire || !bytes.Equal(reason, p[2:]) {
				t.Fatalf("got %d, %q from % x", code, reason, p)
			}
			// A valid body that fits a control frame round-trips exactly.
			if len(p) <= ws.MaxControlFramePayloadSize {
				if again := codec.AppendClosePayload(nil, code, string(reason)); !bytes.Equal(again, p) {
					t.Fatalf("AppendClosePayload round trip: % x, want % x", again, p)
				}
			}
		}

		// Any bytes as a reason: the body fits a control frame, is valid,
		// and its reason is a prefix of what was asked for.
		body := codec.AppendClosePayload(nil, codec.StatusNormal, string(p))
		if len(body) > ws.MaxControlFramePayloadSize {
			t.Fatalf("body of %d bytes", len(body))
		}
		_, r, err := codec.ParseClosePayload(body)
		if err != nil || !bytes.HasPrefix(p, r) {
			t.Fatalf("AppendClosePayload(%q) gives body % x: %q, %v", p, body, r, err)
		}
		// The cut is the longest valid prefix that fits: one more whole rune
		// would either not fit or not be valid.
		if rest := p[len(r):]; len(rest) > 0 {
			ru, size := utf8.DecodeRune(rest)
			if ru != utf8.RuneError || size != 1 {
				if len(r)+size <= 123 {
					t.Fatalf("reason %q cut at %d although the next rune (%d bytes) fits", p, len(r), size)
				}
			}
		}
		frame := codec.AppendCloseFrame(nil, codec.StatusNormal, string(p))
		if !bytes.Equal(frame[2:], body) || int(frame[1]) != len(body) || frame[0] != 0x88 {
			t.Fatalf("AppendCloseFrame = % x, body % x", frame, body)
		}
	})
}
