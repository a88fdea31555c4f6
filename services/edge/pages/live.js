/*
 * g.nome live channels: the browser helper, served at /_gnome/live.js on every experiment's origin.
 * Plain JavaScript (ES2017), no build step, nothing else to load. It defines one global, `gnome`.
 *
 *   <script src="/_gnome/live.js"></script>
 *   const conn = gnome.live("chat", { json: true });   // wss://{origin}/experiments/{slug}/ws/chat
 *   conn.on("open", () => conn.send({ type: "hello" })); // after every (re)connection
 *   conn.on("message", msg => show(msg));               // parsed JSON with json: true, else the text
 *   conn.send({ text: "hi" });                           // objects go as JSON; queued while reconnecting
 *
 * gnome.live(path, opts) opens a WebSocket to /experiments/{slug}/ws/{path}; the slug is the page's own
 * (location.pathname /experiments/{slug}/...), ws: or wss: as the page's http: or https:. `path` may hold
 * a query string. opts:
 *   json         true: messages are parsed as JSON (one that is not is dropped with a console warning)
 *   query        an object of query parameters to add
 *   reconnect    false: never reconnect (default true)
 *   minDelay     first reconnection delay, ms (500); it doubles up to maxDelay (30000), each delay
 *                with up to half of it added at random (jitter)
 *   maxQueue     sends kept while not connected (100; beyond it the oldest is dropped)
 *   refusedAfter connections that fail before ever opening before giving up (3)
 * The object returned has:
 *   send(data)   a string (text), an object (JSON), or an ArrayBuffer, typed array or Blob (binary);
 *                returns true when handed to the socket, false when queued or after close()
 *   on(event, fn) / off(event, fn)
 *     "open"          fn({reconnected})              connected (again)
 *     "message"       fn(data, event)                text, parsed JSON (opts.json), or an ArrayBuffer
 *     "reconnecting"  fn({code, reason, attempt, delay}) the socket closed; the next try is in `delay` ms
 *     "close"         fn({code, reason, refused, byClient}) for good: no reconnection follows
 *   close(code, reason)  closes for good (code 1000 by default)
 *   state        "connecting", "open", "reconnecting" or "closed"
 * It reconnects after a close unless the close code is 1000 (normal: the actor or the page ended it) or
 * 4900 (the experiment stopped taking connections), or the connection was refused: a browser does not
 * show a refused upgrade's HTTP status, so refusedAfter tries in a row that never opened count as a
 * refusal (close with refused: true). Once it has been open, it keeps trying (the edge or the actor may
 * be restarting). Other codes: 1009 a message too big, 1013 the actor unavailable too long, 4901 a reader
 * too slow, 4902 the session ended; an actor's own are 3000 to 4899.
 *
 * gnome.events(room, opts) follows a room through an event stream (EventSource) at
 * /experiments/{slug}/events/{room}, with the same on/off, close() and state (and opts json, query,
 * minDelay, maxDelay, refusedAfter); it receives only. Binary messages arrive as ArrayBuffers.
 */
