/// <reference path="../../libs/actorapi/gnome.d.ts" />
// The portal: players in a lobby, paired two by two into matches of
// Connect Four, each match a room of live connections. It keeps everything
// in memory (a live game), does nothing itself but through the effects it
// is given (actor.js hands it the platform's), and is driven by the
// connections' messages and closes and by forfeit timers. The same portal
// as examples/game_portal's portal.go, message for message.
//
// Messages from a page (JSON text):
//
//   {"type": "hello"}                 after every (re)connection: the player's state again
//   {"type": "join", "name": "Ada"}   into the lobby, to be paired with the next player
//   {"type": "move", "column": 3}     drops a disc (columns 0 to 6)
//   {"type": "leave"}                 leaves the lobby, or the match (the other player wins)
//
// Messages to a page:
//
//   {"type": "welcome", "name", "match", "lobby"}  the answer to hello
//   {"type": "waiting"}               in the lobby, waiting for an opponent
//   {"type": "match", "you", "state"} the player's seat (1 or 2) in a match starting or resumed
//   {"type": "state", ...}            a match's state, to its room after every change
//   {"type": "lobby", "waiting", "playing"}  to every connection, when the numbers change
//   {"type": "left"}                  out of the lobby
//   {"type": "replaced"}              the player's game went on in another tab (then closed)
//   {"type": "error", "message"}      a message refused (not your turn, a full column, ...)

const { Game } = require("./connect4.js");

// LOBBY_ROOM is the room every connection joins, for the lobby's numbers.
const LOBBY_ROOM = "lobby";
// MAX_NAME bounds a player's name, in characters.
const MAX_NAME = 24;

const PLAYING = "playing";
const WON = "won";
const DRAW = "draw";
const ABANDONED = "abandoned";

class Portal {
  // fx is {send, publish, join (false when the connection is gone), leave,
  // close, after(graceMs, forfeit), save(record), now(), newId()}.
  constructor(fx, graceMs) {
    this.fx = fx;
    this.graceMs = graceMs;
    this.players = new Map(); // by caller
    this.conns = new Map(); // by connection
    this.lobby = [];
    this.matches = new Map();
    this.stats = { type: "lobby", waiting: 0, playing: 0 };
  }

  // message handles a message (text) of conn, whose caller is who.
  message(conn, who, text) {
    const input = parseInbound(text);
    if (input === null) {
      this.fail(conn, 'messages are JSON objects such as {"type": "hello"}');
      return;
    }
    const pl = this.attach(conn, who);
    switch (input.type) {
      case "hello": {
        const m = pl.match;
        this.fx.send(conn, { type: "welcome", name: pl.name, match: m ? m.id : "", lobby: this.stats });
        if (m) {
          this.fx.send(conn, { type: "match", you: seatOf(m, pl), state: stateOf(m) });
        } else if (pl.waiting) {
          this.fx.send(conn, { type: "waiting" });
        }
        break;
      }
      case "join":
        this.join(pl, input.name);
        break;
      case "move":
        this.move(pl, input.column);
        break;
      case "leave":
        this.leave(pl);
        break;
      default:
        this.fail(conn, "unknown message type " + input.type);
    }
    this.publishStats();
  }

  // closed handles the end of conn.
  closed(conn) {
    const pl = this.conns.get(conn);
    this.conns.delete(conn);
    if (!pl || pl.conn !== conn) {
      return; // never spoke, or replaced by another tab
    }
    pl.conn = "";
    if (pl.waiting) {
      this.unwait(pl);
      this.players.delete(pl.key);
    } else if (pl.match) {
      const m = pl.match;
      const seat = seatOf(m, pl);
      m.gone[seat - 1] = true;
      m.away[seat - 1]++;
      this.publish(m);
      this.fx.after(this.graceMs, { match: m.id, seat: seat, away: m.away[seat - 1] });
    } else {
      this.players.delete(pl.key);
    }
    this.publishStats();
  }

  // forfeit ends a match whose player did not come back in time.
  forfeit(f) {
    const m = f && this.matches.get(f.match);
    if (!m || (f.seat !== 1 && f.seat !== 2) || !m.gone[f.seat - 1] || m.away[f.seat - 1] !== f.away) {
      return; // over already, or the player came back
    }
    const pl = m.players[f.seat - 1];
    m.game.resign(f.seat);
    this.finish(m, ABANDONED, pl.name + " left the match");
    this.publishStats();
  }

  // attach makes conn the connection of who's player: a new player, one
  // coming back to a match (which goes on), or one whose other tab gives way.
  attach(conn, who) {
    const known = this.conns.get(conn);
    if (known) {
      return known;
    }
    let pl = this.players.get(who);
    if (!pl) {
      pl = { key: who, name: "", conn: "", match: null, room: "", waiting: false };
      this.players.set(who, pl);
    }
    if (pl.conn !== "") {
      const old = pl.conn;
      this.conns.delete(old);
      this.fx.send(old, { type: "replaced" });
      // 1000, so that the other tab's helper does not reconnect and take
      // the game back.
      this.fx.close(old, 1000, "the game went on in another tab");
    }
    pl.conn = conn;
    this.conns.set(conn, pl);
    if (!this.fx.join(conn, LOBBY_ROOM)) {
      return pl; // gone already: its close follows
    }
    const m = pl.match;
    if (m) {
      const seat = seatOf(m, pl);
      if (!this.fx.join(conn, m.room)) {
        return pl;
      }
      pl.room = m.room;
      if (m.gone[seat - 1]) {
        m.gone[seat - 1] = false;
        this.publish(m);
      }
    }
    return pl;
  }

