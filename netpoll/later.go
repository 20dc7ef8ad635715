package netpoll

import (
	"context"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// A loop's waker lets work wait for the loop's next poll: Later.
//
// gnet runs a loop's task queue (Execute) to the end before it polls its
// sockets again, tasks queued meanwhile included, so a drain that handed
// its rest back with Execute would run again before any socket of its loop
// is served. The waker is a loopback TCP connection per loop whose one end
// is registered in the loop like a client: Later writes a byte to the
// other end, and the loop's next epoll_wait reports it readable along with
// every socket that is ready by then, which the loop serves in the same
// round. Its cost is two file descriptors per loop and a write and a read
// per hand-back.
type waker struct {
	out *net.TCPConn // the end pushd writes to; closed with the engine
	fd  int          // out's descriptor, written with unix.Write (non-blocking)

	// Owned by the loop goroutine.
	gc    gnet.Conn // the loop's end, once registered (OnOpen)
	fns   []func()  // waiting for the next poll
	spare []func()
}

// wakerMarker is the context of a waker's registered end: OnOpen, on the
// loop goroutine, hands the waker to its loop.
type wakerMarker struct{ w *waker }

// startWaker makes the loop's waker connection and registers one end in
// the loop. It runs on its own goroutine (it dials); until the loop has
// the registered end, Later falls back to Execute. Errors only cost that
// fallback, so they are logged at debug level.
func (s *Server) startWaker(l *loop) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		s.log.Debug("netpoll: no waker for a loop", "err", err)
		return
	}
	defer ln.Close()
	in, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		s.log.Debug("netpoll: no waker for a loop", "err", err)
		return
	}
	_ = ln.SetDeadline(time.Now().Add(5 * time.Second))
	out, err := ln.AcceptTCP()
	if err != nil {
		in.Close()
		s.log.Debug("netpoll: no waker for a loop", "err", err)
		return
	}
	fd := -1
	if rc, err := out.SyscallConn(); err == nil {
		_ = rc.Control(func(f uintptr) { fd = int(f) })
	}
	if fd < 0 {
		in.Close()
		out.Close()
		return
	}
	s.mu.Lock()
	select {
	case <-s.done: // the engine has stopped
		s.mu.Unlock()
		in.Close()
		out.Close()
		return
	default:
	}
	s.wakers = append(s.wakers, out)
	s.mu.Unlock()
	// gnet dups in's descriptor and closes in; OnOpen, on the loop
	// goroutine, gives the loop the waker.
	ctx := gnet.NewContext(context.Background(), wakerMarker{&waker{out: out, fd: fd}})
	if _, err := l.el.Enroll(ctx, in); err != nil {
		s.log.Debug("netpoll: no waker for a loop", "err", err)
	}
}

// Later runs fn on the loop goroutine after the loop has served the
// sockets that are ready at its next poll (topics.Loop). Before the
// loop's waker is registered, it is Execute. Loop goroutine only.
func (l *loop) Later(fn func()) error {
	w := l.wk
	if w == nil || w.gc == nil {
		return l.Execute(fn)
	}
	w.fns = append(w.fns, fn)
	if len(w.fns) == 1 {
		// A full socket buffer (EAGAIN) means a wake-up is pending anyway.
		if _, err := unix.Write(w.fd, []byte{1}); err != nil && err != unix.EAGAIN {
			w.fns = w.fns[:0]
			return l.Execute(fn)
		}
	}
	return nil
}

// wake runs the functions waiting for this poll. Loop goroutine only.
func (w *waker) wake() {
	_, _ = w.gc.Discard(w.gc.InboundBuffered())
	fns := w.fns
	w.fns = w.spare[:0]
	for i, fn := range fns {
		fn()
		fns[i] = nil
	}
	w.spare = fns[:0]
}
