package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jsTestDir holds pushd.js's tests, with their own package.json.
var jsTestDir = filepath.Join("web", "test")

// TestJSClient runs the JavaScript client's tests (web/test) with Node's
// test runner against a pushd binary built from this tree: in Node with the
// ws package, and in headless Chromium with puppeteer-core the demo page
// (served by pushd) and EventSource on pushd's SSE endpoint. The same run
// drives pushd's Socket.IO endpoint with the npm socket.io-client, in Node
// (socketio.test.mjs: WebSocket, long-polling, the upgrade) and in Chromium
// from a page of another origin (socketio-browser.test.mjs: CORS);
// TestSocketIOTwoNodes runs it against two nodes (socketio-cluster.test.mjs).
//
// It skips when node (20 or later), the npm packages (npm ci in
// cmd/pushd/web/test) or Chromium are missing, unless
// PUSHD_REQUIRE_BROWSER=1 (set by CI, which installs them), in which case a
// missing tool fails the test.
func TestJSClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts pushd processes and a browser; not in -short")
	}
	node := findNode(t)
	for _, pkg := range []string{"ws", "puppeteer-core", "typescript", "socket.io-client"} {
		if _, err := os.Stat(filepath.Join(jsTestDir, "node_modules", pkg, "package.json")); err != nil {
			requireTool(t, "the npm package "+pkg+" is not installed (cd cmd/pushd/web/test && npm ci)")
		}
	}
	bin := buildPushd(t)

	t.Run("node", func(t *testing.T) {
		runNodeTests(t, node, bin, "", "client.test.mjs", "script.test.mjs", "types.test.mjs", "socketio.test.mjs", "compression.test.mjs")
	})
	t.Run("chromium", func(t *testing.T) {
		chromium := os.Getenv("CHROMIUM")
		if chromium == "" {
			chromium = "/usr/bin/chromium"
		}
		if _, err := os.Stat(chromium); err != nil {
			requireTool(t, "Chromium is not installed at "+chromium+" (apt-get install chromium)")
		}
		runNodeTests(t, node, bin, chromium, "browser.test.mjs", "sse.test.mjs", "socketio-browser.test.mjs")
	})
}

// requireTool skips with msg, or fails when PUSHD_REQUIRE_BROWSER=1.
func requireTool(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("PUSHD_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + ", and PUSHD_REQUIRE_BROWSER=1")
	}
	t.Skip(msg)
}

// findNode returns the node binary if it is version 20 or later.
func findNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		requireTool(t, "node is not installed; the JavaScript client tests need Node 20 or later")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if major < 20 {
		requireTool(t, "node "+v+" is too old; the JavaScript client tests need Node 20 or later")
	}
	return node
}

// buildPushd builds this tree's pushd into a temporary directory: the JS
// tests kill, freeze and restart it as a separate process.
func buildPushd(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("the go command is not in PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pushd")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// nodeSummary matches the runner's closing counts in TAP output.
var nodeSummary = regexp.MustCompile(`^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$`)

// runNodeTests runs `node --test files…` in the test folder and fails with
// its output when any test fails. Skipped JS tests (a pushd without a
// feature they test) are logged with their reason.
func runNodeTests(t *testing.T, node, bin, chromium string, files ...string) {
	t.Helper()
	env := []string{"PUSHD_BIN=" + bin}
	if chromium != "" {
		env = append(env, "CHROMIUM="+chromium)
	}
	runNodeTestsEnv(t, node, env, files...)
}

// runNodeTestsEnv is runNodeTests with env (NAME=value) added to this
// process's environment.
func runNodeTestsEnv(t *testing.T, node string, env []string, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"--test", "--test-reporter=tap", "--test-timeout=120000"}, files...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = jsTestDir
	cmd.Env = append(os.Environ(), env...)
	// Own process group: whatever the tests leave behind (a pushd after a
	// crash of node) is killed with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	counts := map[string]int{}
	var skips []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if m := nodeSummary.FindStringSubmatch(line); m != nil {
			counts[m[1]], _ = strconv.Atoi(m[2])
		}
		if strings.Contains(line, "# SKIP") {
			skips = append(skips, strings.TrimSpace(line))
		}
	}
	if err != nil || counts["fail"] > 0 || counts["cancelled"] > 0 {
		t.Fatalf("node --test %s: %v\n%s", strings.Join(files, " "), err, out)
	}
	if counts["pass"] == 0 && counts["skipped"] == 0 {
		t.Fatalf("node --test ran no test:\n%s", out)
	}
	t.Logf("node --test %s: %d passed, %d skipped", strings.Join(files, " "), counts["pass"], counts["skipped"])
	for _, s := range skips {
		t.Log(s)
	}
}
