package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pushd.json")
	err := os.WriteFile(file, []byte(`{"listen":":9000","prefix":"file","ping-interval":"7s","max-frame":4096,"command-rate":2.5,`+
		`"allowed-origins":["https://a.example","https://*.b.example"],"client-publish":true}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"--config", file, "--prefix", "flag"}, envOf(map[string]string{
		"PUSHD_PREFIX": "env", "PUSHD_LISTEN": ":9100", "PUSHD_API_KEYS": "a, b",
	}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"flag beats env and file", cfg.Prefix, "flag"},
		{"env beats file", cfg.Listen, ":9100"},
		{"file beats default", cfg.WS.PingInterval, 7 * time.Second},
		{"file number", cfg.WS.MaxFrameSize, 4096},
		{"file float", cfg.Session.CommandRate, 2.5},
		{"file array joins a list flag", cfg.Auth.AllowedOrigins, "https://a.example,https://*.b.example"},
		{"file boolean", cfg.ClientPublish, true},
		{"default", cfg.APIListen, "127.0.0.1:8081"},
		{"api keys split and trimmed", strings.Join(cfg.APIKeys, "|"), "a|b"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// PUSHD_CONFIG names the file too.
	cfg, err = parseConfig(nil, envOf(map[string]string{"PUSHD_CONFIG": file}))
	if err != nil || cfg.Prefix != "file" {
		t.Fatalf("PUSHD_CONFIG: %v, prefix %q", err, cfg.Prefix)
	}
}

// --demo follows --insecure unless a flag, the environment or the config
// file sets it.
func TestDemoDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{[]string{"--insecure"}, nil, true},
		{[]string{"--jwt-secret-files", "k"}, nil, false},
		{[]string{"--insecure", "--demo=false"}, nil, false},
		{[]string{"--jwt-secret-files", "k", "--demo"}, nil, true},
		{[]string{"--insecure"}, map[string]string{"PUSHD_DEMO": "false"}, false},
		{nil, map[string]string{"PUSHD_INSECURE": "true"}, true},
	} {
		cfg, err := parseConfig(tc.args, envOf(tc.env))
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if cfg.Demo != tc.want {
			t.Errorf("%v %v: demo %v, want %v", tc.args, tc.env, cfg.Demo, tc.want)
		}
	}
	// --sse-path / is fine without the demo page.
	if _, err := parseConfig([]string{"--sse-path", "/", "--demo=false"}, envOf(nil)); err != nil {
		t.Fatalf("--sse-path / without the demo: %v", err)
	}
}

// Every bad value gets a one-line error naming what is wrong.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"no-such-flag":1}`), 0o600)
	object := filepath.Join(dir, "object.json")
	_ = os.WriteFile(object, []byte(`{"api-keys":{"k":"v"}}`), 0o600)
	broken := filepath.Join(dir, "broken.json")
	_ = os.WriteFile(broken, []byte(`{"listen":`), 0o600)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--ping-interval", "soon"}, nil, "ping-interval"},
		{[]string{"--loops", "-1"}, nil, "--loops"},
		{[]string{"--ws-path", "ws"}, nil, "--ws-path"},
		{[]string{"--echo-path", "/ws"}, nil, "--echo-path"},
		{[]string{"--sse-path", "sse"}, nil, "--sse-path"},
		{[]string{"--sse-path", "/ws"}, nil, "--sse-path"},
		{[]string{"--ws-path", "/pushd.js"}, nil, "pushd.js"},
		{[]string{"--insecure", "--sse-path", "/"}, nil, "--demo"},
		{[]string{"--keep-alive-timeout", "0s"}, nil, "--keep-alive-timeout"},
		{[]string{"--demo=maybe"}, nil, "demo"},
		{nil, map[string]string{"PUSHD_DEMO": "sometimes"}, "PUSHD_DEMO"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--prefix", "a b"}, nil, "--prefix"},
		{[]string{"--prefix", "a..b"}, nil, "--prefix"},
		{[]string{"--max-frame", "0"}, nil, "--max-frame"},
		{[]string{"--accept-rate", "-5"}, nil, "--accept-rate"},
		{[]string{"stray"}, nil, "unexpected argument"},
		{nil, map[string]string{"PUSHD_MAX_MESSAGE": "big"}, "PUSHD_MAX_MESSAGE"},
		{[]string{"--config", bad}, nil, "unknown key"},
		{[]string{"--config", broken}, nil, "broken.json"},
		{[]string{"--config", object}, nil, "api-keys"},
		{[]string{"--config", filepath.Join(dir, "missing.json")}, nil, "config file"},
	}
	for _, tc := range cases {
		_, err := parseConfig(tc.args, envOf(tc.env))
		if err == nil {
			t.Errorf("%v %v: no error", tc.args, tc.env)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%v %v: error %q, want one line mentioning %q", tc.args, tc.env, msg, tc.want)
		}
	}
}

