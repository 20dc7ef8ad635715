package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// now is the verification instant of every test: tokens are built around
// it, so no test depends on the wall clock.
var now = time.Unix(1_700_000_000, 0)

var (
	secret1 = []byte("0123456789abcdef0123456789abcdef-k1")
	secret2 = []byte("fedcba9876543210fedcba9876543210-k2")
)

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa, rsaOther *rsa.PrivateKey
	ec            *ecdsa.PrivateKey
	ed            ed25519.PrivateKey
}

var keys = sync.OnceValue(func() *testKeys {
	k := &testKeys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// writePEM writes a PEM block to dir/name and returns the path.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePublicKey writes pub as a PKIX "PUBLIC KEY" PEM file.
func writePublicKey(t *testing.T, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "PUBLIC KEY", der)
}

// testVerifier returns a Verifier with HS256 keys "k1" and "k2", RS256
// "rsa" (PKCS #1 file), ES256 "ec" and EdDSA "ed", plus extra config.
func testVerifier(t *testing.T, edit func(*VerifierConfig)) *Verifier {
	t.Helper()
	k := keys()
	dir := t.TempDir()
	cfg := VerifierConfig{
		HS256Secrets: map[string][]byte{"k1": secret1, "k2": secret2},
		PublicKeyFiles: []string{
			writePEM(t, dir, "rsa.pem", "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)),
			writePublicKey(t, dir, "ec.pem", &k.ec.PublicKey),
			writePublicKey(t, dir, "ed.pub", k.ed.Public()),
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// claimsMap returns valid claims for subject "u1" around now.
func claimsMap(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "u1",
		"exp": now.Add(time.Hour).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"iat": now.Add(-time.Minute).Unix(),
		"pushd": map[string]any{
			"subscribe": []string{"prices.>", "chat.room1"},
			"publish":   []string{"chat.room1"},
		},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// sign signs claims with method and key, with the given kid ("" = none).
func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken assembles a token from literal header and payload JSON and a
// signature segment, for shapes the library refuses to produce.
func rawToken(header, payload, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + sig
}

func TestVerifyValid(t *testing.T) {
	k := keys()
	v := testVerifier(t, nil)
	cases := []struct {
		name   string
		method jwt.SigningMethod
		kid    string
		key    any
	}{
		{"HS256 k1", jwt.SigningMethodHS256, "k1", secret1},
		{"HS256 k2", jwt.SigningMethodHS256, "k2", secret2},
		{"RS256", jwt.SigningMethodRS256, "rsa", k.rsa},
		{"ES256", jwt.SigningMethodES256, "ec", k.ec},
		{"EdDSA", jwt.SigningMethodEdDSA, "ed", k.ed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(sign(t, tc.method, tc.kid, tc.key, claimsMap(nil)), now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Subject() != "u1" {
				t.Errorf("Subject = %q, want u1", id.Subject())
			}
			if want := now.Add(time.Hour + DefaultLeeway); !id.Expiry().Equal(want) {
				t.Errorf("Expiry = %v, want exp+leeway %v", id.Expiry(), want)
			}
			if got := patternStrings(id.SubscribePatterns()); !slices.Equal(got, []string{"prices.>", "chat.room1"}) {
				t.Errorf("subscribe patterns = %q", got)
			}
			if got := patternStrings(id.PublishPatterns()); !slices.Equal(got, []string{"chat.room1"}) {
				t.Errorf("publish patterns = %q", got)
			}
			if !id.CanSubscribe("prices.BTC") || id.CanSubscribe("chat.room2") || !id.CanPublish("chat.room1") || id.CanPublish("prices.BTC") {
				t.Error("permissions do not follow the pushd claim")
			}
		})
	}
}

func patternStrings(ps []Pattern) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestVerifyRejects(t *testing.T) {
	k := keys()
	v := testVerifier(t, nil)
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	noneTok := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claimsMap(nil))
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(nil))
	parts := strings.Split(valid, ".")
	payload := func(edit func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(edit))
	}
	cases := []struct {
		name   string
		token  string
		kind   error
		reason *TokenError // nil: only kind is checked
	}{
		{"empty", "", ErrMissingToken, errNoToken},
		{"too long", strings.Repeat("a", MaxTokenLen+1), ErrInvalidToken, errTooLong},
		{"expired", payload(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }), ErrExpired, errExpired},
		{"expired at exactly exp+leeway", payload(func(c jwt.MapClaims) { c["exp"] = now.Add(-DefaultLeeway).Unix() }), ErrExpired, errExpired},
		{"not yet valid", payload(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() }), ErrNotYetValid, errNotYetValid},
		{"wrong HS256 secret", sign(t, jwt.SigningMethodHS256, "k1", secret2, claimsMap(nil)), ErrInvalidToken, errBadSignature},
		{"signed by another RSA key", sign(t, jwt.SigningMethodRS256, "rsa", k.rsaOther, claimsMap(nil)), ErrInvalidToken, errBadSignature},
		{"payload swapped after signing", parts[0] + "." + strings.Split(payload(func(c jwt.MapClaims) { c["sub"] = "admin" }), ".")[1] + "." + parts[2], ErrInvalidToken, errBadSignature},
		{"signature stripped", parts[0] + "." + parts[1] + ".", ErrInvalidToken, errBadSignature},
		{"alg none with kid", noneTok("k1"), ErrInvalidToken, errAlgMismatch},
		{"alg none without kid", noneTok(""), ErrInvalidToken, errNoKid},
		{"HS256 with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, "rsa", rsaPubPEM, claimsMap(nil)), ErrInvalidToken, errAlgMismatch},
		{"HS256 with the RSA key's DER as secret", sign(t, jwt.SigningMethodHS256, "rsa", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), claimsMap(nil)), ErrInvalidToken, errAlgMismatch},
		{"RS256 header on an HS256 key", sign(t, jwt.SigningMethodRS256, "k1", k.rsa, claimsMap(nil)), ErrInvalidToken, errAlgMismatch},
		{"ES256 header on the Ed25519 key", sign(t, jwt.SigningMethodES256, "ed", k.ec, claimsMap(nil)), ErrInvalidToken, errAlgMismatch},
		{"PS256 on the RSA key", sign(t, jwt.SigningMethodPS256, "rsa", k.rsa, claimsMap(nil)), ErrInvalidToken, errAlgMismatch},
		{"one part", "abc", ErrInvalidToken, errMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrInvalidToken, errMalformed},
		{"four parts", valid + ".x", ErrInvalidToken, errMalformed},
		{"header not base64url", "!!!." + parts[1] + "." + parts[2], ErrInvalidToken, errMalformed},
		{"header not JSON", rawToken(`{"alg":"HS256",`, `{}`, parts[2]), ErrInvalidToken, errMalformed},
		{"payload not base64url", parts[0] + ".%%%." + parts[2], ErrInvalidToken, errMalformed},
		{"payload not JSON", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[2], ErrInvalidToken, errMalformed},
		{"signature not base64url", parts[0] + "." + parts[1] + ".***", ErrInvalidToken, errMalformed},
		{"kid not a string", rawToken(`{"alg":"HS256","kid":7}`, `{"sub":"u1"}`, parts[2]), ErrInvalidToken, errMalformed},
		{"no alg", rawToken(`{"kid":"k1"}`, `{"sub":"u1"}`, parts[2]), ErrInvalidToken, errUnknownAlg},
		{"crit header", rawToken(`{"alg":"HS256","kid":"k1","crit":["exp"]}`, `{"sub":"u1"}`, parts[2]), ErrInvalidToken, errCrit},
		{"sub not a string", payload(func(c jwt.MapClaims) { c["sub"] = 42 }), ErrInvalidToken, errMalformed},
		{"exp not a number", payload(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), ErrInvalidToken, errMalformed},
		{"missing sub", payload(func(c jwt.MapClaims) { delete(c, "sub") }), ErrInvalidToken, errNoSub},
		{"sub too long", payload(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("u", MaxSubjectLen+1) }), ErrInvalidToken, errSubTooLong},
		{"missing exp", payload(func(c jwt.MapClaims) { delete(c, "exp") }), ErrInvalidToken, errNoExp},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, "k3", secret1, claimsMap(nil)), ErrInvalidToken, errUnknownKey},
		{"no kid with several keys", sign(t, jwt.SigningMethodHS256, "", secret1, claimsMap(nil)), ErrInvalidToken, errNoKid},
		{"wildcard in the middle of a pattern", payload(func(c jwt.MapClaims) {
			c["pushd"] = map[string]any{"subscribe": []string{"prices.*.usd"}}
		}), ErrInvalidToken, errPattern},
		{"patterns not a list", payload(func(c jwt.MapClaims) { c["pushd"] = map[string]any{"publish": "chat.>"} }), ErrInvalidToken, errMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.token, now)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", id)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q is not %q", err, tc.kind)
			}
			if tc.reason != nil && err != error(tc.reason) {
				t.Errorf("error = %q, want %q", err, tc.reason)
			}
			assertNoTokenText(t, err, tc.token)
		})
	}
}

