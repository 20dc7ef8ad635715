package codec_test

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
)

// frameTestLengths covers every length form of §5.2 and both sides of each
// boundary: 7-bit (0..125), 16-bit (126..65535) and 64-bit (65536..2^63-1).
var frameTestLengths = []int64{
	0, 1, 125, // 7-bit
	126, 127, 65535, // 16-bit
	65536, 1 << 32, math.MaxInt64, // 64-bit
}

// refEncodeHeader encodes h with gobwas's writer, the reference encoder.
func refEncodeHeader(t testing.TB, h ws.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		t.Fatalf("ws.WriteHeader(%+v): %v", h, err)
	}
	return b.Bytes()
}

// refParseHeader decodes p with gobwas's reader, the reference decoder, and
// reports how many bytes it consumed.
func refParseHeader(p []byte) (ws.Header, int, error) {
	r := bytes.NewReader(p)
	h, err := ws.ReadHeader(r)
	return h, len(p) - r.Len(), err
}

func TestParseHeaderRoundTrip(t *testing.T) {
	mask := [4]byte{0xde, 0xad, 0xbe, 0xef}
	for _, length := range frameTestLengths {
		t.Run("len="+strconv.FormatInt(length, 10), func(t *testing.T) {
			for op := range ws.OpCode(16) {
				for rsv := range byte(8) {
					for _, fin := range []bool{false, true} {
						for _, masked := range []bool{false, true} {
							h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: masked, Length: length}
							if masked {
								h.Mask = mask
							}
							wire := refEncodeHeader(t, h)
							checkParseHeaderAgainstRef(t, h, wire)
						}
					}
				}
			}
		})
	}
}

// checkParseHeaderAgainstRef checks that ParseHeader decodes wire (the
// encoding of want) to want, agrees with ws.ReadHeader, and ignores bytes
// after the header.
func checkParseHeaderAgainstRef(t *testing.T, want ws.Header, wire []byte) {
	t.Helper()
	refH, refN, refErr := refParseHeader(wire)
	if refErr != nil || refH != want {
		t.Fatalf("reference decoder disagrees with reference encoder: %+v, %v", refH, refErr)
	}
	// Trailing payload bytes must not change the result.
	withPayload := append(bytes.Clone(wire), 0xff, 0x00, 0x81)
	for _, p := range [][]byte{wire, withPayload} {
		h, n, err := codec.ParseHeader(p)
		if err != nil || h != want || n != refN || n != len(wire) {
			t.Fatalf("ParseHeader(% x) = %+v, %d, %v; want %+v, %d, nil", p, h, n, err, want, len(wire))
		}
	}
}

func TestParseHeaderShort(t *testing.T) {
	headers := []ws.Header{
		{Fin: true, OpCode: ws.OpText, Length: 5},
		{Fin: true, OpCode: ws.OpText, Length: 5, Masked: true, Mask: [4]byte{1, 2, 3, 4}},
		{OpCode: ws.OpBinary, Length: 300},
		{OpCode: ws.OpBinary, Length: 300, Masked: true, Mask: [4]byte{1, 2, 3, 4}},
		{Fin: true, OpCode: ws.OpBinary, Length: 1 << 40},
		{Fin: true, OpCode: ws.OpBinary, Length: 1 << 40, Masked: true, Mask: [4]byte{1, 2, 3, 4}},
	}
	for _, h := range headers {
		wire := refEncodeHeader(t, h)
		t.Run(fmt.Sprintf("len=%d/masked=%v", h.Length, h.Masked), func(t *testing.T) {
			for i := range len(wire) {
				h, n, err := codec.ParseHeader(wire[:i])
				if err != codec.ErrShortHeader || n != 0 || h != (ws.Header{}) {
					t.Errorf("ParseHeader(% x) = %+v, %d, %v; want zero, 0, ErrShortHeader", wire[:i], h, n, err)
				}
			}
		})
	}
	if _, _, err := codec.ParseHeader(nil); err != codec.ErrShortHeader {
		t.Errorf("ParseHeader(nil) error = %v, want ErrShortHeader", err)
	}
}

func TestParseHeaderLengthOverflow(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"top bit, unmasked", []byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, codec.ErrLengthOverflow},
		{"all ones, unmasked", []byte{0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, codec.ErrLengthOverflow},
		{"top bit, masked", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, codec.ErrLengthOverflow},
		// Known as soon as the length is complete: no need to wait for the key.
		{"top bit, mask missing", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1}, codec.ErrLengthOverflow},
		{"top bit, length incomplete", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0}, codec.ErrShortHeader},
		{"largest legal length", []byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := codec.ParseHeader(tt.wire)
			if err != tt.want {
				t.Fatalf("ParseHeader(% x) error = %v, want %v", tt.wire, err, tt.want)
			}
			if err != nil && n != 0 {
				t.Errorf("n = %d on error, want 0", n)
			}
		})
	}
}

