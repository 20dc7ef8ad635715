package codec

import (
	"bytes"
	"strings"
	"testing"
)

func TestEIORelayRequest(t *testing.T) {
	for _, tt := range []struct {
		in   string
		op   byte
		body string
		err  error
	}{
		{"G", EIORelayPoll, "", nil},
		{"R", EIORelayRecover, "", nil},
		{"Rx", 0, "", ErrEIORelay},
		{"P", EIORelayPost, "", nil},
		{"P40\x1e3", EIORelayPost, "40\x1e3", nil},
		{"", 0, "", ErrEIORelay},
		{"Gx", 0, "", ErrEIORelay},
		{"X", EIORelayDropped, "", nil},
		{"Xx", 0, "", ErrEIORelay},
		{"Z", 0, "", ErrEIORelay},
		{"g", 0, "", ErrEIORelay},
	} {
		op, body, err := ParseEIORelayRequest([]byte(tt.in))
		if op != tt.op || string(body) != tt.body || err != tt.err {
			t.Errorf("%q: %q %q %v, want %q %q %v", tt.in, op, body, err, tt.op, tt.body, tt.err)
		}
		if err == nil {
			if re := AppendEIORelayRequest(nil, op, body); string(re) != tt.in {
				t.Errorf("%q re-encoded as %q", tt.in, re)
			}
		}
	}
}

