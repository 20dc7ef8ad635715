package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The four kinds of token failure. Every error Verify returns is a
// *TokenError that wraps exactly one of them; test with errors.Is. All four
// mean "answer 401 before the upgrade"; ErrExpired and ErrNotYetValid let a
// client library tell "refresh the token" from "this token is bad".
var (
	ErrMissingToken = errors.New("auth: missing token")
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrExpired      = errors.New("auth: token expired")
	ErrNotYetValid  = errors.New("auth: token not yet valid")
)

// TokenError is a rejected token: Kind is one of ErrMissingToken,
// ErrInvalidToken, ErrExpired or ErrNotYetValid, and Reason a fixed phrase
// of this package. Neither ever contains any part of the token or of the
// request, so a TokenError is safe to log and to send to the client.
type TokenError struct {
	Kind   error
	Reason string
}

// Error implements error. Safe for concurrent use.
func (e *TokenError) Error() string { return e.Kind.Error() + ": " + e.Reason }

// Unwrap returns Kind. Safe for concurrent use.
func (e *TokenError) Unwrap() error { return e.Kind }

// The errors Verify returns. They are values, not built per call, so no
// token byte can reach them.
var (
	errNoToken        = &TokenError{ErrMissingToken, "no token in the request"}
	errTooLong        = &TokenError{ErrInvalidToken, "token too long"}
	errMalformed      = &TokenError{ErrInvalidToken, "malformed token"}
	errUnknownAlg     = &TokenError{ErrInvalidToken, "unsupported or missing alg"}
	errBadSignature   = &TokenError{ErrInvalidToken, "signature invalid"}
	errUnknownKey     = &TokenError{ErrInvalidToken, "no key for this kid"}
	errNoKid          = &TokenError{ErrInvalidToken, "token has no kid and there is no default key"}
	errAlgMismatch    = &TokenError{ErrInvalidToken, "alg does not match the key selected by kid"}
	errCrit           = &TokenError{ErrInvalidToken, "crit header not supported"}
	errNoSub          = &TokenError{ErrInvalidToken, "missing sub claim"}
	errSubTooLong     = &TokenError{ErrInvalidToken, "sub claim too long"}
	errNoExp          = &TokenError{ErrInvalidToken, "missing exp claim"}
	errIssuer         = &TokenError{ErrInvalidToken, "wrong issuer"}
	errAudience       = &TokenError{ErrInvalidToken, "wrong audience"}
	errPattern        = &TokenError{ErrInvalidToken, "invalid topic pattern in the pushd claim"}
	errExpired        = &TokenError{ErrExpired, "exp is in the past"}
	errNotYetValid    = &TokenError{ErrNotYetValid, "nbf is in the future"}
	errInvalidGeneral = &TokenError{ErrInvalidToken, "token rejected"}
)

// Limits and defaults of VerifierConfig.
const (
	// DefaultLeeway is the clock skew allowed on exp and nbf when
	// VerifierConfig.Leeway is zero.
	DefaultLeeway = 5 * time.Second
	// MaxTokenLen bounds a token; a longer one is rejected before any
	// decoding. The upgrade request head (8 KiB by default) bounds it too.
	MaxTokenLen = 8192
	// MaxSubjectLen bounds the sub claim, in bytes: it goes into logs and
	// the personal topic.
	MaxSubjectLen = 256
	// MinHS256SecretLen is the shortest HS256 secret accepted: RFC 7518
	// §3.2 requires a key at least as long as the hash output (256 bits).
	MinHS256SecretLen = 32
	// MinRSABits is the smallest RSA modulus accepted for RS256 (RFC 7518
	// §3.3 requires 2048 bits or more).
	MinRSABits = 2048
)

// Algorithm names as they appear in a token's alg header (RFC 7518 §3.1,
// RFC 8037 §3.1).
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// ClaimNamespace is the name of pushd's private claim. Its JSON shape is
//
//	"pushd": {"subscribe": ["prices.>", "chat.room1"], "publish": ["chat.room1"]}
//
// Each list holds Pattern strings. A list that is absent (or the whole claim
// being absent) takes VerifierConfig.DefaultSubscribe / DefaultPublish; a
// list that is present but empty grants nothing.
const ClaimNamespace = "pushd"

