package codec_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pushd/pushd/codec"
)

// refFirstImpossible is the reference for fail-fast behaviour, built on the
// standard library: it returns the index of the first byte at which q stops
// being the beginning of valid UTF-8, or -1 if q is valid or valid up to a
// code point that later bytes could still complete. It runs in linear time,
// so fuzzing with long inputs stays fast.
func refFirstImpossible(q []byte) int {
	for i := 0; i < len(q); {
		r, size := utf8.DecodeRune(q[i:])
		if r != utf8.RuneError || size != 1 { // a literal U+FFFD has size 3
			i += size
			continue
		}
		// No valid code point starts at i. utf8.FullRune reports true as soon
		// as a prefix of q[i:] is complete or already impossible, so the
		// first such prefix ends at the first impossible byte.
		for k := 1; k <= utf8.UTFMax && i+k <= len(q); k++ {
			if utf8.FullRune(q[i : i+k]) {
				return i + k - 1
			}
		}
		return -1 // a valid but unfinished code point at the end
	}
	return -1
}

// utf8TestCases are the UTF-8 cases of the Autobahn testsuite (group 6) and
// Markus Kuhn's decoder stress test they come from, plus the RFC 3629 §4
// boundaries.
var utf8TestCases = []struct {
	name string
	in   string
}{
	{"empty", ""},
	{"ascii", "Hello, World!"},
	{"kosme", "κόσμε"},
	{"kosme then overlong", "κόσμε\xed\xa0\x80edited"},
	{"hello with umlauts", "Hello-µ@ßöäüàá-UTF-8!!"},
	// 6.5–6.7: first and last sequences of each length.
	{"U+0000", "\x00"},
	{"U+007F", "\x7f"},
	{"U+0080", "\xc2\x80"},
	{"U+07FF", "\xdf\xbf"},
	{"U+0800", "\xe0\xa0\x80"},
	{"U+FFFF", "\xef\xbf\xbf"},
	{"U+10000", "\xf0\x90\x80\x80"},
	{"U+10FFFF", "\xf4\x8f\xbf\xbf"},
	// Other boundaries.
	{"U+D7FF", "\xed\x9f\xbf"},
	{"U+E000", "\xee\x80\x80"},
	{"U+FFFD", "\xef\xbf\xbd"},
	{"U+110000", "\xf4\x90\x80\x80"},
	{"U+13FFFF", "\xf4\xbf\xbf\xbf"},
	{"5-byte U+200000", "\xf8\x88\x80\x80\x80"},
	{"6-byte U+4000000", "\xfc\x84\x80\x80\x80\x80"},
	// 6.8: unexpected continuation bytes.
	{"lone 80", "\x80"},
	{"lone bf", "\xbf"},
	{"two continuations", "\x80\xbf"},
	{"ascii then continuation", "abc\x80"},
	// 6.9: lonely start characters.
	{"lone c0 then space", "\xc0 "},
	{"lone e0 then space", "\xe0 "},
	{"lone f0 then space", "\xf0 "},
	{"lone f8 then space", "\xf8 "},
	{"lone fc then space", "\xfc "},
	// 6.10: sequences with the last continuation byte missing.
	{"2-byte missing 1", "\xc2"},
	{"3-byte missing 1", "\xe2\x82"},
	{"3-byte missing 2", "\xe2"},
	{"4-byte missing 1", "\xf0\x9d\x84"},
	{"4-byte missing 3", "\xf0"},
	{"missing in the middle", "\xe2\x82x\xac"},
	{"concatenated incomplete", "\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf"},
	// 6.11: impossible bytes.
	{"fe", "\xfe"},
	{"ff", "\xff"},
	{"fe fe ff ff", "\xfe\xfe\xff\xff"},
	{"f5", "\xf5\x80\x80\x80"},
	// 6.12–6.14: overlong forms.
	{"overlong / 2", "\xc0\xaf"},
	{"overlong / 3", "\xe0\x80\xaf"},
	{"overlong / 4", "\xf0\x80\x80\xaf"},
	{"overlong / 5", "\xf8\x80\x80\x80\xaf"},
	{"max overlong 2", "\xc1\xbf"},
	{"max overlong 3", "\xe0\x9f\xbf"},
	{"max overlong 4", "\xf0\x8f\xbf\xbf"},
	{"overlong NUL 2", "\xc0\x80"},
	{"overlong NUL 3", "\xe0\x80\x80"},
	{"overlong NUL 4", "\xf0\x80\x80\x80"},
	// 6.15–6.16: UTF-16 surrogates.
	{"U+D800", "\xed\xa0\x80"},
	{"U+DB7F", "\xed\xad\xbf"},
	{"U+DFFF", "\xed\xbf\xbf"},
	{"paired surrogates", "\xed\xa0\x80\xed\xb0\x80"},
	// 6.17: noncharacters are valid UTF-8.
	{"U+FFFE", "\xef\xbf\xbe"},
	{"U+FDD0", "\xef\xb7\x90"},
	{"U+10FFFE", "\xf4\x8f\xbf\xbe"},
	// Long inputs that cross the 8-byte fast path in various places.
	{"long ascii", strings.Repeat("0123456789abcdef", 20)},
	{"long ascii then bad", strings.Repeat("abcdefgh", 9) + "\xc3\x28"},
	{"long mixed", strings.Repeat("ascii text 𝄞 and € and ü ", 10)},
	{"ascii runs around a split rune", "abcdefg\xe2\x82\xacabcdefghijklmnop"},
}

