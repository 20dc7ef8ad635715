package codec_test

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	kflate "github.com/klauspost/compress/flate"

	"github.com/pushd/pushd/codec"
)

// Offers captured from real clients. Chrome (and every Chromium browser) and
// npm ws with its defaults send the same offer; Firefox offers the extension
// with no parameters; gorilla/websocket's Dialer with EnableCompression asks
// for no context takeover both ways (client.go:239 in v1.5.3).
const (
	offerChrome  = "permessage-deflate; client_max_window_bits"
	offerFirefox = "permessage-deflate"
	offerWS      = "permessage-deflate; client_max_window_bits"
	offerGorilla = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	// npm ws with every perMessageDeflate option set (PerMessageDeflate.offer).
	offerWSAll = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"

	respBase = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
)

func TestNegotiateDeflate(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string // response; "" means declined
		bits   int    // ServerMaxWindowBits when accepted
	}{
		{"chrome", []string{offerChrome}, respBase, 15},
		{"firefox", []string{offerFirefox}, respBase, 15},
		{"npm ws", []string{offerWS}, respBase, 15},
		{"gorilla", []string{offerGorilla}, respBase, 15},
		{"npm ws all options", []string{offerWSAll}, respBase + "; server_max_window_bits=10", 10},
		{"safari 2014 frame extension only", []string{"x-webkit-deflate-frame"}, "", 0},
		{"none", nil, "", 0},
		{"empty value", []string{""}, "", 0},

		// Window sizes (§7.1.2.1, §7.1.2.2).
		{"server bits 8", []string{"permessage-deflate; server_max_window_bits=8"}, respBase + "; server_max_window_bits=8", 8},
		{"server bits 15", []string{"permessage-deflate; server_max_window_bits=15"}, respBase + "; server_max_window_bits=15", 15},
		{"server bits 7", []string{"permessage-deflate; server_max_window_bits=7"}, "", 0},
		{"server bits 16", []string{"permessage-deflate; server_max_window_bits=16"}, "", 0},
		{"server bits valueless", []string{"permessage-deflate; server_max_window_bits"}, "", 0},
		{"server bits leading zero", []string{"permessage-deflate; server_max_window_bits=09"}, "", 0},
		{"server bits 100", []string{"permessage-deflate; server_max_window_bits=100"}, "", 0},
		{"server bits sign", []string{"permessage-deflate; server_max_window_bits=+9"}, "", 0},
		{"server bits quoted", []string{`permessage-deflate; server_max_window_bits="12"`}, respBase + "; server_max_window_bits=12", 12},
		{"server bits escaped", []string{`permessage-deflate; server_max_window_bits="1\2"`}, respBase + "; server_max_window_bits=12", 12},
		{"server bits quoted empty", []string{`permessage-deflate; server_max_window_bits=""`}, "", 0},
		{"server bits quoted space", []string{`permessage-deflate; server_max_window_bits=" 12"`}, "", 0},
		{"server bits empty", []string{`permessage-deflate; server_max_window_bits=`}, "", 0},
		{"client bits 8", []string{"permessage-deflate; client_max_window_bits=8"}, respBase, 15},
		{"client bits 15 quoted", []string{`permessage-deflate; client_max_window_bits="15"`}, respBase, 15},
		{"client bits 16", []string{"permessage-deflate; client_max_window_bits=16"}, "", 0},
		{"client bits 0", []string{"permessage-deflate; client_max_window_bits=0"}, "", 0},
		{"both bits", []string{"permessage-deflate; client_max_window_bits; server_max_window_bits=9"}, respBase + "; server_max_window_bits=9", 9},

		// Parameters that must not be there, or not twice (§7).
		{"unknown parameter", []string{"permessage-deflate; foo"}, "", 0},
		{"unknown parameter with value", []string{"permessage-deflate; mem_level=8"}, "", 0},
		{"duplicate", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, "", 0},
		{"duplicate bits", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, "", 0},
		{"no context with value", []string{"permessage-deflate; server_no_context_takeover=1"}, "", 0},
		{"client no context with quoted value", []string{`permessage-deflate; client_no_context_takeover=""`}, "", 0},

		// Fallbacks: the first acceptable offer wins (§5, §7).
		{"fallback after bad bits", []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"}, respBase, 15},
		{"first of two good", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, respBase + "; server_max_window_bits=10", 10},
		{"after another extension", []string{"foo; bar=\"a,b\", permessage-deflate"}, respBase, 15},
		{"two header values", []string{"x-foo", "permessage-deflate; server_max_window_bits=11"}, respBase + "; server_max_window_bits=11", 11},
		{"split over values", []string{"permessage-deflate; server_max_window_bits=7", " permessage-deflate"}, respBase, 15},

		// Syntax (RFC 6455 §9.1, RFC 7230 §3.2.6, §7).
		{"case", []string{"PerMessage-Deflate; Server_Max_Window_Bits=10; CLIENT_MAX_WINDOW_BITS"}, respBase + "; server_max_window_bits=10", 10},
		{"spaces and tabs", []string{" \tpermessage-deflate \t; \tserver_max_window_bits \t= \t13 \t"}, respBase + "; server_max_window_bits=13", 13},
		{"no spaces", []string{"permessage-deflate;client_no_context_takeover;server_max_window_bits=14"}, respBase + "; server_max_window_bits=14", 14},
		{"empty elements", []string{" , ,permessage-deflate,,"}, respBase, 15},
		{"trailing semicolon", []string{"permessage-deflate;"}, "", 0},
		{"missing semicolon", []string{"permessage-deflate client_max_window_bits"}, "", 0},
		{"empty parameter name", []string{"permessage-deflate; =10"}, "", 0},
		{"double equals", []string{"permessage-deflate; server_max_window_bits==10"}, "", 0},
		{"unterminated quote swallows the rest", []string{`permessage-deflate; server_max_window_bits="10, permessage-deflate`}, "", 0},
		{"quote in another extension", []string{`foo; x="a\"b, c", permessage-deflate`}, respBase, 15},
		{"name prefix", []string{"permessage-deflatex"}, "", 0},
		{"name then quote", []string{`permessage-deflate"x"`}, "", 0},
		{"token after value", []string{"permessage-deflate; server_max_window_bits=10 11"}, "", 0},
		{"obs-text", []string{"permessage-deflate; client_max_window_bits=\xff"}, "", 0},
		{"x-webkit then deflate", []string{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"}, respBase, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := codec.NegotiateDeflate(tt.values)
			if got.Accepted != (tt.want != "") || got.Response != tt.want {
				t.Fatalf("NegotiateDeflate(%q) = %+v, want response %q", tt.values, got, tt.want)
			}
			if got.Accepted && got.ServerMaxWindowBits != tt.bits {
				t.Fatalf("ServerMaxWindowBits = %d, want %d", got.ServerMaxWindowBits, tt.bits)
			}
			ref := refNegotiateDeflate(strings.Join(tt.values, ","))
			if ref.Response != got.Response {
				t.Fatalf("reference negotiator answers %q", ref.Response)
			}
			if got.Accepted {
				checkClientAcceptsResponse(t, tt.values, got.Response)
			}
		})
	}
}

