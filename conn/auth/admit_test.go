package auth

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/codec"
)

func testAdmitter(t *testing.T, v *Verifier, origins *OriginPolicy) *Admitter {
	t.Helper()
	return NewAdmitter(AdmitterConfig{Verifier: v, Origins: origins, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock: func() time.Time { return now }})
}

// AdmitRequest checks the Origin and a token the request carries, and lets
// a request without one through for the protocol to authenticate.
func TestAdmitRequest(t *testing.T) {
	good := sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(nil))
	origins, err := NewOriginPolicy([]string{"https://app.example"}, true)
	if err != nil {
		t.Fatal(err)
	}
	a := testAdmitter(t, testVerifier(t, nil), origins)
	for _, tt := range []struct {
		name   string
		req    codec.HTTPRequest
		status int
		sub    string
	}{
		{"no token", codec.HTTPRequest{Path: "/socket.io/"}, 0, ""},
		{"good token", codec.HTTPRequest{Path: "/socket.io/", RawQuery: "EIO=4&token=" + good}, 0, "u1"},
		{"bad token", codec.HTTPRequest{Path: "/socket.io/", Authorization: "Bearer nope"}, 401, ""},
		{"bad origin", codec.HTTPRequest{Path: "/socket.io/", Origin: "https://evil.example", RawQuery: "token=" + good}, 403, ""},
	} {
		id, herr := a.AdmitRequest(&tt.req)
		switch {
		case tt.status != 0:
			if herr == nil || herr.Status != tt.status || id != nil {
				t.Errorf("%s: %v, %v; want %d", tt.name, id, herr, tt.status)
			}
		case herr != nil:
			t.Errorf("%s: refused %v", tt.name, herr)
		case tt.sub == "" && id != nil, tt.sub != "" && (id == nil || id.Subject() != tt.sub):
			t.Errorf("%s: identity %v, want subject %q", tt.name, id, tt.sub)
		}
	}
	if tok, origin := a.Refused(); tok != 1 || origin != 1 {
		t.Errorf("refused counted %d token, %d origin", tok, origin)
	}
	// Insecure mode: anonymous even with a token.
	if id, herr := testAdmitter(t, nil, nil).AdmitRequest(&codec.HTTPRequest{Authorization: "Bearer " + good}); id != nil || herr != nil {
		t.Errorf("insecure: %v, %v", id, herr)
	}
}

// VerifyToken refuses a missing or bad token with a TokenError that never
// holds the token, and is anonymous in insecure mode.
func TestVerifyToken(t *testing.T) {
	good := sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(nil))
	expired := sign(t, jwt.SigningMethodHS256, "k1", secret1, claimsMap(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))
	a := testAdmitter(t, testVerifier(t, nil), nil)
	if id, err := a.VerifyToken(good); err != nil || id.Subject() != "u1" {
		t.Fatalf("good token: %v, %v", id, err)
	}
	for _, tt := range []struct {
		token string
		kind  error
	}{
		{"", ErrMissingToken},
		{"abc", ErrInvalidToken},
		{expired, ErrExpired},
		{good[:len(good)-2], ErrInvalidToken},
	} {
		id, err := a.VerifyToken(tt.token)
		var te *TokenError
		if id != nil || !errors.As(err, &te) || !errors.Is(err, tt.kind) {
			t.Errorf("VerifyToken(%.10q): %v, %v; want %v", tt.token, id, err, tt.kind)
			continue
		}
		if tt.token != "" && strings.Contains(err.Error(), tt.token) {
			t.Errorf("the error holds the token: %v", err)
		}
	}
	if tok, _ := a.Refused(); tok != 4 {
		t.Errorf("refused tokens counted %d, want 4", tok)
	}
	if id, err := testAdmitter(t, nil, nil).VerifyToken("anything"); id != nil || err != nil {
		t.Errorf("insecure: %v, %v", id, err)
	}
}
