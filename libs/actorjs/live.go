package actorjs

import (
	"errors"
	"fmt"
	"math"

	"github.com/dop251/goja"
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// setupLive makes the live channels' part of gnome, and the prototypes of
// connections and messages.
func (rt *Runtime) setupLive(g *goja.Object, fn fnMaker) {
	vm := rt.vm
	register := func(kind string, list *[]goja.Callable) func(goja.FunctionCall) goja.Value {
		return func(c goja.FunctionCall) goja.Value {
			*list = append(*list, rt.callable(c.Argument(0), "gnome.on"+kind+": the handler"))
			rt.bind(kind)
			return goja.Undefined()
		}
	}
	fn(g, "onOpen", register("open", &rt.onOpen))
	fn(g, "onMessage", register("message", &rt.onMessage))
	fn(g, "onClose", register("close", &rt.onClose))
	fn(g, "refuse", func(c goja.FunctionCall) goja.Value {
		code := rt.str(c.Argument(0), "gnome.refuse: the code")
		msg := rt.str(c.Argument(1), "gnome.refuse: the message")
		return rt.hostError(&actorsdk.HostError{Code: code, Message: msg})
	})
	fn(g, "send", func(c goja.FunctionCall) goja.Value {
		rt.send(rt.str(c.Argument(0), "gnome.send: the connection ID"), c.Argument(1), "gnome.send")
		return goja.Undefined()
	})
	fn(g, "join", func(c goja.FunctionCall) goja.Value {
		rt.check(actorsdk.Join(rt.str(c.Argument(0), "gnome.join: the connection ID"), rt.str(c.Argument(1), "gnome.join: the room")))
		return goja.Undefined()
	})
	fn(g, "leave", func(c goja.FunctionCall) goja.Value {
		rt.check(actorsdk.Leave(rt.str(c.Argument(0), "gnome.leave: the connection ID"), rt.str(c.Argument(1), "gnome.leave: the room")))
		return goja.Undefined()
	})
	fn(g, "publish", func(c goja.FunctionCall) goja.Value {
		room := rt.str(c.Argument(0), "gnome.publish: the room")
		var except []string
		if o := rt.optObject(c.Argument(2), "gnome.publish: the options"); o != nil {
			if e := o.Get("except"); present(e) {
				if arr, ok := e.(*goja.Object); ok && arr.ClassName() == "Array" {
					// Tolerated for one ID: the platform leaves out one
					// connection.
					n := arr.Get("length").ToInteger()
					if n > 1 {
						panic(vm.NewTypeError("gnome.publish: options.except names one connection"))
					}
					if n == 1 {
						except = append(except, rt.str(arr.Get("0"), "gnome.publish: options.except"))
					}
				} else {
					except = append(except, rt.str(e, "gnome.publish: options.except"))
				}
			}
		}
		data := c.Argument(1)
		if s, ok := stringOf(data); ok {
			rt.check(actorsdk.Publish(room, s, except...))
		} else if b, ok := bytesOf(data); ok {
			rt.check(actorsdk.PublishBinary(room, b, except...))
		} else {
			rt.check(actorsdk.Publish(room, rt.jsonText(data, "gnome.publish"), except...))
		}
		return goja.Undefined()
	})
	fn(g, "closeConn", func(c goja.FunctionCall) goja.Value {
		rt.closeConn(rt.str(c.Argument(0), "gnome.closeConn: the connection ID"), c.Argument(1), c.Argument(2), "gnome.closeConn")
		return goja.Undefined()
	})

	conn := vm.NewObject()
	idOf := func(this goja.Value, method string) string {
		if o, ok := this.(*goja.Object); ok {
			if id, ok := stringOf(o.Get("id")); ok && id != "" {
				return id
			}
		}
		panic(vm.NewTypeError("conn." + method + " must be called on a connection"))
	}
	fn(conn, "send", func(c goja.FunctionCall) goja.Value {
		rt.send(idOf(c.This, "send"), c.Argument(0), "conn.send")
		return goja.Undefined()
	})
	fn(conn, "join", func(c goja.FunctionCall) goja.Value {
		rt.check(actorsdk.Join(idOf(c.This, "join"), rt.str(c.Argument(0), "conn.join: the room")))
		return goja.Undefined()
	})
	fn(conn, "leave", func(c goja.FunctionCall) goja.Value {
		rt.check(actorsdk.Leave(idOf(c.This, "leave"), rt.str(c.Argument(0), "conn.leave: the room")))
		return goja.Undefined()
	})
	fn(conn, "close", func(c goja.FunctionCall) goja.Value {
		rt.closeConn(idOf(c.This, "close"), c.Argument(0), c.Argument(1), "conn.close")
		return goja.Undefined()
	})
	rt.freezeObj(conn)
	rt.protoConn = conn

	msg := vm.NewObject()
	dataOf := func(this goja.Value, method string) []byte {
		if o, ok := this.(*goja.Object); ok {
			if b, ok := bytesOf(o.Get("data")); ok {
				return b
			}
		}
		panic(vm.NewTypeError("msg." + method + " must be called on a message"))
	}
	fn(msg, "text", func(c goja.FunctionCall) goja.Value {
		return vm.ToValue(string(dataOf(c.This, "text")))
	})
	fn(msg, "json", func(c goja.FunctionCall) goja.Value {
		return rt.mustParseJSON(string(dataOf(c.This, "json")), false)
	})
	rt.freezeObj(msg)
	rt.protoMessage = msg
}

// check throws err, if any, as a HostError.
func (rt *Runtime) check(err error) {
	if err != nil {
		rt.throwHost(err)
	}
}

// jsonText renders data as JSON text for a message.
func (rt *Runtime) jsonText(v goja.Value, what string) string {
	b, err := rt.encode(v, false)
	if err != nil {
		panic(rt.encodeError(what, err))
	}
	if b == nil {
		panic(rt.vm.NewTypeError(what + ": undefined, a function or a symbol cannot be sent"))
	}
	return string(b)
}

// send sends text as it is, bytes as a binary frame, anything else as JSON
// text.
func (rt *Runtime) send(id string, data goja.Value, what string) {
	if s, ok := stringOf(data); ok {
		rt.check(actorsdk.Send(id, s))
		return
	}
	if b, ok := bytesOf(data); ok {
		rt.check(actorsdk.SendBinary(id, b))
		return
	}
	rt.check(actorsdk.Send(id, rt.jsonText(data, what)))
}

func (rt *Runtime) closeConn(id string, code, reason goja.Value, what string) {
	n := 0
	if present(code) {
		f := rt.num(code, what+": the code")
		if f != math.Trunc(f) || f < 0 || f > 65535 {
			panic(rt.vm.NewTypeError(what + ": the code must be 1000 or 3000 to 4899"))
		}
		n = int(f)
	}
	rt.check(actorsdk.CloseConn(id, n, rt.optStr(reason, what+": the reason")))
}

func (rt *Runtime) connObject(c actorsdk.Conn) *goja.Object {
	vm := rt.vm
	o := vm.CreateObject(rt.protoConn)
	_ = o.Set("id", c.ID)
	_ = o.Set("kind", c.Kind)
	_ = o.Set("path", c.Path)
	_ = o.Set("query", c.Query)
	_ = o.Set("room", c.Room)
	_ = o.Set("caller", rt.callerObject(c.Caller))
	_ = o.Set("requestId", c.RequestID)
	return o
}

// Open hands a connection's open to the script's onOpen handlers. A thrown
// HostError (gnome.refuse) refuses it with its code.
func (rt *Runtime) Open(c actorsdk.Conn) error {
	if len(rt.onOpen) == 0 {
		return nil
	}
	conn := rt.connObject(c)
	for _, h := range rt.onOpen {
		if err := rt.event("open", h, conn); err != nil {
			return err
		}
	}
	return nil
}

// Message hands a message to the script's onMessage handlers.
func (rt *Runtime) Message(c actorsdk.Conn, m actorsdk.Message) error {
	if len(rt.onMessage) == 0 {
		return nil
	}
	conn := rt.connObject(c)
	msg := rt.vm.CreateObject(rt.protoMessage)
	_ = msg.Set("binary", m.Binary)
	_ = msg.Set("data", rt.newBytes(m.Data))
	for _, h := range rt.onMessage {
		if err := rt.event("message", h, conn, msg); err != nil {
			return err
		}
	}
	return nil
}

// Close hands a connection's end to the script's onClose handlers.
func (rt *Runtime) Close(c actorsdk.Conn, cl actorsdk.Close) error {
	if len(rt.onClose) == 0 {
		return nil
	}
	conn := rt.connObject(c)
	o := rt.vm.NewObject()
	_ = o.Set("code", cl.Code)
	_ = o.Set("reason", cl.Reason)
	_ = o.Set("by", cl.By)
	for _, h := range rt.onClose {
		if err := rt.event("close", h, conn, o); err != nil {
			return err
		}
	}
	return nil
}

// Timer hands a timer event to the script's onTimer handlers.
func (rt *Runtime) Timer(t actorsdk.Timer) error {
	if len(rt.onTimer) == 0 {
		return &actorsdk.HostError{Code: actorsdk.CodeNotFound, Message: "the script has no gnome.onTimer handler"}
	}
	vm := rt.vm
	o := vm.NewObject()
	_ = o.Set("id", t.ID)
	_ = o.Set("name", t.Name)
	_ = o.Set("schedule", t.Schedule)
	var payload goja.Value = goja.Null()
	if len(t.Payload) > 0 {
		v, err := rt.parseJSON(string(t.Payload), true)
		if err == nil {
			payload = v
		}
	}
	_ = o.Set("payload", payload)
	_ = o.Set("scheduledAt", rt.newDate(t.ScheduledAt))
	_ = o.Set("firedAt", rt.newDate(t.FiredAt))
	for _, h := range rt.onTimer {
		if err := rt.event("timer", h, o); err != nil {
			return err
		}
	}
	return nil
}

// event runs an event handler: a thrown HostError comes back as an
// *actorsdk.HostError with its code, anything else as an error naming the
// script's file and line, logged with its stack.
func (rt *Runtime) event(kind string, h goja.Callable, args ...goja.Value) error {
	v, err := h(goja.Undefined(), args...)
	if err == nil {
		_, err = rt.settle(v)
	}
	if err == nil {
		return nil
	}
	code, _, msg, _, isHost := rt.classify(err)
	if isHost {
		return &actorsdk.HostError{Code: code, Message: msg}
	}
	rt.log(3, rt.logFailure(err, msg))
	return errors.New(fmt.Sprintf("the %s handler failed: %s", kind, msg))
}
