package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestMain lets the test binary act as the pushd daemon when re-executed
// with PUSHD_TEST_DAEMON=1, so the drain test runs a real process.
func TestMain(m *testing.M) {
	if os.Getenv("PUSHD_TEST_DAEMON") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir) // the chaos tests' binaries
	}
	os.Exit(code)
}

// SIGTERM drains: every client receives close 1001, and the process exits 0
// within the grace period.
func TestDrainOnSIGTERM(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:0", "--drain-grace", "5s", "--log-format", "text", "--insecure")
	cmd.Env = append(os.Environ(), "PUSHD_TEST_DAEMON=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The "pushd serving" log line names the WebSocket URL.
	lines := bufio.NewScanner(stderr)
	var url string
	re := regexp.MustCompile(`ws=(ws://\S+)`)
	for lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		t.Fatal("daemon did not log its URL")
	}
	go func() { // keep draining stderr so the daemon never blocks on it
		for lines.Scan() {
			t.Log(lines.Text())
		}
	}()
	var clients []*websocket.Conn
	for i := 0; i < 20; i++ {
		c, _, err := websocket.DefaultDialer.Dial(url+"?topics=d", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, p, err := c.ReadMessage()
			if err == nil {
				if !strings.Contains(string(p), `"welcome"`) {
					t.Fatalf("client %d: unexpected message %s", i, p)
				}
				continue
			}
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Fatalf("client %d ended with %v, want close 1001", i, err)
			}
			break
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exited with %v, want 0", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("daemon did not exit within the grace period")
	}
	t.Logf("drained and exited in %v", time.Since(start))
}
