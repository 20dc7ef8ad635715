package tmpl

import "testing"

func TestExpand(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"/ws", "/ws"},
		{"/ws?topics={{topic}}", "/ws?topics=lt.3"},
		{`{"topic":"{{topic}}","data":{{payload}}}`, `{"topic":"lt.3","data":{"x":1}}`},
		{"{{ id }}-{{topic}}", "42-lt.3"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			tp, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := tp.String("lt.3", 42, []byte(`{"x":1}`)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"{{topci}}", "a{{topic", "{{}}"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q): no error", in)
		}
	}
}

func TestHas(t *testing.T) {
	tp := MustParse("x{{payload}}")
	if !tp.Has(Payload) || tp.Has(Topic) || tp.IsZero() {
		t.Fatalf("Has/IsZero wrong for %v", tp)
	}
	if !(T{}).IsZero() {
		t.Fatal("zero T not IsZero")
	}
}
