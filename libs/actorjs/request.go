package actorjs

import (
	"reflect"
	"slices"

	"github.com/dop251/goja"
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// jsRequest is the request object handlers get (gnome.d.ts, Request). It
// is a dynamic object: each property is made when the script first reads
// it, so an echo handler pays for the body and nothing else.
type jsRequest struct {
	rt     *Runtime
	req    *actorsdk.Request
	params map[string]string
	route  *route // nil for notFound
	cache  [len(requestKeys)]goja.Value
	extra  map[string]goja.Value
	gone   [len(requestKeys)]bool
}

var requestKeys = [...]string{"method", "path", "rawQuery", "query", "headers", "params", "caller", "requestId",
	"header", "cookie", "text", "json", "bytes"}

func requestKey(k string) int {
	for i, n := range requestKeys {
		if n == k {
			return i
		}
	}
	return -1
}

func (r *jsRequest) Get(key string) goja.Value {
	i := requestKey(key)
	if i < 0 {
		if r.extra != nil {
			return r.extra[key]
		}
		return nil
	}
	if r.gone[i] {
		return nil
	}
	if v := r.cache[i]; v != nil {
		return v
	}
	v := r.make(i)
	r.cache[i] = v
	return v
}

func (r *jsRequest) make(i int) goja.Value {
	rt, vm, req := r.rt, r.rt.vm, r.req
	switch requestKeys[i] {
	case "method":
		return vm.ToValue(req.Method)
	case "path":
		return vm.ToValue(req.Path)
	case "rawQuery":
		return vm.ToValue(req.RawQuery)
	case "query":
		return valuesObject(vm, req.Query)
	case "headers":
		return valuesObject(vm, req.Header)
	case "params":
		// In the pattern's order, as a script reading them expects.
		o := vm.NewObject()
		if r.route != nil {
			for _, name := range r.route.Params() {
				_ = o.Set(name, r.params[name])
			}
		}
		return o
	case "caller":
		return rt.callerObject(req.Caller)
	case "requestId":
		return vm.ToValue(req.RequestID)
	case "header":
		return rt.fn("header", func(c goja.FunctionCall) goja.Value {
			vs := req.Header.Values(rt.str(c.Argument(0), "req.header: the name"))
			if len(vs) == 0 {
				return goja.Undefined()
			}
			return vm.ToValue(vs[0])
		})
	case "cookie":
		return rt.fn("cookie", func(c goja.FunctionCall) goja.Value {
			v, ok := req.Cookie(rt.str(c.Argument(0), "req.cookie: the name"))
			if !ok {
				return goja.Undefined()
			}
			return vm.ToValue(v)
		})
	case "text":
		return rt.fn("text", func(goja.FunctionCall) goja.Value {
			return vm.ToValue(string(req.Body))
		})
	case "json":
		return rt.fn("json", func(goja.FunctionCall) goja.Value {
			if len(req.Body) == 0 {
				rt.throwHost(&actorsdk.HostError{Code: actorsdk.CodeInvalidJSON, Message: "the request has no body: send JSON"})
			}
			v, err := rt.parseJSON(string(req.Body), false)
			if err != nil {
				msg := "the request body is not JSON"
				if ev := exceptionValue(err); ev != nil {
					msg += ": " + rt.errorText(ev)
				}
				rt.throwHost(&actorsdk.HostError{Code: actorsdk.CodeInvalidJSON, Message: msg})
			}
			return v
		})
	case "bytes":
		return rt.fn("bytes", func(goja.FunctionCall) goja.Value {
			return rt.newBytes(append([]byte(nil), req.Body...))
		})
	}
	return nil
}

func (r *jsRequest) Set(key string, val goja.Value) bool {
	if i := requestKey(key); i >= 0 {
		r.cache[i] = val
		r.gone[i] = false
		return true
	}
	if r.extra == nil {
		r.extra = map[string]goja.Value{}
	}
	r.extra[key] = val
	return true
}

func (r *jsRequest) Has(key string) bool {
	if i := requestKey(key); i >= 0 {
		return !r.gone[i]
	}
	_, ok := r.extra[key]
	return ok
}

func (r *jsRequest) Delete(key string) bool {
	if i := requestKey(key); i >= 0 {
		r.gone[i] = true
		r.cache[i] = nil
		return true
	}
	delete(r.extra, key)
	return true
}

func (r *jsRequest) Keys() []string {
	keys := make([]string, 0, len(requestKeys)+len(r.extra))
	for i, k := range requestKeys {
		if !r.gone[i] {
			keys = append(keys, k)
		}
	}
	for k := range r.extra {
		keys = append(keys, k)
	}
	return keys
}

// valuesObject is a map of names to values as an object whose keys are in
// order, the same at every call.
func valuesObject[M ~map[string][]string](vm *goja.Runtime, m M) *goja.Object {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	o := vm.NewObject()
	for _, k := range keys {
		_ = o.Set(k, stringArray(vm, m[k]))
	}
	return o
}

func stringArray(vm *goja.Runtime, vs []string) *goja.Object {
	items := make([]any, len(vs))
	for i, v := range vs {
		items[i] = v
	}
	return vm.NewArray(items...)
}

// callerObject is a Caller for the script (gnome.d.ts, Caller).
func (rt *Runtime) callerObject(c actorsdk.Caller) *goja.Object {
	vm := rt.vm
	o := vm.NewObject()
	_ = o.Set("kind", c.Kind)
	_ = o.Set("id", c.ID)
	_ = o.Set("email", c.Email)
	_ = o.Set("roles", stringArray(vm, c.Roles))
	_ = o.Set("anonymous", c.Anonymous)
	if c.Link != nil {
		l := vm.NewObject()
		_ = l.Set("id", c.Link.ID)
		_ = l.Set("kind", c.Link.Kind)
		_ = l.Set("label", c.Link.Label)
		_ = l.Set("run", c.Link.Run)
		p := vm.NewObject()
		for k, v := range c.Link.Params {
			_ = p.Set(k, v)
		}
		_ = l.Set("params", p)
		_ = o.Set("link", l)
	}
	roles := c.Roles
	_ = o.Set("hasRole", rt.fn("hasRole", func(call goja.FunctionCall) goja.Value {
		want := rt.str(call.Argument(0), "caller.hasRole: the role")
		for _, r := range roles {
			if r == want {
				return vm.ToValue(true)
			}
		}
		return vm.ToValue(false)
	}))
	return o
}

// requestOf is the Go request behind a request object of a handler.
func (rt *Runtime) requestOf(v goja.Value) *actorsdk.Request {
	if o, ok := v.(*goja.Object); ok && o.ExportType() == jsRequestType {
		if jr, ok := o.Export().(*jsRequest); ok && jr.rt == rt {
			return jr.req
		}
	}
	return nil
}

var jsRequestType = reflect.TypeOf(&jsRequest{})
