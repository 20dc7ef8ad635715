//go:build linux

// Command floor is the FLOOR reference for pushd's fan-out benchmarks: a
// bare WebSocket push server that does the least a server can do per
// delivery, so that pushd's cost per delivery can be stated as a multiple of
// it. It is not part of pushd and not a product; scripts/bench.sh runs it
// beside pushd and the gorilla baseline (bench/refhub) and drives all three
// with the same loadtest harness.
//
//	go run ./bench/floor -addr 127.0.0.1:8092 -api-addr 127.0.0.1:8093
//
// What it does, and nothing more:
//
//   - GET /ws?topics=a,b upgrades (net/http parses the request) and
//     subscribes the connection to those topics; there are no commands, no
//     welcome message and no heartbeats.
//   - POST /v1/publish with pushd's single-topic body {"topic":"t","data":…}
//     queues the message and answers at once, as pushd's API does.
//   - One goroutine owns every socket, with its own epoll set. For each
//     message it encodes the push once, exactly as pushd does
//     ({"type":"message","topic":…,"seq":…,"data":…} in one text frame), and
//     makes exactly one write(2) of that frame per subscriber: no batching,
//     no writev, no goroutine per write.
//   - Sockets are non-blocking, and a write is never waited for: if the
//     kernel takes only part of a frame (a full socket buffer), the rest is
//     kept for that connection and written when epoll reports it writable,
//     with later frames for it appended behind (so a slow reader, and only
//     a slow reader, gets several frames per write). A connection with more
//     than -max-pending bytes waiting is closed.
//   - A client's close frame is answered and the socket closed; a ping is
//     answered; anything else a client sends is read and dropped.
//
// SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/pushd/pushd/codec"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8092", "WebSocket listen address (path /ws)")
	apiAddr := flag.String("api-addr", "127.0.0.1:8093", "HTTP API listen address (/v1/publish, /readyz)")
	maxPending := flag.Int("max-pending", 1<<20, "unsent bytes per connection before it is closed")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *apiAddr, *maxPending); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, addr, apiAddr string, maxPending int) error {
	wsLn, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", apiAddr)
	if err != nil {
		wsLn.Close()
		return err
	}
	return serve(ctx, wsLn, apiLn, maxPending)
}

// serve runs the loop and both HTTP servers on the given listeners until
// ctx ends; it closes the listeners.
func serve(ctx context.Context, wsLn, apiLn net.Listener, maxPending int) error {
	l, err := newLoop(maxPending)
	if err != nil {
		wsLn.Close()
		apiLn.Close()
		return err
	}
	wsMux := http.NewServeMux()
	wsMux.HandleFunc("GET /ws", l.serveWS)
	apiMux := http.NewServeMux()
	apiMux.HandleFunc("POST /v1/publish", l.servePublish)
	apiMux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	wsSrv := &http.Server{Handler: wsMux, ReadHeaderTimeout: 10 * time.Second}
	apiSrv := &http.Server{Handler: apiMux, ReadHeaderTimeout: 10 * time.Second}
	loopDone := make(chan error, 1)
	go func() { loopDone <- l.run() }()
	errc := make(chan error, 2)
	go func() { errc <- wsSrv.Serve(wsLn) }()
	go func() { errc <- apiSrv.Serve(apiLn) }()
	log.Printf("floor (reference) ws://%s/ws, api http://%s", wsLn.Addr(), apiLn.Addr())
	select {
	case <-ctx.Done():
	case err = <-errc:
	case err = <-loopDone:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	wsSrv.Shutdown(sctx)
	apiSrv.Shutdown(sctx)
	l.stop()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// loop owns every upgraded socket. Other goroutines reach it through
// post, which queues a command and wakes epoll_wait through an eventfd.
type loop struct {
	// Static after newLoop.
	epfd, evfd int
	maxPending int

	mu      sync.Mutex // mu guards queue and stopped
	queue   []command
	stopped bool

	// Owned by the loop goroutine.
	conns  map[int]*conn
	topics map[string][]*conn
	seq    map[string]uint64
	rbuf   []byte // shared read buffer
	push   []byte // the push being delivered, JSON
	frame  []byte // the push being delivered, framed
	reply  []byte // a pong or close frame being written
}

// conn is one upgraded socket. Owned by the loop goroutine.
type conn struct {
	fd      int
	topics  []string
	pending []byte // bytes the kernel has not taken yet
	in      []byte // a partial client frame carried to the next read
	closed  bool
}

// command is work for the loop: a new connection (fd ≥ 0) or a message.
type command struct {
	fd     int
	topics []string
	early  []byte // bytes the client sent right after its request
	topic  string
	data   []byte
}

func newLoop(maxPending int) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	return &loop{epfd: epfd, evfd: evfd, maxPending: maxPending, conns: map[int]*conn{},
		topics: map[string][]*conn{}, seq: map[string]uint64{}, rbuf: make([]byte, 64<<10)}, nil
}

// post queues c for the loop and wakes it if the queue was empty. Any
// goroutine may call it; it reports false once the loop has stopped.
func (l *loop) post(c command) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	wake := len(l.queue) == 0
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	if wake {
		var one = [8]byte{1}
		unix.Write(l.evfd, one[:]) // little-endian 1; EAGAIN means already signalled
	}
	return true
}