// VerifierConfig configures a Verifier. At least one key is required.
type VerifierConfig struct {
	// HS256Secrets maps kid to an HS256 shared secret of at least
	// MinHS256SecretLen bytes. The kid "" is the default key: it verifies
	// tokens that carry no kid header.
	HS256Secrets map[string][]byte
	// HS256SecretFiles are files that each hold one HS256 secret; trailing
	// whitespace (an editor's final newline) is trimmed. A file's kid is its
	// base name without the extension ("/etc/pushd/2024-06.key" → "2024-06").
	// Reading secrets from files keeps them out of argv and the environment.
	HS256SecretFiles []string
	// PublicKeyFiles are PEM files, each holding one public key or one
	// certificate: RSA (for RS256; PKIX "PUBLIC KEY", PKCS #1 "RSA PUBLIC
	// KEY" or "CERTIFICATE"), ECDSA P-256 (for ES256) or Ed25519 (for
	// EdDSA). The key type alone decides the algorithm. A file's kid is its
	// base name without the extension. Private keys are refused: pushd only
	// verifies.
	PublicKeyFiles []string
	// Leeway is the clock skew allowed when checking exp and nbf. Zero means
	// DefaultLeeway (5s); a negative value means none.
	Leeway time.Duration
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// AllowNoExpiry accepts tokens without an exp claim; such a connection
	// is never closed for expiry. Off by default: a stolen token without exp
	// works forever.
	AllowNoExpiry bool
	// DefaultSubscribe and DefaultPublish are the Pattern lists of a token
	// whose pushd claim lacks the corresponding list. Both default to
	// nothing: such a token may subscribe only to its personal topic.
	DefaultSubscribe []string
	DefaultPublish   []string
}

// verifyKey is one configured key and the only algorithm it verifies.
type verifyKey struct {
	alg string
	key any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// Verifier checks tokens. It is immutable after NewVerifier, so one
// Verifier serves every event loop.
type Verifier struct {
	keys       map[string]verifyKey
	def        *verifyKey                    // for tokens without kid; nil if none
	parserOpts map[string][]jwt.ParserOption // alg → options of a parser accepting only that alg; len == cap
	leeway     time.Duration
	issuer     string
	audience   string
	requireExp bool
	defSub     []Pattern
	defPub     []Pattern
}

// NewVerifier loads the configured keys and returns a Verifier. It fails if
// no key is configured, a file cannot be read or holds no supported public
// key, an HS256 secret is too short, an RSA key is under MinRSABits, an
// ECDSA key is not on P-256, two keys share a kid, or a default pattern is
// invalid. Errors name the file or kid but never include a secret. Call it
// at start-up, from any goroutine.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{
		keys:       map[string]verifyKey{},
		leeway:     cfg.Leeway,
		issuer:     cfg.Issuer,
		audience:   cfg.Audience,
		requireExp: !cfg.AllowNoExpiry,
	}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	add := func(kid string, k verifyKey, from string) error {
		if _, dup := v.keys[kid]; dup {
			return fmt.Errorf("auth: %s: kid %q is configured twice", from, kid)
		}
		v.keys[kid] = k
		return nil
	}
	for kid, secret := range cfg.HS256Secrets {
		if len(secret) < MinHS256SecretLen {
			return nil, fmt.Errorf("auth: HS256 secret for kid %q is %d bytes; at least %d are required", kid, len(secret), MinHS256SecretLen)
		}
		if err := add(kid, verifyKey{AlgHS256, bytes.Clone(secret)}, "HS256 secret"); err != nil {
			return nil, err
		}
	}
	for _, path := range cfg.HS256SecretFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: HS256 secret file: %w", err)
		}
		secret := bytes.TrimRight(b, " \t\r\n")
		if len(secret) < MinHS256SecretLen {
			return nil, fmt.Errorf("auth: HS256 secret file %s: %d bytes; at least %d are required", path, len(secret), MinHS256SecretLen)
		}
		if err := add(KeyID(path), verifyKey{AlgHS256, secret}, path); err != nil {
			return nil, err
		}
	}
	for _, path := range cfg.PublicKeyFiles {
		k, err := loadPublicKey(path)
		if err != nil {
			return nil, err
		}
		if err := add(KeyID(path), k, path); err != nil {
			return nil, err
		}
	}
	if len(v.keys) == 0 {
		return nil, errors.New("auth: no verification key configured")
	}
	if k, ok := v.keys[""]; ok {
		v.def = &k
	} else if len(v.keys) == 1 {
		for _, k := range v.keys {
			v.def = &k
		}
	}
	// The library checks exp, nbf, iss and aud (RFC 7519 §4.1). Its
	// validator reads the time from a function, and Verify's now must
	// decide, so Verify builds a parser per call from these options and
	// one that returns now. iat is not checked (RFC 7519 §4.1.6 gives it no
	// validity rule), nor is nbf required.
	common := []jwt.ParserOption{jwt.WithLeeway(v.leeway)}
	if v.requireExp {
		common = append(common, jwt.WithExpirationRequired())
	}
	if v.issuer != "" {
		common = append(common, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		common = append(common, jwt.WithAudience(v.audience))
	}
	// One option set per algorithm in use, each accepting only that
	// algorithm. Clipped, so Verify's append copies instead of writing
	// into the shared array.
	v.parserOpts = map[string][]jwt.ParserOption{}
	for _, k := range v.keys {
		if v.parserOpts[k.alg] == nil {
			v.parserOpts[k.alg] = slices.Clip(append(slices.Clone(common), jwt.WithValidMethods([]string{k.alg})))
		}
	}
	var err error
	if v.defSub, err = ParsePatterns(cfg.DefaultSubscribe); err != nil {
		return nil, fmt.Errorf("auth: default subscribe patterns: %w", err)
	}
	if v.defPub, err = ParsePatterns(cfg.DefaultPublish); err != nil {
		return nil, fmt.Errorf("auth: default publish patterns: %w", err)
	}
	return v, nil
}

