package topics

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/topics/broker/jsbroker"
)

// startCluster starts a 3-node NATS cluster with JetStream on loopback
// (LIBRARY_NOTES §7.1: clustered JetStream needs server and cluster names,
// routes to every node, and listening sockets, not DontListen). Route
// ports are picked free beforehand, since every node must know them all.
func startCluster(tb testing.TB) []*server.Server {
	tb.Helper()
	var routes []*url.URL
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: "127.0.0.1:" + strconv.Itoa(ports[i])})
	}
	nodes := make([]*server.Server, 3)
	for i := range nodes {
		opts := &server.Options{
			ServerName: "n" + strconv.Itoa(i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: tb.TempDir(), JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 256 << 20,
			Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes, NoLog: true, NoSigs: true,
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			tb.Fatalf("node %d: %v", i, err)
		}
		go ns.Start()
		tb.Cleanup(func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		})
		nodes[i] = ns
	}
	for i, ns := range nodes {
		if !ns.ReadyForConnections(20 * time.Second) {
			tb.Fatalf("node %d not ready", i)
		}
	}
	return nodes
}

// TestClusterNodeLoss: with R3 streams on a 3-node cluster, one node is
// shut down while a publisher publishes (JetStream publishes with message
// IDs, retried on error, as the HTTP publisher does): the stream leader's,
// or the one the hub is connected to. The hub's subscriber gets every
// acknowledged message, once each, in order.
func TestClusterNodeLoss(t *testing.T) {
	for _, which := range []string{"leader", "hub"} {
		t.Run(which, func(t *testing.T) { testClusterNodeLoss(t, which) })
	}
}

func testClusterNodeLoss(t *testing.T, which string) {
	nodes := startCluster(t)
	urls := make([]string, len(nodes))
	for i, ns := range nodes {
		urls[i] = ns.ClientURL()
	}
	all := strings.Join(urls, ",")
	nc := connect(t, nodes[0], nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	var h *Hub
	var b *jsbroker.Broker
	waitFor(t, "an R3 stream", func() bool {
		bb, err := jsbroker.New(context.Background(), nc, jsbroker.Config{History: userHistory(10000), Replicas: 3,
			Logger: quietLogger(), RequestTimeout: 2 * time.Second, CheckInterval: 300 * time.Millisecond, Grace: 200 * time.Millisecond})
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			return false
		}
		t.Cleanup(bb.Close)
		b = bb
		return true
	})
	h, err := New(b, Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	loop := newTestLoop(t)
	shard := h.NewShard(loop)
	r := newDrec(t, loop)
	r.resume(t, shard, Want{Topic: "user.c"})
	r.waitDone(t)
	waitEstablished(t, h, "user.c")

	pub, err := nats.Connect(all, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	js, err := jetstream.New(pub)
	if err != nil {
		t.Fatal(err)
	}
	const total = 400
	var acked sync.Map
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := js.Publish(ctx, b.Subject("user.c"), fmt.Appendf(nil, `{"n":%d}`, i), jetstream.WithMsgID("m"+strconv.Itoa(i)))
				cancel()
				if err == nil {
					acked.Store(i, true)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(3 * time.Millisecond)
		}
	}()
	// Shut a node down a third of the way through.
	waitFor(t, "a third of the messages", func() bool { return len(r.pushes(t)) >= total/3 })
	killed := 0 // the hub's
	if which == "leader" {
		killed = -1
		for i, ns := range nodes {
			if ns.JetStreamIsStreamLeader("$G", b.StreamName("user.c")) {
				killed = i
			}
		}
		if killed < 0 {
			t.Fatal("no stream leader found")
		}
	}
	nodes[killed].Shutdown()
	<-done
	ps := r.waitPushes(t, total)
	for i, p := range ps {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(p.Data) != want {
			t.Fatalf("push %d is %s, want %s (lost, duplicated or reordered)", i, p.Data, want)
		}
		if i > 0 && p.Offset <= ps[i-1].Offset {
			t.Fatalf("push %d offset %d after %d", i, p.Offset, ps[i-1].Offset)
		}
	}
	st := h.Stats()
	t.Logf("%s n%d shut down: %d messages, 0 lost; %d repair reads, %d broker reconnects, %d JetStream requests",
		which, killed, total, st.Repairs, st.Reconnects, st.BrokerRequests)
	if st.Losses != 0 {
		t.Fatalf("%d losses", st.Losses)
	}
}
