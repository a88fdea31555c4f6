/// <reference path="../../../libs/actorapi/gnome.d.ts" />
// The JavaScript echo actor of the jsactor benchmark (gnome-bench): the
// cheapest answers a JavaScript actor gives, the same as bench/actors/echo's
// in Go, so that the two measured side by side differ by the runtime alone.
//
//   GET /ping        200 {"ok":true}
//   GET /instance    200 {"instance":"<when this instance started, ns>"}

// Both bodies are made once: a route then returns a constant response.
const pong = { headers: { "Content-Type": "application/json" }, body: '{"ok":true}' };
const instance = {
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ instance: String(Date.now()) + "000000" }),
};

gnome.route("GET", "/ping", () => pong);
gnome.route("GET", "/instance", () => instance);