// KeyID returns the kid NewVerifier gives the key in the file at path: the
// base name without its extension. Pure.
func KeyID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// loadPublicKey reads one PEM public key or certificate.
func loadPublicKey(path string) (verifyKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return verifyKey{}, fmt.Errorf("auth: public key file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return verifyKey{}, fmt.Errorf("auth: %s: no PEM block", path)
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return verifyKey{}, fmt.Errorf("auth: %s holds a private key; give pushd only the public key", path)
		}
		return verifyKey{}, fmt.Errorf("auth: %s: unsupported PEM block %q", path, block.Type)
	}
	if err != nil {
		return verifyKey{}, fmt.Errorf("auth: %s: %w", path, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return verifyKey{}, fmt.Errorf("auth: %s: RSA key of %d bits; at least %d are required", path, k.N.BitLen(), MinRSABits)
		}
		return verifyKey{AlgRS256, k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return verifyKey{}, fmt.Errorf("auth: %s: ECDSA key on %s; only P-256 (ES256) is supported", path, k.Curve.Params().Name)
		}
		return verifyKey{AlgES256, k}, nil
	case ed25519.PublicKey:
		return verifyKey{AlgEdDSA, k}, nil
	default:
		return verifyKey{}, fmt.Errorf("auth: %s: unsupported public key type %T", path, pub)
	}
}

// claims is what Verify decodes from a token's payload.
type claims struct {
	jwt.RegisteredClaims
	Pushd *pushdClaim `json:"pushd"`
}

// pushdClaim is the ClaimNamespace claim. A nil list was absent.
type pushdClaim struct {
	Subscribe *[]string `json:"subscribe"`
	Publish   *[]string `json:"publish"`
}

// Verify checks token at the instant now and returns the identity it
// grants. The checks, in order: length; three base64url JSON segments; no
// crit header; the key chosen by kid (a token without kid uses the key with
// kid "", or the only key when exactly one is configured); alg equal to that
// key's algorithm, so "none", HS/RS confusion and any other substitution
// fail; the signature; sub present; exp present unless AllowNoExpiry; iss
// and aud when configured; the pushd claim's patterns; then exp and nbf
// against now, with the leeway. When several checks fail, the first in
// this order names the error. Errors are *TokenError and never contain
// token text. Safe for concurrent use.
func (v *Verifier) Verify(token string, now time.Time) (*Identity, error) {
	if token == "" {
		return nil, errNoToken
	}
	if len(token) > MaxTokenLen {
		return nil, errTooLong
	}
	h, terr := parseHeader(token)
	if terr != nil {
		return nil, terr
	}
	if h.Crit != nil {
		// RFC 7515 §4.1.11: extensions we do not understand must make the
		// token invalid, and we understand none.
		return nil, errCrit
	}
	k, terr := v.keyFor(h.Kid)
	if terr != nil {
		return nil, terr
	}
	if h.Alg != k.alg {
		return nil, errAlgMismatch
	}
	var c claims
	// The parser for k.alg accepts that algorithm only (the library's
	// WithValidMethods), a second line of defence behind the check above.
	// It checks the claims only once the signature holds.
	p := jwt.NewParser(append(v.parserOpts[k.alg], jwt.WithTimeFunc(func() time.Time { return now }))...)
	_, err := p.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return k.key, nil })
	var claimsErr error // exp, nbf, iss or aud failed; c is decoded and signed
	if err != nil {
		if !errors.Is(err, jwt.ErrTokenInvalidClaims) {
			return nil, classify(err)
		}
		claimsErr = err
	}
	return v.identity(&c, claimsErr)
}

