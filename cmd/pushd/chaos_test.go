package main

// Chaos tests for durable topics: real pushd processes (built from this
// tree, without -race: they are what is tested, not the test), a real
// nats-server process built from the module dependency, SIGKILLs and
// restarts. Every client keeps its last position and resumes with it on
// another connection; each test checks that every client got every
// published message exactly once, in order.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds pushd and nats-server once per test run.
func binaries(t *testing.T) (pushd, natsServer string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes; not in -short")
	}
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binErr = fmt.Errorf("the go command is not in PATH: %w", err)
			return
		}
		if binDir, binErr = os.MkdirTemp("", "pushd-chaos-"); binErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{{"pushd", "."}, {"nats-server", "github.com/nats-io/nats-server/v2"}} {
			cmd := exec.Command(goTool, "build", "-o", filepath.Join(binDir, b.out), b.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "pushd"), filepath.Join(binDir, "nats-server")
}

// proc is a process under test. Its stderr is kept, and logged if the test
// fails.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	exited chan struct{}

	mu    sync.Mutex
	lines []string
	seen  chan struct{} // closed and replaced at every new line
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{}), seen: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.seen)
			p.seen = make(chan struct{})
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, l := range p.lines[max(0, len(p.lines)-40):] {
				t.Logf("%s: %s", name, l)
			}
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// waitLine waits for a stderr line matching re and returns its submatches.
func (p *proc) waitLine(re *regexp.Regexp, timeout time.Duration) []string {
	p.t.Helper()
	deadline := time.After(timeout)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		seen := p.seen
		p.mu.Unlock()
		select {
		case <-seen:
		case <-p.exited:
			p.t.Fatalf("%s exited before logging %s", p.name, re)
		case <-deadline:
			p.t.Fatalf("%s did not log %s within %v", p.name, re, timeout)
		}
	}
}

// pushdProc is a running pushd process.
type pushdProc struct {
	*proc
	ws, api string // ws://host:port/ws, http://host:port
}

var servingLine = regexp.MustCompile(`pushd serving.* ws=(ws://\S+) api=(http://\S+)`)

// startPushd runs pushd on loopback (random ports unless args say) and
// waits until it serves.
func startPushd(t *testing.T, name string, args ...string) *pushdProc {
	t.Helper()
	bin, _ := binaries(t)
	base := []string{"--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--insecure", "--log-format", "text", "--loops", "1", "--max-conns-per-ip", "0"}
	p := &pushdProc{proc: startProc(t, name, bin, append(base, args...)...)}
	m := p.waitLine(servingLine, 30*time.Second)
	p.ws, p.api = m[1], m[2]
	return p
}

// metric returns a counter or gauge without labels from /metrics.
func (p *pushdProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("metric %s not found", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// startNATSServer runs a nats-server process with JetStream on file storage.
func startNATSServer(t *testing.T, name string, port int, dir string, extra ...string) *proc {
	t.Helper()
	_, bin := binaries(t)
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir, "--name", name}, extra...)
	p := startProc(t, name, bin, args...)
	p.waitLine(regexp.MustCompile(`Server is ready`), 30*time.Second)
	return p
}

// publisher posts {"n":i} messages with id "m<i>" to a pushd HTTP API at
// a steady rate, retrying each until it gets a 200 (a retry after a
// failure that did store the message is dropped as a duplicate by the
// stream's duplicate window).
type publisher struct {
	t       *testing.T
	topic   string
	api     func() string
	sent    atomic.Int64
	retries atomic.Int64
}

