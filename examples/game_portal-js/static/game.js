// The game portal's page: one WebSocket to the actor (ws/play) through the
// platform's helper, which reconnects on its own; after every (re)connection
// the page says hello and the actor answers where the player stands: in the
// lobby, waiting, or in a match (the same one after a reload or a dropped
// connection, since the player is known by their participant ID).
"use strict";

const COLS = 7, ROWS = 6;
const base = (location.pathname.match(/^\/experiments\/[^/]+\//) || ["/"])[0];
const $ = id => document.getElementById(id);

let mySeat = 0;       // 1 or 2 in the current match
let myMatch = "";     // the match mySeat belongs to
let state = null;     // the newest state of a match
let wantToWait = false; // in the lobby when the connection dropped: join again

const conn = gnome.live("play", { json: true });

conn.on("open", () => {
  $("conn").textContent = "Connected";
  $("conn").className = "";
  conn.send({ type: "hello" });
});
conn.on("reconnecting", info => {
  $("conn").textContent = "Connection lost; reconnecting in " + Math.ceil(info.delay / 1000) + " s…";
  $("conn").className = "bad";
});
conn.on("close", info => {
  $("conn").textContent = "Disconnected" + (info.reason ? ": " + info.reason : "") + ". Reload the page to play again.";
  $("conn").className = "bad";
  for (const b of document.querySelectorAll("button")) b.disabled = true;
});
conn.on("message", msg => {
  switch (msg.type) {
    case "welcome":
      if (msg.name && !$("name").value) $("name").value = msg.name;
      showStats(msg.lobby);
      if (!msg.match) {
        if (state && state.status === "playing") {
          // The actor restarted and lost the match (matches live in its memory).
          $("message").textContent = "The match was lost when the server restarted; join again.";
          $("game").hidden = true;
          state = null;
          myMatch = "";
        }
        showLobby();
      }
      // Waiting when the connection dropped: the actor forgot it, so ask again.
      if (wantToWait) join();
      break;
    case "waiting":
      wantToWait = true;
      showLobby();
      $("waiting").hidden = false;
      break;
    case "left":
      wantToWait = false;
      $("waiting").hidden = true;
      break;
    case "match":
      wantToWait = false;
      mySeat = msg.you;
      myMatch = msg.state.match;
      state = null;
      take(msg.state);
      break;
    case "state":
      take(msg);
      break;
    case "lobby":
      showStats(msg);
      break;
    case "replaced":
      $("message").textContent = "The game went on in another tab.";
      break;
    case "error":
      $("message").textContent = msg.message;
      break;
  }
});

function join() {
  const name = $("name").value.trim();
  if (!name) return;
  localStorage.setItem("game-portal-name", name);
  $("message").textContent = "";
  conn.send({ type: "join", name });
}

$("join").addEventListener("submit", ev => { ev.preventDefault(); join(); });
$("cancel").addEventListener("click", () => { wantToWait = false; conn.send({ type: "leave" }); });
$("leave").addEventListener("click", () => conn.send({ type: "leave" }));
$("again").addEventListener("click", join);
$("name").value = localStorage.getItem("game-portal-name") || "";

// take keeps a state when it is newer than the one shown: a match's state
// comes both privately (on joining) and to its room, in either order.
function take(s) {
  if (state && state.match === s.match && s.seq <= state.seq) return;
  if (s.match !== myMatch) return; // an earlier match's last word
  state = s;
  render();
  if (s.status !== "playing") refreshRecent();
}

function showLobby() {
  $("lobby").hidden = false;
  if (!state) $("game").hidden = true;
  $("waiting").hidden = !wantToWait;
}

function showStats(s) {
  if (!s) return;
  $("lobby-stats").textContent = s.waiting + " waiting, " + s.playing + (s.playing === 1 ? " match" : " matches") + " being played.";
}

function nameOf(seat) {
  const p = state.players.find(p => p.seat === seat);
  return p ? p.name : "?";
}

function render() {
  const s = state;
  const other = 3 - mySeat;
  const playing = s.status === "playing";
  $("lobby").hidden = playing;
  $("waiting").hidden = true;
  $("game").hidden = false;
  $("message").textContent = "";
  $("players").innerHTML = "";
  const me = document.createElement("span");
  me.className = "you" + mySeat;
  me.textContent = "You: " + nameOf(mySeat);
  const them = document.createElement("span");
  them.className = "you" + other;
  them.id = "opponent";
  them.textContent = nameOf(other);
  $("players").append(me, " against ", them);

  let status;
  const away = s.players.find(p => p.seat === other && p.away);
  if (playing) {
    status = s.turn === mySeat ? "Your turn" : nameOf(other) + "'s turn";
    if (away) status += " (" + nameOf(other) + " lost the connection; waiting for them to come back)";
  } else if (s.status === "draw") {
    status = "A draw.";
  } else if (s.status === "won") {
    status = s.winner === mySeat ? "You won!" : nameOf(s.winner) + " won.";
  } else {
    status = s.reason + "." + (s.winner === mySeat ? " You win." : "");
  }
  $("status").textContent = status;
  $("leave").hidden = !playing;
  $("again").hidden = playing;

  const board = $("board");
  const wins = new Set(s.line.map(c => c[0] + "," + c[1]));
  board.replaceChildren();
  for (let c = 0; c < COLS; c++) {
    const col = document.createElement("button");
    col.className = "column";
    col.dataset.col = c;
    col.setAttribute("aria-label", "column " + (c + 1));
    col.disabled = !playing || s.turn !== mySeat || s.grid[c][ROWS - 1] !== 0;
    col.addEventListener("click", () => conn.send({ type: "move", column: c }));
    for (let r = 0; r < ROWS; r++) {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.dataset.col = c;
      cell.dataset.row = r;
      cell.dataset.seat = s.grid[c][r];
      if (wins.has(c + "," + r)) cell.classList.add("win");
      if (s.last && s.last[0] === c && s.last[1] === r) cell.classList.add("last");
      col.appendChild(cell);
    }
    board.appendChild(col);
  }
}

async function refreshRecent() {
  try {
    const res = await fetch(base + "api/matches?n=5", { headers: { "Accept": "application/json" } });
    if (!res.ok) return;
    const body = await res.json();
    $("recent").replaceChildren(...body.matches.map(m => {
      const li = document.createElement("li");
      const names = m.players.map(p => p.name).join(" against ");
      const winner = m.players.find(p => p.seat === m.winner);
      const result = m.status === "draw" ? "a draw" : (winner ? winner.name + " won" : "no winner") + (m.reason ? " (" + m.reason + ")" : "");
      li.textContent = names + ": " + result + " in " + m.moves + " moves";
      return li;
    }));
  } catch (e) {
    // The list is a courtesy; the game goes on without it.
  }
}
refreshRecent();
