package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
)

// config is everything the daemon can be told. Each field is a flag; the
// flag "api-listen" can also be given as the environment variable
// PUSHD_API_LISTEN or the key "api-listen" of the JSON config file.
// Precedence: flag, then environment, then config file, then default.
type config struct {
	Listen      string
	WSPath      string
	EchoPath    string
	APIListen   string
	APIKeys     []string
	NATS        string
	NATSListen  string
	Prefix      string
	Loops       int
	DrainGrace  time.Duration
	LogLevel    string
	LogFormat   string
	MemoryLimit int64
	GCPercent   int
	Conn        conn.Config

	MaxConns       int
	MaxConnsPerIP  int
	AcceptRate     float64
	AcceptBurst    int
	PersonalPrefix string
	ClientPublish  bool
	Auth           authConfig
}

// parseConfig parses args (without the program name) with env as the
// environment. It returns a one-line error for any bad value.
func parseConfig(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("pushd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c, extra := parseConfigFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return c.resolve(fs, extra, getenv)
}

// flagExtras holds flag values that need post-processing.
type flagExtras struct {
	apiKeys string
	cfgFile string
}

// parseConfigFlags registers every flag on fs, bound to a new config.
func parseConfigFlags(fs *flag.FlagSet) (*config, *flagExtras) {
	c := &config{}
	x := &flagExtras{}
	fs.StringVar(&x.cfgFile, "config", "", "JSON config file whose keys are flag names")
	fs.StringVar(&c.Listen, "listen", ":8080", "WebSocket listen address")
	fs.StringVar(&c.WSPath, "ws-path", "/ws", "path of the WebSocket endpoint")
	fs.StringVar(&c.EchoPath, "echo-path", "", "path of an echo endpoint for conformance testing (off when empty)")
	fs.StringVar(&c.APIListen, "api-listen", "127.0.0.1:8081", "HTTP API listen address (publish, health, metrics)")
	fs.StringVar(&x.apiKeys, "api-keys", "", "comma-separated API keys; when set, POST /v1/publish needs Authorization: Bearer <key>")
	fs.StringVar(&c.NATS, "nats", "", "NATS server URLs, comma-separated; empty starts an embedded server")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server (\"off\": in-process only)")
	fs.StringVar(&c.Prefix, "prefix", "pushd", "NATS subject prefix: topic a.b is subject <prefix>.a.b")
	fs.IntVar(&c.Loops, "loops", 0, "event loops (0: one per CPU)")
	fs.DurationVar(&c.DrainGrace, "drain-grace", 10*time.Second, "how long SIGTERM waits for clients to close before exiting")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", 0, "soft memory limit in bytes for the Go runtime (0: GOMEMLIMIT or none)")
	fs.IntVar(&c.GCPercent, "gc-percent", 50, "Go GC target percentage when GOGC is not set; lower trades a little CPU for less memory per connection")
	fs.DurationVar(&c.Conn.HandshakeTimeout, "handshake-timeout", 10*time.Second, "time allowed for the upgrade request")
	fs.IntVar(&c.Conn.MaxHeaderBytes, "max-header-bytes", 8<<10, "largest upgrade request head (431 beyond)")
	fs.IntVar(&c.Conn.MaxHeaders, "max-headers", 64, "most upgrade request header fields (431 beyond)")
	fs.IntVar(&c.Conn.MaxFrameSize, "max-frame", 64<<10, "largest client frame payload (1009 beyond)")
	fs.IntVar(&c.Conn.MaxMessageSize, "max-message", 64<<10, "largest client message (1009 beyond)")
	fs.DurationVar(&c.Conn.PingInterval, "ping-interval", 25*time.Second, "idle time before the server pings")
	fs.DurationVar(&c.Conn.PongTimeout, "pong-timeout", 10*time.Second, "time to answer a ping before being closed")
	fs.DurationVar(&c.Conn.CloseTimeout, "close-timeout", 5*time.Second, "time the peer has to answer a close frame")
	fs.IntVar(&c.Conn.MaxOutbound, "max-outbound", 1<<20, "unsent bytes per connection before it is closed as a slow consumer (4000)")
	fs.Float64Var(&c.Conn.CommandRate, "command-rate", 20, "commands per second per connection")
	fs.IntVar(&c.Conn.CommandBurst, "command-burst", 40, "command burst per connection")
	fs.IntVar(&c.Conn.MaxSubscriptions, "max-subscriptions", 1024, "topics per connection")
	fs.IntVar(&c.Conn.MaxTopicsPerCommand, "max-topics-per-command", 100, "topics per subscribe command")
	fs.IntVar(&c.MaxConns, "max-conns", 200000, "open connections before new ones get 503 (0: no cap)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 1000, "open connections per remote IP before new ones get 503 (0: no cap)")
	fs.Float64Var(&c.AcceptRate, "accept-rate", 10000, "new connections per second before 503 with Retry-After (0: no limit)")
	fs.IntVar(&c.AcceptBurst, "accept-burst", 20000, "burst of new connections above --accept-rate")
	fs.StringVar(&c.PersonalPrefix, "personal-prefix", "user.", "authenticated connections are subscribed to <prefix><sub> (empty: none)")
	fs.BoolVar(&c.ClientPublish, "client-publish", false, "let clients publish where their token allows it")
	registerAuthFlags(fs, &c.Auth)
	return c, x
}

// resolve fills what the command line left unset from the environment and
// the config file, then validates.
func (c *config) resolve(fs *flag.FlagSet, x *flagExtras, getenv func(string) string) (*config, error) {
	cfgFile := x.cfgFile
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["config"] {
		cfgFile = getenv("PUSHD_CONFIG")
	}
	file := map[string]any{}
	if cfgFile != "" {
		b, err := os.ReadFile(cfgFile)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := json.Unmarshal(b, &file); err != nil {
			return nil, fmt.Errorf("config file %s: %w", cfgFile, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				return nil, fmt.Errorf("config file %s: unknown key %q", cfgFile, k)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] || f.Name == "config" {
			return
		}
		env := "PUSHD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, env, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			str, e := fileValue(v)
			if e == nil {
				e = f.Value.Set(str)
			}
			if e != nil {
				err = fmt.Errorf("invalid value for %q in config file: %v", f.Name, e)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for _, k := range strings.Split(x.apiKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.APIKeys = append(c.APIKeys, k)
		}
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch {
	case !strings.HasPrefix(c.WSPath, "/"):
		return errors.New("--ws-path must start with /")
	case c.EchoPath != "" && !strings.HasPrefix(c.EchoPath, "/"):
		return errors.New("--echo-path must start with /")
	case c.EchoPath == c.WSPath:
		return errors.New("--echo-path must differ from --ws-path")
	case c.GCPercent <= 0:
		return errors.New("--gc-percent must be positive")
	case c.Loops < 0:
		return errors.New("--loops must be ≥ 0")
	case codec.ValidTopic(c.Prefix) != nil:
		return fmt.Errorf("--prefix %q: dot-separated tokens of letters, digits, - and _", c.Prefix)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	case c.Conn.MaxFrameSize <= 0 || c.Conn.MaxMessageSize <= 0 || c.Conn.MaxOutbound <= 0:
		return errors.New("--max-frame, --max-message and --max-outbound must be positive")
	case c.MaxConns < 0 || c.MaxConnsPerIP < 0 || c.AcceptRate < 0 || c.AcceptBurst < 0:
		return errors.New("--max-conns, --max-conns-per-ip, --accept-rate and --accept-burst must be ≥ 0")
	case c.Conn.PingInterval <= 0 || c.Conn.PongTimeout <= 0 || c.Conn.HandshakeTimeout <= 0 || c.Conn.CloseTimeout <= 0:
		return errors.New("timeouts must be positive")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if _, err := auth.ParseTrustedProxies(splitList(c.Auth.TrustProxies)); err != nil {
		return fmt.Errorf("--trust-proxy: %w", err)
	}
	if c.PersonalPrefix != "" && codec.ValidTopic(strings.TrimSuffix(c.PersonalPrefix, ".")) != nil {
		return fmt.Errorf("--personal-prefix %q: want topic tokens and a final dot, such as \"user.\"", c.PersonalPrefix)
	}
	return nil
}

// fileValue turns a JSON config-file value into flag text: strings, numbers
// and booleans as themselves, an array of them joined with commas (for the
// list flags). Anything else is an error rather than a surprise.
func fileValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if _, nested := e.([]any); nested {
				return "", errors.New("nested arrays are not allowed")
			}
			s, err := fileValue(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want a string, number, boolean or array, got %T", v)
}
