//go:build linux

package wsclient

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config describes the target and the limits of one Loop.
type Config struct {
	// Target is the server's address.
	Target netip.AddrPort
	// Host is the Host header value (§4.1), usually the URL's host:port.
	Host string
	// ExtraHeaders are sent with every handshake: complete lines, each
	// ending in "\r\n".
	ExtraHeaders string
	// Sources are local addresses to bind before connecting, chosen by
	// DialRequest.Source modulo len(Sources). Each source address has its
	// own ~64k ephemeral ports towards one target, so spreading clients
	// over 127.0.0.2, 127.0.0.3, … avoids running out of ports. Empty
	// means the kernel chooses.
	Sources []netip.Addr
	// HandshakeTimeout bounds connect plus upgrade (default 10 s).
	HandshakeTimeout time.Duration
	// CloseTimeout bounds the closing handshake (default 2 s).
	CloseTimeout time.Duration
	// MaxInflight bounds connects and upgrades in progress; further dials
	// wait in the loop's queue (default 256).
	MaxInflight int
	// ReadBufferSize is the size of the one read buffer the loop shares
	// among its connections (default 64 KB).
	ReadBufferSize int
	// MaxFrameSize is the largest payload accepted from the server
	// (default 1 MB); a larger frame fails the connection.
	MaxFrameSize int64
}

func (c *Config) defaults() {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 2 * time.Second
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 256
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 64 << 10
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = 1 << 20
	}
}

// Handler receives a Loop's events. Every method runs on the loop's
// goroutine, one at a time, and must not block.
type Handler interface {
	// OnOpen is called when the upgrade completed; connect is the time from
	// socket(2) to the 101 response.
	OnOpen(c *Conn, connect time.Duration)
	// OnMessage is called for every complete text or binary message. p is
	// valid only during the call. now is the wall clock (Unix nanoseconds)
	// read once after the read(2) that completed the message.
	OnMessage(c *Conn, op Opcode, p []byte, now int64)
	// OnPing is called after the loop answered a ping with a pong.
	OnPing(c *Conn)
	// OnClose is called exactly once for every dialed connection, whether it
	// ever opened (c.Opened) or not. After it returns, c must not be used.
	OnClose(c *Conn, r CloseReason)
	// OnTick is called on every turn of the loop, at least every 50 ms.
	OnTick(now time.Time)
}

// DialRequest asks a Loop for one connection.
type DialRequest struct {
	// ID and Tag are the caller's; the Conn carries them.
	ID  int
	Tag int32
	// Path is the request target: path and query, e.g. "/ws?topics=a".
	Path string
	// Source picks the local address: Sources[Source % len(Sources)].
	Source int
}

// Loop is one epoll event loop and the connections it owns.
type Loop struct {
	// Static after NewLoop.
	cfg     Config
	h       Handler
	epfd    int
	evfd    int
	srcSAs  []unix.Sockaddr
	dstSA   unix.Sockaddr
	family  int
	started time.Time

	// Shared with other goroutines.
	mu      sync.Mutex
	tasks   []func() // mu guards tasks
	woken   atomic.Bool
	stopReq atomic.Bool
	done    chan struct{}

	// Owned by the loop goroutine.
	conns    []*Conn // indexed by fd
	timed    []*Conn // conns with a deadline: dialing, upgrading or closing
	queue    []DialRequest
	qhead    int
	inflight int
	open     int
	buf      []byte // shared read buffer
	wbuf     []byte // scratch for outgoing frames
	rng      *mrand.ChaCha8
	lastTick time.Time
}

