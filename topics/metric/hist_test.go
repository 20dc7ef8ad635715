package metric

import (
	"sync"
	"testing"
)

func TestHistogram(t *testing.T) {
	h := NewHistogram([]float64{1, 2, 4})
	for _, v := range []float64{0.5, 1, 1.5, 3, 4, 100} {
		h.Observe(v)
	}
	s := h.Snapshot()
	want := map[float64]uint64{1: 2, 2: 3, 4: 5}
	for b, n := range want {
		if s.Buckets[b] != n {
			t.Errorf("bucket ≤%v = %d, want %d", b, s.Buckets[b], n)
		}
	}
	if s.Count != 6 || s.Sum != 110 {
		t.Errorf("count %d sum %v, want 6 and 110", s.Count, s.Sum)
	}
}

func TestMergeConcurrent(t *testing.T) {
	bounds := ExponentialBounds(1, 2, 4) // 1 2 4 8
	hs := []*Histogram{NewHistogram(bounds), NewHistogram(bounds)}
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Observe(float64(i % 10))
			}
		}()
	}
	wg.Wait()
	s := Merge(bounds, hs...)
	// per histogram: values 0..9 a hundred times each; ≤1: 0,1; ≤2: +2; ≤4: +3,4; ≤8: +5..8
	want := map[float64]uint64{1: 400, 2: 600, 4: 1000, 8: 1800}
	for b, n := range want {
		if s.Buckets[b] != n {
			t.Errorf("bucket ≤%v = %d, want %d", b, s.Buckets[b], n)
		}
	}
	if s.Count != 2000 || s.Sum != 2*100*45 {
		t.Errorf("count %d sum %v", s.Count, s.Sum)
	}
}

func BenchmarkObserve(b *testing.B) {
	h := NewHistogram(ExponentialBounds(1, 2, 11))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(float64(i & 1023))
	}
}
