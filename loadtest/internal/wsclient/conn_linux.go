//go:build linux

package wsclient

import (
	"bytes"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Connection states.
const (
	stateConnecting uint8 = iota // connect(2) in progress, request not yet written
	stateUpgrading               // request written, waiting for the 101 response
	stateOpen
	stateClosing // a close frame was sent; waiting for the server to close TCP
	stateClosed
)

// Conn is one client connection. Its fields and methods belong to the
// Loop that dialed it: use them only on that loop's goroutine.
type Conn struct {
	// ID and Tag are the caller's, from the DialRequest.
	ID  int
	Tag int32

	fd         int
	state      uint8
	opened     bool // reached stateOpen at some point
	gotClose   bool // a close frame arrived from the server
	closeLocal bool // the harness started the closing handshake
	fragOp     Opcode
	closeCode  int32 // status code of the closing handshake
	timerIdx   int32 // index in Loop.timed, -1 if none
	start      int64 // monotonic ns at socket(2)
	deadline   int64 // monotonic ns; meaningful while timerIdx >= 0
	key        [24]byte
	in         []byte // response bytes while upgrading; a partial frame after
	out        []byte // bytes the socket has not taken yet (the request, at first)
	frag       []byte // a fragmented message being assembled (§5.4)
}

// Opened reports whether the connection completed its upgrade at some
// point (it may have closed since). Loop goroutine only.
func (c *Conn) Opened() bool { return c.opened }

// IsOpen reports whether the connection is open now: upgraded and not
// closing. Loop goroutine only.
func (c *Conn) IsOpen() bool { return c.state == stateOpen }

// CloseReason says how a connection ended.
type CloseReason struct {
	// Kind is empty for a closing handshake the harness started and the
	// server completed, "dropped" for Drop and "stopped" for Loop.Stop.
	// Otherwise it names the failure, for example "refused",
	// "timeout_handshake", "http_503", "eof", "reset", "protocol", or
	// "close_4000" when the server closed with status 4000.
	Kind string
	// Code is the close status code exchanged, or 0.
	Code int
	// Local reports whether the harness ended the connection.
	Local bool
	// Err is the underlying error, if there was one.
	Err error
}

func (c *Conn) timeoutReason() CloseReason {
	switch {
	case c.state == stateConnecting:
		return CloseReason{Kind: "timeout_connect"}
	case c.state == stateUpgrading:
		return CloseReason{Kind: "timeout_handshake"}
	case c.closeLocal:
		return CloseReason{Kind: "timeout_close", Code: int(c.closeCode), Local: true}
	default:
		return CloseReason{Kind: "close_" + strconv.Itoa(int(c.closeCode)), Code: int(c.closeCode)}
	}
}

// event handles one epoll event for c.
func (c *Conn) event(l *Loop, ev uint32) {
	if c.state == stateConnecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && errno != 0 {
			err = unix.Errno(errno)
		}
		if err != nil {
			l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
			return
		}
		c.state = stateUpgrading
	}
	if ev&unix.EPOLLOUT != 0 && len(c.out) > 0 {
		if !l.flush(c) {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
		l.read(c)
	}
}

func (l *Loop) read(c *Conn) {
	n, err := unix.Read(c.fd, l.buf)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case err != nil && c.gotClose:
		// A server that sent its close frame may reset rather than close
		// (closing with our reply unread does that); the close code is
		// the better account of why the connection ended.
		l.eof(c)
		return
	case err != nil:
		l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
		return
	case n == 0:
		l.eof(c)
		return
	}
	now := time.Now().UnixNano()
	p := l.buf[:n]
	if len(c.in) > 0 || c.state == stateUpgrading {
		c.in = append(c.in, p...)
		p = c.in
	}
	if c.state == stateUpgrading {
		used, err := parseResponse(p, c.key[:])
		if err != nil {
			kind := "bad_handshake"
			if re, ok := err.(*responseError); ok {
				kind = re.Kind
			}
			l.finish(c, CloseReason{Kind: kind, Err: err})
			return
		}
		if used == 0 {
			return
		}
		if len(c.out) > 0 {
			// A 101 before our request was fully written: impossible for a
			// conforming server, which must read the whole request first.
			l.finish(c, CloseReason{Kind: "bad_handshake"})
			return
		}
		c.state, c.opened = stateOpen, true
		l.disarm(c)
		l.inflight--
		l.open++
		l.h.OnOpen(c, time.Duration(l.monoNow()-c.start))
		if c.state != stateOpen {
			return
		}
		p = p[used:]
	}
	rest := l.frames(c, p, now)
	if c.state == stateClosed {
		return
	}
	switch {
	case len(rest) == 0:
		c.in = nil
	case len(c.in) > 0:
		// rest is a tail of c.in: move it to the front.
		c.in = c.in[:copy(c.in, rest)]
	default:
		c.in = bytes.Clone(rest)
	}
}

