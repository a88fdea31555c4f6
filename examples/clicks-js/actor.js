/// <reference path="../../libs/actorapi/gnome.d.ts" />
// The clicks actor in JavaScript: it records every click on its page's
// buttons in its collection "clicks" and answers the page's questions about
// them, as examples/clicks does in Go (same routes, same documents).
//
//   POST /click    {"button": "red"}  records a click: 201 with the new counts
//   GET  /counts                      the clicks per button and in all
//   GET  /recent?n=10                 the last clicks, newest first:
//                                     {"clicks": [{"button", "by", "at"}]}, "at"
//                                     in ISO 8601
//
// The buttons come from the manifest's actor.config; the time of the last
// click is kept in the key-value store. lib/counts.js, loaded with require,
// keeps the counts: one counter document per button in the collection
// "counts", raised with $inc, so that answering /counts costs the same
// however many clicks are stored.

const { count, countsWith } = require("./lib/counts.js");

const buttons = Array.isArray(gnome.config.buttons) && gnome.config.buttons.length > 0
  ? gnome.config.buttons
  : ["red", "green", "blue"];

// The top level runs once per instance, as the Go SDK's OnInit does.
gnome.log.info("clicks started", "version", gnome.version, "buttons", buttons.length);

gnome.route("POST", "/click", req => {
  let input;
  try {
    input = req.json();
  } catch (e) {
    return gnome.error(400, "invalid_json", 'send {"button": "<name>"}');
  }
  // Go's decoder refuses anything but an object with a string "button";
  // the same here, so that both answer alike.
  if (input === null || typeof input !== "object" || Array.isArray(input) ||
      (input.button !== undefined && typeof input.button !== "string")) {
    return gnome.error(400, "invalid_json", 'send {"button": "<name>"}');
  }
  const button = input.button === undefined ? "" : input.button;
  if (buttons.indexOf(button) < 0) {
    return gnome.error(422, "validation_failed", "no such button: " + JSON.stringify(button));
  }
  const at = new Date();
  const by = req.caller.anonymous ? "anonymous" : req.caller.email;
  gnome.db("clicks").insertOne({ button: button, by: by, at: at });
  count(button);
  try {
    gnome.kv.put("last_click", at.toISOString());
  } catch (e) {
    // The click is stored; only the status line's time would be stale.
    gnome.log.warn("cannot keep the time of the last click", "error", String(e));
  }
  return gnome.json(201, countsWith(buttons));
});

gnome.route("GET", "/counts", () => gnome.json(200, countsWith(buttons)));

gnome.route("GET", "/recent", req => {
  const raw = (req.query.n || [""])[0];
  let n = /^[0-9]{1,3}$/.test(raw) ? Number(raw) : 10;
  if (n < 1 || n > 100) {
    n = 10;
  }
  const clicks = gnome.db("clicks").find({}, {
    sort: { at: -1 },
    projection: { _id: 0, experiment_id: 0 },
    limit: n,
  });
  // A stored date reads as a Date, which JSON writes in ISO 8601.
  return gnome.json(200, {
    clicks: clicks.map(c => ({ button: c.button, by: c.by, at: c.at })),
  });
});
