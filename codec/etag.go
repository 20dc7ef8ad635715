package codec

// NoneMatch reports whether a request's If-None-Match field value (all its
// lines joined with ", ", as HTTPRequest.IfNoneMatch holds them) names etag,
// so that a GET or HEAD is answered 304 Not Modified (RFC 9110 §13.1.2).
// The field is "*" or a comma-separated list of entity-tags, each an opaque
// tag in double quotes, optionally marked weak with "W/"; comparison is
// weak, so W/"x" matches "x" (§8.8.3.2). "*" matches any current
// representation. etag is the server's own strong tag, quotes included.
//
// A field that does not follow the grammar (a bare token, an unterminated
// quote, a byte outside etagc) matches nothing, so the full response is
// sent: a broken validator must not cost a client its content. The list is
// read left to right and the answer is true as soon as a member matches.
// NoneMatch does not allocate, is pure and may be called from any
// goroutine.
func NoneMatch(field, etag string) bool {
	if len(etag) < 2 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		return false
	}
	opaque := etag[1 : len(etag)-1]
	i, members := 0, 0
	for {
		// Skip OWS and empty list elements (RFC 9110 §5.6.1.2).
		for i < len(field) && (field[i] == ' ' || field[i] == '\t' || field[i] == ',') {
			i++
		}
		if i == len(field) {
			return false
		}
		if field[i] == '*' {
			// "*" is the whole field value, never a list member.
			return members == 0 && trimOWSString(field[i+1:]) == ""
		}
		members++
		if len(field)-i >= 2 && field[i] == 'W' && field[i+1] == '/' {
			i += 2
		}
		if i == len(field) || field[i] != '"' {
			return false
		}
		j := i + 1
		for j < len(field) && field[j] != '"' {
			if !etagc(field[j]) {
				return false
			}
			j++
		}
		if j == len(field) {
			return false // unterminated
		}
		if field[i+1:j] == opaque {
			return true
		}
		i = j + 1
		// A member ends at OWS, a comma or the end.
		if i < len(field) && field[i] != ' ' && field[i] != '\t' && field[i] != ',' {
			return false
		}
	}
}

// etagc reports whether c may appear inside an opaque tag: %x21 / %x23-7E /
// obs-text (RFC 9110 §8.8.3).
func etagc(c byte) bool { return c == 0x21 || c >= 0x23 && c != 0x7f }

// trimOWSString returns s without leading and trailing spaces and tabs.
func trimOWSString(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
