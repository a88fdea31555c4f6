package actorsdk

import (
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// The request and response envelopes (ABI version 1, docs/actors.md section
// 4) are read and written here by hand: encoding/json's reflection costs
// most of a call inside WebAssembly, where the envelope is all a simple
// handler does. The reader accepts exactly what encoding/json accepts when
// it decodes the envelope into its Go types (field names matched without
// regard to case, unknown fields skipped, null leaving a field empty, base64
// bodies, nesting up to 10000 levels) and refuses what it refuses, with one
// difference on purpose: a field of the envelope, the caller or the link
// given twice is refused, where encoding/json would merge the two. The host
// never repeats a field, so a repeated one means the envelope was tampered
// with, and two readers could disagree about which value counts.
// FuzzDecodeRequest holds the two readers to that.

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// errDuplicateField is what a repeated field of the envelope, the caller
// or the link gives.
var errDuplicateField = errors.New("a field is given twice")

// envelopeError is a request envelope the SDK cannot read.
type envelopeError struct {
	what string
	msg  string
	off  int
	err  error
}

func (e *envelopeError) Error() string {
	what := e.what
	if what == "" {
		what = "request envelope"
	}
	return what + ": " + e.msg + " at byte " + strconv.Itoa(e.off)
}

func (e *envelopeError) Unwrap() error { return e.err }

// reader scans one JSON text.
type reader struct {
	s     string
	i     int
	depth int
	what  string // what s is, for errors; "" for the request envelope
}

func (d *reader) fail(msg string) error { return &envelopeError{what: d.what, msg: msg, off: d.i} }

func (d *reader) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end reports whether only white space is left.
func (d *reader) end() bool {
	d.ws()
	return d.i == len(d.s)
}

// peek is the next byte after white space, or 0 at the end (a 0 byte in
// the text is no valid JSON either).
func (d *reader) peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// literal consumes word (true, false, null).
func (d *reader) literal(word string) error {
	if !strings.HasPrefix(d.s[d.i:], word) {
		return d.fail("invalid literal")
	}
	d.i += len(word)
	return nil
}

// null consumes a null if one comes next.
func (d *reader) null() (bool, error) {
	if d.peek() != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

// open consumes the '{' or '[' c, counting the depth.
func (d *reader) open(c byte, what string) error {
	if d.peek() != c {
		return d.fail(what + " expected")
	}
	d.i++
	d.depth++
	if d.depth > maxDepth {
		return d.fail("nested too deeply")
	}
	return nil
}

// more reports, after '{' or '[' or an element, whether another element
// follows, consuming the ',' or the closing byte.
func (d *reader) more(first bool, closing byte) (bool, error) {
	c := d.peek()
	if c == closing {
		d.i++
		d.depth--
		return false, nil
	}
	if first {
		return true, nil
	}
	if c != ',' {
		return false, d.fail("',' or '" + string(closing) + "' expected")
	}
	d.i++
	return true, nil
}

// key reads an object's key and its ':'.
func (d *reader) key() (string, error) {
	if d.peek() != '"' {
		return "", d.fail("string key expected")
	}
	k, err := d.str()
	if err != nil {
		return "", err
	}
	if d.peek() != ':' {
		return "", d.fail("':' expected")
	}
	d.i++
	return k, nil
}

// str reads a string at d.i (its opening quote), unquoted as
// encoding/json does: escapes resolved, lone surrogates and invalid UTF-8
// replaced by U+FFFD. A string without escapes is a substring of the input.
func (d *reader) str() (string, error) {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", d.fail("string expected")
	}
	start := d.i + 1
	i := start
	for i < len(d.s) {
		c := d.s[i]
		switch {
		case c == '"':
			d.i = i + 1
			return d.s[start:i], nil
		case c == '\\' || c < ' ':
			return d.slowStr(start, i)
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(d.s[i:])
			if r == utf8.RuneError && size == 1 {
				return d.slowStr(start, i)
			}
			i += size
		}
	}
	d.i = i
	return "", d.fail("unterminated string")
}

// slowStr finishes reading a string that needs unquoting from i on.
func (d *reader) slowStr(start, i int) (string, error) {
	// The unquoted string is at most as long as the quoted one (a
	// replaced byte grows by two, an escape shrinks by at least one, and
	// append covers the rest): size the buffer by where the string ends,
	// not by the rest of the envelope.
	end := i
	for end < len(d.s) && d.s[end] != '"' {
		if d.s[end] == '\\' {
			end++
		}
		end++
	}
	b := make([]byte, 0, min(end, len(d.s))-start+8)
	b = append(b, d.s[start:i]...)
	for i < len(d.s) {
		c := d.s[i]
		switch {
		case c == '"':
			d.i = i + 1
			return unsafe.String(unsafe.SliceData(b), len(b)), nil
		case c < ' ':
			d.i = i
			return "", d.fail("control character in string")
		case c == '\\':
			if i+1 >= len(d.s) {
				d.i = i
				return "", d.fail("unterminated string")
			}
			switch e := d.s[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(d.s[i+2:])
				if r < 0 {
					d.i = i
					return "", d.fail("invalid \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2 := u4(d.s[i:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							i += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				d.i = i
				return "", d.fail("invalid escape")
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(d.s[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	d.i = i
	return "", d.fail("unterminated string")
}

// hex4 is the value of the four hexadecimal digits s starts with, or -1.
func hex4(s string) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// u4 is the value of the \uXXXX escape s starts with, or -1.
func u4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	return hex4(s[2:])
}

// skip consumes one value of any type, checking its syntax.
func (d *reader) skip() error {
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		if err := d.open('{', "object"); err != nil {
			return err
		}
		for first := true; ; first = false {
			ok, err := d.more(first, '}')
			if err != nil || !ok {
				return err
			}
			if _, err := d.key(); err != nil {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == '[':
		if err := d.open('[', "array"); err != nil {
			return err
		}
		for first := true; ; first = false {
			ok, err := d.more(first, ']')
			if err != nil || !ok {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return d.number()
	}
	return d.fail("value expected")
}

// number consumes a number as JSON's grammar has it.
func (d *reader) number() error {
	s, i := d.s, d.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		d.i = i
		return d.fail("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			d.i = i
			return d.fail("invalid number")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			d.i = i
			return d.fail("invalid number")
		}
	}
	d.i = i
	return nil
}

// stringField reads a string or null (which leaves *dst as it is, as
// encoding/json does).
func (d *reader) stringField(dst *string) error {
	if n, err := d.null(); n || err != nil {
		return err
	}
	if d.peek() != '"' {
		return d.fail("string expected")
	}
	s, err := d.str()
	*dst = s
	return err
}

// boolField reads true, false or null.
func (d *reader) boolField(dst *bool) error {
	switch d.peek() {
	case 't':
		*dst = true
		return d.literal("true")
	case 'f':
		*dst = false
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.fail("boolean expected")
}

// strings reads an array of strings (null elements are "") or null (nil),
// appending the elements to pool; the result is a full slice of pool so
// that appending to it never writes over what follows.
func (d *reader) strings(pool *[]string) ([]string, bool, error) {
	if n, err := d.null(); n || err != nil {
		return nil, false, err
	}
	if err := d.open('[', "array"); err != nil {
		return nil, false, err
	}
	start := len(*pool)
	for first := true; ; first = false {
		ok, err := d.more(first, ']')
		if err != nil {
			return nil, false, err
		}
		if !ok {
			break
		}
		var s string
		if err := d.stringField(&s); err != nil {
			return nil, false, err
		}
		*pool = append(*pool, s)
	}
	p := *pool
	return p[start:len(p):len(p)], true, nil
}

// field is the index of key among names, matched as encoding/json matches
// field names: exactly, or else without regard to case (with the Kelvin
// sign folding to k and the long s to s); -1 when none matches.
func field(key string, names []string) int {
	for i, n := range names {
		if key == n {
			return i
		}
	}
	for i, n := range names {
		if foldEqual(key, n) {
			return i
		}
	}
	return -1
}

// foldEqual reports whether key folds to name, which is lower-case ASCII.
func foldEqual(key, name string) bool {
	j := 0
	for _, r := range key {
		if j >= len(name) {
			return false
		}
		c := name[j]
		switch {
		case r < utf8.RuneSelf:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			if byte(r) != c {
				return false
			}
		case r == '\u212a': // Kelvin sign
			if c != 'k' {
				return false
			}
		case r == '\u017f': // long s
			if c != 's' {
				return false
			}
		default:
			return false
		}
		j++
	}
	return j == len(name)
}

var (
	envelopeFields = []string{"method", "path", "query", "headers", "body", "caller", "request_id"}
	callerFields   = []string{"kind", "id", "email", "roles", "anonymous", "link"}
	linkFields     = []string{"id", "kind", "label", "run", "params"}
)

// seen marks field i of an object as read, refusing it the second time.
func (d *reader) seen(mask *uint32, i int) error {
	if *mask&(1<<i) != 0 {
		return &envelopeError{what: d.what, msg: "field repeated", off: d.i, err: errDuplicateField}
	}
	*mask |= 1 << i
	return nil
}

// decodeRequest reads a request envelope the caller keeps unchanged for as
// long as the request lives: strings of the request point into it.
func decodeRequest(env []byte) (*Request, error) {
	return decodeRequestString(unsafe.String(unsafe.SliceData(env), len(env)))
}

// decodeRequestString reads the request envelope s.
func decodeRequestString(s string) (*Request, error) {
	d := &reader{s: s}
	req := &Request{}
	// One backing array for every header value and role, and room for the
	// usual number of headers on the stack: allocations are what cost most
	// inside WebAssembly.
	pool := make([]string, 0, 16)
	var headerBuf [16]rawHeader
	headers := headerBuf[:0]
	if n, err := d.null(); err != nil {
		return nil, err
	} else if !n {
		if err := d.open('{', "object"); err != nil {
			return nil, err
		}
		var mask uint32
		for first := true; ; first = false {
			ok, err := d.more(first, '}')
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			k, err := d.key()
			if err != nil {
				return nil, err
			}
			f := field(k, envelopeFields)
			if f >= 0 {
				if err := d.seen(&mask, f); err != nil {
					return nil, err
				}
			}
			switch f {
			case 0:
				err = d.stringField(&req.Method)
			case 1:
				err = d.stringField(&req.Path)
			case 2:
				err = d.stringField(&req.RawQuery)
			case 3:
				headers, err = d.headers(headers[:0], &pool)
			case 4:
				req.Body, err = d.base64()
			case 5:
				err = d.caller(&req.Caller, &pool)
			case 6:
				err = d.stringField(&req.RequestID)
			default:
				err = d.skip()
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if !d.end() {
		return nil, d.fail("data after the envelope")
	}
	req.Method = strings.ToUpper(req.Method)
	if req.Path == "" {
		req.Path = "/"
	}
	req.Query = parseQuery(req.RawQuery)
	req.Header = make(Header, len(headers))
	for _, h := range headers {
		if len(h.values) == 0 {
			continue
		}
		k := CanonicalHeaderKey(h.name)
		if old := req.Header[k]; old != nil {
			req.Header[k] = append(old, h.values...)
		} else {
			req.Header[k] = h.values
		}
	}
	return req, nil
}

// rawHeader is one member of the envelope's headers, as sent.
type rawHeader struct {
	name   string
	values []string
}

// headers reads the envelope's headers: an object of arrays of strings, or
// null. A name given twice keeps its last values, as encoding/json's map
// does.
func (d *reader) headers(out []rawHeader, pool *[]string) ([]rawHeader, error) {
	if n, err := d.null(); n || err != nil {
		return nil, err
	}
	if err := d.open('{', "object"); err != nil {
		return nil, err
	}
	var index map[string]int // built once there are many, for repeats
	for first := true; ; first = false {
		ok, err := d.more(first, '}')
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		vs, _, err := d.strings(pool)
		if err != nil {
			return nil, err
		}
		at := -1
		if index != nil {
			if i, ok := index[k]; ok {
				at = i
			}
		} else {
			for i := range out {
				if out[i].name == k {
					at = i
					break
				}
			}
		}
		if at >= 0 {
			out[at].values = vs
			continue
		}
		out = append(out, rawHeader{k, vs})
		if index != nil {
			index[k] = len(out) - 1
		} else if len(out) > 16 {
			index = make(map[string]int, 2*len(out))
			for i, h := range out {
				index[h.name] = i
			}
		}
	}
}

// base64 reads a base64 string (standard alphabet, padded; encoding/json's
// reading of []byte) or null.
func (d *reader) base64() ([]byte, error) {
	if n, err := d.null(); n || err != nil {
		return nil, err
	}
	if d.peek() != '"' {
		return nil, d.fail("base64 string expected")
	}
	at := d.i
	s, err := d.str()
	if err != nil {
		return nil, err
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, unsafe.Slice(unsafe.StringData(s), len(s)))
	if err != nil {
		return nil, &envelopeError{what: d.what, msg: "body is not base64", off: at, err: err}
	}
	return b[:n], nil
}

// caller reads the caller object, or null.
func (d *reader) caller(c *Caller, pool *[]string) error {
	if n, err := d.null(); n || err != nil {
		return err
	}
	if err := d.open('{', "object"); err != nil {
		return err
	}
	var mask uint32
	for first := true; ; first = false {
		ok, err := d.more(first, '}')
		if err != nil || !ok {
			return err
		}
		k, err := d.key()
		if err != nil {
			return err
		}
		f := field(k, callerFields)
		if f >= 0 {
			if err := d.seen(&mask, f); err != nil {
				return err
			}
		}
		switch f {
		case 0:
			err = d.stringField(&c.Kind)
		case 1:
			err = d.stringField(&c.ID)
		case 2:
			err = d.stringField(&c.Email)
		case 3:
			var vs []string
			var isArray bool
			vs, isArray, err = d.strings(pool)
			if isArray && vs == nil {
				vs = []string{}
			}
			c.Roles = vs
		case 4:
			err = d.boolField(&c.Anonymous)
		case 5:
			c.Link, err = d.link()
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

// link reads the caller's study link, or null.
func (d *reader) link() (*Link, error) {
	if n, err := d.null(); n || err != nil {
		return nil, err
	}
	if err := d.open('{', "object"); err != nil {
		return nil, err
	}
	l := &Link{}
	var mask uint32
	for first := true; ; first = false {
		ok, err := d.more(first, '}')
		if err != nil {
			return nil, err
		}
		if !ok {
			return l, nil
		}
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		f := field(k, linkFields)
		if f >= 0 {
			if err := d.seen(&mask, f); err != nil {
				return nil, err
			}
		}
		switch f {
		case 0:
			err = d.stringField(&l.ID)
		case 1:
			err = d.stringField(&l.Kind)
		case 2:
			err = d.stringField(&l.Label)
		case 3:
			err = d.stringField(&l.Run)
		case 4:
			l.Params, err = d.params()
		default:
			err = d.skip()
		}
		if err != nil {
			return nil, err
		}
	}
}

// params reads an object of strings (null members are "") or null; a name
// given twice keeps its last value.
func (d *reader) params() (map[string]string, error) {
	if n, err := d.null(); n || err != nil {
		return nil, err
	}
	if err := d.open('{', "object"); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for first := true; ; first = false {
		ok, err := d.more(first, '}')
		if err != nil {
			return nil, err
		}
		if !ok {
			return m, nil
		}
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		var v string
		if err := d.stringField(&v); err != nil {
			return nil, err
		}
		m[k] = v
	}
}

// encodeResponseEnvelope writes the response envelope as encoding/json
// would write responseEnvelope: header names sorted, strings escaped the
// same way (<, > and & included), empty headers and body left out.
func encodeResponseEnvelope(status int, h Header, body []byte) []byte {
	var keyBuf [16]string
	keys := keyBuf[:0]
	size := 32 + base64.StdEncoding.EncodedLen(len(body))
	for k, vs := range h {
		if len(vs) == 0 || !validHeaderName(k) {
			continue
		}
		keys = append(keys, k)
		size += len(k) + 8
		for _, v := range vs {
			size += len(v) + 3
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	if len(keys) > 0 {
		slices.Sort(keys)
		b = append(b, `,"headers":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ":["...)
			for j, v := range h[k] {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if len(body) > 0 {
		b = append(b, `,"body":"`...)
		b = base64.StdEncoding.AppendEncode(b, body)
		b = append(b, '"')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes strings.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Extended JSON to plain JSON (Document.Plain, Document.Decode).

// appendPlain appends the JSON value at d.i with MongoDB's Extended JSON
// wrappers replaced by plain values: {"$date": ...} by an RFC 3339 string
// in UTC, {"$oid": "..."} by the hexadecimal string, {"$numberLong"},
// {"$numberInt"}, {"$numberDouble"} and {"$numberDecimal"} by the number
// (null for NaN and the infinities, which JSON cannot write),
// {"$binary": {"base64": ...}} by the base64 string, {"$symbol"} by the
// string and {"$undefined": true} by null. Anything else is copied as it
// is, keys and escapes included.
func (d *reader) appendPlain(b []byte) ([]byte, error) {
	switch d.peek() {
	case '{':
		if out, ok := d.plainWrapper(b); ok {
			return out, nil
		}
		if err := d.open('{', "object"); err != nil {
			return nil, err
		}
		b = append(b, '{')
		for first := true; ; first = false {
			ok, err := d.more(first, '}')
			if err != nil {
				return nil, err
			}
			if !ok {
				return append(b, '}'), nil
			}
			if !first {
				b = append(b, ',')
			}
			d.ws()
			at := d.i
			if _, err := d.key(); err != nil {
				return nil, err
			}
			b = append(b, strings.TrimRight(d.s[at:d.i-1], " \t\r\n")...)
			b = append(b, ':')
			if b, err = d.appendPlain(b); err != nil {
				return nil, err
			}
		}
	case '[':
		if err := d.open('[', "array"); err != nil {
			return nil, err
		}
		b = append(b, '[')
		for first := true; ; first = false {
			ok, err := d.more(first, ']')
			if err != nil {
				return nil, err
			}
			if !ok {
				return append(b, ']'), nil
			}
			if !first {
				b = append(b, ',')
			}
			var err2 error
			if b, err2 = d.appendPlain(b); err2 != nil {
				return nil, err2
			}
		}
	}
	d.ws()
	at := d.i
	if err := d.skip(); err != nil {
		return nil, err
	}
	return append(b, d.s[at:d.i]...), nil
}

// plainWrapper replaces the Extended JSON wrapper at d.i, an object of
// one $-key, and reports whether there was one; otherwise d.i is left
// where it was.
func (d *reader) plainWrapper(b []byte) ([]byte, bool) {
	start, depth := d.i, d.depth
	out, ok := d.readWrapper(b, start)
	if !ok {
		d.i, d.depth = start, depth
		return b, false
	}
	return out, true
}

func (d *reader) readWrapper(b []byte, start int) ([]byte, bool) {
	if d.open('{', "object") != nil {
		return b, false
	}
	if d.peek() != '"' {
		return b, false
	}
	k, err := d.key()
	if err != nil || !strings.HasPrefix(k, "$") {
		return b, false
	}
	var out []byte
	switch k {
	case "$date":
		at, depth := d.i, d.depth
		out, ok := d.plainDate(b)
		if !ok {
			// A date RFC 3339 cannot write stays as it is, whole: its
			// $numberLong is no number of its own.
			d.i, d.depth = at, depth
			if d.skip() != nil {
				return b, false
			}
			if _, ok := d.closeWrapper(nil); !ok {
				return b, false
			}
			return append(b, d.s[start:d.i]...), true
		}
		return d.closeWrapper(out)
	case "$oid", "$symbol":
		s, ok := d.stringValue()
		if !ok {
			return b, false
		}
		out = appendJSONString(b, s)
	case "$numberLong", "$numberInt":
		s, ok := d.stringValue()
		if !ok {
			return b, false
		}
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return b, false
		}
		out = append(b, s...)
	case "$numberDouble", "$numberDecimal":
		s, ok := d.stringValue()
		if !ok {
			return b, false
		}
		num := &reader{s: s}
		if num.number() == nil && num.i == len(s) {
			out = append(b, s...)
			break
		}
		switch strings.TrimLeft(s, "+-") {
		case "NaN", "Infinity", "Inf":
			out = append(b, "null"...)
		default:
			return b, false
		}
	case "$binary":
		// {"base64": "...", "subType": "00"}
		if d.open('{', "object") != nil {
			return b, false
		}
		var data string
		for first := true; ; first = false {
			more, err := d.more(first, '}')
			if err != nil {
				return b, false
			}
			if !more {
				break
			}
			key, err := d.key()
			if err != nil {
				return b, false
			}
			s, ok := d.stringValue()
			if !ok {
				return b, false
			}
			if key == "base64" {
				data = s
			}
		}
		out = appendJSONString(b, data)
	case "$undefined":
		if d.peek() != 't' || d.literal("true") != nil {
			return b, false
		}
		out = append(b, "null"...)
	default:
		return b, false
	}
	return d.closeWrapper(out)
}

// closeWrapper consumes the wrapper's closing brace: a second key makes it
// an ordinary object.
func (d *reader) closeWrapper(out []byte) ([]byte, bool) {
	if d.peek() != '}' {
		return nil, false
	}
	d.i++
	d.depth--
	return out, true
}

func (d *reader) stringValue() (string, bool) {
	if d.peek() != '"' {
		return "", false
	}
	s, err := d.str()
	return s, err == nil
}

// plainDate reads the value of $date: an RFC 3339 string (relaxed form) or
// {"$numberLong": "<ms since 1970>"} (canonical form), and appends the
// time as an RFC 3339 string in UTC.
func (d *reader) plainDate(b []byte) ([]byte, bool) {
	var t time.Time
	switch d.peek() {
	case '"':
		s, ok := d.stringValue()
		if !ok {
			return b, false
		}
		var err error
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return b, false
		}
	case '{':
		if d.open('{', "object") != nil {
			return b, false
		}
		if k, err := d.key(); err != nil || k != "$numberLong" {
			return b, false
		}
		s, ok := d.stringValue()
		if !ok {
			return b, false
		}
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return b, false
		}
		if _, ok := d.closeWrapper(nil); !ok {
			return b, false
		}
		t = time.UnixMilli(ms)
	default:
		return b, false
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		// Not writable as RFC 3339: left as Extended JSON.
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// plainJSON is the JSON text s with Extended JSON wrappers made plain
// (appendPlain).
func plainJSON(s string) ([]byte, error) {
	d := &reader{s: s, what: "document"}
	b, err := d.appendPlain(make([]byte, 0, len(s)))
	if err != nil {
		return nil, err
	}
	if !d.end() {
		return nil, d.fail("data after the value")
	}
	return b, nil
}
