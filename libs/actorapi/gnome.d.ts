// gnome.d.ts: the JavaScript API of a g.nome actor (docs/actors.md, section 9).
//
// A JavaScript actor is a script named by the manifest's actor.script. The
// platform runs it inside its own JavaScript runtime, a WebAssembly module in
// the same sandbox and under the same limits as any actor. The script's top
// level runs once when an instance starts: register routes and handlers
// there. Modules of the bundle load with require("./other.js") (CommonJS:
// module.exports, exports); there is no import syntax and no Node.js or
// browser API besides what this file declares (console.* writes to the
// experiment's logs; JSON, Math, Date, RegExp, Map, Set, Promise, typed
// arrays and the rest of ECMAScript 5.1 and most of ES2015+ are there).
//
// Every host operation is synchronous: it returns when the platform has
// answered. fetch() and a response's text()/json() return promises, as on the
// web, already settled when they return; handlers may be async functions.
// A failed operation throws a gnome.HostError with the platform's error code.
//
// Point an editor at this file (served at /_gnome/gnome.d.ts) with
//   /// <reference path="./gnome.d.ts" />
// at the top of the script.

declare namespace gnome {
  /** The experiment's slug. */
  const slug: string;
  /** The version of the bundle this instance runs. */
  const version: number;
  /** The manifest's actor.config ({} when it has none). */
  const config: { readonly [key: string]: any };

  // ---------------------------------------------------------------- callers

  interface Link {
    /** The study link's ID; kind is "single", "multi" or "personal". */
    id: string;
    kind: "single" | "multi" | "personal";
    /** A personal link's participant label. */
    label: string;
    /** The participant's run, which finishRun marks finished. */
    run: string;
    /** The recruiter's URL parameters (PROLIFIC_PID, workerId, ...). */
    params: { [name: string]: string };
  }

  /** Who sent a request or opened a connection, as the platform verified it. */
  interface Caller {
    kind: "user" | "experiment_user" | "demo" | "participant" | "anonymous";
    /** Stable within the experiment across visits; "" when anonymous. */
    id: string;
    /** The signed-in account's email; "" when anonymous. */
    email: string;
    roles: string[];
    anonymous: boolean;
    /** The study link a participant came through, if any. */
    link?: Link;
    hasRole(role: string): boolean;
  }

  // ---------------------------------------------------------------- HTTP

  /** One request for /experiments/{slug}/api/*. */
  interface Request {
    /** Upper case. */
    method: string;
    /** Below /experiments/{slug}/api, percent-decoded, starting with "/". */
    path: string;
    /** The query string without "?", still percent-encoded. */
    rawQuery: string;
    /** The query parsed: every value of each name. */
    query: { [name: string]: string[] };
    /** Request headers by canonical name (Content-Type), every value. */
    headers: { [name: string]: string[] };
    /** Values of the route pattern's {name} segments. */
    params: { [name: string]: string };
    caller: Caller;
    /** The platform's ID of the request, also in its logs. */
    requestId: string;
    /** The first value of a header (any case), or undefined. */
    header(name: string): string | undefined;
    /** A cookie of the visitor (not the platform's own), or undefined. */
    cookie(name: string): string | undefined;
    /** The body as UTF-8 text. */
    text(): string;
    /** The body parsed as JSON; throws a HostError "invalid_json" when it is not. */
    json(): any;
    /** The body's bytes. */
    bytes(): Uint8Array;
  }

  interface Cookie {
    name: string;
    value: string;
    /** "/" when empty. */
    path?: string;
    /** Seconds: 0 (default) for a session cookie, negative to delete it. */
    maxAge?: number;
    /** "Lax" (default), "Strict" or "None". */
    sameSite?: "Lax" | "Strict" | "None";
    secure?: boolean;
    /** Lets the page's scripts read it (it is HttpOnly otherwise). */
    script?: boolean;
  }

  /**
   * What a handler returns. A plain object is the response; `json` (any
   * value) and `body` (text or bytes) are mutually exclusive; status is 200
   * when absent. A string is a 200 text/plain answer; undefined is 204.
   */
  interface Response {
    status?: number;
    headers?: { [name: string]: string | string[] };
    json?: any;
    body?: string | Uint8Array | ArrayBuffer;
    cookies?: Cookie[];
  }

