package actorjs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dop251/goja"
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// route is one gnome.route: patterns parsed and matched by the Go SDK, so
// that a JavaScript actor routes exactly as a Go one.
type route struct {
	*actorsdk.Pattern
	method string // "" for any
	order  int
	h      goja.Callable
}

func (rt *Runtime) jsRoute(c goja.FunctionCall) goja.Value {
	method := rt.str(c.Argument(0), "gnome.route: the method")
	pattern := rt.str(c.Argument(1), "gnome.route: the pattern")
	h := rt.callable(c.Argument(2), "gnome.route: the handler")
	p, err := actorsdk.ParsePattern(pattern)
	if err != nil {
		panic(rt.vm.NewTypeError(fmt.Sprintf("gnome.route: the pattern %q %v", pattern, err)))
	}
	r := &route{Pattern: p}
	r.method = strings.ToUpper(method)
	if r.method == "*" {
		r.method = ""
	}
	r.h = h
	r.order = len(rt.routes)
	rt.routes = append(rt.routes, r)
	sort.SliceStable(rt.routes, func(i, j int) bool {
		if li, lj := rt.routes[i].Literals(), rt.routes[j].Literals(); li != lj {
			return li > lj
		}
		return rt.routes[i].order < rt.routes[j].order
	})
	return goja.Undefined()
}

// Serve answers req through the script's routes.
func (rt *Runtime) Serve(req *actorsdk.Request) *actorsdk.Response {
	if req.Path == "" {
		req.Path = "/"
	}
	req.Method = strings.ToUpper(req.Method)
	rt.current = req
	defer func() { rt.current = nil }()
	var allowed []string
	for _, r := range rt.routes {
		params, ok := r.Match(req.Path)
		if !ok {
			continue
		}
		if r.method != "" && r.method != req.Method {
			allowed = append(allowed, r.method)
			continue
		}
		return rt.call(r.h, req, r, params)
	}
	if rt.notFound != nil {
		return rt.call(rt.notFound, req, nil, nil)
	}
	if len(allowed) > 0 {
		sort.Strings(allowed)
		resp := rt.errorResponse(405, actorsdk.CodeMethodNotAllowed, "this route does not take "+req.Method, "")
		resp.Header.Set("Allow", strings.Join(dedupe(allowed), ", "))
		return resp
	}
	return rt.errorResponse(404, actorsdk.CodeNotFound, "no route for "+req.Method+" "+req.Path, "")
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// call runs handler h on req and turns what it returns, or throws, into a
// response.
func (rt *Runtime) call(h goja.Callable, req *actorsdk.Request, r *route, params map[string]string) *actorsdk.Response {
	obj := rt.vm.NewDynamicObject(&jsRequest{rt: rt, req: req, route: r, params: params})
	v, err := h(goja.Undefined(), obj)
	if err != nil {
		return rt.failed(err, nil)
	}
	v, err = rt.settle(v)
	if err != nil {
		return rt.failed(err, nil)
	}
	var resp *actorsdk.Response
	if ex := rt.vm.Try(func() { resp = rt.response(v) }); ex != nil {
		return rt.failed(ex, nil)
	}
	return resp
}

// errPending is a handler whose promise did not settle: nothing can settle
// it later, since every host operation is synchronous.
type errPending struct{}

func (errPending) Error() string {
	return "the handler's promise is still pending after its jobs ran: await only gnome's operations and promises that settle without timers or events"
}

// rejection carries a rejected promise's reason.
type rejection struct{ v goja.Value }

func (r rejection) Error() string { return "rejected" }

// settle takes the value a promise settled with. goja runs its job queue
// when the outermost call returns, so a promise is settled by now unless it
// waits on something that never comes.
func (rt *Runtime) settle(v goja.Value) (goja.Value, error) {
	o, ok := v.(*goja.Object)
	if !ok || o.ExportType() != typePromise {
		return v, nil
	}
	p, ok := o.Export().(*goja.Promise)
	if !ok {
		return v, nil
	}
	switch p.State() {
	case goja.PromiseStateFulfilled:
		return p.Result(), nil
	case goja.PromiseStateRejected:
		return nil, rejection{p.Result()}
	}
	return nil, errPending{}
}

// failed answers a handler's failure: a HostError with its code and status;
// anything else 500 internal, its message naming the script's file and line,
// and logged at error level with its stack.
func (rt *Runtime) failed(err error, _ *goja.Object) *actorsdk.Response {
	code, status, msg, field, isHost := rt.classify(err)
	if isHost {
		return rt.errorResponse(status, code, msg, field)
	}
	rt.log(3, rt.logFailure(err, msg))
	return rt.errorResponse(500, actorsdk.CodeInternal, msg, "")
}

// classify sorts a failure of a handler: a thrown HostError keeps its
// code, status and field; anything else is described for a 500.
func (rt *Runtime) classify(err error) (code string, status int, msg, field string, isHost bool) {
	var thrown goja.Value
	var ex *goja.Exception
	switch e := err.(type) {
	case rejection:
		thrown = e.v
	case errPending:
		return actorsdk.CodeInternal, 500, e.Error(), "", false
	default:
		if ex2, ok := asException(err); ok {
			ex = ex2
			thrown = ex.Value()
		} else {
			return actorsdk.CodeInternal, 500, err.Error(), "", false
		}
	}
	if o, ok := thrown.(*goja.Object); ok && rt.isHostError(o) {
		rt.vm.Try(func() {
			code = o.Get("code").String()
			msg = o.Get("message").String()
			if f := o.Get("field"); present(f) {
				field = f.String()
			}
			status = actorsdk.StatusOf(code)
			if s, ok := o.Get("status").Export().(int64); ok && s >= 400 && s <= 599 {
				status = int(s)
			}
		})
		if code != "" {
			return code, status, msg, field, true
		}
	}
	if ex != nil {
		return actorsdk.CodeInternal, 500, rt.describeErr(err), "", false
	}
	return actorsdk.CodeInternal, 500, rt.describe(thrown, nil), "", false
}

func asException(err error) (*goja.Exception, bool) {
	switch e := err.(type) {
	case *goja.Exception:
		return e, true
	case *goja.StackOverflowError:
		return &e.Exception, true
	case *goja.InterruptedError:
		return &e.Exception, true
	}
	return nil, false
}

func (rt *Runtime) isHostError(o *goja.Object) bool {
	var is bool
	rt.vm.Try(func() {
		is = rt.vm.InstanceOf(o, rt.hostErrorCtor)
	})
	return is
}

func (rt *Runtime) logFailure(err error, msg string) string {
	var stack string
	if r, ok := err.(rejection); ok {
		stack = rt.stackOf(r.v)
	} else if ex, ok := asException(err); ok {
		if stack = rt.stackOf(ex.Value()); stack == "" {
			stack = ex.String()
		}
	}
	if stack == "" {
		return "the handler failed: " + msg
	}
	return "the handler failed: " + msg + "\n" + shortStack(stack)
}

// maxStackLines bounds the stack a log line carries: a stack overflow's
// has thousands of identical frames.
const maxStackLines = 20

func shortStack(s string) string {
	s = strings.TrimRight(s, "\n")
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '\n' {
			continue
		}
		n++
		if n == maxStackLines {
			more := strings.Count(s[i+1:], "\n") + 1
			return s[:i] + fmt.Sprintf("\n\t... %d more frames", more)
		}
	}
	return s
}

