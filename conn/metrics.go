package conn

import "sync/atomic"

// Metrics counts what the connections of every loop do. All fields are
// updated atomically; read them with Load from any goroutine.
type Metrics struct {
	Open              atomic.Int64 // connections past the upgrade and not yet closed
	Accepted          atomic.Int64 // TCP connections accepted
	Upgrades          atomic.Int64 // successful WebSocket upgrades
	HandshakeRejected atomic.Int64 // upgrade requests answered with an HTTP error
	HandshakeTimeouts atomic.Int64 // connections closed for not finishing the upgrade in time
	MessagesIn        atomic.Int64 // complete data messages received
	Commands          atomic.Int64 // protocol commands handled
	CommandErrors     atomic.Int64 // commands answered with an error
	RateLimited       atomic.Int64 // commands refused by the per-connection rate limit
	PingsSent         atomic.Int64 // heartbeat pings sent
	HeartbeatTimeouts atomic.Int64 // connections closed for not answering a ping
	TokenExpired      atomic.Int64 // connections closed with 4002 when their token expired
	Forbidden         atomic.Int64 // subscribe or publish refused by the token's permissions
	ClientPublishes   atomic.Int64 // messages published by clients
	SlowConsumers     atomic.Int64 // connections closed with 4000 for a full outbound buffer
	DroppedClosing    atomic.Int64 // pushes dropped because their connection was closing
	ProtocolErrors    atomic.Int64 // connections failed with 1002/1007/1009
	RejectedGlobal    atomic.Int64 // connections refused with 503: global cap
	RejectedPerIP     atomic.Int64 // connections refused with 503: per-IP cap
	RejectedRate      atomic.Int64 // connections refused with 503: accept rate
	FramesOut         atomic.Int64 // pushes handed to the kernel or gnet's outbound buffer
	Writevs           atomic.Int64 // writev calls made to flush pushes
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
