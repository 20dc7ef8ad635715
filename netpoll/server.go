// Package netpoll runs pushd's listener (WebSocket, SSE and plain HTTP) on
// gnet v2 event loops. It is the only package that imports gnet: it turns
// gnet's callbacks into calls on conn's per-loop state machines, drives
// each loop's timing wheel from the engine ticker, implements topics.Loop
// so fan-out enters each loop with one hand-off per batch, and stops
// gracefully.
package netpoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/topics"
)

// Server is a running WebSocket listener. Its methods are safe for
// concurrent use.
type Server struct {
	// Static after Start.
	cfg     Config
	log     *slog.Logger
	metrics *conn.Metrics
	addr    string
	eng     gnet.Engine
	booted  chan struct{}
	done    chan struct{} // closed when the engine has stopped
	runErr  error         // valid after done is closed

	draining atomic.Bool
	lastSeen atomic.Int64 // UnixNano of the last moment a connection was open or arrived, while draining
	stopOnce sync.Once
	conns    atomic.Int64 // TCP connections between OnOpen and OnClose
	admit    *admission

	// mu guards loops and wakers; ticker reads the copy-on-write list in
	// loopList.
	mu       sync.Mutex
	loops    map[gnet.EventLoop]*loop
	loopList atomic.Pointer[[]*loop]
	wakers   []*net.TCPConn // the write ends of the loops' wakers, closed when the engine stops
}

// loop is one gnet event loop with pushd's state for it. It implements
// topics.Loop.
type loop struct {
	el      gnet.EventLoop
	env     *conn.Loop
	shard   *topics.Shard // nil without a hub
	advance gnet.RunnableFunc
	iovecs  []unix.Iovec  // writev scratch, owned by the loop goroutine
	refused []refusedConn // 503'd connections waiting to be closed; loop goroutine
	wk      *waker        // set on the loop goroutine once registered; nil until then
}

// Execute runs fn on the loop goroutine. Any goroutine.
func (l *loop) Execute(fn func()) error {
	return l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}

// Flush writes the pushes queued by a drain, for about budget at most, and
// reports whether all are written. Loop goroutine only.
func (l *loop) Flush(budget time.Duration) bool { return l.env.FlushFor(budget) }

// DefaultLoops is the event-loop count for procs usable CPUs: half of
// them, at least one. A loop spends its time in writev, and on the same
// machine the NATS client's reader, the broker's workers, the HTTP API and
// the garbage collector need processors too: with one loop per CPU the
// loops held every processor through long drains, the HTTP publisher
// starved (31–33 of 50 asked msg/s at 5,000 subscribers on 2 CPUs) and
// each loop drained sooner, with fewer pushes per writev (1.4–1.6 against
// 2.2–3.2 at 50 msg/s), which cost 1.8–3× more CPU per delivery than one
// loop (docs/benchmarks.md). Half leaves the other half for everything
// else; a node that only fans out can set --loops higher. Pure.
func DefaultLoops(procs int) int { return max(1, procs/2) }

