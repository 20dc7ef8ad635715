package bench

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/sio"
	"github.com/pushd/pushd/conn/sse"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/broker/jsbroker"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

// node is an in-process pushd: embedded NATS, the topic hub and the engine.
type node struct {
	ns     *server.Server
	nc     *nats.Conn // the hub's connection
	pub    *nats.Conn // a separate publisher connection
	broker broker.Broker
	hub    *topics.Hub
	srv    *netpoll.Server
}

// startNode starts it with loops event loops, the v1 protocol at /ws and
// Socket.IO at /socket.io/ and the v1 protocol over SSE at /sse (anonymous
// clients), cc's connection limits and wc's WebSocket settings (its ping
// interval and pong timeout are also Socket.IO's pingInterval and
// pingTimeout, and its ping interval the SSE heartbeat's).
func startNode(tb testing.TB, loops int, cc conn.Config, wc ws.Config) *node {
	tb.Helper()
	return startNodeWith(tb, loops, cc, wc, "")
}

// startNodeWith is startNode with durable topics: history is --history's
// value ("" for none), kept by the embedded server's JetStream in a
// temporary directory.
func startNodeWith(tb testing.TB, loops int, cc conn.Config, wc ws.Config, history string) *node {
	tb.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true}
	if history != "" {
		opts.JetStream, opts.StoreDir = true, tb.TempDir()
		opts.JetStreamMaxMemory, opts.JetStreamMaxStore = 64<<20, 1<<30
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		tb.Fatal("NATS did not start")
	}
	n := &node{ns: ns}
	if n.nc, err = nats.Connect(ns.ClientURL()); err != nil {
		tb.Fatal(err)
	}
	if n.pub, err = nats.Connect(ns.ClientURL()); err != nil {
		tb.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var b broker.Broker
	if history == "" {
		b, err = natsbroker.New(n.nc, natsbroker.Config{Logger: quiet})
	} else {
		var patterns []jsbroker.Pattern
		if patterns, err = jsbroker.ParsePatterns(history); err == nil {
			b, err = jsbroker.New(context.Background(), n.nc, jsbroker.Config{History: patterns, Logger: quiet})
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	n.broker = b
	if n.hub, err = topics.New(b, topics.Config{Logger: quiet}); err != nil {
		tb.Fatal(err)
	}
	n.srv, err = netpoll.Start(netpoll.Config{
		Addr: "127.0.0.1:0", Loops: loops, Hub: n.hub, Conn: cc, Logger: quiet,
		Routes: []conn.Route{
			ws.V1Route("/ws", wc, nil, session.Config{}, new(session.Metrics)),
			sio.Route(sio.DefaultPath, sio.Config{PingInterval: wc.PingInterval, PingTimeout: wc.PongTimeout},
				sio.Admission{}, session.Config{}, new(session.Metrics)),
			sse.Route("/sse", sse.Config{PingInterval: wc.PingInterval}, nil, session.Config{}, new(session.Metrics)),
		},
		Tick: conn.TickFor(cc.HandshakeTimeout, cc.CloseTimeout, wc.PingInterval, wc.PongTimeout),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.srv.Shutdown(ctx)
		n.hub.Close()
		b.Close()
		n.pub.Close()
		n.nc.Close()
		ns.Shutdown()
	})
	return n
}

func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// cpuTime returns this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
