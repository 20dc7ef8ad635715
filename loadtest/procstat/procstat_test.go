package procstat

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		// A real line of a Go process (pid 7, comm "pushd").
		{"7 (pushd) S 1 7 7 0 -1 4194560 1200 0 0 0 150 37 0 0 20 0 9 0 100 1000000 2000 18446744073709551615", 1870 * time.Millisecond, false},
		// A command name with spaces and parentheses.
		{"7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1 1", 70 * time.Millisecond, false},
		{"7 (x) S 1", 0, true},
		{"no parenthesis", 0, true},
		{"7 (x) S 1 7 7 0 -1 0 0 0 0 0 a 4 0", 0, true},
	}
	for _, tc := range tests {
		got, err := parseStatCPU([]byte(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseStatCPU(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestCPUSelf compares CPU(self) with getrusage(2) of this process before
// and after burning 200 ms of CPU (measured by getrusage, not by the wall
// clock, so a loaded machine only makes it take longer).
func TestCPUSelf(t *testing.T) {
	rusage := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	check := func() time.Duration {
		t.Helper()
		before := rusage()
		got, err := CPU(os.Getpid())
		after := rusage()
		if err != nil {
			t.Fatal(err)
		}
		// /proc counts in 10 ms ticks and samples differently from
		// getrusage; allow two ticks either side.
		if got < before-20*time.Millisecond || got > after+20*time.Millisecond {
			t.Fatalf("CPU(self) = %v; getrusage says %v…%v", got, before, after)
		}
		return got
	}
	start := check()
	for begin, x := rusage(), 0; rusage()-begin < 200*time.Millisecond; x++ {
	}
	if end := check(); end-start < 150*time.Millisecond {
		t.Fatalf("CPU(self) grew by %v while getrusage grew by at least 200ms", end-start)
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
