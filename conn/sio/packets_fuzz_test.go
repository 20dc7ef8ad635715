package sio

import (
	"bytes"
	"testing"
	"time"

	gobwas "github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/session"
)

// FuzzPackets feeds arbitrary Engine.IO packets, one text frame each (the
// fuzz input split at 0x1e, the polling separator), to a connection that
// has joined the namespace with a token. Whatever the client sends, the
// server must not panic, must answer each packet with at most one packet
// (plus the DISCONNECT and close that end a connection), and every packet
// it writes must parse as Engine.IO and, if a message, as Socket.IO.
func FuzzPackets(f *testing.F) {
	for _, s := range []string{
		`421["subscribe",["a"]]`, "3\x1e6\x1e1", `42["publish",{"topic":"allowed","data":1}]`,
		`451-3["x",{"_placeholder":true,"num":0}]`, "40\x1e40/x,", `42["error"]`, "2probe", "4", "",
		`4299999999999999999999["subscribe","a"]`, `42["subscribe",{"topics":{"topics":[]}}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<14 {
			return
		}
		l := newTestLoop(Config{}, tokenAdmission(time.Time{}), session.Config{Publish: func(string, []byte) error { return nil }})
		cl := l.connect(t, `{"token":"good"}`)
		for rest := in; ; {
			pkt, tail, more := codec.NextEIOPacket(rest)
			if cl.c.State() != conn.StateOpen {
				break
			}
			cl.send(string(pkt))
			checkServerPackets(t, cl, pkt)
			if !more {
				break
			}
			rest = tail
		}
	})
}

// checkServerPackets reads what the server wrote after the client packet
// in and checks it.
func checkServerPackets(t *testing.T, cl *client, in []byte) {
	t.Helper()
	packets := 0
	for {
		op, p, ok := cl.next()
		if !ok {
			break
		}
		switch op {
		case gobwas.OpClose:
			if _, _, err := codec.ParseClosePayload(p); err != nil {
				t.Fatalf("after %q: bad close payload %q", in, p)
			}
			if _, _, ok := cl.next(); ok {
				t.Fatalf("after %q: a frame after the close", in)
			}
			return
		case gobwas.OpText:
		default:
			t.Fatalf("after %q: server frame op %v", in, op)
		}
		packets++
		typ, _, err := codec.ParseEIOPacket(p)
		if err != nil {
			t.Fatalf("after %q: server packet %q: %v", in, p, err)
		}
		if typ == codec.EIOMessage {
			if _, err := codec.ParseSIOPacket(p); err != nil {
				t.Fatalf("after %q: server packet %q: %v", in, p, err)
			}
		}
		if packets > 2 || packets == 2 && !bytes.Equal(p, disconnectPacket) && !bytes.HasPrefix(p, []byte("2")) {
			t.Fatalf("after %q: %d packets, the last %q", in, packets, p)
		}
	}
}
