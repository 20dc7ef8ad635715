package conn

import "time"

// Config holds the per-connection limits and timers. Zero fields take the
// defaults listed beside them (see WithDefaults).
type Config struct {
	// HandshakeTimeout bounds the time from TCP accept to a complete upgrade
	// request. Default 10s.
	HandshakeTimeout time.Duration
	// MaxHeaderBytes bounds the upgrade request head (431 past it). Default 8 KiB.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of request header fields (431). Default 64.
	MaxHeaders int
	// MaxFrameSize bounds one frame's payload, checked against the declared
	// length before anything is buffered (1009). Default 64 KiB.
	MaxFrameSize int
	// MaxMessageSize bounds a whole (possibly fragmented) message (1009).
	// Default 64 KiB.
	MaxMessageSize int
	// PingInterval is how long a connection may stay silent before the server
	// pings it. Default 25s.
	PingInterval time.Duration
	// PongTimeout is how long the server waits for any frame after a ping
	// before it closes the connection. Default 10s.
	PongTimeout time.Duration
	// CloseTimeout bounds the close handshake: after the server sends a close
	// frame it drops the TCP connection if the peer has not answered by then.
	// Default 5s.
	CloseTimeout time.Duration
	// MaxOutbound caps the bytes queued for one connection that the kernel
	// has not taken yet. Past it the connection is closed with 4000 (slow
	// consumer). Default 1 MiB.
	MaxOutbound int
	// CommandRate is the sustained number of protocol commands per second
	// one connection may send; CommandBurst is the bucket size. Commands
	// past the limit get a rate_limited error; a client that keeps sending
	// CommandBurst more is closed with 1008. Defaults 20/s and 40.
	CommandRate  float64
	CommandBurst int
	// MaxSubscriptions bounds the topics one connection may subscribe to, and
	// MaxTopicsPerCommand the topics in one command. Defaults 1024 and 100.
	MaxSubscriptions    int
	MaxTopicsPerCommand int
}

// WithDefaults returns c with every zero field set to its default. Pure.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HandshakeTimeout, 10*time.Second)
	defInt(&c.MaxHeaderBytes, 8<<10)
	defInt(&c.MaxHeaders, 64)
	defInt(&c.MaxFrameSize, 64<<10)
	defInt(&c.MaxMessageSize, 64<<10)
	def(&c.PingInterval, 25*time.Second)
	def(&c.PongTimeout, 10*time.Second)
	def(&c.CloseTimeout, 5*time.Second)
	defInt(&c.MaxOutbound, 1<<20)
	if c.CommandRate <= 0 {
		c.CommandRate = 20
	}
	defInt(&c.CommandBurst, 40)
	defInt(&c.MaxSubscriptions, 1024)
	defInt(&c.MaxTopicsPerCommand, 100)
	if c.MaxFrameSize > c.MaxMessageSize {
		c.MaxFrameSize = c.MaxMessageSize
	}
	return c
}
