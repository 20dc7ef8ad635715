package sio

import (
	"testing"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/session"
	"github.com/pushd/pushd/topics"
)

// sentPeer is a session.Peer that keeps what it is sent.
type sentPeer struct {
	sent []string
	shut bool
}

func (p *sentPeer) Deliver(*topics.Message)        {}
func (p *sentPeer) Send(b []byte) bool             { p.sent = append(p.sent, string(b)); return !p.shut }
func (p *sentPeer) Close(codec.StatusCode, string) { p.shut = true }
func (p *sentPeer) Open() bool                     { return !p.shut }

var _ session.Peer = (*sentPeer)(nil)

// TestHeldAnswers: an answer held for later is sent once: by settle when
// its outcome comes, or by answerHeld when the session leaves the loop
// first (then settle reports it was sent); forget drops what a closed
// session held; events without an ack id hold nothing.
func TestHeldAnswers(t *testing.T) {
	h := &handler{metrics: &session.Metrics{}}
	var a, b socket
	h.hold(&a, 1)
	h.hold(&a, 2)
	h.hold(&b, 1)
	h.hold(&a, -1)
	if !h.settle(&a, 2) || h.settle(&a, 2) {
		t.Fatal("settle: a held answer is taken exactly once")
	}
	if !h.settle(&a, -1) {
		t.Fatal("settle: an event without an ack id always answers (a failure as an error event)")
	}
	p := &sentPeer{}
	h.answerHeld(p, &a)
	if len(p.sent) != 1 || p.sent[0] != `431[{"ok":true}]` {
		t.Fatalf("answerHeld sent %q", p.sent)
	}
	if h.settle(&a, 1) {
		t.Fatal("settle after answerHeld: answered twice")
	}
	h.forget(&b)
	if h.settle(&b, 1) || len(h.held) != 0 {
		t.Fatalf("after forget: held %v", h.held)
	}
}
