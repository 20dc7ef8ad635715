// Package metric holds the lock-free counters pushd's hot paths record into
// and its /metrics collector reads: a fixed-bucket histogram whose Observe
// is two uncontended atomic adds, cheap enough for once per message per
// event loop or once per writev.
//
// It imports nothing of pushd, so topics, conn and the collector can share
// it.
package metric

import (
	"math"
	"sync/atomic"
)

// Histogram counts observations into fixed buckets. Keep one per writer
// goroutine (an event loop) where observations are frequent, so writers
// never share a cache line; Merge them when reading. Observe and Snapshot
// are safe for concurrent use.
type Histogram struct {
	bounds []float64       // upper bounds, ascending; immutable
	counts []atomic.Uint64 // counts[i]: observations ≤ bounds[i] and > bounds[i-1]; the last is +Inf
	sum    atomic.Uint64   // float64 bits; written only by Observe's CAS loop
}

// NewHistogram returns a histogram with the given ascending upper bounds
// (a +Inf bucket is implied). Any goroutine.
func NewHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records v. Safe for concurrent use; with one writer it costs a
// short linear search and two uncontended atomic operations.
func (h *Histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Snapshot is a histogram's state at one moment, in the shape Prometheus
// const histograms take.
type Snapshot struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64 // upper bound → cumulative count (no +Inf entry)
}

// Snapshot returns the cumulative counts. Safe for concurrent use; each
// counter is read once, so a snapshot taken during observations may be off
// by those in flight.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Buckets: make(map[float64]uint64, len(h.bounds))}
	h.addTo(&s)
	return s
}

// Merge returns the sum of the snapshots of hs, which must share their
// bounds. Safe for concurrent use.
func Merge(bounds []float64, hs ...*Histogram) Snapshot {
	s := Snapshot{Buckets: make(map[float64]uint64, len(bounds))}
	for _, b := range bounds {
		s.Buckets[b] = 0
	}
	for _, h := range hs {
		h.addTo(&s)
	}
	return s
}

func (h *Histogram) addTo(s *Snapshot) {
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if i < len(h.bounds) {
			s.Buckets[h.bounds[i]] += cum
		}
	}
	s.Count += cum
	s.Sum += math.Float64frombits(h.sum.Load())
}

// ExponentialBounds returns n bounds start, start·factor, start·factor², …
// Pure.
func ExponentialBounds(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}
