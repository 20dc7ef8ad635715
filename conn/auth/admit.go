package auth

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/codec"
)

// Admitter authenticates requests before an endpoint serves them (a
// WebSocket upgrade, an SSE stream): the Origin check (403), then the token
// (401). It also names a
// connection's personal topic. Safe for concurrent use: every event loop
// calls it.
type Admitter struct {
	// Immutable after NewAdmitter.
	verifier *Verifier     // nil: insecure mode, every client anonymous
	origins  *OriginPolicy // nil: any origin
	prefix   string        // personal topic prefix; "" = none
	log      *slog.Logger
	now      func() time.Time

	unauthorized atomic.Int64
	badOrigin    atomic.Int64
}

// AdmitterConfig configures an Admitter.
type AdmitterConfig struct {
	// Verifier checks tokens; nil admits every client anonymously
	// (insecure, development mode).
	Verifier *Verifier
	// Origins is the Origin allowlist; nil allows any origin.
	Origins *OriginPolicy
	// PersonalPrefix names authenticated connections' personal topic,
	// <prefix><subject> (e.g. "user."); "" means none.
	PersonalPrefix string
	// Logger receives a debug line per refusal. Default slog.Default().
	Logger *slog.Logger
	// Clock returns the time tokens are checked at; nil means time.Now.
	Clock func() time.Time
}

// NewAdmitter returns an Admitter. Any goroutine.
func NewAdmitter(cfg AdmitterConfig) *Admitter {
	a := &Admitter{verifier: cfg.Verifier, origins: cfg.Origins, prefix: cfg.PersonalPrefix, log: cfg.Logger, now: cfg.Clock}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// Insecure reports whether the Admitter admits every client without a
// token. Any goroutine.
func (a *Admitter) Insecure() bool { return a.verifier == nil }

// Admit checks a request head: its Origin, then its token (TokenFrom:
// header, query, subprotocol or cookie). It returns the client's identity
// (nil in insecure mode), the subprotocol to echo on a WebSocket (never the
// token; see TokenFrom), or the HTTP rejection. Log lines name the token
// only by its fingerprint. Safe for concurrent use.
func (a *Admitter) Admit(req *codec.HTTPRequest) (*Identity, string, *codec.HandshakeError) {
	if a.origins != nil && !a.origins.Allow(req.Origin) {
		a.badOrigin.Add(1)
		a.log.Debug("origin refused", "origin", req.Origin, "path", req.Path)
		return nil, "", &codec.HandshakeError{Status: 403, Reason: "origin not allowed"}
	}
	token, proto := TokenFrom(req)
	if a.verifier == nil {
		return nil, proto, nil // insecure mode: anonymous, may subscribe to anything
	}
	id, herr := a.verify(token, req.Path)
	if herr != nil {
		return nil, "", herr
	}
	return id, proto, nil
}

// AdmitRequest checks a request head for a transport whose clients may
// send their token later, inside the protocol (Socket.IO's CONNECT): the
// Origin (403) as Admit does, then the token only if the request carries
// one (401 for a bad one). It returns the identity that token proves, nil
// when the request carries none or in insecure mode; VerifyToken then
// decides on the token the protocol brings. Safe for concurrent use.
func (a *Admitter) AdmitRequest(req *codec.HTTPRequest) (*Identity, *codec.HandshakeError) {
	if a.origins != nil && !a.origins.Allow(req.Origin) {
		a.badOrigin.Add(1)
		a.log.Debug("origin refused", "origin", req.Origin, "path", req.Path)
		return nil, &codec.HandshakeError{Status: 403, Reason: "origin not allowed"}
	}
	token, _ := TokenFrom(req)
	if a.verifier == nil || token == "" {
		return nil, nil
	}
	return a.verify(token, req.Path)
}

// errNoProtocolToken is VerifyToken's refusal of an empty token.
var errNoProtocolToken = &TokenError{ErrMissingToken, "no token in the request or the auth payload"}

// VerifyToken checks a token a client sent inside its protocol (the auth
// payload of a Socket.IO CONNECT), "" for none. It returns the identity
// (nil in insecure mode, whatever the token), or a *TokenError, whose text
// names the problem and never the token, counted and logged like Admit's
// refusals. Safe for concurrent use.
func (a *Admitter) VerifyToken(token string) (*Identity, error) {
	if a.verifier == nil {
		return nil, nil
	}
	if token == "" {
		a.unauthorized.Add(1)
		return nil, errNoProtocolToken
	}
	id, err := a.verifier.Verify(token, a.now())
	if err != nil {
		a.unauthorized.Add(1)
		a.log.Debug("token refused", "reason", err.Error(), "via", "protocol", "token", Fingerprint(token))
		var te *TokenError
		if !errors.As(err, &te) {
			te = &TokenError{ErrInvalidToken, "invalid token"}
		}
		return nil, te
	}
	return id, nil
}

// verify checks a request's token and returns the identity, or the 401.
func (a *Admitter) verify(token, path string) (*Identity, *codec.HandshakeError) {
	id, err := a.verifier.Verify(token, a.now())
	if err != nil {
		a.unauthorized.Add(1)
		reason := "invalid token"
		var te *TokenError
		if errors.As(err, &te) {
			reason = te.Error() // built from fixed strings, never token text
		}
		a.log.Debug("token refused", "reason", reason, "path", path, "token", Fingerprint(token))
		return nil, &codec.HandshakeError{Status: 401, Reason: reason,
			Header: [][2]string{{"WWW-Authenticate", `Bearer realm="pushd"`}}}
	}
	return id, nil
}

// PersonalTopic names id's personal topic, or "" when there is no prefix or
// the subject cannot be one topic token. Safe for concurrent use.
func (a *Admitter) PersonalTopic(id *Identity) string {
	if a.prefix == "" || id == nil {
		return ""
	}
	t, err := PersonalTopic(a.prefix, id.Subject())
	if err != nil {
		return ""
	}
	return t
}

// Refused returns how many request heads were refused for their token (401)
// and for their Origin (403). Safe for concurrent use.
func (a *Admitter) Refused() (token, origin int64) {
	return a.unauthorized.Load(), a.badOrigin.Load()
}
