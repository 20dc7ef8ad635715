// Package bench holds pushd's cross-package benchmarks. They run the real
// engine in the benchmark process and their WebSocket clients in a child
// process (the test binary re-executed in client mode), so that the
// server's CPU time, allocations and memory are measured apart from the
// clients'. Run them with
//
//	go test -run '^$' -bench . -benchtime 200x ./bench
//
// and see docs/benchmarks.md for recorded figures. The reference
// goroutine-per-connection hub used for comparisons lives in bench/refhub.
package bench
