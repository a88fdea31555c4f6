/// <reference path="../../../libs/actorapi/gnome.d.ts" />
// Counting the clicks, a module of the clicks actor (CommonJS: actor.js
// loads it with require("./lib/counts.js")).

// countsWith is {"buttons", "counts": {button: n}, "total": n,
// "last_click"}: the stored clicks grouped by button, every button of the
// config counted (0 when never clicked).
function countsWith(buttons) {
  const groups = gnome.db("clicks").aggregate([
    { $group: { _id: "$button", n: { $sum: 1 } } },
  ]);
  const counts = {};
  buttons.forEach(b => { counts[b] = 0; });
  let total = 0;
  groups.forEach(g => {
    counts[g._id] = Number(g.n);
    total += Number(g.n);
  });
  const last = gnome.kv.get("last_click");
  return { buttons: buttons, counts: counts, total: total, last_click: last ? last.value : "" };
}

module.exports = { countsWith };
