package actorjs

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dop251/goja"
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

type fnMaker func(o *goja.Object, name string, f func(goja.FunctionCall) goja.Value)

// orNil is raw as a request field of the SDK: nil (left out) when absent.
func orNil(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return raw
}

// setupDB makes gnome.db and gnome.dbFrom. Collections share two frozen
// prototypes whose methods read the collection from this.
func (rt *Runtime) setupDB(g *goja.Object, fn fnMaker) {
	vm := rt.vm
	reader := vm.NewObject()
	coll := vm.CreateObject(reader)
	rt.protoReader, rt.protoColl = reader, coll

	readerOf := func(this goja.Value, method string) *actorsdk.Reader {
		o, ok := this.(*goja.Object)
		if !ok {
			panic(vm.NewTypeError(method + " must be called on a collection (gnome.db(name)." + method + ")"))
		}
		name, _ := stringOf(o.Get("name"))
		slug, _ := stringOf(o.Get("slug"))
		if name == "" {
			panic(vm.NewTypeError(method + " must be called on a collection (gnome.db(name)." + method + ")"))
		}
		// The experiment's own collections are gnome.db's, known by their
		// prototype: their slug is gnome.slug, for the script to read,
		// and the host scopes them to this actor whatever it says.
		if slug != "" && o.Prototype() != coll {
			return actorsdk.DBFrom(slug, name)
		}
		return &actorsdk.DB(name).Reader
	}
	collOf := func(this goja.Value, method string) *actorsdk.Collection {
		r := readerOf(this, method)
		if r.Slug() != "" {
			panic(vm.NewTypeError(method + ": a collection of another experiment (gnome.dbFrom) is read-only"))
		}
		return actorsdk.DB(r.Name())
	}
	findOpts := func(v goja.Value) []actorsdk.FindOption {
		o := rt.optObject(v, "find: the options")
		if o == nil {
			return nil
		}
		var opts []actorsdk.FindOption
		if s := rt.rawJSON(o.Get("sort"), "find: options.sort", true); s != nil {
			opts = append(opts, actorsdk.Sort(s))
		}
		if p := rt.rawJSON(o.Get("projection"), "find: options.projection", true); p != nil {
			opts = append(opts, actorsdk.Projection(p))
		}
		if l := o.Get("limit"); present(l) {
			opts = append(opts, actorsdk.Limit(rt.count(l, "find: options.limit")))
		}
		if s := o.Get("skip"); present(s) {
			opts = append(opts, actorsdk.Skip(rt.count(s, "find: options.skip")))
		}
		return opts
	}

	fn(reader, "find", func(c goja.FunctionCall) goja.Value {
		r := readerOf(c.This, "find")
		docs, err := r.Find(orNil(rt.rawJSON(c.Argument(0), "find: the filter", true)), findOpts(c.Argument(1))...)
		if err != nil {
			rt.throwHost(err)
		}
		return rt.documents(docs)
	})
	fn(reader, "findOne", func(c goja.FunctionCall) goja.Value {
		r := readerOf(c.This, "findOne")
		doc, err := r.FindOne(orNil(rt.rawJSON(c.Argument(0), "findOne: the filter", true)), findOpts(c.Argument(1))...)
		if errors.Is(err, actorsdk.ErrNoDocuments) {
			return goja.Null()
		}
		if err != nil {
			rt.throwHost(err)
		}
		return rt.mustParseJSON(string(doc), true)
	})
	fn(reader, "count", func(c goja.FunctionCall) goja.Value {
		r := readerOf(c.This, "count")
		n, err := r.Count(orNil(rt.rawJSON(c.Argument(0), "count: the filter", true)))
		if err != nil {
			rt.throwHost(err)
		}
		return vm.ToValue(n)
	})
	fn(reader, "aggregate", func(c goja.FunctionCall) goja.Value {
		r := readerOf(c.This, "aggregate")
		p, ok := c.Argument(0).(*goja.Object)
		if !ok || p.ClassName() != "Array" {
			panic(vm.NewTypeError("aggregate: the pipeline must be an array of stages"))
		}
		docs, err := r.Aggregate(rt.rawJSON(p, "aggregate: the pipeline", false))
		if err != nil {
			rt.throwHost(err)
		}
		return rt.documents(docs)
	})

	fn(coll, "insertOne", func(c goja.FunctionCall) goja.Value {
		col := collOf(c.This, "insertOne")
		if _, ok := c.Argument(0).(*goja.Object); !ok {
			panic(vm.NewTypeError("insertOne: the document must be an object"))
		}
		id, err := col.InsertOne(rt.rawJSON(c.Argument(0), "insertOne: the document", false))
		if err != nil {
			rt.throwHost(err)
		}
		return rt.mustParseJSON(string(id), true)
	})
	fn(coll, "insertMany", func(c goja.FunctionCall) goja.Value {
		col := collOf(c.This, "insertMany")
		a, ok := c.Argument(0).(*goja.Object)
		if !ok || a.ClassName() != "Array" {
			panic(vm.NewTypeError("insertMany: the documents must be an array"))
		}
		ids, err := col.InsertMany(rt.rawJSON(a, "insertMany: the documents", false))
		if err != nil {
			rt.throwHost(err)
		}
		return rt.mustParseJSON(string(joinRaw(ids)), true)
	})
	update := func(many bool) func(goja.FunctionCall) goja.Value {
		name := "updateOne"
		if many {
			name = "updateMany"
		}
		return func(c goja.FunctionCall) goja.Value {
			col := collOf(c.This, name)
			filter := rt.rawJSON(c.Argument(0), name+": the filter", true)
			if !present(c.Argument(1)) {
				panic(vm.NewTypeError(name + ": the update is missing"))
			}
			upd := rt.rawJSON(c.Argument(1), name+": the update", false)
			var opts []actorsdk.UpdateOption
			if o := rt.optObject(c.Argument(2), name+": the options"); o != nil {
				if u := o.Get("upsert"); u != nil && u.ToBoolean() {
					opts = append(opts, actorsdk.Upsert())
				}
			}
			var res actorsdk.UpdateResult
			var err error
			if many {
				res, err = col.UpdateMany(orNil(filter), upd, opts...)
			} else {
				res, err = col.UpdateOne(orNil(filter), upd, opts...)
			}
			if err != nil {
				rt.throwHost(err)
			}
			out := vm.NewObject()
			_ = out.Set("matched", res.Matched)
			_ = out.Set("modified", res.Modified)
			if len(res.UpsertedID) > 0 && string(res.UpsertedID) != "null" {
				_ = out.Set("upsertedId", rt.mustParseJSON(string(res.UpsertedID), true))
			}
			return out
		}
	}
	fn(coll, "updateOne", update(false))
	fn(coll, "updateMany", update(true))
	del := func(many bool) func(goja.FunctionCall) goja.Value {
		name := "deleteOne"
		if many {
			name = "deleteMany"
		}
		return func(c goja.FunctionCall) goja.Value {
			col := collOf(c.This, name)
			filter := orNil(rt.rawJSON(c.Argument(0), name+": the filter", true))
			var n int64
			var err error
			if many {
				n, err = col.DeleteMany(filter)
			} else {
				n, err = col.DeleteOne(filter)
			}
			if err != nil {
				rt.throwHost(err)
			}
			return vm.ToValue(n)
		}
	}
	fn(coll, "deleteOne", del(false))
	fn(coll, "deleteMany", del(true))
	rt.freezeObj(reader)
	rt.freezeObj(coll)

	fn(g, "db", func(c goja.FunctionCall) goja.Value {
		o := vm.CreateObject(coll)
		_ = o.DefineDataProperty("name", vm.ToValue(rt.str(c.Argument(0), "gnome.db: the collection name")), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		_ = o.DefineDataProperty("slug", vm.ToValue(rt.init.Slug), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		return o
	})
	fn(g, "dbFrom", func(c goja.FunctionCall) goja.Value {
		slug := rt.str(c.Argument(0), "gnome.dbFrom: the slug")
		name := rt.str(c.Argument(1), "gnome.dbFrom: the collection name")
		if slug == "" {
			panic(vm.NewTypeError("gnome.dbFrom: the slug is empty (use gnome.db for the experiment's own collections)"))
		}
		o := vm.CreateObject(reader)
		_ = o.DefineDataProperty("name", vm.ToValue(name), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		_ = o.DefineDataProperty("slug", vm.ToValue(slug), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		return o
	})
}

// count is a non-negative integer option (limit, skip).
func (rt *Runtime) count(v goja.Value, what string) int64 {
	n := rt.num(v, what)
	if n < 0 || n != math.Trunc(n) || n > 1<<53 {
		panic(rt.vm.NewTypeError(what + " must be a non-negative integer"))
	}
	return int64(n)
}

func joinRaw(items []json.RawMessage) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		if d == nil {
			b.WriteString("null")
			continue
		}
		b.Write(d)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// documents is what a read returned as an array of objects, dates as
// Dates.
func (rt *Runtime) documents(docs actorsdk.Documents) goja.Value {
	items := make([]json.RawMessage, len(docs))
	for i, d := range docs {
		items[i] = json.RawMessage(d)
	}
	return rt.mustParseJSON(string(joinRaw(items)), true)
}

// setupKV makes gnome.kv.
func (rt *Runtime) setupKV(kv *goja.Object, fn fnMaker) {
	vm := rt.vm
	get := func(c goja.FunctionCall, what string) ([]byte, uint64) {
		v, rev, err := actorsdk.KV().Get(rt.str(c.Argument(0), what+": the key"))
		if err != nil {
			rt.throwHost(err)
		}
		return v, rev
	}
	fn(kv, "get", func(c goja.FunctionCall) goja.Value {
		v, rev := get(c, "kv.get")
		if rev == 0 {
			return goja.Null()
		}
		o := vm.NewObject()
		_ = o.Set("value", string(v))
		_ = o.Set("revision", rev)
		return o
	})
	fn(kv, "getJSON", func(c goja.FunctionCall) goja.Value {
		v, rev := get(c, "kv.getJSON")
		if rev == 0 {
			return goja.Null()
		}
		return rt.mustParseJSON(string(v), false)
	})
	put := func(key string, value []byte) goja.Value {
		rev, err := actorsdk.KV().Put(key, value)
		if err != nil {
			rt.throwHost(err)
		}
		return vm.ToValue(rev)
	}
	fn(kv, "put", func(c goja.FunctionCall) goja.Value {
		key := rt.str(c.Argument(0), "kv.put: the key")
		v := c.Argument(1)
		if s, ok := stringOf(v); ok {
			return put(key, []byte(s))
		}
		if b, ok := bytesOf(v); ok {
			return put(key, append([]byte(nil), b...))
		}
		panic(vm.NewTypeError("kv.put: the value must be a string or a Uint8Array (kv.putJSON stores other values)"))
	})
	fn(kv, "putJSON", func(c goja.FunctionCall) goja.Value {
		key := rt.str(c.Argument(0), "kv.putJSON: the key")
		b, err := rt.encode(c.Argument(1), false)
		if err != nil {
			panic(rt.encodeError("kv.putJSON", err))
		}
		if b == nil {
			panic(vm.NewTypeError("kv.putJSON: undefined, a function or a symbol cannot be stored as JSON"))
		}
		return put(key, b)
	})
	fn(kv, "delete", func(c goja.FunctionCall) goja.Value {
		if err := actorsdk.KV().Delete(rt.str(c.Argument(0), "kv.delete: the key")); err != nil {
			rt.throwHost(err)
		}
		return goja.Undefined()
	})
}

// jsFetch is gnome.fetch: the request runs at once; the promise it returns
// is settled.
func (rt *Runtime) jsFetch(c goja.FunctionCall) goja.Value {
	vm := rt.vm
	req := actorsdk.FetchRequest{URL: rt.str(c.Argument(0), "gnome.fetch: the URL"), Header: actorsdk.Header{}}
	if init := rt.optObject(c.Argument(1), "gnome.fetch: the options"); init != nil {
		req.Method = strings.ToUpper(rt.optStr(init.Get("method"), "gnome.fetch: options.method"))
		if hv := rt.optObject(init.Get("headers"), "gnome.fetch: options.headers"); hv != nil {
			for _, k := range hv.Keys() {
				val := hv.Get(k)
				if arr, ok := val.(*goja.Object); ok && arr.ClassName() == "Array" {
					n := arr.Get("length").ToInteger()
					for i := int64(0); i < n; i++ {
						req.Header.Add(k, rt.headerValue(arr.Get(itoa(i)), k))
					}
					continue
				}
				if present(val) {
					req.Header.Add(k, rt.headerValue(val, k))
				}
			}
		}
		if bv := init.Get("body"); present(bv) {
			if s, ok := stringOf(bv); ok {
				req.Body = []byte(s)
			} else if b, ok := bytesOf(bv); ok {
				req.Body = append([]byte(nil), b...)
			} else {
				b, err := rt.encode(bv, false)
				if err != nil {
					panic(rt.encodeError("gnome.fetch: the body", err))
				}
				if b == nil {
					panic(vm.NewTypeError("gnome.fetch: the body cannot be sent as JSON"))
				}
				req.Body = b
				if req.Header.Get("Content-Type") == "" {
					req.Header.Set("Content-Type", "application/json")
				}
			}
		}
		if t := init.Get("timeoutMs"); present(t) {
			req.TimeoutMS = int(rt.count(t, "gnome.fetch: options.timeoutMs"))
		}
		switch r := rt.optStr(init.Get("redirect"), "gnome.fetch: options.redirect"); r {
		case "", "follow":
		case "manual":
			req.NoRedirects = true
		default:
			panic(vm.NewTypeError("gnome.fetch: options.redirect is \"follow\" or \"manual\""))
		}
	}
	p, resolve, reject := vm.NewPromise()
	res, err := actorsdk.Fetch(req)
	if err != nil {
		_ = reject(rt.hostError(err))
		return vm.ToValue(p)
	}
	_ = resolve(rt.fetchResponse(res))
	return vm.ToValue(p)
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// settled is a promise fulfilled with v, or rejected with reason when it
// is not nil.
func (rt *Runtime) settled(v, reason goja.Value) goja.Value {
	p, resolve, reject := rt.vm.NewPromise()
	if reason != nil {
		_ = reject(reason)
	} else {
		_ = resolve(v)
	}
	return rt.vm.ToValue(p)
}

func (rt *Runtime) fetchResponse(res *actorsdk.FetchResponse) *goja.Object {
	vm := rt.vm
	o := vm.NewObject()
	_ = o.Set("status", res.Status)
	_ = o.Set("ok", res.OK())
	_ = o.Set("url", res.URL)
	h := vm.NewObject()
	for k, vs := range res.Header {
		_ = h.Set(k, stringArray(vm, vs))
	}
	_ = o.Set("headers", h)
	_ = o.Set("header", rt.fn("header", func(c goja.FunctionCall) goja.Value {
		vs := res.Header.Values(rt.str(c.Argument(0), "response.header: the name"))
		if len(vs) == 0 {
			return goja.Undefined()
		}
		return vm.ToValue(vs[0])
	}))
	_ = o.Set("text", rt.fn("text", func(goja.FunctionCall) goja.Value {
		return rt.settled(vm.ToValue(string(res.Body)), nil)
	}))
	_ = o.Set("json", rt.fn("json", func(goja.FunctionCall) goja.Value {
		v, err := rt.parseJSON(string(res.Body), false)
		if err != nil {
			reason := exceptionValue(err)
			if reason == nil {
				reason = rt.vm.NewTypeError(err.Error())
			}
			return rt.settled(nil, reason)
		}
		return rt.settled(v, nil)
	}))
	_ = o.Set("arrayBuffer", rt.fn("arrayBuffer", func(goja.FunctionCall) goja.Value {
		return rt.settled(vm.ToValue(vm.NewArrayBuffer(append([]byte(nil), res.Body...))), nil)
	}))
	return o
}

// jsFinishRun is gnome.finishRun.
func (rt *Runtime) jsFinishRun(c goja.FunctionCall) goja.Value {
	req := rt.requestOf(c.Argument(0))
	if req == nil {
		panic(rt.vm.NewTypeError("gnome.finishRun: pass the handler's request"))
	}
	done, err := actorsdk.FinishRun(req)
	if err != nil {
		rt.throwHost(err)
	}
	o := rt.vm.NewObject()
	_ = o.Set("completionUrl", done.CompletionURL)
	_ = o.Set("finishedAt", rt.newDate(done.FinishedAt))
	_ = o.Set("already", done.Already)
	return o
}

// jsAfter is gnome.after.
func (rt *Runtime) jsAfter(c goja.FunctionCall) goja.Value {
	ms := rt.num(c.Argument(0), "gnome.after: the delay")
	if ms < 0 || ms > float64(math.MaxInt32)*1000 {
		panic(rt.vm.NewTypeError("gnome.after: the delay is out of range (1 s to 30 days)"))
	}
	name := rt.optStr(c.Argument(1), "gnome.after: the name")
	payload := rt.rawJSON(c.Argument(2), "gnome.after: the payload", true)
	id, err := actorsdk.After(time.Duration(ms*float64(time.Millisecond)), name, orNil(payload))
	if err != nil {
		rt.throwHost(err)
	}
	return rt.vm.ToValue(id)
}
