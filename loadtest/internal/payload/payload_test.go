package payload

import (
	"encoding/json"
	"testing"
)

func TestAppendSizeAndJSON(t *testing.T) {
	f := Fields{Time: 1_700_000_000_123_456_789, Step: 2, Seq: 12345}
	for _, size := range []int{0, 10, 64, 100, 1000} {
		p := Append([]byte("pre"), f, size)[3:]
		var doc map[string]any
		if err := json.Unmarshal(p, &doc); err != nil {
			t.Fatalf("size %d: invalid JSON %s: %v", size, p, err)
		}
		min := len(Append(nil, f, 0))
		if want := max(size, min); len(p) != want {
			t.Errorf("size %d: got %d bytes, want %d", size, len(p), want)
		}
		got, ok := Parse(p)
		if !ok || got != f {
			t.Errorf("size %d: Parse = %+v %v, want %+v", size, got, ok, f)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Fields
		ok   bool
	}{
		{"enveloped", `{"type":"message","topic":"a","seq":9,"data":{"_lt":5,"_ls":1,"_ln":7,"pad":""}}`, Fields{5, 1, 7}, true},
		{"re-encoded", `{"data":{"_ln": 7, "_ls": 0, "_lt": 123,"pad":"x"}}`, Fields{123, 0, 7}, true},
		{"probe", `{"_lt":1,"_ls":0,"_ln":0}`, Fields{1, 0, 0}, true},
		{"welcome", `{"type":"welcome","session":"s","ping_interval":25}`, Fields{}, false},
		{"missing seq", `{"_lt":1,"_ls":0}`, Fields{}, false},
		{"not a number", `{"_lt":"x","_ls":0,"_ln":1}`, Fields{}, false},
		{"overflow", `{"_lt":99999999999999999999,"_ls":0,"_ln":1}`, Fields{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Parse([]byte(tc.in))
			if ok != tc.ok || got != tc.want {
				t.Fatalf("Parse = %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	msg := []byte(`{"type":"message","topic":"lt.0","seq":12,"data":` + string(Append(nil, Fields{Time: 1e18, Seq: 12}, 100)) + `}`)
	b.ReportAllocs()
	for b.Loop() {
		Parse(msg)
	}
}
