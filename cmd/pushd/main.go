// Command pushd is a WebSocket push gateway: clients subscribe to topics
// over WebSocket, backends publish through NATS or the HTTP API, and every
// node fans each message out to its local subscribers.
//
//	go run ./cmd/pushd            # embedded NATS, ws://:8080/ws, API on 127.0.0.1:8081
//	go run ./cmd/pushd -h         # every flag; each is also PUSHD_<FLAG> or a config-file key
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/pushd/pushd/conn/auth"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushd:", err)
		return 2
	}
	log := newLogger(cfg, os.Stderr)
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	// Most of pushd's heap is long-lived connection state and it allocates
	// little per message, so collecting at 50% growth instead of Go's 100%
	// costs little CPU and cuts idle RSS per connection by about 15%
	// (docs/benchmarks.md). An explicit GOGC wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := startNode(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushd:", err)
		return 1
	}
	select {
	case <-ctx.Done():
	case <-n.srv.Done():
		log.Error("engine stopped unexpectedly")
		n.close()
		return 1
	}
	log.Info("draining", "grace", cfg.DrainGrace.String())
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainGrace)
	defer cancel()
	if err := n.shutdown(dctx); err != nil {
		log.Warn("drain did not finish in the grace period", "err", err)
	}
	log.Info("stopped")
	return 0
}

// newLogger returns the daemon's logger, writing to w.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Tokens, keys and query strings never reach the log.
	return slog.New(auth.RedactingHandler(h))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pushd [flags]\n\nEvery flag can also be set as PUSHD_<FLAG> (upper case, - as _) or as a key of the JSON file given with --config.")
	fs := flag.NewFlagSet("pushd", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	// Re-register the flags only to print them.
	_, _ = parseConfigFlags(fs)
	fs.PrintDefaults()
}