(function (global) {
  "use strict";

  var EVENTS = ["open", "message", "close", "reconnecting"];

  function slugOf() {
    var m = /^\/experiments\/([^/]+)(\/|$)/.exec(global.location.pathname);
    if (!m) throw new Error("gnome: this page is not an experiment's (/experiments/{slug}/...)");
    return m[1];
  }

  function withQuery(url, query) {
    if (!query) return url;
    var parts = [];
    Object.keys(query).forEach(function (k) {
      if (query[k] !== undefined && query[k] !== null) {
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(String(query[k])));
      }
    });
    if (!parts.length) return url;
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + parts.join("&");
  }

  function option(opts, name, dflt) {
    return opts && opts[name] !== undefined ? opts[name] : dflt;
  }

  // Emitter is the on/off/emit shared by both kinds of connection.
  function Emitter() {
    this.handlers = {};
    var self = this;
    EVENTS.forEach(function (e) { self.handlers[e] = []; });
  }
  Emitter.prototype.on = function (event, fn) {
    if (!this.handlers[event]) throw new Error("gnome: unknown event " + JSON.stringify(event) + " (" + EVENTS.join(", ") + ")");
    if (typeof fn !== "function") throw new TypeError("gnome: on(" + JSON.stringify(event) + ") takes a function");
    this.handlers[event].push(fn);
    return this;
  };
  Emitter.prototype.off = function (event, fn) {
    var list = this.handlers[event] || [];
    var i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
    return this;
  };
  Emitter.prototype.emit = function (event, a, b) {
    // A copy: a handler may remove itself.
    this.handlers[event].slice().forEach(function (fn) {
      try {
        fn(a, b);
      } catch (e) {
        // One broken handler must not stop the connection or the others.
        setTimeout(function () { throw e; });
      }
    });
  };

  // Backoff is the delay before reconnecting: exponential from minDelay to
  // maxDelay, each with up to half of it again at random, so that clients
  // dropped together do not all come back at the same moment.
  function Backoff(opts) {
    this.min = Math.max(50, option(opts, "minDelay", 500));
    this.max = Math.max(this.min, option(opts, "maxDelay", 30000));
    this.attempt = 0;
  }
  Backoff.prototype.next = function () {
    var d = Math.min(this.max, this.min * Math.pow(2, this.attempt));
    this.attempt++;
    return Math.min(this.max, Math.round(d * (1 + Math.random() * 0.5)));
  };

  function parse(text, json) {
    if (!json) return { ok: true, value: text };
    try {
      return { ok: true, value: JSON.parse(text) };
    } catch (e) {
      console.warn("gnome: a message that is not JSON was dropped:", String(text).slice(0, 200));
      return { ok: false };
    }
  }

  function base64ToBuffer(s) {
    var bin = global.atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  // Live is a WebSocket that reconnects.
  function Live(path, opts) {
    Emitter.call(this);
    opts = opts || {};
    var proto = global.location.protocol === "https:" ? "wss:" : "ws:";
    this.url = withQuery(proto + "//" + global.location.host + "/experiments/" + encodeURIComponent(slugOf()) +
      "/ws/" + String(path || "").replace(/^\/+/, ""), opts.query);
    this.json = !!opts.json;
    this.reconnect = option(opts, "reconnect", true) !== false;
    this.maxQueue = Math.max(0, option(opts, "maxQueue", 100));
    this.refusedAfter = Math.max(1, option(opts, "refusedAfter", 3));
    this.backoff = new Backoff(opts);
    this.queue = [];
    this.ws = null;
    this.timer = null;
    this.everOpen = false;
    this.failedOpens = 0; // tries in a row that closed before opening
    this.openedAt = 0;
    this.state = "connecting";
    var self = this;
    this.onOnline = function () {
      // Back online: try at once rather than at the end of a long delay.
      if (self.state === "reconnecting" && self.timer) {
        clearTimeout(self.timer);
        self.timer = null;
        self.connect();
      }
    };
    if (global.addEventListener) global.addEventListener("online", this.onOnline);
    this.connect();
  }
  Live.prototype = Object.create(Emitter.prototype);
  Live.prototype.constructor = Live;

  Live.prototype.connect = function () {
    var self = this;
    var ws;
    try {
      ws = new global.WebSocket(this.url);
    } catch (e) {
      // A malformed URL: no try will do better.
      this.finish({ code: 1006, reason: String(e && e.message || e), refused: true, byClient: false });
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    var opened = false;
    ws.onopen = function () {
      if (self.ws !== ws) return;
      opened = true;
      var reconnected = self.everOpen;
      self.everOpen = true;
      self.failedOpens = 0;
      self.openedAt = Date.now();
      self.state = "open";
      // What the page sent meanwhile goes first, in order; an open handler
      // that sends (a hello, say) then comes after it.
      var queued = self.queue;
      self.queue = [];
      queued.forEach(function (d) { ws.send(d); });
      self.emit("open", { reconnected: reconnected });
    };
    ws.onmessage = function (ev) {
      if (self.ws !== ws) return;
      if (typeof ev.data === "string") {
        var p = parse(ev.data, self.json);
        if (p.ok) self.emit("message", p.value, ev);
      } else {
        self.emit("message", ev.data, ev);
      }
    };
    ws.onclose = function (ev) {
      if (self.ws !== ws) return;
      self.ws = null;
      var info = { code: ev.code, reason: ev.reason || "" };
      if (!opened) self.failedOpens++;
      // A connection that lasted resets the backoff; one that closes at
      // once keeps it growing, so that a server refusing right after the
      // open is not hammered.
      if (opened && Date.now() - self.openedAt > 10000) self.backoff.attempt = 0;
      if (ev.code === 1000 || ev.code === 4900 || !self.reconnect) {
        self.finish({ code: ev.code, reason: info.reason, refused: false, byClient: false });
        return;
      }
      if (!self.everOpen && self.failedOpens >= self.refusedAfter) {
        self.finish({ code: ev.code, reason: info.reason || "the connection was refused", refused: true, byClient: false });
        return;
      }
      var delay = self.backoff.next();
      self.state = "reconnecting";
      self.timer = setTimeout(function () {
        self.timer = null;
        if (self.state === "reconnecting") self.connect();
      }, delay);
      self.emit("reconnecting", { code: ev.code, reason: info.reason, attempt: self.backoff.attempt, delay: delay });
    };
  };

  Live.prototype.send = function (data) {
    if (this.state === "closed") return false;
    if (data === undefined || data === null) throw new TypeError("gnome: send() takes a string, an object, or bytes");
    var isBytes = data instanceof ArrayBuffer || ArrayBuffer.isView(data) || (global.Blob && data instanceof global.Blob);
    if (typeof data !== "string" && !isBytes) data = JSON.stringify(data);
    if (this.ws && this.state === "open" && this.ws.readyState === 1) {
      this.ws.send(data);
      return true;
    }
    if (this.maxQueue === 0) return false;
    this.queue.push(data);
    while (this.queue.length > this.maxQueue) this.queue.shift();
    return false;
  };

  Live.prototype.close = function (code, reason) {
    if (this.state === "closed") return;
    var ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(code || 1000, reason || "");
      } catch (e) {
        ws.close(1000); // a code the browser does not allow (only 1000 and 3000-4999 are)
      }
    }
    this.finish({ code: code || 1000, reason: reason || "", refused: false, byClient: true });
  };

  // finish ends the connection for good and tells the page once.
  Live.prototype.finish = function (info) {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
    if (global.removeEventListener) global.removeEventListener("online", this.onOnline);
    this.emit("close", info);
  };

  // Events follows a room through an EventSource. The browser reconnects
  // an EventSource by itself after a network error; after an HTTP error
  // (a refusal) it gives up, and so does it after the edge's "close"
  // event, which this helper then turns into its own reconnection or end.
  function Events(room, opts) {
    Emitter.call(this);
    opts = opts || {};
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(String(room))) {
      throw new Error("gnome: a room's name is 1 to 64 letters, digits, '_' or '-'");
    }
    this.url = withQuery("/experiments/" + encodeURIComponent(slugOf()) + "/events/" + room, opts.query);
    this.json = !!opts.json;
    this.reconnect = option(opts, "reconnect", true) !== false;
    this.refusedAfter = Math.max(1, option(opts, "refusedAfter", 3));
    this.backoff = new Backoff(opts);
    this.es = null;
    this.timer = null;
    this.everOpen = false;
    this.failedOpens = 0;
    this.state = "connecting";
    this.connect();
  }
  Events.prototype = Object.create(Emitter.prototype);
  Events.prototype.constructor = Events;

  Events.prototype.connect = function () {
    var self = this;
    var es = new global.EventSource(this.url, { withCredentials: true });
    this.es = es;
    var opened = false;
    es.onopen = function () {
      if (self.es !== es) return;
      var reconnected = self.everOpen;
      opened = self.everOpen = true;
      self.failedOpens = 0;
      self.backoff.attempt = 0;
      self.state = "open";
      self.emit("open", { reconnected: reconnected });
    };
    es.onmessage = function (ev) {
      if (self.es !== es) return;
      var p = parse(ev.data, self.json);
      if (p.ok) self.emit("message", p.value, ev);
    };
    es.addEventListener("binary", function (ev) {
      if (self.es !== es) return;
      var buf;
      try {
        buf = base64ToBuffer(ev.data);
      } catch (e) {
        return;
      }
      self.emit("message", buf, ev);
    });
    // The edge's last word on a stream it closes: {"code", "reason"}.
    es.addEventListener("close", function (ev) {
      if (self.es !== es) return;
      var info = { code: 1006, reason: "" };
      try {
        var c = JSON.parse(ev.data);
        info.code = c.code || 1006;
        info.reason = c.reason || "";
      } catch (e) {
        // keep the defaults
      }
      es.close();
      self.es = null;
      self.retry(info, true);
    });
    es.onerror = function () {
      if (self.es !== es) return;
      if (es.readyState === 0) {
        // The browser reconnects on its own.
        if (self.state !== "reconnecting") {
          self.state = "reconnecting";
          self.emit("reconnecting", { code: 1006, reason: "", attempt: 1, delay: 2000 });
        }
        return;
      }
      // Closed for good: refused (an HTTP error), or a stream the browser
      // will not take up again.
      es.close();
      self.es = null;
      if (!opened) self.failedOpens++;
      self.retry({ code: 1006, reason: "" }, false);
    };
  };

  Events.prototype.retry = function (info, fromEdge) {
    if (this.state === "closed") return;
    if ((fromEdge && (info.code === 1000 || info.code === 4900)) || !this.reconnect) {
      this.finish({ code: info.code, reason: info.reason, refused: false, byClient: false });
      return;
    }
    if (!this.everOpen && this.failedOpens >= this.refusedAfter) {
      this.finish({ code: info.code, reason: info.reason || "the connection was refused", refused: true, byClient: false });
      return;
    }
    var self = this;
    var delay = this.backoff.next();
    this.state = "reconnecting";
    this.timer = setTimeout(function () {
      self.timer = null;
      if (self.state === "reconnecting") self.connect();
    }, delay);
    this.emit("reconnecting", { code: info.code, reason: info.reason, attempt: this.backoff.attempt, delay: delay });
  };

  Events.prototype.close = function () {
    if (this.state === "closed") return;
    if (this.es) this.es.close();
    this.es = null;
    this.finish({ code: 1000, reason: "", refused: false, byClient: true });
  };

  Events.prototype.finish = function (info) {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.emit("close", info);
  };

  var gnome = global.gnome || {};
  gnome.live = function (path, opts) { return new Live(path, opts); };
  gnome.events = function (room, opts) { return new Events(room, opts); };
  global.gnome = gnome;
})(typeof window !== "undefined" ? window : this);
