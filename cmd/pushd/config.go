package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pushd/pushd/cmd/pushd/web"
	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/sio"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/topics/broker/jsbroker"
)

// config is everything the daemon can be told. Each field is a flag; the
// flag "api-listen" can also be given as the environment variable
// PUSHD_API_LISTEN or the key "api-listen" of the JSON config file.
// Precedence: flag, then environment, then config file, then default.
type config struct {
	Listen      string
	WSPath      string
	SIOPath     string
	SSEPath     string
	EchoPath    string
	Demo        bool // serve the demo page at / and publish demo.ticker
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
	Version     bool

	Conn    conn.Config
	WS      ws.Config
	SIO     sio.Config
	Session session.Config

	MaxConns       int
	MaxConnsPerIP  int
	AcceptRate     float64
	AcceptBurst    int
	PersonalPrefix string
	ClientPublish  bool
	Auth           authConfig
	History        historyConfig
}

// historyConfig is the durable-topics part of the configuration.
type historyConfig struct {
	Patterns      string // --history: PATTERN:SIZE[:TTL],…
	DataDir       string // embedded JetStream's file storage
	MaxStore      int64  // embedded JetStream's disk cap
	Replicas      int
	Cache         int
	MaxReplay     int
	CheckInterval time.Duration
}

// authConfig is the authentication part of the configuration.
type authConfig struct {
	Insecure           bool
	SecretFiles        string // comma-separated HS256 secret files
	PublicKeyFiles     string // comma-separated PEM public keys
	Issuer, Audience   string
	Leeway             time.Duration
	AllowNoExpiry      bool
	DefaultSubscribe   string // comma-separated patterns
	DefaultPublish     string
	AllowedOrigins     string // comma-separated
	AllowMissingOrigin bool
	TrustProxies       string // comma-separated CIDRs or addresses
}

