// Package codec holds pushd's pure functions over bytes:
//
//   - HTTP/1.1: the request-head parser ParseRequest for every request on
//     the WebSocket port, CheckUpgrade to validate a WebSocket upgrade
//     (RFC 6455 §4) and its responses; response builders (AppendResponse, AppendResponseHead,
//     AppendHTTPError and its keep-alive variant); CookieValue (RFC 6265).
//   - WebSocket frames: headers, masking, close payloads and UTF-8
//     validation (RFC 6455 §5–§8).
//   - pushd's client protocol v1, JSON messages (docs/protocol.md).
//   - Engine.IO protocol 4 packets and long-polling payloads, and Socket.IO
//     protocol 5 packets (EIO*, SIO*), text only: binary packets are
//     recognised and refused with their own errors.
//   - Server-Sent Events (WHATWG HTML §9.2): events, comments, retry and the
//     event-stream response head (SSE*).
//
// Parsers of bytes that arrive in pieces (ParseRequest, ParseHeader) answer ErrNeedMore or ErrShortHeader until they have enough,
// and their answer never depends on how the stream was split. Rejections
// carry the answer to send: *HandshakeError (alias HTTPError) the HTTP
// status, *CloseError the close code, *ProtoError the protocol error.
//
// Nothing here does I/O, starts goroutines or keeps global mutable state, so
// every function may be called from any goroutine. Hot-path functions take a
// caller's buffer (Append*) and do not allocate; decoders return slices of
// their input where they can.
package codec
