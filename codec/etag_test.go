package codec

import (
	"strings"
	"testing"
)

const testETag = `"Zm9vYmFy"`

func TestNoneMatch(t *testing.T) {
	for _, tc := range []struct {
		field string
		want  bool
	}{
		{`"Zm9vYmFy"`, true},
		{`W/"Zm9vYmFy"`, true}, // weak comparison, RFC 9110 §13.1.2
		{`"other", "Zm9vYmFy"`, true},
		{`"other",W/"Zm9vYmFy"`, true},
		{` , ,"Zm9vYmFy" ,`, true},
		{"\t\"Zm9vYmFy\"\t", true},
		{`*`, true},
		{` * `, true},
		{``, false},
		{`"other"`, false},
		{`"zm9vymfy"`, false}, // case-sensitive
		{`Zm9vYmFy`, false},   // not quoted
		{`"Zm9vYmFy`, false},  // unterminated
		{`w/"Zm9vYmFy"`, false},
		{`"a,b", "Zm9vYmFy"`, true}, // a comma inside a tag does not split it
		{`"a"x, "Zm9vYmFy"`, false}, // junk after a member: the rest is not read
		{`"a" "Zm9vYmFy"`, true},    // members separated by OWS only: lenient
		{`"a b", "Zm9vYmFy"`, false},
		{`"Zm9vYmFy", "a b"`, true}, // a match before the junk
		{`*, "x"`, false},
		{`"x", *`, false},
	} {
		if got := NoneMatch(tc.field, testETag); got != tc.want {
			t.Errorf("NoneMatch(%q) = %v, want %v", tc.field, got, tc.want)
		}
	}
	for _, bad := range []string{``, `"`, `x`, `"x`} {
		if NoneMatch(`*`, bad) || NoneMatch(bad, bad) {
			t.Errorf("an invalid server tag %q matched", bad)
		}
	}
}

func TestNoneMatchAllocs(t *testing.T) {
	field := `"a", W/"b", "Zm9vYmFy"`
	var ok bool
	if n := testing.AllocsPerRun(100, func() { ok = NoneMatch(field, testETag) }); n != 0 || !ok {
		t.Fatalf("%v allocs, matched %v", n, ok)
	}
}

// FuzzNoneMatch checks NoneMatch two ways. Any field: it never panics, and a
// match needs the tag in quotes or a "*". A well-formed list built from the
// input (cut into opaque tags where cuts says, each weak or strong by a bit
// of its cut, separated by commas and OWS): it matches exactly when one of
// the tags is the server's.
func FuzzNoneMatch(f *testing.F) {
	f.Add(`"Zm9vYmFy"`, []byte{3, 200})
	f.Add(`W/"x", *`, []byte{})
	f.Add(`Zm9vYmFyZm9vYmFy`, []byte{8, 137, 8})
	f.Add(`a,b"c`, []byte{1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, field string, cuts []byte) {
		if NoneMatch(field, testETag) && !strings.Contains(field, testETag) && strings.Trim(field, " \t,") != "*" {
			t.Fatalf("%q matched without naming the tag", field)
		}
		opaque := strings.Map(func(r rune) rune {
			if r == '"' || r < 0x21 || r == 0x7f {
				return -1
			}
			return r
		}, field)
		var b strings.Builder
		want := false
		for i, piece := range rqPieces([]byte(opaque), cuts) {
			tag := `"` + string(piece) + `"`
			want = want || tag == testETag
			if i > 0 {
				b.WriteString([]string{",", ", ", " ,\t", " "}[i%4])
			}
			if i < len(cuts) && cuts[i]&0x80 != 0 {
				b.WriteString("W/")
			}
			b.WriteString(tag)
		}
		if got := NoneMatch(b.String(), testETag); got != want {
			t.Fatalf("NoneMatch(%q) = %v, want %v", b.String(), got, want)
		}
	})
}