// parseConfig parses args (without the program name) with getenv as the
// environment. It returns a one-line error naming the flag, variable or
// file key for any bad value.
func parseConfig(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("pushd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c, extra := registerFlags(fs)
	fs.VisitAll(func(f *flag.Flag) { f.Value = describedValue{f.Value} })
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return c.resolve(fs, extra, getenv)
}

// flagExtras holds flag values that need post-processing.
type flagExtras struct {
	apiKeys string
	cfgFile string
	demo    autoBool
}

// autoBool is a boolean flag whose default depends on other settings: set
// reports whether a flag, the environment or the config file gave it.
type autoBool struct{ val, set bool }

// Set implements flag.Value.
func (b *autoBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.val, b.set = v, true
	return nil
}

// String implements flag.Value.
func (b *autoBool) String() string {
	if b == nil || !b.set {
		return "auto"
	}
	return strconv.FormatBool(b.val)
}

// Get implements flag.Getter.
func (b *autoBool) Get() any { return b.val }

// IsBoolFlag lets the flag be given without a value.
func (b *autoBool) IsBoolFlag() bool { return true }

// registerFlags registers every flag on fs, bound to a new config.
func registerFlags(fs *flag.FlagSet) (*config, *flagExtras) {
	c := &config{}
	x := &flagExtras{}
	fs.StringVar(&x.cfgFile, "config", "", "JSON config file whose keys are flag names")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	fs.StringVar(&c.Listen, "listen", ":8080", "WebSocket listen address")
	fs.StringVar(&c.WSPath, "ws-path", "/ws", "path of the WebSocket endpoint")
	fs.StringVar(&c.SIOPath, "sio-path", sio.DefaultPath, "path of the Socket.IO endpoint (off when empty)")
	fs.DurationVar(&c.SIO.PingInterval, "sio-ping-interval", 25*time.Second, "Engine.IO pingInterval: how often Socket.IO clients are pinged")
	fs.DurationVar(&c.SIO.PingTimeout, "sio-ping-timeout", 20*time.Second, "Engine.IO pingTimeout: time a Socket.IO client has to answer a ping")
	fs.IntVar(&c.SIO.MaxPayload, "sio-max-payload", 64<<10, "Engine.IO maxPayload: largest Socket.IO packet (1009 beyond) and polling POST body (413 beyond)")
	fs.DurationVar(&c.SIO.UpgradeTimeout, "sio-upgrade-timeout", 10*time.Second, "time a Socket.IO client has to complete an upgrade from polling to WebSocket")
	fs.DurationVar(&c.SIO.Recovery, "sio-recovery", 0, "how long a Socket.IO session that lost its connection can be recovered (connection state recovery; 0: off)")
	fs.StringVar(&c.SSEPath, "sse-path", "/sse", "path of the Server-Sent Events endpoint (off when empty)")
	fs.Var(&x.demo, "demo", "serve the demo page at / and publish a made-up ticker to demo.ticker (default: on with --insecure, else off)")
	fs.StringVar(&c.EchoPath, "echo-path", "", "path of an echo endpoint for conformance testing (off when empty)")
	fs.StringVar(&c.APIListen, "api-listen", "127.0.0.1:8081", "HTTP API listen address (publish, health, metrics)")
	fs.StringVar(&x.apiKeys, "api-keys", "", "comma-separated API keys; when set, POST /v1/publish needs Authorization: Bearer <key>")
	fs.StringVar(&c.NATS, "nats", "", "NATS server URLs, comma-separated; empty starts an embedded server")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server (\"off\": in-process only)")
	fs.StringVar(&c.Prefix, "prefix", "pushd", "NATS subject prefix: topic a.b is subject <prefix>.a.b")
	fs.IntVar(&c.Loops, "loops", 0, "event loops (0: half the CPUs, at least one)")
	fs.DurationVar(&c.DrainGrace, "drain-grace", 10*time.Second, "how long SIGTERM waits for clients to close before exiting")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", 0, "soft memory limit in bytes for the Go runtime (0: GOMEMLIMIT or none)")
	fs.IntVar(&c.GCPercent, "gc-percent", 50, "Go GC target percentage when GOGC is not set; lower trades a little CPU for less memory per connection")
	fs.DurationVar(&c.Conn.HandshakeTimeout, "handshake-timeout", 10*time.Second, "time allowed for a request head (and body)")
	fs.DurationVar(&c.Conn.KeepAliveTimeout, "keep-alive-timeout", 30*time.Second, "silence allowed between two HTTP requests on one connection")
	fs.IntVar(&c.Conn.MaxHeaderBytes, "max-header-bytes", 8<<10, "largest request head (431 beyond)")
	fs.IntVar(&c.Conn.MaxHeaders, "max-headers", 64, "most request header fields (431 beyond)")
	fs.IntVar(&c.WS.MaxFrameSize, "max-frame", 64<<10, "largest client frame payload (1009 beyond)")
	fs.IntVar(&c.WS.MaxMessageSize, "max-message", 64<<10, "largest client message (1009 beyond)")
	fs.BoolVar(&c.WS.Compression, "compression", true, "permessage-deflate for WebSocket clients that offer it: each push compressed once for all of them")
	fs.DurationVar(&c.WS.PingInterval, "ping-interval", 25*time.Second, "idle time before the server pings")
	fs.DurationVar(&c.WS.PongTimeout, "pong-timeout", 10*time.Second, "time to answer a ping before being closed")
	fs.DurationVar(&c.Conn.CloseTimeout, "close-timeout", 5*time.Second, "time the peer has to answer a close frame")
	fs.IntVar(&c.Conn.MaxOutbound, "max-outbound", 1<<20, "unsent bytes a connection may keep while not draining; past it, and past 4× at once, it is closed as a slow consumer (4000)")
	fs.DurationVar(&c.Conn.SlowConsumerTimeout, "slow-consumer-timeout", 5*time.Second, "how long a connection over --max-outbound may go without draining before it is closed (4000)")
	fs.Float64Var(&c.Session.CommandRate, "command-rate", 20, "commands per second per connection")
	fs.IntVar(&c.Session.CommandBurst, "command-burst", 40, "command burst per connection")
	fs.IntVar(&c.Session.MaxSubscriptions, "max-subscriptions", 1024, "topics per connection")
	fs.IntVar(&c.Session.MaxTopicsPerCommand, "max-topics-per-command", 100, "topics per subscribe command")
	fs.IntVar(&c.MaxConns, "max-conns", 200000, "open connections before new ones get 503 (0: no cap)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 1000, "open connections per remote IP before new ones get 503 (0: no cap)")
	fs.Float64Var(&c.AcceptRate, "accept-rate", 10000, "new connections per second before 503 with Retry-After (0: no limit)")
	fs.IntVar(&c.AcceptBurst, "accept-burst", 20000, "burst of new connections above --accept-rate")
	fs.StringVar(&c.PersonalPrefix, "personal-prefix", "user.", "authenticated connections are subscribed to <prefix><sub> (empty: none)")
	fs.BoolVar(&c.ClientPublish, "client-publish", false, "let clients publish where their token allows it")
	h := &c.History
	fs.StringVar(&h.Patterns, "history", "", "durable topics: comma-separated PATTERN:SIZE[:TTL] (NATS wildcards over topics), e.g. 'user.>:1000:24h,ticker.*:1:1h'; each matching topic keeps its last SIZE messages, none older than TTL, in JetStream")
	fs.StringVar(&h.DataDir, "data-dir", "pushd-data", "directory of the embedded NATS server's JetStream file storage (used with --history and no --nats)")
	fs.Int64Var(&h.MaxStore, "data-max-bytes", 1<<30, "disk the embedded JetStream may use for histories")
	fs.IntVar(&h.Replicas, "history-replicas", 1, "replicas of each history stream (1-5; more than 1 needs a NATS cluster)")
	fs.IntVar(&h.Cache, "history-cache", 256, "recent messages each node caches per durable topic it serves, to answer resumes without JetStream (0: none)")
	fs.IntVar(&h.MaxReplay, "history-max-replay", 1000, "most messages one resume replays; a client that missed more gets recovered:false, reason limit")
	fs.DurationVar(&h.CheckInterval, "history-check-interval", 5*time.Second, "how often a node checks that its live durable topics missed nothing and that no history was replaced")
	a := &c.Auth
	fs.BoolVar(&a.Insecure, "insecure", false, "development mode: accept every client without a token (logged loudly)")
	fs.StringVar(&a.SecretFiles, "jwt-secret-files", "", "comma-separated files holding HS256 secrets; each file's base name is its kid")
	fs.StringVar(&a.PublicKeyFiles, "jwt-public-keys", "", "comma-separated PEM public keys (RSA: RS256, P-256: ES256, Ed25519: EdDSA); base name is the kid")
	fs.StringVar(&a.Issuer, "jwt-issuer", "", "required iss claim (empty: not checked)")
	fs.StringVar(&a.Audience, "jwt-audience", "", "required aud value (empty: not checked)")
	fs.DurationVar(&a.Leeway, "jwt-leeway", 5*time.Second, "clock skew allowed on exp and nbf (0: none)")
	fs.BoolVar(&a.AllowNoExpiry, "jwt-allow-no-exp", false, "accept tokens without exp (they never expire)")
	fs.StringVar(&a.DefaultSubscribe, "jwt-default-subscribe", "", "subscribe patterns for tokens whose pushd claim has none")
	fs.StringVar(&a.DefaultPublish, "jwt-default-publish", "", "publish patterns for tokens whose pushd claim has none")
	fs.StringVar(&a.AllowedOrigins, "allowed-origins", "", "comma-separated allowed Origins: exact, https://*.example.com, or * (empty: any)")
	fs.BoolVar(&a.AllowMissingOrigin, "allow-missing-origin", true, "accept handshakes without an Origin header (non-browser clients)")
	fs.StringVar(&a.TrustProxies, "trust-proxy", "", "comma-separated proxy addresses or CIDRs exempt from --max-conns-per-ip")
	return c, x
}

// describedValue wraps a flag's value so that a value that does not parse
// says what was expected, where the flag package says only "parse error".
type describedValue struct{ flag.Value }

// Set implements flag.Value.
func (d describedValue) Set(s string) error {
	err := d.Value.Set(s)
	if err == nil {
		return nil
	}
	if g, ok := d.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case time.Duration:
			return errors.New("want a duration such as 25s, 1m30s or 500ms")
		case int, int64:
			return errors.New("want an integer")
		case float64:
			return errors.New("want a number")
		case bool:
			return errors.New("want true or false")
		}
	}
	return err
}

