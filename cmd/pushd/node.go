package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/netpoll"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker/natsbroker"
)

// node is one running pushd: the WebSocket engine, the topic hub, the NATS
// connection (and the embedded NATS server when no external one is given),
// and the HTTP API. Its methods are safe for concurrent use.
type node struct {
	cfg    *config
	log    *slog.Logger
	adm    *admitter
	ns     *server.Server // nil with an external NATS
	nc     *nats.Conn
	broker *natsbroker.Broker
	hub    *topics.Hub
	srv    *netpoll.Server
	api    *http.Server
	apiL   net.Listener
}

// startNode starts every part of a node and returns when all of them are
// serving. On error, whatever had started is stopped again.
func startNode(cfg *config, log *slog.Logger) (n *node, err error) {
	n = &node{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			n.close()
			n = nil
		}
	}()
	if n.adm, err = newAdmitter(&cfg.Auth, cfg.PersonalPrefix, log); err != nil {
		return n, err
	}
	if n.adm.verifier == nil {
		log.Warn("INSECURE MODE: clients are not authenticated; every client may subscribe to any topic" +
			" (never run this facing the internet)")
	}
	trusted, err := auth.ParseTrustedProxies(splitList(cfg.Auth.TrustProxies))
	if err != nil {
		return n, err
	}
	url := cfg.NATS
	var natsOpts []nats.Option
	if url == "" {
		if n.ns, err = startEmbeddedNATS(cfg.NATSListen); err != nil {
			return n, err
		}
		if cfg.NATSListen == "off" {
			natsOpts = append(natsOpts, nats.InProcessServer(n.ns))
		} else {
			url = n.ns.ClientURL()
		}
		log.Info("embedded NATS server started", "listen", cfg.NATSListen)
	}
	natsOpts = append(natsOpts,
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
	if n.nc, err = nats.Connect(url, natsOpts...); err != nil {
		return n, fmt.Errorf("connect to NATS: %w", err)
	}
	if n.broker, err = natsbroker.New(n.nc, natsbroker.Config{Prefix: cfg.Prefix, Logger: log}); err != nil {
		return n, err
	}
	if n.hub, err = topics.New(n.broker, topics.Config{Logger: log}); err != nil {
		return n, err
	}
	n.srv, err = netpoll.Start(netpoll.Config{
		Addr:     cfg.Listen,
		Loops:    cfg.Loops,
		WSPath:   cfg.WSPath,
		EchoPath: cfg.EchoPath,
		Conn:     cfg.Conn,
		Hub:      n.hub,
		Logger:   log,

		MaxConns:       cfg.MaxConns,
		MaxConnsPerIP:  cfg.MaxConnsPerIP,
		AcceptRate:     cfg.AcceptRate,
		AcceptBurst:    cfg.AcceptBurst,
		TrustedProxies: trusted,
		Admit:          n.adm.admit,
		PersonalTopic:  n.adm.personalTopic,
		Publish:        n.clientPublish(),
	})
	if err != nil {
		return n, fmt.Errorf("websocket listener %s: %w", cfg.Listen, err)
	}
	if n.apiL, err = net.Listen("tcp", cfg.APIListen); err != nil {
		return n, fmt.Errorf("api listener: %w", err)
	}
	n.api = &http.Server{
		Handler:           n.apiHandler(),
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
	log.Info("pushd serving", "ws", "ws://"+n.srv.Addr()+cfg.WSPath, "api", "http://"+n.apiL.Addr().String())
	return n, nil
}

// startEmbeddedNATS starts a NATS server on listen ("host:port", or "off"
// for in-process connections only).
func startEmbeddedNATS(listen string) (*server.Server, error) {
	opts := &server.Options{ServerName: "pushd-embedded", NoLog: true, NoSigs: true, MaxPayload: 1 << 20}
	if listen == "off" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("--nats-listen %q: bad port", listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
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
		return nil, fmt.Errorf("embedded NATS did not start on %s", listen)
	}
	return ns, nil
}

// clientPublish returns the publish function for the client publish
// command, or nil when client publishing is off.
func (n *node) clientPublish() func(string, []byte) error {
	if !n.cfg.ClientPublish {
		return nil
	}
	return n.hub.Publish
}

// wsURL returns the WebSocket endpoint's URL.
func (n *node) wsURL() string { return "ws://" + n.srv.Addr() + n.cfg.WSPath }

// apiURL returns the HTTP API's base URL.
func (n *node) apiURL() string { return "http://" + n.apiL.Addr().String() }

// ready reports whether the node can serve: NATS connected and the engine
// accepting.
func (n *node) ready() bool {
	return n.nc != nil && n.nc.IsConnected() && n.srv != nil && n.srv.Serving()
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

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
