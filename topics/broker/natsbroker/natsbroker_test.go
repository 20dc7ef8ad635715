package natsbroker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func connect(t *testing.T, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newBroker(t *testing.T, nc *nats.Conn) *natsbroker.Broker {
	t.Helper()
	b, err := natsbroker.New(nc, natsbroker.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Concurrent PublishWait callers share round trips, and every caller's
// messages have reached the server (a subscriber on another connection
// sees them all) when it returns.
func TestPublishWaitSharesFlushes(t *testing.T) {
	ns := startNATS(t)
	b := newBroker(t, connect(t, ns))
	watcher := connect(t, ns)
	seen := make(chan *nats.Msg, 10000)
	if _, err := watcher.ChanSubscribe("pushd.>", seen); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	const callers, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := b.PublishWait(ctx, []broker.Outgoing{{Topic: fmt.Sprintf("c%d", c), Data: fmt.Appendf(nil, "%d", i)}})
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The server had every message when the last caller returned: our PING
	// follows them on the same connection, so the watcher holds them all
	// once a round trip of its own is done.
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for got := 0; got < callers*each; got++ {
		select {
		case <-seen:
		case <-deadline:
			t.Fatalf("watcher saw %d of %d messages", got, callers*each)
		}
	}
	if f := b.Flushes(); f >= callers*each {
		t.Errorf("%d round trips for %d concurrent publishes: none shared", f, callers*each)
	}
	t.Logf("%d publishes, %d shared round trips", callers*each, b.Flushes())
}

// A PublishWait whose context ends before the server answers returns the
// context's error; with the connection gone it fails instead of hanging.
func TestPublishWaitErrors(t *testing.T) {
	ns := startNATS(t)
	nc := connect(t, ns)
	b := newBroker(t, nc)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.PublishWait(ctx, []broker.Outgoing{{Topic: "a", Data: []byte("1")}}); err == nil {
		t.Error("PublishWait with a cancelled context: no error")
	}
	nc.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := b.PublishWait(ctx, []broker.Outgoing{{Topic: "a", Data: []byte("1")}}); err == nil {
		t.Error("PublishWait on a closed connection: no error")
	}
}
