package netpoll

import (
	"math"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/auth"
)

// admission applies the connection caps and the accept rate limit when a TCP
// connection opens, before any per-connection state is allocated. It is
// safe for concurrent use: every loop's OnOpen and OnClose call it.
type admission struct {
	// Immutable after newAdmission.
	maxConns int64
	perIP    *auth.PerIPCounter
	rate     *rate.Limiter        // accept rate, shared by every loop; nil = no limit
	trusted  *auth.TrustedProxies // exempt from the per-IP cap; may be nil

	open atomic.Int64 // admitted connections not yet released
}

// Rejection reasons, also the metric labels.
const (
	rejectGlobal = "global"
	rejectIP     = "ip"
	rejectRate   = "rate"
)

// capRetry is the Retry-After for a connection refused by a cap: a client
// should not come straight back.
const capRetry = 5 * time.Second

func newAdmission(cfg *Config) *admission {
	return &admission{
		maxConns: int64(cfg.MaxConns),
		perIP:    auth.NewPerIPCounter(cfg.MaxConnsPerIP),
		rate:     newAcceptLimiter(cfg.AcceptRate, cfg.AcceptBurst),
		trusted:  cfg.TrustedProxies,
	}
}

// exempt reports whether ip is a trusted proxy: its connections carry many
// clients, so the per-IP cap does not apply to it.
func (a *admission) exempt(ip netip.Addr) bool {
	return !ip.IsValid() || a.trusted != nil && a.trusted.Trusted(ip)
}

// acquire admits a connection from ip, or returns the reason it is refused
// and how long the client should wait.
func (a *admission) acquire(ip netip.Addr, now time.Time) (reason string, retry time.Duration) {
	if n := a.open.Add(1); a.maxConns > 0 && n > a.maxConns {
		a.open.Add(-1)
		return rejectGlobal, capRetry
	}
	if !a.exempt(ip) && !a.perIP.Acquire(ip) {
		a.open.Add(-1)
		return rejectIP, capRetry
	}
	if a.rate != nil && !a.rate.AllowN(now, 1) {
		a.release(ip)
		return rejectRate, acceptRetry(a.rate, now)
	}
	return "", 0
}

// newAcceptLimiter returns the accept-rate token bucket: full at start,
// burst tokens (at least 1: a bucket that holds no token would refuse
// everything), refilled at perSec a second, one token per connection. It
// returns nil, no limit, when perSec is 0 or less, NaN or +Inf, so an
// unlimited server takes no lock per accept. Pure.
func newAcceptLimiter(perSec float64, burst int) *rate.Limiter {
	if !(perSec > 0) || math.IsInf(perSec, 1) {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSec), max(burst, 1))
}

// acceptRetry returns how long after now lim will have a whole token: the
// Retry-After of a connection it refused; zero for no limit or a token
// available now. It reads the bucket with TokensAt, which takes nothing,
// rather than Reserve and Cancel: a reservation would lend the token to
// this refused client until the Cancel and lengthen every concurrent
// refusal's answer meanwhile. It rounds up to the nanosecond so that,
// after RetryAfterSeconds rounds to whole seconds, a client that obeys it
// never comes back before the token is there. Safe for concurrent use.
func acceptRetry(lim *rate.Limiter, now time.Time) time.Duration {
	if lim == nil {
		return 0
	}
	missing := 1 - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(missing / float64(lim.Limit()) * float64(time.Second)))
}

// release forgets a connection admitted by acquire.
func (a *admission) release(ip netip.Addr) {
	a.open.Add(-1)
	if !a.exempt(ip) {
		a.perIP.Release(ip)
	}
}

// remoteIP returns the peer's address without allocating.
func remoteIP(gc gnet.Conn) netip.Addr {
	if ta, ok := gc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// refusedMarker is the context of a connection that got a 503: it holds no
// pushd state. Its input is discarded, and it is closed when the peer closes
// or refusedLinger after the answer, whichever comes first.
var refusedMarker = new(struct{ _ byte })

// refusedConn is a refused connection waiting for its linger to end.
type refusedConn struct {
	gc gnet.Conn
	at time.Time
}

const refusedLinger = 2 * time.Second

// refuse answers 503 with Retry-After and shuts down the write side, so the
// client reads the answer and EOF. Loop goroutine only.
func refuse(gc gnet.Conn, retry time.Duration) bool {
	resp := codec.AppendHTTPError(nil, 503, "server busy, retry later", [2]string{"Retry-After", auth.RetryAfterSeconds(retry)})
	if _, err := gc.Write(resp); err != nil {
		return false
	}
	if gc.OutboundBuffered() == 0 {
		_ = unix.Shutdown(gc.Fd(), unix.SHUT_WR)
	}
	return true
}