// stop makes the loop close every socket and return. Any goroutine.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:])
}

// run is the loop goroutine.
func (l *loop) run() error {
	events := make([]unix.EpollEvent, 256)
	defer func() {
		for _, c := range l.conns {
			unix.Close(c.fd)
		}
		unix.Close(l.epfd)
		unix.Close(l.evfd)
	}()
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == l.evfd {
				if !l.drainQueue() {
					return nil
				}
				continue
			}
			c := l.conns[int(ev.Fd)]
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.flushPending(c)
			}
			if !c.closed && ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.readFrom(c)
			}
		}
	}
}

// drainQueue runs the queued commands; false means stop.
func (l *loop) drainQueue() bool {
	var b [8]byte
	unix.Read(l.evfd, b[:])
	l.mu.Lock()
	q, stopped := l.queue, l.stopped
	l.queue = nil
	l.mu.Unlock()
	for _, c := range q {
		if c.fd >= 0 {
			l.register(c)
		} else {
			l.publish(c.topic, c.data)
		}
	}
	return !stopped
}

func (l *loop) register(cmd command) {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, cmd.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(cmd.fd)}); err != nil {
		unix.Close(cmd.fd)
		return
	}
	c := &conn{fd: cmd.fd, topics: cmd.topics}
	l.conns[c.fd] = c
	for _, t := range c.topics {
		l.topics[t] = append(l.topics[t], c)
	}
	if len(cmd.early) > 0 {
		l.handleInput(c, cmd.early)
	}
}

// publish encodes the push once and writes it to every subscriber with one
// write(2) each.
func (l *loop) publish(topic string, data []byte) {
	l.seq[topic]++
	l.push = codec.AppendPush(l.push[:0], topic, l.seq[topic], data)
	l.frame = codec.AppendFrame(l.frame[:0], ws.OpText, true, l.push)
	frame := l.frame
	subs := l.topics[topic]
	for i := 0; i < len(subs); i++ {
		c := subs[i]
		l.send(c, frame)
		if c.closed { // send closed it and removed it from subs
			subs = l.topics[topic]
			i--
		}
	}
}

// send writes b to c with one write(2), or queues it behind bytes already
// waiting. It closes c on a write error or when too much is waiting.
func (l *loop) send(c *conn, b []byte) {
	if len(c.pending) > 0 {
		if len(c.pending)+len(b) > l.maxPending {
			l.closeConn(c)
			return
		}
		c.pending = append(c.pending, b...)
		return
	}
	n, err := unix.Write(c.fd, b)
	for err == unix.EINTR {
		n, err = unix.Write(c.fd, b)
	}
	switch {
	case err == unix.EAGAIN:
		n = 0
	case err != nil:
		l.closeConn(c)
		return
	}
	if n < len(b) {
		c.pending = append(c.pending[:0], b[n:]...)
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(c.fd)})
	}
}

// flushPending writes what c has waiting now that it is writable.
func (l *loop) flushPending(c *conn) {
	n, err := unix.Write(c.fd, c.pending)
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		l.closeConn(c)
		return
	}
	if n > 0 {
		c.pending = c.pending[n:]
	}
	if len(c.pending) == 0 {
		c.pending = nil
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)})
	}
}