  type Result = Response | string | void;
  type Handler = (req: Request) => Result | Promise<Result>;

  /**
   * Routes method and pattern (as the Go SDK's Route: "/items/{id}",
   * "/files/{path...}", method "*" for any) to handler. A handler that
   * throws answers 500 with the platform's error shape, its message naming
   * the script's file and line; a HostError it throws keeps its code and
   * status. Either way the instance keeps serving.
   */
  function route(method: string, pattern: string, handler: Handler): void;

  /** The answer for a request no route matched (404 by default). */
  function notFound(handler: Handler): void;

  function json(status: number, value: any): Response;
  function text(status: number, text: string): Response;
  /** The platform's error shape: {"error": {"code", "message", "request_id"}}. */
  function error(status: number, code: string, message: string): Response;
  /** 303 See Other to location. */
  function redirect(location: string): Response;

  /** A host operation's refusal, or an error thrown to answer with a code. */
  class HostError extends Error {
    constructor(code: string, message: string);
    /** A code of the platform's catalogue, such as scope_forbidden. */
    code: string;
    /** The HTTP status of code (500 for a code the catalogue lacks). */
    status: number;
    /** The JSON pointer of the request field at fault, if any. */
    field?: string;
  }

  // ---------------------------------------------------------------- data

  /**
   * Documents are plain objects in MongoDB's Relaxed Extended JSON, as the
   * platform's data API speaks it: ObjectIds read as {"$oid": "..."}; a
   * Date written becomes a date, and a date read is a Date.
   */
  type Document = { [field: string]: any };

  interface FindOptions {
    sort?: Document;
    limit?: number;
    skip?: number;
    projection?: Document;
  }

  interface UpdateResult {
    matched: number;
    modified: number;
    /** The _id an upsert inserted. */
    upsertedId?: any;
  }

  /** Reads one collection: the experiment's own, or one its data_scope lists. */
  interface Reader {
    readonly name: string;
    readonly slug: string;
    find(filter?: Document, options?: FindOptions): Document[];
    /** null when nothing matches. */
    findOne(filter?: Document, options?: FindOptions): Document | null;
    count(filter?: Document): number;
    aggregate(pipeline: Document[]): Document[];
  }

  /** One of the experiment's own collections. */
  interface Collection extends Reader {
    /** Returns the new document's _id. */
    insertOne(doc: Document): any;
    insertMany(docs: Document[]): any[];
    updateOne(filter: Document, update: Document | Document[], options?: { upsert?: boolean }): UpdateResult;
    updateMany(filter: Document, update: Document | Document[], options?: { upsert?: boolean }): UpdateResult;
    /** Returns how many documents went. */
    deleteOne(filter: Document): number;
    deleteMany(filter: Document): number;
  }

  /** The experiment's own collection name (^[A-Za-z0-9_]{1,64}$). */
  function db(name: string): Collection;
  /** A collection of another experiment, read-only, listed in data_scope. */
  function dbFrom(slug: string, name: string): Reader;

  /**
   * The experiment's key-value store: keys of 1 to 128 characters from
   * A-Z a-z 0-9 _ . = -, values of at most 64 KiB.
   */
  const kv: {
    /** null when the key has no value. */
    get(key: string): { value: string; revision: number } | null;
    /** The value parsed as JSON, or null when the key has no value. */
    getJSON(key: string): any;
    /** Stores text, bytes (kept as bytes; get returns them as UTF-8 text) or, with putJSON, any JSON value; returns the new revision. */
    put(key: string, value: string | Uint8Array): number;
    putJSON(key: string, value: any): number;
    delete(key: string): void;
  };

  // ---------------------------------------------------------------- platform

  /** Lines in the experiment's logs. Arguments are joined as console.log joins them. */
  const log: {
    debug(...args: any[]): void;
    info(...args: any[]): void;
    warn(...args: any[]): void;
    error(...args: any[]): void;
  };

  /** An experiment secret set by its owner (write-only elsewhere); throws HostError "not_found" when unset. */
  function secret(name: string): string;

  interface FetchInit {
    /** GET when absent. */
    method?: string;
    headers?: { [name: string]: string | string[] };
    /** Text, bytes, or any other value sent as JSON (with Content-Type application/json unless set). */
    body?: string | Uint8Array | ArrayBuffer | object;
    /** Shortens actor.http.timeout_ms for this request. */
    timeoutMs?: number;
    /** "manual" hands back a 3xx response instead of following it. */
    redirect?: "follow" | "manual";
  }

