// Package api is pushd's HTTP API: POST /v1/publish for backends, the
// liveness and readiness probes, and the /metrics endpoint (docs/protocol.md
// §9). It is a thin adapter over the topic hub; every handler is safe for
// concurrent use, as net/http requires.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/topics"
	"github.com/pushd/pushd/topics/broker"
	"github.com/pushd/pushd/topics/metric"
)

// Publisher publishes and waits for the bus to confirm: a *topics.Hub.
type Publisher interface {
	PublishWait(ctx context.Context, msgs []broker.Outgoing) ([]broker.Ack, error)
}

// HistoryReader reads the history of durable topics: a *topics.Hub.
type HistoryReader interface {
	History(ctx context.Context, topic string, since codec.Position, limit int) (topics.HistoryPage, error)
}

// Config configures the API. Zero fields take the defaults beside them.
type Config struct {
	// Hub publishes. Required.
	Hub Publisher
	// History serves GET /v1/history; nil means 404.
	History HistoryReader
	// Keys are the API keys; when set, POST /v1/publish needs
	// "Authorization: Bearer <key>". Health and metrics stay open.
	Keys []string
	// Ready reports readiness for GET /readyz; nil means always ready.
	Ready func() bool
	// Metrics serves GET /metrics; nil means 404.
	Metrics http.Handler
	// MaxBody bounds a publish body (413 past it). Default 4 MiB.
	MaxBody int64
	// PublishTimeout bounds how long a publish waits for the bus (503
	// past it). Default 5s.
	PublishTimeout time.Duration
	// Logger receives a debug line per refused key. Default slog.Default().
	Logger *slog.Logger
	// PublishLatency, when set, records the time each POST /v1/publish
	// took until the bus confirmed (or refused) its messages, in seconds
	// (see PublishLatencyBounds).
	PublishLatency *metric.Histogram
}

// Defaults of Config.
const (
	DefaultMaxBody        = 4 << 20
	DefaultPublishTimeout = 5 * time.Second
)

// PublishLatencyBounds are the upper bounds, in seconds, of the publish
// latency histogram: 100 µs … 6.5 s.
var PublishLatencyBounds = metric.ExponentialBounds(0.0001, 2, 17)

// API is the HTTP API of one node.
type API struct {
	// Immutable after New.
	cfg  Config
	keys [][sha256.Size]byte // SHA-256 of each key, compared in constant time
}

// New returns the API. Any goroutine.
func New(cfg Config) *API {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg}
	for _, k := range cfg.Keys {
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	return a
}

// Handler returns the API's routes. Any goroutine.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/publish", a.handlePublish)
	if a.cfg.History != nil {
		mux.HandleFunc("GET /v1/history", a.handleHistory)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if a.cfg.Ready != nil && !a.cfg.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if a.cfg.Metrics != nil {
		mux.Handle("GET /metrics", a.cfg.Metrics)
	}
	return mux
}

// MaxIDLen is the longest idempotency id a publish may carry: it travels
// as a NATS header, whose size is bounded, so a longer one could never be
// published, and a 503 would invite retries forever.
const MaxIDLen = 1024

// publishRequest is the body of POST /v1/publish. Exactly one form is used:
//
//	{"topic":"t","data":…}            one message to one topic
//	{"topics":["a","b"],"data":…}     one message to many topics
//	{"messages":[{"topic":"t","data":…},…]}  many messages
type publishRequest struct {
	Topic    string           `json:"topic"`
	Topics   []string         `json:"topics"`
	Data     json.RawMessage  `json:"data"`
	ID       string           `json:"id"`
	Messages []publishMessage `json:"messages"`
}

type publishMessage struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	ID    string          `json:"id"`
}

// authorized reports whether r carries one of the API keys. Both sides are
// hashed first, so the comparison takes the same time whatever the
// lengths. With no keys configured every request is authorized.
func (a *API) authorized(r *http.Request) (bool, string) {
	if len(a.keys) == 0 {
		return true, ""
	}
	// The auth scheme is case-insensitive (RFC 9110 §11.1).
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false, ""
	}
	tok = strings.TrimSpace(tok)
	h := sha256.Sum256([]byte(tok))
	match := 0
	for _, k := range a.keys {
		match |= subtle.ConstantTimeCompare(h[:], k[:])
	}
	return match == 1, tok
}

// Error writes a JSON error in the protocol's shape, without an id:
// {"type":"error","error":{"code":…,"message":…}}. Any goroutine.
func Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b := codec.AppendError(nil, nil, code, msg)
	_, _ = w.Write(append(b, '\n'))
}

