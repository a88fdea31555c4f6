// The video call's page: the camera through getUserMedia, the call through
// RTCPeerConnection, and the signalling (offer, answer, ICE candidates)
// through the actor over one WebSocket (ws/signal) that the platform's
// helper reconnects. The peer who was in the room first makes the offer.
"use strict";

const base = (location.pathname.match(/^\/experiments\/[^/]+\//) || ["/"])[0];
const $ = id => document.getElementById(id);

let room = "";         // the room joined, or ""
let local = null;      // the camera's stream
let pc = null;         // the call, while there is one
let iceServers = [];   // from actor.config: none by default (see the README)
// received counts the signalling messages that came from the other peer.
const received = { offer: 0, answer: 0, candidate: 0 };
window.received = received;

function log(text) {
  const li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + " " + text;
  $("log").appendChild(li);
}

function status(text) { $("status").textContent = text; }

const conn = gnome.live("signal", { json: true });
conn.on("open", info => {
  log(info.reconnected ? "signalling reconnected" : "signalling connected");
  // After a reconnection the actor has forgotten this connection's room.
  if (room) conn.send({ type: "join", room });
});
conn.on("reconnecting", info => log("signalling lost (" + info.code + "); again in " + info.delay + " ms"));
conn.on("close", info => {
  // Closed by this page (a full room) the status says why already.
  if (!info.byClient) status("Signalling closed" + (info.reason ? ": " + info.reason : "") + ". Reload the page to call again.");
  $("join-button").disabled = true;
  $("hangup").disabled = true;
});

// Each message is handled after the one before it is done: a candidate must
// not be added before the offer it belongs to has been taken.
let chain = Promise.resolve();
conn.on("message", msg => {
  chain = chain.then(() => handle(msg)).catch(e => {
    $("error").textContent = "The call failed: " + e.message;
    log("error: " + e.message);
  });
});

async function handle(msg) {
  switch (msg.type) {
    case "joined":
      log("joined room " + msg.room + " (" + msg.peers + (msg.peers === 1 ? " person)" : " people)"));
      status(msg.peers === 1 ? "In room " + msg.room + ", waiting for someone to join." : "In room " + msg.room + ", calling…");
      break;
    case "peer-joined":
      log("someone joined: sending an offer");
      status("Calling…");
      newCall();
      await pc.setLocalDescription(await pc.createOffer());
      conn.send({ type: "offer", sdp: pc.localDescription.sdp });
      break;
    case "offer":
      received.offer++;
      log("offer received: answering");
      newCall();
      await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      conn.send({ type: "answer", sdp: pc.localDescription.sdp });
      break;
    case "answer":
      received.answer++;
      log("answer received");
      if (pc) await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
      break;
    case "candidate":
      received.candidate++;
      if (pc && msg.candidate) await pc.addIceCandidate(msg.candidate);
      break;
    case "peer-left":
      log("the other person left");
      endCall();
      status("The other person left. Waiting in room " + room + " for someone to join.");
      break;
    case "full":
      status(msg.message);
      room = "";
      conn.close();
      break;
    case "left":
      log("left the room");
      break;
    case "error":
      $("error").textContent = msg.message;
      break;
  }
}

// newCall starts a fresh RTCPeerConnection with the camera's tracks.
function newCall() {
  endCall();
  pc = new RTCPeerConnection({ iceServers });
  const mine = pc;
  for (const track of local.getTracks()) pc.addTrack(track, local);
  pc.onicecandidate = ev => {
    if (ev.candidate) conn.send({ type: "candidate", candidate: ev.candidate.toJSON() });
  };
  pc.ontrack = ev => { $("remote").srcObject = ev.streams[0]; };
  pc.onconnectionstatechange = () => {
    if (pc !== mine) return;
    $("pc-state").textContent = pc.connectionState;
    if (pc.connectionState === "connected") status("In a call in room " + room + ".");
  };
}

function endCall() {
  if (pc) pc.close();
  pc = null;
  $("remote").srcObject = null;
  $("pc-state").textContent = "no call";
}

$("join").addEventListener("submit", async ev => {
  ev.preventDefault();
  $("error").textContent = "";
  const name = $("room").value.trim();
  try {
    if (!local) {
      local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      $("local").srcObject = local;
    }
  } catch (e) {
    $("error").textContent = "No camera or microphone: " + e.message;
    return;
  }
  room = name;
  $("join-button").disabled = true;
  $("hangup").disabled = false;
  conn.send({ type: "join", room });
});

$("hangup").addEventListener("click", () => {
  conn.send({ type: "leave" });
  endCall();
  room = "";
  status("Not in a room.");
  $("join-button").disabled = false;
  $("hangup").disabled = true;
});

fetch(base + "api/ice-servers", { headers: { "Accept": "application/json" } })
  .then(r => r.ok ? r.json() : { ice_servers: [] })
  .then(b => { iceServers = b.ice_servers || []; })
  .catch(() => {});