// header is the part of a JOSE header Verify looks at before the library
// does (RFC 7515 §4.1).
type header struct {
	Alg  string          `json:"alg"`
	Kid  *string         `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// parseHeader decodes the first segment of a compact JWS (RFC 7515 §7.1).
func parseHeader(token string) (header, *TokenError) {
	seg, _, ok := strings.Cut(token, ".")
	if !ok {
		return header{}, errMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return header{}, errMalformed
	}
	var h header
	if err := json.Unmarshal(b, &h); err != nil {
		return header{}, errMalformed
	}
	if h.Alg == "" {
		return header{}, errUnknownAlg
	}
	return h, nil
}

// keyFor selects the key a token's kid names.
func (v *Verifier) keyFor(kid *string) (verifyKey, *TokenError) {
	if kid == nil {
		if v.def == nil {
			return verifyKey{}, errNoKid
		}
		return *v.def, nil
	}
	k, ok := v.keys[*kid]
	if !ok {
		return verifyKey{}, errUnknownKey
	}
	return k, nil
}

// classify maps a jwt-go error to one of ours. jwt-go's own messages are
// dropped: some quote decoded token bytes (a JSON syntax error names the
// offending character).
func classify(err error) *TokenError {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errBadSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errUnknownAlg
	}
	return errInvalidGeneral
}

// claimErrors maps the library's failed claim checks (claimsErr, nil if
// none failed) onto ours, split as Verify orders them: a missing exp, a
// wrong iss or aud come before the pushd claim's patterns (first), expiry
// and not-yet-valid after (second). The library joins every failure into
// one error; ErrTokenRequiredClaimMissing does not say which claim (only
// its text does), so the claims themselves tell.
func (v *Verifier) claimErrors(c *claims, claimsErr error) (first, second *TokenError) {
	if claimsErr == nil {
		return nil, nil
	}
	missing := errors.Is(claimsErr, jwt.ErrTokenRequiredClaimMissing)
	switch {
	case missing && v.requireExp && c.ExpiresAt == nil:
		first = errNoExp
	case errors.Is(claimsErr, jwt.ErrTokenInvalidIssuer), missing && v.issuer != "" && c.Issuer == "":
		first = errIssuer
	case errors.Is(claimsErr, jwt.ErrTokenInvalidAudience), missing && v.audience != "":
		first = errAudience // the last claim we may require: aud absent or empty
	}
	switch {
	case errors.Is(claimsErr, jwt.ErrTokenExpired):
		second = errExpired
	case errors.Is(claimsErr, jwt.ErrTokenNotValidYet):
		second = errNotYetValid
	}
	if first == nil && second == nil {
		first = errInvalidGeneral // a check we did not ask for
	}
	return first, second
}

// identity checks the verified claims, given the library's verdict on exp,
// nbf, iss and aud (claimsErr), and builds the Identity.
func (v *Verifier) identity(c *claims, claimsErr error) (*Identity, error) {
	switch {
	case c.Subject == "":
		return nil, errNoSub
	case len(c.Subject) > MaxSubjectLen:
		return nil, errSubTooLong
	}
	first, second := v.claimErrors(c, claimsErr)
	if first != nil {
		return nil, first
	}
	id := &Identity{subject: c.Subject, subscribe: v.defSub, publish: v.defPub}
	if c.Pushd != nil {
		var err error
		if c.Pushd.Subscribe != nil {
			if id.subscribe, err = ParsePatterns(*c.Pushd.Subscribe); err != nil {
				return nil, errPattern
			}
		}
		if c.Pushd.Publish != nil {
			if id.publish, err = ParsePatterns(*c.Pushd.Publish); err != nil {
				return nil, errPattern
			}
		}
	}
	// RFC 7519 §4.1.4: the token must not be accepted on or after exp;
	// §4.1.5: nor before nbf. The library applied the leeway, which absorbs
	// clock skew between the issuer and this node, to both: it refuses at
	// or after exp+leeway and before nbf-leeway. The connection lives
	// until the same instant.
	if second != nil {
		return nil, second
	}
	if c.ExpiresAt != nil {
		id.expires = c.ExpiresAt.Add(v.leeway)
	}
	return id, nil
}
