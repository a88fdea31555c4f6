package bundle

import (
	"io"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// A JavaScript actor: the manifest's actor.script names its entry script,
// which the platform's JavaScript runtime module runs (docs/actors.md,
// section 9). The runtime receives the entry script's folder: every script
// and JSON file in it and below (ScriptSource), so that require() finds
// the bundle's other modules.

// MaxScriptSize bounds the scripts an actor receives, together (the entry
// script's folder and below): the same bound as a module's, whose place
// they take. The worker enforces its own limit (its MaxModule) again when
// it loads them.
const MaxScriptSize = 64 << 20

// ScriptSource reports whether name is a file the runtime receives when it
// sits in the entry script's folder or below (the manifest is the
// platform's: never).
func ScriptSource(name string) bool {
	if name == "manifest.json" {
		return false
	}
	switch path.Ext(name) {
	case ".js", ".cjs", ".mjs", ".json":
		return true
	}
	return false
}

// ScriptDir is the folder whose scripts a JavaScript actor receives: the
// entry script's ("" for the bundle's root).
func ScriptDir(script string) string {
	dir := path.Dir(path.Clean(script))
	if dir == "." {
		return ""
	}
	return dir
}

// InScriptDir reports whether name, a bundle path, is in dir (ScriptDir)
// or below.
func InScriptDir(dir, name string) bool {
	return dir == "" || strings.HasPrefix(name, dir+"/")
}

// checkActorCode refuses an actor that names both a module and a script,
// or neither, with a message that says so (the schema's oneOf would only
// say that neither or both of its branches matched).
func checkActorCode(doc any) error {
	obj, _ := doc.(map[string]any)
	actor, ok := obj["actor"].(map[string]any)
	if !ok {
		return nil // absent, or the schema names the wrong type
	}
	_, module := actor["module"]
	_, script := actor["script"]
	switch {
	case module && script:
		return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: /actor/script: declare either module (a WebAssembly actor) or script (a JavaScript actor), not both").OnField("/actor/script")
	case !module && !script:
		return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: /actor/module: missing: declare module (a WebAssembly actor, .wasm) or script (a JavaScript actor, .js)").OnField("/actor/module")
	}
	return nil
}

// checkScript checks a JavaScript actor's scripts in the bundle: the entry
// script is a file, and the scripts the runtime would receive are UTF-8
// text within MaxScriptSize together.
func checkScript(r io.ReaderAt, kept map[string]*entry, script string) error {
	const field = "/actor/script"
	e, ok := kept[script]
	if !ok {
		for p := range kept {
			if strings.HasPrefix(p, script+"/") {
				return apierr.New(apierr.CodeActorModuleMissing, "the actor script %q that manifest.json declares is a folder of the bundle, not a file", script).OnField(field)
			}
		}
		return apierr.New(apierr.CodeActorModuleMissing, "the actor script %q that manifest.json declares is not in the bundle", script).OnField(field)
	}
	dir := ScriptDir(script)
	var total uint64
	for p, f := range kept {
		if ScriptSource(p) && InScriptDir(dir, p) {
			total += f.usize
		}
	}
	if total > MaxScriptSize {
		where := "the bundle's root"
		if dir != "" {
			where = dir + "/"
		}
		return apierr.New(apierr.CodeActorScriptInvalid, "the actor's scripts (the .js, .cjs, .mjs and .json files in %s and below) are %d bytes together, over the limit of %d", where, total, MaxScriptSize).OnField(field)
	}
	if e.usize > MaxScriptSize {
		return apierr.New(apierr.CodeActorScriptInvalid, "the actor script %q is %d bytes, over the limit of %d", script, e.usize, MaxScriptSize).OnField(field)
	}
	src, err := io.ReadAll(openEntry(r, e))
	if err != nil {
		return err
	}
	if !utf8.Valid(src) {
		return apierr.New(apierr.CodeActorScriptInvalid, "the actor script %q is not UTF-8 text", script).OnField(field)
	}
	return nil
}