// String implements flag.Value; the flag package calls it on a zero value
// too, to find out whether a default is worth printing.
func (d describedValue) String() string {
	if d.Value == nil {
		return ""
	}
	return d.Value.String()
}

// Get implements flag.Getter, so the flag's type stays visible.
func (d describedValue) Get() any {
	if g, ok := d.Value.(flag.Getter); ok {
		return g.Get()
	}
	return nil
}

// IsBoolFlag lets a wrapped boolean flag be given without a value.
func (d describedValue) IsBoolFlag() bool {
	b, ok := d.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
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
			str, e := fileValue(f, v)
			if e == nil {
				e = f.Value.Set(str)
			}
			if e != nil {
				err = fmt.Errorf("invalid value for %q in config file %s: %v", f.Name, cfgFile, e)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	c.APIKeys = splitList(x.apiKeys)
	c.Demo = x.demo.val
	if !x.demo.set {
		c.Demo = c.Auth.Insecure // a development server shows the demo
	}
	return c, c.validate()
}

// validate checks every value that parsed but is out of range. Each error
// names its flag.
func (c *config) validate() error {
	positive := []struct {
		name string
		ok   bool
	}{
		{"--handshake-timeout", c.Conn.HandshakeTimeout > 0},
		{"--keep-alive-timeout", c.Conn.KeepAliveTimeout > 0},
		{"--close-timeout", c.Conn.CloseTimeout > 0},
		{"--ping-interval", c.WS.PingInterval > 0},
		{"--pong-timeout", c.WS.PongTimeout > 0},
		{"--sio-ping-interval", c.SIO.PingInterval > 0},
		{"--sio-ping-timeout", c.SIO.PingTimeout > 0},
		{"--sio-max-payload", c.SIO.MaxPayload > 0},
		{"--sio-upgrade-timeout", c.SIO.UpgradeTimeout > 0},
		{"--drain-grace", c.DrainGrace > 0},
		{"--max-frame", c.WS.MaxFrameSize > 0},
		{"--max-message", c.WS.MaxMessageSize > 0},
		{"--max-outbound", c.Conn.MaxOutbound > 0},
		{"--slow-consumer-timeout", c.Conn.SlowConsumerTimeout > 0},
		{"--gc-percent", c.GCPercent > 0},
		{"--history-max-replay", c.History.MaxReplay > 0},
		{"--history-check-interval", c.History.CheckInterval > 0},
		{"--data-max-bytes", c.History.MaxStore > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("%s must be positive", p.name)
		}
	}
	nonNegative := []struct {
		name string
		ok   bool
	}{
		{"--loops", c.Loops >= 0},
		{"--sio-recovery", c.SIO.Recovery >= 0},
		{"--max-conns", c.MaxConns >= 0},
		{"--max-conns-per-ip", c.MaxConnsPerIP >= 0},
		{"--accept-rate", c.AcceptRate >= 0},
		{"--accept-burst", c.AcceptBurst >= 0},
		{"--memory-limit", c.MemoryLimit >= 0},
		{"--history-cache", c.History.Cache >= 0},
	}
	for _, p := range nonNegative {
		if !p.ok {
			return fmt.Errorf("%s must be ≥ 0", p.name)
		}
	}
	switch {
	case !strings.HasPrefix(c.WSPath, "/"):
		return fmt.Errorf("--ws-path %q must start with /", c.WSPath)
	case c.EchoPath != "" && !strings.HasPrefix(c.EchoPath, "/"):
		return fmt.Errorf("--echo-path %q must start with /", c.EchoPath)
	case c.EchoPath == c.WSPath:
		return errors.New("--echo-path must differ from --ws-path")
	case c.SIOPath != "" && !strings.HasPrefix(c.SIOPath, "/"):
		return fmt.Errorf("--sio-path %q must start with /", c.SIOPath)
	case c.SIOPath != "" && (c.SIOPath == c.WSPath || c.SIOPath == c.EchoPath):
		return errors.New("--sio-path must differ from --ws-path and --echo-path")
	case c.SSEPath != "" && !strings.HasPrefix(c.SSEPath, "/"):
		return fmt.Errorf("--sse-path %q must start with /", c.SSEPath)
	case codec.ValidTopic(c.Prefix) != nil:
		return fmt.Errorf("--prefix %q: want dot-separated tokens of letters, digits, - and _", c.Prefix)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	case c.PersonalPrefix != "" && codec.ValidTopic(strings.TrimSuffix(c.PersonalPrefix, ".")) != nil:
		return fmt.Errorf("--personal-prefix %q: want topic tokens and a final dot, such as \"user.\"", c.PersonalPrefix)
	}
	if err := c.checkPaths(); err != nil {
		return err
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.History.Replicas < 1 || c.History.Replicas > 5 {
		return fmt.Errorf("--history-replicas %d: want 1 to 5", c.History.Replicas)
	}
	if _, err := jsbroker.ParsePatterns(c.History.Patterns); err != nil {
		return fmt.Errorf("--history: %v", err)
	}
	if c.History.Patterns != "" && c.NATS == "" && c.History.DataDir == "" {
		return errors.New("--data-dir must not be empty with --history and the embedded NATS server")
	}
	if c.NATSListen != "off" && c.NATS == "" {
		if _, _, err := splitHostPort(c.NATSListen); err != nil {
			return fmt.Errorf("--nats-listen %q: %v", c.NATSListen, err)
		}
	}
	return nil
}

// checkPaths refuses two endpoints on one path: the WebSocket, echo and SSE
// paths, pushd.js and, with the demo on, the demo page.
func (c *config) checkPaths() error {
	type use struct{ path, by string }
	uses := []use{{c.WSPath, "--ws-path"}, {web.ClientPath, "pushd.js"}}
	if c.EchoPath != "" {
		uses = append(uses, use{c.EchoPath, "--echo-path"})
	}
	if c.SSEPath != "" {
		uses = append(uses, use{c.SSEPath, "--sse-path"})
	}
	if c.Demo {
		uses = append(uses, use{web.DemoPath, "the demo page (--demo)"})
	}
	for i, a := range uses {
		for _, b := range uses[:i] {
			if a.path == b.path {
				return fmt.Errorf("%s %q is taken by %s", a.by, a.path, b.by)
			}
		}
	}
	return nil
}

// parts are the pieces of a node built from the configuration before
// anything starts: building them reads key files and parses lists, and a
// failure is a configuration error.
type parts struct {
	verifier *auth.Verifier     // nil: insecure mode
	origins  *auth.OriginPolicy // nil: any origin
	trusted  *auth.TrustedProxies
}

// build makes the configuration's parts. Its errors are configuration
// errors (exit 2), each naming its flag.
func (c *config) build() (*parts, error) {
	p := &parts{}
	var err error
	if p.trusted, err = auth.ParseTrustedProxies(splitList(c.Auth.TrustProxies)); err != nil {
		return nil, fmt.Errorf("--trust-proxy: %w", err)
	}
	a := &c.Auth
	var origins *auth.OriginPolicy
	if list := splitList(a.AllowedOrigins); len(list) > 0 || !a.AllowMissingOrigin {
		if len(list) == 0 {
			list = []string{"*"}
		}
		if origins, err = auth.NewOriginPolicy(list, a.AllowMissingOrigin); err != nil {
			return nil, fmt.Errorf("--allowed-origins: %w", err)
		}
	}
	p.origins = origins
	secrets, keys := splitList(a.SecretFiles), splitList(a.PublicKeyFiles)
	switch {
	case len(secrets)+len(keys) == 0 && !a.Insecure:
		return nil, errors.New("no JWT keys: give --jwt-secret-files or --jwt-public-keys, or --insecure for development")
	case len(secrets)+len(keys) > 0 && a.Insecure:
		return nil, errors.New("--insecure cannot be combined with JWT keys")
	case len(secrets)+len(keys) > 0:
		leeway := a.Leeway
		if leeway == 0 {
			leeway = -1 // VerifierConfig: negative means none, zero the default
		}
		p.verifier, err = auth.NewVerifier(auth.VerifierConfig{
			HS256SecretFiles: secrets,
			PublicKeyFiles:   keys,
			Leeway:           leeway,
			Issuer:           a.Issuer,
			Audience:         a.Audience,
			AllowNoExpiry:    a.AllowNoExpiry,
			DefaultSubscribe: splitList(a.DefaultSubscribe),
			DefaultPublish:   splitList(a.DefaultPublish),
		})
		if err != nil {
			return nil, fmt.Errorf("--jwt-secret-files / --jwt-public-keys: %w", err)
		}
	}
	return p, nil
}

// fileValue turns a JSON config-file value into flag text: strings, numbers
// and booleans as themselves, an array of them joined with commas (for the
// list flags). A duration must be a string: a bare number would be
// ambiguous (seconds? nanoseconds?). Anything else is an error rather than a
// surprise.
func fileValue(f *flag.Flag, v any) (string, error) {
	if _, isNum := v.(float64); isNum {
		if g, ok := f.Value.(flag.Getter); ok {
			if _, isDur := g.Get().(time.Duration); isDur {
				return "", fmt.Errorf("want a duration string such as \"25s\", got the number %v", v)
			}
		}
	}
	return plainFileValue(v)
}

func plainFileValue(v any) (string, error) {
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
			s, err := plainFileValue(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want a string, number, boolean or array, got %T", v)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
