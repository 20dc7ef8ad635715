//go:build linux

// Command loadtest is pushd's load harness: it proves a WebSocket push
// server's capacity by holding idle connections, fanning messages out to
// subscribers, and churning connections, and reports what it measured.
//
// Run it from the repository with "go run ./loadtest …" or build it with
// "go build -o loadtest ./loadtest"; both work the same, because when one
// process's 20,000 file descriptors are not enough it re-executes its own
// binary ("loadtest worker") as child processes and merges their results.
//
//	loadtest idle   --conns 19000 --hold 35s --server-pid $(pidof pushd)
//	loadtest fanout --conns 5000 --rate 10,50 --messages 200,500 --size 100
//	loadtest churn  --rate 500 --duration 10s --lifetime 1s --storm 2000
//	loadtest compare --product pushd --baseline refhub results/*.json
//	loadtest probe  --url http://127.0.0.1:8080/pushd.js --for 10s
//
// The defaults target pushd on this host: ws://127.0.0.1:8080/ws with
// ?topics={{topic}}, and POST http://127.0.0.1:8081/v1/publish. Any other
// WebSocket server can be driven with --url, --subscribe-frame and one of
// --publish-url/--publish-body, --publisher ws --publish-frame, or
// --publisher nats. Targets must be loopback unless --allow-remote; every
// run stops by itself after --max-duration; Ctrl-C stops it early and still
// prints what was measured (press it twice to quit at once).
//
// Output: a live progress line on stderr when it is a terminal, a human
// summary and Go benchmark-format lines on stdout (compare two runs with
// benchstat), --json for the full result, --html for a self-contained
// report with percentile charts. Exit status: 0 for a complete run, 1 for
// bad usage or a run that could not start, 3 for a run that stopped early.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pushd/pushd/loadtest/internal/report"
	"github.com/pushd/pushd/loadtest/internal/scenario"
	"github.com/pushd/pushd/loadtest/internal/worker"
)

