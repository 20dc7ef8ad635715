package conn

import "time"

// Config holds the limits and timers every connection shares, whatever its
// protocol. Zero fields take the defaults listed beside them (see
// WithDefaults).
type Config struct {
	// HandshakeTimeout bounds the time from TCP accept to a complete request
	// head. Default 10s.
	HandshakeTimeout time.Duration
	// MaxHeaderBytes bounds the request head (431 past it). Default 8 KiB.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of request header fields (431). Default 64.
	MaxHeaders int
	// CloseTimeout bounds a close handshake: after the server says goodbye
	// (a WebSocket close frame) it drops the TCP connection if the peer has
	// not answered by then. Default 5s.
	CloseTimeout time.Duration
	// MaxOutbound caps the bytes queued for one connection that the kernel
	// has not taken yet. Past it the connection is a slow consumer, and its
	// protocol closes it (WebSocket: 4000). Default 1 MiB.
	MaxOutbound int
}

// WithDefaults returns c with every zero field set to its default. Pure.
func (c Config) WithDefaults() Config {
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.MaxHeaderBytes, 8<<10)
	def(&c.MaxHeaders, 64)
	def(&c.CloseTimeout, 5*time.Second)
	def(&c.MaxOutbound, 1<<20)
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
