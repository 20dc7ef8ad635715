package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/cmd/pushd/internal/api"
	"github.com/pushd/pushd/cmd/pushd/internal/metrics"
	"github.com/pushd/pushd/cmd/pushd/web"
	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/conn/sio"
	"github.com/pushd/pushd/conn/sse"
	"github.com/pushd/pushd/conn/static"
	"github.com/pushd/pushd/conn/ws"
	"github.com/pushd/pushd/netpoll"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/broker/jsbroker"
	"github.com/pushd/pushd/topics/broker/natsbroker"
	"github.com/pushd/pushd/topics/metric"
)

// node is one running pushd: the embedded NATS server (when no external one
// is given), the NATS connection, the broker and topic hub, the engine
// (WebSocket, SSE, static files), the HTTP API, and with --demo the demo
// ticker. Its methods are safe for concurrent use.
type node struct {
	cfg      *config
	log      *slog.Logger
	ns       *server.Server // nil with an external NATS
	nc       *nats.Conn
	broker   broker.Broker // a jsbroker.Broker with --history, otherwise a natsbroker.Broker
	hub      *topics.Hub
	smet     *session.Metrics // the sessions' counters
	sioMet   *sio.Metrics     // the Socket.IO polling and relay counters
	srv      *netpoll.Server
	api      *http.Server
	apiL     net.Listener
	stopDemo func() // stops the demo ticker and waits for it; nil without one
}

// startNode starts every part of a node and returns when all of them are
// serving. On error, whatever had started is stopped again.
func startNode(cfg *config, p *parts, log *slog.Logger) (n *node, err error) {
	n = &node{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			n.close()
			n = nil
		}
	}()
	adm := auth.NewAdmitter(auth.AdmitterConfig{Verifier: p.verifier, Origins: p.origins, PersonalPrefix: cfg.PersonalPrefix, Logger: log})
	if adm.Insecure() {
		log.Warn("INSECURE MODE: clients are not authenticated; every client may subscribe to any topic" +
			" (never run this facing the internet)")
	}
	if err = n.connectNATS(); err != nil {
		return n, err
	}
	if n.broker, err = n.newBroker(); err != nil {
		return n, err
	}
	cacheLen := cfg.History.Cache
	if cacheLen == 0 {
		cacheLen = -1 // topics.Config: negative turns the cache off, 0 is the default
	}
	if n.hub, err = topics.New(n.broker, topics.Config{Logger: log, CacheLen: cacheLen, MaxReplay: cfg.History.MaxReplay}); err != nil {
		return n, err
	}
	n.smet = new(session.Metrics)
	n.srv, err = netpoll.Start(netpoll.Config{
		Addr:   cfg.Listen,
		Loops:  cfg.Loops,
		Routes: n.routes(adm, n.smet),
		Conn:   cfg.Conn,
		Tick: conn.TickFor(cfg.Conn.HandshakeTimeout, cfg.Conn.KeepAliveTimeout, cfg.Conn.CloseTimeout,
			cfg.Conn.SlowConsumerTimeout, cfg.WS.PingInterval, cfg.WS.PongTimeout, cfg.SIO.PingInterval, cfg.SIO.PingTimeout, cfg.SIO.UpgradeTimeout),
		Hub:    n.hub,
		Logger: log,

		MaxConns:       cfg.MaxConns,
		MaxConnsPerIP:  cfg.MaxConnsPerIP,
		AcceptRate:     cfg.AcceptRate,
		AcceptBurst:    cfg.AcceptBurst,
		TrustedProxies: p.trusted,
	})
	if err != nil {
		return n, fmt.Errorf("websocket listener %s: %w", cfg.Listen, err)
	}
	if n.apiL, err = net.Listen("tcp", cfg.APIListen); err != nil {
		return n, fmt.Errorf("api listener: %w", err)
	}
	publishLatency := metric.NewHistogram(api.PublishLatencyBounds)
	src := metrics.Sources{
		Conn:           n.srv.Metrics(),
		Session:        n.smet,
		Refused:        adm.Refused,
		Hub:            n.hub.Stats,
		PublishLatency: publishLatency,
		Deflate:        ws.CompressionStats,
	}
	if cfg.SIOPath != "" {
		src.SIO = n.sioMet
	}
	reg := metrics.Registry(metrics.New(src))
	a := api.New(api.Config{
		Hub:            n.hub,
		History:        n.hub,
		Keys:           cfg.APIKeys,
		Ready:          n.ready,
		Metrics:        metrics.Handler(reg),
		Logger:         log,
		PublishLatency: publishLatency,
	})
	n.api = &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := n.api.Serve(n.apiL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server", "err", err)
		}
	}()
	if cfg.Demo {
		n.stopDemo = startDemoTicker(n.hub, log)
	}
	attrs := []any{"version", versionString(), "ws", n.wsURL(), "api", n.apiURL()}
	if cfg.SSEPath != "" {
		attrs = append(attrs, "sse", "http://"+n.srv.Addr()+cfg.SSEPath)
	}
	if cfg.SIOPath != "" {
		attrs = append(attrs, "socketio", "http://"+n.srv.Addr()+cfg.SIOPath)
	}
	if cfg.Demo {
		attrs = append(attrs, "demo", "http://"+n.srv.Addr()+web.DemoPath)
	}
	log.Info("pushd serving", attrs...)
	return n, nil
}

