package wsclient

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestParseHeader(t *testing.T) {
	long := binary.BigEndian.AppendUint64([]byte{0x82, 127}, 70000)
	tests := []struct {
		name string
		in   []byte
		want header
		err  error
	}{
		{"empty", nil, header{}, errNeedMore},
		{"one byte", []byte{0x81}, header{}, errNeedMore},
		{"short text", []byte{0x81, 5}, header{fin: true, op: OpText, length: 5, size: 2}, nil},
		{"16-bit length", []byte{0x81, 126, 0x01, 0x00}, header{fin: true, op: OpText, length: 256, size: 4}, nil},
		{"16-bit partial", []byte{0x81, 126, 0x01}, header{}, errNeedMore},
		{"64-bit length", long, header{fin: true, op: OpBinary, length: 70000, size: 10}, nil},
		{"64-bit top bit", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, header{}, errTooBig},
		{"not final", []byte{0x01, 3}, header{op: OpText, length: 3, size: 2}, nil},
		{"masked from server", []byte{0x81, 0x85}, header{}, errMasked},
		{"rsv1", []byte{0xc1, 1}, header{}, errReserved},
		{"reserved opcode", []byte{0x83, 0}, header{}, errReserved},
		{"ping too long", []byte{0x89, 126, 0, 126}, header{}, errControl},
		{"fragmented ping", []byte{0x09, 0}, header{}, errControl},
		{"over limit", binary.BigEndian.AppendUint64([]byte{0x81, 127}, 1<<20+1), header{}, errTooBig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseHeader(tc.in, 1<<20)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && h != tc.want {
				t.Fatalf("header = %+v, want %+v", h, tc.want)
			}
		})
	}
}

// unmaskFrame is a naive reference decoder of a masked client frame.
func unmaskFrame(t *testing.T, f []byte) (Opcode, []byte) {
	t.Helper()
	if f[0]&0x80 == 0 || f[1]&0x80 == 0 {
		t.Fatalf("frame not final or not masked: % x", f[:2])
	}
	n, off := int(f[1]&0x7f), 2
	switch n {
	case 126:
		n, off = int(binary.BigEndian.Uint16(f[2:])), 4
	case 127:
		n, off = int(binary.BigEndian.Uint64(f[2:])), 10
	}
	key := f[off : off+4]
	p := bytes.Clone(f[off+4:])
	if len(p) != n {
		t.Fatalf("payload %d bytes, header says %d", len(p), n)
	}
	for i := range p {
		p[i] ^= key[i%4]
	}
	return Opcode(f[0] & 0x0f), p
}

func TestAppendFrame(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("ab"), size/2+1)[:size]
		f := appendFrame([]byte("prefix"), OpText, payload, [4]byte{1, 2, 3, 0xff})
		if !bytes.HasPrefix(f, []byte("prefix")) {
			t.Fatalf("size %d: dst prefix lost", size)
		}
		op, got := unmaskFrame(t, f[len("prefix"):])
		if op != OpText || !bytes.Equal(got, payload) {
			t.Fatalf("size %d: round trip gave op %v, %d bytes", size, op, len(got))
		}
	}
}

func TestCloseCode(t *testing.T) {
	tests := []struct {
		in   []byte
		want int
	}{
		{nil, 1005},
		{[]byte{0x03}, 1005},
		{closePayload(4000), 4000},
		{append(closePayload(1001), "bye"...), 1001},
	}
	for _, tc := range tests {
		if got := closeCode(tc.in); got != tc.want {
			t.Errorf("closeCode(% x) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
