package codec_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/pushd/pushd/codec"
)

// refValidCloseCodes is the reference list of codes a close frame may carry,
// written out from RFC 6455 §7.4.1, §7.4.2 and the IANA "WebSocket Close Code
// Number Registry" (1012 Service Restart, 1013 Try Again Later, 1014 Bad
// Gateway).
func refValidCloseCode(code codec.StatusCode) bool {
	switch code {
	case 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014:
		return true
	}
	return code >= 3000 && code < 5000
}

func TestValidCloseCode(t *testing.T) {
	named := []struct {
		code codec.StatusCode
		want bool
	}{
		{0, false}, {999, false}, {1000, true}, {1003, true},
		{1004, false}, {1005, false}, {1006, false},
		{1007, true}, {1011, true}, {1012, true}, {1014, true},
		{1015, false}, {1016, false}, {1100, false}, {2000, false}, {2999, false},
		{3000, true}, {3999, true}, {4000, true}, {4999, true},
		{5000, false}, {65535, false},
	}
	for _, tt := range named {
		t.Run(strconv.Itoa(int(tt.code)), func(t *testing.T) {
			if got := codec.ValidCloseCode(tt.code); got != tt.want {
				t.Fatalf("ValidCloseCode(%d) = %v, want %v", tt.code, got, tt.want)
			}
		})
	}
	t.Run("all", func(t *testing.T) {
		for c := range 1 << 16 {
			code := codec.StatusCode(c)
			if got, want := codec.ValidCloseCode(code), refValidCloseCode(code); got != want {
				t.Fatalf("ValidCloseCode(%d) = %v, want %v", c, got, want)
			}
		}
	})
	t.Run("pushd codes", func(t *testing.T) {
		for _, code := range []codec.StatusCode{
			codec.StatusNormal, codec.StatusGoingAway, codec.StatusProtocolError, codec.StatusUnsupportedData,
			codec.StatusInvalidPayload, codec.StatusPolicyViolation, codec.StatusMessageTooBig,
			codec.StatusMandatoryExt, codec.StatusInternalError, codec.StatusServiceRestart,
			codec.StatusTryAgainLater, codec.StatusSlowConsumer, codec.StatusHeartbeatTimeout,
			codec.StatusTokenExpired, codec.StatusUnauthorized, codec.StatusForbidden,
		} {
			if !codec.ValidCloseCode(code) {
				t.Errorf("pushd sends %d but ValidCloseCode rejects it", code)
			}
		}
	})
}

func TestParseClosePayload(t *testing.T) {
	tests := []struct {
		name       string
		p          []byte
		wantCode   codec.StatusCode
		wantReason string
		wantErr    error
	}{
		{"empty", nil, codec.StatusNoStatus, "", nil},
		{"one byte", []byte{0x03}, 0, "", codec.ErrBadCloseLength},
		{"1000 no reason", []byte{0x03, 0xe8}, 1000, "", nil},
		{"1001 reason", []byte("\x03\xe9bye"), 1001, "bye", nil},
		{"4999 utf8 reason", []byte("\x13\x87héllo €𝄞"), 4999, "héllo €𝄞", nil},
		{"3000", []byte{0x0b, 0xb8}, 3000, "", nil},
		{"1014", []byte{0x03, 0xf6}, 1014, "", nil},
		{"code 0", []byte{0x00, 0x00}, 0, "", codec.ErrBadCloseCode},
		{"code 999", []byte{0x03, 0xe7}, 0, "", codec.ErrBadCloseCode},
		{"code 1004", []byte{0x03, 0xec}, 0, "", codec.ErrBadCloseCode},
		{"code 1005", []byte{0x03, 0xed}, 0, "", codec.ErrBadCloseCode},
		{"code 1006", []byte{0x03, 0xee}, 0, "", codec.ErrBadCloseCode},
		{"code 1015", []byte{0x03, 0xf7}, 0, "", codec.ErrBadCloseCode},
		{"code 1016", []byte{0x03, 0xf8}, 0, "", codec.ErrBadCloseCode},
		{"code 2999", []byte{0x0b, 0xb7}, 0, "", codec.ErrBadCloseCode},
		{"code 5000", []byte{0x13, 0x88}, 0, "", codec.ErrBadCloseCode},
		{"code 65535", []byte{0xff, 0xff, 'x'}, 0, "", codec.ErrBadCloseCode},
		{"bad code wins over bad utf8", []byte{0x03, 0xed, 0xff}, 0, "", codec.ErrBadCloseCode},
		{"invalid utf8", []byte{0x03, 0xe8, 0xff}, 0, "", codec.ErrInvalidUTF8},
		{"surrogate", []byte{0x03, 0xe8, 0xed, 0xa0, 0x80}, 0, "", codec.ErrInvalidUTF8},
		{"truncated rune", []byte{0x03, 0xe8, 'o', 'k', 0xe2, 0x82}, 0, "", codec.ErrInvalidUTF8},
		{"overlong", []byte{0x03, 0xe8, 0xc0, 0xaf}, 0, "", codec.ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := codec.ParseClosePayload(tt.p)
			if code != tt.wantCode || string(reason) != tt.wantReason || err != tt.wantErr {
				t.Fatalf("ParseClosePayload(% x) = %d, %q, %v; want %d, %q, %v",
					tt.p, code, reason, err, tt.wantCode, tt.wantReason, tt.wantErr)
			}
			if err == nil && len(tt.p) >= 2 && len(reason) > 0 && &reason[0] != &tt.p[2] {
				t.Error("reason does not alias p")
			}
		})
	}
}