const usage = `usage:
  loadtest idle   [flags]   hold N connections across a heartbeat; server memory per connection
  loadtest fanout [flags]   N subscribers, M messages at R/s; deliveries, losses, latency
  loadtest churn  [flags]   connections opening and closing at a rate, then a reconnect storm
  loadtest compare --product NAME --baseline NAME [--targets hub|floor|none] result.json...
                            Markdown table of two servers' results with ratios
  loadtest probe [--url U] [--for 10s] [--every 5ms]
                            latency of plain HTTP requests to a server another run loads
                            (on pushd's WebSocket port: the event loop's responsiveness)
  loadtest worker           (internal) a child worker speaking JSON lines on stdin/stdout

Run "loadtest idle -h" for the flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(1)
	}
	var err error
	switch cmd := os.Args[1]; cmd {
	case "worker":
		// Ctrl-C reaches the whole process group; the coordinator decides
		// when its workers stop, and they stop by themselves when their
		// stdin closes.
		signal.Ignore(os.Interrupt)
		err = worker.Serve(os.Stdin, os.Stdout)
	case "compare":
		err = compare(os.Args[2:])
	case "probe":
		err = probe(os.Args[2:])
	case scenario.Idle, scenario.Fanout, scenario.Churn:
		os.Exit(runScenario(cmd, os.Args[2:]))
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
	default:
		err = fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// listFlag is a repeatable or comma-separated string flag.
type listFlag []string

// String implements flag.Value.
func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value; it appends each comma-separated item.
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// headerFlag is a repeatable flag whose values may contain commas.
type headerFlag []string

// String implements flag.Value.
func (h *headerFlag) String() string { return strings.Join(*h, "; ") }

// Set implements flag.Value; it appends s whole.
func (h *headerFlag) Set(s string) error { *h = append(*h, s); return nil }

type options struct {
	cfg        scenario.Config
	topicCount int
	topicNames listFlag
	prefix     string
	rates      listFlag
	messages   listFlag
	headers    headerFlag
	jsonOut    bool
	jsonFile   string
	htmlFile   string
	benchFile  string
	quiet      bool
	cpuProfile string
}

func flags(name string, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("loadtest "+name, flag.ContinueOnError)
	c := &o.cfg
	fs.StringVar(&c.Label, "label", "", "name of the server under test, for reports and benchmark names (e.g. pushd)")
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:8080/ws?topics={{topic}}", "WebSocket URL template ({{topic}}, {{id}})")
	fs.StringVar(&c.SubscribeFrame, "subscribe-frame", "", `text frame template sent after connecting, e.g. '{"id":1,"type":"subscribe","topics":["{{topic}}"]}'`)
	fs.Var(&o.headers, "header", `extra handshake header "Name: value" (repeatable)`)
	fs.IntVar(&o.topicCount, "topics", 1, "number of topics, named PREFIX.0 … (connection i subscribes to topic i mod T)")
	fs.Var(&o.topicNames, "topic-names", "explicit topic names, comma-separated (overrides --topics)")
	fs.StringVar(&o.prefix, "topic-prefix", "lt", "prefix of generated topic names")
	fs.IntVar(&c.Conns, "conns", 1000, "connections (idle) or subscribers (fanout)")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "initial dials per second (0: as fast as --max-inflight allows)")
	fs.DurationVar(&c.Hold, "hold", 35*time.Second, "idle: how long to hold the connections (span a ping interval)")
	fs.StringVar(&c.Publisher, "publisher", "http", "fanout: http, nats or ws")
	fs.StringVar(&c.PublishURL, "publish-url", "http://127.0.0.1:8081/v1/publish", "fanout: HTTP publish endpoint")
	fs.StringVar(&c.PublishBody, "publish-body", `{"topic":"{{topic}}","data":{{payload}}}`, "fanout: HTTP body template ({{topic}}, {{payload}})")
	fs.StringVar(&c.PublishWSURL, "publish-ws-url", "", "fanout: WebSocket URL of the ws publisher (default: --url with topic loadtest-publisher)")
	fs.StringVar(&c.PublishFrame, "publish-frame", "", "fanout: frame template of the ws publisher ({{topic}}, {{payload}})")
	fs.StringVar(&c.NATSURL, "nats", "nats://127.0.0.1:4222", "fanout: NATS server of the nats publisher")
	fs.StringVar(&c.NATSSubject, "nats-subject", "pushd.{{topic}}", "fanout: NATS subject template")
	fs.Var(&o.rates, "rate", "fanout: messages/s per step, comma-separated (default 10); churn: new connections/s (default 500)")
	fs.Var(&o.messages, "messages", "fanout: messages per step, comma-separated or one for all (default 100)")
	fs.IntVar(&c.Size, "size", 100, "fanout: payload size in bytes")
	fs.DurationVar(&c.Warmup, "warmup", 15*time.Second, "fanout: longest wait for every subscriber to receive a probe")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "fanout: longest wait for deliveries after a step's last publish")
	fs.DurationVar(&c.ChurnDuration, "duration", 10*time.Second, "churn: how long to keep opening connections")
	fs.DurationVar(&c.Lifetime, "lifetime", time.Second, "churn: how long each connection stays open")
	fs.IntVar(&c.Storm, "storm", 1000, "churn: clients in the reconnect storm (0: none)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "server process to read RSS from (/proc/PID/status)")
	fs.StringVar(&c.MetricsURL, "metrics", "", "server Prometheus endpoint to read memory and connections from")
	fs.StringVar(&c.ConnGauge, "conn-gauge", "pushd_connections", "connections gauge at --metrics")
	fs.IntVar(&c.Workers, "workers", 0, "worker processes (0: one per --per-worker connections)")
	fs.IntVar(&c.PerWorker, "per-worker", 15000, "connections per worker process (each process may open 20000 files)")
	fs.BoolVar(&c.ForceProcess, "force-process", false, "run even a single worker as a child process")
	fs.IntVar(&c.Loops, "loops", 1, "client event loops per worker")
	fs.IntVar(&c.MaxInflight, "max-inflight", 256, "dials in progress per loop")
	fs.IntVar(&c.SourceAddrs, "source-addrs", 8, "spread connections over this many source addresses 127.0.0.2…")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", 10*time.Second, "connect plus upgrade timeout")
	fs.DurationVar(&c.CloseTimeout, "close-timeout", 2*time.Second, "closing handshake timeout")
	fs.DurationVar(&c.MaxDuration, "max-duration", 10*time.Minute, "the run stops by itself after this long")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow targets outside 127.0.0.0/8 and ::1")
	fs.BoolVar(&o.jsonOut, "json", false, "print the full result as JSON instead of the summary")
	fs.StringVar(&o.jsonFile, "json-out", "", "also write the full result as JSON to this file")
	fs.StringVar(&o.htmlFile, "html", "", "also write a self-contained HTML report to this file")
	fs.StringVar(&o.benchFile, "bench-out", "", "also write the benchmark-format lines to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (coordinator and in-process worker) to this file")
	return fs
}

func (o *options) finish(scen string) error {
	c := &o.cfg
	c.Scenario = scen
	c.Headers = o.headers
	if len(o.topicNames) > 0 {
		c.Topics = o.topicNames
	} else {
		if o.topicCount < 1 {
			return errors.New("--topics must be at least 1")
		}
		for i := range o.topicCount {
			c.Topics = append(c.Topics, o.prefix+"."+strconv.Itoa(i))
		}
	}
	for _, r := range o.rates {
		v, err := strconv.ParseFloat(r, 64)
		if err != nil {
			return fmt.Errorf("--rate %q: %w", r, err)
		}
		c.Rates = append(c.Rates, v)
	}
	for _, m := range o.messages {
		v, err := strconv.Atoi(m)
		if err != nil {
			return fmt.Errorf("--messages %q: %w", m, err)
		}
		c.Messages = append(c.Messages, v)
	}
	if scen == scenario.Churn && len(c.Rates) > 0 {
		if len(c.Rates) > 1 {
			return errors.New("churn takes a single --rate")
		}
		c.ChurnRate = c.Rates[0]
	}
	c.Command = append([]string{"loadtest"}, os.Args[1:]...)
	if !o.quiet && isTerminal(os.Stderr) {
		c.Progress = os.Stderr
	}
	return nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func runScenario(name string, args []string) int {
	var o options
	fs := flags(name, &o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadtest: unexpected arguments %q\n", fs.Args())
		return 1
	}
	if err := o.finish(name); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C now kills the process at once
	}()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	res, err := scenario.Run(ctx, o.cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 1
	}
	if err := output(res, &o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 1
	}
	if res.Stopped != "" {
		return 3
	}
	return 0
}

func output(res *report.Result, o *options) error {
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		if err := report.Human(os.Stdout, res); err != nil {
			return err
		}
		fmt.Println()
		if err := report.Bench(os.Stdout, res); err != nil {
			return err
		}
	}
	write := func(name string, fn func(io.Writer) error) error {
		if name == "" {
			return nil
		}
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := write(o.jsonFile, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	if err := write(o.benchFile, func(w io.Writer) error { return report.Bench(w, res) }); err != nil {
		return err
	}
	return write(o.htmlFile, func(w io.Writer) error { return report.HTML(w, res) })
}

func compare(args []string) error {
	fs := flag.NewFlagSet("loadtest compare", flag.ContinueOnError)
	product := fs.String("product", "pushd", "label of the server being evaluated")
	baseline := fs.String("baseline", "refhub", "label of the baseline server")
	targets := fs.String("targets", string(report.TargetsHub), `goals to check: "hub" (the baseline is a conventional hub like bench/refhub), "floor" (the baseline is bench/floor) or "none"`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var results []*report.Result
	for _, name := range fs.Args() {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		var r report.Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, &r)
	}
	if len(results) == 0 {
		return errors.New("compare: no result files")
	}
	switch t := report.Targets(*targets); t {
	case report.TargetsHub, report.TargetsFloor, report.TargetsNone:
		return report.CompareTargets(os.Stdout, *product, *baseline, results, t)
	}
	return fmt.Errorf("compare: unknown --targets %q", *targets)
}
