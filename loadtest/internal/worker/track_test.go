//go:build linux

package worker

import (
	"context"
	"testing"
	"time"
)

func TestTrack(t *testing.T) {
	tests := []struct {
		name string
		seqs []uint32
		want []int
	}{
		{"in order", []uint32{1, 2, 3}, []int{seqNew, seqNew, seqNew}},
		{"gap then late", []uint32{1, 3, 2}, []int{seqNew, seqNew, seqLate}},
		{"duplicate", []uint32{1, 2, 2, 1}, []int{seqNew, seqNew, seqDup, seqDup}},
		{"late then dup", []uint32{5, 4, 4}, []int{seqNew, seqLate, seqDup}},
		{"beyond window", []uint32{100, 10, 10}, []int{seqNew, seqLate, seqLate}},
		{"big jump resets window", []uint32{1, 200, 199, 1}, []int{seqNew, seqNew, seqLate, seqLate}},
		{"edge of window", []uint32{64, 1, 1}, []int{seqNew, seqLate, seqDup}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s slot
			for i, n := range tc.seqs {
				if got := track(&s, n); got != tc.want[i] {
					t.Fatalf("seq #%d (%d): outcome %d, want %d", i, n, got, tc.want[i])
				}
			}
		})
	}
}

func TestPace(t *testing.T) {
	tests := []struct {
		name  string
		count int
		rate  float64
		min   time.Duration
	}{
		{"unpaced", 100, 0, 0},
		{"paced", 20, 200, 90 * time.Millisecond}, // item 19 is due at 95 ms
		{"nothing", 0, 100, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			start := time.Now()
			err := pace(context.Background(), tc.count, tc.rate, func(from, to int) {
				for i := from; i < to; i++ {
					got = append(got, i)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.count {
				t.Fatalf("emitted %d items, want %d", len(got), tc.count)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("item %d emitted as %d", i, v)
				}
			}
			if el := time.Since(start); el < tc.min {
				t.Fatalf("took %v, want at least %v", el, tc.min)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pace(ctx, 1000, 10, func(int, int) {}); err == nil {
		t.Fatal("cancelled pace returned nil")
	}
}
