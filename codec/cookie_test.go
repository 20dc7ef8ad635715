package codec

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

func TestCookieValue(t *testing.T) {
	const header = "io=Ws5nDDm2x9ujE3TNAAAB; session=abc.def.ghi; q=\"quoted\"; empty=; eq=a=b=="
	tests := []struct {
		header, name, want string
		ok                 bool
	}{
		{header, "io", "Ws5nDDm2x9ujE3TNAAAB", true},
		{header, "session", "abc.def.ghi", true},
		{header, "q", "quoted", true},
		{header, "empty", "", true},
		{header, "eq", "a=b==", true},
		{header, "Session", "", false}, // names are case-sensitive
		{header, "ion", "", false},
		{header, "", "", false},
		{"", "a", "", false},
		{"a=1;a=2", "a", "1", true},
		{"a=1 2; a=3", "a", "3", true},   // an invalid first pair is skipped
		{"a=x,y; a=z", "a", "z", true},   // comma is not a cookie-octet
		{"a=\"x\\\"y\"", "a", "", false}, // nor is backslash
		{"a =1; a=2", "a", "2", true},    // no space before '='
		{"a= 1", "a", "", false},         // nor after it
		{" \ta=1\t ;b=2", "a", "1", true},
		{"b=2;;; a=1 ;", "a", "1", true},
		{"a", "a", "", false},
		{"a=\"", "a", "", false},
		{"a=\"\"", "a", "", true},
		{"a=\"x", "a", "", false},
		{"a=caf\xc3\xa9", "a", "", false},
		{"a=\x7f", "a", "", false},
		{"x=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.sig-_", "x", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.sig-_", true},
	}
	for _, tt := range tests {
		got, ok := CookieValue(tt.header, tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CookieValue(%q, %q) = %q, %v; want %q, %v", tt.header, tt.name, got, ok, tt.want, tt.ok)
		}
		cookieCompareNetHTTP(t, tt.header, tt.name)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = CookieValue(header, "eq") }); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

// cookieCompareNetHTTP checks CookieValue against net/http, which is more
// lenient about values: what CookieValue finds, net/http finds too (among
// the cookies of that name), and on a header that follows RFC 6265's grammar
// exactly, both find the same first value.
func cookieCompareNetHTTP(t *testing.T, header, name string) {
	t.Helper()
	got, ok := CookieValue(header, name)
	if ok && (!strings.Contains(header, got) || !validCookieValue(got)) {
		t.Fatalf("CookieValue(%q, %q) = %q: not an octet substring of the header", header, name, got)
	}
	if !isToken(name) {
		if ok {
			t.Fatalf("CookieValue(%q, %q) = %q for a name that is not a token", header, name, got)
		}
		return // net/http refuses such names; nothing to compare
	}
	req := &http.Request{Header: http.Header{"Cookie": {header}}}
	var vals []string
	for _, c := range req.CookiesNamed(name) {
		vals = append(vals, c.Value)
	}
	if cookieStrictHeader(header) {
		want, wantOK := "", false
		if len(vals) > 0 {
			want, wantOK = vals[0], true
		}
		if got != want || ok != wantOK {
			t.Fatalf("CookieValue(%q, %q) = %q, %v; net/http finds %q", header, name, got, ok, vals)
		}
		return
	}
	if !ok {
		return
	}
	for _, v := range vals {
		if v == got {
			return
		}
	}
	t.Fatalf("CookieValue(%q, %q) = %q; net/http finds %q", header, name, got, vals)
}

// cookieStrictHeader reports whether h is exactly cookie-pair *( "; "
// cookie-pair ) with unquoted values (RFC 6265 §4.2.1).
func cookieStrictHeader(h string) bool {
	for _, pair := range strings.Split(h, "; ") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || !isToken(k) || !validCookieValue(v) {
			return false
		}
	}
	return true
}

// TestCookieValueRandom compares with net/http on random headers that keep
// to the grammar (where both must agree exactly) or nearly.
func TestCookieValueRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	names := []string{"a", "b", "io", "session"}
	const valueChars = "aZ09-._~!#$%&'()*+/:<=>?@[]^`{|}"
	strict := 0
	for range 5000 {
		var pairs []string
		for range r.IntN(5) {
			v := make([]byte, r.IntN(6))
			for i := range v {
				v[i] = valueChars[r.IntN(len(valueChars))]
			}
			pair := names[r.IntN(len(names))] + "=" + string(v)
			switch r.IntN(12) {
			case 0:
				pair = " " + pair
			case 1:
				pair += " x"
			case 2:
				pair = strings.Replace(pair, "=", "=\"", 1) + "\""
			}
			pairs = append(pairs, pair)
		}
		h := strings.Join(pairs, "; ")
		if cookieStrictHeader(h) {
			strict++
		}
		for _, n := range names {
			cookieCompareNetHTTP(t, h, n)
		}
	}
	if strict < 1000 {
		t.Fatalf("only %d strict headers: the generator no longer exercises the exact comparison", strict)
	}
}

func FuzzCookieValue(f *testing.F) {
	f.Add("io=Ws5nDDm2x9ujE3TNAAAB; session=abc.def.ghi; q=\"quoted\"", "session")
	f.Add("a=1 2; a=3", "a")
	f.Add("a =1;a=\"\"", "a")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, header, name string) {
		cookieCompareNetHTTP(t, header, name)
	})
}

func BenchmarkCookieValue(b *testing.B) {
	header := "_ga=GA1.2.1234567890.1700000000; io=Ws5nDDm2x9ujE3TNAAAB; theme=dark; session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"
	b.ReportAllocs()
	for b.Loop() {
		if v, ok := CookieValue(header, "session"); !ok || len(v) == 0 {
			b.Fatal(v)
		}
	}
}
