package actorjs

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// maxDepth bounds the nesting of values rendered as JSON, Extended JSON's
// wrappers counted: deeper is a RangeError, not a Go stack that grows until
// the instance traps. It is the reader's bound, so that whatever the
// runtime writes (a timer's payload, a document) it can read back.
const maxDepth = maxParseDepth

var (
	errCyclic = errors.New("the value is cyclic (an object contains itself)")
	errDeep   = fmt.Errorf("the value is nested deeper than %d levels", maxDepth)
	errBigInt = errors.New("a BigInt cannot be rendered as JSON")
)

// encodeError is the exception for a value encode refused, what naming
// the argument: a RangeError for nesting past maxDepth (as an engine's
// JSON.stringify throws for a value too deep for its stack), a TypeError
// for the rest (as JSON.stringify throws for a cycle or a BigInt).
func (rt *Runtime) encodeError(what string, err error) *goja.Object {
	if errors.Is(err, errDeep) {
		return rt.newError(rt.rangeErrorCtor, what+": "+err.Error())
	}
	return rt.vm.NewTypeError(what + ": " + err.Error())
}

// encoder renders JavaScript values as JSON as JSON.stringify does (key
// order kept, undefined, functions and symbols left out of objects, toJSON
// honoured), walking the objects from Go: no JavaScript call per value.
// With ext it writes MongoDB's Relaxed Extended JSON: a Date as
// {"$date": "..."} and bytes as {"$binary": ...}.
type encoder struct {
	rt    *Runtime
	ext   bool
	b     []byte
	stack []*goja.Object
}

// encode renders v; nil (no error) when v renders as nothing (undefined,
// a function, a symbol). Exceptions of getters and proxies propagate as
// panics, as in any native function of goja.
func (rt *Runtime) encode(v goja.Value, ext bool) ([]byte, error) {
	e := encoder{rt: rt, ext: ext, b: make([]byte, 0, 64)}
	ok, err := e.value(v, "", true)
	if err != nil || !ok {
		return nil, err
	}
	return e.b, nil
}

// skipped reports values JSON leaves out of objects.
func skipped(v goja.Value) bool {
	if v == nil || goja.IsUndefined(v) {
		return true
	}
	switch x := v.(type) {
	case *goja.Symbol:
		return true
	case *goja.Object:
		return x.ClassName() == "Function"
	}
	return false
}

// value writes v; toJSON is false for what a toJSON returned, which
// JSON.stringify does not hand to toJSON again (else a toJSON returning a
// new object of its kind would recurse without end).
func (e *encoder) value(v goja.Value, key string, toJSON bool) (bool, error) {
	if skipped(v) {
		return false, nil
	}
	if goja.IsNull(v) {
		e.b = append(e.b, "null"...)
		return true, nil
	}
	o, isObj := v.(*goja.Object)
	if !isObj {
		switch x := v.Export().(type) {
		case string:
			e.b = appendString(e.b, x)
		case bool:
			e.b = strconv.AppendBool(e.b, x)
		case int64:
			e.b = strconv.AppendInt(e.b, x, 10)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				e.b = append(e.b, "null"...)
			} else {
				e.b = append(e.b, v.String()...)
			}
		default:
			if v.ExportType() != nil && v.ExportType().String() == "*big.Int" {
				return false, errBigInt
			}
			e.b = appendString(e.b, v.String())
		}
		return true, nil
	}
	class := o.ClassName()
	if class == "Date" {
		if e.ext && len(e.stack) >= maxDepth {
			return false, errDeep // {"$date": ...} is one level more
		}
		return true, e.date(o)
	}
	if e.ext {
		if b, ok := bytesOf(o); ok {
			if len(e.stack)+1 >= maxDepth {
				return false, errDeep // {"$binary": {...}} is two
			}
			e.b = append(e.b, `{"$binary":{"base64":"`...)
			e.b = base64.StdEncoding.AppendEncode(e.b, b)
			e.b = append(e.b, `","subType":"00"}}`...)
			return true, nil
		}
	}
	if toJSON {
		if tj, ok := goja.AssertFunction(o.Get("toJSON")); ok {
			r, err := tj(o, e.rt.vm.ToValue(key))
			if err != nil {
				panic(err)
			}
			if r != v {
				return e.value(r, key, false)
			}
		}
	}
	for _, s := range e.stack {
		if s == o {
			return false, errCyclic
		}
	}
	if len(e.stack) >= maxDepth {
		return false, errDeep
	}
	e.stack = append(e.stack, o)
	defer func() { e.stack = e.stack[:len(e.stack)-1] }()
	switch class {
	case "Number":
		// Wrapper objects render as their primitive.
		return e.value(o.ToNumber(), key, false)
	case "String":
		return e.value(e.rt.vm.ToValue(o.String()), key, false)
	case "Boolean":
		return e.value(e.rt.vm.ToValue(o.ToNumber().ToInteger() != 0), key, false)
	case "Array":
		n := o.Get("length").ToInteger()
		e.b = append(e.b, '[')
		for i := int64(0); i < n; i++ {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			k := strconv.FormatInt(i, 10)
			ok, err := e.value(o.Get(k), k, true)
			if err != nil {
				return false, err
			}
			if !ok {
				e.b = append(e.b, "null"...)
			}
		}
		e.b = append(e.b, ']')
		return true, nil
	}
	e.b = append(e.b, '{')
	first := true
	for _, k := range o.Keys() {
		fv := o.Get(k)
		if skipped(fv) {
			continue
		}
		mark := len(e.b)
		if !first {
			e.b = append(e.b, ',')
		}
		e.b = appendString(e.b, k)
		e.b = append(e.b, ':')
		ok, err := e.value(fv, k, true)
		if err != nil {
			return false, err
		}
		if !ok {
			e.b = e.b[:mark]
			continue
		}
		first = false
	}
	e.b = append(e.b, '}')
	return true, nil
}

// date writes a Date: an ISO string as toJSON does, or {"$date": ...} in
// Extended JSON; an invalid date is null.
func (e *encoder) date(o *goja.Object) error {
	t, ok := o.Export().(time.Time)
	if !ok {
		e.b = append(e.b, "null"...)
		return nil
	}
	ms := t.UnixMilli()
	if math.IsNaN(float64(ms)) {
		e.b = append(e.b, "null"...)
		return nil
	}
	s := t.UTC().Format("2006-01-02T15:04:05.000Z")
	if e.ext {
		e.b = append(e.b, `{"$date":`...)
		e.b = appendString(e.b, s)
		e.b = append(e.b, '}')
		return nil
	}
	e.b = appendString(e.b, s)
	return nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; bytes that are not UTF-8 become
// U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