func (p *publisher) run(ctx context.Context, total int, every time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; i < total; i++ {
		body := fmt.Sprintf(`{"topic":%q,"data":{"n":%d},"id":"m%d"}`, p.topic, i, i)
		for {
			resp, err := client.Post(p.api()+"/v1/publish", "application/json", strings.NewReader(body))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			p.retries.Add(1)
			select {
			case <-ctx.Done():
				return fmt.Errorf("message %d never published: %v", i, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
		p.sent.Add(1)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// resumer is a WebSocket client of one durable topic that records every
// push's n and, whenever its connection breaks, reconnects (to url())
// and resumes after the last offset it saw.
type resumer struct {
	topic string
	url   func() string

	mu        sync.Mutex
	ns        []int // payloads, in arrival order
	offset    uint64
	epoch     string
	resumes   int
	started   bool // the first subscribe has been answered
	notRecov  []string
	subscribe chan struct{} // closed at the first ok
	err       error
}

func newResumer(topic string, url func() string) *resumer {
	return &resumer{topic: topic, url: url, subscribe: make(chan struct{})}
}

// run connects and reads until ctx ends or want pushes have arrived. A
// broken connection is resumed on a new one (after jitter, if given).
func (r *resumer) run(ctx context.Context, want int, jitter func() time.Duration) {
	for again := false; ctx.Err() == nil; again = true {
		if again && jitter != nil {
			time.Sleep(jitter())
		}
		if done, _ := r.session(ctx, want); done {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	r.err = fmt.Errorf("%d of %d pushes when the time was up", len(r.ns), want)
	r.mu.Unlock()
}

// session is one connection: subscribe (with the position, if any), then
// read pushes. It reports whether want pushes have arrived.
func (r *resumer) session(ctx context.Context, want int) (bool, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.DialContext(ctx, r.url(), nil)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	r.mu.Lock()
	cmd := fmt.Sprintf(`{"id":1,"type":"subscribe","topics":[%q]}`, r.topic)
	if r.epoch != "" {
		cmd = fmt.Sprintf(`{"id":1,"type":"subscribe","topics":[%q],"since":{%q:{"offset":%d,"epoch":%q}}}`,
			r.topic, r.topic, r.offset, r.epoch)
	}
	r.mu.Unlock()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return false, err
	}
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			return false, err
		}
		switch {
		case bytes.HasPrefix(p, []byte(`{"type":"message"`)):
			off, epoch, n, ok := parsePush(p)
			if !ok {
				return false, fmt.Errorf("unexpected push %s", p)
			}
			r.mu.Lock()
			r.ns = append(r.ns, n)
			r.offset, r.epoch = off, epoch
			got := len(r.ns)
			r.mu.Unlock()
			if got >= want {
				return true, nil
			}
		case bytes.HasPrefix(p, []byte(`{"type":"ok","id":1`)):
			r.mu.Lock()
			if r.started {
				r.resumes++
				if !bytes.Contains(p, []byte(`"recovered":{"`+r.topic+`":true}`)) {
					r.notRecov = append(r.notRecov, string(p))
				}
			} else {
				r.started = true
				close(r.subscribe)
			}
			r.mu.Unlock()
		}
	}
}

var pushRE = regexp.MustCompile(`"offset":(\d+),"epoch":"([A-Za-z0-9_-]+)","data":\{"n":(\d+)\}`)

// parsePush reads a durable push's offset, epoch and payload n without a
// full JSON decode (a thousand clients decode a lot).
func parsePush(p []byte) (offset uint64, epoch string, n int, ok bool) {
	m := pushRE.FindSubmatch(p)
	if m == nil {
		return 0, "", 0, false
	}
	offset, _ = strconv.ParseUint(string(m[1]), 10, 64)
	n, _ = strconv.Atoi(string(m[3]))
	return offset, string(m[2]), n, true
}

// check fails unless r got exactly 0..total-1 in order and every resume
// recovered.
func (r *resumer) check(t *testing.T, name string, total int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatalf("%s: %v", name, r.err)
	}
	if len(r.ns) != total {
		t.Fatalf("%s: %d pushes, want %d", name, len(r.ns), total)
	}
	for i, n := range r.ns {
		if n != i {
			t.Fatalf("%s: push %d is n=%d (lost, duplicated or reordered)", name, i, n)
		}
	}
	if len(r.notRecov) > 0 {
		t.Fatalf("%s: resumes not recovered: %v", name, r.notRecov)
	}
}

// TestChaosEmbeddedRestart: pushd with the embedded NATS server and a data
// directory is SIGKILLed and started again: the history survived, and a
// client resumes from its position with nothing lost.
func TestChaosEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--history", "chaos.>:10000", "--data-dir", dir}
	p := startPushd(t, "pushd", args...)
	r := newResumer("chaos.e", func() string { return p.ws })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	pub := &publisher{t: t, topic: "chaos.e", api: func() string { return p.api }}
	// The first 10 reach the client; it disconnects; 10 more are stored.
	go r.run(ctx, 10, nil)
	<-r.subscribe
	if err := pub.run(ctx, 10, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "10 pushes", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.ns) == 10 })
	for i := 10; i < 20; i++ {
		if code, body := postJSON(t, p.api+"/v1/publish", fmt.Sprintf(`{"topic":"chaos.e","data":{"n":%d}}`, i)); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	p.kill()
	p = startPushd(t, "pushd-restarted", args...)
	for i := 20; i < 30; i++ {
		if code, body := postJSON(t, p.api+"/v1/publish", fmt.Sprintf(`{"topic":"chaos.e","data":{"n":%d}}`, i)); code != 200 {
			t.Fatalf("publish after restart: %d %s", code, body)
		}
	}
	r.run(ctx, 30, nil)
	r.check(t, "client", 30)
	if r.resumes != 1 {
		t.Fatalf("%d resumes, want 1", r.resumes)
	}
}

// TestChaosNodeKill: two pushd nodes on one nats-server; 1,000 clients on
// node A while 200 msg/s are published; A is SIGKILLed; every client
// reconnects to node B with its position: 0 lost, 0 duplicated, in order.
func TestChaosNodeKill(t *testing.T) {
	const clients, total = 1000, 400
	port := freePort(t)
	startNATSServer(t, "nats", port, t.TempDir())
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	args := []string{"--nats", url, "--history", "chaos.>:100000"}
	a := startPushd(t, "pushd-a", args...)
	b := startPushd(t, "pushd-b", args...)
	var killed atomic.Bool
	target := func() string {
		if killed.Load() {
			return b.ws
		}
		return a.ws
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	rs := make([]*resumer, clients)
	var wg sync.WaitGroup
	for i := range rs {
		rs[i] = newResumer("chaos.k", target)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Reconnects spread over 0.5 s, as jittered backoff would.
			rs[i].run(ctx, total, func() time.Duration { return time.Duration(i%50) * 10 * time.Millisecond })
		}()
	}
	for _, r := range rs {
		select {
		case <-r.subscribe:
		case <-ctx.Done():
			t.Fatal("clients did not subscribe")
		}
	}
	pub := &publisher{t: t, topic: "chaos.k", api: func() string { return b.api }}
	pubErr := make(chan error, 1)
	go func() { pubErr <- pub.run(ctx, total, 5*time.Millisecond) }() // 200 msg/s
	// Kill A once every client has a position (it has received something).
	waitFor(t, "every client has a position", func() bool {
		for _, r := range rs {
			r.mu.Lock()
			n := len(r.ns)
			r.mu.Unlock()
			if n < 5 {
				return false
			}
		}
		return true
	})
	killed.Store(true)
	a.kill()
	t0 := time.Now()
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range rs {
		r.check(t, "client "+strconv.Itoa(i), total)
		if r.resumes != 1 {
			t.Fatalf("client %d resumed %d times", i, r.resumes)
		}
	}
	t.Logf("%d clients resumed on node B after node A was killed (%v after the kill): 0 lost, 0 duplicated; node B made %.0f JetStream requests",
		clients, time.Since(t0).Round(time.Millisecond), b.metric(t, "pushd_broker_requests_total"))
}

// TestChaosNATSRestart: the nats-server (file storage) is SIGKILLed and
// started again while messages are published through the HTTP API, whose
// client retries every failure with the same id; the WebSocket client
// misses nothing.
func TestChaosNATSRestart(t *testing.T) {
	const total = 500
	port, dir := freePort(t), t.TempDir()
	ns := startNATSServer(t, "nats", port, dir)
	p := startPushd(t, "pushd", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", port), "--history", "chaos.>:100000",
		"--history-check-interval", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	r := newResumer("chaos.n", func() string { return p.ws })
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx, total, nil) }()
	<-r.subscribe
	pub := &publisher{t: t, topic: "chaos.n", api: func() string { return p.api }}
	pubErr := make(chan error, 1)
	go func() { pubErr <- pub.run(ctx, total, 5*time.Millisecond) }()
	waitFor(t, "a third of the messages", func() bool { return pub.sent.Load() >= total/3 })
	ns.kill()
	time.Sleep(500 * time.Millisecond)
	startNATSServer(t, "nats-restarted", port, dir)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	<-done
	r.check(t, "client", total)
	t.Logf("nats-server restarted: %d messages, %d publish retries, %d client resumes, 0 lost", total, pub.retries.Load(), r.resumes)
}