// The daemon exits 2 with a one-line message on a bad flag.
func TestRunBadFlagExitCode(t *testing.T) {
	if code := run([]string{"--loops", "x"}); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
}

// Errors name the flag, variable or file key, and say what was expected.
func TestConfigErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	num := filepath.Join(dir, "num.json")
	_ = os.WriteFile(num, []byte(`{"ping-interval":25}`), 0o600)
	cases := []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"--ping-interval", "0s"}, nil, []string{"--ping-interval must be positive"}},
		{[]string{"--pong-timeout", "-1s"}, nil, []string{"--pong-timeout must be positive"}},
		{[]string{"--close-timeout", "0s"}, nil, []string{"--close-timeout"}},
		{[]string{"--handshake-timeout", "0s"}, nil, []string{"--handshake-timeout"}},
		{[]string{"--drain-grace", "0s"}, nil, []string{"--drain-grace"}},
		{[]string{"--ping-interval", "soon"}, nil, []string{"ping-interval", "duration such as 25s"}},
		{[]string{"--loops", "x"}, nil, []string{"loops", "want an integer"}},
		{[]string{"--accept-rate", "fast"}, nil, []string{"accept-rate", "want a number"}},
		{nil, map[string]string{"PUSHD_PONG_TIMEOUT": "10"}, []string{"PUSHD_PONG_TIMEOUT", "duration"}},
		{[]string{"--config", num}, nil, []string{`"ping-interval"`, "num.json", "duration string", "number 25"}},
		{[]string{"--nats-listen", "nowhere"}, nil, []string{"--nats-listen"}},
	}
	for _, tc := range cases {
		_, err := parseConfig(tc.args, envOf(tc.env))
		if err == nil {
			t.Errorf("%v %v: no error", tc.args, tc.env)
			continue
		}
		for _, w := range tc.want {
			if msg := err.Error(); !strings.Contains(msg, w) || strings.Contains(msg, "\n") {
				t.Errorf("%v %v: error %q, want one line mentioning %q", tc.args, tc.env, msg, w)
			}
		}
	}
}

// Every configuration error exits 2 (docs/operations.md §1), whether the
// flag parser, validation or building the parts finds it; -h and
// --version exit 0.
func TestConfigErrorsExit2(t *testing.T) {
	base := []string{"--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--nats-listen", "off"}
	for _, args := range [][]string{
		{"--loops", "x"},
		{"--prefix", "a b", "--insecure"},
		{"--allowed-origins", "ftp://x y", "--insecure"},
		{"--trust-proxy", "not-an-ip", "--insecure"},
		{"--jwt-secret-files", "/no/such/file"},
		{"--jwt-secret-files", "/no/such/file", "--insecure"},
		{}, // no JWT keys and no --insecure
	} {
		if code := run(append(append([]string(nil), base...), args...)); code != exitBadConf {
			t.Errorf("%v: exit code %d, want %d", args, code, exitBadConf)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--version"}} {
		if code := run(args); code != exitOK {
			t.Errorf("%v: exit code %d, want 0", args, code)
		}
	}
	if v := versionString(); !strings.HasPrefix(v, "pushd ") || !strings.Contains(v, "go1.") {
		t.Errorf("version %q", v)
	}
}

// A busy embedded NATS port fails start-up at once (exit 1), naming the
// address and the cause, instead of waiting for a start-up timeout.
func TestEmbeddedNATSPortBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()
	start := time.Now()
	_, err = startEmbeddedNATS(busy, nil)
	if err == nil || !strings.Contains(err.Error(), busy) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("error %v, want one naming %s and the cause", err, busy)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failed after %v, want at once", d)
	}
	args := []string{"--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--nats-listen", busy, "--insecure"}
	if code := run(args); code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
}
