package netpoll

import (
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/pushd/pushd/codec"
)

// admission applies the connection caps and the accept rate limit when a TCP
// connection opens, before any per-connection state is allocated. It is
// safe for concurrent use: every loop's OnOpen and OnClose call it.
type admission struct {
	maxConns, maxPerIP int
	rate               float64 // accepts per second; 0 = unlimited
	burst              float64

	mu     sync.Mutex
	open   int
	perIP  map[netip.Addr]int32
	tokens float64
	last   time.Time
}

// Rejection reasons, also the metric labels.
const (
	rejectGlobal = "global"
	rejectIP     = "ip"
	rejectRate   = "rate"
)

func newAdmission(cfg *Config) *admission {
	return &admission{
		maxConns: cfg.MaxConns,
		maxPerIP: cfg.MaxConnsPerIP,
		rate:     cfg.AcceptRate,
		burst:    float64(max(cfg.AcceptBurst, 1)),
		tokens:   float64(max(cfg.AcceptBurst, 1)),
		perIP:    make(map[netip.Addr]int32),
	}
}

// acquire admits a connection from ip, or returns the reason it is refused
// and how long the client should wait.
func (a *admission) acquire(ip netip.Addr, now time.Time) (reason string, retry time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxConns > 0 && a.open >= a.maxConns {
		return rejectGlobal, 5 * time.Second
	}
	if a.maxPerIP > 0 && ip.IsValid() && int(a.perIP[ip]) >= a.maxPerIP {
		return rejectIP, 5 * time.Second
	}
	if a.rate > 0 {
		if !a.last.IsZero() {
			a.tokens = math.Min(a.burst, a.tokens+now.Sub(a.last).Seconds()*a.rate)
		}
		a.last = now
		if a.tokens < 1 {
			// Spread retries over the time the bucket needs to refill.
			wait := time.Duration((1 - a.tokens) / a.rate * float64(time.Second))
			return rejectRate, max(wait, time.Second)
		}
		a.tokens--
	}
	a.open++
	if a.maxPerIP > 0 && ip.IsValid() {
		a.perIP[ip]++
	}
	return "", 0
}

// release forgets a connection admitted by acquire.
func (a *admission) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.open--
	if a.maxPerIP > 0 && ip.IsValid() {
		if n := a.perIP[ip] - 1; n > 0 {
			a.perIP[ip] = n
		} else {
			delete(a.perIP, ip)
		}
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
func refuse(gc gnet.Conn, retry time.Duration) {
	secs := strconv.Itoa(int(math.Ceil(retry.Seconds())))
	resp := codec.AppendHTTPError(nil, 503, "server busy, retry later", [2]string{"Retry-After", secs})
	_, _ = gc.Write(resp)
	if gc.OutboundBuffered() == 0 {
		_ = unix.Shutdown(gc.Fd(), unix.SHUT_WR)
	}
}
