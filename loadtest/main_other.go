//go:build !linux

// Command loadtest is pushd's load harness. Its client is an epoll event
// loop, so it runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "loadtest: needs Linux (the client is an epoll event loop)")
	os.Exit(1)
}
