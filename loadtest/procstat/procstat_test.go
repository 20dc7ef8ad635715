package procstat

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"Name:\tx\nVmRSS:\t  1234 kB\nThreads: 3\n", 1234 << 10, false},
		{"Name:\tx\n", 0, true},
		{"VmRSS: 12 MB\n", 0, true},
	}
	for _, tc := range tests {
		got, err := parseVmRSS([]byte(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseVmRSS(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestRSSSelf(t *testing.T) {
	v, err := RSS(os.Getpid())
	if err != nil || v <= 0 || SelfRSS() <= 0 {
		t.Fatalf("RSS(self) = %d, %v", v, err)
	}
}

func TestScrape(t *testing.T) {
	body := strings.Join([]string{
		"# HELP pushd_connections Open connections.",
		"# TYPE pushd_connections gauge",
		"pushd_connections 19000",
		`pushd_drops_total{reason="slow consumer"} 3`,
		`pushd_drops_total{reason="x"} 4`,
		"process_resident_memory_bytes 1.5e+07",
		"other 1",
	}, "\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	defer srv.Close()
	got, err := Scrape(context.Background(), srv.Client(), srv.URL, "pushd_connections", "process_resident_memory_bytes", "pushd_drops_total", "missing")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"pushd_connections": 19000, "process_resident_memory_bytes": 1.5e7, "pushd_drops_total": 7}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
