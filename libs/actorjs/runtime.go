// Package actorjs is the platform's JavaScript runtime: it runs a
// JavaScript actor's script with goja on top of the Go actor SDK
// (docs/actors.md, section 9). The script's top level runs once, in New;
// it registers handlers through the global gnome object, whose API is
// libs/actorapi/gnome.d.ts. Serve, Open, Message, Close and Timer hand the
// platform's requests and events to those handlers.
//
// Most of the package runs natively, so that go test covers it; there the
// SDK's host operations fail with actorsdk.ErrNotWasm, which scripts see
// as a thrown gnome.HostError.
package actorjs

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// MaxCallStackSize bounds the depth of JavaScript calls: deeper recursion
// throws a RangeError instead of growing the instance's memory until it
// traps.
const MaxCallStackSize = 5000

// Options change how a Runtime talks to the world; the zero value uses the
// SDK.
type Options struct {
	// Log receives the script's log lines (console, gnome.log, errors of
	// handlers) with the SDK's levels: 0 debug, 1 info, 2 warn, 3 error.
	// Nil writes them to actorsdk.Log.
	Log func(level int, msg string)
	// Bind is called once for each kind of event the script first takes a
	// handler for ("open", "message", "close", "timer"), so that the
	// program registers the SDK's hook then: an actor without live
	// handlers must take no connections.
	Bind func(kind string)
}

// Runtime is one script's JavaScript world. It is not safe for concurrent
// use; the platform calls an instance one request at a time.
type Runtime struct {
	vm   *goja.Runtime
	opts Options
	init actorsdk.Init

	entry   string                  // the entry script's bundle path
	modules map[string]*goja.Object // bundle path -> module object

	// Built-ins taken before the script runs, so that a script replacing
	// them changes only what it calls itself.
	jsonParse       goja.Callable
	reviveDates     goja.Value
	freeze          goja.Callable
	deepFreeze      goja.Callable
	hostErrorCtor   *goja.Object
	errorCtor       *goja.Object
	syntaxErrorCtor *goja.Object
	rangeErrorCtor  *goja.Object
	uint8Ctor       *goja.Object
	dateCtor        *goja.Object
	protoConn       *goja.Object
	protoMessage    *goja.Object
	protoReader     *goja.Object
	protoColl       *goja.Object

	routes   []*route
	notFound goja.Callable

	onOpen, onMessage, onClose, onTimer []goja.Callable
	bound                               map[string]bool

	// loadFailure is the error of the last file that did not compile.
	loadFailure *goja.Object

	// current is the request being served, for gnome.error's request_id.
	current *actorsdk.Request
}

// wrapperHead and wrapperTail make a CommonJS module of a file: its top
// level runs as a function of the module's variables. The head stays on
// the file's first line, so line numbers are the file's.
const (
	wrapperHead = "(function (exports, require, module, __filename, __dirname) { "
	wrapperTail = "\n})"
)

// New runs the entry script of in.Script and returns the runtime that
// serves its handlers. A missing script, a syntax error or an exception of
// the top level is an error whose message names the file, line and column
// and the JavaScript message ("actor.js:12:5: SyntaxError: ...").
func New(in actorsdk.Init, opts Options) (*Runtime, error) {
	if in.Script == nil || in.Script.Entry == "" {
		return nil, errors.New("the JavaScript runtime has no script to run: the manifest's actor.script names none")
	}
	entry := path.Clean(in.Script.Entry)
	if _, ok := in.Script.Files[entry]; !ok {
		return nil, fmt.Errorf("the actor's script %s is not in the bundle", in.Script.Entry)
	}
	rt := &Runtime{vm: goja.New(), opts: opts, init: in, entry: entry, modules: map[string]*goja.Object{}, bound: map[string]bool{}}
	rt.vm.SetMaxCallStackSize(MaxCallStackSize)
	if err := rt.setup(); err != nil {
		return nil, fmt.Errorf("set up the JavaScript runtime: %w", err)
	}
	// The entry loads through a native function called as goja calls
	// any: exceptions, and the uncatchable ones (a stack overflow) too,
	// come back as errors.
	loader, _ := goja.AssertFunction(rt.vm.ToValue(func(goja.FunctionCall) goja.Value {
		return rt.load(entry)
	}))
	if _, err := loader(goja.Undefined()); err != nil {
		if rt.loadFailure != nil && exceptionValue(err) == goja.Value(rt.loadFailure) {
			// A file that does not compile: its own position says more
			// than the require that loaded it.
			return nil, errors.New(rt.loadFailure.Get("message").String())
		}
		return nil, errors.New(rt.describeErr(err))
	}
	return rt, nil
}

