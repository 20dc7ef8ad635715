package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/topics/broker"
)

// maxPublishBody bounds a POST /v1/publish body.
const maxPublishBody = 4 << 20

// apiHandler returns the HTTP API: publish, health, readiness, metrics.
func (n *node) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/publish", n.handlePublish)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		n.writeMetrics(w)
	})
	return mux
}

// publishRequest is the body of POST /v1/publish. Exactly one form is used:
//
//	{"topic":"t","data":…}            one message to one topic
//	{"topics":["a","b"],"data":…}     one message to many topics
//	{"messages":[{"topic":"t","data":…},…]}  many messages
type publishRequest struct {
	Topic    string           `json:"topic"`
	Topics   []string         `json:"topics"`
	Data     json.RawMessage  `json:"data"`
	Messages []publishMessage `json:"messages"`
}

type publishMessage struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// authorized reports whether r carries one of the API keys, compared in
// constant time. With no keys configured every request is authorized.
func (n *node) authorized(r *http.Request) bool {
	if len(n.cfg.APIKeys) == 0 {
		return true
	}
	// The auth scheme is case-insensitive (RFC 9110 §11.1).
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return keyMatches(strings.TrimSpace(tok), n.cfg.APIKeys)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b := codec.AppendError(nil, nil, code, msg)
	_, _ = w.Write(append(b, '\n'))
}

func (n *node) handlePublish(w http.ResponseWriter, r *http.Request) {
	if !n.authorized(r) {
		n.log.Debug("api key refused", "remote", r.RemoteAddr, "authorization", r.Header.Get("Authorization"))
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushd"`)
		apiError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API key")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublishBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			apiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", maxPublishBody))
			return
		}
		apiError(w, http.StatusBadRequest, "bad_request", "reading body: "+err.Error())
		return
	}
	var req publishRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, codec.CodeBadJSON, "body is not valid JSON: "+err.Error())
		return
	}
	if dec.More() {
		apiError(w, http.StatusBadRequest, codec.CodeBadJSON, "trailing data after the JSON body")
		return
	}
	msgs, err := req.messages()
	if err != nil {
		apiError(w, http.StatusBadRequest, codec.CodeBadRequest, err.Error())
		return
	}
	for i, m := range msgs {
		if err := codec.ValidTopic(m.Topic); err != nil {
			apiError(w, http.StatusBadRequest, codec.CodeInvalidTopic, fmt.Sprintf("message %d: %v", i, err))
			return
		}
	}
	for i, m := range msgs {
		if err := n.hub.Publish(m.Topic, m.Data); err != nil {
			if errors.Is(err, broker.ErrTooLarge) {
				apiError(w, http.StatusRequestEntityTooLarge, "too_large",
					fmt.Sprintf("message %d is over the NATS payload limit of %d bytes", i, n.nc.MaxPayload()))
				return
			}
			apiError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("message %d: %v", i, err))
			return
		}
	}
	// Flush so a 200 means NATS has the messages, not just our buffer.
	if err := n.nc.FlushTimeout(5 * time.Second); err != nil {
		apiError(w, http.StatusServiceUnavailable, "unavailable", "NATS flush: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, "{\"published\":%d}\n", len(msgs))
}

// messages flattens the three request forms into a list.
func (req *publishRequest) messages() ([]publishMessage, error) {
	forms := 0
	if req.Topic != "" {
		forms++
	}
	if req.Topics != nil {
		forms++
	}
	if req.Messages != nil {
		forms++
	}
	if forms != 1 {
		return nil, errors.New(`use exactly one of "topic", "topics" or "messages"`)
	}
	switch {
	case req.Messages != nil:
		if req.Data != nil {
			return nil, errors.New(`"data" goes inside each of "messages"`)
		}
		if len(req.Messages) == 0 {
			return nil, errors.New(`"messages" is empty`)
		}
		for i, m := range req.Messages {
			if m.Data == nil {
				return nil, fmt.Errorf("message %d has no \"data\"", i)
			}
		}
		return req.Messages, nil
	case req.Data == nil:
		return nil, errors.New(`missing "data"`)
	case req.Topics != nil:
		if len(req.Topics) == 0 {
			return nil, errors.New(`"topics" is empty`)
		}
		out := make([]publishMessage, len(req.Topics))
		for i, t := range req.Topics {
			out[i] = publishMessage{Topic: t, Data: req.Data}
		}
		return out, nil
	}
	return []publishMessage{{Topic: req.Topic, Data: req.Data}}, nil
}
