// Package hub is the BASELINE that pushd is compared against in
// docs/benchmarks.md. It is not part of pushd and nothing in pushd imports
// it.
//
// It is the conventional way to build a broadcast server on
// gorilla/websocket, after gorilla's own chat example: one hub goroutine
// owns the client and topic maps and is fed by register, unregister,
// subscribe and broadcast channels; every connection has a readPump and a
// writePump goroutine and a buffered send channel; a client whose channel
// is full is dropped. Only as much of pushd's protocol (docs/protocol.md)
// is spoken as the load harness needs, so that the same harness drives
// both servers:
//
//   - GET /ws, optionally with ?topics=a,b; the server sends
//     {"type":"welcome","session":"…","ping_interval":25} first.
//   - {"id":1,"type":"subscribe","topics":["a"]} (and "unsubscribe",
//     "ping") answered by {"type":"ok","id":1}.
//   - POST /v1/publish with {"topic":"t","data":<json>} or
//     {"messages":[{"topic":…,"data":…},…]} pushes
//     {"type":"message","topic":"t","seq":N,"data":<json>} to subscribers.
//   - Pings every PingInterval; close code 4000 for a slow consumer and
//     1001 when shutting down.
//
// Keep it conventional: its value is being what a competent engineer would
// write first, not being fast.
package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/loadtest/procstat"
)

// Close codes, as in pushd's protocol.
const (
	closeGoingAway    = websocket.CloseGoingAway // 1001: server shutting down
	closeSlowConsumer = 4000                     // send buffer full
)

// Config holds the hub's knobs. The zero value gives the defaults.
type Config struct {
	// PingInterval is how often each connection is pinged (default 25 s,
	// as pushd). A connection silent for two intervals is closed. (The
	// chat example allows only 10/9 of an interval; on a loaded machine
	// that dropped healthy clients, which is not what the baseline is
	// meant to measure.)
	PingInterval time.Duration
	// SendBuffer is each client's send channel capacity (default 256).
	SendBuffer int
	// ReadBufferSize and WriteBufferSize are gorilla's per-connection I/O
	// buffers (default 1024 each, as the chat example).
	ReadBufferSize, WriteBufferSize int
	// MaxMessageSize bounds a client message (default 4096).
	MaxMessageSize int64
}

func (c *Config) defaults() {
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.SendBuffer <= 0 {
		c.SendBuffer = 256
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 1024
	}
	if c.WriteBufferSize <= 0 {
		c.WriteBufferSize = 1024
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 4096
	}
}

// Hub is the broadcast hub. Create it with New, start Run on a goroutine,
// and mount ServeWS and APIHandler on HTTP servers.
type Hub struct {
	// Static after New.
	cfg      Config
	upgrader websocket.Upgrader

	// Channels into the hub goroutine.
	register   chan *client
	unregister chan *client
	subscribe  chan subscription
	broadcast  chan []pubMsg
	done       chan struct{} // closed when Run returns

	// Atomics, safe anywhere.
	conns    atomic.Int64
	sessions atomic.Uint64

	// Owned by the hub goroutine.
	clients map[*client]struct{}
	topics  map[string]map[*client]struct{}
	seq     map[string]uint64
}

type client struct {
	hub     *Hub
	conn    *websocket.Conn
	send    chan []byte
	session string
	initial []string // topics from the query string

	// Owned by the hub goroutine; closeCode is read by writePump after
	// send is closed (the close orders the write before the read).
	subs      map[string]struct{}
	closeCode int
}

// subscription is a request from a readPump to the hub goroutine: change
// c's topics (if any are named), then queue reply (if not nil).
type subscription struct {
	c      *client
	topics []string
	unsub  bool
	reply  []byte
}

type pubMsg struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// New returns a hub with cfg's settings. Safe to call from any goroutine.
func New(cfg Config) *Hub {
	cfg.defaults()
	return &Hub{
		cfg: cfg,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  cfg.ReadBufferSize,
			WriteBufferSize: cfg.WriteBufferSize,
			CheckOrigin:     func(*http.Request) bool { return true },
		},
		register:   make(chan *client),
		unregister: make(chan *client),
		subscribe:  make(chan subscription),
		broadcast:  make(chan []pubMsg),
		done:       make(chan struct{}),
		clients:    make(map[*client]struct{}),
		topics:     make(map[string]map[*client]struct{}),
		seq:        make(map[string]uint64),
	}
}

