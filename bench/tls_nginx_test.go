package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/ws"
)

// TestTLSThroughNginx checks the wss:// deployment that docs/security.md
// describes: a TLS client → Debian's nginx, terminating TLS with a
// certificate made here → pushd over plain TCP. A message published to the
// hub must reach the client through the proxy.
//
// It skips when nginx is not installed, unless PUSHD_REQUIRE_NGINX=1 (set
// by CI, which installs it), in which case a missing nginx fails the test.
func TestTLSThroughNginx(t *testing.T) {
	nginx := findNginx(t)
	n := startNode(t, 1, conn.Config{}, ws.Config{})
	dir := t.TempDir()
	pool := writeSelfSignedCert(t, dir)
	port := freePort(t)
	startNginx(t, nginx, dir, port, n.srv.Addr())

	d := websocket.Dialer{
		TLSClientConfig:  &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		HandshakeTimeout: 5 * time.Second,
	}
	url := fmt.Sprintf("wss://127.0.0.1:%d/ws?topics=tls.test", port)
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v %s\nnginx error log:\n%s", url, err, status, readFile(dir, "error.log"))
	}
	defer c.Close()
	if tc, ok := c.UnderlyingConn().(*tls.Conn); !ok || !tc.ConnectionState().HandshakeComplete {
		t.Fatalf("the client connection is %T, not a completed TLS connection", c.UnderlyingConn())
	}

	frames := make(chan []byte, 16)
	readErr := make(chan error, 1)
	go func() {
		for {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			frames <- p
		}
	}()
	var first struct {
		Type string `json:"type"`
	}
	select {
	case p := <-frames:
		if err := json.Unmarshal(p, &first); err != nil || first.Type != "welcome" {
			t.Fatalf("first frame %q, want the welcome message", p)
		}
	case err := <-readErr:
		t.Fatalf("reading the welcome message: %v", err)
	}

	// The ?topics= subscription is made when the connection opens; the
	// hub's upstream NATS subscription goes out on the same connection that
	// Publish uses, so once it is counted a publish cannot overtake it.
	waitFor(t, "the tls.test subscription", 5*time.Second, func() bool { return n.hub.Stats().Subscriptions == 1 })
	payload := `{"via":"nginx","n":1}`
	if err := n.hub.Publish("tls.test", []byte(payload)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-frames:
		var msg struct {
			Type  string          `json:"type"`
			Topic string          `json:"topic"`
			Seq   uint64          `json:"seq"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(p, &msg); err != nil {
			t.Fatalf("push %q: %v", p, err)
		}
		if msg.Type != "message" || msg.Topic != "tls.test" || string(msg.Data) != payload {
			t.Fatalf("push = %s, want a message on tls.test with data %s", p, payload)
		}
	case err := <-readErr:
		t.Fatalf("reading the push: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no push arrived through nginx within 5s")
	}
}

// findNginx returns the nginx binary, or skips (fails with
// PUSHD_REQUIRE_NGINX=1) when there is none.
func findNginx(t *testing.T) string {
	t.Helper()
	// Debian installs nginx in /usr/sbin, which is not on every PATH.
	path, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr == nil {
			return "/usr/sbin/nginx"
		}
		msg := "nginx is not installed (apt-get install nginx); the wss:// deployment test needs it"
		if os.Getenv("PUSHD_REQUIRE_NGINX") == "1" {
			t.Fatal(msg + ", and PUSHD_REQUIRE_NGINX=1")
		}
		t.Skip(msg)
	}
	return path
}

// writeSelfSignedCert writes a P-256 certificate for 127.0.0.1 and
// localhost, and its key, as dir/cert.pem and dir/key.pem, and returns a
// pool that trusts it.
func writeSelfSignedCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "pushd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, dir, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// nginxConf is the test's nginx.conf: the proxy settings are those
// docs/security.md recommends; every path is in the test's directory.
const nginxConf = `daemon off;
%[1]s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    server {
        listen 127.0.0.1:%[3]d ssl;
        ssl_certificate %[2]s/cert.pem;
        ssl_certificate_key %[2]s/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://%[4]s;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }
    }
}
`

// startNginx runs nginx in the foreground on 127.0.0.1:port, proxying to
// upstream, and stops it when the test ends.
func startNginx(t *testing.T, nginx, dir string, port int, upstream string) {
	t.Helper()
	user := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody, who cannot enter the
		// test's 0700 directory.
		user = "user root;"
	}
	conf := filepath.Join(dir, "nginx.conf")
	writeFile(t, dir, "nginx.conf", []byte(fmt.Sprintf(nginxConf, user, dir, port, upstream)))
	// -e sets the log used before the config is read, so nothing is
	// written outside dir.
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// SIGTERM is nginx's fast shutdown: the master stops its workers
		// and exits. The group kill covers a master that hangs.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("nginx exited: %v\n%s\nerror log:\n%s", err, out.String(), readFile(dir, "error.log"))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 10s: %v\nerror log:\n%s", addr, err, readFile(dir, "error.log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readFile returns a file's contents for a failure message.
func readFile(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "(none)"
	}
	return string(b)
}
