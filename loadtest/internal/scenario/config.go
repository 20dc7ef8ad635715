//go:build linux

package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/loadtest/internal/tmpl"
)

// Scenario names.
const (
	Idle   = "idle"
	Fanout = "fanout"
	Churn  = "churn"
)

// Publisher kinds.
const (
	PublishHTTP = "http"
	PublishNATS = "nats"
	PublishWS   = "ws"
)

// Config is one run. Zero fields take the defaults that Check fills in.
type Config struct {
	Scenario string
	// Label names the server under test in reports and benchmark names.
	Label string
	// URL is the WebSocket URL template ({{topic}}, {{id}}).
	URL string
	// SubscribeFrame is a text message template sent after each upgrade.
	SubscribeFrame string
	// Headers are extra "Name: value" handshake headers.
	Headers []string
	// Topics are the topic names; connection i subscribes to Topics[i%len].
	Topics []string

	// Conns is the number of connections (idle) or subscribers (fanout).
	Conns int
	// ConnectRate paces the initial dials per second; 0 dials as fast as
	// MaxInflight allows.
	ConnectRate float64
	// Hold is how long idle connections are held (default 35 s: more than
	// one 25 s ping interval).
	Hold time.Duration

	// Publisher is http, nats or ws.
	Publisher string
	// PublishURL and PublishBody are the HTTP POST target and body template
	// ({{topic}}, {{payload}}).
	PublishURL  string
	PublishBody string
	// PublishWSURL and PublishFrame are the ws publisher's URL and frame
	// template.
	PublishWSURL string
	PublishFrame string
	// NATSURL and NATSSubject are the nats publisher's server and subject
	// template; the payload is sent as is.
	NATSURL     string
	NATSSubject string
	// Rates and Messages are the fanout steps: Messages[i] messages at
	// Rates[i] per second (a single Messages value applies to every step).
	Rates    []float64
	Messages []int
	// Size is the payload size in bytes.
	Size int
	// Warmup bounds the wait for every subscriber to receive a probe.
	Warmup time.Duration
	// Drain is how long to wait for deliveries after a step's last publish.
	Drain time.Duration

	// ChurnRate connections per second for ChurnDuration, each open for
	// Lifetime; then a reconnect storm of Storm clients (0: none).
	ChurnRate     float64
	ChurnDuration time.Duration
	Lifetime      time.Duration
	Storm         int

	// ServerPID, if not 0, is the server's process, whose RSS is read
	// from /proc. MetricsURL, if set, is a Prometheus endpoint read for
	// process_resident_memory_bytes and ConnGauge.
	ServerPID  int
	MetricsURL string
	ConnGauge  string

	// Workers is the number of workers (0: enough for PerWorker each).
	// Workers beyond the first run as child processes; a single worker
	// runs in this process unless ForceProcess.
	Workers      int
	PerWorker    int
	ForceProcess bool
	// Loops is the number of client event loops per worker.
	Loops int
	// MaxInflight bounds dials in progress per loop.
	MaxInflight int
	// SourceAddrs is how many local addresses (127.0.0.2 and up) the
	// connections are spread over when the target is IPv4 loopback.
	SourceAddrs      int
	HandshakeTimeout time.Duration
	CloseTimeout     time.Duration

	// MaxDuration bounds the whole run.
	MaxDuration time.Duration
	// AllowRemote permits targets outside 127.0.0.0/8 and ::1.
	AllowRemote bool
	// WorkerCommand builds the command that runs a child worker (default:
	// this executable with the argument "worker").
	WorkerCommand func() (*exec.Cmd, error)
	// Progress, if not nil, receives a live status line every half second
	// (with carriage returns: meant for a terminal).
	Progress io.Writer
	// Command is recorded in the result.
	Command []string

	// Derived by Check.
	target netip.AddrPort
	host   string
	path   string
}

