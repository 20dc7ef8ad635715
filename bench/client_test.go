package bench

import (
	"syscall"

	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Client mode: the test binary re-executed with BENCH_CLIENT=1 opens
// BENCH_N WebSocket connections (or SSE streams with BENCH_TRANSPORT=sse)
// to BENCH_URL_PATH on BENCH_ADDR, spreading source addresses over
// 127.0.0.2 and up, answers pings, counts pushes, and reports "ready" and
// then "recv <n>" lines on stdout. It exits when stdin closes. With
// BENCH_SIO_TOPIC set it speaks Socket.IO over WebSocket instead: it joins
// the main namespace, subscribes to BENCH_SIO_TOPIC (%d replaced as in the
// path), and answers Engine.IO pings. With BENCH_SEND set, every WebSocket
// connection sends that text message when a "go" line arrives on stdin.

const clientsPerSourceIP = 10000

func TestMain(m *testing.M) {
	if os.Getenv("BENCH_CLIENT") == "1" {
		os.Exit(clientMain())
	}
	os.Exit(m.Run())
}

func clientMain() int {
	addr := os.Getenv("BENCH_ADDR")
	n, _ := strconv.Atoi(os.Getenv("BENCH_N"))
	path := os.Getenv("BENCH_PATH") // may contain %d, replaced by i % BENCH_TOPICS
	topics, _ := strconv.Atoi(os.Getenv("BENCH_TOPICS"))
	sioTopic := os.Getenv("BENCH_SIO_TOPIC")
	sse := os.Getenv("BENCH_TRANSPORT") == "sse"
	var recv, failed atomic.Int64
	var dials sync.WaitGroup
	send := os.Getenv("BENCH_SEND")
	var mu sync.Mutex
	var conns []net.Conn
	sem := make(chan struct{}, 32) // dials in flight
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		dials.Add(1)
		go func(i int) {
			p := path
			if strings.Contains(p, "%d") {
				p = fmt.Sprintf(p, i%topics)
			}
			dial := dialWS
			if sse {
				dial = dialSSE
			}
			c, err := dial(addr, p, sourceIP(i))
			if err == nil && sioTopic != "" {
				err = sioJoin(c, fmt.Sprintf(sioTopic, i%topics))
			}
			<-sem
			dials.Done()
			if err != nil {
				if failed.Add(1) < 5 {
					fmt.Fprintln(os.Stderr, "dial:", err)
				}
				return
			}
			if send != "" && !sse {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
			if sse {
				readEvents(c, &recv)
			} else {
				readFrames(c, &recv, sioTopic != "")
			}
		}(i)
	}
	dials.Wait()
	fmt.Printf("ready %d\n", failed.Load())
	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			if in.Text() != "go" || send == "" {
				continue
			}
			frame := maskedText(send)
			mu.Lock()
			for _, c := range conns {
				go func() { _, _ = c.Write(frame) }()
			}
			mu.Unlock()
		}
		os.Exit(0)
	}()
	for {
		time.Sleep(2 * time.Millisecond)
		fmt.Printf("recv %d\n", recv.Load())
	}
}

// sourceIP spreads connections over 127.0.x.y source addresses,
// clientsPerSourceIP each, starting at an address that depends on the
// process ID so consecutive runs do not meet each other's TIME_WAIT ports.
func sourceIP(i int) net.IP {
	k := (os.Getpid()%200)*8 + i/clientsPerSourceIP
	return net.IPv4(127, byte(1+k/250), 0, byte(2+k%250))
}

// dialFrom connects to addr from the given source address.
func dialFrom(addr string, src net.IP) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second,
		// Let connect(2) choose the source port for the whole 4-tuple
		// instead of bind(2) reserving one for every destination.
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
		}}
	return d.Dial("tcp", addr)
}

// request dials addr from src, sends req and reads the response head byte
// by byte, so no frame or event bytes are swallowed; the status line must
// start with want, and the head must contain every string of has.
func request(addr string, src net.IP, req, want string, has ...string) (net.Conn, error) {
	c, err := dialFrom(addr, src)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			c.Close()
			return nil, err
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte(want)) {
		c.Close()
		return nil, fmt.Errorf("refused: %q", head)
	}
	for _, h := range has {
		if !bytes.Contains(head, []byte(h)) {
			c.Close()
			return nil, fmt.Errorf("response without %q: %q", h, head)
		}
	}
	return c, nil
}