// TestParseHeaderNonMinimalLength pins the documented choice: a length in a
// longer form than needed is accepted (§5.2 binds the sender, not the
// receiver).
func TestParseHeaderNonMinimalLength(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want int64
	}{
		{"16-bit form of 5", []byte{0x81, 0x7e, 0x00, 0x05}, 5},
		{"64-bit form of 5", []byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0, 5}, 5},
		{"64-bit form of 300", []byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0x01, 0x2c}, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := codec.ParseHeader(tt.wire)
			if err != nil || h.Length != tt.want || n != len(tt.wire) {
				t.Fatalf("ParseHeader(% x) = %+v, %d, %v; want length %d, n %d", tt.wire, h, n, err, tt.want, len(tt.wire))
			}
		})
	}
}

func TestCheckClientHeader(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	hdr := func(fin bool, rsv byte, op ws.OpCode, length int64) ws.Header {
		return ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: true, Mask: mask, Length: length}
	}
	unmasked := hdr(true, 0, ws.OpText, 3)
	unmasked.Masked, unmasked.Mask = false, [4]byte{}

	tests := []struct {
		name      string
		h         ws.Header
		inMessage bool
		want      error
	}{
		{"text", hdr(true, 0, ws.OpText, 3), false, nil},
		{"binary", hdr(true, 0, ws.OpBinary, 1<<20), false, nil},
		{"first fragment", hdr(false, 0, ws.OpText, 3), false, nil},
		{"middle fragment", hdr(false, 0, ws.OpContinuation, 3), true, nil},
		{"last fragment", hdr(true, 0, ws.OpContinuation, 3), true, nil},
		{"ping", hdr(true, 0, ws.OpPing, 0), false, nil},
		{"ping inside message", hdr(true, 0, ws.OpPing, 125), true, nil},
		{"pong inside message", hdr(true, 0, ws.OpPong, 1), true, nil},
		{"close inside message", hdr(true, 0, ws.OpClose, 2), true, nil},
		{"close 125", hdr(true, 0, ws.OpClose, 125), false, nil},

		{"unmasked", unmasked, false, codec.ErrUnmasked},
		{"rsv1", hdr(true, 4, ws.OpText, 3), false, codec.ErrReservedBits},
		{"rsv2", hdr(true, 2, ws.OpText, 3), false, codec.ErrReservedBits},
		{"rsv3", hdr(true, 1, ws.OpPing, 0), false, codec.ErrReservedBits},
		{"opcode 3", hdr(true, 0, 3, 0), false, codec.ErrReservedOpcode},
		{"opcode 7", hdr(true, 0, 7, 0), false, codec.ErrReservedOpcode},
		{"opcode 0xB", hdr(true, 0, 0xb, 0), false, codec.ErrReservedOpcode},
		{"opcode 0xF", hdr(true, 0, 0xf, 0), true, codec.ErrReservedOpcode},
		{"ping 126", hdr(true, 0, ws.OpPing, 126), false, codec.ErrControlTooLong},
		{"pong 65536", hdr(true, 0, ws.OpPong, 65536), false, codec.ErrControlTooLong},
		{"close 126", hdr(true, 0, ws.OpClose, 126), false, codec.ErrControlTooLong},
		{"fragmented ping", hdr(false, 0, ws.OpPing, 0), false, codec.ErrControlFragmented},
		{"fragmented close", hdr(false, 0, ws.OpClose, 2), true, codec.ErrControlFragmented},
		{"continuation, no message", hdr(true, 0, ws.OpContinuation, 3), false, codec.ErrUnexpectedCont},
		{"unfinished continuation, no message", hdr(false, 0, ws.OpContinuation, 3), false, codec.ErrUnexpectedCont},
		{"text inside message", hdr(true, 0, ws.OpText, 3), true, codec.ErrExpectedCont},
		{"binary fragment inside message", hdr(false, 0, ws.OpBinary, 3), true, codec.ErrExpectedCont},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codec.CheckClientHeader(tt.h, tt.inMessage); got != tt.want {
				t.Fatalf("CheckClientHeader(%+v, %v) = %v, want %v", tt.h, tt.inMessage, got, tt.want)
			}
			checkAgainstGobwasCheck(t, tt.h, tt.inMessage)
		})
	}
}