// assertNoTokenText fails if err's text contains any part of token.
func assertNoTokenText(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "eyJ") {
		t.Errorf("error %q contains JWT text", msg)
	}
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			t.Errorf("error %q contains token segment %q", msg, seg)
		}
	}
}

func TestVerifyLeeway(t *testing.T) {
	v := testVerifier(t, nil)
	strict := testVerifier(t, func(c *VerifierConfig) { c.Leeway = -1 })
	cases := []struct {
		name       string
		edit       func(jwt.MapClaims)
		wantLoose  error // with the default 5s leeway
		wantStrict error // with no leeway
	}{
		{"expired 2s ago", func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Second).Unix() }, nil, ErrExpired},
		{"valid from 2s from now", func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Second).Unix() }, nil, ErrNotYetValid},
		{"exp exactly now", func(c jwt.MapClaims) { c["exp"] = now.Unix() }, nil, ErrExpired},
		{"nbf exactly now", func(c jwt.MapClaims) { c["nbf"] = now.Unix() }, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(tc.edit))
			if _, err := v.Verify(tok, now); !errors.Is(err, tc.wantLoose) {
				t.Errorf("default leeway: err = %v, want %v", err, tc.wantLoose)
			}
			if _, err := strict.Verify(tok, now); !errors.Is(err, tc.wantStrict) {
				t.Errorf("no leeway: err = %v, want %v", err, tc.wantStrict)
			}
		})
	}
}

