package conn

import (
	"net/url"
	"strings"

	"github.com/gobwas/ws"
	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/codec"
)

// protoHandler runs pushd's client protocol v1 (docs/protocol.md). It is
// stateless; each connection's session state lives in its Conn.
type protoHandler struct{}

// Open sends the welcome message and subscribes the topics named in the
// request's ?topics= parameter.
func (protoHandler) Open(c *Conn, req *codec.Request) {
	l := c.l
	c.tokens = float32(l.cfg.CommandBurst)
	c.refill = uint32(l.wheel.Now())
	interval := int((l.cfg.PingInterval + 999_999_999) / 1_000_000_000)
	sid := nuid.Next()
	if !c.writeJSON(func(b []byte) []byte { return codec.AppendWelcome(b, sid, interval) }) {
		return
	}
	if req.RawQuery == "" {
		return
	}
	q, err := url.ParseQuery(req.RawQuery)
	if err != nil {
		c.replyError(nil, codec.CodeBadRequest, "malformed query string")
		return
	}
	var names []string
	for _, v := range q["topics"] {
		for _, t := range strings.Split(v, ",") {
			if t != "" {
				names = append(names, t)
			}
		}
	}
	if len(names) > 0 {
		c.subscribe(nil, names)
	}
}

// Message handles one command.
func (protoHandler) Message(c *Conn, op ws.OpCode, p []byte) {
	l := c.l
	l.metrics.Commands.Add(1)
	if !c.allowCommand() {
		return
	}
	if op != ws.OpText {
		c.replyError(nil, codec.CodeBadRequest, "commands are JSON text frames")
		return
	}
	cmd, err := codec.ParseCommand(p)
	if err != nil {
		code, msg := codec.CodeBadJSON, err.Error()
		if pe, ok := err.(*codec.ProtoError); ok {
			code, msg = pe.Code, pe.Message
		}
		c.replyError(cmd.ID, code, msg)
		return
	}
	switch cmd.Type {
	case "subscribe":
		c.subscribe(cmd.ID, cmd.Topics)
	case "unsubscribe":
		for _, t := range cmd.Topics {
			c.unsubscribe(t)
		}
		c.replyOK(cmd.ID)
	case "ping":
		c.replyOK(cmd.ID)
	case "publish":
		c.replyError(cmd.ID, codec.CodeForbidden, "publishing from clients is disabled")
	default:
		c.replyError(cmd.ID, codec.CodeUnknownCommand, "unknown command")
	}
}

// Closed drops every subscription of the connection.
func (protoHandler) Closed(c *Conn) {
	for i, s := range c.subs {
		c.l.shard.Unsubscribe(s)
		c.subs[i] = nil
	}
	c.subs = nil
}

// allowCommand is the per-connection command rate limit: a token bucket
// refilled from the wheel's clock. A refused command gets a rate_limited
// error; a client that goes on sending CommandBurst more refused commands is
// closed with 1008 (policy violation).
func (c *Conn) allowCommand() bool {
	l := c.l
	now := uint32(l.wheel.Now())
	if elapsed := now - c.refill; elapsed > 0 {
		c.tokens += float32(float64(elapsed) * l.cfg.CommandRate * l.tick.Seconds())
		if max := float32(l.cfg.CommandBurst); c.tokens > max {
			c.tokens = max
		}
		c.refill = now
	}
	if c.tokens >= 1 {
		c.tokens--
		c.strikes = 0
		return true
	}
	l.metrics.RateLimited.Add(1)
	c.strikes++
	if int(c.strikes) > l.cfg.CommandBurst {
		c.CloseWith(codec.StatusPolicyViolation, "command rate limit exceeded")
		return false
	}
	c.replyError(nil, codec.CodeRateLimited, "too many commands; slow down")
	return false
}

func (c *Conn) subscribe(id []byte, names []string) {
	l := c.l
	if l.shard == nil {
		c.replyError(id, codec.CodeInternal, "this endpoint has no topics")
		return
	}
	if len(names) == 0 {
		c.replyError(id, codec.CodeBadRequest, "no topics")
		return
	}
	if len(names) > l.cfg.MaxTopicsPerCommand {
		c.replyError(id, codec.CodeTooManyTopics, "too many topics in one command")
		return
	}
	for _, t := range names {
		if err := codec.ValidTopic(t); err != nil {
			c.replyError(id, codec.CodeInvalidTopic, err.Error())
			return
		}
	}
	fresh := 0
	for i, t := range names {
		if !c.subscribed(t) && !contains(names[:i], t) {
			fresh++
		}
	}
	if len(c.subs)+fresh > l.cfg.MaxSubscriptions {
		c.replyError(id, codec.CodeTooManyTopics, "subscription limit reached")
		return
	}
	for _, t := range names {
		if c.subscribed(t) {
			continue
		}
		s, err := l.shard.Subscribe(t, c)
		if err != nil {
			c.replyError(id, codec.CodeInternal, "subscribe failed")
			return
		}
		c.subs = append(c.subs, s)
	}
	if id != nil {
		c.replyOK(id)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Conn) subscribed(topic string) bool {
	for _, s := range c.subs {
		if s.Topic() == topic {
			return true
		}
	}
	return false
}

func (c *Conn) unsubscribe(topic string) {
	for i, s := range c.subs {
		if s.Topic() == topic {
			c.l.shard.Unsubscribe(s)
			last := len(c.subs) - 1
			c.subs[i] = c.subs[last]
			c.subs[last] = nil
			c.subs = c.subs[:last]
			return
		}
	}
}

// Topics returns the topics the connection is subscribed to. Loop goroutine
// only.
func (c *Conn) Topics() []string {
	out := make([]string, len(c.subs))
	for i, s := range c.subs {
		out[i] = s.Topic()
	}
	return out
}

func (c *Conn) replyOK(id []byte) {
	c.writeJSON(func(b []byte) []byte { return codec.AppendOK(b, id) })
}

func (c *Conn) replyError(id []byte, code, msg string) {
	c.l.metrics.CommandErrors.Add(1)
	c.writeJSON(func(b []byte) []byte { return codec.AppendError(b, id, code, msg) })
}
