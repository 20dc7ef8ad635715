//go:build linux

package scenario

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func TestHTTPPublisher(t *testing.T) {
	bodies := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		if strings.Contains(string(b), "full") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p, err := newHTTPPublisher(&Config{PublishURL: srv.URL, PublishBody: `{"topic":"{{topic}}","data":{{payload}}}`})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if err := p.Publish(ctx, "a.b", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := <-bodies; got != `{"topic":"a.b","data":{"n":1}}` {
		t.Fatalf("body %s", got)
	}
	err = p.Publish(ctx, "full", []byte(`1`))
	if err == nil || publishKind(err) != "publish_http_503" {
		t.Fatalf("error %v, kind %q", err, publishKind(err))
	}
}

func TestNATSPublisher(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	sub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs := make(chan *nats.Msg, 1)
	if _, err := sub.ChanSubscribe("pushd.>", msgs); err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	p, err := newNATSPublisher(&Config{NATSURL: ns.ClientURL(), NATSSubject: "pushd.{{topic}}"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Publish(context.Background(), "lt.0", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.Subject != "pushd.lt.0" || string(m.Data) != `{"x":1}` {
			t.Fatalf("got %s %s", m.Subject, m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}

func TestWSPublisher(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		// A ping before the message: the publisher must answer it.
		pong := make(chan struct{})
		c.SetPongHandler(func(string) error { close(pong); return nil })
		c.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second))
		_, m, err := c.ReadMessage()
		if err != nil {
			return
		}
		select {
		case <-pong:
			got <- string(m)
		default:
			got <- "no pong before the message"
		}
		c.ReadMessage() // until the publisher closes
	}))
	defer srv.Close()
	c := &Config{PublishWSURL: "ws" + strings.TrimPrefix(srv.URL, "http"), PublishFrame: `{"type":"publish","topic":"{{topic}}","data":{{payload}}}`}
	p, err := newWSPublisher(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the ping arrive and be answered
	if err := p.Publish(context.Background(), "t", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != `{"type":"publish","topic":"t","data":2}` {
		t.Fatalf("server got %s", m)
	}
	p.Close()
}