// Connections returns the number of registered connections. Safe for
// concurrent use.
func (h *Hub) Connections() int { return int(h.conns.Load()) }

// Run is the hub goroutine. It returns when ctx is done, after telling
// every client to close with 1001 (going away).
func (h *Hub) Run(ctx context.Context) {
	defer close(h.done)
	for {
		select {
		case <-ctx.Done():
			for c := range h.clients {
				h.drop(c, closeGoingAway)
			}
			return
		case c := <-h.register:
			h.clients[c] = struct{}{}
			h.conns.Add(1)
			welcome := `{"type":"welcome","session":"` + c.session + `","ping_interval":` +
				strconv.Itoa(int(h.cfg.PingInterval/time.Second)) + `}`
			c.send <- []byte(welcome) // the channel is empty: cannot block
			h.add(c, c.initial)
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				h.drop(c, 0)
			}
		case s := <-h.subscribe:
			if _, ok := h.clients[s.c]; !ok {
				continue
			}
			if s.unsub {
				h.remove(s.c, s.topics)
			} else {
				h.add(s.c, s.topics)
			}
			if s.reply != nil {
				h.deliver(s.c, s.reply)
			}
		case batch := <-h.broadcast:
			for _, m := range batch {
				h.seq[m.Topic]++
				frame := appendMessage(nil, m.Topic, h.seq[m.Topic], m.Data)
				for c := range h.topics[m.Topic] {
					h.deliver(c, frame)
				}
			}
		}
	}
}

func (h *Hub) add(c *client, topics []string) {
	for _, t := range topics {
		subs := h.topics[t]
		if subs == nil {
			subs = make(map[*client]struct{})
			h.topics[t] = subs
		}
		subs[c] = struct{}{}
		c.subs[t] = struct{}{}
	}
}

func (h *Hub) remove(c *client, topics []string) {
	for _, t := range topics {
		delete(h.topics[t], c)
		if len(h.topics[t]) == 0 {
			delete(h.topics, t)
		}
		delete(c.subs, t)
	}
}

// deliver queues b for c, dropping c as a slow consumer if its buffer is
// full: the chat example's policy.
func (h *Hub) deliver(c *client, b []byte) {
	select {
	case c.send <- b:
	default:
		h.drop(c, closeSlowConsumer)
	}
}

// drop unregisters c and closes its send channel; writePump then sends a
// close frame with code (if non-zero) and closes the connection.
func (h *Hub) drop(c *client, code int) {
	for t := range c.subs {
		delete(h.topics[t], c)
		if len(h.topics[t]) == 0 {
			delete(h.topics, t)
		}
	}
	delete(h.clients, c)
	h.conns.Add(-1)
	c.closeCode = code
	close(c.send)
}

