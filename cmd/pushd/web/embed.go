// Package web holds the files pushd serves over HTTP on its WebSocket port:
// pushd.js, the JavaScript client (docs/client-js.md), and index.html, the
// demo page. They are compiled into the binary with go:embed, so a pushd
// binary always serves the client that matches its protocol.
//
// The same folder is the npm package of the client (package.json,
// pushd.d.ts, README.md); only pushd.js and index.html are embedded. The
// tests in test/ have their own package.json and node_modules, which are
// neither embedded nor published.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
)

// The embedded files. Keep this list in step with byPath below.
//
//go:embed pushd.js index.html
var files embed.FS

// URL paths of the embedded files.
const (
	// ClientPath is where pushd.js is served, always.
	ClientPath = "/pushd.js"
	// DemoPath is where the demo page is served, when the demo is on.
	DemoPath = "/"
)

// CacheControl is the Cache-Control value to send with every file. The URLs
// carry no version, so caches must revalidate (RFC 9111 §5.2.2.4); with the
// ETag that costs a 304 and no body.
const CacheControl = "no-cache"

// File is one servable file, computed once at start-up.
type File struct {
	Body        []byte
	ContentType string
	// ETag is a strong entity tag (RFC 9110 §8.8.3): a digest of Body, in
	// quotes, so it changes exactly when the file does.
	ETag string
}

var byPath = map[string]File{
	ClientPath: load("pushd.js", "text/javascript; charset=utf-8"),
	DemoPath:   load("index.html", "text/html; charset=utf-8"),
}

func load(name, contentType string) File {
	body, err := files.ReadFile(name)
	if err != nil {
		panic("web: embedded file missing: " + name) // a build defect, not a runtime condition
	}
	sum := sha256.Sum256(body)
	return File{Body: body, ContentType: contentType, ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
}

// Lookup returns the file served at URL path p (ClientPath or DemoPath;
// the query string must already be removed). ok is false for any other
// path, which should get 404. The server decides whether DemoPath is
// served (the --demo flag). The returned body is shared: do not modify it.
// Safe for concurrent use from any goroutine.
func Lookup(p string) (body []byte, contentType, etag string, ok bool) {
	f, ok := byPath[p]
	return f.Body, f.ContentType, f.ETag, ok
}

// FS returns the embedded files (pushd.js, index.html) as a read-only file
// system. Safe for concurrent use from any goroutine.
func FS() fs.FS { return files }
