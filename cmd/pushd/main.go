// Command pushd is a WebSocket push gateway: clients subscribe to topics
// over WebSocket, backends publish through NATS or the HTTP API, and every
// node fans each message out to its local subscribers.
//
//	go run ./cmd/pushd --insecure   # embedded NATS, ws://:8080/ws, API on 127.0.0.1:8081
//	go run ./cmd/pushd -h           # every flag; each is also PUSHD_<FLAG> or a config-file key
//
// This package is wiring only: flags, environment and config file
// (config.go), start-up and shutdown of the parts (node.go), signals and
// exit codes (this file).
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

// Exit codes (docs/operations.md §1).
const (
	exitOK      = 0 // stopped by a signal after draining; -h; --version
	exitFailed  = 1 // start-up failed (a port in use, NATS unreachable) or the engine stopped unexpectedly
	exitBadConf = 2 // the configuration is wrong: nothing was started
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseConfig(args, os.Getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage()
		return exitOK
	case err != nil:
		fmt.Fprintln(os.Stderr, "pushd:", err)
		return exitBadConf
	case cfg.Version:
		fmt.Println(versionString())
		return exitOK
	}
	parts, err := cfg.build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushd:", err)
		return exitBadConf
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
	n, err := startNode(cfg, parts, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushd:", err)
		return exitFailed
	}
	select {
	case <-ctx.Done():
	case <-n.srv.Done():
		log.Error("engine stopped unexpectedly")
		n.close()
		return exitFailed
	}
	log.Info("draining", "grace", cfg.DrainGrace.String())
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainGrace)
	defer cancel()
	if err := n.shutdown(dctx); err != nil {
		log.Warn("drain did not finish in the grace period", "err", err)
	}
	log.Info("stopped")
	return exitOK
}

// newLogger returns the daemon's logger, writing to w.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// pushd logs secrets only as fingerprints (auth.Fingerprint); the
	// redacting handler is a second line of defence for values such as a
	// NATS URL with credentials.
	return slog.New(auth.RedactingHandler(h))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pushd [flags]\n\nEvery flag can also be set as PUSHD_<FLAG> (upper case, - as _) or as a key of the JSON file given with --config.")
	fs := flag.NewFlagSet("pushd", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	// Re-register the flags only to print them.
	_, _ = registerFlags(fs)
	fs.PrintDefaults()
}

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version and VCS revision from the build info are
// used.
var version = ""

// versionString is what --version prints: the version, the VCS revision
// and whether the tree was modified, and the Go version.
func versionString() string {
	v, rev, dirty, gov := version, "", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		gov = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	out := "pushd " + v
	if rev != "" {
		out += " " + rev[:min(len(rev), 12)] + dirty
	}
	if gov != "" {
		out += " " + gov
	}
	return out
}
