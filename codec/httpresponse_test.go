package codec

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"
)

func TestAppendResponseHead(t *testing.T) {
	got := AppendResponseHead([]byte("x"), 200,
		[2]string{"Content-Type", "text/event-stream"}, [2]string{"Bad Name", "v"}, [2]string{"X-A", "a\r\nSet-Cookie: s"})
	const golden = "xHTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-A: aSet-Cookie: s\r\n\r\n"
	if string(got) != golden {
		t.Fatalf("got %q, want %q", got, golden)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got[1:])), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != -1 || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("status %d, length %d, header %q", resp.StatusCode, resp.ContentLength, resp.Header)
	}
	if got := string(AppendResponseHead(nil, 1000)); got != "HTTP/1.1 500 Internal Server Error\r\n\r\n" {
		t.Errorf("out of range status: %q", got)
	}
}

func TestAppendResponseHeadLen(t *testing.T) {
	body := "hello"
	got := AppendResponseHeadLen(nil, 200, int64(len(body)), [2]string{"Cache-Control", "no-store"})
	const golden = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: no-store\r\n\r\n"
	if string(got) != golden {
		t.Fatalf("got %q, want %q", got, golden)
	}
	resp, b := hsReadResponse(t, append(got, body...))
	if resp.ContentLength != 5 || b != body || resp.Close {
		t.Errorf("length %d body %q close %v", resp.ContentLength, b, resp.Close)
	}
	if got := string(AppendResponseHeadLen(nil, 304, -7)); got != "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n" {
		t.Errorf("negative length: %q", got)
	}
}

func TestAppendResponse(t *testing.T) {
	tests := []struct {
		name, contentType, body, golden string
		status                          int
		header                          [][2]string
	}{
		{
			name: "engine.io ok", status: 200, contentType: "text/html", body: "ok",
			golden: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok",
		},
		{
			name: "engine.io unknown sid", status: 400, contentType: "application/json", body: EIOErrUnknownSID,
			header: [][2]string{{"Access-Control-Allow-Origin", "https://a.example"}},
			golden: "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 41\r\n" +
				"Access-Control-Allow-Origin: https://a.example\r\n\r\n" + EIOErrUnknownSID,
		},
		{
			name: "no content type, empty body", status: 204,
			golden: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name: "hostile content type", status: 200, contentType: "text/plain\r\nSet-Cookie: a=b", body: "x",
			golden: "HTTP/1.1 200 OK\r\nContent-Type: text/plainSet-Cookie: a=b\r\nContent-Length: 1\r\n\r\nx",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendResponse(nil, tt.status, tt.contentType, tt.body, tt.header...)
			if string(got) != tt.golden {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.golden)
			}
			resp, body := hsReadResponse(t, got)
			if resp.StatusCode != tt.status || body != tt.body || resp.Close || resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("status %d body %q close %v header %q", resp.StatusCode, body, resp.Close, resp.Header)
			}
		})
	}
}

func TestAppendHTTPErrorKeepAlive(t *testing.T) {
	got := AppendHTTPErrorKeepAlive(nil, 404, "not found", [2]string{"Cache-Control", "no-store"})
	const golden = "HTTP/1.1 404 Not Found\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: 10\r\n" +
		"Cache-Control: no-store\r\n" +
		"\r\n" +
		"not found\n"
	if string(got) != golden {
		t.Fatalf("got\n%q\nwant\n%q", got, golden)
	}
	resp, body := hsReadResponse(t, got)
	if resp.StatusCode != 404 || body != "not found\n" || resp.Close {
		t.Errorf("status %d body %q close %v", resp.StatusCode, body, resp.Close)
	}
	// The closing variant differs by exactly its Connection header.
	closing := AppendHTTPError(nil, 404, "not found", [2]string{"Cache-Control", "no-store"})
	if want := bytes.Replace(got, []byte("Cache-Control"), []byte("Connection: close\r\nCache-Control"), 1); !bytes.Equal(closing, want) {
		t.Errorf("AppendHTTPError %q, want %q", closing, want)
	}
}

func TestContinueResponse(t *testing.T) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader([]byte(ContinueResponse))), nil)
	if err != nil || resp.StatusCode != 100 {
		t.Fatalf("%v, %v", resp, err)
	}
}

func TestHTTPResponseAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	for name, f := range map[string]func(){
		"AppendResponseHead": func() {
			_ = AppendResponseHead(buf[:0], 200, [2]string{"Content-Type", "text/event-stream"}, [2]string{"Cache-Control", "no-store"})
		},
		"AppendResponseHeadLen": func() { _ = AppendResponseHeadLen(buf[:0], 200, 12345, [2]string{"Cache-Control", "no-store"}) },
		"AppendResponse":        func() { _ = AppendResponse(buf[:0], 400, "application/json", EIOErrUnknownSID) },
		"AppendHTTPErrorKeepAlive": func() {
			_ = AppendHTTPErrorKeepAlive(buf[:0], 404, "not found", [2]string{"Cache-Control", "no-store"})
		},
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs, want 0", name, n)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponse(buf[:0], 200, "text/plain; charset=UTF-8", "ok",
			[2]string{"Cache-Control", "no-store"}, [2]string{"Access-Control-Allow-Origin", "https://app.example.com"})
	}
}
