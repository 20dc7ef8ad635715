//go:build linux

package scenario

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/loadtest/internal/tmpl"
)

// publisher hands messages to the system under test. Publish is called
// from one goroutine at a time, in order, so per-topic order is the order
// of the calls.
type publisher interface {
	Publish(ctx context.Context, topic string, payload []byte) error
	// Flush waits until everything published so far has left this process.
	Flush(ctx context.Context) error
	Close() error
}

func newPublisher(ctx context.Context, c *Config) (publisher, error) {
	switch c.Publisher {
	case PublishHTTP:
		return newHTTPPublisher(c)
	case PublishNATS:
		return newNATSPublisher(c)
	case PublishWS:
		return newWSPublisher(ctx, c)
	}
	return nil, fmt.Errorf("unknown publisher %q", c.Publisher)
}

// httpPublisher POSTs each message, on one keep-alive connection.
type httpPublisher struct {
	url    string
	body   tmpl.T
	client *http.Client
	buf    []byte
}

func newHTTPPublisher(c *Config) (*httpPublisher, error) {
	body, err := tmpl.Parse(c.PublishBody)
	if err != nil {
		return nil, err
	}
	return &httpPublisher{url: c.PublishURL, body: body, client: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 2, DisableCompression: true, IdleConnTimeout: time.Minute,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
	}}, nil
}

// Publish implements publisher: one POST of the body template.
func (p *httpPublisher) Publish(ctx context.Context, topic string, payload []byte) error {
	p.buf = p.body.Append(p.buf[:0], topic, 0, payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.buf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain, to reuse the connection
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &publishError{kind: fmt.Sprintf("publish_http_%d", resp.StatusCode)}
	}
	return nil
}

// Flush implements publisher; each POST has already completed.
func (p *httpPublisher) Flush(context.Context) error { return nil }

// Close implements publisher.
func (p *httpPublisher) Close() error {
	p.client.CloseIdleConnections()
	return nil
}

// publishError carries the error kind a failed publish is counted under.
type publishError struct{ kind string }

// Error implements error.
func (e *publishError) Error() string { return e.kind }

// publishKind names a publish error for the error counts.
func publishKind(err error) string {
	var pe *publishError
	if errors.As(err, &pe) {
		return pe.kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "publish_timeout"
	}
	return "publish_error"
}

// natsPublisher publishes raw payloads to a subject per topic.
type natsPublisher struct {
	nc      *nats.Conn
	subject tmpl.T
	buf     []byte
}

func newNATSPublisher(c *Config) (*natsPublisher, error) {
	subject, err := tmpl.Parse(c.NATSSubject)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.NATSURL, nats.Name("pushd-loadtest"), nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	return &natsPublisher{nc: nc, subject: subject}, nil
}

// Publish implements publisher; nats.go buffers and sends in the background.
func (p *natsPublisher) Publish(_ context.Context, topic string, payload []byte) error {
	p.buf = p.subject.Append(p.buf[:0], topic, 0, nil)
	return p.nc.Publish(string(p.buf), payload)
}

// Flush implements publisher: a round trip to the NATS server.
func (p *natsPublisher) Flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // nats.go insists on a deadline
	defer cancel()
	return p.nc.FlushWithContext(ctx)
}

// Close implements publisher.
func (p *natsPublisher) Close() error {
	p.nc.Close()
	return nil
}

// wsPublisher sends a frame per message on its own WebSocket connection,
// for servers whose clients publish. A goroutine reads whatever the server
// sends and answers pings (RFC 6455 §5.5.2).
type wsPublisher struct {
	conn  net.Conn
	frame tmpl.T
	wmu   sync.Mutex // wmu makes each frame a single uninterrupted write
	buf   []byte
	done  chan struct{}
}

func newWSPublisher(ctx context.Context, c *Config) (*wsPublisher, error) {
	frame, err := tmpl.Parse(c.PublishFrame)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(dctx, c.PublishWSURL)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	p := &wsPublisher{conn: conn, frame: frame, done: make(chan struct{})}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	go p.readLoop(bufio.NewReader(r))
	return p, nil
}

// maxPublisherFrame bounds what the publisher connection accepts: it only
// needs control frames and short replies.
const maxPublisherFrame = 1 << 20

func (p *wsPublisher) readLoop(r io.Reader) {
	defer close(p.done)
	var payload []byte
	for {
		h, err := ws.ReadHeader(r)
		if err != nil || h.Length > maxPublisherFrame {
			return
		}
		payload = append(payload[:0], make([]byte, h.Length)...)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			p.write(ws.OpPong, payload)
		case ws.OpClose:
			p.write(ws.OpClose, payload[:min(2, len(payload))])
			return
		}
	}
}

func (p *wsPublisher) write(op ws.OpCode, payload []byte) error {
	frame := ws.NewFrame(op, true, bytes.Clone(payload))
	b, err := ws.CompileFrame(ws.MaskFrameInPlace(frame))
	if err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err = p.conn.Write(b)
	return err
}

// Publish implements publisher: one masked text frame.
func (p *wsPublisher) Publish(_ context.Context, topic string, payload []byte) error {
	p.buf = p.frame.Append(p.buf[:0], topic, 0, payload)
	return p.write(ws.OpText, p.buf)
}

// Flush implements publisher; each frame has already been written.
func (p *wsPublisher) Flush(context.Context) error { return nil }

// Close implements publisher: a close frame (1000), then the socket.
func (p *wsPublisher) Close() error {
	p.write(ws.OpClose, []byte{0x03, 0xe8}) // 1000
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
	return p.conn.Close()
}