  // join puts pl into the lobby and pairs the two first players there.
  join(pl, raw) {
    if (pl.match) {
      this.fail(pl.conn, "finish or leave your match first");
      return;
    }
    const name = cleanName(raw);
    if (name === null) {
      this.fail(pl.conn, "choose a name of 1 to " + MAX_NAME + " characters");
      return;
    }
    pl.name = name;
    if (pl.room !== "") {
      this.fx.leave(pl.conn, pl.room);
      pl.room = "";
    }
    if (!pl.waiting) {
      pl.waiting = true;
      this.lobby.push(pl);
    }
    if (this.lobby.length < 2) {
      this.fx.send(pl.conn, { type: "waiting" });
      return;
    }
    const pair = this.lobby.splice(0, 2);
    pair[0].waiting = false;
    pair[1].waiting = false;
    const id = this.fx.newId();
    const m = {
      id: id, room: "match-" + id, game: new Game(), players: pair, away: [0, 0], gone: [false, false],
      seq: 0, started: this.fx.now(), last: null, status: PLAYING, reason: "",
    };
    this.matches.set(m.id, m);
    pair.forEach((q, i) => {
      q.match = m;
      if (!this.fx.join(q.conn, m.room)) {
        return; // the connection is gone: its close marks the player away
      }
      q.room = m.room;
      this.fx.send(q.conn, { type: "match", you: i + 1, state: stateOf(m) });
    });
    this.publish(m);
  }

  // move plays pl's move in their match.
  move(pl, col) {
    const m = pl.match;
    if (!m) {
      this.fail(pl.conn, "you are not in a match");
      return;
    }
    if (col === undefined || col === null) {
      this.fail(pl.conn, 'a move names its column: {"type": "move", "column": 3}');
      return;
    }
    const played = m.game.play(seatOf(m, pl), col);
    if (played.error) {
      this.fail(pl.conn, played.error);
      return;
    }
    m.last = [col, played.row];
    if (m.game.winner !== 0) {
      this.finish(m, WON, "");
    } else if (m.game.draw) {
      this.finish(m, DRAW, "");
    } else {
      this.publish(m);
    }
  }

  // leave takes pl out of the lobby, or out of their match, which the other
  // player then wins.
  leave(pl) {
    if (pl.waiting) {
      this.unwait(pl);
      this.fx.send(pl.conn, { type: "left" });
    } else if (pl.match) {
      const m = pl.match;
      m.game.resign(seatOf(m, pl));
      this.finish(m, ABANDONED, pl.name + " left the match");
    } else {
      this.fx.send(pl.conn, { type: "left" });
    }
  }

  // finish ends m: its last state to both players, the record stored, and
  // the players free to join the lobby again. The connections stay in the
  // match's room until they join again, so that the last state, published
  // to the room, is not overtaken by their leaving it.
  finish(m, status, reason) {
    m.status = status;
    m.reason = reason;
    this.publish(m);
    this.matches.delete(m.id);
    const record = {
      _id: m.id, game: "connect-four", players: [], moves: m.game.moves.slice(), status: status,
      winner: m.game.winner, started_at: m.started, ended_at: this.fx.now(),
    };
    if (reason !== "") {
      record.reason = reason;
    }
    m.players.forEach((q, i) => {
      record.players.push({ seat: i + 1, name: q.name, player: q.key });
      q.match = null;
      if (q.conn === "") {
        this.players.delete(q.key);
      }
    });
    this.fx.save(record);
  }

  unwait(pl) {
    pl.waiting = false;
    this.lobby = this.lobby.filter(q => q !== pl);
  }

  // publish sends m's state to its room.
  publish(m) {
    m.seq++;
    this.fx.publish(m.room, stateOf(m));
  }

  // publishStats tells every connection the lobby's numbers when they
  // changed.
  publishStats() {
    const s = { type: "lobby", waiting: this.lobby.length, playing: this.matches.size };
    if (s.waiting !== this.stats.waiting || s.playing !== this.stats.playing) {
      this.stats = s;
      this.fx.publish(LOBBY_ROOM, s);
    }
  }

  // fail tells conn why its message was refused.
  fail(conn, why) {
    this.fx.send(conn, { type: "error", message: why });
  }
}

// seatOf is pl's seat in m, 1 or 2.
function seatOf(m, pl) {
  return m.players[1] === pl ? 2 : 1;
}

// stateOf is m as the pages see it.
function stateOf(m) {
  const s = {
    type: "state", match: m.id, seq: m.seq,
    players: m.players.map((q, i) => ({ seat: i + 1, name: q.name, away: m.gone[i] })),
    grid: m.game.grid, turn: m.game.turn, moves: m.game.moves.length, last: m.last,
    status: m.status, winner: m.game.winner, line: m.game.line || [],
  };
  if (m.reason !== "") {
    s.reason = m.reason;
  }
  return s;
}

// parseInbound is a page's message as {type, name, column}, or null when it
// is not a JSON object of those fields' types (Go's decoder refuses the same).
function parseInbound(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return null;
  }
  if (v === null) {
    v = {};
  }
  if (typeof v !== "object" || Array.isArray(v)) return null;
  const str = x => x === undefined || x === null || typeof x === "string";
  if (!str(v.type) || !str(v.name)) return null;
  if (v.column !== undefined && v.column !== null && !Number.isInteger(v.column)) return null;
  return { type: v.type || "", name: v.name || "", column: v.column };
}

// cleanName is name trimmed, if it is a name: 1 to MAX_NAME characters
// (code points), no control characters, no lone surrogates; null otherwise.
function cleanName(name) {
  name = String(name).trim();
  const n = Array.from(name).length;
  if (n === 0 || n > MAX_NAME || /[\u0000-\u001f\u007f-\u009f]/.test(name) ||
      /[\ud800-\udbff](?![\udc00-\udfff])|(^|[^\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    return null;
  }
  return name;
}

module.exports = { Portal, LOBBY_ROOM };
