/// <reference path="../../libs/actorapi/gnome.d.ts" />
// The game portal's actor in JavaScript: Connect Four for two players over
// WebSocket, as examples/game_portal does in Go. Players open
// /experiments/game-portal-js/ws/play from the page; the lobby pairs them two
// by two, each match is a room that the actor publishes its state to after
// every move, and the actor checks every move (turn, column, win, draw). A
// player whose connection drops has reconnect_grace_seconds (actor.config,
// 60 by default) to come back to the match, as the same caller (the
// manifest's sub_auth anonymous_session gives every visitor an ID); a player
// who leaves ends the match, which the other wins. Matches live in the
// actor's memory while played; finished ones are stored in "matches".
//
//   WS   /ws/play          the game (portal.js lists its messages)
//   SSE  /events/lobby     the lobby's numbers, for a page that only watches
//   GET  /matches?n=10     the last finished matches, newest first

const { Portal, LOBBY_ROOM } = require("./portal.js");

// FORFEIT_TIMER names the timers that end a match whose player left.
const FORFEIT_TIMER = "forfeit";

const graceSeconds = Number(gnome.config.reconnect_grace_seconds) > 0
  ? Math.max(Math.floor(Number(gnome.config.reconnect_grace_seconds)), 1) // timers take 1 s at least
  : 60;

// attempt runs a host operation whose failure the portal goes on without:
// a message to a connection that closed meanwhile is none (its close event
// is on its way). It reports whether the operation succeeded.
function attempt(what, level, fields, op) {
  try {
    op();
    return true;
  } catch (e) {
    gnome.log[level](what + " failed", ...fields, "error", e.message);
    return false;
  }
}

const portal = new Portal({
  send: (conn, v) => attempt("send", "warn", ["conn", conn], () => gnome.send(conn, v)),
  publish: (room, v) => attempt("publish", "warn", ["room", room], () => gnome.publish(room, v)),
  join: (conn, room) => attempt("join", "info", ["conn", conn, "room", room], () => gnome.join(conn, room)),
  leave: (conn, room) => attempt("leave", "info", ["conn", conn, "room", room], () => gnome.leave(conn, room)),
  close: (conn, code, reason) => attempt("close", "info", ["conn", conn], () => gnome.closeConn(conn, code, reason)),
  // Without the timer the match waits until the other player leaves it.
  after: (ms, forfeit) => attempt("the forfeit timer", "warn", ["match", forfeit.match],
    () => gnome.after(ms, FORFEIT_TIMER, forfeit)),
  save: record => attempt("storing a finished match", "error", ["match", record._id],
    () => gnome.db("matches").insertOne(record)),
  now: () => new Date(),
  newId: () => {
    // 64 random bits in hex: unique enough for a match's _id and room.
    let id = "";
    for (let i = 0; i < 4; i++) {
      id += (0x10000 + Math.floor(Math.random() * 0x10000)).toString(16).slice(1);
    }
    return id;
  },
}, graceSeconds * 1000);

gnome.onOpen(conn => {
  if (conn.kind === "sse") {
    // An event stream may follow the lobby's numbers (the platform joins it
    // to the room); it sends nothing.
    if (conn.room !== LOBBY_ROOM) {
      throw gnome.refuse("not_found", "the only room to follow is " + LOBBY_ROOM);
    }
    return;
  }
  if (conn.path !== "/play") {
    throw gnome.refuse("not_found", "the game is at ws/play");
  }
  if (conn.caller.id === "") {
    // Anonymous sessions give every visitor an ID: only a client that kept
    // no cookie comes here without one.
    throw gnome.refuse("unauthenticated", "open the game's page first: it gives you a player ID");
  }
});

gnome.onMessage((conn, msg) => {
  if (msg.binary) {
    portal.fail(conn.id, "messages are JSON text");
    return;
  }
  portal.message(conn.id, conn.caller.kind + ":" + conn.caller.id, msg.text());
});

gnome.onClose(conn => portal.closed(conn.id));

gnome.onTimer(timer => {
  if (timer.name === FORFEIT_TIMER) {
    portal.forfeit(timer.payload);
  }
});

// GET /matches: the last finished matches, newest first, without the
// players' IDs: {"matches": [{"id", "players": [{"seat", "name"}], "status",
// "winner", "reason", "moves", "ended_at"}]}.
gnome.route("GET", "/matches", req => {
  const raw = (req.query.n || [""])[0];
  let n = /^[0-9]{1,3}$/.test(raw) ? Number(raw) : 10;
  if (n < 1 || n > 50) {
    n = 10;
  }
  const found = gnome.db("matches").find({}, { sort: { ended_at: -1 }, limit: n });
  return gnome.json(200, {
    matches: found.map(m => ({
      id: m._id,
      players: (m.players || []).map(p => ({ seat: p.seat, name: p.name })),
      status: m.status,
      winner: m.winner,
      reason: m.reason || "",
      moves: (m.moves || []).length,
      ended_at: m.ended_at,
    })),
  });
});
