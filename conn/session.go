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
	interval := int((l.cfg.PingInterval + 999_999_999) / 1_000_000_000)
	sid := nuid.Next()
	if !c.writeJSON(func(b []byte) []byte { return codec.AppendWelcome(b, sid, interval) }) {
		return
	}
	if c.ident != nil && l.personal != nil {
		// The personal topic is the server's choice, not the client's, so
		// it bypasses the token's subscribe patterns.
		if t := l.personal(c.ident); t != "" {
			c.subscribeTopics(nil, []string{t}, true)
		}
	}
	if req.RawQuery == "" || c.state != StateOpen {
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
		c.subscribeTopics(nil, names, false)
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
		c.subscribeTopics(cmd.ID, cmd.Topics, false)
	case "unsubscribe":
		for _, t := range cmd.Topics {
			c.unsubscribe(t)
		}
		c.replyOK(cmd.ID)
	case "ping":
		c.replyOK(cmd.ID)
	case "publish":
		c.publish(cmd.ID, cmd.Topic, cmd.Data)
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
	if c.spendToken() {
		return true
	}
	if c.state == StateOpen {
		c.replyError(nil, codec.CodeRateLimited, "too many commands; slow down")
	}
	return false
}

// spendToken takes one token from the connection's bucket (commands and
// pings share it). Without a token it counts a strike, and closes the
// connection with 1008 once the strikes exceed the burst size.
func (c *Conn) spendToken() bool {
	l := c.l
	now := uint32(l.cur)
	if elapsed := now - c.refill; elapsed > 0 {
		c.tokens += float32(float64(elapsed) * l.cfg.CommandRate * l.tick.Seconds())
		if limit := float32(l.cfg.CommandBurst); c.tokens > limit {
			c.tokens = limit
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
		c.CloseWith(codec.StatusPolicyViolation, "rate limit exceeded")
	}
	return false
}

// publish handles the publish command: allowed only when the server enables
// client publishing and the client's token allows the topic.
func (c *Conn) publish(id []byte, topic string, data []byte) {
	l := c.l
	if l.publish == nil {
		c.forbid(id, "publishing from clients is disabled")
		return
	}
	if err := codec.ValidTopic(topic); err != nil {
		c.replyError(id, codec.CodeInvalidTopic, err.Error())
		return
	}
	if c.ident != nil && !c.ident.CanPublish(topic) {
		c.forbid(id, "the token does not allow publishing to "+topic)
		return
	}
	if err := l.publish(topic, data); err != nil {
		c.replyError(id, codec.CodeInternal, "publish failed")
		return
	}
	l.metrics.ClientPublishes.Add(1)
	c.replyOK(id)
}

func (c *Conn) forbid(id []byte, msg string) {
	c.l.metrics.Forbidden.Add(1)
	c.replyError(id, codec.CodeForbidden, msg)
}

// subscribeTopics subscribes to names, all or nothing: every name is
// validated and checked against the token first. trusted skips the token
// check (for the server-chosen personal topic).
func (c *Conn) subscribeTopics(id []byte, names []string, trusted bool) {
	l := c.l
	if c.state != StateOpen {
		return // closed (or closing) while the command was handled
	}
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
		if !trusted && c.ident != nil && !c.ident.CanSubscribe(t) {
			c.forbid(id, "the token does not allow subscribing to "+t)
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
