package actorjs

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// A fast JSON reader that builds goja values directly. goja's JSON.parse
// goes through encoding/json's Decoder.Token, which allocates an error per
// token: on a request's body that was most of an echo call. This reader
// takes the common path only; on anything it does not take (a syntax
// error, a lone surrogate escape, nesting past maxParseDepth) the caller
// falls back to JSON.parse, so errors and edge cases stay exactly
// JavaScript's.

const maxParseDepth = 500

var (
	errFallback = errors.New("fall back to JSON.parse")
	errTooDeep  = errors.New("JSON nested too deeply")
)

// nesting is the deepest nesting of arrays and objects in s, counted
// outside strings, stopping past limit. goja's JSON.parse recurses on the
// Go stack: a body of a million "[" would grow it until the instance traps,
// so nothing that deep reaches it.
func nesting(s string, limit int) int {
	depth, deepest, inStr := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[', '{':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > limit {
					return deepest
				}
			}
		case ']', '}':
			depth--
		}
	}
	return deepest
}

type jsonReader struct {
	rt    *Runtime
	s     string
	i     int
	dates bool
	depth int
}

// fastParse parses s, making Extended JSON dates Dates when dates is set.
func (rt *Runtime) fastParse(s string, dates bool) (goja.Value, error) {
	r := jsonReader{rt: rt, s: s, dates: dates}
	r.ws()
	v, err := r.value()
	if err != nil {
		return nil, err
	}
	r.ws()
	if r.i != len(r.s) {
		return nil, errFallback
	}
	return v, nil
}

func (r *jsonReader) ws() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *jsonReader) value() (goja.Value, error) {
	if r.i >= len(r.s) {
		return nil, errFallback
	}
	switch c := r.s[r.i]; {
	case c == '{':
		return r.object()
	case c == '[':
		return r.array()
	case c == '"':
		s, err := r.str()
		if err != nil {
			return nil, err
		}
		return r.rt.vm.ToValue(s), nil
	case c == 't':
		return r.lit("true", goja.Value(r.rt.vm.ToValue(true)))
	case c == 'f':
		return r.lit("false", goja.Value(r.rt.vm.ToValue(false)))
	case c == 'n':
		return r.lit("null", goja.Null())
	case c == '-' || c >= '0' && c <= '9':
		return r.number()
	}
	return nil, errFallback
}

func (r *jsonReader) lit(word string, v goja.Value) (goja.Value, error) {
	if len(r.s)-r.i >= len(word) && r.s[r.i:r.i+len(word)] == word {
		r.i += len(word)
		return v, nil
	}
	return nil, errFallback
}