  interface FetchResponse {
    status: number;
    /** status is 200 to 299. */
    ok: boolean;
    /** Where the response came from, after redirects. */
    url: string;
    headers: { [name: string]: string[] };
    header(name: string): string | undefined;
    text(): Promise<string>;
    json(): Promise<any>;
    arrayBuffer(): Promise<ArrayBuffer>;
  }

  /**
   * An outbound HTTP request to a host the manifest's actor.http.allow
   * lists. A 4xx or 5xx answer resolves like any other; a refusal of the
   * platform (a host not allowed, a timeout, a response over the limit)
   * rejects with a HostError (http_forbidden_host, http_failed, ...).
   */
  function fetch(url: string, init?: FetchInit): Promise<FetchResponse>;

  /** Marks the study-link run of the request's caller finished (HostError "bad_request" for a caller without a link). */
  function finishRun(req: Request): { completionUrl: string; finishedAt: Date; already: boolean };

  // ---------------------------------------------------------------- live channels

  /** A WebSocket or event stream a browser holds with the experiment. */
  interface Conn {
    id: string;
    kind: "websocket" | "sse";
    /** The WebSocket's path below /experiments/{slug}/ws ("/" for an event stream). */
    path: string;
    /** Its query string, still percent-encoded. */
    query: string;
    /** The room an event stream follows. */
    room: string;
    caller: Caller;
    requestId: string;
    /** Text as is; bytes as a binary frame; anything else as JSON text. */
    send(data: string | Uint8Array | ArrayBuffer | object): void;
    join(room: string): void;
    leave(room: string): void;
    close(code?: number, reason?: string): void;
  }

  interface Message {
    /** True for a binary frame. */
    binary: boolean;
    /** The frame's bytes. */
    data: Uint8Array;
    /** The frame as UTF-8 text. */
    text(): string;
    /** The frame parsed as JSON (throws a SyntaxError when it is not). */
    json(): any;
  }

  interface Close {
    code: number;
    reason: string;
    by: "client" | "actor" | "platform";
  }

  /** A connection opens; throw gnome.refuse(...) (or any error: 403) to refuse it. */
  function onOpen(handler: (conn: Conn) => void | Promise<void>): void;
  function onMessage(handler: (conn: Conn, msg: Message) => void | Promise<void>): void;
  /** Called exactly once for every connection that opened. */
  function onClose(handler: (conn: Conn, close: Close) => void | Promise<void>): void;
  /** An error for onOpen to throw: refuses the connection with code (a catalogue code such as "forbidden") and message. */
  function refuse(code: string, message: string): HostError;

  function send(connId: string, data: string | Uint8Array | ArrayBuffer | object): void;
  function join(connId: string, room: string): void;
  function leave(connId: string, room: string): void;
  /** To every member of room on every edge, but the connection except names (the sender, say). */
  function publish(room: string, data: string | Uint8Array | ArrayBuffer | object, options?: { except?: string }): void;
  function closeConn(connId: string, code?: number, reason?: string): void;

  // ---------------------------------------------------------------- timers

  interface Timer {
    /** As after() returned it; "" for a schedule of the manifest. */
    id: string;
    /** The schedule's name, or the name given to after(). */
    name: string;
    schedule: boolean;
    /** The payload given to after(), or null. */
    payload: any;
    scheduledAt: Date;
    firedAt: Date;
  }

  /** Fires onTimer once after delayMs (at least 1 s; at most 30 days); returns the timer's ID. */
  function after(delayMs: number, name: string, payload?: any): string;
  /** True when the timer had not fired yet. */
  function cancelTimer(id: string): boolean;
  /** Timers set with after() and the manifest's actor.schedule. */
  function onTimer(handler: (timer: Timer) => void | Promise<void>): void;
}

/** Lines in the experiment's logs: log and info at info level, debug, warn, error. */
declare const console: {
  log(...args: any[]): void;
  info(...args: any[]): void;
  debug(...args: any[]): void;
  warn(...args: any[]): void;
  error(...args: any[]): void;
};

/** Loads another script of the bundle, relative to this one (CommonJS). */
declare function require(path: string): any;
declare const module: { exports: any };
declare const exports: any;
