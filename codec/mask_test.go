package codec_test

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/pushd/pushd/codec"
)

// naiveUnmask is the reference: §5.3 literally, one byte at a time.
func naiveUnmask(p []byte, mask [4]byte, offset int) {
	for i := range p {
		p[i] ^= mask[(offset+i)%4]
	}
}

// frameTestBytes returns n bytes from a generator seeded with seed.
func frameTestBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6d61736b))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// unmaskTestLengths are 0..70 (the brief's range, all on the word loop) and
// lengths around the hand-over to ws.Cipher at 256 bytes.
var unmaskTestLengths = func() []int {
	var ls []int
	for n := range 71 {
		ls = append(ls, n)
	}
	return append(ls, 255, 256, 257, 259, 271, 272, 300, 1000, 4099)
}()

func TestUnmaskMatchesNaive(t *testing.T) {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for offset := range 8 {
		t.Run("offset="+strconv.Itoa(offset), func(t *testing.T) {
			for _, n := range unmaskTestLengths {
				orig := frameTestBytes(uint64(n), n)
				want := bytes.Clone(orig)
				naiveUnmask(want, mask, offset)
				got := bytes.Clone(orig)
				codec.Unmask(got, mask, offset)
				if !bytes.Equal(got, want) {
					t.Fatalf("len %d: Unmask = % x, want % x", n, got, want)
				}
				// Masking is its own inverse (§5.3).
				codec.Unmask(got, mask, offset)
				if !bytes.Equal(got, orig) {
					t.Fatalf("len %d: unmasking twice did not restore the input", n)
				}
			}
		})
	}
}

// TestUnmaskSplit checks that unmasking a payload in pieces, passing the
// running offset, equals unmasking it whole.
func TestUnmaskSplit(t *testing.T) {
	mask := [4]byte{0x01, 0x80, 0xfe, 0x7f}
	t.Run("two pieces, every split", func(t *testing.T) {
		for n := range 71 {
			orig := frameTestBytes(uint64(n)+100, n)
			whole := bytes.Clone(orig)
			codec.Unmask(whole, mask, 0)
			for cut := range n + 1 {
				got := bytes.Clone(orig)
				codec.Unmask(got[:cut], mask, 0)
				codec.Unmask(got[cut:], mask, cut)
				if !bytes.Equal(got, whole) {
					t.Fatalf("len %d cut %d: split result differs", n, cut)
				}
			}
		}
	})
	t.Run("random pieces", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for iter := range 200 {
			n := r.IntN(5000)
			orig := frameTestBytes(uint64(iter), n)
			whole := bytes.Clone(orig)
			naiveUnmask(whole, mask, 0)
			got := bytes.Clone(orig)
			for off := 0; off < n; {
				k := min(n-off, r.IntN(600)) // both sides of the 256-byte hand-over
				codec.Unmask(got[off:off+k], mask, off)
				off += k
			}
			if !bytes.Equal(got, whole) {
				t.Fatalf("iteration %d (len %d): piecewise result differs", iter, n)
			}
		}
	})
}

func TestUnmaskOffsetModulo(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	for _, offset := range []int{-7, -4, -1, 4, 1 << 30, -(1 << 30) - 1} {
		t.Run(strconv.Itoa(offset), func(t *testing.T) {
			for _, n := range []int{40, 300} {
				orig := frameTestBytes(7, n)
				want := bytes.Clone(orig)
				naiveUnmask(want, mask, ((offset%4)+4)%4)
				got := bytes.Clone(orig)
				codec.Unmask(got, mask, offset)
				if !bytes.Equal(got, want) {
					t.Fatalf("len %d: Unmask with offset %d differs from offset %d", n, offset, ((offset%4)+4)%4)
				}
			}
		})
	}
}

func BenchmarkUnmask(b *testing.B) {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, n := range []int{16, 128, 512, 4096} {
		p := frameTestBytes(1, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				codec.Unmask(p, mask, 1)
			}
		})
		b.Run(strconv.Itoa(n)+"/naive", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				naiveUnmask(p, mask, 1)
			}
		})
	}
}
