package codec

import (
	"math/rand/v2"
	"net/url"
	"testing"
)

func TestQueryValue(t *testing.T) {
	const q = "EIO=4&transport=polling&t=PXm3x1a&sid=Ws5nDDm2x9ujE3TNAAAB"
	tests := []struct {
		query, name, want string
		ok                bool
	}{
		{q, "EIO", "4", true},
		{q, "transport", "polling", true},
		{q, "sid", "Ws5nDDm2x9ujE3TNAAAB", true},
		{q, "eio", "", false}, // keys are case-sensitive
		{q, "b64", "", false},
		{"", "a", "", false},
		{"a", "a", "", true},
		{"a=", "a", "", true},
		{"a=1&a=2", "a", "1", true},
		{"a=1;b=2&a=3", "a", "3", true},     // ';' is not a separator: the pair is skipped
		{"a=%zz&a=2", "a", "2", true},       // malformed escape: skipped
		{"a%=1&a=2", "a", "2", true},        // malformed escape in the key
		{"%61=1", "a", "1", true},           // the key is decoded
		{"a+b=1", "a b", "1", true},         // '+' is a space in a key
		{"a%2Bb=1", "a+b", "1", true},       // an escaped '+' is a plus
		{"t=a%20b+c", "t", "a%20b+c", true}, // the value is not decoded
		{"&&a=1&", "a", "1", true},
		{"topics=a,b&x", "x", "", true},
		{"a=1", "", "", false},
		{"=1", "", "1", true},
	}
	for _, tt := range tests {
		got, ok := QueryValue(tt.query, tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("QueryValue(%q, %q) = %q, %v; want %q, %v", tt.query, tt.name, got, ok, tt.want, tt.ok)
		}
		queryCompareNetURL(t, tt.query, tt.name)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = QueryValue(q, "sid") }); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

// queryCompareNetURL checks QueryValue against url.ParseQuery: the same
// parameter is found, and its value decodes to net/url's first value.
func queryCompareNetURL(t *testing.T, query, name string) {
	t.Helper()
	got, ok := QueryValue(query, name)
	vals, _ := url.ParseQuery(query) // the error names a skipped pair; the rest is still parsed
	want, wantOK := "", false
	if vs := vals[name]; len(vs) > 0 {
		want, wantOK = vs[0], true
	}
	if ok != wantOK {
		t.Fatalf("QueryValue(%q, %q) = %q, %v; net/url %q", query, name, got, ok, vals[name])
	}
	if !ok {
		return
	}
	dec, err := url.QueryUnescape(got)
	if err != nil || dec != want {
		t.Fatalf("QueryValue(%q, %q) = %q (decoded %q, %v); net/url %q", query, name, got, dec, err, want)
	}
}

func TestQueryValueRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const chars = "ab=&;%+2f41zZ"
	for range 20000 {
		b := make([]byte, r.IntN(16))
		for i := range b {
			b[i] = chars[r.IntN(len(chars))]
		}
		for _, name := range []string{"a", "b", "a b", "A", "", "/"} {
			queryCompareNetURL(t, string(b), name)
		}
	}
}

func FuzzQueryValue(f *testing.F) {
	f.Add("EIO=4&transport=polling&t=PXm3x1a&sid=Ws5nDDm2x9ujE3TNAAAB", "sid")
	f.Add("a=1;b=2&a=%zz&%61+=3", "a ")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, query, name string) {
		queryCompareNetURL(t, query, name)
	})
}

func BenchmarkQueryValue(b *testing.B) {
	const q = "EIO=4&transport=polling&t=PXm3x1a&sid=Ws5nDDm2x9ujE3TNAAAB"
	b.ReportAllocs()
	for b.Loop() {
		if v, ok := QueryValue(q, "sid"); !ok || v == "" {
			b.Fatal(v)
		}
	}
}
