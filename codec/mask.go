package codec

import (
	"encoding/binary"
	"math/bits"

	"github.com/gobwas/ws"
)

// unmaskCipherMin is the payload length from which Unmask hands the work to
// ws.Cipher. ws.Cipher uses SIMD (AVX2/SSE2 on amd64, NEON on arm64) but costs
// about 16 ns whatever the length up to a few hundred bytes, while the word
// loop below costs about 1 ns per 16 bytes; on the 2-core AMD EPYC dev box
// they cross near 256 bytes (BenchmarkUnmask, 2026-11-21).
const unmaskCipherMin = 256

// Unmask XORs p in place with the masking key mask (RFC 6455 §5.3), treating
// p[0] as byte number offset of the payload. Byte i of a payload is XORed
// with mask[i%4], so passing the running offset lets a caller unmask a
// payload piece by piece as it arrives, in any split, with the same result as
// unmasking it whole. Masking and unmasking are the same operation.
//
// offset may be any int; only offset mod 4 matters.
//
// Unmask is pure apart from writing p, and never allocates.
func Unmask(p []byte, mask [4]byte, offset int) {
	// offset&3 is offset mod 4 and, unlike offset%4, never negative
	// (ws.Cipher would index mask with a negative number).
	pos := offset & 3
	if len(p) >= unmaskCipherMin {
		ws.Cipher(p, mask, pos)
		return
	}
	// Short payloads, which are most client frames (commands, pongs): eight
	// bytes at a time. Rotating the little-endian mask word by pos bytes
	// makes byte k of the word mask[(pos+k)%4], the key byte for p[k].
	m := bits.RotateLeft32(binary.LittleEndian.Uint32(mask[:]), -8*pos)
	m64 := uint64(m)<<32 | uint64(m)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^m64)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= byte(m64 >> (8 * i))
	}
}