func (a *API) handlePublish(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if ok, tok := a.authorized(r); !ok {
		a.cfg.Logger.Debug("api key refused", "remote", r.RemoteAddr, "key", auth.Fingerprint(tok))
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushd"`)
		Error(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API key")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			Error(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", a.cfg.MaxBody))
			return
		}
		Error(w, http.StatusBadRequest, codec.CodeBadRequest, "reading body: "+err.Error())
		return
	}
	// JSON is UTF-8 (RFC 8259 §8.1); encoding/json would let invalid
	// bytes through into data, which then could not arrive as sent.
	if !utf8.Valid(body) {
		Error(w, http.StatusBadRequest, codec.CodeBadJSON, "body is not valid UTF-8")
		return
	}
	var req publishRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		Error(w, http.StatusBadRequest, codec.CodeBadJSON, "body is not valid JSON: "+err.Error())
		return
	}
	// Only white space may follow: Decoder.More alone misses a stray
	// ']' or '}'.
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		Error(w, http.StatusBadRequest, codec.CodeBadJSON, "trailing data after the JSON body")
		return
	}
	msgs, err := req.messages()
	if err != nil {
		Error(w, http.StatusBadRequest, codec.CodeBadRequest, err.Error())
		return
	}
	for i, m := range msgs {
		if err := codec.ValidTopic(m.Topic); err != nil {
			Error(w, http.StatusBadRequest, codec.CodeInvalidTopic, fmt.Sprintf("message %d: %v", i, err))
			return
		}
		if len(m.ID) > MaxIDLen {
			Error(w, http.StatusBadRequest, codec.CodeBadRequest, fmt.Sprintf("message %d: id longer than %d bytes", i, MaxIDLen))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.PublishTimeout)
	defer cancel()
	acks, err := a.cfg.Hub.PublishWait(ctx, msgs)
	if a.cfg.PublishLatency != nil {
		a.cfg.PublishLatency.Observe(time.Since(start).Seconds())
	}
	switch {
	case errors.Is(err, broker.ErrTooLarge):
		Error(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
		return
	case err != nil:
		Error(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(appendPublished(nil, acks), '\n'))
}

// appendPublished appends the answer to a publish: {"published":N}, with,
// for a durable topic, where the message is in its history: one message
// adds "offset" and "epoch" ("duplicate":true when its id was already
// stored), several add "acks", one object per message in request order
// ({} for a topic without history).
func appendPublished(dst []byte, acks []broker.Ack) []byte {
	dst = append(dst, `{"published":`...)
	dst = strconv.AppendInt(dst, int64(len(acks)), 10)
	durable := false
	for _, a := range acks {
		durable = durable || a.Epoch != ""
	}
	switch {
	case !durable:
	case len(acks) == 1:
		dst = appendAck(append(dst, ','), acks[0])
	default:
		dst = append(dst, `,"acks":[`...)
		for i, a := range acks {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			if a.Epoch != "" {
				dst = appendAck(dst, a)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendAck appends an ack's fields: "offset":N,"epoch":"E" and maybe
// "duplicate":true.
func appendAck(dst []byte, a broker.Ack) []byte {
	dst = append(dst, `"offset":`...)
	dst = strconv.AppendUint(dst, a.Offset, 10)
	dst = append(dst, `,"epoch":`...)
	dst = strconv.AppendQuote(dst, a.Epoch) // an epoch is [A-Za-z0-9_-]: quoting is JSON's
	if a.Duplicate {
		dst = append(dst, `,"duplicate":true`...)
	}
	return dst
}

// handleHistory serves GET /v1/history?topic=T&since=N&epoch=E&limit=L:
// the stored messages of a durable topic after offset N of epoch E (from
// the oldest without since), at most L (default 100, at most 1000), in the
// shape of the history command's reply without an id.
func (a *API) handleHistory(w http.ResponseWriter, r *http.Request) {
	if ok, tok := a.authorized(r); !ok {
		a.cfg.Logger.Debug("api key refused", "remote", r.RemoteAddr, "key", auth.Fingerprint(tok))
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushd"`)
		Error(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API key")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		Error(w, http.StatusBadRequest, codec.CodeBadRequest, "malformed query string")
		return
	}
	topic := q.Get("topic")
	if err := codec.ValidTopic(topic); err != nil {
		Error(w, http.StatusBadRequest, codec.CodeInvalidTopic, err.Error())
		return
	}
	var since codec.Position
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > codec.MaxOffset {
			Error(w, http.StatusBadRequest, codec.CodeBadRequest, "since must be an offset from 0 to 2^53-1")
			return
		}
		since.Offset = n
	}
	if e := q.Get("epoch"); e != "" || since.Offset > 0 {
		if !codec.ValidEpoch(e) {
			Error(w, http.StatusBadRequest, codec.CodeBadRequest, "since needs a valid epoch")
			return
		}
		since.Epoch = e
	}
	limit := codec.DefaultHistoryLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > codec.MaxHistoryLimit {
			Error(w, http.StatusBadRequest, codec.CodeBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", codec.MaxHistoryLimit))
			return
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.PublishTimeout)
	defer cancel()
	page, err := a.cfg.History.History(ctx, topic, since, limit)
	switch {
	case errors.Is(err, topics.ErrNotDurable):
		Error(w, http.StatusNotFound, codec.CodeNotDurable, "topic "+topic+" keeps no history")
		return
	case errors.Is(err, topics.ErrEpochChanged):
		Error(w, http.StatusConflict, codec.CodeEpochChanged, "the history of this position was replaced")
		return
	case err != nil:
		Error(w, http.StatusServiceUnavailable, codec.CodeUnavailable, err.Error())
		return
	}
	page = page.Cut(codec.MaxHistoryBytes)
	w.Header().Set("Content-Type", "application/json")
	b := codec.AppendHistoryOK(nil, nil, page.Epoch, page.Messages, page.More, page.Trimmed)
	_, _ = w.Write(append(b, '\n'))
}

// messages flattens the three request forms into a list.
func (req *publishRequest) messages() ([]broker.Outgoing, error) {
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
		out := make([]broker.Outgoing, len(req.Messages))
		for i, m := range req.Messages {
			if m.Data == nil {
				return nil, fmt.Errorf("message %d has no \"data\"", i)
			}
			out[i] = broker.Outgoing{Topic: m.Topic, Data: m.Data, ID: m.ID}
		}
		return out, nil
	case req.Data == nil:
		return nil, errors.New(`missing "data"`)
	case req.Topics != nil:
		if len(req.Topics) == 0 {
			return nil, errors.New(`"topics" is empty`)
		}
		out := make([]broker.Outgoing, len(req.Topics))
		for i, t := range req.Topics {
			out[i] = broker.Outgoing{Topic: t, Data: req.Data, ID: req.ID}
		}
		return out, nil
	}
	return []broker.Outgoing{{Topic: req.Topic, Data: req.Data, ID: req.ID}}, nil
}