// TestChaosClusterNodeLoss: a 3-node NATS cluster (processes) with R3
// streams; one NATS node, the stream leader, is SIGKILLed while messages
// are published; the client misses nothing.
func TestChaosClusterNodeLoss(t *testing.T) {
	const total = 500
	var client, route [3]int
	var routes []string
	for i := range 3 {
		client[i], route[i] = freePort(t), freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", route[i]))
	}
	nodes := make([]*proc, 3)
	var urls []string
	_, bin := binaries(t)
	for i := range 3 {
		name := "n" + strconv.Itoa(i)
		nodes[i] = startProc(t, name, bin, "-a", "127.0.0.1", "-p", strconv.Itoa(client[i]), "-js", "-sd", t.TempDir(),
			"--name", name, "--cluster_name", "c", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", route[i]),
			"--routes", strings.Join(routes, ","))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	for _, n := range nodes {
		n.waitLine(regexp.MustCompile(`Server is ready`), 30*time.Second)
	}
	p := startPushd(t, "pushd", "--nats", strings.Join(urls, ","), "--history", "chaos.>:100000",
		"--history-replicas", "3", "--history-check-interval", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	r := newResumer("chaos.c", func() string { return p.ws })
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx, total, nil) }()
	<-r.subscribe
	pub := &publisher{t: t, topic: "chaos.c", api: func() string { return p.api }}
	pubErr := make(chan error, 1)
	go func() { pubErr <- pub.run(ctx, total, 5*time.Millisecond) }()
	waitFor(t, "a third of the messages", func() bool { return pub.sent.Load() >= total/3 })
	leader := streamLeader(t, urls)
	nodes[leader].kill()
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	<-done
	r.check(t, "client", total)
	t.Logf("stream leader n%d killed: %d messages, %d publish retries, %d client resumes, 0 lost", leader, total, pub.retries.Load(), r.resumes)
}