// checkAgainstGobwasCheck checks that CheckClientHeader accepts exactly what
// ws.CheckHeader accepts for a server with no extension.
func checkAgainstGobwasCheck(t *testing.T, h ws.Header, inMessage bool) {
	t.Helper()
	s := ws.StateServerSide
	if inMessage {
		s = s.Set(ws.StateFragmented)
	}
	ours, ref := codec.CheckClientHeader(h, inMessage), ws.CheckHeader(h, s)
	if (ours == nil) != (ref == nil) {
		t.Errorf("CheckClientHeader(%+v, %v) = %v but ws.CheckHeader = %v", h, inMessage, ours, ref)
	}
}

// TestCheckClientHeaderExhaustive compares with ws.CheckHeader on every
// combination of the fields the rules look at.
func TestCheckClientHeaderExhaustive(t *testing.T) {
	for op := range ws.OpCode(16) {
		for rsv := range byte(8) {
			for _, length := range []int64{0, 125, 126, 1 << 40} {
				for _, fin := range []bool{false, true} {
					for _, masked := range []bool{false, true} {
						for _, inMessage := range []bool{false, true} {
							h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: masked, Length: length}
							checkAgainstGobwasCheck(t, h, inMessage)
						}
					}
				}
			}
		}
	}
}

func TestAppendFrameHeader(t *testing.T) {
	prefix := []byte("prefix")
	for _, length := range frameTestLengths {
		if length > math.MaxInt {
			continue // not an int on this platform
		}
		n := int(length)
		t.Run("len="+strconv.Itoa(n), func(t *testing.T) {
			for _, op := range []ws.OpCode{ws.OpContinuation, ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong} {
				for _, fin := range []bool{false, true} {
					want := refEncodeHeader(t, ws.Header{Fin: fin, OpCode: op, Length: length})
					if hl := codec.ServerHeaderLen(n); hl != len(want) {
						t.Fatalf("ServerHeaderLen(%d) = %d, want %d", n, hl, len(want))
					}

					got := codec.AppendFrameHeader(bytes.Clone(prefix), op, fin, n)
					if !bytes.Equal(got, append(bytes.Clone(prefix), want...)) {
						t.Fatalf("AppendFrameHeader(%v, %v, %d) = % x, want prefix + % x", op, fin, n, got, want)
					}

					// PutFrameHeader writes the same bytes at the end of dst and
					// leaves the rest alone.
					dst := bytes.Repeat([]byte{0xaa}, 12)
					start := codec.PutFrameHeader(dst, op, fin, n)
					if start != len(dst)-len(want) || !bytes.Equal(dst[start:], want) {
						t.Fatalf("PutFrameHeader: start %d, header % x; want %d, % x", start, dst[start:], len(dst)-len(want), want)
					}
					if !bytes.Equal(dst[:start], bytes.Repeat([]byte{0xaa}, start)) {
						t.Fatalf("PutFrameHeader wrote before start: % x", dst)
					}

					h, hn, err := codec.ParseHeader(want)
					if err != nil || hn != len(want) || h != (ws.Header{Fin: fin, OpCode: op, Length: length}) {
						t.Fatalf("ParseHeader(AppendFrameHeader) = %+v, %d, %v", h, hn, err)
					}
				}
			}
		})
	}
}

// TestAppendFrameHeaderDropsHighOpcodeBits pins that an out-of-range opcode
// cannot set RSV bits on the wire.
func TestAppendFrameHeaderDropsHighOpcodeBits(t *testing.T) {
	got := codec.AppendFrameHeader(nil, ws.OpCode(0x71), true, 0)
	if want := []byte{0x81, 0x00}; !bytes.Equal(got, want) {
		t.Fatalf("AppendFrameHeader(0x71) = % x, want % x", got, want)
	}
}

func TestPutFrameHeaderReservePattern(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			payload := bytes.Repeat([]byte{'x'}, n)
			buf := make([]byte, 10, 10+n)
			buf = append(buf, payload...)
			start := codec.PutFrameHeader(buf[:10], ws.OpBinary, true, n)
			got := buf[start:]
			want := codec.AppendFrame(nil, ws.OpBinary, true, payload)
			if !bytes.Equal(got, want) {
				t.Fatalf("reserve+PutFrameHeader frame differs from AppendFrame (start %d)", start)
			}
		})
	}
}

func TestFrameHeaderPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"PutFrameHeader dst too short for 2", func() { codec.PutFrameHeader(make([]byte, 1), ws.OpText, true, 0) }},
		{"PutFrameHeader dst too short for 4", func() { codec.PutFrameHeader(make([]byte, 3), ws.OpText, true, 126) }},
		{"PutFrameHeader dst too short for 10", func() { codec.PutFrameHeader(make([]byte, 9), ws.OpText, true, 65536) }},
		{"PutFrameHeader negative", func() { codec.PutFrameHeader(make([]byte, 10), ws.OpText, true, -1) }},
		{"AppendFrameHeader negative", func() { codec.AppendFrameHeader(nil, ws.OpText, true, -1) }},
		{"ServerHeaderLen negative", func() { codec.ServerHeaderLen(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("did not panic")
				}
			}()
			tt.f()
		})
	}
}

