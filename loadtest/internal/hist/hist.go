// Package hist is a mergeable log-linear histogram of non-negative integer
// values (the harness records nanoseconds), in the style of HdrHistogram.
//
// Values below 256 are kept exactly. Above that each power of two is split
// into 128 equal sub-buckets, so a recorded value is known to within 1/128
// (0.8 %) of itself, and a reported percentile is the upper edge of its
// bucket (never below the true value, at most 1/128 above it), clamped to
// the exact maximum. Memory is fixed (about 57 KB) whatever the count, and
// two histograms merge by adding their counts, which is how the results of
// several client loops and worker processes are combined.
package hist

import (
	"encoding/json"
	"errors"
	"math"
	"math/bits"
	"slices"
)

const (
	subBits  = 8            // values below 1<<subBits are exact
	exact    = 1 << subBits // 256 exact buckets
	half     = exact / 2    // sub-buckets per power of two above exact
	maxShift = 63 - subBits // largest shift: int64 values have at most 63 bits
	// NumBuckets is the number of buckets a Hist holds.
	NumBuckets = exact + maxShift*half
)

// Hist is a histogram. The zero value is empty and ready to use. A Hist is
// not safe for concurrent use: each client loop owns its own, and they are
// merged after the loop has handed them over.
type Hist struct {
	counts []uint64 // allocated on the first Record; len NumBuckets
	n      uint64
	sum    float64 // float so that long runs cannot overflow
	min    int64
	max    int64
}

// index returns the bucket of v (v >= 0).
func index(v int64) int {
	u := uint64(v)
	if u < exact {
		return int(u)
	}
	shift := bits.Len64(u) - subBits // >= 1
	return exact + (shift-1)*half + int(u>>uint(shift)) - half
}

// upper returns the largest value that falls in bucket i.
func upper(i int) int64 {
	if i < exact {
		return int64(i)
	}
	shift := (i-exact)/half + 1
	sub := uint64((i-exact)%half + half)
	u := (sub+1)<<uint(shift) - 1
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

// Record adds one value. Negative values (a clock step between two
// processes, say) are recorded as 0. Call it only from the goroutine that
// owns h.
func (h *Hist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.counts == nil {
		h.counts = make([]uint64, NumBuckets)
	}
	h.counts[index(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Count returns the number of recorded values. Pure.
func (h *Hist) Count() uint64 { return h.n }

// Min returns the smallest recorded value, or 0 if h is empty. Pure.
func (h *Hist) Min() int64 { return h.min }

// Max returns the largest recorded value, or 0 if h is empty. Pure.
func (h *Hist) Max() int64 { return h.max }

// Mean returns the mean of the recorded values, or 0 if h is empty. Pure.
func (h *Hist) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Percentile returns the value at percentile q (0–100) by the nearest-rank
// definition: the smallest recorded value v such that at least q % of the
// values are ≤ v. Because values above 255 are bucketed, it returns the
// upper edge of v's bucket, clamped to the recorded maximum. It returns 0
// for an empty histogram. Pure.
func (h *Hist) Percentile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q >= 100 {
		return h.max
	}
	if q < 0 {
		q = 0
	}
	rank := uint64(math.Ceil(q / 100 * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := upper(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return v
		}
	}
	return h.max
}

// Merge adds every value of o to h. o is not changed. Call it only from
// the goroutine that owns h, with o not being written concurrently.
func (h *Hist) Merge(o *Hist) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, NumBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Clone returns a deep copy of h. Pure.
func (h *Hist) Clone() *Hist {
	c := *h
	c.counts = slices.Clone(h.counts)
	return &c
}

// wire is the JSON form: only the non-empty buckets, as [index, count]
// pairs, so that a sparse histogram crosses the worker pipe in a few
// hundred bytes.
type wire struct {
	N       uint64      `json:"n"`
	Sum     float64     `json:"sum"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Buckets [][2]uint64 `json:"b,omitempty"`
}

// MarshalJSON encodes h sparsely. Pure.
func (h *Hist) MarshalJSON() ([]byte, error) {
	w := wire{N: h.n, Sum: h.sum, Min: h.min, Max: h.max}
	for i, c := range h.counts {
		if c != 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(w)
}

// errCorrupt reports a JSON histogram whose buckets disagree with its count.
var errCorrupt = errors.New("hist: corrupt encoding")

// UnmarshalJSON decodes what MarshalJSON produced, replacing h's contents.
// Call it only from the goroutine that owns h.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = Hist{n: w.N, sum: w.Sum, min: w.Min, max: w.Max}
	if len(w.Buckets) == 0 {
		if w.N != 0 {
			return errCorrupt
		}
		return nil
	}
	h.counts = make([]uint64, NumBuckets)
	var total uint64
	for _, p := range w.Buckets {
		if p[0] >= NumBuckets {
			return errCorrupt
		}
		h.counts[p[0]] += p[1]
		total += p[1]
	}
	if total != w.N {
		return errCorrupt
	}
	return nil
}
