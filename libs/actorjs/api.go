package actorjs

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/dop251/goja"
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// setup builds the globals: gnome, console and the prelude's helpers.
func (rt *Runtime) setup() error {
	vm := rt.vm
	pv, err := vm.RunProgram(preludeProgram)
	if err != nil {
		return err
	}
	pf, _ := goja.AssertFunction(pv)
	statusOf := vm.ToValue(func(c goja.FunctionCall) goja.Value {
		return vm.ToValue(actorsdk.StatusOf(c.Argument(0).String()))
	})
	helpers, err := pf(goja.Undefined(), statusOf)
	if err != nil {
		return err
	}
	h := helpers.(*goja.Object)
	rt.hostErrorCtor = h.Get("HostError").(*goja.Object)
	rt.reviveDates = h.Get("revive")
	rt.freeze, _ = goja.AssertFunction(h.Get("freeze"))
	rt.deepFreeze, _ = goja.AssertFunction(h.Get("deepFreeze"))
	jsonObj := vm.Get("JSON").(*goja.Object)
	rt.jsonParse, _ = goja.AssertFunction(jsonObj.Get("parse"))
	rt.syntaxErrorCtor = vm.Get("SyntaxError").(*goja.Object)
	rt.rangeErrorCtor = vm.Get("RangeError").(*goja.Object)
	parse := rt.fn("parse", rt.jsJSONParse).(*goja.Object)
	_ = parse.DefineDataProperty("name", vm.ToValue("parse"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = parse.DefineDataProperty("length", vm.ToValue(2), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = jsonObj.DefineDataProperty("parse", parse, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	rt.errorCtor = vm.Get("Error").(*goja.Object)
	rt.uint8Ctor = vm.Get("Uint8Array").(*goja.Object)
	rt.dateCtor = vm.Get("Date").(*goja.Object)

	g := vm.NewObject()
	set := func(o *goja.Object, name string, v goja.Value) {
		_ = o.DefineDataProperty(name, v, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	}
	fn := func(o *goja.Object, name string, f func(goja.FunctionCall) goja.Value) {
		set(o, name, rt.fn(name, f))
	}

	set(g, "slug", vm.ToValue(rt.init.Slug))
	set(g, "version", vm.ToValue(rt.init.Version))
	cfg, err := rt.parseJSON(string(rt.init.Config), false)
	if err != nil || cfg == nil || goja.IsNull(cfg) || goja.IsUndefined(cfg) {
		cfg = vm.NewObject()
	}
	if _, err := rt.deepFreeze(goja.Undefined(), cfg); err != nil {
		return err
	}
	set(g, "config", cfg)
	set(g, "HostError", rt.hostErrorCtor)

	// HTTP.
	fn(g, "route", rt.jsRoute)
	fn(g, "notFound", func(c goja.FunctionCall) goja.Value {
		rt.notFound = rt.callable(c.Argument(0), "gnome.notFound: the handler")
		return goja.Undefined()
	})
	fn(g, "json", func(c goja.FunctionCall) goja.Value {
		o := vm.NewObject()
		_ = o.Set("status", rt.status(c.Argument(0), "gnome.json"))
		_ = o.Set("json", c.Argument(1))
		return o
	})
	fn(g, "text", func(c goja.FunctionCall) goja.Value {
		o := vm.NewObject()
		_ = o.Set("status", rt.status(c.Argument(0), "gnome.text"))
		_ = o.Set("body", rt.str(c.Argument(1), "gnome.text: the text"))
		return o
	})
	fn(g, "error", func(c goja.FunctionCall) goja.Value {
		status := rt.status(c.Argument(0), "gnome.error")
		code := rt.str(c.Argument(1), "gnome.error: the code")
		msg := rt.str(c.Argument(2), "gnome.error: the message")
		e := vm.NewObject()
		_ = e.Set("code", code)
		_ = e.Set("message", msg)
		if rt.current != nil && rt.current.RequestID != "" {
			_ = e.Set("request_id", rt.current.RequestID)
		}
		body := vm.NewObject()
		_ = body.Set("error", e)
		o := vm.NewObject()
		_ = o.Set("status", status)
		_ = o.Set("json", body)
		return o
	})
	fn(g, "redirect", func(c goja.FunctionCall) goja.Value {
		loc := rt.str(c.Argument(0), "gnome.redirect: the location")
		if loc == "" {
			panic(vm.NewTypeError("gnome.redirect: the location is empty"))
		}
		hd := vm.NewObject()
		_ = hd.Set("Location", loc)
		o := vm.NewObject()
		_ = o.Set("status", 303)
		_ = o.Set("headers", hd)
		return o
	})

	// Data.
	rt.setupDB(g, fn)
	kv := vm.NewObject()
	rt.setupKV(kv, fn)
	rt.freezeObj(kv)
	set(g, "kv", kv)

	// Platform.
	logObj := vm.NewObject()
	console := vm.NewObject()
	for i, name := range []string{"debug", "info", "warn", "error"} {
		level := i
		f := rt.fn(name, func(c goja.FunctionCall) goja.Value {
			rt.log(level, rt.joinArgs(c.Arguments))
			return goja.Undefined()
		})
		set(logObj, name, f)
		set(console, name, f)
		if name == "info" {
			set(console, "log", f)
		}
	}
	rt.freezeObj(logObj)
	rt.freezeObj(console)
	set(g, "log", logObj)
	fn(g, "secret", func(c goja.FunctionCall) goja.Value {
		v, err := actorsdk.Secret(rt.str(c.Argument(0), "gnome.secret: the name"))
		if err != nil {
			rt.throwHost(err)
		}
		return vm.ToValue(v)
	})
	fn(g, "fetch", rt.jsFetch)
	fn(g, "finishRun", rt.jsFinishRun)

	// Live channels and timers.
	rt.setupLive(g, fn)
	fn(g, "after", rt.jsAfter)
	fn(g, "cancelTimer", func(c goja.FunctionCall) goja.Value {
		ok, err := actorsdk.CancelTimer(rt.str(c.Argument(0), "gnome.cancelTimer: the id"))
		if err != nil {
			rt.throwHost(err)
		}
		return vm.ToValue(ok)
	})
	fn(g, "onTimer", func(c goja.FunctionCall) goja.Value {
		rt.onTimer = append(rt.onTimer, rt.callable(c.Argument(0), "gnome.onTimer: the handler"))
		rt.bind("timer")
		return goja.Undefined()
	})

	rt.freezeObj(g)
	global := vm.GlobalObject()
	_ = global.DefineDataProperty("gnome", g, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
	_ = global.DefineDataProperty("console", console, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	return nil
}

// fn makes a native function that turns Go panics into TypeErrors.
func (rt *Runtime) fn(name string, f func(goja.FunctionCall) goja.Value) goja.Value {
	return rt.vm.ToValue(func(c goja.FunctionCall) goja.Value {
		defer rt.guard(name)
		return f(c)
	})
}

func (rt *Runtime) freezeObj(o *goja.Object) {
	_, _ = rt.freeze(goja.Undefined(), o)
}

func (rt *Runtime) bind(kind string) {
	if rt.bound[kind] {
		return
	}
	rt.bound[kind] = true
	if rt.opts.Bind != nil {
		rt.opts.Bind(kind)
	}
}

// throwHost throws err as a gnome.HostError: a refusal of the platform
// keeps its code, status and field; any other failure (no host, a result
// that does not decode) is "internal".
func (rt *Runtime) throwHost(err error) {
	panic(rt.hostError(err))
}

func (rt *Runtime) hostError(err error) *goja.Object {
	code, msg, field := actorsdk.CodeInternal, err.Error(), ""
	var he *actorsdk.HostError
	if errors.As(err, &he) {
		code, msg, field = he.Code, he.Message, he.Field
	}
	o, nerr := rt.vm.New(rt.hostErrorCtor, rt.vm.ToValue(code), rt.vm.ToValue(msg))
	if nerr != nil {
		return rt.vm.NewTypeError(msg)
	}
	if field != "" {
		_ = o.Set("field", field)
	}
	return o
}

// Argument checks: each throws a TypeError naming what is wrong.

func (rt *Runtime) str(v goja.Value, what string) string {
	if s, ok := stringOf(v); ok {
		return s
	}
	panic(rt.vm.NewTypeError(what + " must be a string"))
}

// stringOf is v when it is a string primitive.
func stringOf(v goja.Value) (string, bool) {
	switch v.(type) {
	case nil, *goja.Object, *goja.Symbol:
		return "", false
	}
	s, ok := v.Export().(string)
	return s, ok
}

func (rt *Runtime) optStr(v goja.Value, what string) string {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return ""
	}
	return rt.str(v, what)
}

func (rt *Runtime) num(v goja.Value, what string) float64 {
	switch x := v.Export().(type) {
	case int64:
		return float64(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			break
		}
		return x
	}
	panic(rt.vm.NewTypeError(what + " must be a finite number"))
}

func (rt *Runtime) status(v goja.Value, what string) int {
	n := rt.num(v, what+": the status")
	if n != math.Trunc(n) || n < 200 || n > 599 {
		panic(rt.vm.NewTypeError(fmt.Sprintf("%s: the status %v is not an HTTP status from 200 to 599", what, n)))
	}
	return int(n)
}

func (rt *Runtime) callable(v goja.Value, what string) goja.Callable {
	f, ok := goja.AssertFunction(v)
	if !ok {
		panic(rt.vm.NewTypeError(what + " must be a function"))
	}
	return f
}

func (rt *Runtime) object(v goja.Value) (*goja.Object, bool) {
	o, ok := v.(*goja.Object)
	return o, ok
}

// optObject is an options argument: undefined and null are none, anything
// but an object is a TypeError.
func (rt *Runtime) optObject(v goja.Value, what string) *goja.Object {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil
	}
	o, ok := v.(*goja.Object)
	if !ok {
		panic(rt.vm.NewTypeError(what + " must be an object"))
	}
	return o
}

func present(v goja.Value) bool {
	return v != nil && !goja.IsUndefined(v) && !goja.IsNull(v)
}

// joinArgs joins log arguments as console.log does: strings as they are,
// errors with their stack, other values as JSON when they render so.
func (rt *Runtime) joinArgs(args []goja.Value) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(rt.logText(a))
	}
	return b.String()
}

func (rt *Runtime) logText(a goja.Value) string {
	if a == nil || goja.IsUndefined(a) {
		return "undefined"
	}
	if _, isSym := a.(*goja.Symbol); isSym {
		return "Symbol(" + a.String() + ")"
	}
	o, ok := a.(*goja.Object)
	if !ok {
		return a.String()
	}
	if rt.isError(o) {
		if st := rt.stackOf(o); st != "" {
			return st
		}
		return o.String()
	}
	if o.ClassName() == "Function" {
		return "[Function]"
	}
	var out string
	if rt.vm.Try(func() {
		b, err := rt.encode(a, false)
		if err == nil && b != nil {
			out = string(b)
		}
	}) != nil || out == "" {
		out = "[object " + o.ClassName() + "]"
	}
	return out
}

// parseJSON parses text; dates turns Extended JSON dates into Dates. An
// error carries JSON.parse's exception (exceptionValue).
func (rt *Runtime) parseJSON(text string, dates bool) (goja.Value, error) {
	v, err := rt.fastParse(text, dates)
	if err == nil {
		return v, nil
	}
	if err == errTooDeep || nesting(text, maxParseDepth) > maxParseDepth {
		return nil, jsError{rt.newError(rt.syntaxErrorCtor, fmt.Sprintf("JSON is nested deeper than %d levels", maxParseDepth))}
	}
	if dates {
		return rt.jsonParse(goja.Undefined(), rt.vm.ToValue(text), rt.reviveDates)
	}
	return rt.jsonParse(goja.Undefined(), rt.vm.ToValue(text))
}

// jsError is an error that carries a JavaScript value to throw.
type jsError struct{ v goja.Value }

func (e jsError) Error() string { return e.v.String() }

// jsJSONParse replaces the script's JSON.parse: the same values, faster,
// and bounded in nesting.
func (rt *Runtime) jsJSONParse(c goja.FunctionCall) goja.Value {
	text := c.Argument(0).String()
	if _, ok := goja.AssertFunction(c.Argument(1)); ok {
		if nesting(text, maxParseDepth) > maxParseDepth {
			panic(rt.newError(rt.syntaxErrorCtor, fmt.Sprintf("JSON is nested deeper than %d levels", maxParseDepth)))
		}
		v, err := rt.jsonParse(goja.Undefined(), rt.vm.ToValue(text), c.Argument(1))
		if err != nil {
			panic(err)
		}
		return v
	}
	return rt.mustParseJSON(text, false)
}

// mustParseJSON parses text a host returned, throwing what JSON.parse
// throws.
func (rt *Runtime) mustParseJSON(text string, dates bool) goja.Value {
	v, err := rt.parseJSON(text, dates)
	if err != nil {
		if ev := exceptionValue(err); ev != nil {
			panic(ev)
		}
		panic(rt.vm.NewTypeError(err.Error()))
	}
	return v
}

func (rt *Runtime) newDate(t time.Time) goja.Value {
	o, err := rt.vm.New(rt.dateCtor, rt.vm.ToValue(t.UnixMilli()))
	if err != nil {
		return goja.Null()
	}
	return o
}

func (rt *Runtime) newBytes(b []byte) goja.Value {
	if b == nil {
		b = []byte{}
	}
	o, err := rt.vm.New(rt.uint8Ctor, rt.vm.ToValue(rt.vm.NewArrayBuffer(b)))
	if err != nil {
		panic(err)
	}
	return o
}

// bytesOf is the bytes of a Uint8Array (or another typed array, a
// DataView) or an ArrayBuffer, and whether v is one.
func bytesOf(v goja.Value) ([]byte, bool) {
	o, ok := v.(*goja.Object)
	if !ok {
		return nil, false
	}
	switch o.ExportType() {
	case typeArrayBuffer:
		if ab, ok := o.Export().(goja.ArrayBuffer); ok {
			return ab.Bytes(), true
		}
	case typeBytes:
		if b, ok := o.Export().([]byte); ok {
			return b, true
		}
	}
	return nil, false
}

var (
	typeArrayBuffer = reflect.TypeOf(goja.ArrayBuffer{})
	typeBytes       = reflect.TypeOf([]byte(nil))
	typePromise     = reflect.TypeOf((*goja.Promise)(nil))
)

// rawJSON encodes v as Extended JSON for a host operation (nil when v is
// undefined or null and optional).
func (rt *Runtime) rawJSON(v goja.Value, what string, optional bool) json.RawMessage {
	if optional && !present(v) {
		return nil
	}
	b, err := rt.encode(v, true)
	if err != nil {
		panic(rt.encodeError(what, err))
	}
	if b == nil {
		if optional {
			return nil
		}
		panic(rt.vm.NewTypeError(what + " cannot be rendered as JSON"))
	}
	return b
}