// checkClientAcceptsResponse checks resp against the client rules that
// clients enforce (RFC 7692 §7.1; Chromium's
// websocket_deflate_parameters.cc, npm ws's acceptAsClient): every
// parameter is known and single; server_max_window_bits has a value 8..15,
// no greater than offered; client_max_window_bits only if the offer had it.
// Some offer of the list must accept it.
func checkClientAcceptsResponse(t *testing.T, values []string, resp string) {
	t.Helper()
	rp, ok := refParseElement(resp)
	if !ok || rp.name != "permessage-deflate" {
		t.Fatalf("response %q does not parse as permessage-deflate", resp)
	}
	for _, elem := range refSplitList(strings.Join(values, ",")) {
		op, ok := refParseElement(elem)
		if !ok || op.name != "permessage-deflate" {
			continue
		}
		if refClientAccepts(op, rp) {
			return
		}
	}
	t.Fatalf("no offer in %q accepts response %q", values, resp)
}

// refElement is an extension element parsed by the reference parser.
type refElement struct {
	name   string
	params []refParam
}

type refParam struct {
	name, value string
	hasValue    bool
}

func refClientAccepts(offer, resp refElement) bool {
	offered := map[string]refParam{}
	for _, p := range offer.params {
		offered[p.name] = p
	}
	seen := map[string]bool{}
	for _, p := range resp.params {
		if seen[p.name] {
			return false
		}
		seen[p.name] = true
		switch p.name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.hasValue {
				return false
			}
		case "server_max_window_bits":
			v, err := strconv.Atoi(p.value)
			if !p.hasValue || err != nil || v < 8 || v > 15 {
				return false
			}
			if o, ok := offered[p.name]; ok {
				if ov, _ := strconv.Atoi(o.value); v > ov {
					return false
				}
			}
		case "client_max_window_bits":
			o, ok := offered[p.name]
			v, err := strconv.Atoi(p.value)
			if !ok || !p.hasValue || err != nil || v < 8 || v > 15 {
				return false
			}
			if o.hasValue {
				if ov, _ := strconv.Atoi(o.value); v > ov {
					return false
				}
			}
		default:
			return false
		}
	}
	// A client that asked for a window must see it answered (§7.1.2.1).
	if _, asked := offered["server_max_window_bits"]; asked && !seen["server_max_window_bits"] {
		return false
	}
	return true
}

// The reference negotiator: the same rules as NegotiateDeflate written the
// naive way, with regular expressions and maps.
var (
	refTokenRE   = `[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+`
	refQuotedRE  = `"(?:[\t !#-\[\]-~\x{80}-\x{10FFFF}]|\\[\t -~\x{80}-\x{10FFFF}])*"`
	refParamRE   = `(` + refTokenRE + `)[ \t]*(?:(=)[ \t]*(` + refTokenRE + `|` + refQuotedRE + `))?`
	refElementRE = regexp.MustCompile(`^[ \t]*(` + refTokenRE + `)((?:[ \t]*;[ \t]*` + refParamRE + `)*)[ \t]*$`)
	refParamsRE  = regexp.MustCompile(`;[ \t]*` + refParamRE)
)

