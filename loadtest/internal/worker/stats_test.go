package worker

import (
	"encoding/json"
	"testing"

	"github.com/pushd/pushd/loadtest/internal/hist"
)

func histOf(vs ...int64) *hist.Hist {
	var h hist.Hist
	for _, v := range vs {
		h.Record(v)
	}
	return &h
}

// TestMergeWorkers merges the results of two workers, as the coordinator
// does, and checks every kind of field: sums, min/max times, histograms,
// maps and tables of different lengths.
func TestMergeWorkers(t *testing.T) {
	a := &Stats{
		Open: 10, Ready: 9, Errors: map[string]int64{"refused": 2}, Messages: 100, Pings: 3,
		Phases:    []Phase{{Dialed: 12, Opened: 10, Failed: 2, Open: 10, FirstDial: 500, LastOpen: 900, Connect: histOf(1, 2, 3)}},
		Steps:     []Step{{Unique: 50, FirstRecv: 1000, LastRecv: 2000, Latency: histOf(10, 20)}},
		TopicOpen: []int64{5, 5}, RSS: 1 << 20, Processes: 1,
	}
	b := &Stats{
		Open: 5, Errors: map[string]int64{"refused": 1, "eof": 4}, Messages: 40,
		Phases: []Phase{{Dialed: 5, Opened: 5, FirstDial: 400, LastOpen: 950, Connect: histOf(4)}, {Dialed: 1}},
		Steps: []Step{{Unique: 20, Dup: 1, FirstRecv: 1100, LastRecv: 2500, Latency: histOf(30)},
			{Unique: 7, OutOfOrder: 2, Latency: histOf(5)}},
		TopicOpen: []int64{2, 2, 1}, RSS: 2 << 20, Processes: 1,
	}
	var total Stats
	total.Merge(a)
	total.Merge(b)

	checks := []struct {
		name      string
		got, want int64
	}{
		{"open", total.Open, 15},
		{"ready", total.Ready, 9},
		{"messages", total.Messages, 140},
		{"refused", total.Errors["refused"], 3},
		{"eof", total.Errors["eof"], 4},
		{"error count", total.ErrorCount(), 7},
		{"phase0 dialed", total.Phase(0).Dialed, 17},
		{"phase0 first dial", total.Phase(0).FirstDial, 400},
		{"phase0 last open", total.Phase(0).LastOpen, 950},
		{"phase0 connect n", int64(total.Phase(0).Connect.Count()), 4},
		{"phase0 connect max", total.Phase(0).Connect.Max(), 4},
		{"phase1 dialed", total.Phase(1).Dialed, 1},
		{"phase9 missing", total.Phase(9).Dialed, 0},
		{"step0 unique", total.Step(0).Unique, 70},
		{"step0 dup", total.Step(0).Dup, 1},
		{"step0 first", total.Step(0).FirstRecv, 1000},
		{"step0 last", total.Step(0).LastRecv, 2500},
		{"step0 p100", total.Step(0).Latency.Percentile(100), 30},
		{"step1 ooo", total.Step(1).OutOfOrder, 2},
		{"topic2", total.TopicOpen[2], 1},
		{"topic0", total.TopicOpen[0], 7},
		{"rss", total.RSS, 3 << 20},
		{"processes", int64(total.Processes), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// The inputs are unchanged and share nothing with the total.
	total.Steps[0].Latency.Record(99)
	total.Errors["refused"] = 100
	if a.Steps[0].Latency.Count() != 2 || a.Errors["refused"] != 2 || b.Steps[1].Latency.Count() != 1 {
		t.Fatal("Merge aliased its input")
	}
}

// TestMergeAfterJSON merges stats that crossed the worker pipe.
func TestMergeAfterJSON(t *testing.T) {
	in := &Stats{Steps: []Step{{Unique: 3, Latency: histOf(7, 8, 9)}}, Errors: map[string]int64{"x": 1}}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Stats
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	var total Stats
	total.Merge(&out)
	total.Merge(in)
	if total.Step(0).Unique != 6 || total.Step(0).Latency.Count() != 6 || total.Step(0).Latency.Percentile(50) != 8 {
		t.Fatalf("merged step %+v", total.Step(0))
	}
}

func TestClone(t *testing.T) {
	s := &Stats{Errors: map[string]int64{"x": 1}, Steps: []Step{{Latency: histOf(1)}}}
	c := s.Clone()
	c.Errors["x"] = 5
	c.Steps[0].Latency.Record(2)
	if s.Errors["x"] != 1 || s.Steps[0].Latency.Count() != 1 {
		t.Fatal("Clone shares state")
	}
}
