// Package procstat reads process figures: a process's resident set size
// from /proc/PID/status, its CPU time from /proc/PID/stat, and gauges from a
// Prometheus text endpoint such as pushd's /metrics. It is the one VmRSS
// reader of the load harness, the benchmarks and the reference hub, so it
// lives outside loadtest/internal where bench can import it. (pushd itself
// reports its RSS through client_golang's process collector.)
package procstat

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// RSS returns the resident set size of process pid in bytes (VmRSS in
// /proc/PID/status). Safe for concurrent use.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// SelfRSS returns this process's resident set size in bytes, or 0 if it
// cannot be read. Safe for concurrent use.
func SelfRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	v, _ := parseVmRSS(b)
	return v
}

func parseVmRSS(status []byte) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(v))
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("procstat: odd VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("procstat: VmRSS: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("procstat: no VmRSS line")
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100
// on every Linux architecture Go supports (the kernel's ABI value,
// independent of CONFIG_HZ; sysconf(_SC_CLK_TCK) reports it).
const clockTicks = 100

// CPU returns the user plus system CPU time process pid has used, all its
// threads together (utime + stime in /proc/PID/stat), to the kernel's
// 10 ms resolution. Safe for concurrent use.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads fields 14 (utime) and 15 (stime) of a /proc/PID/stat
// line. The command name, field 2, is in parentheses and may itself hold
// spaces and parentheses, so fields are counted after the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: odd stat line %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: short stat line %q", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: stat CPU field: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// Scrape fetches a Prometheus text exposition from url and returns the
// value of each named metric that has no labels (or, if only labelled
// samples exist, the sum of them). Missing names are absent from the map.
// Safe for concurrent use.
func Scrape(ctx context.Context, c *http.Client, url string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("procstat: %s: %s", url, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 16<<20), names)
}

func parseMetrics(r io.Reader, names []string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	plain := map[string]float64{}
	summed := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, labelled := f[0], false
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labelled = name[:i], true
			// Label values may hold spaces: the value is after the '}'.
			j := strings.LastIndexByte(line, '}')
			f = strings.Fields(line[j+1:])
			if len(f) < 1 {
				continue
			}
			f = append([]string{name}, f...)
		}
		if !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		if labelled {
			summed[name] += v
		} else {
			plain[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for n, v := range summed {
		if _, ok := plain[n]; !ok {
			plain[n] = v
		}
	}
	return plain, nil
}
