package codec_test

import (
	"bytes"
	"io"
	"testing"

	kflate "github.com/klauspost/compress/flate"

	"github.com/pushd/pushd/codec"
)

// Fuzz targets for permessage-deflate. Run one with, for example:
//
//	go test -run '^$' -fuzz FuzzInflate -fuzztime 30s ./codec

// FuzzNegotiateDeflate compares NegotiateDeflate with the regexp-based
// reference negotiator, checks that any answer is one a strict client
// accepts, and that cutting the list into several header values at commas
// (cuts picks which) changes nothing.
func FuzzNegotiateDeflate(f *testing.F) {
	for _, s := range []string{
		offerChrome, offerFirefox, offerGorilla, offerWSAll,
		"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits",
		`foo; x="a\"b, c", permessage-deflate; server_max_window_bits="1\2"`,
		"PerMessage-Deflate ;\tclient_max_window_bits = 15 , x",
		`permessage-deflate; server_max_window_bits="10, permessage-deflate`,
	} {
		f.Add(s, []byte{0, 1})
	}
	f.Fuzz(func(t *testing.T, list string, cuts []byte) {
		checkNegotiateDeflate(t, list, cuts)
	})
}

// fuzzInflater and fuzzDeflater are reused across a worker's inputs, as a
// loop reuses one: a state leak from one input into the next would show as
// a mismatch with the fresh reference decoder, or as a round trip that
// fails.
var (
	fuzzInflater = codec.NewInflater()
	fuzzDeflater = codec.NewDeflater()
)

// FuzzInflate inflates arbitrary payloads and compares the outcome with a
// fresh klauspost/compress decoder reading the same bytes plus the same
// tail (another implementation than the Inflater's compress/flate): the same
// output when both succeed, ErrMessageTooBig exactly when more than limit
// bytes come out, ErrBadDeflate exactly when the reference fails first. It
// also feeds the payload in parts cut by cuts (InflateParts must agree), and
// checks that Deflater.Compress of the payload round-trips.
func FuzzInflate(f *testing.F) {
	d := codec.NewDeflater()
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, []byte{3}, uint16(100))
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, []byte{1, 1, 1}, uint16(5))
	f.Add([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, []byte{}, uint16(4))
	f.Add([]byte{0xf2, 0x00, 0x11, 0x00, 0x00}, []byte{2}, uint16(10))
	f.Add(d.Compress(nil, pushJSON2K()), []byte{7, 100, 3}, uint16(4096))
	f.Add(bytes.TrimSuffix(bombPart(f), []byte{0, 0, 0xff, 0xff}), []byte{15, 15}, uint16(60000))
	f.Add([]byte{}, []byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, data, cuts []byte, limit uint16) {
		lim := int(limit)
		got, err := fuzzInflater.Inflate([]byte("dst"), data, lim)
		if err != nil && string(got) != "dst" || err == nil && !bytes.HasPrefix(got, []byte("dst")) {
			t.Fatalf("dst prefix lost: %q…, %v", got[:min(len(got), 8)], err)
		}
		got = got[3:]
		if len(data) > 0 {
			checkInflateAgainstRef(t, data, lim, got, err)
		} else if err != nil || len(got) != 0 {
			t.Fatalf("empty payload: %q, %v", got, err)
		}

		parts := frameFuzzPieces(data, cuts)
		pgot, perr := fuzzInflater.InflateParts(nil, parts, lim)
		if perr != err || !bytes.Equal(pgot, got) {
			t.Fatalf("InflateParts over %d parts = %d bytes, %v; Inflate = %d bytes, %v", len(parts), len(pgot), perr, len(got), err)
		}

		c := fuzzDeflater.Compress(nil, data)
		back, err := fuzzInflater.Inflate(nil, c, len(data))
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("Compress round trip: %d of %d bytes, %v", len(back), len(data), err)
		}
	})
}

// checkInflateAgainstRef compares Inflate's outcome on data with a fresh
// klauspost decoder's. klauspost checks less than compress/flate and zlib
// (it decodes a dynamic block with no end-of-block code until the input
// runs out, where they fail at once), so the Inflater may fail earlier
// than the reference but never accept what the reference rejects.
func checkInflateAgainstRef(t *testing.T, data []byte, lim int, got []byte, err error) {
	t.Helper()
	tail := []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}
	fr := kflate.NewReader(bytes.NewReader(append(data[:len(data):len(data)], tail...)))
	ref, refErr := io.ReadAll(io.LimitReader(fr, int64(lim)+1))
	// Whether the reference fails somewhere further on, reading at most
	// 64 MiB more (a bomb in the input cannot run longer).
	eventual := refErr
	if eventual == nil && len(ref) > lim {
		_, eventual = io.Copy(io.Discard, io.LimitReader(fr, 64<<20))
	}
	switch err {
	case nil:
		if refErr != nil || len(ref) > lim || !bytes.Equal(got, ref) {
			t.Fatalf("Inflate gives %d bytes; the reference %d bytes, %v", len(got), len(ref), refErr)
		}
	case codec.ErrMessageTooBig:
		if len(ref) <= lim {
			t.Fatalf("Inflate: too big for %d; the reference gives %d bytes, %v", lim, len(ref), refErr)
		}
	case codec.ErrBadDeflate:
		if eventual == nil {
			t.Fatalf("Inflate: bad data; the reference gives %d bytes (limit %d) and no error", len(ref), lim)
		}
	default:
		t.Fatalf("Inflate: unexpected error %v", err)
	}
}