// Check validates c, fills in defaults and resolves the target. It refuses
// non-loopback targets unless AllowRemote. It may do DNS lookups. Call it
// from the goroutine that owns c.
func (c *Config) Check(ctx context.Context) error {
	switch c.Scenario {
	case Idle, Fanout, Churn:
	default:
		return fmt.Errorf("unknown scenario %q (want idle, fanout or churn)", c.Scenario)
	}
	setDefault(&c.URL, "ws://127.0.0.1:8080/ws?topics={{topic}}")
	if len(c.Topics) == 0 {
		c.Topics = []string{"loadtest"}
	}
	for _, t := range c.Topics {
		if codec.ValidTopic(t) != nil {
			return fmt.Errorf("topic %q: use letters, digits, '.', '_' and '-' only", t)
		}
	}
	setDefault(&c.Publisher, PublishHTTP)
	setDefault(&c.PublishURL, "http://127.0.0.1:8081/v1/publish")
	setDefault(&c.PublishBody, `{"topic":"{{topic}}","data":{{payload}}}`)
	setDefault(&c.NATSURL, "nats://127.0.0.1:4222")
	setDefault(&c.NATSSubject, "pushd.{{topic}}")
	setDefault(&c.ConnGauge, "pushd_connections")
	if c.Hold <= 0 {
		c.Hold = 35 * time.Second
	}
	if c.Size <= 0 {
		c.Size = 100
	}
	if c.Warmup <= 0 {
		c.Warmup = 15 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	if c.PerWorker <= 0 {
		c.PerWorker = 15000
	}
	if c.PerWorker > 19000 {
		return errors.New("per-worker connections above 19000 would hit the 20000 open-file limit")
	}
	if c.Loops <= 0 {
		c.Loops = 1
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 256
	}
	if c.SourceAddrs <= 0 {
		c.SourceAddrs = 8
	}
	if c.SourceAddrs > 250 {
		return errors.New("at most 250 source addresses (127.0.0.2–127.0.0.251)")
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = 10 * time.Minute
	}
	if c.Lifetime <= 0 {
		c.Lifetime = time.Second
	}
	if c.ChurnDuration <= 0 {
		c.ChurnDuration = 10 * time.Second
	}
	if c.ChurnRate <= 0 {
		c.ChurnRate = 500
	}
	if c.Conns < 0 || c.Storm < 0 {
		return errors.New("negative connection count")
	}
	switch c.Scenario {
	case Idle, Fanout:
		if c.Conns == 0 {
			return fmt.Errorf("%s needs --conns > 0", c.Scenario)
		}
	}
	if c.Scenario == Fanout {
		if err := c.checkFanout(); err != nil {
			return err
		}
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	switch u.Scheme {
	case "ws":
	case "wss":
		return errors.New("--url: wss:// is not supported: the event-loop client speaks plain ws:// only")
	default:
		return fmt.Errorf("--url: scheme %q, want ws://", u.Scheme)
	}
	if _, err := tmpl.Parse(c.URL); err != nil {
		return err
	}
	if _, err := tmpl.Parse(c.SubscribeFrame); err != nil {
		return err
	}
	c.host = u.Host
	c.path = u.RequestURI()
	// url.Parse escapes the braces of a placeholder in the path; undo it.
	c.path = strings.NewReplacer("%7B%7B", "{{", "%7D%7D", "}}").Replace(c.path)
	port := u.Port()
	if port == "" {
		port = "80"
	}
	addrs, err := c.resolve(ctx, "--url", u.Hostname())
	if err != nil {
		return err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("--url: port %q", port)
	}
	c.target = netip.AddrPortFrom(addrs[0], uint16(p))
	for _, h := range c.Headers {
		if !strings.Contains(h, ":") || strings.ContainsAny(h, "\r\n") {
			return fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
	}
	if c.MetricsURL != "" {
		if err := c.checkURL(ctx, "--metrics", c.MetricsURL); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkFanout() error {
	if len(c.Rates) == 0 {
		c.Rates = []float64{10}
	}
	if len(c.Messages) == 0 {
		c.Messages = []int{100}
	}
	if len(c.Messages) == 1 && len(c.Rates) > 1 {
		for len(c.Messages) < len(c.Rates) {
			c.Messages = append(c.Messages, c.Messages[0])
		}
	}
	if len(c.Messages) != len(c.Rates) {
		return fmt.Errorf("%d rates but %d message counts", len(c.Rates), len(c.Messages))
	}
	if len(c.Rates) > 32 {
		return errors.New("at most 32 steps")
	}
	for i, r := range c.Rates {
		if r <= 0 || c.Messages[i] <= 0 {
			return errors.New("rates and message counts must be positive")
		}
	}
	ctx := context.Background()
	switch c.Publisher {
	case PublishHTTP:
		if _, err := tmpl.Parse(c.PublishBody); err != nil {
			return err
		}
		return c.checkURL(ctx, "--publish-url", c.PublishURL)
	case PublishNATS:
		if _, err := tmpl.Parse(c.NATSSubject); err != nil {
			return err
		}
		return c.checkURL(ctx, "--nats", c.NATSURL)
	case PublishWS:
		if c.PublishFrame == "" {
			return errors.New("--publisher ws needs --publish-frame")
		}
		if _, err := tmpl.Parse(c.PublishFrame); err != nil {
			return err
		}
		// The publisher connection subscribes to a topic nobody publishes to,
		// so that it does not receive the whole load itself.
		setDefault(&c.PublishWSURL, strings.NewReplacer("{{topic}}", "loadtest-publisher", "{{id}}", "publisher").Replace(c.URL))
		return c.checkURL(ctx, "--publish-ws-url", c.PublishWSURL)
	}
	return fmt.Errorf("unknown publisher %q (want http, nats or ws)", c.Publisher)
}

// CheckURL checks that raw, given with flag, names a host that resolves to
// loopback addresses only (unless AllowRemote). Any goroutine.
func (c *Config) CheckURL(ctx context.Context, flag, raw string) error {
	return c.checkURL(ctx, flag, raw)
}

func (c *Config) checkURL(ctx context.Context, flag, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s: no host in %q", flag, raw)
	}
	_, err = c.resolve(ctx, flag, u.Hostname())
	return err
}

// resolve looks host up and, unless AllowRemote, insists that every
// address is loopback: a load test pointed at someone else's server by a
// typo is an attack.
func (c *Config) resolve(ctx context.Context, flag, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		addrs = ips
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s: %s has no address", flag, host)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
		if !addrs[i].IsLoopback() && !c.AllowRemote {
			return nil, fmt.Errorf("%s: %s (%v) is not a loopback address; refusing to load it without --allow-remote", flag, host, a)
		}
	}
	return addrs, nil
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// sources returns the local addresses to spread connections over: none
// unless the target is IPv4 loopback, where 127.0.0.2 … need no setup on
// Linux (the whole 127.0.0.0/8 is local).
func (c *Config) sources() []string {
	if !c.target.Addr().Is4() || !c.target.Addr().IsLoopback() {
		return nil
	}
	out := make([]string, c.SourceAddrs)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}).String()
	}
	return out
}

// peak is the most connections the run holds at once.
func (c *Config) peak() int {
	switch c.Scenario {
	case Churn:
		steady := int(c.ChurnRate*(c.Lifetime.Seconds()+1)) + 1
		return max(steady, c.Storm)
	}
	return c.Conns
}