// readFrom reads what the client sent; EOF or an error closes c.
func (l *loop) readFrom(c *conn) {
	n, err := unix.Read(c.fd, l.rbuf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if err != nil || n == 0 {
		l.closeConn(c)
		return
	}
	l.handleInput(c, l.rbuf[:n])
}

// handleInput parses client frames: a close is answered and the socket
// closed, a ping answered, anything else dropped. A partial frame is kept.
func (l *loop) handleInput(c *conn, p []byte) {
	if len(c.in) > 0 {
		c.in = append(c.in, p...)
		p = c.in
	}
	for len(p) > 0 {
		h, hn, err := codec.ParseHeader(p)
		if err == codec.ErrShortHeader {
			break
		}
		if err != nil || !h.Masked || h.Length > 1<<16 {
			l.closeConn(c)
			return
		}
		if int64(len(p)-hn) < h.Length {
			break
		}
		payload := p[hn : hn+int(h.Length)]
		p = p[hn+int(h.Length):]
		switch h.OpCode {
		case ws.OpClose:
			codec.Unmask(payload, h.Mask, 0)
			code, _, perr := codec.ParseClosePayload(payload)
			if perr != nil || code == codec.StatusNoStatus {
				code = codec.StatusNormal
			}
			l.reply = codec.AppendCloseFrame(l.reply[:0], code, "")
			l.send(c, l.reply)
			l.closeConn(c) // the server closes the TCP connection first (RFC 6455 §7.1.1)
			return
		case ws.OpPing:
			codec.Unmask(payload, h.Mask, 0)
			l.reply = codec.AppendFrame(l.reply[:0], ws.OpPong, true, payload)
			l.send(c, l.reply)
			if c.closed {
				return
			}
		}
	}
	c.in = append(c.in[:0], p...) // p may alias c.in: append copies forward
	if len(c.in) == 0 {
		c.in = nil
	}
}

// closeConn closes c's socket and forgets it.
func (l *loop) closeConn(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	delete(l.conns, c.fd)
	for _, t := range c.topics {
		subs := l.topics[t]
		for i, s := range subs {
			if s == c {
				subs[i] = subs[len(subs)-1]
				subs[len(subs)-1] = nil
				subs = subs[:len(subs)-1]
				break
			}
		}
		if len(subs) == 0 {
			delete(l.topics, t)
		} else {
			l.topics[t] = subs
		}
	}
}

// serveWS upgrades GET /ws and hands the socket to the loop. net/http calls
// it on the request's goroutine.
func (l *loop) serveWS(w http.ResponseWriter, r *http.Request) {
	var topics []string
	for _, t := range strings.Split(r.URL.Query().Get("topics"), ",") {
		if t == "" {
			continue
		}
		if codec.ValidTopic(t) != nil {
			http.Error(w, "bad topic", http.StatusBadRequest)
			return
		}
		topics = append(topics, t)
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if !headerHas(r.Header, "Upgrade", "websocket") || !headerHas(r.Header, "Connection", "upgrade") ||
		r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		http.Error(w, "not a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	nc, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	early := make([]byte, brw.Reader.Buffered())
	io.ReadFull(brw.Reader, early)
	if _, err := nc.Write(codec.AppendUpgradeResponse(nil, key, "")); err != nil {
		nc.Close()
		return
	}
	// Take the socket away from Go's poller: a duplicate descriptor (same
	// open file, so still non-blocking) outlives closing the net.Conn.
	rc, err := nc.(*net.TCPConn).SyscallConn()
	fd := -1
	if err == nil {
		rc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	}
	nc.Close()
	if err != nil || fd < 0 {
		return
	}
	unix.CloseOnExec(fd)
	if unix.SetNonblock(fd, true) != nil || !l.post(command{fd: fd, topics: topics, early: early}) {
		unix.Close(fd)
	}
}

// headerHas reports whether a comma-separated header holds token, ignoring
// case.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, e := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(e), token) {
				return true
			}
		}
	}
	return false
}

// servePublish accepts pushd's single-topic publish body. net/http calls it
// on the request's goroutine.
func (l *loop) servePublish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err == nil && (codec.ValidTopic(req.Topic) != nil || len(req.Data) == 0) {
		err = errors.New("need a valid topic and data")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !l.post(command{fd: -1, topic: req.Topic, data: req.Data}) {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{\"published\":1}\n")
}