// maskedText returns a client text frame with payload p (under 64 KiB) and
// the all-zero masking key, which leaves the payload as it is (RFC 6455
// §5.3: masking is required, secrecy is not).
func maskedText(p string) []byte {
	f := []byte{0x81, 0x80 | byte(len(p))}
	if len(p) >= 126 {
		f = []byte{0x81, 0x80 | 126, byte(len(p) >> 8), byte(len(p))}
	}
	return append(append(f, 0, 0, 0, 0), p...)
}

// sioJoin joins the Socket.IO main namespace and subscribes to topic; the
// answers are read (and not counted) by readFrames.
func sioJoin(c net.Conn, topic string) error {
	_, err := c.Write(append(maskedText("40"), maskedText(`42["subscribe",["`+topic+`"]]`)...))
	return err
}

// dialWS opens a WebSocket from the given source address with a
// hand-written upgrade request, and waits for the 101.
func dialWS(addr, path string, src net.IP) (net.Conn, error) {
	ext := ""
	var has []string
	if os.Getenv("BENCH_DEFLATE") == "1" {
		// Offered as a browser does; compressed pushes are counted, not
		// inflated. The server must accept it.
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
		has = append(has, "permessage-deflate")
	}
	return request(addr, src, "GET "+path+" HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+ext+"\r\n", "HTTP/1.1 101", has...)
}

// dialSSE opens an SSE stream from the given source address and waits for
// the 200.
func dialSSE(addr, path string, src net.IP) (net.Conn, error) {
	return request(addr, src, "GET "+path+" HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n", "HTTP/1.1 200")
}

// readEvents reads an event stream until EOF, counting pushes.
func readEvents(c net.Conn, recv *atomic.Int64) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 512)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			continue // a long data line: the rest follows
		}
		if err != nil {
			return
		}
		if bytes.HasPrefix(line, []byte(`data: {"type":"message"`)) {
			recv.Add(1)
		}
	}
}

// readFrames reads server frames until EOF, counting text frames and
// answering pings with masked pongs; with sio, it answers Engine.IO pings
// ("2") with "3" and counts only message events.
func readFrames(c net.Conn, recv *atomic.Int64, sio bool) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 512)
	var hdr [8]byte
	payload := make([]byte, 0, 128)
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return
		}
		op := hdr[0] & 0x0f
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(r, hdr[:2]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(r, hdr[:8]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		if op == 0x9 { // ping: answer with the same payload
			payload = payload[:n]
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			pong := append([]byte{0x8a, 0x80 | byte(n), 0, 0, 0, 0}, payload...)
			if _, err := c.Write(pong); err != nil {
				return
			}
			continue
		}
		if sio && op == 0x1 && n <= 128 {
			payload = payload[:n]
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			switch {
			case string(payload) == "2":
				if _, err := c.Write(maskedText("3")); err != nil {
					return
				}
			case bytes.HasPrefix(payload, []byte(`42["message"`)):
				recv.Add(1)
			}
			continue
		}
		if _, err := r.Discard(int(n)); err != nil {
			return
		}
		switch op {
		case 0x1:
			if !sio || n > 128 {
				recv.Add(1)
			}
		case 0x8:
			return
		}
	}
}

// clientProc is a running client process.
type clientProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	recv  atomic.Int64
	ready chan int
}

// startClients starts a client process with n WebSocket connections and
// waits until all have connected; env is added to the client's environment.
func startClients(tb testing.TB, addr, path string, n, topics int, env ...string) *clientProc {
	tb.Helper()
	return startTransportClients(tb, "ws", addr, path, n, topics, env...)
}

// startTransportClients is startClients for transport "ws" or "sse".
func startTransportClients(tb testing.TB, transport, addr, path string, n, topics int, env ...string) *clientProc {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BENCH_CLIENT=1", "BENCH_TRANSPORT="+transport, "BENCH_ADDR="+addr, "BENCH_PATH="+path,
		"BENCH_N="+strconv.Itoa(n), "BENCH_TOPICS="+strconv.Itoa(topics))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &clientProc{cmd: cmd, stdin: stdin, ready: make(chan int, 1)}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			f := strings.Fields(s.Text())
			if len(f) != 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "ready":
				p.ready <- int(v)
			case "recv":
				p.recv.Store(v)
			}
		}
	}()
	select {
	case failed := <-p.ready:
		if failed > 0 {
			tb.Fatalf("%d of %d client connections failed", failed, n)
		}
	case <-time.After(3 * time.Minute):
		tb.Fatal("clients did not connect")
	}
	tb.Cleanup(p.stop)
	return p
}

// goSend makes every connection send its BENCH_SEND message.
func (p *clientProc) goSend(tb testing.TB) {
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		tb.Fatal(err)
	}
}

func (p *clientProc) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}