// Start starts the engine and returns once it is accepting connections.
// Any goroutine.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = ":8080"
	}
	if cfg.Loops <= 0 {
		cfg.Loops = DefaultLoops(runtime.GOMAXPROCS(0))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DrainQuiet <= 0 {
		cfg.DrainQuiet = DefaultDrainQuiet
	}
	cfg.Conn = cfg.Conn.WithDefaults()
	if cfg.Tick <= 0 {
		cfg.Tick = conn.TickFor(cfg.Conn.HandshakeTimeout, cfg.Conn.CloseTimeout, cfg.Conn.SlowConsumerTimeout)
	}
	seen := make(map[string]bool, len(cfg.Routes))
	for _, r := range cfg.Routes {
		switch {
		case !strings.HasPrefix(r.Path, "/"):
			return nil, fmt.Errorf("netpoll: route path %q must start with /", r.Path)
		case seen[r.Path]:
			return nil, fmt.Errorf("netpoll: two routes for %q", r.Path)
		}
		seen[r.Path] = true
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: new(conn.Metrics),
		booted:  make(chan struct{}),
		done:    make(chan struct{}),
		loops:   make(map[gnet.EventLoop]*loop),
	}
	s.admit = newAdmission(&cfg)
	empty := []*loop{}
	s.loopList.Store(&empty)
	h := &handler{s: s}
	go func() {
		s.runErr = gnet.Run(h, "tcp://"+cfg.Addr,
			gnet.WithNumEventLoop(cfg.Loops),
			gnet.WithReuseAddr(true),
			gnet.WithTicker(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithLogger(gnetLogger{cfg.Logger}),
			gnet.WithLogLevel(logging.DebugLevel),
		)
		s.mu.Lock()
		for _, w := range s.wakers {
			_ = w.Close()
		}
		s.wakers = nil
		close(s.done)
		s.mu.Unlock()
	}()
	select {
	case <-s.booted:
		return s, nil
	case <-s.done:
		if s.runErr == nil {
			s.runErr = errors.New("netpoll: engine stopped during start")
		}
		return nil, s.runErr
	}
}

// Addr returns the address the server listens on, with the bound port.
// Any goroutine.
func (s *Server) Addr() string { return s.addr }

// Metrics returns the server's connection counters. Any goroutine.
func (s *Server) Metrics() *conn.Metrics { return s.metrics }

// Serving reports whether the engine is running and not draining. Any
// goroutine.
func (s *Server) Serving() bool {
	select {
	case <-s.done:
		return false
	default:
		return !s.draining.Load()
	}
}

// Done returns a channel that is closed when the engine has stopped. Any
// goroutine.
func (s *Server) Done() <-chan struct{} { return s.done }

// Shutdown drains the server: it answers every new connection 503 with
// Retry-After, sends close 1001 to every open connection, and waits until
// they are gone and no new connection has arrived for Config.DrainQuiet
// (so that clients a load balancer still sends here get the 503, not a
// refused connection), or until ctx ends. Then it stops the engine. It
// returns when the engine has stopped. Any goroutine, any number of times;
// not from an event loop, which it would wait on.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.lastSeen.Store(time.Now().UnixNano())
		s.draining.Store(true)
		for _, l := range *s.loopList.Load() {
			_ = l.Execute(func() { l.env.CloseAll(codec.StatusGoingAway, "server shutting down") })
		}
		for ctx.Err() == nil {
			now := time.Now()
			if s.connections() > 0 {
				s.lastSeen.Store(now.UnixNano())
			} else if now.Sub(time.Unix(0, s.lastSeen.Load())) >= s.cfg.DrainQuiet {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.eng.Stop(stopCtx); err != nil {
			s.log.Warn("engine stop", "err", err)
		}
		select {
		case <-s.done:
			// A drain the loops accepted but never ran still holds frames.
			for _, l := range *s.loopList.Load() {
				if l.shard != nil {
					l.shard.Stop()
				}
			}
		case <-stopCtx.Done():
		}
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connections counts open TCP connections. (gnet's CountConnections races
// with the engine's start, so the server keeps its own count.)
func (s *Server) connections() int64 { return s.conns.Load() }

// loopFor returns pushd's state for el, creating it on the first
// connection. Loop goroutine (OnOpen).
func (s *Server) loopFor(el gnet.EventLoop) *loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.loops[el]; l != nil {
		return l
	}
	l := &loop{el: el, iovecs: make([]unix.Iovec, 0, 1024)}
	if s.cfg.Hub != nil {
		l.shard = s.cfg.Hub.NewShard(l)
	}
	l.env = conn.NewLoop(conn.LoopConfig{
		Conn:    s.cfg.Conn,
		Tick:    s.cfg.Tick,
		Routes:  s.cfg.Routes,
		Metrics: s.metrics,
		Writev:  l.writev,
		Resume:  resume,
		Execute: l.Execute,
	}, l.shard)
	l.advance = func(context.Context) error {
		now := time.Now()
		l.env.Advance(now)
		l.closeRefused(now)
		return nil
	}
	s.loops[el] = l
	list := append(append([]*loop(nil), *s.loopList.Load()...), l)
	s.loopList.Store(&list)
	go s.startWaker(l)
	return l
}

// resume asks gnet to call OnTraffic again for a connection whose input
// buffer holds bytes that arrived while its previous request was held:
// gnet calls OnTraffic only for new bytes. Wake queues the call (one task
// allocation), so the connection is fed from the loop's own iteration, not
// from inside whatever answered the held request. Loop goroutine only.
func resume(tr conn.Transport) {
	if gc := tr.(gnet.Conn); gc.InboundBuffered() > 0 {
		_ = gc.Wake(nil)
	}
}

// handler adapts gnet's callbacks. Every On* method except OnTick runs on
// an event loop goroutine; OnTick runs on the engine's ticker goroutine.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

// OnBoot records the engine and the bound address. Runs on the goroutine
// that started the engine, before any loop serves.
func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := h.s
	s.eng = eng
	s.addr = s.cfg.Addr
	if fd, err := eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			switch a := sa.(type) {
			case *unix.SockaddrInet4:
				s.addr = net.JoinHostPort(net.IP(a.Addr[:]).String(), fmt.Sprint(a.Port))
			case *unix.SockaddrInet6:
				s.addr = net.JoinHostPort(net.IP(a.Addr[:]).String(), fmt.Sprint(a.Port))
			}
		}
		_ = unix.Close(fd)
	}
	close(s.booted)
	return gnet.None
}