// load runs the module at the bundle path p (once) and returns its
// module.exports. It panics with a JavaScript exception on failure, as a
// native function of goja does.
func (rt *Runtime) load(p string) goja.Value {
	if m, ok := rt.modules[p]; ok {
		return m.Get("exports")
	}
	src := rt.init.Script.Files[p]
	module := rt.vm.NewObject()
	exports := rt.vm.NewObject()
	_ = module.Set("exports", exports)
	_ = module.Set("id", p)
	rt.modules[p] = module
	if strings.HasSuffix(p, ".json") {
		v, err := rt.jsonParse(goja.Undefined(), rt.vm.ToValue(src))
		if err != nil {
			delete(rt.modules, p)
			rt.loadFailure = rt.newError(rt.syntaxErrorCtor, p+": "+rt.errorText(exceptionValue(err)))
			panic(rt.loadFailure)
		}
		_ = module.Set("exports", v)
		return v
	}
	prg, err := compile(p, src)
	if err != nil {
		delete(rt.modules, p)
		rt.loadFailure = rt.newError(rt.syntaxErrorCtor, syntaxMessage(p, src, err))
		panic(rt.loadFailure)
	}
	fn, err := rt.vm.RunProgram(prg)
	if err != nil {
		delete(rt.modules, p)
		panic(err)
	}
	call, ok := goja.AssertFunction(fn)
	if !ok {
		delete(rt.modules, p)
		panic(rt.vm.NewTypeError(p + ": the module did not compile to a function"))
	}
	dir := path.Dir(p)
	req := rt.vm.ToValue(func(c goja.FunctionCall) goja.Value {
		defer rt.guard("require")
		spec, ok := stringOf(c.Argument(0))
		if !ok {
			panic(rt.vm.NewTypeError("require: the path must be a string"))
		}
		target, err := rt.resolve(p, spec)
		if err != nil {
			panic(rt.newError(rt.errorCtor, err.Error()))
		}
		return rt.load(target)
	})
	// As in Node.js, the module's top level runs with this = exports.
	if _, err := call(exports, exports, req, module, rt.vm.ToValue(p), rt.vm.ToValue(dir)); err != nil {
		delete(rt.modules, p)
		panic(err)
	}
	return module.Get("exports")
}

// compile compiles a file as a CommonJS module.
func compile(name, src string) (*goja.Program, error) {
	ast, err := parser.ParseFile(nil, name, wrapperHead+src+wrapperTail, 0)
	if err != nil {
		return nil, err
	}
	return goja.CompileAST(ast, false)
}

// resolve finds the bundle path spec names from the module at from:
// relative paths only, inside the bundle, trying .js, .cjs, .json and
// index.js as Node.js does.
func (rt *Runtime) resolve(from, spec string) (string, error) {
	if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
		return "", fmt.Errorf("require(%q) in %s: only the bundle's own files load, by a path relative to the requiring file (\"./lib/x.js\"); there are no Node.js or npm modules", spec, from)
	}
	p := path.Join(path.Dir(from), spec)
	if root := path.Dir(rt.entry); root != "." && p != root && !strings.HasPrefix(p, root+"/") || p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("require(%q) in %s: the path leads out of the bundle (the script's folder and below)", spec, from)
	}
	for _, c := range []string{p, p + ".js", p + ".cjs", p + ".json", p + "/index.js"} {
		if _, ok := rt.init.Script.Files[c]; ok {
			return c, nil
		}
	}
	return "", fmt.Errorf("require(%q) in %s: cannot find module %s in the bundle (the script's folder and below)", spec, from, p)
}

var importSyntax = regexp.MustCompile(`(?m)^\s*(import\s+[\w*{"']|import\(|export\s+(default|const|function|class|let|var|\{|\*))`)

// syntaxMessage renders a compile error as "file:line:col: SyntaxError:
// message", with columns of the file's first line corrected for the
// module wrapper.
func syntaxMessage(file, src string, err error) string {
	msg := file + ": SyntaxError: " + err.Error()
	var list parser.ErrorList
	var one *parser.Error
	var se *goja.CompilerSyntaxError
	switch {
	case errors.As(err, &list) && len(list) > 0:
		one = list[0]
	case errors.As(err, &one):
	case errors.As(err, &se) && se.File != nil:
		one = &parser.Error{Position: se.File.Position(se.Offset), Message: se.Message}
	}
	if one != nil {
		col := one.Position.Column
		if one.Position.Line == 1 {
			col = max(col-len(wrapperHead), 1)
		}
		msg = fmt.Sprintf("%s:%d:%d: SyntaxError: %s", file, one.Position.Line, col, one.Message)
	}
	if importSyntax.MatchString(src) {
		msg += " (scripts are CommonJS: load other files with require(\"./x.js\") and export with module.exports; import and export are not supported)"
	}
	return msg
}

// exceptionValue is the JavaScript value an error of goja carries.
func exceptionValue(err error) goja.Value {
	if je, ok := err.(jsError); ok {
		return je.v
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return ex.Value()
	}
	return nil
}