func TestUTF8MatchesStdlib(t *testing.T) {
	for _, tc := range utf8TestCases {
		t.Run(tc.name, func(t *testing.T) {
			checkUTF8Chunked(t, []byte(tc.in), [][]byte{[]byte(tc.in)})
			// Every two-way split.
			for cut := range len(tc.in) + 1 {
				checkUTF8Chunked(t, []byte(tc.in), [][]byte{[]byte(tc.in[:cut]), []byte(tc.in[cut:])})
			}
			// One byte at a time.
			var bytewise [][]byte
			for i := range len(tc.in) {
				bytewise = append(bytewise, []byte(tc.in[i:i+1]))
			}
			checkUTF8Chunked(t, []byte(tc.in), bytewise)
		})
	}
}

// checkUTF8Chunked feeds chunks (which concatenate to all) to a fresh
// validator and checks every Write result and the final Done against the
// standard library.
func checkUTF8Chunked(t testing.TB, all []byte, chunks [][]byte) {
	t.Helper()
	var v codec.UTF8
	bad := refFirstImpossible(all)
	seen := 0
	for i, c := range chunks {
		seen += len(c)
		if got, want := v.Write(c), bad < 0 || seen <= bad; got != want {
			t.Fatalf("input %q: Write of chunk %d (%q) = %v, want %v", all, i, c, got, want)
		}
	}
	if got, want := v.Done(), utf8.Valid(all); got != want {
		t.Fatalf("input %q in %d chunks: Done = %v, want %v", all, len(chunks), got, want)
	}
}

// TestUTF8FailFast checks that Write reports false at the first byte that
// makes the input impossible, not later (§8.1 lets the server fail early).
func TestUTF8FailFast(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		failAt int // index of the first impossible byte
	}{
		{"c0 can only start an overlong", "\xc0\x80", 0},
		{"c1 can only start an overlong", "\xc1\xbf", 0},
		{"f5 is above U+10FFFF", "\xf5\x80\x80\x80", 0},
		{"fe", "ab\xfe", 2},
		{"ff", "\xff", 0},
		{"overlong 3-byte at second byte", "\xe0\x80\x80", 1},
		{"overlong 4-byte at second byte", "\xf0\x8f\xbf\xbf", 1},
		{"surrogate at second byte", "\xed\xa0\x80", 1},
		{"above U+10FFFF at second byte", "\xf4\x90\x80\x80", 1},
		{"lone continuation", "abc\x80", 3},
		{"missing continuation", "\xe2\x82x", 2},
		{"ascii run then bad", strings.Repeat("a", 17) + "\xc3\x28", 18},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v codec.UTF8
			for i := range len(tt.in) {
				got := v.Write([]byte{tt.in[i]})
				if want := i < tt.failAt; got != want {
					t.Fatalf("Write of byte %d (%#x) = %v, want %v", i, tt.in[i], got, want)
				}
			}
			// Once false, it stays false, even for valid input.
			if v.Write([]byte("valid")) || v.Done() {
				t.Fatal("validator recovered after an invalid byte")
			}
			v.Reset()
			if !v.Write([]byte("valid €")) || !v.Done() {
				t.Fatal("Reset did not make the validator ready again")
			}
		})
	}
}

