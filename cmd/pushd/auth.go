package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/codec"
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
)

// authConfig is the authentication part of the configuration.
type authConfig struct {
	Insecure           bool
	SecretFiles        string // comma-separated HS256 secret files
	PublicKeyFiles     string // comma-separated PEM public keys
	Issuer, Audience   string
	Leeway             time.Duration
	AllowNoExpiry      bool
	DefaultSubscribe   string // comma-separated patterns
	DefaultPublish     string
	AllowedOrigins     string // comma-separated
	AllowMissingOrigin bool
	TrustProxies       string // comma-separated CIDRs or addresses
}

func registerAuthFlags(fs *flag.FlagSet, a *authConfig) {
	fs.BoolVar(&a.Insecure, "insecure", false, "development mode: accept every client without a token (logged loudly)")
	fs.StringVar(&a.SecretFiles, "jwt-secret-files", "", "comma-separated files holding HS256 secrets; each file's base name is its kid")
	fs.StringVar(&a.PublicKeyFiles, "jwt-public-keys", "", "comma-separated PEM public keys (RSA: RS256, P-256: ES256, Ed25519: EdDSA); base name is the kid")
	fs.StringVar(&a.Issuer, "jwt-issuer", "", "required iss claim (empty: not checked)")
	fs.StringVar(&a.Audience, "jwt-audience", "", "required aud value (empty: not checked)")
	fs.DurationVar(&a.Leeway, "jwt-leeway", 5*time.Second, "clock skew allowed on exp and nbf (0: none)")
	fs.BoolVar(&a.AllowNoExpiry, "jwt-allow-no-exp", false, "accept tokens without exp (they never expire)")
	fs.StringVar(&a.DefaultSubscribe, "jwt-default-subscribe", "", "subscribe patterns for tokens whose pushd claim has none")
	fs.StringVar(&a.DefaultPublish, "jwt-default-publish", "", "publish patterns for tokens whose pushd claim has none")
	fs.StringVar(&a.AllowedOrigins, "allowed-origins", "", "comma-separated allowed Origins: exact, https://*.example.com, or * (empty: any)")
	fs.BoolVar(&a.AllowMissingOrigin, "allow-missing-origin", true, "accept handshakes without an Origin header (non-browser clients)")
	fs.StringVar(&a.TrustProxies, "trust-proxy", "", "comma-separated proxy addresses or CIDRs exempt from --max-conns-per-ip")
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// admitter authenticates upgrade requests on the event loops. Its admit
// method is safe for concurrent use (every loop calls it).
type admitter struct {
	log      *slog.Logger
	verifier *auth.Verifier     // nil in insecure mode
	origins  *auth.OriginPolicy // nil: any origin
	prefix   string             // personal topic prefix; "" = none

	unauthorized atomic.Int64 // 401s
	badOrigin    atomic.Int64 // 403s
}

// newAdmitter builds the verifier and origin policy. Without keys it refuses
// to start unless insecure mode was asked for.
func newAdmitter(a *authConfig, personalPrefix string, log *slog.Logger) (*admitter, error) {
	ad := &admitter{prefix: personalPrefix, log: log}
	if origins := splitList(a.AllowedOrigins); len(origins) > 0 || !a.AllowMissingOrigin {
		if len(origins) == 0 {
			origins = []string{"*"}
		}
		p, err := auth.NewOriginPolicy(origins, a.AllowMissingOrigin)
		if err != nil {
			return nil, fmt.Errorf("--allowed-origins: %w", err)
		}
		ad.origins = p
	}
	secrets, keys := splitList(a.SecretFiles), splitList(a.PublicKeyFiles)
	if len(secrets)+len(keys) == 0 {
		if !a.Insecure {
			return nil, errors.New("no JWT keys: give --jwt-secret-files or --jwt-public-keys, or --insecure for development")
		}
		return ad, nil
	}
	if a.Insecure {
		return nil, errors.New("--insecure cannot be combined with JWT keys")
	}
	leeway := a.Leeway
	if leeway == 0 {
		leeway = -1 // VerifierConfig: negative means none, zero the default
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{
		HS256SecretFiles: secrets,
		PublicKeyFiles:   keys,
		Leeway:           leeway,
		Issuer:           a.Issuer,
		Audience:         a.Audience,
		AllowNoExpiry:    a.AllowNoExpiry,
		DefaultSubscribe: splitList(a.DefaultSubscribe),
		DefaultPublish:   splitList(a.DefaultPublish),
	})
	if err != nil {
		return nil, err
	}
	ad.verifier = v
	return ad, nil
}

// admit runs before the 101: the Origin check (403), then the token (401).
// The subprotocol to echo is never the token.
func (ad *admitter) admit(req *codec.Request) (conn.Identity, string, *codec.HandshakeError) {
	if ad.origins != nil && !ad.origins.Allow(req.Origin) {
		ad.badOrigin.Add(1)
		ad.log.Debug("websocket origin refused", "origin", req.Origin, "path", req.Path)
		return nil, "", &codec.HandshakeError{Status: 403, Reason: "origin not allowed"}
	}
	token, proto := auth.TokenFrom(req)
	if ad.verifier == nil {
		return nil, proto, nil // insecure mode: anonymous, may subscribe to anything
	}
	id, err := ad.verifier.Verify(token, time.Now())
	if err != nil {
		ad.unauthorized.Add(1)
		reason := "invalid token"
		var te *auth.TokenError
		if errors.As(err, &te) {
			reason = te.Error() // built from fixed strings, never token text
		}
		// The redacting handler masks the query and header values; they
		// are logged to help operators see where a bad token came from.
		ad.log.Debug("websocket token refused", "reason", reason, "query", req.RawQuery,
			"authorization", req.Authorization, "protocols", strings.Join(req.Protocols, ","))
		return nil, "", &codec.HandshakeError{Status: 401, Reason: reason,
			Header: [][2]string{{"WWW-Authenticate", `Bearer realm="pushd"`}}}
	}
	return id, proto, nil
}

// personalTopic names a connection's personal topic, or "" when there is
// no prefix or the subject cannot be one topic token.
func (ad *admitter) personalTopic(id conn.Identity) string {
	if ad.prefix == "" {
		return ""
	}
	t, err := auth.PersonalTopic(ad.prefix, id.Subject())
	if err != nil {
		return ""
	}
	return t
}

// keyMatches reports whether tok is one of keys. Both sides are hashed
// first, so the comparison takes the same time whatever the lengths.
func keyMatches(tok string, keys []string) bool {
	h := sha256.Sum256([]byte(tok))
	match := 0
	for _, k := range keys {
		hk := sha256.Sum256([]byte(k))
		match |= subtle.ConstantTimeCompare(h[:], hk[:])
	}
	return match == 1
}