func TestEIORelayReply(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want EIORelayReply
		err  error
	}{
		{"D", EIORelayReply{Kind: EIORelayPayload, Payload: []byte{}}, nil},
		{"D2\x1e42[\"message\",{}]", EIORelayReply{Kind: EIORelayPayload, Payload: []byte("2\x1e42[\"message\",{}]")}, nil},
		{"K", EIORelayReply{Kind: EIORelayOK}, nil},
		{"E1", EIORelayReply{Kind: EIORelayError, Code: EIOCodeUnknownSID}, nil},
		{"E5", EIORelayReply{Kind: EIORelayError, Code: EIOCodeUnsupportedProtocolVersion}, nil},
		{"E6", EIORelayReply{}, ErrEIORelay},
		{"E", EIORelayReply{}, ErrEIORelay},
		{"E12", EIORelayReply{}, ErrEIORelay},
		{"Kx", EIORelayReply{}, ErrEIORelay},
		{"", EIORelayReply{}, ErrEIORelay},
		{"Z", EIORelayReply{}, ErrEIORelay},
	} {
		got, err := ParseEIORelayReply([]byte(tt.in))
		if got.Kind != tt.want.Kind || !bytes.Equal(got.Payload, tt.want.Payload) || got.Code != tt.want.Code || err != tt.err {
			t.Errorf("%q: %+v %v, want %+v %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	for _, tt := range []struct {
		anon    bool
		subject string
		topics  []string
		wire    string
	}{
		{true, "", nil, "Sa0:"},
		{false, "alice", []string{"user.alice", "news"}, "Su5:aliceuser.alice,news"},
		{false, "a,b:c", []string{"x"}, "Su5:a,b:cx"},
	} {
		b := AppendEIORelayState(nil, tt.anon, tt.subject, tt.topics)
		if string(b) != tt.wire {
			t.Errorf("state %q, want %q", b, tt.wire)
		}
		r, err := ParseEIORelayReply(b)
		if err != nil || r.Kind != EIORelayState || r.Anonymous != tt.anon || r.Subject != tt.subject || strings.Join(r.Topics, "|") != strings.Join(tt.topics, "|") {
			t.Errorf("%q: %+v %v", b, r, err)
		}
	}
	for _, bad := range []string{"S", "Sa", "Sx0:", "Su:", "Su01:a", "Su9:abc", "Su1:a,", "Su1:abad..topic", "Su1:ax,,y", "Su1234567:a"} {
		if r, err := ParseEIORelayReply([]byte(bad)); err != ErrEIORelay {
			t.Errorf("%q: %+v %v, want ErrEIORelay", bad, r, err)
		}
	}
	if b := AppendEIORelayError(nil, EIOCodeBadRequest); string(b) != "E3" {
		t.Errorf("error reply %q", b)
	}
	if b := AppendEIORelayOK(AppendEIORelayPayload(nil, []byte("6"))); string(b) != "D6K" {
		t.Errorf("payload then ok %q", b)
	}
}

func TestEIOErrorBody(t *testing.T) {
	for code, want := range map[int]string{
		EIOCodeUnknownTransport: EIOErrUnknownTransport, EIOCodeUnknownSID: EIOErrUnknownSID,
		EIOCodeBadHandshakeMethod: EIOErrBadHandshakeMethod, EIOCodeBadRequest: EIOErrBadRequest,
		EIOCodeForbidden: EIOErrForbidden, EIOCodeUnsupportedProtocolVersion: EIOErrUnsupportedProtocolVersion,
		99: EIOErrBadRequest,
	} {
		status, body := EIOErrorBody(code)
		if body != want || (status == 403) != (code == EIOCodeForbidden) || status != 400 && status != 403 {
			t.Errorf("code %d: %d %s", code, status, body)
		}
	}
}

func BenchmarkEIORelay(b *testing.B) {
	body := []byte(`42["subscribe",["a","b"]]` + "\x1e3")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		req := AppendEIORelayRequest(buf[:0], EIORelayPost, body)
		if _, _, err := ParseEIORelayRequest(req); err != nil {
			b.Fatal(err)
		}
		rep := AppendEIORelayPayload(buf[:0], body)
		if _, err := ParseEIORelayReply(rep); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzEIORelay decodes relay requests and replies: whole messages, and
// messages built from pieces of the input (a request's body arrives as
// one POST payload however the client's bytes were split). A message that
// parses re-encodes to itself, and nothing panics.
func FuzzEIORelay(f *testing.F) {
	f.Add([]byte("G"), []byte{})
	f.Add([]byte("P40{\"token\":\"x\"}\x1e3"), []byte{3, 9})
	f.Add([]byte("D2\x1e6"), []byte{1})
	f.Add([]byte("E1"), []byte{1, 1})
	f.Add([]byte("K"), []byte{})
	f.Add([]byte("E9"), []byte{})
	f.Add([]byte("R"), []byte{})
	f.Add([]byte("Su5:aliceuser.alice,news"), []byte{2, 4})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		checkRelayMessage(t, data)
		var joined []byte
		for _, piece := range rqPieces(data, cuts) {
			joined = append(joined, piece...)
			checkRelayMessage(t, joined)
		}
		if !bytes.Equal(joined, data) {
			t.Fatalf("pieces joined %q, want %q", joined, data)
		}
	})
}

func checkRelayMessage(t *testing.T, p []byte) {
	t.Helper()
	if op, body, err := ParseEIORelayRequest(p); err == nil {
		if re := AppendEIORelayRequest(nil, op, body); !bytes.Equal(re, p) {
			t.Fatalf("request %q re-encoded as %q", p, re)
		}
	} else if err != ErrEIORelay {
		t.Fatalf("request %q: %v", p, err)
	}
	r, err := ParseEIORelayReply(p)
	if err != nil {
		if err != ErrEIORelay || r.Kind != 0 {
			t.Fatalf("reply %q: %+v %v", p, r, err)
		}
		return
	}
	var re []byte
	switch r.Kind {
	case EIORelayPayload:
		re = AppendEIORelayPayload(nil, r.Payload)
	case EIORelayOK:
		re = AppendEIORelayOK(nil)
	case EIORelayError:
		re = AppendEIORelayError(nil, r.Code)
	case EIORelayState:
		re = AppendEIORelayState(nil, r.Anonymous, r.Subject, r.Topics)
	default:
		t.Fatalf("reply %q: kind %q", p, r.Kind)
	}
	if !bytes.Equal(re, p) {
		t.Fatalf("reply %q re-encoded as %q", p, re)
	}
}