// TestUTF8Exhaustive feeds every 2-byte input, and every 3-byte input whose
// last byte is one of the boundary values of RFC 3629 §4, one byte per Write,
// so each transition of the automaton is compared with the reference.
func TestUTF8Exhaustive(t *testing.T) {
	boundaries := []byte{0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff}
	in := make([]byte, 3)
	for b0 := range 256 {
		for b1 := range 256 {
			for _, b2 := range boundaries {
				in[0], in[1], in[2] = byte(b0), byte(b1), b2
				var v codec.UTF8
				bad := refFirstImpossible(in)
				for i := range in {
					if got, want := v.Write(in[i:i+1]), bad < 0 || i < bad; got != want {
						t.Fatalf("% x: Write of byte %d = %v, want %v", in, i, got, want)
					}
					if got, want := v.Done(), utf8.Valid(in[:i+1]); got != want {
						t.Fatalf("% x: Done after byte %d = %v, want %v", in, i, got, want)
					}
				}
			}
		}
	}
}

func TestUTF8ZeroValueAndReset(t *testing.T) {
	var v codec.UTF8
	if !v.Done() {
		t.Fatal("zero value: Done = false before any input")
	}
	if !v.Write(nil) || !v.Done() {
		t.Fatal("empty write changed the state")
	}
	if !v.Write([]byte("\xe2\x82")) || v.Done() {
		t.Fatal("incomplete rune: want Write true, Done false")
	}
	v.Reset()
	if !v.Done() {
		t.Fatal("Reset inside a rune did not return to a boundary")
	}
}

// TestUTF8Random compares with the standard library on generated inputs that
// mix ASCII runs, valid runes of every length and random bytes, split at
// random places.
func TestUTF8Random(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 6455))
	for iter := range 3000 {
		in := utf8TestInput(r, r.IntN(64))
		checkUTF8Chunked(t, in, utf8TestChunks(r, in))
		if t.Failed() {
			t.Fatalf("iteration %d", iter)
		}
	}
}

// utf8TestInput builds n pieces of mostly-valid text.
func utf8TestInput(r *rand.Rand, n int) []byte {
	var b []byte
	for range n {
		switch r.IntN(6) {
		case 0:
			b = append(b, strings.Repeat("x", r.IntN(20))...)
		case 1:
			b = utf8.AppendRune(b, rune(r.IntN(0x80)))
		case 2:
			b = utf8.AppendRune(b, rune(0x80+r.IntN(0x800-0x80)))
		case 3:
			b = utf8.AppendRune(b, rune(0x800+r.IntN(0x10000-0x800))) // may be a surrogate: encodes as U+FFFD
		case 4:
			b = utf8.AppendRune(b, rune(0x10000+r.IntN(0x110000-0x10000)))
		default:
			if r.IntN(8) == 0 { // keep most inputs valid for a while
				b = append(b, byte(r.Uint32()))
			}
		}
	}
	return b
}

// utf8TestChunks splits in at random places.
func utf8TestChunks(r *rand.Rand, in []byte) [][]byte {
	var chunks [][]byte
	for len(in) > 0 {
		k := min(len(in), r.IntN(12))
		chunks = append(chunks, in[:k])
		in = in[k:]
	}
	return chunks
}

func TestUTF8Allocs(t *testing.T) {
	in := []byte(strings.Repeat("ascii and € 𝄞 ", 20))
	var v codec.UTF8
	if a := testing.AllocsPerRun(100, func() {
		v.Reset()
		if !v.Write(in) {
			t.Fatal("valid input rejected")
		}
	}); a != 0 {
		t.Fatalf("Write: %v allocs/op, want 0", a)
	}
}

var benchUTF8OK bool

func BenchmarkUTF8(b *testing.B) {
	inputs := []struct {
		name string
		in   []byte
	}{
		{"ascii", []byte(strings.Repeat(`{"type":"message","topic":"ticker.BTC","seq":1234} `, 80))},
		{"mixed", []byte(strings.Repeat(`{"msg":"Grüße, 世界 €5 𝄞"} `, 130))},
		{"cjk", []byte(strings.Repeat("世界你好", 340))},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.in)))
			var v codec.UTF8
			for b.Loop() {
				v.Reset()
				benchUTF8OK = v.Write(in.in) && v.Done()
			}
			if !benchUTF8OK {
				b.Fatal("valid input rejected")
			}
		})
		b.Run(in.name+"/stdlib", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.in)))
			for b.Loop() {
				benchUTF8OK = utf8.Valid(in.in)
			}
		})
	}
}
