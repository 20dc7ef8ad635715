//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/pushd/pushd/loadtest/internal/scenario"
)

// probe measures how long a server takes to answer a plain HTTP request
// while another run loads it: on pushd, a request to the WebSocket port
// (GET /pushd.js, /healthz on the API port is not on an event loop) is
// served by the same event loop as the sockets a fan-out writes to, so its
// latency is the loop's responsiveness. One keep-alive connection, one
// request at a time, --every apart, for --for. Prints the percentiles.
func probe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/pushd.js", "the URL to GET")
	dur := fs.Duration("for", 10*time.Second, "how long to probe")
	every := fs.Duration("every", 5*time.Millisecond, "pause between two requests")
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not a loopback address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := scenario.Config{AllowRemote: *allowRemote}
	if err := cfg.CheckURL(context.Background(), "--url", *url); err != nil {
		return err
	}
	if *dur <= 0 || *dur > time.Hour {
		return errors.New("probe: --for must be in (0, 1h]")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var lat []time.Duration
	failed := 0
	end := time.Now().Add(*dur)
	for time.Now().Before(end) {
		start := time.Now()
		resp, err := client.Get(*url)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			failed++
		} else {
			lat = append(lat, time.Since(start))
		}
		time.Sleep(*every)
	}
	if len(lat) == 0 {
		return fmt.Errorf("probe: no request to %s succeeded (%d failed)", *url, failed)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond) }
	fmt.Printf("probe %s: %d requests, %d failed; p50 %v  p90 %v  p99 %v  max %v\n",
		*url, len(lat), failed, q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(10*time.Microsecond))
	return nil
}
