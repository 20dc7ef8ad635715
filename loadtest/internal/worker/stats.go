package worker

import "github.com/pushd/pushd/loadtest/internal/hist"

// MaxPhases and MaxSteps bound the per-phase and per-step tables.
const (
	MaxPhases = 16
	MaxSteps  = 32
)

// Stats is what a worker has measured. Every field is additive or a
// min/max, so the Stats of several client loops and worker processes
// combine with Merge into the Stats of the whole run.
type Stats struct {
	// Open is the number of connections open now, Pending the number of
	// dials queued or in progress.
	Open    int64 `json:"open"`
	Pending int64 `json:"pending"`
	// Ready counts open connections that have received a warm-up probe,
	// that is, whose subscription is known to be in place.
	Ready int64 `json:"ready"`
	// Probes counts warm-up probes received (a connection may get several).
	Probes int64 `json:"probes"`
	// Errors counts failures by kind: dials that never opened and open
	// connections the harness did not close itself.
	Errors map[string]int64 `json:"errors,omitempty"`
	// ClosedByServer counts open connections that the server closed or
	// lost (a subset of Errors' kinds: eof, reset, close_NNNN, …).
	ClosedByServer int64 `json:"closed_by_server"`
	// ClosedLocal counts connections the harness closed (handshake, drop or
	// stop), and CloseTimeouts the closing handshakes the server did not
	// finish in time.
	ClosedLocal int64 `json:"closed_local"`
	// Messages and Bytes count every data message received; Pings the
	// server pings answered.
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	Pings    int64 `json:"pings"`
	// Phases are the dial statistics of each phase the coordinator named.
	Phases []Phase `json:"phases,omitempty"`
	// Steps are the fan-out statistics of each publishing step.
	Steps []Step `json:"steps,omitempty"`
	// TopicOpen counts open connections per topic index.
	TopicOpen []int64 `json:"topic_open,omitempty"`
	// RSS is the worker process's resident memory in bytes and HeapInUse
	// its Go heap in use, filled in full snapshots only; Processes is how
	// many processes contributed. All three are sums after Merge.
	RSS       int64 `json:"rss"`
	HeapInUse int64 `json:"heap_in_use"`
	Processes int   `json:"processes"`
	// CPUSeconds is the user plus system CPU time the worker processes
	// have used (full snapshots only).
	CPUSeconds float64 `json:"cpu_s"`
}

// Phase is what happened to the dials of one phase.
type Phase struct {
	Dialed int64 `json:"dialed"`
	Opened int64 `json:"opened"`
	Failed int64 `json:"failed"`
	// Open is how many of the phase's connections are open now.
	Open int64 `json:"open"`
	// FirstDial and LastOpen are wall-clock Unix nanoseconds (0 if none).
	FirstDial int64 `json:"first_dial"`
	LastOpen  int64 `json:"last_open"`
	// Connect holds connect times (socket to 101) in nanoseconds; it is
	// omitted from the light snapshots that drive the progress line.
	Connect *hist.Hist `json:"connect,omitempty"`
}

// Step is what subscribers received of one publishing step.
type Step struct {
	// Unique counts first receipts of a (connection, topic, sequence).
	Unique int64 `json:"unique"`
	// Dup counts repeats; OutOfOrder counts receipts of a sequence number
	// lower than one already received on that connection.
	Dup        int64 `json:"dup"`
	OutOfOrder int64 `json:"out_of_order"`
	// FirstRecv and LastRecv are wall-clock Unix nanoseconds.
	FirstRecv int64 `json:"first_recv"`
	LastRecv  int64 `json:"last_recv"`
	// Latency holds publish-to-receipt latencies in nanoseconds, omitted
	// from light snapshots.
	Latency *hist.Hist `json:"latency,omitempty"`
}

func minNonZero(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

func mergeHist(a, b *hist.Hist) *hist.Hist {
	switch {
	case b == nil:
		return a
	case a == nil:
		return b.Clone()
	}
	a.Merge(b)
	return a
}

// Merge adds o into s. o is not changed and shares nothing with s
// afterwards. Pure apart from writing s.
func (s *Stats) Merge(o *Stats) {
	s.Open += o.Open
	s.Pending += o.Pending
	s.Ready += o.Ready
	s.Probes += o.Probes
	if len(o.Errors) > 0 && s.Errors == nil {
		s.Errors = make(map[string]int64, len(o.Errors))
	}
	for k, v := range o.Errors {
		s.Errors[k] += v
	}
	s.ClosedByServer += o.ClosedByServer
	s.ClosedLocal += o.ClosedLocal
	s.Messages += o.Messages
	s.Bytes += o.Bytes
	s.Pings += o.Pings
	for len(s.Phases) < len(o.Phases) {
		s.Phases = append(s.Phases, Phase{})
	}
	for i := range o.Phases {
		a, b := &s.Phases[i], &o.Phases[i]
		a.Dialed += b.Dialed
		a.Opened += b.Opened
		a.Failed += b.Failed
		a.Open += b.Open
		a.FirstDial = minNonZero(a.FirstDial, b.FirstDial)
		a.LastOpen = max(a.LastOpen, b.LastOpen)
		a.Connect = mergeHist(a.Connect, b.Connect)
	}
	for len(s.Steps) < len(o.Steps) {
		s.Steps = append(s.Steps, Step{})
	}
	for i := range o.Steps {
		a, b := &s.Steps[i], &o.Steps[i]
		a.Unique += b.Unique
		a.Dup += b.Dup
		a.OutOfOrder += b.OutOfOrder
		a.FirstRecv = minNonZero(a.FirstRecv, b.FirstRecv)
		a.LastRecv = max(a.LastRecv, b.LastRecv)
		a.Latency = mergeHist(a.Latency, b.Latency)
	}
	for len(s.TopicOpen) < len(o.TopicOpen) {
		s.TopicOpen = append(s.TopicOpen, 0)
	}
	for i, v := range o.TopicOpen {
		s.TopicOpen[i] += v
	}
	s.RSS += o.RSS
	s.HeapInUse += o.HeapInUse
	s.Processes += o.Processes
	s.CPUSeconds += o.CPUSeconds
}

// Clone returns a deep copy of s. Pure.
func (s *Stats) Clone() *Stats {
	c := &Stats{}
	c.Merge(s) // Merge copies maps, slices and histograms
	return c
}

// ErrorCount returns the total of Errors. Pure.
func (s *Stats) ErrorCount() int64 {
	var n int64
	for _, v := range s.Errors {
		n += v
	}
	return n
}

// Phase returns phase i, or a zero Phase if it has none. Pure.
func (s *Stats) Phase(i int) Phase {
	if i < len(s.Phases) {
		return s.Phases[i]
	}
	return Phase{}
}

// Step returns step i, or a zero Step if it has none. Pure.
func (s *Stats) Step(i int) Step {
	if i < len(s.Steps) {
		return s.Steps[i]
	}
	return Step{}
}