// appendMessage encodes a push. topic was validated to need no escaping.
func appendMessage(dst []byte, topic string, seq uint64, data json.RawMessage) []byte {
	dst = append(dst, `{"type":"message","topic":"`...)
	dst = append(dst, topic...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// ServeWS upgrades a request on /ws and starts the connection's pumps.
// net/http calls it on the request's goroutine.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request) {
	var initial []string
	if q := r.URL.Query().Get("topics"); q != "" {
		for _, t := range strings.Split(q, ",") {
			if !validTopicName(t) {
				http.Error(w, "bad topic", http.StatusBadRequest)
				return
			}
			initial = append(initial, t)
		}
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	c := &client{
		hub:     h,
		conn:    conn,
		send:    make(chan []byte, h.cfg.SendBuffer),
		session: "r" + strconv.FormatUint(h.sessions.Add(1), 36),
		initial: initial,
		subs:    make(map[string]struct{}),
	}
	select {
	case h.register <- c:
	case <-h.done:
		conn.Close()
		return
	}
	go c.writePump()
	go c.readPump()
}

// command is a client command.
type command struct {
	ID     json.RawMessage `json:"id"`
	Type   string          `json:"type"`
	Topics []string        `json:"topics"`
}

// readPump reads commands until the connection fails, then unregisters.
func (c *client) readPump() {
	h := c.hub
	defer func() {
		select {
		case h.unregister <- c:
		case <-h.done:
		}
		c.conn.Close()
	}()
	pongWait := 2 * h.cfg.PingInterval
	c.conn.SetReadLimit(h.cfg.MaxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var cmd command
		if err := json.Unmarshal(msg, &cmd); err != nil || cmd.ID == nil {
			if !c.reply(`{"error":{"code":"bad_request","message":"not a command"}}`) {
				return
			}
			continue
		}
		switch cmd.Type {
		case "subscribe", "unsubscribe":
			ok := len(cmd.Topics) > 0
			for _, t := range cmd.Topics {
				ok = ok && validTopicName(t)
			}
			if !ok {
				if !c.reply(`{"id":` + string(cmd.ID) + `,"error":{"code":"bad_request","message":"bad topics"}}`) {
					return
				}
				continue
			}
			select {
			case h.subscribe <- subscription{c: c, topics: cmd.Topics, unsub: cmd.Type == "unsubscribe",
				reply: []byte(`{"type":"ok","id":` + string(cmd.ID) + `}`)}:
			case <-h.done:
				return
			}
		case "ping":
			if !c.reply(`{"type":"ok","id":` + string(cmd.ID) + `}`) {
				return
			}
		default:
			if !c.reply(`{"id":` + string(cmd.ID) + `,"error":{"code":"bad_request","message":"unknown type"}}`) {
				return
			}
		}
	}
}

// reply queues a direct answer. Only the hub goroutine may send on c.send
// (it also closes it), so the answer travels through the hub.
func (c *client) reply(s string) bool {
	select {
	case c.hub.subscribe <- subscription{c: c, reply: []byte(s)}:
		return true
	case <-c.hub.done:
		return false
	}
}

// writePump writes queued messages and pings until send is closed or a
// write fails.
func (c *client) writePump() {
	const writeWait = 10 * time.Second
	ticker := time.NewTicker(c.hub.cfg.PingInterval)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case msg, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				if c.closeCode != 0 {
					c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, ""))
				}
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// publishRequest is the body of POST /v1/publish: one message, or a batch.
type publishRequest struct {
	Topic    string          `json:"topic"`
	Data     json.RawMessage `json:"data"`
	Messages []pubMsg        `json:"messages"`
}

// APIHandler serves POST /v1/publish, GET /readyz and GET /metrics.
// net/http calls it on request goroutines.
func (h *Hub) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/publish", h.servePublish)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-h.done:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("ok\n"))
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		b := []byte("# TYPE refhub_connections gauge\nrefhub_connections ")
		b = strconv.AppendInt(b, h.conns.Load(), 10)
		if rss := procstat.SelfRSS(); rss > 0 {
			b = append(b, "\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes "...)
			b = strconv.AppendInt(b, rss, 10)
		}
		w.Write(append(b, '\n'))
	})
	return mux
}

func (h *Hub) servePublish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&req); err != nil {
		http.Error(w, `{"error":{"code":"bad_request","message":"bad JSON"}}`, http.StatusBadRequest)
		return
	}
	batch := req.Messages
	if batch == nil {
		batch = []pubMsg{{Topic: req.Topic, Data: req.Data}}
	}
	for _, m := range batch {
		if !validTopicName(m.Topic) || len(m.Data) == 0 {
			http.Error(w, `{"error":{"code":"bad_request","message":"bad topic or data"}}`, http.StatusBadRequest)
			return
		}
	}
	select {
	case h.broadcast <- batch:
	case <-h.done:
		http.Error(w, `{"error":{"code":"unavailable","message":"shutting down"}}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"ok":true,"count":` + strconv.Itoa(len(batch)) + `}`))
}

// validTopicName accepts exactly the topic names pushd accepts.
func validTopicName(t string) bool { return codec.ValidTopic(t) == nil }
