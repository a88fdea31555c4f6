package actorjs

import (
	"github.com/dop251/goja"
)

// prelude is the part of the API that is simpler written in JavaScript:
// the HostError class, the reviver that makes Extended JSON dates Dates,
// and freezing. It runs before the script, and what it returns is kept by
// the runtime, so a script that changes globals changes only its own code.
const prelude = `(function (statusOf) {
  "use strict";
  class HostError extends Error {
    constructor(code, message) {
      super(message === undefined ? String(code) : String(message));
      this.code = String(code);
      this.status = statusOf(this.code);
    }
  }
  Object.defineProperty(HostError.prototype, "name", { value: "HostError", writable: true, configurable: true });
  const keys = Object.keys, isArray = Array.isArray, freeze = Object.freeze, isFrozen = Object.isFrozen;
  function revive(k, v) {
    if (v !== null && typeof v === "object" && !isArray(v) && v.$date !== undefined && keys(v).length === 1) {
      const d = v.$date;
      if (typeof d === "string") return new Date(d);
      if (d !== null && typeof d === "object" && typeof d.$numberLong === "string") return new Date(Number(d.$numberLong));
    }
    return v;
  }
  function deepFreeze(o) {
    if (o !== null && typeof o === "object" && !isFrozen(o)) {
      freeze(o);
      for (const k of keys(o)) deepFreeze(o[k]);
    }
    return o;
  }
  return { HostError, revive, freeze, deepFreeze };
})`

var preludeProgram = goja.MustCompile("gnome:prelude", prelude, true)
