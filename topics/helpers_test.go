package topics

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

// startNATS starts a real NATS server on loopback (port -1 picks a free one)
// and shuts it down at the end of the test.
func startNATS(tb testing.TB, port int) *server.Server {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		tb.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// connect opens a client connection to ns, closed at the end of the test.
func connect(tb testing.TB, ns *server.Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(ns.ClientURL(), opts...)
	if err != nil {
		tb.Fatalf("nats connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// testConfig configures a test's Hub and the real core-NATS broker under
// it.
type testConfig struct {
	Config
	Prefix   string
	Workers  int
	QueueLen int
}

// newHub returns a Hub on a natsbroker.Broker on nc; both log nowhere and
// are closed at the end of the test.
func newHub(tb testing.TB, nc *nats.Conn, cfg testConfig) *Hub {
	tb.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	b, err := natsbroker.New(nc, natsbroker.Config{Prefix: cfg.Prefix, Workers: cfg.Workers, QueueLen: cfg.QueueLen, Logger: quiet})
	if err != nil {
		tb.Fatalf("natsbroker.New: %v", err)
	}
	tb.Cleanup(b.Close)
	h, err := New(b, cfg.Config)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(h.Close)
	return h
}

// pushFormat is the v1 WebSocket push frame, built the way the WebSocket
// transport builds it (with offset and epoch on a durable topic): the
// format every recorder asks for.
var pushFormat = NewFormat("test-v1-ws", func(dst []byte, m *Message) ([]byte, int) {
	at := len(dst)
	dst = codec.AppendFrameRoom(dst)
	if m.Offset() != 0 {
		dst = codec.AppendPushAt(dst, m.Topic(), m.Seq(), m.Offset(), m.Epoch(), m.Data())
	} else {
		dst = codec.AppendPush(dst, m.Topic(), m.Seq(), m.Data())
	}
	return dst, codec.FinishFrame(dst, at, ws.OpText)
})

// flush waits until the server has processed everything nc sent.
func flush(tb testing.TB, nc *nats.Conn) {
	tb.Helper()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		tb.Fatalf("nats flush: %v", err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var errLoopStopped = errors.New("test loop: stopped")

// testLoop is a real, minimal event loop: one goroutine running submitted
// functions in order. Like gnet's, it drops functions still queued when it
// stops. Its Flush hands every frame delivered during the drain to its
// recorder, which keeps it (retained) until the test collects it.
type testLoop struct {
	fns      chan func()
	done     chan struct{}
	exited   chan struct{}
	stopOnce sync.Once

	// Owned by the loop goroutine.
	inLoop     bool
	flushes    int
	maxPending int // most deliveries one Flush had to commit
	pending    []pendingFrame
	onFlush    func() // optional; runs at the end of Flush
}

type pendingFrame struct {
	r *recorder
	m *Message
}

func newTestLoop(tb testing.TB) *testLoop {
	tb.Helper()
	l := &testLoop{fns: make(chan func(), 1024), done: make(chan struct{}), exited: make(chan struct{})}
	go l.run()
	tb.Cleanup(l.stop)
	return l
}

func (l *testLoop) run() {
	defer close(l.exited)
	for {
		// Stopping wins over queued functions, which are then dropped.
		select {
		case <-l.done:
			return
		default:
		}
		select {
		case fn := <-l.fns:
			l.inLoop = true
			fn()
			l.inLoop = false
		case <-l.done:
			return
		}
	}
}

// Execute implements Loop.
func (l *testLoop) Execute(fn func()) error {
	select {
	case <-l.done:
		return errLoopStopped
	default:
	}
	select {
	case l.fns <- fn:
		return nil
	case <-l.done:
		return errLoopStopped
	}
}

// Flush implements Loop: it commits the frames delivered during the drain.
func (l *testLoop) Flush() {
	if !l.inLoop {
		panic("Flush outside the loop goroutine")
	}
	l.flushes++
	l.maxPending = max(l.maxPending, len(l.pending))
	for _, p := range l.pending {
		p.r.held = append(p.r.held, p.m)
	}
	clear(l.pending)
	l.pending = l.pending[:0]
	if l.onFlush != nil {
		l.onFlush()
	}
}

// stop stops the loop goroutine and waits for it; queued functions are
// dropped. Idempotent.
func (l *testLoop) stop() {
	l.stopOnce.Do(func() { close(l.done) })
	<-l.exited
}

// do runs fn on the loop goroutine and waits for it.
func (l *testLoop) do(tb testing.TB, fn func()) {
	tb.Helper()
	ran := make(chan struct{})
	if err := l.Execute(func() { fn(); close(ran) }); err != nil {
		tb.Fatalf("Execute: %v", err)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		tb.Fatal("loop did not run the function")
	}
}

// recorder is a Subscriber that keeps every delivered frame (retained, like
// a conn's outbound queue) until the test collects it.
type recorder struct {
	loop *testLoop
	tb   testing.TB

	// Owned by the loop goroutine.
	held []*Message
	got  []push
}

func (r *recorder) Deliver(m *Message) {
	if !r.loop.inLoop {
		r.tb.Error("Deliver outside the loop goroutine")
	}
	m.Retain()
	r.loop.pending = append(r.loop.pending, pendingFrame{r, m})
}

// push is one decoded push message.
type push struct {
	Type    string          `json:"type"`
	Topic   string          `json:"topic"`
	Seq     uint64          `json:"seq"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	payload []byte
}

// collect decodes and releases the frames r holds. Loop goroutine only.
func (r *recorder) collect() {
	for _, m := range r.held {
		r.got = append(r.got, decodeFrame(r.tb, m.Bytes(pushFormat)))
		m.Release()
	}
	clear(r.held)
	r.held = r.held[:0]
}

// received collects r's frames on its loop and returns everything it has
// received so far.
func (r *recorder) received(tb testing.TB) []push {
	tb.Helper()
	var out []push
	r.loop.do(tb, func() {
		r.collect()
		out = append(out, r.got...)
	})
	return out
}

// decodeFrame parses b with gobwas/ws as the reference: it must be exactly
// one final, unmasked text frame (RFC 6455 §5.1, §5.2, §5.6) whose payload is
// a push message.
func decodeFrame(tb testing.TB, b []byte) push {
	tb.Helper()
	rd := bytes.NewReader(b)
	h, err := ws.ReadHeader(rd)
	if err != nil {
		tb.Fatalf("frame header: %v", err)
	}
	payload := b[len(b)-rd.Len():]
	if !h.Fin || h.OpCode != ws.OpText || h.Masked || h.Rsv != 0 || h.Length != int64(len(payload)) {
		tb.Fatalf("frame header %+v for %d payload bytes", h, len(payload))
	}
	var p push
	if err := json.Unmarshal(payload, &p); err != nil {
		tb.Fatalf("payload %q: %v", payload, err)
	}
	p.payload = bytes.Clone(payload)
	return p
}
