//go:build linux

package worker

import (
	"maps"
	"slices"
	"time"

	"github.com/pushd/pushd/loadtest/internal/hist"
	"github.com/pushd/pushd/loadtest/internal/payload"
	"github.com/pushd/pushd/loadtest/internal/wsclient"
)

// slot is the harness's state for one connection, indexed by the Conn's
// ID. Slots are reused, so a connection costs this struct (40 bytes) on
// top of the client's Conn.
type slot struct {
	c     *wsclient.Conn // nil until open
	gid   int32          // connection id across the run
	topic int32
	gen   uint32 // bumped on reuse, so stale lifetime entries are ignored
	phase uint8
	ready bool
	hi    uint32 // highest sequence number received
	win   uint64 // bit i set: sequence hi-i received (anti-replay window)
}

// lifetime is a pending close of a churned connection.
type lifetime struct {
	slot     int32
	gen      uint32
	deadline time.Time
}

// loopState is the wsclient.Handler of one loop: it owns the slots of the
// loop's connections and the loop's share of the statistics. Every method
// runs on the loop goroutine.
type loopState struct {
	e     *Engine
	l     *wsclient.Loop
	slots []slot
	free  []int32
	stats Stats
	life  []lifetime // FIFO: every entry of a phase has the same lifetime
	lhead int
	// lifetimeOf[p] is how long connections of phase p stay open (0: until
	// told to close).
	lifetimeOf [MaxPhases]time.Duration
	buf        []byte
}

func newLoopState(e *Engine) *loopState {
	ls := &loopState{e: e}
	ls.stats.Phases = make([]Phase, MaxPhases)
	ls.stats.TopicOpen = make([]int64, len(e.topics))
	return ls
}

// dial queues a connection with run-wide id gid.
func (ls *loopState) dial(gid, phase int) {
	var i int32
	if n := len(ls.free); n > 0 {
		i = ls.free[n-1]
		ls.free = ls.free[:n-1]
	} else {
		i = int32(len(ls.slots))
		ls.slots = append(ls.slots, slot{})
	}
	topic := gid % len(ls.e.topics)
	s := &ls.slots[i]
	*s = slot{gid: int32(gid), topic: int32(topic), phase: uint8(phase), gen: s.gen + 1}
	ph := &ls.stats.Phases[phase]
	ph.Dialed++
	if ph.FirstDial == 0 {
		ph.FirstDial = time.Now().UnixNano()
	}
	ls.buf = ls.e.path.Append(ls.buf[:0], ls.e.topics[topic], gid, nil)
	ls.l.Dial(wsclient.DialRequest{ID: int(i), Path: string(ls.buf), Source: gid})
}

// OnOpen implements wsclient.Handler.
func (ls *loopState) OnOpen(c *wsclient.Conn, connect time.Duration) {
	s := &ls.slots[c.ID]
	s.c = c
	ph := &ls.stats.Phases[s.phase]
	ph.Opened++
	ph.Open++
	ph.LastOpen = time.Now().UnixNano()
	if ph.Connect == nil {
		ph.Connect = &hist.Hist{}
	}
	ph.Connect.Record(int64(connect))
	ls.stats.Open++
	ls.stats.TopicOpen[s.topic]++
	if !ls.e.sub.IsZero() {
		ls.buf = ls.e.sub.Append(ls.buf[:0], ls.e.topics[s.topic], int(s.gid), nil)
		if !ls.l.Send(c, wsclient.OpText, ls.buf) {
			return
		}
	}
	if d := ls.lifetimeOf[s.phase]; d > 0 {
		ls.life = append(ls.life, lifetime{slot: int32(c.ID), gen: s.gen, deadline: time.Now().Add(d)})
	}
}

// OnMessage implements wsclient.Handler.
func (ls *loopState) OnMessage(c *wsclient.Conn, op wsclient.Opcode, p []byte, now int64) {
	ls.stats.Messages++
	ls.stats.Bytes += int64(len(p))
	f, ok := payload.Parse(p)
	if !ok {
		return
	}
	s := &ls.slots[c.ID]
	if f.Seq == 0 { // warm-up probe
		ls.stats.Probes++
		if !s.ready {
			s.ready = true
			ls.stats.Ready++
		}
		return
	}
	if f.Step >= MaxSteps {
		return
	}
	for len(ls.stats.Steps) <= f.Step {
		ls.stats.Steps = append(ls.stats.Steps, Step{})
	}
	st := &ls.stats.Steps[f.Step]
	switch track(s, uint32(f.Seq)) {
	case seqNew:
		st.Unique++
	case seqLate:
		st.Unique++
		st.OutOfOrder++
	case seqDup:
		st.Dup++
		return // a duplicate's latency says nothing about delivery
	}
	if st.FirstRecv == 0 {
		st.FirstRecv = now
	}
	st.LastRecv = now
	if st.Latency == nil {
		st.Latency = &hist.Hist{}
	}
	st.Latency.Record(now - f.Time)
}

