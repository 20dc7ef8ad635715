// Package auth decides who may connect to pushd and what each connection may
// do, and holds the small, pure building blocks of pushd's abuse limits.
//
//   - Verifier checks a client's JWT (HS256, RS256, ES256 or EdDSA, keys
//     selected by kid) and turns it into an Identity: the subject, the
//     expiry, and the topic patterns it may subscribe and publish to.
//   - TokenFrom finds the token in a request (Authorization header,
//     ?token= query parameter, Sec-WebSocket-Protocol, or the pushd_token
//     cookie) and says which subprotocol to echo back — never the token.
//   - OriginPolicy is the Origin allowlist that stops cross-site WebSocket
//     hijacking.
//   - RedactQuery, RedactHeader and RedactingHandler keep secrets out of
//     logs.
//   - PerIPCounter, TrustedProxies and RetryAfterSeconds are the per-IP,
//     forwarded-address and Retry-After pieces the engine uses before it
//     allocates any per-connection state. The accept rate is a
//     golang.org/x/time/rate.Limiter in the engine itself.
//
// Nothing here does I/O after construction, starts goroutines, or knows gnet
// or NATS. Every type is safe for concurrent use once built, so one instance
// serves every event loop. docs/security.md describes the token format, the
// threat model and the limits.
package auth