func TestAppendClosePayload(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name       string
		reason     string
		wantReason string
	}{
		{"empty", "", ""},
		{"short", "bye", "bye"},
		{"exactly 123", a(123), a(123)},
		{"124 ascii", a(124), a(123)},
		{"long ascii", a(1000), a(123)},
		{"2-byte rune fits", a(121) + "é", a(121) + "é"},
		{"2-byte rune straddles", a(122) + "é", a(122)},
		{"3-byte rune fits", a(120) + "€", a(120) + "€"},
		{"3-byte rune straddles by 1", a(121) + "€", a(121)},
		{"3-byte rune straddles by 2", a(122) + "€x", a(122)},
		{"4-byte rune fits", a(119) + "𝄞", a(119) + "𝄞"},
		{"4-byte rune straddles", a(120) + "𝄞", a(120)},
		{"all multibyte", strings.Repeat("€", 50), strings.Repeat("€", 41)},
		{"literal U+FFFD kept", "a\uFFFDb", "a\uFFFDb"},
		{"invalid byte dropped with the rest", "ab\xffcd", "ab"},
		{"truncated rune dropped", "ok\xe2\x82", "ok"},
		{"surrogate dropped", "x\xed\xa0\x80y", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := codec.AppendClosePayload([]byte("pre"), codec.StatusGoingAway, tt.reason)
			if !bytes.HasPrefix(p, []byte("pre")) {
				t.Fatalf("prefix overwritten: %q", p)
			}
			p = p[3:]
			if len(p) > ws.MaxControlFramePayloadSize {
				t.Fatalf("payload is %d bytes, over the control frame limit", len(p))
			}
			code, reason, err := codec.ParseClosePayload(p)
			if err != nil || code != codec.StatusGoingAway || string(reason) != tt.wantReason {
				t.Fatalf("ParseClosePayload(AppendClosePayload) = %d, %q, %v; want 1001, %q", code, reason, err, tt.wantReason)
			}
		})
	}
}

func TestAppendCloseFrame(t *testing.T) {
	tests := []struct {
		name   string
		code   codec.StatusCode
		reason string
	}{
		{"normal", codec.StatusNormal, ""},
		{"going away", codec.StatusGoingAway, "server restart"},
		{"pushd code", codec.StatusSlowConsumer, "slow consumer"},
		{"long reason", codec.StatusPolicyViolation, strings.Repeat("ü", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := codec.AppendCloseFrame([]byte("pre"), tt.code, tt.reason)[3:]
			h, n, err := codec.ParseHeader(frame)
			if err != nil || !h.Fin || h.OpCode != ws.OpClose || h.Masked || h.Rsv != 0 {
				t.Fatalf("header %+v, %v: want FIN close, unmasked", h, err)
			}
			body := frame[n:]
			if int64(len(body)) != h.Length || len(body) > ws.MaxControlFramePayloadSize {
				t.Fatalf("header length %d, body %d bytes", h.Length, len(body))
			}
			if want := codec.AppendClosePayload(nil, tt.code, tt.reason); !bytes.Equal(body, want) {
				t.Fatalf("body % x, want % x", body, want)
			}
			// gobwas's body encoder agrees whenever it needs no truncation.
			if len(tt.reason) <= 123 {
				if want := ws.NewCloseFrameBody(ws.StatusCode(tt.code), tt.reason); !bytes.Equal(body, want) {
					t.Fatalf("body % x, ws.NewCloseFrameBody % x", body, want)
				}
			}
		})
	}
	t.Run("no status", func(t *testing.T) {
		frame := codec.AppendCloseFrame(nil, codec.StatusNoStatus, "ignored")
		if want := []byte{0x88, 0x00}; !bytes.Equal(frame, want) {
			t.Fatalf("AppendCloseFrame(StatusNoStatus) = % x, want % x", frame, want)
		}
		code, reason, err := codec.ParseClosePayload(frame[2:])
		if code != codec.StatusNoStatus || reason != nil || err != nil {
			t.Fatalf("empty body parses as %d, %q, %v", code, reason, err)
		}
	})
}

func TestClosePayloadAllocs(t *testing.T) {
	body := codec.AppendClosePayload(nil, codec.StatusNormal, "bye")
	buf := make([]byte, 0, 128)
	long := strings.Repeat("€", 60)
	var sink int
	tests := []struct {
		name string
		f    func()
	}{
		{"ParseClosePayload", func() {
			c, r, _ := codec.ParseClosePayload(body)
			sink += int(c) + len(r)
		}},
		{"AppendClosePayload", func() { buf = codec.AppendClosePayload(buf[:0], codec.StatusNormal, long) }},
		{"AppendCloseFrame", func() { buf = codec.AppendCloseFrame(buf[:0], codec.StatusNormal, long) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(100, tt.f); a != 0 {
				t.Fatalf("%v allocs/op, want 0", a)
			}
		})
	}
	_ = sink
	if !utf8.Valid(buf[4:]) {
		t.Fatal("truncated reason is not valid UTF-8")
	}
}

func BenchmarkClosePayload(b *testing.B) {
	body := codec.AppendClosePayload(nil, codec.StatusGoingAway, "server shutting down")
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, err := codec.ParseClosePayload(body)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append-frame", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 128)
		for b.Loop() {
			buf = codec.AppendCloseFrame(buf[:0], codec.StatusGoingAway, "server shutting down")
		}
	})
}
