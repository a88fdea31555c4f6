// Event Zero's start page: who is signed in (the platform's /_gnome/auth/me
// on this origin), the events, and the visitor's tickets (the actor).
"use strict";

const root = (location.pathname.match(/^\/experiments\/[^/]+\//) || ["/"])[0];
const api = root + "api/";
const statusLine = document.getElementById("status");
let me = null;

async function call(path, options) {
  const res = await fetch(api + path, { credentials: "same-origin", headers: { "Accept": "application/json" }, ...options });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || res.statusText);
  return body;
}

function say(text, ok) {
  statusLine.textContent = text;
  statusLine.className = ok ? "ok" : "error";
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function who() {
  const res = await fetch("/_gnome/auth/me", { credentials: "same-origin", headers: { "Accept": "application/json" } });
  me = res.ok ? await res.json() : null;
  const staff = !!(me && (me.roles || []).includes("staff"));
  document.getElementById("who").textContent = me ? "Signed in as " + me.email : "Not signed in";
  document.getElementById("signed-out").hidden = !!me;
  document.getElementById("signed-in").hidden = !me;
  document.getElementById("demo").hidden = !!me;
  document.getElementById("staff-link").hidden = !staff;
  document.getElementById("mine").hidden = !me;
}

async function showEvents() {
  const { events } = await call("events");
  const box = document.getElementById("events");
  if (events.length === 0) {
    box.replaceChildren(el("p", "meta", "No events yet."));
    return;
  }
  box.replaceChildren(...events.map(ev => {
    const card = el("div", "card");
    const text = el("div");
    text.append(el("h3", "", ev.name), el("div", "meta", when(ev.starts_at) + (ev.venue ? " · " + ev.venue : "")),
      el("div", "meta", ev.remaining > 0 ? ev.remaining + " of " + ev.capacity + " places left" : "Full"));
    const button = el("button", "", me ? "Get a ticket" : "Sign in to get a ticket");
    button.disabled = ev.remaining === 0;
    button.addEventListener("click", () => claim(ev));
    card.append(text, button);
    return card;
  }));
}

async function showTickets() {
  if (!me) return;
  const { tickets } = await call("tickets");
  const box = document.getElementById("tickets");
  if (tickets.length === 0) {
    box.replaceChildren(el("p", "meta", "No tickets yet."));
    return;
  }
  box.replaceChildren(...tickets.map(t => {
    const card = el("div", "card");
    const text = el("div");
    text.append(el("h3", "", t.event_name || t.event), el("div", "meta", t.starts_at ? when(t.starts_at) + (t.venue ? " · " + t.venue : "") : ""));
    const state = t.checked_in ? el("div", "in", "Checked in " + when(t.checked_in_at)) : el("div", "code", t.code);
    card.append(text, state);
    return card;
  }));
}

async function claim(ev) {
  if (!me) {
    location.href = "/_gnome/auth/login?next=" + encodeURIComponent(root);
    return;
  }
  try {
    const { ticket } = await call("events/" + encodeURIComponent(ev.id) + "/tickets", { method: "POST" });
    say("Your ticket to " + ev.name + ": " + ticket.code, true);
  } catch (e) {
    say("No ticket: " + e.message, false);
  }
  await refresh();
}

async function refresh() {
  try {
    await showEvents();
    await showTickets();
  } catch (e) {
    say("Cannot reach the event desk: " + e.message, false);
  }
}

who().then(refresh, e => say(e.message, false));