// NewLoop creates a loop; call Run on a goroutine of its own to start it.
// Safe to call from any goroutine.
func NewLoop(cfg Config, h Handler) (*Loop, error) {
	cfg.defaults()
	if !cfg.Target.IsValid() {
		return nil, errors.New("wsclient: no target address")
	}
	l := &Loop{cfg: cfg, h: h, done: make(chan struct{}), started: time.Now()}
	l.buf = make([]byte, cfg.ReadBufferSize)
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	// Masking keys must be unpredictable to the server's intermediaries
	// (§5.3, §10.3); a ChaCha8 stream seeded from crypto/rand is that, and
	// costs nanoseconds per frame.
	l.rng = mrand.NewChaCha8(seed)
	t := cfg.Target.Addr().Unmap()
	if t.Is4() {
		l.family = unix.AF_INET
		l.dstSA = &unix.SockaddrInet4{Port: int(cfg.Target.Port()), Addr: t.As4()}
	} else {
		l.family = unix.AF_INET6
		l.dstSA = &unix.SockaddrInet6{Port: int(cfg.Target.Port()), Addr: t.As16()}
	}
	for _, s := range cfg.Sources {
		s = s.Unmap()
		switch {
		case s.Is4() && l.family == unix.AF_INET:
			l.srcSAs = append(l.srcSAs, &unix.SockaddrInet4{Addr: s.As4()})
		case s.Is6() && l.family == unix.AF_INET6:
			l.srcSAs = append(l.srcSAs, &unix.SockaddrInet6{Addr: s.As16()})
		default:
			return nil, fmt.Errorf("wsclient: source %v does not match target %v", s, t)
		}
	}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("wsclient: epoll_create1: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		unix.Close(l.epfd)
		return nil, fmt.Errorf("wsclient: eventfd: %w", err)
	}
	if err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd,
		&unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}); err != nil {
		unix.Close(l.evfd)
		unix.Close(l.epfd)
		return nil, fmt.Errorf("wsclient: epoll_ctl: %w", err)
	}
	return l, nil
}

// Execute runs fn on the loop's goroutine, soon. It reports false if the
// loop has stopped, in which case fn never runs. Safe for concurrent use.
func (l *Loop) Execute(fn func()) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	l.mu.Lock()
	l.tasks = append(l.tasks, fn)
	l.mu.Unlock()
	l.wake()
	return true
}

func (l *Loop) wake() {
	if l.woken.CompareAndSwap(false, true) {
		var one = [8]byte{1}
		unix.Write(l.evfd, one[:]) // EAGAIN only if the counter is huge: already awake
	}
}

// Stop asks the loop to close every connection (abruptly) and return from
// Run. Safe for concurrent use.
func (l *Loop) Stop() {
	l.stopReq.Store(true)
	l.wake()
}

// Done is closed when Run has returned. Safe for concurrent use.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Run runs the loop until Stop. Call it once, on a goroutine of its own.
// Before it returns, every connection has been closed and reported to
// OnClose with kind "stopped", and queued tasks have run.
func (l *Loop) Run() {
	defer func() {
		l.drainTasks() // tasks queued before done closes still run
		close(l.done)
		l.drainTasks()
		unix.Close(l.evfd)
		unix.Close(l.epfd)
	}()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(l.epfd, events, 50)
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("wsclient: epoll_wait: %v", err)) // only EBADF/EFAULT/EINVAL: a bug
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == l.evfd {
				var b [8]byte
				unix.Read(l.evfd, b[:])
				l.woken.Store(false)
				l.drainTasks()
				continue
			}
			if fd < len(l.conns) && l.conns[fd] != nil {
				l.conns[fd].event(l, events[i].Events)
			}
		}
		l.drainTasks()
		if l.stopReq.Load() {
			l.closeAll()
			return
		}
		now := time.Now()
		if now.Sub(l.lastTick) >= 10*time.Millisecond {
			l.lastTick = now
			l.expire(now)
			l.h.OnTick(now)
		}
		l.startDials()
	}
}

func (l *Loop) drainTasks() {
	for {
		l.mu.Lock()
		tasks := l.tasks
		l.tasks = nil
		l.mu.Unlock()
		if len(tasks) == 0 {
			return
		}
		for _, fn := range tasks {
			fn()
		}
	}
}

// Dial queues one connection. Call it only on the loop's goroutine (from
// a Handler method or an Execute function). The result arrives as OnOpen
// or OnClose.
func (l *Loop) Dial(r DialRequest) {
	l.queue = append(l.queue, r)
}

// Pending returns the number of dials queued or in progress. Loop
// goroutine only.
func (l *Loop) Pending() int { return len(l.queue) - l.qhead + l.inflight }

// Open returns the number of open connections. Loop goroutine only.
func (l *Loop) Open() int { return l.open }

func (l *Loop) startDials() {
	for l.qhead < len(l.queue) && l.inflight < l.cfg.MaxInflight && !l.stopReq.Load() {
		r := l.queue[l.qhead]
		l.queue[l.qhead] = DialRequest{}
		l.qhead++
		l.dial(r)
	}
	if l.qhead == len(l.queue) {
		l.queue = l.queue[:0]
		l.qhead = 0
	}
}