// frames handles every complete frame at the start of p and returns the
// bytes of the incomplete one that may follow.
func (l *Loop) frames(c *Conn, p []byte, now int64) []byte {
	for len(p) > 0 {
		h, err := parseHeader(p, l.cfg.MaxFrameSize)
		if err == errNeedMore {
			return p
		}
		if err != nil {
			l.finish(c, CloseReason{Kind: "protocol", Err: err})
			return nil
		}
		total := int64(h.size) + h.length
		if int64(len(p)) < total {
			return p
		}
		payload := p[h.size:total]
		p = p[total:]
		switch h.op {
		case OpText, OpBinary:
			if c.frag != nil { // §5.4: no new message inside a fragmented one
				l.finish(c, CloseReason{Kind: "protocol"})
				return nil
			}
			if h.fin {
				l.h.OnMessage(c, h.op, payload, now)
			} else {
				c.frag = append(make([]byte, 0, 2*len(payload)), payload...)
				c.fragOp = h.op
			}
		case OpContinuation:
			if c.frag == nil {
				l.finish(c, CloseReason{Kind: "protocol"})
				return nil
			}
			c.frag = append(c.frag, payload...)
			if int64(len(c.frag)) > l.cfg.MaxFrameSize {
				l.finish(c, CloseReason{Kind: "protocol", Err: errTooBig})
				return nil
			}
			if h.fin {
				msg := c.frag
				c.frag = nil
				l.h.OnMessage(c, c.fragOp, msg, now)
			}
		case OpPing:
			// §5.5.2–§5.5.3: answer with a pong carrying the same data.
			if c.state == stateOpen {
				l.sendFrame(c, OpPong, payload)
			}
			if c.state != stateClosed {
				l.h.OnPing(c)
			}
		case OpPong:
			// Unsolicited pongs are allowed and need no answer (§5.5.3).
		case OpClose:
			c.gotClose = true
			if c.state == stateOpen {
				// The server started the closing handshake: echo its
				// status code (§5.5.1) and wait for it to close TCP first
				// (§7.1.1).
				c.closeCode = int32(closeCode(payload))
				c.closeLocal = false
				echo := payload[:min(2, len(payload))]
				if !l.sendFrame(c, OpClose, echo) {
					return nil
				}
				c.state = stateClosing
				l.arm(c, l.monoNow()+int64(l.cfg.CloseTimeout))
			}
			return nil // nothing may follow a close frame (§5.5.1)
		}
		if c.state == stateClosed {
			return nil
		}
	}
	return nil
}

// eof handles the server closing its side of the TCP connection.
func (l *Loop) eof(c *Conn) {
	switch {
	case c.state == stateUpgrading:
		l.finish(c, CloseReason{Kind: "eof_handshake"})
	case c.state == stateClosing && c.gotClose && c.closeLocal:
		l.finish(c, CloseReason{Code: int(c.closeCode), Local: true})
	case c.state == stateClosing && c.gotClose:
		l.finish(c, CloseReason{Kind: "close_" + strconv.Itoa(int(c.closeCode)), Code: int(c.closeCode)})
	default:
		l.finish(c, CloseReason{Kind: "eof"})
	}
}

// finish closes c's socket, if any, and reports r. It is idempotent.
func (l *Loop) finish(c *Conn, r CloseReason) {
	switch c.state {
	case stateClosed:
		return
	case stateConnecting, stateUpgrading:
		l.inflight--
	case stateOpen, stateClosing:
		l.open--
	}
	l.disarm(c)
	if c.fd >= 0 {
		l.conns[c.fd] = nil
		unix.Close(c.fd) // also removes it from the epoll set
		c.fd = -1
	}
	c.state = stateClosed
	c.in, c.out, c.frag = nil, nil, nil
	l.h.OnClose(c, r)
}

// Send sends one complete message (a single final frame) on c. It reports
// false if c is not open or the write failed, in which case OnClose has
// been or will be called. Loop goroutine only.
func (l *Loop) Send(c *Conn, op Opcode, p []byte) bool {
	if c.state != stateOpen {
		return false
	}
	return l.sendFrame(c, op, p)
}

// Close starts the closing handshake with status code (§7.1.2): OnClose
// follows when the server has answered and closed TCP, or after
// CloseTimeout. A connection not yet open is dropped instead. Loop
// goroutine only.
func (l *Loop) Close(c *Conn, code int) {
	switch c.state {
	case stateOpen:
		c.closeLocal = true
		c.closeCode = int32(code)
		if !l.sendFrame(c, OpClose, closePayload(code)) {
			return
		}
		c.state = stateClosing
		l.arm(c, l.monoNow()+int64(l.cfg.CloseTimeout))
	case stateConnecting, stateUpgrading:
		l.Drop(c)
	}
}

// Drop closes c's socket at once, with no closing handshake, as a client
// that loses its network or crashes would; OnClose is called with kind
// "dropped" before Drop returns. Loop goroutine only.
func (l *Loop) Drop(c *Conn) {
	l.finish(c, CloseReason{Kind: "dropped", Local: true})
}

// sendFrame masks p into a frame and writes it, queueing what the socket
// does not take. It reports false if the connection failed.
func (l *Loop) sendFrame(c *Conn, op Opcode, p []byte) bool {
	l.wbuf = appendFrame(l.wbuf[:0], op, p, l.mask())
	if len(c.out) > 0 {
		c.out = append(c.out, l.wbuf...)
		return true
	}
	n, err := unix.Write(c.fd, l.wbuf)
	if err == unix.EAGAIN {
		n, err = 0, nil
	}
	if err != nil {
		l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
		return false
	}
	if n < len(l.wbuf) {
		c.out = append(c.out, l.wbuf[n:]...)
		return l.watchOut(c, true)
	}
	return true
}

// flush writes queued bytes. It reports false if the connection failed.
func (l *Loop) flush(c *Conn) bool {
	n, err := unix.Write(c.fd, c.out)
	if err == unix.EAGAIN {
		return true
	}
	if err != nil {
		l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
		return false
	}
	if n < len(c.out) {
		c.out = c.out[:copy(c.out, c.out[n:])]
		return l.watchOut(c, true)
	}
	c.out = nil
	return l.watchOut(c, false)
}

// watchOut switches EPOLLOUT interest on or off for c.
func (l *Loop) watchOut(c *Conn, on bool) bool {
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		ev |= unix.EPOLLOUT
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)}); err != nil {
		l.finish(c, CloseReason{Kind: errnoKind(err), Err: err})
		return false
	}
	return true
}
