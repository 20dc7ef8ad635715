package netpoll

import (
	"log/slog"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/topics"
)

// Config configures a Server. Zero fields take defaults.
type Config struct {
	// Addr is the TCP address to listen on, "host:port". Port 0 picks a free
	// port; Server.Addr reports the bound address. Default ":8080".
	Addr string
	// Loops is the number of event loops. Default: GOMAXPROCS.
	Loops int
	// WSPath is the path of the pushd protocol endpoint. Default "/ws".
	WSPath string
	// EchoPath, when set, enables an echo endpoint at that path that sends
	// every complete data message back with its opcode. It exists for RFC
	// 6455 conformance testing and is off by default.
	EchoPath string
	// Conn holds the per-connection limits and heartbeat timers.
	Conn conn.Config
	// Tick is the timing wheel's resolution. Default: 1s, or less when a
	// configured timeout is shorter than 4 ticks.
	Tick time.Duration
	// Hub is the topic registry. When nil, the WSPath endpoint still speaks
	// the protocol but every subscribe fails with "internal".
	Hub *topics.Hub
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger

	// MaxConns caps open TCP connections, MaxConnsPerIP those from one
	// remote address, and AcceptRate/AcceptBurst the rate of new ones (a
	// token bucket). A connection over a limit gets 503 with Retry-After
	// before any per-connection state exists. Zero means no limit.
	MaxConns      int
	MaxConnsPerIP int
	AcceptRate    float64
	AcceptBurst   int
	// TrustedProxies are exempt from MaxConnsPerIP: each of their
	// connections carries a different client. nil trusts none.
	TrustedProxies *auth.TrustedProxies

	// Admit, PersonalTopic and Publish are passed to conn.LoopConfig:
	// authentication before the 101, the personal topic, and client
	// publishing.
	Admit         func(*codec.Request) (conn.Identity, string, *codec.HandshakeError)
	PersonalTopic func(conn.Identity) string
	Publish       func(topic string, data []byte) error
}