// OnOpen admits or refuses a new TCP connection, or takes a loop's waker.
// Runs on the event loop.
func (h *handler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := h.s
	l := s.loopFor(gc.EventLoop())
	if m, ok := gc.Context().(wakerMarker); ok {
		m.w.gc = gc
		l.wk = m.w
		return nil, gnet.None
	}
	s.conns.Add(1)
	if s.draining.Load() { // tell the client to come back (to another node)
		s.lastSeen.Store(time.Now().UnixNano())
		l.refuse(gc, time.Second)
		return nil, gnet.None
	}
	if reason, retry := s.admit.acquire(remoteIP(gc), time.Now()); reason != "" {
		s.metrics.CountRejection(reason)
		l.refuse(gc, retry)
		return nil, gnet.None
	}
	gc.SetContext(l.env.Open(gc))
	return nil, gnet.None
}

// refuse answers 503 and keeps the connection, stateless, until the peer
// closes or the linger passes. Loop goroutine only.
func (l *loop) refuse(gc gnet.Conn, retry time.Duration) {
	// The marker goes first: a failed Write runs OnClose inside refuse,
	// which must see a counted connection.
	gc.SetContext(refusedMarker)
	if !refuse(gc, retry) {
		return // closed inside the Write; the fd may already be reused
	}
	l.refused = append(l.refused, refusedConn{gc: gc, at: time.Now()})
}

// closeRefused closes 503'd connections whose linger has passed. Loop
// goroutine only.
func (l *loop) closeRefused(now time.Time) {
	i := 0
	for ; i < len(l.refused) && now.Sub(l.refused[i].at) >= refusedLinger; i++ {
		_ = l.refused[i].gc.Close() // a no-op if the peer already closed it
		l.refused[i] = refusedConn{}
	}
	l.refused = l.refused[i:]
	if len(l.refused) == 0 {
		l.refused = nil
	}
}

// OnTraffic feeds every buffered byte to the connection's state machine and
// discards what it consumed; a partial request or frame stays in gnet's
// buffer until more arrives. Runs on the event loop.
func (h *handler) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*conn.Conn)
	if m, ok := gc.Context().(wakerMarker); ok {
		m.w.wake()
		return gnet.None
	}
	if c == nil { // refused: discard whatever the client sends
		_, _ = gc.Discard(gc.InboundBuffered())
		return gnet.None
	}
	buf, _ := gc.Peek(-1)
	n, closeNow := c.Feed(buf)
	if c.State() == conn.StateClosed {
		return gnet.Close // closed inside a failed write; gnet ignores it
	}
	if n > 0 {
		_, _ = gc.Discard(n) // never Discard(0): it drops everything
	}
	if closeNow {
		return gnet.Close
	}
	return gnet.None
}

// OnClose releases the connection's state and its admission slot. Runs on
// the event loop, possibly inside a failed Write.
func (h *handler) OnClose(gc gnet.Conn, _ error) gnet.Action {
	if m, ok := gc.Context().(wakerMarker); ok {
		// The engine is stopping (or the other end failed): Later falls
		// back to Execute. Functions still waiting run now.
		if l := h.s.loopFor(gc.EventLoop()); l.wk == m.w {
			l.wk = nil
		}
		m.w.gc = nil
		fns := m.w.fns
		m.w.fns = nil
		for _, fn := range fns {
			fn()
		}
		return gnet.None
	}
	if c, _ := gc.Context().(*conn.Conn); c != nil {
		c.Closed()
		h.s.admit.release(remoteIP(gc))
	}
	if gc.Context() != nil {
		h.s.conns.Add(-1)
	}
	return gnet.None
}

// OnTick hands each loop its timing-wheel advance. Runs on the engine's
// ticker goroutine, never on a loop: it touches no loop state itself.
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	for _, l := range *h.s.loopList.Load() {
		_ = l.el.Execute(context.Background(), l.advance)
	}
	return h.s.cfg.Tick, gnet.None
}