// newBroker returns the broker: with --history, a jsbroker.Broker, which
// creates or updates its streams first and fails at once when JetStream
// does not answer; otherwise a natsbroker.Broker.
func (n *node) newBroker() (broker.Broker, error) {
	cfg := n.cfg
	patterns, err := jsbroker.ParsePatterns(cfg.History.Patterns)
	if err != nil {
		return nil, fmt.Errorf("--history: %w", err)
	}
	if len(patterns) == 0 {
		return natsbroker.New(n.nc, natsbroker.Config{Prefix: cfg.Prefix, Logger: n.log})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := jsbroker.New(ctx, n.nc, jsbroker.Config{
		Prefix:        cfg.Prefix,
		History:       patterns,
		Replicas:      cfg.History.Replicas,
		CheckInterval: cfg.History.CheckInterval,
		Logger:        n.log,
	})
	if err != nil {
		if errors.Is(err, jsbroker.ErrJetStreamUnavailable) {
			return nil, fmt.Errorf("--history needs JetStream, and the NATS server has none: %w", err)
		}
		return nil, err
	}
	n.log.Info("durable topics", "history", cfg.History.Patterns, "replicas", cfg.History.Replicas)
	return b, nil
}

// demoTopic is the topic the demo page shows as a live ticker.
const demoTopic = "demo.ticker"

// startDemoTicker publishes a made-up price to demoTopic once a second, a
// random walk, through the hub (and so through NATS, like any publish), so
// the demo page is live the moment it opens. It returns a function that
// stops it and waits until it has. One goroutine, whatever the number of
// viewers.
func startDemoTicker(hub *topics.Hub, log *slog.Logger) func() {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		price := 97000.0
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			price = max(1000, price+math.Round((rand.Float64()-0.5)*8000)/100)
			// A fresh buffer each time: a broker may keep the payload.
			data := fmt.Appendf(nil, `{"symbol":"BTC","price":%.2f}`, price)
			if err := hub.Publish(demoTopic, data); err != nil {
				log.Debug("demo ticker", "err", err)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// routes is the endpoint table: the v1 protocol at --ws-path, over SSE at
// --sse-path when set, Socket.IO at --sio-path when set, pushd.js, the demo
// page with --demo, and the echo endpoint at --echo-path when set.
func (n *node) routes(adm *auth.Admitter, smet *session.Metrics) []conn.Route {
	cfg := n.cfg
	scfg := cfg.Session
	if adm != nil {
		scfg.PersonalTopic = func(id session.Identity) string {
			aid, _ := id.(*auth.Identity)
			return adm.PersonalTopic(aid)
		}
	}
	if cfg.ClientPublish {
		scfg.Publish = n.hub.Publish
	}
	admit := func(req *codec.HTTPRequest) (session.Identity, string, *codec.HandshakeError) {
		id, proto, herr := adm.Admit(req)
		if id == nil { // no typed nil inside the interface
			return nil, proto, herr
		}
		return id, proto, herr
	}
	routes := []conn.Route{ws.V1Route(cfg.WSPath, cfg.WS, admit, scfg, smet), webRoute(web.ClientPath)}
	if cfg.SSEPath != "" {
		routes = append(routes, sse.Route(cfg.SSEPath, sse.Config{PingInterval: cfg.WS.PingInterval}, admit, scfg, smet))
	}
	if cfg.SIOPath != "" {
		// Polling requests that reach this node for another node's session
		// are relayed to it through the broker: no sticky sessions.
		scio := cfg.SIO
		scio.Relay, _ = n.broker.(broker.Mailboxes) // both brokers are
		n.sioMet = new(sio.Metrics)
		scio.Metrics = n.sioMet
		routes = append(routes, sio.Route(cfg.SIOPath, scio, sioAdmission(adm), scfg, smet))
	}
	if cfg.Demo {
		routes = append(routes, webRoute(web.DemoPath))
	}
	if cfg.EchoPath != "" {
		routes = append(routes, ws.EchoRoute(cfg.EchoPath, cfg.WS))
	}
	return routes
}

// sioAdmission checks Socket.IO clients with adm: the Origin and any token
// of the opening request, then the token of the CONNECT. No typed nil
// reaches the session.Identity interface.
func sioAdmission(adm *auth.Admitter) sio.Admission {
	return sio.Admission{
		Request: func(req *codec.HTTPRequest) (session.Identity, *codec.HandshakeError) {
			id, herr := adm.AdmitRequest(req)
			if id == nil {
				return nil, herr
			}
			return id, herr
		},
		Token: func(token string) (session.Identity, error) {
			id, err := adm.VerifyToken(token)
			if id == nil {
				return nil, err
			}
			return id, err
		},
	}
}

// webRoute serves the embedded file at path (web.ClientPath or
// web.DemoPath).
func webRoute(path string) conn.Route {
	body, ctype, etag, ok := web.Lookup(path)
	if !ok {
		panic("pushd: no embedded file for " + path) // a build defect
	}
	return static.Route(path, static.File{Body: body, ContentType: ctype, ETag: etag, CacheControl: web.CacheControl})
}

// connectNATS starts the embedded NATS server when no external one is
// configured, and connects to NATS.
func (n *node) connectNATS() error {
	cfg, log := n.cfg, n.log
	url := cfg.NATS
	var opts []nats.Option
	if url == "" {
		var err error
		var js *embeddedJS
		if cfg.History.Patterns != "" {
			js = &embeddedJS{dir: cfg.History.DataDir, maxStore: cfg.History.MaxStore}
		}
		if n.ns, err = startEmbeddedNATS(cfg.NATSListen, js); err != nil {
			return err
		}
		if cfg.NATSListen == "off" {
			opts = append(opts, nats.InProcessServer(n.ns))
		} else {
			url = n.ns.ClientURL()
		}
		if js != nil {
			log.Info("embedded NATS server started", "listen", cfg.NATSListen, "jetstream", cfg.History.DataDir)
		} else {
			log.Info("embedded NATS server started", "listen", cfg.NATSListen)
		}
	}
	opts = append(opts,
		nats.Name("pushd"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS reconnected", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("NATS error", "err", err, "subject", subj)
		}),
	)
	var err error
	if n.nc, err = nats.Connect(url, opts...); err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	return nil
}

// splitHostPort parses the embedded server's listen address.
func splitHostPort(listen string) (string, int, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, errors.New("bad port")
	}
	return host, p, nil
}

// embeddedJS configures JetStream in the embedded NATS server.
type embeddedJS struct {
	dir      string // file storage; the server keeps it under <dir>/jetstream
	maxStore int64
}

// embeddedJSMemory caps the embedded JetStream's memory storage; pushd's
// streams use file storage, so this bounds only what others create.
const embeddedJSMemory = 64 << 20

// startEmbeddedNATS starts a NATS server on listen ("host:port", or "off"
// for in-process connections only), with JetStream when js is not nil. A
// busy address fails at once, naming the address and the error, rather
// than after a start-up timeout; so does a data directory JetStream cannot
// use.
func startEmbeddedNATS(listen string, js *embeddedJS) (*server.Server, error) {
	opts := &server.Options{ServerName: "pushd-embedded", NoLog: true, NoSigs: true, MaxPayload: 1 << 20}
	if js != nil {
		if err := os.MkdirAll(js.dir, 0o750); err != nil {
			return nil, fmt.Errorf("--data-dir: %w", err)
		}
		opts.JetStream, opts.StoreDir = true, js.dir
		opts.JetStreamMaxStore, opts.JetStreamMaxMemory = js.maxStore, embeddedJSMemory
	}
	if listen == "off" {
		opts.DontListen = true
	} else {
		host, p, err := splitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", listen, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		} else {
			// The server reports a failed listen only through its log (off
			// here) and a start-up that never completes: try the address
			// first. The window between this check and the server's own
			// listen is a few microseconds.
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return nil, fmt.Errorf("embedded NATS cannot listen on %s: %w", listen, err)
			}
			_ = l.Close()
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on %s within 10s", listen)
	}
	if js != nil && !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded JetStream did not start in --data-dir %s (is it writable, and not used by another pushd?)", js.dir)
	}
	return ns, nil
}