func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpContinuation, ws.OpPing} {
			for _, fin := range []bool{false, true} {
				t.Run(fmt.Sprintf("n=%d/op=%d/fin=%v", n, op, fin), func(t *testing.T) {
					payload := make([]byte, n)
					for i := range payload {
						payload[i] = byte(i * 7)
					}
					var want bytes.Buffer
					if err := ws.WriteFrame(&want, ws.NewFrame(op, fin, payload)); err != nil {
						t.Fatal(err)
					}
					got := codec.AppendFrame([]byte("pre"), op, fin, payload)
					if !bytes.Equal(got, append([]byte("pre"), want.Bytes()...)) {
						t.Fatalf("AppendFrame differs from ws.WriteFrame (len %d vs %d)", len(got)-3, want.Len())
					}
				})
			}
		}
	}
}

// TestFrameHotPathAllocs checks the 0 allocs/op promises.
func TestFrameHotPathAllocs(t *testing.T) {
	wire := []byte{0x81, 0xfe, 0x01, 0x00, 1, 2, 3, 4}
	payload := make([]byte, 4096)
	buf := make([]byte, 0, 64)
	reserve := make([]byte, 10)
	var sink int
	tests := []struct {
		name string
		f    func()
	}{
		{"ParseHeader", func() {
			h, n, _ := codec.ParseHeader(wire)
			sink += n + int(h.Length)
		}},
		{"ParseHeader short", func() {
			_, _, err := codec.ParseHeader(wire[:3])
			if err == nil {
				sink++
			}
		}},
		{"CheckClientHeader ok", func() {
			if codec.CheckClientHeader(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true}, false) != nil {
				sink++
			}
		}},
		{"CheckClientHeader error", func() {
			if codec.CheckClientHeader(ws.Header{OpCode: ws.OpText}, false) != nil {
				sink++
			}
		}},
		{"Unmask", func() { codec.Unmask(payload, [4]byte{1, 2, 3, 4}, 3) }},
		{"AppendFrameHeader", func() { buf = codec.AppendFrameHeader(buf[:0], ws.OpText, true, 1<<20) }},
		{"PutFrameHeader", func() { sink += codec.PutFrameHeader(reserve, ws.OpText, true, 1<<20) }},
		{"AppendFrame", func() { buf = codec.AppendFrame(buf[:0], ws.OpText, true, payload[:50]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(100, tt.f); a != 0 {
				t.Fatalf("%v allocs/op, want 0", a)
			}
		})
	}
	_ = sink
}

var (
	benchFrameHeader ws.Header
	benchFrameN      int
)

func BenchmarkParseHeader(b *testing.B) {
	cases := []struct {
		name string
		h    ws.Header
	}{
		{"7bit", ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 100}},
		{"16bit", ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 4096}},
		{"64bit", ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 1 << 20}},
	}
	for _, c := range cases {
		wire := refEncodeHeader(b, c.h)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchFrameHeader, benchFrameN, _ = codec.ParseHeader(wire)
			}
		})
		// The reference, reading from a reused bytes.Reader and buffer: what
		// parsing costs without ParseHeader.
		b.Run(c.name+"/gobwas", func(b *testing.B) {
			b.ReportAllocs()
			var r bytes.Reader
			buf := make([]byte, 0, ws.MaxHeaderSize-2)
			for b.Loop() {
				r.Reset(wire)
				benchFrameHeader, _ = ws.ReadHeaderBuffer(&r, buf)
			}
		})
	}
}

func BenchmarkCheckClientHeader(b *testing.B) {
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Length: 100}
	b.ReportAllocs()
	var err error
	for b.Loop() {
		err = codec.CheckClientHeader(h, false)
	}
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, n := range []int{16, 128, 4096, 65536} {
		payload := make([]byte, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			buf := make([]byte, 0, n+10)
			for b.Loop() {
				buf = codec.AppendFrame(buf[:0], ws.OpBinary, true, payload)
			}
		})
	}
	b.Run("header-only", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 16)
		for b.Loop() {
			buf = codec.AppendFrameHeader(buf[:0], ws.OpText, true, 4096)
		}
	})
	b.Run("put-header", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 10)
		for b.Loop() {
			benchFrameN = codec.PutFrameHeader(buf, ws.OpText, true, 4096)
		}
	})
}
