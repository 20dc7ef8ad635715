package conn

import (
	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
)

// echoHandler sends every complete data message back with its opcode. It
// serves RFC 6455 conformance suites and is off unless configured.
type echoHandler struct{}

func (echoHandler) Open(*Conn, *codec.Request) {}

func (echoHandler) Message(c *Conn, op ws.OpCode, p []byte) { c.writeFrame(op, p) }

func (echoHandler) Closed(*Conn) {}