// streamLeader returns the index of the node leading the chaos stream.
func streamLeader(t *testing.T, urls []string) int {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	lister := js.ListStreams(context.Background())
	for info := range lister.Info() {
		if strings.Contains(info.Config.Name, "chaos") && info.Cluster != nil {
			i, err := strconv.Atoi(strings.TrimPrefix(info.Cluster.Leader, "n"))
			if err == nil {
				return i
			}
		}
	}
	t.Fatal("no leader found for the chaos stream")
	return -1
}

// TestChaosResumeStorm: 5,000 clients resume the same topic, after the
// same 100 missed messages, at once. The node, which did not follow the
// topic before, makes a bounded number of JetStream requests.
func TestChaosResumeStorm(t *testing.T) {
	const clients, missed = 5000, 100
	p := startPushd(t, "pushd", "--history", "chaos.>:1000", "--data-dir", t.TempDir(),
		"--history-check-interval", "1h", "--max-conns", "0")
	body := func(n int) string { return fmt.Sprintf(`{"topic":"chaos.s","data":{"n":%d}}`, n) }
	code, ack := postJSON(t, p.api+"/v1/publish", body(-1))
	m := regexp.MustCompile(`"offset":(\d+),"epoch":"(\S+?)"`).FindStringSubmatch(ack)
	if code != 200 || m == nil {
		t.Fatalf("first publish: %d %s", code, ack)
	}
	for i := range missed {
		if code, b := postJSON(t, p.api+"/v1/publish", body(i)); code != 200 {
			t.Fatalf("publish: %d %s", code, b)
		}
	}
	before := p.metric(t, "pushd_broker_requests_total")
	off, _ := strconv.ParseUint(m[1], 10, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	// Connect everyone first, then send every resume at once.
	conns := make([]*websocket.Conn, clients)
	var wg sync.WaitGroup
	var dialErr atomic.Value
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, resp, err := websocket.DefaultDialer.DialContext(ctx, p.ws, nil)
			if err != nil {
				dialErr.Store(err)
				return
			}
			resp.Body.Close()
			conns[i] = ws
		}()
	}
	wg.Wait()
	if err := dialErr.Load(); err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	cmd := []byte(fmt.Sprintf(`{"id":1,"type":"subscribe","topics":["chaos.s"],"since":{"chaos.s":{"offset":%d,"epoch":%q}}}`, off, m[2]))
	var failures atomic.Int64
	var firstFail atomic.Value
	start := make(chan struct{})
	t0 := time.Now()
	for _, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := stormClient(ws, cmd, missed); err != nil {
				failures.Add(1)
				firstFail.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d clients failed; first: %v", n, firstFail.Load())
	}
	reqs := p.metric(t, "pushd_broker_requests_total") - before
	t.Logf("%d clients resumed %d missed messages each in %v: %.0f JetStream requests", clients, missed, elapsed.Round(time.Millisecond), reqs)
	if reqs > 4 {
		t.Fatalf("%.0f JetStream requests for %d resumes of one topic, want at most 4", reqs, clients)
	}
}

// stormClient resumes on ws and checks the outcome and the replay.
func stormClient(ws *websocket.Conn, cmd []byte, missed int) error {
	_ = ws.SetReadDeadline(time.Now().Add(40 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // the welcome
		return err
	}
	if err := ws.WriteMessage(websocket.TextMessage, cmd); err != nil {
		return err
	}
	_, p, err := ws.ReadMessage()
	if err != nil {
		return err
	}
	if !bytes.Contains(p, []byte(`"recovered":{"chaos.s":true}`)) {
		return fmt.Errorf("reply %s", p)
	}
	for i := range missed {
		_, p, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		if _, _, n, ok := parsePush(p); !ok || n != i {
			return fmt.Errorf("replay %d: %s", i, p)
		}
	}
	return nil
}

func postJSON(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
