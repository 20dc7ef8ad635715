package hist

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// nearestRank is the reference definition Percentile implements: the
// smallest sample v with at least q % of the samples ≤ v.
func nearestRank(sorted []int64, q float64) int64 {
	if q >= 100 {
		return sorted[len(sorted)-1]
	}
	rank := int(math.Ceil(q / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func record(t *testing.T, vs ...int64) *Hist {
	t.Helper()
	var h Hist
	for _, v := range vs {
		h.Record(v)
	}
	return &h
}

func seq(from, to int64) []int64 {
	var out []int64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

func TestPercentileExact(t *testing.T) {
	tests := []struct {
		name string
		data []int64
		want map[float64]int64
	}{
		{"1..100", seq(1, 100), map[float64]int64{0: 1, 50: 50, 90: 90, 99: 99, 99.9: 100, 100: 100}},
		{"1..10", seq(1, 10), map[float64]int64{50: 5, 90: 9, 99: 10, 100: 10}},
		{"single", []int64{42}, map[float64]int64{0: 42, 50: 42, 99.9: 42, 100: 42}},
		{"skewed", append(make([]int64, 99), 200), map[float64]int64{50: 0, 99: 0, 99.5: 200, 100: 200}},
		{"negative clamps to zero", []int64{-5, 3}, map[float64]int64{50: 0, 100: 3}},
		// Large values that sit exactly on their bucket's upper edge are exact too.
		{"bucket edges", []int64{257, 1023, 1 << 20}, map[float64]int64{33: 257, 66: 1023, 100: 1 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := record(t, tc.data...)
			for q, want := range tc.want {
				if got := h.Percentile(q); got != want {
					t.Errorf("p%v = %d, want %d", q, got, want)
				}
			}
		})
	}
}

func TestPercentileEmpty(t *testing.T) {
	var h Hist
	if got := h.Percentile(99); got != 0 {
		t.Fatalf("empty p99 = %d", got)
	}
	if h.Mean() != 0 || h.Count() != 0 {
		t.Fatalf("empty mean/count = %v/%d", h.Mean(), h.Count())
	}
}

// TestPercentileBound checks the documented precision against sorted
// samples: never below the exact nearest-rank value, at most 1/128 above.
func TestPercentileBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform ms":  func() int64 { return r.Int64N(50_000_000) },
		"exponential": func() int64 { return int64(r.ExpFloat64() * 2e6) },
		"wide":        func() int64 { return int64(math.Exp(r.Float64() * 40)) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Hist
			vs := make([]int64, 20000)
			for i := range vs {
				vs[i] = gen()
				h.Record(vs[i])
			}
			slices.Sort(vs)
			for _, q := range []float64{0, 1, 25, 50, 90, 99, 99.9, 99.99, 100} {
				want := nearestRank(vs, q)
				got := h.Percentile(q)
				if got < want || float64(got-want) > float64(want)/128+1 {
					t.Errorf("p%v = %d, exact %d: outside [exact, exact*(1+1/128)]", q, got, want)
				}
			}
			if h.Min() != vs[0] || h.Max() != vs[len(vs)-1] {
				t.Errorf("min/max = %d/%d, want %d/%d", h.Min(), h.Max(), vs[0], vs[len(vs)-1])
			}
		})
	}
}

func TestIndexUpperConsistent(t *testing.T) {
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 30, math.MaxInt64 - 1, math.MaxInt64} {
		i := index(v)
		if i < 0 || i >= NumBuckets {
			t.Fatalf("index(%d) = %d out of range", v, i)
		}
		if up := upper(i); up < v {
			t.Errorf("upper(index(%d)) = %d < value", v, up)
		}
		if i > 0 && upper(i-1) >= v {
			t.Errorf("value %d also fits bucket %d (upper %d)", v, i-1, upper(i-1))
		}
	}
}

// TestMerge checks that merging per-loop histograms equals recording every
// value into one, which is what combining worker results relies on.
func TestMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var all, a, b Hist
	for i := range 5000 {
		v := r.Int64N(1e9)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Hist
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&Hist{})
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() || m.Mean() != all.Mean() {
		t.Fatalf("merged summary differs: %d %d %d %v vs %d %d %d %v",
			m.Count(), m.Min(), m.Max(), m.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	for _, q := range []float64{50, 90, 99, 99.9} {
		if m.Percentile(q) != all.Percentile(q) {
			t.Errorf("p%v merged %d, direct %d", q, m.Percentile(q), all.Percentile(q))
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    *Hist
	}{
		{"empty", &Hist{}},
		{"values", record(t, 5, 300, 7e6, 7e6, 1e9)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.h)
			if err != nil {
				t.Fatal(err)
			}
			var got Hist
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for _, q := range []float64{0, 50, 99, 100} {
				if got.Percentile(q) != tc.h.Percentile(q) {
					t.Errorf("p%v after round trip %d, want %d", q, got.Percentile(q), tc.h.Percentile(q))
				}
			}
			if got.Count() != tc.h.Count() || got.Mean() != tc.h.Mean() {
				t.Errorf("count/mean %d/%v, want %d/%v", got.Count(), got.Mean(), tc.h.Count(), tc.h.Mean())
			}
		})
	}
}

func TestUnmarshalCorrupt(t *testing.T) {
	for _, in := range []string{`{"n":2,"b":[[3,1]]}`, `{"n":1}`, `{"n":1,"b":[[99999999,1]]}`, `[`} {
		var h Hist
		if err := json.Unmarshal([]byte(in), &h); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestClone(t *testing.T) {
	h := record(t, 1, 2, 3)
	c := h.Clone()
	c.Record(1000)
	if h.Count() != 3 || c.Count() != 4 {
		t.Fatalf("clone shares state: %d %d", h.Count(), c.Count())
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Hist
	b.ReportAllocs()
	for i := range b.N {
		h.Record(int64(i) * 997)
	}
}