// errorResponse is the platform's error shape with the current request's
// ID.
func (rt *Runtime) errorResponse(status int, code, msg, field string) *actorsdk.Response {
	b := append(make([]byte, 0, 64+len(msg)), `{"error":{"code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	if field != "" {
		b = append(b, `,"field":`...)
		b = appendString(b, field)
	}
	if rt.current != nil && rt.current.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendString(b, rt.current.RequestID)
	}
	b = append(b, "}}"...)
	return actorsdk.WithRetryAfter(actorsdk.Bytes(status, "application/json", b))
}

// badResult is a handler's result that is no response.
func (rt *Runtime) badResult(what string) {
	panic(rt.vm.NewTypeError("the handler returned " + what + ": return a response object ({status, headers, json or body, cookies}), a string or nothing"))
}

// response turns what a handler returned into a response (gnome.d.ts,
// Response). It panics with a TypeError for a result that is none.
func (rt *Runtime) response(v goja.Value) *actorsdk.Response {
	defer rt.guard("the response")
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return &actorsdk.Response{Status: 204}
	}
	o, ok := v.(*goja.Object)
	if !ok {
		if s, ok := stringOf(v); ok {
			return actorsdk.Text(200, s)
		}
		rt.badResult("a " + typeName(v))
	}
	switch o.ClassName() {
	case "Array":
		rt.badResult("an array (answer JSON with {json: [...]})")
	case "Function":
		rt.badResult("a function")
	case "String":
		return actorsdk.Text(200, o.String())
	}
	resp := &actorsdk.Response{Status: 200, Header: actorsdk.Header{}}
	if s := o.Get("status"); present(s) {
		resp.Status = rt.status(s, "the response")
	}
	if hv := o.Get("headers"); present(hv) {
		ho, ok := hv.(*goja.Object)
		if !ok {
			panic(rt.vm.NewTypeError("the response's headers must be an object"))
		}
		for _, k := range ho.Keys() {
			if !validHeaderName(k) {
				panic(rt.vm.NewTypeError(fmt.Sprintf("the response's header name %q is not a valid HTTP header name", k)))
			}
			val := ho.Get(k)
			if arr, ok := val.(*goja.Object); ok && arr.ClassName() == "Array" {
				n := arr.Get("length").ToInteger()
				for i := int64(0); i < n; i++ {
					resp.Header.Add(k, rt.str(arr.Get(fmt.Sprint(i)), "the response's header "+k))
				}
				continue
			}
			if !present(val) {
				continue
			}
			resp.Header.Add(k, rt.headerValue(val, k))
		}
	}
	jv, bv := o.Get("json"), o.Get("body")
	hasJSON, hasBody := jv != nil && !goja.IsUndefined(jv), present(bv)
	switch {
	case hasJSON && hasBody:
		panic(rt.vm.NewTypeError("the response has both json and body: they are mutually exclusive"))
	case hasJSON:
		b, err := rt.encode(jv, false)
		if err != nil {
			panic(rt.encodeError("the response's json", err))
		}
		if b == nil {
			b = []byte("null")
		}
		resp.Body = b
		if resp.Header.Get("Content-Type") == "" {
			resp.Header.Set("Content-Type", "application/json")
		}
	case hasBody:
		if s, ok := stringOf(bv); ok {
			resp.Body = []byte(s)
			if resp.Header.Get("Content-Type") == "" {
				resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
			}
		} else if b, ok := bytesOf(bv); ok {
			resp.Body = append([]byte(nil), b...)
			if resp.Header.Get("Content-Type") == "" {
				resp.Header.Set("Content-Type", "application/octet-stream")
			}
		} else {
			panic(rt.vm.NewTypeError("the response's body must be a string, a Uint8Array or an ArrayBuffer (use json for other values)"))
		}
	}
	if cv := o.Get("cookies"); present(cv) {
		arr, ok := cv.(*goja.Object)
		if !ok || arr.ClassName() != "Array" {
			panic(rt.vm.NewTypeError("the response's cookies must be an array of cookies"))
		}
		n := arr.Get("length").ToInteger()
		for i := int64(0); i < n; i++ {
			resp.SetCookie(rt.cookie(arr.Get(fmt.Sprint(i))))
		}
	}
	if len(resp.Header) == 0 {
		resp.Header = nil
	}
	return resp
}

func (rt *Runtime) headerValue(v goja.Value, name string) string {
	switch v.Export().(type) {
	case string, int64, float64, bool:
		s := v.String()
		if strings.ContainsAny(s, "\r\n\x00") {
			panic(rt.vm.NewTypeError("the header " + name + " has a line break or NUL in its value"))
		}
		return s
	}
	panic(rt.vm.NewTypeError("the header " + name + " must be a string or an array of strings"))
}

func (rt *Runtime) cookie(v goja.Value) actorsdk.Cookie {
	o, ok := v.(*goja.Object)
	if !ok {
		panic(rt.vm.NewTypeError("a cookie must be an object {name, value, ...}"))
	}
	c := actorsdk.Cookie{
		Name:  rt.str(o.Get("name"), "a cookie's name"),
		Value: rt.optStr(o.Get("value"), "a cookie's value"),
		Path:  rt.optStr(o.Get("path"), "a cookie's path"),
	}
	if !validHeaderName(c.Name) {
		panic(rt.vm.NewTypeError(fmt.Sprintf("the cookie name %q is not a valid cookie name", c.Name)))
	}
	if strings.ContainsAny(c.Value, ";\r\n\x00 ,\"\\") || strings.ContainsAny(c.Path, ";\r\n\x00") {
		panic(rt.vm.NewTypeError("the cookie " + c.Name + " has a character a cookie cannot hold (; , space, quote, backslash, line break)"))
	}
	if m := o.Get("maxAge"); present(m) {
		c.MaxAge = int(rt.num(m, "a cookie's maxAge"))
	}
	if s := rt.optStr(o.Get("sameSite"), "a cookie's sameSite"); s != "" {
		switch s {
		case "Lax", "Strict", "None":
			c.SameSite = s
		default:
			panic(rt.vm.NewTypeError("a cookie's sameSite is Lax, Strict or None"))
		}
	}
	c.Secure = o.Get("secure") != nil && o.Get("secure").ToBoolean()
	c.Script = o.Get("script") != nil && o.Get("script").ToBoolean()
	return c
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func typeName(v goja.Value) string {
	switch v.Export().(type) {
	case bool:
		return "boolean"
	case int64, float64:
		return "number"
	case string:
		return "string"
	}
	if _, ok := v.(*goja.Symbol); ok {
		return "symbol"
	}
	return "value of another type"
}
