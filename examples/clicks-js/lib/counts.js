/// <reference path="../../../libs/actorapi/gnome.d.ts" />
// Counting the clicks, a module of the clicks actor (CommonJS: actor.js
// loads it with require("./lib/counts.js")).

// count adds one to button's counter, {_id: button, n}, making it at the
// button's first click: an _id lookup and $inc, whose cost does not grow
// with the clicks stored (a $group over "clicks" would read them all on
// every request). Two first clicks at once may both try to make it: the
// store refuses the second as a duplicate _id, and the retry finds it made.
function count(button) {
  const filter = { _id: button };
  const inc = { $inc: { n: 1 } };
  try {
    gnome.db("counts").updateOne(filter, inc, { upsert: true });
  } catch (e) {
    gnome.db("counts").updateOne(filter, inc, { upsert: true });
  }
}

// countsWith is {"buttons", "counts": {button: n}, "total": n,
// "last_click"} read from the counters, every button of the config counted
// (0 when never clicked).
function countsWith(buttons) {
  const counters = gnome.db("counts").find({});
  const counts = {};
  buttons.forEach(b => { counts[b] = 0; });
  let total = 0;
  counters.forEach(c => {
    counts[c._id] = Number(c.n);
    total += Number(c.n);
  });
  const last = gnome.kv.get("last_click");
  return { buttons: buttons, counts: counts, total: total, last_click: last ? last.value : "" };
}

module.exports = { count, countsWith };