// wsURL returns the WebSocket endpoint's URL.
func (n *node) wsURL() string { return "ws://" + n.srv.Addr() + n.cfg.WSPath }

// apiURL returns the HTTP API's base URL.
func (n *node) apiURL() string { return "http://" + n.apiL.Addr().String() }

// ready reports whether the node can serve: NATS connected and the engine
// accepting.
func (n *node) ready() bool {
	return n.broker != nil && n.broker.Connected() && n.srv != nil && n.srv.Serving()
}

// shutdown drains the node: clients get close 1001 and have until ctx ends
// to answer, in-flight writes are flushed by the engine, then the API, the
// hub and NATS stop.
func (n *node) shutdown(ctx context.Context) error {
	var err error
	if n.srv != nil {
		err = n.srv.Shutdown(ctx)
	}
	n.close()
	return err
}

// close stops whatever is running, without draining clients.
func (n *node) close() {
	if n.stopDemo != nil {
		n.stopDemo()
		n.stopDemo = nil
	}
	if n.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = n.api.Shutdown(ctx)
		cancel()
	} else if n.apiL != nil {
		_ = n.apiL.Close()
	}
	if n.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.srv.Shutdown(ctx)
		cancel()
	}
	if n.hub != nil {
		n.hub.Close()
	}
	if n.broker != nil {
		n.broker.Close()
	}
	if n.nc != nil {
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
}
