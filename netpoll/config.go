package netpoll

import (
	"log/slog"
	"time"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/topics"
)

// DefaultDrainQuiet is Config.DrainQuiet's default.
const DefaultDrainQuiet = time.Second

// Config configures a Server. Zero fields take defaults.
type Config struct {
	// Addr is the TCP address to listen on, "host:port". Port 0 picks a free
	// port; Server.Addr reports the bound address. Default ":8080".
	Addr string
	// Loops is the number of event loops. Default: DefaultLoops(GOMAXPROCS).
	Loops int
	// Routes is the endpoint table: which endpoint serves which path
	// (conn/ws.V1Route, conn/ws.EchoRoute, …). A request for any other path
	// gets 404.
	Routes []conn.Route
	// Conn holds the limits and timers every connection shares.
	Conn conn.Config
	// Tick is the timing wheel's resolution. Default: conn.TickFor the
	// Conn timeouts; give a finer one (conn.TickFor) when an endpoint has
	// shorter timers of its own, such as WebSocket heartbeats.
	Tick time.Duration
	// Hub is the topic registry. When nil, the loops have no topic shard
	// and every subscribe fails with "internal".
	Hub *topics.Hub
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// DrainQuiet is how long Shutdown keeps answering new connections 503
	// after the last one is gone, so that clients a load balancer still
	// sends here learn to go elsewhere instead of meeting a closed port.
	// Default DefaultDrainQuiet.
	DrainQuiet time.Duration

	// MaxConns caps open TCP connections, MaxConnsPerIP those from one
	// remote address, and AcceptRate/AcceptBurst the rate of new ones (a
	// token bucket, rate.Limiter; a burst under 1 counts as 1). A
	// connection over a limit gets 503 with Retry-After before any
	// per-connection state exists. Zero means no limit.
	MaxConns      int
	MaxConnsPerIP int
	AcceptRate    float64
	AcceptBurst   int
	// TrustedProxies are exempt from MaxConnsPerIP: each of their
	// connections carries a different client. nil trusts none.
	TrustedProxies *auth.TrustedProxies
}