// Sequence outcomes.
const (
	seqNew  = iota // above everything seen so far
	seqLate        // below the highest seen, not seen before: out of order
	seqDup         // seen before
)

// track records sequence n on s with a 64-entry anti-replay window (as in
// IPsec, RFC 4303 §3.4.3): numbers more than 64 below the highest one seen
// are counted as late, since they can no longer be told from duplicates.
func track(s *slot, n uint32) int {
	if n > s.hi {
		shift := n - s.hi
		if shift >= 64 {
			s.win = 0
		} else {
			s.win <<= shift
		}
		s.win |= 1
		s.hi = n
		return seqNew
	}
	d := s.hi - n
	if d >= 64 {
		return seqLate
	}
	if s.win&(1<<d) != 0 {
		return seqDup
	}
	s.win |= 1 << d
	return seqLate
}

// OnPing implements wsclient.Handler.
func (ls *loopState) OnPing(*wsclient.Conn) { ls.stats.Pings++ }

// OnClose implements wsclient.Handler.
func (ls *loopState) OnClose(c *wsclient.Conn, r wsclient.CloseReason) {
	s := &ls.slots[c.ID]
	if c.Opened() {
		ls.stats.Open--
		ls.stats.Phases[s.phase].Open--
		ls.stats.TopicOpen[s.topic]--
		if s.ready {
			ls.stats.Ready--
		}
		switch {
		case r.Kind == "timeout_close":
			ls.addError(r.Kind)
			ls.stats.ClosedLocal++
		case r.Local:
			ls.stats.ClosedLocal++
		default:
			ls.addError(r.Kind)
			ls.stats.ClosedByServer++
		}
	} else if !(r.Local && r.Kind == "stopped") {
		ls.stats.Phases[s.phase].Failed++
		ls.addError(r.Kind)
	}
	s.c = nil
	ls.free = append(ls.free, int32(c.ID))
}

func (ls *loopState) addError(kind string) {
	if ls.stats.Errors == nil {
		ls.stats.Errors = make(map[string]int64)
	}
	ls.stats.Errors[kind]++
}

// OnTick implements wsclient.Handler: it closes churned connections whose
// lifetime is over.
func (ls *loopState) OnTick(now time.Time) {
	for ls.lhead < len(ls.life) && !ls.life[ls.lhead].deadline.After(now) {
		e := ls.life[ls.lhead]
		ls.lhead++
		if s := &ls.slots[e.slot]; s.gen == e.gen && s.c != nil {
			ls.l.Close(s.c, 1000)
		}
	}
	if ls.lhead == len(ls.life) {
		ls.life, ls.lhead = ls.life[:0], 0
	}
}

// snapshot copies the loop's statistics.
// Histograms are copied only if full: the light snapshots that feed the
// progress line must stay cheap.
func (ls *loopState) snapshot(full bool) *Stats {
	s := ls.stats
	s.Errors = maps.Clone(s.Errors)
	s.Phases = slices.Clone(s.Phases)
	s.Steps = slices.Clone(s.Steps)
	s.TopicOpen = slices.Clone(s.TopicOpen)
	s.Pending = int64(ls.l.Pending())
	for i := range s.Phases {
		if p := &s.Phases[i]; full && p.Connect != nil {
			p.Connect = p.Connect.Clone()
		} else {
			p.Connect = nil
		}
	}
	for i := range s.Steps {
		if st := &s.Steps[i]; full && st.Latency != nil {
			st.Latency = st.Latency.Clone()
		} else {
			st.Latency = nil
		}
	}
	return &s
}

// closeAll closes every open connection.
func (ls *loopState) closeAll(graceful bool) {
	for i := range ls.slots {
		if c := ls.slots[i].c; c != nil {
			if graceful {
				ls.l.Close(c, 1000)
			} else {
				ls.l.Drop(c)
			}
		}
	}
}

// storm drops up to n open connections and redials each at once.
func (ls *loopState) storm(n, phase int) int {
	var gids []int
	for i := range ls.slots {
		if len(gids) == n {
			break
		}
		if c := ls.slots[i].c; c != nil && c.IsOpen() {
			gids = append(gids, int(ls.slots[i].gid))
			ls.l.Drop(c)
		}
	}
	for _, g := range gids {
		ls.dial(g, phase)
	}
	return len(gids)
}
