package codec

import "strings"

// QueryValue returns the value of the first parameter called name in
// rawQuery, the part of a request target after '?' (HTTPRequest.RawQuery),
// read as application/x-www-form-urlencoded the way url.ParseQuery reads
// it: parameters separated by '&', a key matched after decoding its escapes
// ('+' is a space, %XX a byte), and a parameter skipped when it holds ';' or
// a malformed escape. The value is returned undecoded, as a substring of
// rawQuery, so the lookup does not allocate; values the server issued
// itself (an Engine.IO sid, "polling", "4") need no decoding, and
// url.QueryUnescape decodes any other. A parameter without '=' has the
// value "". It is how a transport reads EIO, transport and sid on every
// long-poll without building a url.Values. QueryValue is pure and may be
// called from any goroutine.
func QueryValue(rawQuery, name string) (value string, ok bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			// net/url refuses ';' as a separator since Go 1.17: a proxy
			// that splits on it would see other parameters than we do.
			continue
		}
		key, v, _ := strings.Cut(pair, "=")
		if validEscapes(key) && validEscapes(v) && unescapedEqual(key, name) {
			return v, true
		}
	}
	return "", false
}

// unescapedEqual reports whether the form-encoded key, whose escapes are
// valid, decodes to name.
func unescapedEqual(key, name string) bool {
	j := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			c = unhex(key[i+1])<<4 | unhex(key[i+2])
			i += 2
		}
		if j >= len(name) || name[j] != c {
			return false
		}
		j++
	}
	return j == len(name)
}

// unhex returns the value of the hex digit c.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
