// Package codec holds pushd's pure functions over bytes: the HTTP upgrade
// request parser and its responses (RFC 6455 §4), WebSocket frame headers,
// masking, close payloads and UTF-8 validation (§5–§8), and the JSON
// messages of pushd's client protocol v1 (docs/protocol.md).
//
// Nothing here does I/O, starts goroutines or keeps global mutable state, so
// every function may be called from any goroutine. Hot-path functions take a
// caller's buffer (Append*) and do not allocate.
package codec
