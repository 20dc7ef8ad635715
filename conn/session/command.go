package session

import "github.com/pushd/pushd/codec"

// Command handles one complete client message as a v1 command and writes
// its reply through p: exactly one ok or error per command, in command
// order (docs/protocol.md §2). text reports whether the message came as
// text; commands are JSON text. The message costs one unit of the command
// budget, whatever it holds. While an earlier command waits for its answer
// (durable.go), the message is kept and handled after it.
func (s *Session) Command(e *Env, p Peer, text bool, msg []byte) {
	e.metrics.Commands.Add(1)
	allowed := s.Allow(e, p)
	if d := e.later[s]; d != nil {
		d.keep(e, text, msg, allowed)
		return
	}
	s.run(e, p, text, msg, allowed)
}

// run handles one command; allowed is its budget check, made when it
// arrived.
func (s *Session) run(e *Env, p Peer, text bool, msg []byte, allowed bool) {
	if !allowed {
		if p.Open() {
			e.replyError(p, nil, &codec.ProtoError{Code: codec.CodeRateLimited, Message: "too many commands; slow down"})
		}
		return
	}
	if !text {
		e.replyError(p, nil, &codec.ProtoError{Code: codec.CodeBadRequest, Message: "commands are JSON text frames"})
		return
	}
	cmd, err := codec.ParseCommand(msg)
	if err != nil {
		perr, ok := err.(*codec.ProtoError)
		if !ok {
			perr = &codec.ProtoError{Code: codec.CodeBadJSON, Message: err.Error()}
		}
		e.replyError(p, cmd.ID, perr)
		return
	}
	var perr *codec.ProtoError
	switch cmd.Type {
	case codec.CmdSubscribe:
		if len(cmd.Since) > 0 || s.anyDurable(e, cmd.Topics) {
			if perr = s.resume(e, p, cmd.ID, cmd.Topics, cmd.Since); perr == nil {
				return // the reply comes with the outcome
			}
			break
		}
		if perr = s.Subscribe(e, p, cmd.Topics); perr == nil && !p.Open() {
			return // closed while subscribing: no reply
		}
	case codec.CmdUnsubscribe:
		s.Unsubscribe(e, cmd.Topics)
	case codec.CmdPing:
	case codec.CmdHistory:
		if perr = s.history(e, p, &cmd); perr == nil {
			return // the reply comes with the answer
		}
	case codec.CmdPublish:
		if perr = s.mayPublish(e, cmd.Topic); perr == nil && e.shard != nil && e.shard.Hub().Durable(cmd.Topic) {
			s.publishDurable(e, p, cmd.ID, cmd.Topic, cmd.Data)
			return // the reply comes with the stream's ack
		}
		if perr == nil {
			perr = s.Publish(e, cmd.Topic, cmd.Data)
		}
	default:
		perr = &codec.ProtoError{Code: codec.CodeUnknownCommand, Message: "unknown command"}
	}
	if perr != nil {
		e.replyError(p, cmd.ID, perr)
		return
	}
	e.send(p, codec.AppendOK(e.buf(), cmd.ID))
}

// replyError writes an error reply; id is nil when the command's id could
// not be read (or there was no command).
func (e *Env) replyError(p Peer, id []byte, perr *codec.ProtoError) {
	e.metrics.CommandErrors.Add(1)
	e.send(p, codec.AppendError(e.buf(), id, perr.Code, perr.Message))
}