func (r *jsonReader) number() (goja.Value, error) {
	start := r.i
	if r.s[r.i] == '-' {
		r.i++
	}
	if r.i >= len(r.s) {
		return nil, errFallback
	}
	if r.s[r.i] == '0' {
		r.i++
	} else if r.s[r.i] >= '1' && r.s[r.i] <= '9' {
		for r.i < len(r.s) && r.s[r.i] >= '0' && r.s[r.i] <= '9' {
			r.i++
		}
	} else {
		return nil, errFallback
	}
	integer := true
	if r.i < len(r.s) && r.s[r.i] == '.' {
		integer = false
		r.i++
		d := r.i
		for r.i < len(r.s) && r.s[r.i] >= '0' && r.s[r.i] <= '9' {
			r.i++
		}
		if r.i == d {
			return nil, errFallback
		}
	}
	if r.i < len(r.s) && (r.s[r.i] == 'e' || r.s[r.i] == 'E') {
		integer = false
		r.i++
		if r.i < len(r.s) && (r.s[r.i] == '+' || r.s[r.i] == '-') {
			r.i++
		}
		d := r.i
		for r.i < len(r.s) && r.s[r.i] >= '0' && r.s[r.i] <= '9' {
			r.i++
		}
		if r.i == d {
			return nil, errFallback
		}
	}
	text := r.s[start:r.i]
	if integer && len(text) < 16 && text != "-0" {
		n, err := strconv.ParseInt(text, 10, 64)
		if err == nil {
			return r.rt.vm.ToValue(n), nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, errFallback
	}
	return r.rt.vm.ToValue(f), nil
}

// str reads a string; escapes that make a lone surrogate fall back, since
// a Go string cannot hold one.
func (r *jsonReader) str() (string, error) {
	r.i++ // the opening quote
	start := r.i
	for r.i < len(r.s) {
		c := r.s[r.i]
		switch {
		case c == '"':
			s := r.s[start:r.i]
			r.i++
			return s, nil
		case c == '\\':
			return r.slowStr(start)
		case c < 0x20:
			return "", errFallback
		case c >= utf8.RuneSelf:
			rn, size := utf8.DecodeRuneInString(r.s[r.i:])
			if rn == utf8.RuneError && size == 1 {
				return "", errFallback
			}
			r.i += size
		default:
			r.i++
		}
	}
	return "", errFallback
}

func (r *jsonReader) slowStr(start int) (string, error) {
	b := []byte(r.s[start:r.i])
	for r.i < len(r.s) {
		c := r.s[r.i]
		switch {
		case c == '"':
			r.i++
			return string(b), nil
		case c < 0x20:
			return "", errFallback
		case c != '\\':
			b = append(b, c)
			r.i++
			continue
		}
		r.i++
		if r.i >= len(r.s) {
			return "", errFallback
		}
		e := r.s[r.i]
		r.i++
		switch e {
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
			rn, ok := r.hex4()
			if !ok {
				return "", errFallback
			}
			if utf16.IsSurrogate(rn) {
				if rn >= 0xdc00 || r.i+1 >= len(r.s) || r.s[r.i] != '\\' || r.s[r.i+1] != 'u' {
					return "", errFallback
				}
				r.i += 2
				lo, ok := r.hex4()
				if !ok {
					return "", errFallback
				}
				rn = utf16.DecodeRune(rn, lo)
				if rn == utf8.RuneError {
					return "", errFallback
				}
			}
			b = utf8.AppendRune(b, rn)
		default:
			return "", errFallback
		}
	}
	return "", errFallback
}

func (r *jsonReader) hex4() (rune, bool) {
	if len(r.s)-r.i < 4 {
		return 0, false
	}
	var n rune
	for _, c := range []byte(r.s[r.i : r.i+4]) {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			n |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			n |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	r.i += 4
	return n, true
}

func (r *jsonReader) array() (goja.Value, error) {
	r.depth++
	if r.depth > maxParseDepth {
		return nil, errTooDeep
	}
	defer func() { r.depth-- }()
	r.i++
	r.ws()
	var items []any
	if r.i < len(r.s) && r.s[r.i] == ']' {
		r.i++
		return r.rt.vm.NewArray(), nil
	}
	for {
		r.ws()
		v, err := r.value()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		r.ws()
		if r.i >= len(r.s) {
			return nil, errFallback
		}
		switch r.s[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return r.rt.vm.NewArray(items...), nil
		default:
			return nil, errFallback
		}
	}
}

func (r *jsonReader) object() (goja.Value, error) {
	r.depth++
	if r.depth > maxParseDepth {
		return nil, errTooDeep
	}
	defer func() { r.depth-- }()
	r.i++
	o := r.rt.vm.NewObject()
	r.ws()
	if r.i < len(r.s) && r.s[r.i] == '}' {
		r.i++
		return o, nil
	}
	n := 0
	var date goja.Value
	for {
		r.ws()
		if r.i >= len(r.s) || r.s[r.i] != '"' {
			return nil, errFallback
		}
		k, err := r.str()
		if err != nil {
			return nil, err
		}
		r.ws()
		if r.i >= len(r.s) || r.s[r.i] != ':' {
			return nil, errFallback
		}
		r.i++
		r.ws()
		v, err := r.value()
		if err != nil {
			return nil, err
		}
		if k == "__proto__" {
			// JSON.parse makes an own property of it, not the prototype.
			_ = o.DefineDataProperty(k, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
		} else {
			_ = o.Set(k, v)
		}
		n++
		if r.dates && k == "$date" {
			date = v
		}
		r.ws()
		if r.i >= len(r.s) {
			return nil, errFallback
		}
		switch r.s[r.i] {
		case ',':
			r.i++
		case '}':
			r.i++
			if date != nil && n == 1 {
				if d := r.date(date); d != nil {
					return d, nil
				}
			}
			return o, nil
		default:
			return nil, errFallback
		}
	}
}

// date is the Date of an Extended JSON date's value: an RFC 3339 string or
// {"$numberLong": "<ms>"}; nil when it is neither.
func (r *jsonReader) date(v goja.Value) goja.Value {
	if s, ok := stringOf(v); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil
		}
		return r.rt.newDate(t)
	}
	o, ok := v.(*goja.Object)
	if !ok {
		return nil
	}
	keys := o.Keys()
	if len(keys) != 1 || keys[0] != "$numberLong" {
		return nil
	}
	s, ok := stringOf(o.Get("$numberLong"))
	if !ok {
		return nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil
	}
	return r.rt.newDate(time.UnixMilli(ms))
}
