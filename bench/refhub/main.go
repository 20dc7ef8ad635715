// Command refhub is the BASELINE server for pushd's benchmarks: a
// conventional gorilla/websocket broadcast hub (see package hub). It is not
// part of pushd; scripts/bench.sh runs it beside pushd and drives both with
// the same loadtest harness.
//
//	go run ./bench/refhub -addr 127.0.0.1:8090 -api-addr 127.0.0.1:8091
//
// WebSocket clients connect to ws://ADDR/ws; publishers POST to
// http://API-ADDR/v1/publish. SIGINT or SIGTERM closes every client with
// 1001 and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pushd/pushd/bench/refhub/hub"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "WebSocket listen address (path /ws)")
	apiAddr := flag.String("api-addr", "127.0.0.1:8091", "HTTP API listen address (/v1/publish, /readyz, /metrics)")
	ping := flag.Duration("ping-interval", 25*time.Second, "ping interval")
	sendBuf := flag.Int("send-buffer", 256, "per-client send channel capacity; a full channel drops the client")
	flag.Parse()
	if err := run(*addr, *apiAddr, hub.Config{PingInterval: *ping, SendBuffer: *sendBuf}); err != nil {
		fmt.Fprintln(os.Stderr, "refhub:", err)
		os.Exit(1)
	}
}

func run(addr, apiAddr string, cfg hub.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := hub.New(cfg)
	wsLn, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", apiAddr)
	if err != nil {
		wsLn.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h.ServeWS)
	wsSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	apiSrv := &http.Server{Handler: h.APIHandler(), ReadHeaderTimeout: 10 * time.Second}
	hubDone := make(chan struct{})
	go func() { h.Run(ctx); close(hubDone) }()
	errc := make(chan error, 2)
	go func() { errc <- wsSrv.Serve(wsLn) }()
	go func() { errc <- apiSrv.Serve(apiLn) }()
	log.Printf("refhub (baseline) ws://%s/ws, api http://%s", wsLn.Addr(), apiLn.Addr())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stop()
	<-hubDone // every client has been told 1001
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsSrv.Shutdown(sctx) // hijacked WebSocket conns are not waited for
	apiSrv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
