// Package wsclient is the harness's WebSocket client: one epoll event loop
// drives many client connections with no goroutine per connection.
//
// Why an event loop: the harness and the server under test share a 2-core
// machine, and the client must hold tens of thousands of sockets while
// costing the server as little CPU and memory as possible. A goroutine per
// connection costs at least its stack (2–8 KB) plus a read buffer; here a
// connection is a 152-byte Conn plus the harness's 40-byte slot, and the
// loop reads every socket into one shared buffer. Bytes are copied out
// only when a frame is split across reads.
//
// Measured on the 2-core development machine (every run prints its own
// figures on the "harness:" line): 19,000 idle connections in two worker
// processes grew the harness's RSS by 618 B per connection; receiving
// 250,000 deliveries/s from 5,000 subscribers cost about 0.55 CPU, 85 % of
// it in read(2) itself (one read per socket per wake-up is the floor for
// TCP), and a 200-message burst was received at 2.2 M deliveries/s.
//
// A Loop owns its connections: every Conn method and every Handler callback
// runs on the loop's goroutine. Other goroutines hand work to the loop with
// Loop.Execute. Dials are non-blocking connect(2)s, so a reconnect storm of
// thousands of clients needs no goroutines either; MaxInflight bounds the
// handshakes in progress so that a storm measures the server and not the
// listen backlog overflowing.
//
// The client implements what RFC 6455 asks of a client: it masks every
// frame with a fresh key (§5.3), answers pings with pongs carrying the same
// payload (§5.5.3), echoes a server's close frame and waits for the server
// to close the TCP connection first (§5.5.1, §7.1.1), rejects masked server
// frames (§5.1) and checks Sec-WebSocket-Accept (§4.1). It offers no
// extensions and no subprotocols, and speaks ws:// only (no TLS).
//
// The event loop needs Linux (epoll, eventfd).
package wsclient