func (l *Loop) monoNow() int64 { return int64(time.Since(l.started)) }

// dial starts a non-blocking connect. Failures are reported through
// OnClose like every other outcome.
func (l *Loop) dial(r DialRequest) {
	c := &Conn{ID: r.ID, Tag: r.Tag, fd: -1, timerIdx: -1, start: l.monoNow()}
	var raw [16]byte
	l.rng.Read(raw[:])
	base64.StdEncoding.Encode(c.key[:], raw[:])
	l.inflight++
	fd, err := unix.Socket(l.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
		return
	}
	c.fd = fd
	// Small client writes (pongs, commands) must not wait for Nagle.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if len(l.srcSAs) > 0 {
		// Defer the port choice to connect(2), so the kernel can reuse a
		// port for different destinations instead of reserving it at bind.
		if l.family == unix.AF_INET {
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		}
		if err := unix.Bind(fd, l.srcSAs[r.Source%len(l.srcSAs)]); err != nil {
			l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
			return
		}
	}
	if err := unix.Connect(fd, l.dstSA); err != nil && err != unix.EINPROGRESS {
		l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
		return
	}
	c.out = appendRequest(make([]byte, 0, 160+len(r.Path)+len(l.cfg.ExtraHeaders)), r.Path, l.cfg.Host, c.key[:], l.cfg.ExtraHeaders)
	c.state = stateConnecting
	if fd >= len(l.conns) {
		n := max(2*len(l.conns), fd+1, 1024)
		grown := make([]*Conn, n)
		copy(grown, l.conns)
		l.conns = grown
	}
	l.conns[fd] = c
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd,
		&unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
		return
	}
	l.arm(c, c.start+int64(l.cfg.HandshakeTimeout))
}

// arm gives c a deadline (monotonic nanoseconds since l.started).
func (l *Loop) arm(c *Conn, deadline int64) {
	c.deadline = deadline
	if c.timerIdx < 0 {
		c.timerIdx = int32(len(l.timed))
		l.timed = append(l.timed, c)
	}
}

func (l *Loop) disarm(c *Conn) {
	i := c.timerIdx
	if i < 0 {
		return
	}
	last := len(l.timed) - 1
	l.timed[i] = l.timed[last]
	l.timed[i].timerIdx = int32(i)
	l.timed[last] = nil
	l.timed = l.timed[:last]
	c.timerIdx = -1
}

func (l *Loop) expire(now time.Time) {
	mono := int64(now.Sub(l.started))
	for i := len(l.timed) - 1; i >= 0; i-- {
		if i >= len(l.timed) {
			continue // finish() of a later entry shrank the slice
		}
		c := l.timed[i]
		if c.deadline > mono {
			continue
		}
		l.finish(c, c.timeoutReason())
	}
}

// closeAll closes every connection at once, for Stop.
func (l *Loop) closeAll() {
	for _, c := range l.conns {
		if c != nil {
			l.finish(c, CloseReason{Kind: "stopped", Local: true})
		}
	}
	for _, r := range l.queue[l.qhead:] {
		l.h.OnClose(&Conn{ID: r.ID, Tag: r.Tag, fd: -1, timerIdx: -1}, CloseReason{Kind: "stopped", Local: true})
	}
	l.queue, l.qhead = nil, 0
}

// mask returns a fresh masking key (§5.3).
func (l *Loop) mask() (m [4]byte) {
	v := l.rng.Uint64()
	m[0], m[1], m[2], m[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	return m
}

// errnoKind names a socket error for the error counts.
func errnoKind(err error) string {
	var en unix.Errno
	if !errors.As(err, &en) {
		return "error"
	}
	switch en {
	case unix.ECONNREFUSED:
		return "refused"
	case unix.ECONNRESET:
		return "reset"
	case unix.EPIPE:
		return "broken_pipe"
	case unix.EADDRNOTAVAIL, unix.EADDRINUSE:
		return "no_local_port"
	case unix.EMFILE, unix.ENFILE:
		return "fd_limit"
	case unix.ETIMEDOUT:
		return "timeout_tcp"
	case unix.ENETUNREACH, unix.EHOSTUNREACH:
		return "unreachable"
	}
	return "errno_" + unix.ErrnoName(en)
}
