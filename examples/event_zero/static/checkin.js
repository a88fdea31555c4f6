// The check-in desk: staff type a ticket's code, the actor checks it in
// once; attendance refreshes every five seconds.
"use strict";

const api = (location.pathname.match(/^\/experiments\/[^/]+\//) || ["/"])[0] + "api/";
const result = document.getElementById("result");

async function call(path, options) {
  const res = await fetch(api + path, { credentials: "same-origin", headers: { "Accept": "application/json", "Content-Type": "application/json" }, ...options });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || res.statusText);
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function showAttendance() {
  const a = await call("attendance");
  document.getElementById("attendance").replaceChildren(...a.events.map(ev => {
    const tr = document.createElement("tr");
    tr.append(cell(ev.name), cell(ev.capacity, "n"), cell(ev.claimed, "n"), cell(ev.checked_in, "n"));
    return tr;
  }));
  document.getElementById("total-claimed").textContent = a.claimed;
  document.getElementById("total-in").textContent = a.checked_in;
}

document.getElementById("checkin").addEventListener("submit", async event => {
  event.preventDefault();
  const input = document.getElementById("code");
  try {
    const { ticket } = await call("checkin", { method: "POST", body: JSON.stringify({ code: input.value }) });
    result.className = "ok";
    result.textContent = "Welcome! " + ticket.code + " (" + ticket.holder_email + ") is checked in to " + (ticket.event_name || ticket.event) + ".";
    input.value = "";
  } catch (e) {
    result.className = "error";
    result.textContent = e.message;
  }
  input.focus();
  showAttendance().catch(() => {});
});

async function start() {
  const res = await fetch("/_gnome/auth/me", { credentials: "same-origin", headers: { "Accept": "application/json" } });
  const me = res.ok ? await res.json() : null;
  const staff = !!(me && (me.roles || []).includes("staff"));
  document.getElementById("who").textContent = me ? "Signed in as " + me.email : "Not signed in";
  document.getElementById("signed-in").hidden = !me;
  document.getElementById("not-staff").hidden = staff;
  document.getElementById("desk").hidden = !staff;
  if (!staff) return;
  await showAttendance();
  setInterval(() => showAttendance().catch(e => { result.className = "error"; result.textContent = e.message; }), 5000);
}

start().catch(e => { result.className = "error"; result.textContent = e.message; });
