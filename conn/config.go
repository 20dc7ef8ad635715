package conn

import "time"

// Config holds the limits and timers every connection shares, whatever its
// protocol. Zero fields take the defaults listed beside them (see
// WithDefaults).
type Config struct {
	// HandshakeTimeout bounds the time from TCP accept to a complete request
	// head, and on a kept-alive connection the time from the first byte of
	// a request to the end of its head and body. Default 10s.
	HandshakeTimeout time.Duration
	// KeepAliveTimeout bounds the silence between two requests on a
	// kept-alive HTTP connection. Default 30s.
	KeepAliveTimeout time.Duration
	// MaxHeaderBytes bounds the request head (431 past it). Default 8 KiB.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of request header fields (431). Default 64.
	MaxHeaders int
	// CloseTimeout bounds a close handshake: after the server says goodbye
	// (a WebSocket close frame) it drops the TCP connection if the peer has
	// not answered by then. Default 5s.
	CloseTimeout time.Duration
	// MaxOutbound is the backlog (bytes queued for one connection that the
	// kernel has not taken yet) a connection may keep while it is not
	// draining. Above it, the backlog must fall below its lowest level
	// within SlowConsumerTimeout; otherwise, or at once if it passes
	// HardOutboundFactor × MaxOutbound, the connection is a slow consumer
	// and its protocol closes it (WebSocket: 4000). Default 1 MiB.
	MaxOutbound int
	// SlowConsumerTimeout is how long a connection over MaxOutbound may go
	// without draining before it is closed as a slow consumer. Default 5s.
	SlowConsumerTimeout time.Duration
}

// HardOutboundFactor times MaxOutbound is the backlog past which a
// connection is closed as a slow consumer at once, before a write: it
// bounds what one client can hold, while a single message larger than
// MaxOutbound written to an empty buffer still goes out.
const HardOutboundFactor = 4

// WithDefaults returns c with every zero field set to its default. Pure.
func (c Config) WithDefaults() Config {
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.KeepAliveTimeout, 30*time.Second)
	def(&c.MaxHeaderBytes, 8<<10)
	def(&c.MaxHeaders, 64)
	def(&c.CloseTimeout, 5*time.Second)
	def(&c.MaxOutbound, 1<<20)
	def(&c.SlowConsumerTimeout, 5*time.Second)
	return c
}

// def sets *p to v when *p is zero or negative.
func def[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// TickFor returns a timing-wheel resolution fine enough for every timeout
// given: 1 s, halved (down to 1 ms) until each timeout spans at least 4
// ticks. Zero and negative timeouts (unset: a default applies) are
// skipped. Pure.
func TickFor(timeouts ...time.Duration) time.Duration {
	tick := time.Second
	for _, d := range timeouts {
		for d > 0 && tick > time.Millisecond && d < 4*tick {
			tick /= 2
		}
	}
	return tick
}