func TestVerifyClaimsOptions(t *testing.T) {
	cases := []struct {
		name    string
		cfg     func(*VerifierConfig)
		claims  func(jwt.MapClaims)
		wantErr *TokenError
		check   func(t *testing.T, id *Identity)
	}{
		{"no exp allowed", func(c *VerifierConfig) { c.AllowNoExpiry = true }, func(c jwt.MapClaims) { delete(c, "exp") }, nil,
			func(t *testing.T, id *Identity) {
				if !id.Expiry().IsZero() || id.Expired(now.Add(1000*time.Hour)) {
					t.Errorf("Expiry = %v, want zero (never)", id.Expiry())
				}
			}},
		{"issuer matches", func(c *VerifierConfig) { c.Issuer = "https://idp" }, func(c jwt.MapClaims) { c["iss"] = "https://idp" }, nil, nil},
		{"issuer differs", func(c *VerifierConfig) { c.Issuer = "https://idp" }, func(c jwt.MapClaims) { c["iss"] = "https://evil" }, errIssuer, nil},
		{"issuer missing", func(c *VerifierConfig) { c.Issuer = "https://idp" }, nil, errIssuer, nil},
		{"audience in list", func(c *VerifierConfig) { c.Audience = "pushd" }, func(c jwt.MapClaims) { c["aud"] = []string{"api", "pushd"} }, nil, nil},
		{"audience string", func(c *VerifierConfig) { c.Audience = "pushd" }, func(c jwt.MapClaims) { c["aud"] = "pushd" }, nil, nil},
		{"audience differs", func(c *VerifierConfig) { c.Audience = "pushd" }, func(c jwt.MapClaims) { c["aud"] = "api" }, errAudience, nil},
		{"no pushd claim takes the defaults", func(c *VerifierConfig) {
			c.DefaultSubscribe = []string{"news.>"}
			c.DefaultPublish = []string{"chat.lobby"}
		}, func(c jwt.MapClaims) { delete(c, "pushd") }, nil,
			func(t *testing.T, id *Identity) {
				if !id.CanSubscribe("news.eu") || id.CanSubscribe("prices.BTC") || !id.CanPublish("chat.lobby") {
					t.Error("defaults not applied")
				}
			}},
		{"absent list takes the default, empty list grants nothing", func(c *VerifierConfig) {
			c.DefaultSubscribe = []string{"news.>"}
			c.DefaultPublish = []string{"chat.lobby"}
		}, func(c jwt.MapClaims) { c["pushd"] = map[string]any{"publish": []string{}} }, nil,
			func(t *testing.T, id *Identity) {
				if !id.CanSubscribe("news.eu") || id.CanPublish("chat.lobby") {
					t.Error("want default subscribe list and no publish rights")
				}
			}},
		{"no pushd claim and no defaults", nil, func(c jwt.MapClaims) { delete(c, "pushd") }, nil,
			func(t *testing.T, id *Identity) {
				if id.CanSubscribe("prices.BTC") || id.CanPublish("chat.room1") {
					t.Error("a token without pushd claim may do nothing by default")
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := testVerifier(t, tc.cfg)
			id, err := v.Verify(sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(tc.claims)), now)
			if tc.wantErr != nil {
				if err != error(tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tc.check != nil {
				tc.check(t, id)
			}
		})
	}
}

// TestVerifyFirstFailureNamesTheError gives tokens that fail several
// checks at once: the error is the first failure in Verify's documented
// order, although the library checks exp, nbf, iss and aud together.
func TestVerifyFirstFailureNamesTheError(t *testing.T) {
	expired := func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }
	issAud := func(c *VerifierConfig) { c.Issuer = "https://idp"; c.Audience = "pushd" }
	cases := []struct {
		name   string
		cfg    func(*VerifierConfig)
		claims func(jwt.MapClaims)
		want   *TokenError
	}{
		{"no sub, expired", nil, func(c jwt.MapClaims) { delete(c, "sub"); expired(c) }, errNoSub},
		{"sub too long, wrong issuer", issAud, func(c jwt.MapClaims) {
			c["sub"] = strings.Repeat("u", MaxSubjectLen+1)
			c["iss"] = "https://evil"
		}, errSubTooLong},
		{"no exp, no iss, no aud", issAud, func(c jwt.MapClaims) { delete(c, "exp") }, errNoExp},
		{"no exp allowed, no iss, no aud", func(c *VerifierConfig) { issAud(c); c.AllowNoExpiry = true },
			func(c jwt.MapClaims) { delete(c, "exp") }, errIssuer},
		{"no iss, wrong aud", issAud, func(c jwt.MapClaims) { c["aud"] = "api" }, errIssuer},
		{"empty iss", issAud, func(c jwt.MapClaims) { c["iss"] = ""; c["aud"] = "pushd" }, errIssuer},
		{"right iss, no aud", issAud, func(c jwt.MapClaims) { c["iss"] = "https://idp" }, errAudience},
		{"right iss, empty aud list", issAud, func(c jwt.MapClaims) { c["iss"] = "https://idp"; c["aud"] = []string{} }, errAudience},
		{"right iss, aud of one empty string", issAud, func(c jwt.MapClaims) { c["iss"] = "https://idp"; c["aud"] = "" }, errAudience},
		{"wrong aud, expired", func(c *VerifierConfig) { c.Audience = "pushd" },
			func(c jwt.MapClaims) { c["aud"] = "api"; expired(c) }, errAudience},
		{"bad pattern, expired", nil, func(c jwt.MapClaims) {
			c["pushd"] = map[string]any{"subscribe": []string{"a.*.b"}}
			expired(c)
		}, errPattern},
		{"expired and not yet valid", nil, func(c jwt.MapClaims) { expired(c); c["nbf"] = now.Add(time.Hour).Unix() }, errExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := testVerifier(t, tc.cfg)
			id, err := v.Verify(sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(tc.claims)), now)
			if err != error(tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", id, err, tc.want)
			}
		})
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	tok1 := sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(nil))
	tok2 := sign(t, jwt.SigningMethodHS256, "k2", secret2, claimsMap(nil))
	both, err := NewVerifier(VerifierConfig{HS256Secrets: map[string][]byte{"k1": secret1, "k2": secret2}})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"k1": tok1, "k2": tok2} {
		if _, err := both.Verify(tok, now); err != nil {
			t.Errorf("during rotation, %s token: %v", name, err)
		}
	}
	// k2 retired: its tokens fail, k1's still verify.
	after, err := NewVerifier(VerifierConfig{HS256Secrets: map[string][]byte{"k1": secret1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.Verify(tok1, now); err != nil {
		t.Errorf("k1 token after k2 removal: %v", err)
	}
	if _, err := after.Verify(tok2, now); err != error(errUnknownKey) {
		t.Errorf("k2 token after removal: err = %v, want %v", err, errUnknownKey)
	}
}

func TestVerifyDefaultKey(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	rsaOnly, err := NewVerifier(VerifierConfig{PublicKeyFiles: []string{writePublicKey(t, dir, "main.pem", &k.rsa.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	withDefault, err := NewVerifier(VerifierConfig{HS256Secrets: map[string][]byte{"": secret1, "k2": secret2}})
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM, _ := os.ReadFile(filepath.Join(dir, "main.pem"))
	cases := []struct {
		name  string
		v     *Verifier
		token string
		want  *TokenError
	}{
		{"only key verifies a token without kid", rsaOnly, sign(t, jwt.SigningMethodRS256, "", k.rsa, claimsMap(nil)), nil},
		{"only key by its file-name kid", rsaOnly, sign(t, jwt.SigningMethodRS256, "main", k.rsa, claimsMap(nil)), nil},
		{"HS256 with the only key's PEM as secret", rsaOnly, sign(t, jwt.SigningMethodHS256, "", rsaPubPEM, claimsMap(nil)), errAlgMismatch},
		{"default key verifies a token without kid", withDefault, sign(t, jwt.SigningMethodHS256, "", secret1, claimsMap(nil)), nil},
		{"other key still needs its kid", withDefault, sign(t, jwt.SigningMethodHS256, "", secret2, claimsMap(nil)), errBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.token, now)
			if tc.want == nil && err != nil || tc.want != nil && err != error(tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	shortFile := filepath.Join(dir, "short.key")
	if err := os.WriteFile(shortFile, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  VerifierConfig
		want string // substring of the error
	}{
		{"no keys", VerifierConfig{}, "no verification key"},
		{"short secret", VerifierConfig{HS256Secrets: map[string][]byte{"a": []byte("short")}}, "at least 32"},
		{"short secret file", VerifierConfig{HS256SecretFiles: []string{shortFile}}, "at least 32"},
		{"missing file", VerifierConfig{PublicKeyFiles: []string{filepath.Join(dir, "nope.pem")}}, "no such file"},
		{"not PEM", VerifierConfig{PublicKeyFiles: []string{garbage}}, "no PEM block"},
		{"private key", VerifierConfig{PublicKeyFiles: []string{writePEM(t, dir, "priv.pem", "PRIVATE KEY", privDER)}}, "private key"},
		{"RSA 1024", VerifierConfig{PublicKeyFiles: []string{writePublicKey(t, dir, "small.pem", &small.PublicKey)}}, "at least 2048"},
		{"P-384", VerifierConfig{PublicKeyFiles: []string{writePublicKey(t, dir, "p384.pem", &p384.PublicKey)}}, "only P-256"},
		{"duplicate kid", VerifierConfig{
			HS256Secrets:   map[string][]byte{"rsa": secret1},
			PublicKeyFiles: []string{writePublicKey(t, dir, "rsa.pem", &k.rsa.PublicKey)},
		}, "configured twice"},
		{"bad default pattern", VerifierConfig{HS256Secrets: map[string][]byte{"": secret1}, DefaultSubscribe: []string{"a.*"}}, "default subscribe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			for _, s := range [][]byte{secret1, secret2} {
				if strings.Contains(err.Error(), string(s)) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

func TestVerifierFiles(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "2024-06.key")
	if err := os.WriteFile(secretFile, append(bytes.Clone(secret1), "\r\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{
		HS256SecretFiles: []string{secretFile},
		PublicKeyFiles:   []string{writePEM(t, dir, "idp.crt", "CERTIFICATE", certDER)},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		token string
	}{
		{"secret file, kid from file name, newline trimmed", sign(t, jwt.SigningMethodHS256, "2024-06", secret1, claimsMap(nil))},
		{"certificate file", sign(t, jwt.SigningMethodRS256, "idp", k.rsa, claimsMap(nil))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Verify(tc.token, now); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	for path, want := range map[string]string{
		"/etc/pushd/2024-06.key": "2024-06",
		"rsa.pem":                "rsa",
		"keys/ed25519":           "ed25519",
		"a.b.pem":                "a.b",
	} {
		if got := KeyID(path); got != want {
			t.Errorf("KeyID(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestVerifyConcurrent verifies from several goroutines at once (run with
// -race): a Verifier is shared by every event loop.
func TestVerifyConcurrent(t *testing.T) {
	k := keys()
	v := testVerifier(t, nil)
	toks := []string{
		sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(nil)),
		sign(t, jwt.SigningMethodES256, "ec", k.ec, claimsMap(nil)),
		sign(t, jwt.SigningMethodEdDSA, "ed", k.ed, claimsMap(nil)),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := v.Verify(toks[(g+i)%len(toks)], now); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkVerify(b *testing.B) {
	k := keys()
	dir := b.TempDir()
	der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	rsaFile := filepath.Join(dir, "rsa.pem")
	_ = os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	edDER, _ := x509.MarshalPKIXPublicKey(k.ed.Public())
	edFile := filepath.Join(dir, "ed.pem")
	_ = os.WriteFile(edFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edDER}), 0o600)
	v, err := NewVerifier(VerifierConfig{HS256Secrets: map[string][]byte{"k1": secret1}, PublicKeyFiles: []string{rsaFile, edFile}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		method jwt.SigningMethod
		kid    string
		key    any
	}{
		{"HS256", jwt.SigningMethodHS256, "k1", secret1},
		{"RS256", jwt.SigningMethodRS256, "rsa", k.rsa},
		{"EdDSA", jwt.SigningMethodEdDSA, "ed", k.ed},
	} {
		tok := jwt.NewWithClaims(bc.method, claimsMap(nil))
		tok.Header["kid"] = bc.kid
		s, err := tok.SignedString(bc.key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(s, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
