package session

import (
	"sync/atomic"
	"time"
)

// Config configures the sessions of a server. Zero fields take the defaults
// listed beside them (see WithDefaults).
type Config struct {
	// CommandRate is the sustained number of protocol commands per second
	// one connection may send; CommandBurst is the bucket size. Commands
	// past the limit get a rate_limited error; a client that keeps sending
	// CommandBurst more is closed with 1008. Defaults 20/s and 40.
	CommandRate  float64
	CommandBurst int
	// MaxSubscriptions bounds the topics one connection may subscribe to,
	// and MaxTopicsPerCommand the topics in one command. Defaults 1024 and
	// 100.
	MaxSubscriptions    int
	MaxTopicsPerCommand int
	// PingInterval is the transport's heartbeat interval, announced in the
	// welcome so clients can detect a dead server. Default 25s.
	PingInterval time.Duration
	// PersonalTopic, when set, names the topic every authenticated session
	// is subscribed to at start (e.g. "user.<sub>"); "" means none. It runs
	// on the loop goroutine.
	PersonalTopic func(Identity) string
	// Publish, when set, lets clients publish with the publish command
	// (still subject to Identity.CanPublish). It runs on the loop goroutine
	// and must not block.
	Publish func(topic string, data []byte) error
}

// WithDefaults returns c with every zero field set to its default. Pure.
func (c Config) WithDefaults() Config {
	if c.CommandRate <= 0 {
		c.CommandRate = 20
	}
	if c.CommandBurst <= 0 {
		c.CommandBurst = 40
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 1024
	}
	if c.MaxTopicsPerCommand <= 0 {
		c.MaxTopicsPerCommand = 100
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	return c
}

// Metrics counts what the sessions of every loop do. All fields are
// updated atomically; read them with Load from any goroutine.
type Metrics struct {
	Commands        atomic.Int64 // protocol commands handled, refused ones included
	CommandErrors   atomic.Int64 // error replies sent
	RateLimited     atomic.Int64 // commands and pings refused by the per-connection budget
	TokenExpired    atomic.Int64 // sessions closed with 4002 when their token expired
	Forbidden       atomic.Int64 // subscribes and publishes refused by the token or the server
	ClientPublishes atomic.Int64 // messages published by clients
}
