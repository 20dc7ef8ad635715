package web

import (
	"bytes"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		path, file, contentType string
	}{
		{ClientPath, "pushd.js", "text/javascript; charset=utf-8"},
		{DemoPath, "index.html", "text/html; charset=utf-8"},
	} {
		body, ctype, etag, ok := Lookup(tc.path)
		if !ok {
			t.Fatalf("Lookup(%q) not found", tc.path)
		}
		want, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("Lookup(%q) body differs from %s", tc.path, tc.file)
		}
		if ctype != tc.contentType {
			t.Errorf("Lookup(%q) content type %q, want %q", tc.path, ctype, tc.contentType)
		}
		if len(etag) != 24 || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || strings.HasPrefix(etag, "W/") {
			t.Errorf("Lookup(%q) ETag %s, want a quoted strong tag of 22 characters", tc.path, etag)
		}
		if _, _, again, _ := Lookup(tc.path); again != etag {
			t.Errorf("ETag not stable: %s then %s", etag, again)
		}
	}
	_, _, js, _ := Lookup(ClientPath)
	_, _, demo, _ := Lookup(DemoPath)
	if js == demo {
		t.Error("two files share an ETag")
	}
	for _, p := range []string{"/index.html", "/pushd.d.ts", "/package.json", "/test/package.json", "/embed.go", "pushd.js", "/PUSHD.JS", ""} {
		if _, _, _, ok := Lookup(p); ok {
			t.Errorf("Lookup(%q) found a file; only %s and %s are served", p, ClientPath, DemoPath)
		}
	}
}

func TestFSHoldsOnlyServedFiles(t *testing.T) {
	ents, err := fs.ReadDir(FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// package.json, the tests and their node_modules must stay out.
	if strings.Join(names, ",") != "index.html,pushd.js" {
		t.Errorf("embedded files %v, want index.html and pushd.js", names)
	}
}
