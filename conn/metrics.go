package conn

import (
	"sync"
	"sync/atomic"

	"github.com/pushd/pushd/topics/metric"
)

// PushesPerWritevBounds are the upper bounds of the pushes-per-writev
// histogram: 1, 2, 4, … 1024 (IOV_MAX).
var PushesPerWritevBounds = metric.ExponentialBounds(1, 2, 11)

// Metrics counts what the connections of every loop do, whatever their
// protocol. All fields are updated atomically; read them with Load from any
// goroutine.
type Metrics struct {
	Open              atomic.Int64 // connections accepted by an endpoint and not yet closed
	Accepted          atomic.Int64 // TCP connections accepted
	Upgrades          atomic.Int64 // requests whose endpoint took the connection over (WebSocket 101s, SSE streams)
	Requests          atomic.Int64 // requests answered without taking the connection over (static files, long-polls)
	HandshakeRejected atomic.Int64 // requests answered with an HTTP error and a close
	HandshakeTimeouts atomic.Int64 // connections closed for not sending a request head (or body) in time
	IdleTimeouts      atomic.Int64 // kept-alive connections closed after an idle KeepAliveTimeout
	MessagesIn        atomic.Int64 // complete data messages received
	PingsSent         atomic.Int64 // heartbeat pings sent
	HeartbeatTimeouts atomic.Int64 // connections closed for not answering a ping
	SlowConsumers     atomic.Int64 // connections closed for a full outbound buffer
	HistoryLost       atomic.Int64 // connections closed because a durable topic lost messages (4003)
	DroppedClosing    atomic.Int64 // pushes dropped because their connection was closing
	ProtocolErrors    atomic.Int64 // connections failed with 1002/1007/1009
	RejectedGlobal    atomic.Int64 // connections refused with 503: global cap
	RejectedPerIP     atomic.Int64 // connections refused with 503: per-IP cap
	RejectedRate      atomic.Int64 // connections refused with 503: accept rate
	FramesOut         atomic.Int64 // pushes handed to the kernel or gnet's outbound buffer
	Writevs           atomic.Int64 // writev calls made to flush pushes
	BytesFed          atomic.Int64 // bytes handed to the connections' Feed: every byte received once, plus any handed again while unconsumed

	mu        sync.Mutex
	perWritev []*metric.Histogram // one per loop, so loops never share a cache line
}

// CountRejection counts a connection refused at accept for reason
// ("global", "ip" or "rate"). Any goroutine.
func (m *Metrics) CountRejection(reason string) {
	switch reason {
	case "global":
		m.RejectedGlobal.Add(1)
	case "ip":
		m.RejectedPerIP.Add(1)
	default:
		m.RejectedRate.Add(1)
	}
}

func (m *Metrics) addLoop(h *metric.Histogram) {
	m.mu.Lock()
	m.perWritev = append(m.perWritev, h)
	m.mu.Unlock()
}

// PushesPerWritev returns the pushes-per-writev histogram summed over
// loops. Any goroutine.
func (m *Metrics) PushesPerWritev() metric.Snapshot {
	m.mu.Lock()
	hs := append([]*metric.Histogram(nil), m.perWritev...)
	m.mu.Unlock()
	return metric.Merge(PushesPerWritevBounds, hs...)
}
