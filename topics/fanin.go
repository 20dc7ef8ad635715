package topics

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// work is the loop of one fan-in worker. nats.go's reader goroutine fills
// p.ch through ChanSubscribe, which starts no goroutine per subscription and
// never blocks the reader: a full channel drops the message and counts it
// in the subscription's Dropped (see Stats.DroppedSlowNATS). The channel is
// never closed, since nats.go may still send on it; done stops the worker.
func (h *Hub) work(p *partition) {
	defer h.wg.Done()
	for {
		select {
		case m := <-p.ch:
			h.dispatch(p, m)
		case <-h.done:
			return
		}
	}
}

// dispatch encodes m once and hands it to every shard with local
// subscribers of its topic. Only p's worker calls it, which is what makes the
// unsynchronized ts.seq++ safe: a topic always hashes to the same worker.
func (h *Hub) dispatch(p *partition, m *nats.Msg) {
	p.messagesIn.Add(1)
	name, _ := strings.CutPrefix(m.Subject, h.prefix)

	p.mu.RLock()
	ts := p.topics[name]
	var targets []*shardTopic
	// The subscription check drops messages of an older subscription to
	// the same topic that were still in the channel when interest ended,
	// so a new period of interest starts clean at seq 1.
	if ts != nil && ts.nsub == m.Sub {
		targets = ts.shards // copy-on-write snapshot: safe after RUnlock
	}
	p.mu.RUnlock()

	if len(targets) == 0 {
		p.noTopic.Add(1)
		return
	}
	ts.seq++
	// m.Data is the message's private copy, and AppendPush copies it into
	// the frame, so nothing refers to m after this.
	f := h.newFrame(ts.name, ts.seq, m.Data)
	for _, st := range targets {
		f.Retain()
		st.shard.enqueue(st, f)
	}
	f.Release()
	p.framesOut.Add(1)
}