// newError makes an error object of the constructor ctor (Error,
// TypeError, SyntaxError) with msg.
func (rt *Runtime) newError(ctor goja.Value, msg string) *goja.Object {
	c, ok := ctor.(*goja.Object)
	if !ok {
		c = rt.errorCtor
	}
	o, err := rt.vm.New(c, rt.vm.ToValue(msg))
	if err != nil {
		return rt.vm.NewTypeError(msg)
	}
	return o
}

// guard turns a Go panic of a native function (an odd argument reaching a
// path that did not expect it) into a JavaScript TypeError: the script's
// mistake must not trap the instance. goja's own exceptions pass through.
// Deferred at the top of every native function.
func (rt *Runtime) guard(name string) {
	r := recover()
	if r == nil {
		return
	}
	switch r.(type) {
	case *goja.Exception, goja.Value, *goja.InterruptedError, *goja.StackOverflowError:
		panic(r)
	}
	panic(rt.vm.NewTypeError(fmt.Sprintf("%s: %v", name, r)))
}

// position finds where a thrown value came from: the innermost frame of a
// script file ("actor.js:12:5"), "" when none is known.
func position(stack []goja.StackFrame) string {
	for _, f := range stack {
		p := f.Position()
		if p.Filename == "" || p.Line == 0 {
			continue
		}
		col := p.Column
		if p.Line == 1 {
			col -= len(wrapperHead)
			if col < 1 {
				col = 1
			}
		}
		return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, col)
	}
	return ""
}

var stackPosition = regexp.MustCompile(`\(?([^\s()]+):(\d+):(\d+)\(\d+\)`)

// positionOf finds where an error object was made, from its stack.
func (rt *Runtime) positionOf(v goja.Value) string {
	o, ok := v.(*goja.Object)
	if !ok {
		return ""
	}
	var stack string
	if rt.vm.Try(func() {
		if s := o.Get("stack"); s != nil {
			if str, ok := stringOf(s); ok {
				stack = str
			}
		}
	}) != nil {
		return ""
	}
	m := stackPosition.FindStringSubmatch(stack)
	if m == nil || strings.HasPrefix(m[1], "native") {
		return ""
	}
	line, col := m[2], m[3]
	if line == "1" {
		var c int
		fmt.Sscanf(col, "%d", &c)
		c -= len(wrapperHead)
		if c < 1 {
			c = 1
		}
		col = fmt.Sprint(c)
	}
	return m[1] + ":" + line + ":" + col
}

// describeErr renders a failure of a call into the script as
// "file:line:col: Name: message".
func (rt *Runtime) describeErr(err error) string {
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		if where := position(so.Stack()); where != "" {
			return where + ": RangeError: Maximum call stack size exceeded"
		}
		return "RangeError: Maximum call stack size exceeded"
	}
	ex, ok := asException(err)
	if !ok {
		return err.Error()
	}
	return rt.describe(ex.Value(), ex)
}

// describe renders a thrown value as "file:line:col: Name: message".
func (rt *Runtime) describe(v goja.Value, ex *goja.Exception) string {
	text := rt.errorText(v)
	where := ""
	if ex != nil {
		where = position(ex.Stack())
	}
	if where == "" {
		where = rt.positionOf(v)
	}
	if where == "" {
		return text
	}
	return where + ": " + text
}

// errorText is String(v) for an error ("TypeError: x is not a function"),
// "uncaught <value>" for anything else thrown; it never throws.
func (rt *Runtime) errorText(v goja.Value) string {
	if v == nil {
		return "uncaught exception"
	}
	var s string
	o, isObj := v.(*goja.Object)
	ex := rt.vm.Try(func() {
		if isObj && rt.isError(o) {
			s = o.String()
			return
		}
		s = "uncaught " + rt.logText(v)
	})
	if ex != nil {
		return "uncaught exception (its value cannot be shown)"
	}
	return s
}

// isError reports whether o is an Error (its prototype chain holds
// Error.prototype).
func (rt *Runtime) isError(o *goja.Object) bool {
	return o.ClassName() == "Error"
}

// stackOf is an error's stack for the log, "" when it has none.
func (rt *Runtime) stackOf(v goja.Value) string {
	o, ok := v.(*goja.Object)
	if !ok {
		return ""
	}
	var s string
	rt.vm.Try(func() {
		if st := o.Get("stack"); st != nil {
			s, _ = stringOf(st)
		}
	})
	return s
}

func (rt *Runtime) log(level int, msg string) {
	if rt.opts.Log != nil {
		rt.opts.Log(level, msg)
		return
	}
	switch level {
	case 0:
		actorsdk.Log.Debug(msg)
	case 1:
		actorsdk.Log.Info(msg)
	case 2:
		actorsdk.Log.Warn(msg)
	default:
		actorsdk.Log.Error(msg)
	}
}