// refSplitList splits an extension list at commas outside quoted-strings.
func refSplitList(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for _, c := range []byte(s) {
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(out, cur.String())
}

// refParseElement parses one element; names are lowered, quoted values
// unescaped. ok is false if it is not well formed or a quoted value is
// not a token once unescaped.
func refParseElement(elem string) (e refElement, ok bool) {
	// regexp works on UTF-8; map bytes ≥ 0x80 to a rune that is neither a
	// token character nor a separator but is obs-text in quoted-strings.
	var b strings.Builder
	for _, c := range []byte(elem) {
		if c >= 0x80 {
			b.WriteRune(rune(c))
		} else {
			b.WriteByte(c)
		}
	}
	m := refElementRE.FindStringSubmatch(b.String())
	if m == nil {
		return e, false
	}
	e.name = strings.ToLower(m[1])
	for _, pm := range refParamsRE.FindAllStringSubmatch(m[2], -1) {
		p := refParam{name: strings.ToLower(pm[1]), hasValue: pm[2] == "=", value: pm[3]}
		if strings.HasPrefix(p.value, `"`) {
			var u strings.Builder
			inner := p.value[1 : len(p.value)-1]
			for i := 0; i < len(inner); i++ {
				if inner[i] == '\\' {
					i++
				}
				u.WriteByte(inner[i])
			}
			p.value = u.String()
			if !regexp.MustCompile(`^` + refTokenRE + `$`).MatchString(p.value) {
				return e, false
			}
		}
		e.params = append(e.params, p)
	}
	return e, true
}

// refNegotiateDeflate applies RFC 7692 §7's server rules to the first offer
// that passes them.
func refNegotiateDeflate(list string) codec.DeflateNegotiation {
	for _, elem := range refSplitList(list) {
		e, ok := refParseElement(elem)
		if !ok || e.name != "permessage-deflate" {
			continue
		}
		seen := map[string]bool{}
		bits, good := 0, true
		for _, p := range e.params {
			if seen[p.name] {
				good = false
			}
			seen[p.name] = true
			switch p.name {
			case "server_no_context_takeover", "client_no_context_takeover":
				good = good && !p.hasValue
			case "server_max_window_bits", "client_max_window_bits":
				if !p.hasValue && p.name == "client_max_window_bits" {
					continue
				}
				v, err := strconv.Atoi(p.value)
				if err != nil || v < 8 || v > 15 || strconv.Itoa(v) != p.value {
					good = false
				} else if p.name == "server_max_window_bits" {
					bits = v
				}
			default:
				good = false
			}
		}
		if !good {
			continue
		}
		resp := respBase
		if bits != 0 {
			resp += "; server_max_window_bits=" + strconv.Itoa(bits)
		} else {
			bits = 15
		}
		return codec.DeflateNegotiation{Accepted: true, Response: resp, ServerMaxWindowBits: bits}
	}
	return codec.DeflateNegotiation{}
}

// TestNegotiateDeflateAgainstReference mutates the table's offers at random
// and compares NegotiateDeflate with the reference on each.
func TestNegotiateDeflateAgainstReference(t *testing.T) {
	seeds := []string{offerChrome, offerFirefox, offerGorilla, offerWSAll,
		`permessage-deflate; server_max_window_bits="1\2", x; y="a,b"`, "a, permessage-deflate; client_max_window_bits=9"}
	const alphabet = "permssagdflt-_;=,\" \t\\189015x\xff"
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range seeds {
		for range 3000 {
			p := []byte(s)
			for range 1 + r.IntN(4) {
				switch k := r.IntN(3); {
				case k == 0 && len(p) > 0:
					p[r.IntN(len(p))] = alphabet[r.IntN(len(alphabet))]
				case k == 1:
					j := r.IntN(len(p) + 1)
					p = append(p[:j], append([]byte{alphabet[r.IntN(len(alphabet))]}, p[j:]...)...)
				case len(p) > 0:
					j := r.IntN(len(p))
					p = append(p[:j], p[j+1:]...)
				}
			}
			checkNegotiateDeflate(t, string(p), nil)
		}
	}
}

// checkNegotiateDeflate compares NegotiateDeflate on list with the
// reference, and on list cut into several header values at the commas
// that cuts picks, which must not change the answer (RFC 7230 §3.2.2).
func checkNegotiateDeflate(t *testing.T, list string, cuts []byte) {
	t.Helper()
	got := codec.NegotiateDeflate([]string{list})
	if want := refNegotiateDeflate(list); got != want {
		t.Fatalf("NegotiateDeflate(%q) = %+v, reference %+v", list, got, want)
	}
	if got.Accepted {
		checkClientAcceptsResponse(t, []string{list}, got.Response)
	}
	var values []string
	rest := list
	for _, c := range cuts {
		commas := 0
		i := strings.IndexFunc(rest, func(r rune) bool {
			if r == ',' {
				commas++
				return commas > int(c%4)
			}
			return false
		})
		if i < 0 {
			break
		}
		values = append(values, rest[:i])
		rest = rest[i+1:]
	}
	values = append(values, rest)
	if split := codec.NegotiateDeflate(values); split != got {
		t.Fatalf("NegotiateDeflate(%q) = %+v, but %+v for the whole %q", values, split, got, list)
	}
}

func TestNegotiateDeflateAllocs(t *testing.T) {
	for _, v := range []string{offerChrome, offerWSAll, `permessage-deflate; server_max_window_bits="1\2"`, "x, y; z=1"} {
		values := []string{v}
		if n := testing.AllocsPerRun(100, func() { codec.NegotiateDeflate(values) }); n != 0 {
			t.Errorf("NegotiateDeflate(%q): %v allocs, want 0", v, n)
		}
	}
}

func TestDeflateCompressible(t *testing.T) {
	d := codec.NegotiateDeflate([]string{"permessage-deflate; server_max_window_bits=9"})
	if !d.Compressible(512) || d.Compressible(513) {
		t.Fatalf("window 9: Compressible(512) = %v, Compressible(513) = %v", d.Compressible(512), d.Compressible(513))
	}
	d = codec.NegotiateDeflate([]string{offerChrome})
	if !d.Compressible(32768) || d.Compressible(32769) {
		t.Fatal("window 15: wrong bound")
	}
	if (codec.DeflateNegotiation{}).Compressible(10) {
		t.Fatal("Compressible without the extension")
	}
}

// Push fixtures: a 100-byte ticker push and a 2 KB order-book push, both as
// pushd frames them ({"type":"message",...}).
func pushJSON100() []byte {
	return codec.AppendPush(nil, "ticker.BTC", 123456, []byte(`{"p":97012.5,"q":0.0153,"s":"buy","t":1732230000123}`))
}

func pushJSON2K() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString(`{"bids":[`)
	for i := 0; b.Len() < 1950; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"px":%.2f,"qty":%.4f,"n":%d}`, 97000-float64(i)*0.5-r.Float64()/10, r.Float64()*3, 1+r.IntN(40))
	}
	b.WriteString(`]}`)
	return codec.AppendPush(nil, "book.BTC-USD", 987654, b.Bytes())
}

// deflateSamples are messages of many shapes for round trips.
func deflateSamples() map[string][]byte {
	r := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 70000)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	return map[string][]byte{
		"empty":         {},
		"one byte":      {'x'},
		"hello":         []byte("Hello"),
		"json 100":      pushJSON100(),
		"json 2k":       pushJSON2K(),
		"random 70k":    random,
		"zeros 1m":      make([]byte, 1<<20),
		"text repeated": bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog. "), 3000),
	}
}

// refInflate inflates a permessage-deflate payload with the standard
// library, re-appending the 00 00 ff ff tail the sender removed (RFC 7692
// §7.2.2): it reads exactly want bytes and then expects the stream to end
// there (ErrUnexpectedEOF: the tail leaves it waiting for another block).
func refInflate(t *testing.T, payload []byte, want int) []byte {
	t.Helper()
	fr := stdflate.NewReader(io.MultiReader(bytes.NewReader(payload), strings.NewReader("\x00\x00\xff\xff")))
	out := make([]byte, want)
	if _, err := io.ReadFull(fr, out); err != nil {
		t.Fatalf("compress/flate: %v after the tail was appended", err)
	}
	if n, err := fr.Read(make([]byte, 1)); n != 0 || err != io.ErrUnexpectedEOF {
		t.Fatalf("compress/flate: %d more bytes, %v; want the stream to stop after %d", n, err, want)
	}
	return out
}

func TestDeflaterRoundTrip(t *testing.T) {
	d := codec.NewDeflater()
	f := codec.NewInflater()
	for name, msg := range deflateSamples() {
		t.Run(name, func(t *testing.T) {
			prefix := []byte("prefix")
			payload := d.Compress(append([]byte(nil), prefix...), msg)
			if !bytes.HasPrefix(payload, prefix) {
				t.Fatal("Compress did not append to dst")
			}
			payload = payload[len(prefix):]
			if bytes.HasSuffix(payload, []byte{0, 0, 0xff, 0xff}) && len(msg) > 0 {
				t.Errorf("payload still ends with the sync marker: % x", payload[max(0, len(payload)-8):])
			}
			if got := refInflate(t, payload, len(msg)); !bytes.Equal(got, msg) {
				t.Fatal("compress/flate inflates something else")
			}
			got, err := f.Inflate([]byte("x"), payload, len(msg))
			if err != nil || !bytes.Equal(got[1:], msg) || got[0] != 'x' {
				t.Fatalf("Inflate: %v, %d bytes", err, len(got)-1)
			}
			t.Logf("%d → %d bytes", len(msg), len(payload))
		})
	}
}

// TestDeflaterNoContext compresses the same message twice with one
// Deflater: had the encoder kept its window, the second payload would be a
// few bytes of back-references into the first, which a fresh decoder cannot
// resolve. Each must inflate alone, and both must be the same bytes.
func TestDeflaterNoContext(t *testing.T) {
	d := codec.NewDeflater()
	for name, msg := range deflateSamples() {
		first := d.Compress(nil, msg)
		second := d.Compress(nil, msg)
		if !bytes.Equal(first, second) {
			t.Errorf("%s: second payload differs (%d vs %d bytes)", name, len(second), len(first))
		}
		refInflate(t, second, len(msg))
	}
}

func TestDeflaterAllocs(t *testing.T) {
	d := codec.NewDeflater()
	for _, msg := range [][]byte{pushJSON100(), pushJSON2K()} {
		dst := make([]byte, 0, 2*len(msg)+64)
		if n := testing.AllocsPerRun(100, func() { d.Compress(dst[:0], msg) }); n != 0 {
			t.Errorf("Compress(%d bytes): %v allocs, want 0", len(msg), n)
		}
	}
}

// deflateProducers are other encoders' permessage-deflate payloads: a
// fresh stream ended by a sync flush with the 00 00 ff ff removed, as RFC
// 7692 §7.2.1 has senders make them, or ended by a final block (§7.2.3.4).
var deflateProducers = map[string]func(t *testing.T, msg []byte) []byte{
	"stdlib level 1":         stdProducer(1, false),
	"stdlib level 6":         stdProducer(6, false),
	"stdlib level 9":         stdProducer(9, false),
	"stdlib no compression":  stdProducer(stdflate.NoCompression, false),
	"stdlib huffman only":    stdProducer(stdflate.HuffmanOnly, false),
	"stdlib final block":     stdProducer(6, true),
	"klauspost level 1":      kProducer(1),
	"klauspost level 5":      kProducer(5),
	"klauspost level 9":      kProducer(9),
	"klauspost huffman only": kProducer(kflate.HuffmanOnly),
	"klauspost stateless":    kStateless,
	"klauspost window 1024":  kWindowProducer(1024),
}

func stdProducer(level int, final bool) func(*testing.T, []byte) []byte {
	return func(t *testing.T, msg []byte) []byte {
		var b bytes.Buffer
		w, err := stdflate.NewWriter(&b, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(msg)
		if final {
			w.Close()
			return b.Bytes()
		}
		w.Flush()
		return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
}

func kProducer(level int) func(*testing.T, []byte) []byte {
	return func(t *testing.T, msg []byte) []byte {
		var b bytes.Buffer
		w, err := kflate.NewWriter(&b, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(msg)
		w.Flush()
		return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
}

func kWindowProducer(window int) func(*testing.T, []byte) []byte {
	return func(t *testing.T, msg []byte) []byte {
		var b bytes.Buffer
		w, err := kflate.NewWriterWindow(&b, window)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(msg)
		w.Flush()
		return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
}

func kStateless(t *testing.T, msg []byte) []byte {
	var b bytes.Buffer
	if err := kflate.StatelessDeflate(&b, msg, false, nil); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func TestInflateOtherEncoders(t *testing.T) {
	f := codec.NewInflater()
	for pname, produce := range deflateProducers {
		for mname, msg := range deflateSamples() {
			payload := produce(t, msg)
			got, err := f.Inflate(nil, payload, len(msg))
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("%s, %s: Inflate = %d bytes, %v", pname, mname, len(got), err)
			}
			// One byte less room than the message needs is too big.
			if len(msg) > 0 {
				if _, err := f.Inflate(nil, payload, len(msg)-1); err != codec.ErrMessageTooBig {
					t.Errorf("%s, %s: limit len-1 gave %v", pname, mname, err)
				}
			}
		}
	}
}

// TestInflateRFCExamples inflates the examples of RFC 7692 §7.2.3.
func TestInflateRFCExamples(t *testing.T) {
	f := codec.NewInflater()
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"7.2.3.1 one compressed block", []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}},
		{"7.2.3.3 no compression", []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}},
		{"7.2.3.4 BFINAL set", []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}},
		{"7.2.3.5 two blocks", []byte{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}},
	} {
		got, err := f.Inflate(nil, tc.payload, 100)
		if err != nil || string(got) != "Hello" {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
	}
	// §7.2.3.2: the second "Hello" of a context-takeover stream refers back
	// into the first message. pushd's clients must not take context over
	// (client_no_context_takeover), so it is bad data here.
	second := []byte{0xf2, 0x00, 0x11, 0x00, 0x00}
	if got, err := f.Inflate([]byte("keep"), second, 100); err != codec.ErrBadDeflate || string(got) != "keep" {
		t.Errorf("context takeover message: %q, %v; want ErrBadDeflate and dst unchanged", got, err)
	}
	// With the first message as history it is "Hello" (checks the example).
	fr := stdflate.NewReaderDict(bytes.NewReader(append(second, 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff)), []byte("Hello"))
	if got, _ := io.ReadAll(fr); string(got) != "Hello" {
		t.Errorf("§7.2.3.2 example with history: %q", got)
	}
}

func TestInflateCorrupt(t *testing.T) {
	f := codec.NewInflater()
	good := codec.NewDeflater().Compress(nil, pushJSON2K())
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"reserved block type", []byte{0xff, 0xff}},
		{"bad stored length", []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'H'}},
		{"distance before start", []byte{0xf2, 0x00, 0x11, 0x00, 0x00}},
		{"truncated", good[:len(good)/2]},
		{"garbage", []byte("this is not deflate data at all, just text")},
	} {
		got, err := f.Inflate([]byte("dst"), tc.payload, 1<<20)
		if err != codec.ErrBadDeflate || string(got) != "dst" {
			t.Errorf("%s: %q, %v; want ErrBadDeflate and dst unchanged", tc.name, got, err)
		}
		// The Inflater is usable again right away.
		if got, err := f.Inflate(nil, good, 1<<20); err != nil || !bytes.Equal(got, pushJSON2K()) {
			t.Fatalf("after %s: %v", tc.name, err)
		}
	}
	if c := codec.ErrBadDeflate.Code; c != codec.StatusInvalidPayload {
		t.Errorf("ErrBadDeflate code %d", c)
	}
}

// bombPart is 1 MiB of zeros compressed with a sync flush, the 00 00 ff ff
// marker kept: copies of it concatenated are one valid stream of n MiB of
// zeros, and removing the last marker makes it a permessage-deflate payload.
func bombPart(t testing.TB) []byte {
	var b bytes.Buffer
	w, _ := kflate.NewWriter(&b, kflate.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Flush()
	return b.Bytes()
}

// bombParts returns the payload of n MiB of zeros as n parts.
func bombParts(t testing.TB, n int) [][]byte {
	part := bombPart(t)
	parts := make([][]byte, n)
	for i := range parts {
		parts[i] = part
	}
	parts[n-1] = bytes.TrimSuffix(part, []byte{0, 0, 0xff, 0xff})
	return parts
}

// TestInflateBomb inflates 1 GiB of zeros, compressed to about 1 MB, with
// a 1 MiB cap: it must stop right after the cap, having allocated about
// what the capped output needs and nothing that grows with the bomb.
func TestInflateBomb(t *testing.T) {
	parts := bombParts(t, 1024) // 1 GiB inflated
	whole := bytes.Join(parts, nil)
	t.Logf("1 GiB of zeros: %d compressed bytes", len(whole))
	f := codec.NewInflater()
	const limit = 1 << 20

	measure := func(name string, fn func() ([]byte, error), maxAlloc uint64) {
		t.Helper()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		out, err := fn()
		runtime.ReadMemStats(&after)
		if err != codec.ErrMessageTooBig || len(out) != 0 {
			t.Fatalf("%s: %d bytes, %v; want ErrMessageTooBig", name, len(out), err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: allocated %d bytes", name, alloc)
		if alloc > maxAlloc {
			t.Errorf("%s: allocated %d bytes, want at most %d", name, alloc, maxAlloc)
		}
	}
	// Growing dst from nil: the doublings up to limit+1 bytes with the
	// runtime's rounding (2.4 MiB measured; 3.1 MiB under -race); the bomb
	// itself is 1,024 MiB.
	measure("whole, nil dst", func() ([]byte, error) { return f.Inflate(nil, whole, limit) }, 4*limit)
	measure("parts, nil dst", func() ([]byte, error) { return f.InflateParts(nil, parts, limit) }, 4*limit)
	dst := make([]byte, 0, 4<<20)
	measure("parts, dst with room", func() ([]byte, error) { return f.InflateParts(dst, parts, limit) }, 4<<10)

	// Exactly at the cap is fine, one byte over is not.
	four := bombParts(t, 4)
	out, err := f.InflateParts(dst, four, 4<<20)
	if err != nil || len(out) != 4<<20 || bytes.ContainsFunc(out, func(r rune) bool { return r != 0 }) {
		t.Fatalf("4 MiB at a 4 MiB cap: %d bytes, %v", len(out), err)
	}
	if _, err := f.InflateParts(dst, four, 4<<20-1); err != codec.ErrMessageTooBig {
		t.Fatalf("4 MiB at a cap one byte less: %v", err)
	}
	if _, err := f.InflateParts(nil, four, 0); err != codec.ErrMessageTooBig {
		t.Fatalf("cap 0: %v", err)
	}
}

func TestInflateParts(t *testing.T) {
	f := codec.NewInflater()
	r := rand.New(rand.NewPCG(9, 10))
	for name, msg := range deflateSamples() {
		payload := codec.NewDeflater().Compress(nil, msg)
		for range 20 {
			got, err := f.InflateParts(nil, randomParts(r, payload), len(msg))
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%s: InflateParts = %d bytes, %v", name, len(got), err)
			}
		}
	}
	if got, err := f.InflateParts(nil, nil, 10); err != nil || len(got) != 0 {
		t.Fatalf("no parts: %q, %v (an empty payload is an empty message)", got, err)
	}
}

// randomParts cuts p into pieces of random sizes, empty ones included.
func randomParts(r *rand.Rand, p []byte) [][]byte {
	var parts [][]byte
	for len(p) > 0 {
		n := min(len(p), r.IntN(3)*r.IntN(len(p)+1))
		parts = append(parts, p[:n])
		p = p[n:]
	}
	return parts
}

// TestInflateAllocs checks what inflating costs in allocations. A message
// coded with fixed Huffman codes or stored blocks (short ones) allocates
// nothing; one with dynamic codes longer than 9 bits makes compress/flate
// allocate its overflow tables for the block (inflate.go's links), a few
// small allocations that a decoder keeping them across messages would avoid
// at the price of the state leak TestInflateNoStateAcrossMessages shows.
func TestInflateAllocs(t *testing.T) {
	f := codec.NewInflater()
	for _, tc := range []struct {
		msg       []byte
		maxAllocs float64
	}{{pushJSON100(), 0}, {pushJSON2K(), 8}} {
		msg := tc.msg
		payload := codec.NewDeflater().Compress(nil, msg)
		dst := make([]byte, 0, len(msg)+1)
		parts := [][]byte{payload[:3], payload[3:]}
		n := testing.AllocsPerRun(100, func() { f.Inflate(dst, payload, len(msg)) })
		np := testing.AllocsPerRun(100, func() { f.InflateParts(dst, parts, len(msg)) })
		t.Logf("%d bytes: %v allocs (parts: %v)", len(msg), n, np)
		if n > tc.maxAllocs || np > tc.maxAllocs {
			t.Errorf("Inflate(%d bytes): %v allocs, parts %v; want at most %v", len(msg), n, np, tc.maxAllocs)
		}
	}
}

func TestCheckClientHeaderDeflate(t *testing.T) {
	// Without RSV1 the rules are CheckClientHeader's, for every header shape.
	for op := range ws.OpCode(16) {
		for rsv := range byte(8) {
			for _, fin := range []bool{false, true} {
				for _, masked := range []bool{false, true} {
					for _, length := range []int64{0, 125, 126} {
						for _, inMessage := range []bool{false, true} {
							h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: masked, Length: length}
							got := codec.CheckClientHeaderDeflate(h, inMessage)
							want := codec.CheckClientHeader(h, inMessage)
							if rsv&4 != 0 {
								h.Rsv &^= 4
								want = codec.CheckClientHeader(h, inMessage)
								if want == nil && op != ws.OpText && op != ws.OpBinary {
									want = codec.ErrCompressedBit
								}
							}
							if got != want {
								t.Fatalf("%+v inMessage=%v: %v, want %v", h, inMessage, got, want)
							}
						}
					}
				}
			}
		}
	}
	text := ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpText, Masked: true, Length: 10}
	if err := codec.CheckClientHeaderDeflate(text, false); err != nil {
		t.Fatalf("compressed text frame: %v", err)
	}
	cont := ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpContinuation, Masked: true}
	if err := codec.CheckClientHeaderDeflate(cont, true); err != codec.ErrCompressedBit {
		t.Fatalf("RSV1 on a continuation: %v", err)
	}
	if codec.ErrCompressedBit.Code != codec.StatusProtocolError {
		t.Fatal("ErrCompressedBit must be 1002")
	}
}

func TestCompressedFrameHeader(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 1 << 20} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpContinuation} {
			for _, fin := range []bool{false, true} {
				hdr := codec.AppendCompressedFrameHeader([]byte("x"), op, fin, n)[1:]
				h, hn, err := codec.ParseHeader(hdr)
				want := ws.Header{Fin: fin, Rsv: 4, OpCode: op, Length: int64(n)}
				if err != nil || hn != len(hdr) || h != want {
					t.Fatalf("AppendCompressedFrameHeader(%v, %v, %d) parses as %+v, %d, %v", op, fin, n, h, hn, err)
				}
				if !bytes.Equal(hdr[1:], codec.AppendFrameHeader(nil, op, fin, n)[1:]) {
					t.Fatal("length bytes differ from AppendFrameHeader")
				}
				buf := make([]byte, 10)
				start := codec.PutCompressedFrameHeader(buf, op, fin, n)
				if !bytes.Equal(buf[start:], hdr) {
					t.Fatalf("PutCompressedFrameHeader = % x, Append gave % x", buf[start:], hdr)
				}
			}
		}
	}
	var rsv1, rsv2, rsv3 = ws.RsvBits(4)
	if !rsv1 || rsv2 || rsv3 {
		t.Fatal("Rsv 4 is not RSV1 in gobwas's terms")
	}
}

// deflateBenchEncoders are the encoders BenchmarkDeflateLevels compares.
var deflateBenchEncoders = []struct {
	name string
	new  func() func(dst, src []byte) []byte
}{
	{"codec.Deflater", func() func(dst, src []byte) []byte { return codec.NewDeflater().Compress }},
	{"klauspost-huffman", kBench(kflate.HuffmanOnly)},
	{"klauspost-1", kBench(1)},
	{"klauspost-2", kBench(2)},
	{"klauspost-3", kBench(3)},
	{"klauspost-5", kBench(5)},
	{"klauspost-6", kBench(6)},
	{"klauspost-9", kBench(9)},
	{"klauspost-stateless", func() func(dst, src []byte) []byte {
		var w sliceWriter
		return func(dst, src []byte) []byte {
			w.b = dst
			kflate.StatelessDeflate(&w, src, false, nil)
			return w.b
		}
	}},
	{"stdlib-1", stdBench(1)},
	{"stdlib-6", stdBench(6)},
	{"stdlib-9", stdBench(9)},
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func kBench(level int) func() func(dst, src []byte) []byte {
	return func() func(dst, src []byte) []byte {
		var w sliceWriter
		fw, _ := kflate.NewWriter(&w, level)
		return func(dst, src []byte) []byte {
			w.b = dst
			fw.Reset(&w)
			fw.Write(src)
			fw.Flush()
			return w.b
		}
	}
}

func stdBench(level int) func() func(dst, src []byte) []byte {
	return func() func(dst, src []byte) []byte {
		var w sliceWriter
		fw, _ := stdflate.NewWriter(&w, level)
		return func(dst, src []byte) []byte {
			w.b = dst
			fw.Reset(&w)
			fw.Write(src)
			fw.Flush()
			return w.b
		}
	}
}

// BenchmarkDeflateLevels compares encoders on push-sized JSON; the ratio
// metric is compressed size over original size (with the 4-byte sync
// marker, which permessage-deflate removes, counted out). DeflateLevel was
// chosen from it.
func BenchmarkDeflateLevels(b *testing.B) {
	for _, msg := range []struct {
		name string
		p    []byte
	}{{"100B", pushJSON100()}, {"2KB", pushJSON2K()}} {
		for _, enc := range deflateBenchEncoders {
			b.Run(msg.name+"/"+enc.name, func(b *testing.B) {
				compress := enc.new()
				dst := make([]byte, 0, 2*len(msg.p)+64)
				var out []byte
				b.ReportAllocs()
				b.SetBytes(int64(len(msg.p)))
				for b.Loop() {
					out = compress(dst[:0], msg.p)
				}
				n := len(bytes.TrimSuffix(out, []byte{0, 0, 0xff, 0xff}))
				b.ReportMetric(float64(n)/float64(len(msg.p)), "ratio")
				b.ReportMetric(float64(n), "out-bytes")
			})
		}
	}
}

func BenchmarkInflate(b *testing.B) {
	f := codec.NewInflater()
	for _, msg := range []struct {
		name string
		p    []byte
	}{{"100B", pushJSON100()}, {"2KB", pushJSON2K()}} {
		payload := codec.NewDeflater().Compress(nil, msg.p)
		b.Run(msg.name, func(b *testing.B) {
			dst := make([]byte, 0, len(msg.p)+1)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg.p)))
			for b.Loop() {
				if _, err := f.Inflate(dst, payload, len(msg.p)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNegotiateDeflate(b *testing.B) {
	for _, v := range []struct{ name, offer string }{{"chrome", offerChrome}, {"ws-all-options", offerWSAll}} {
		values := []string{v.offer}
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !codec.NegotiateDeflate(values).Accepted {
					b.Fatal("declined")
				}
			}
		})
	}
}

// TestInflateNoStateAcrossMessages inflates a malformed message (a dynamic
// block whose code-length code is empty, found by FuzzInflate) on a fresh
// Inflater and on one that has just inflated a good message: the answers
// must be the same. klauspost/compress v1.20.3's decoder fails this (its
// Huffman tables survive Reset), which is why Inflater uses compress/flate.
func TestInflateNoStateAcrossMessages(t *testing.T) {
	bad := append([]byte{0xec, 0xc0}, make([]byte, 43)...)
	bad = append(bad, 0x1b)
	bad = append(bad, make([]byte, 7)...)
	bad = append(bad, 0x05)
	bad = append(bad, make([]byte, 24)...)
	good := pushJSON2K()
	goodPayload := codec.NewDeflater().Compress(nil, good)

	_, freshErr := codec.NewInflater().Inflate(nil, bad, 60303)
	if freshErr != codec.ErrBadDeflate {
		t.Fatalf("fresh Inflater: %v, want ErrBadDeflate", freshErr)
	}
	f := codec.NewInflater()
	for range 3 {
		if out, err := f.Inflate(nil, goodPayload, len(good)); err != nil || !bytes.Equal(out, good) {
			t.Fatalf("good message: %v", err)
		}
		if out, err := f.Inflate(nil, bad, 60303); err != freshErr {
			t.Fatalf("after a good message: %d bytes, %v; a fresh Inflater says %v", len(out), err, freshErr)
		}
	}
}
