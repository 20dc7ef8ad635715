// pushd.js: the JavaScript client for pushd's WebSocket protocol v1
// (docs/protocol.md). One ES module with no dependencies, for browsers and
// Node 20+. It hides reconnects: subscriptions are restored after every
// reconnect, durable topics resume from the last offset seen, commands sent
// while offline wait in a bounded queue, and a silent server is detected
// with the protocol's ping command. docs/client-js.md is the manual.

export const VERSION = "0.1.0";

// ---------------------------------------------------------------- errors

/** PushdError is every error this module rejects with or emits. `code` is
 * pushd's error code for a server error reply ("forbidden", "invalid_topic",
 * …, docs/protocol.md §4) or one of this module's own codes. */
export class PushdError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "PushdError";
    this.code = code;
  }
}

/** TimeoutError: a command got no reply within its timeout. */
export class TimeoutError extends PushdError {
  constructor(message) {
    super("timeout", message);
    this.name = "TimeoutError";
  }
}

/** DisconnectedError: the connection dropped while a command was in flight.
 * The command may or may not have taken effect, so it is not resent. */
export class DisconnectedError extends PushdError {
  constructor(closeCode, reason) {
    super("disconnected", `connection lost before the reply (close ${closeCode}${reason ? " " + reason : ""})`);
    this.name = "DisconnectedError";
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** QueueFullError: the offline queue already holds `maxQueue` commands. */
export class QueueFullError extends PushdError {
  constructor(max) {
    super("queue_full", `offline queue full (${max} commands)`);
    this.name = "QueueFullError";
  }
}

/** ClosedError: the client is closed (close(), or a terminal close code). */
export class ClosedError extends PushdError {
  constructor(message = "client closed", options) {
    super("closed", message, options);
    this.name = "ClosedError";
  }
}

/** ConnectionError is emitted as an "error" event about the connection
 * itself. code "terminal_close": the server closed with a code that forbids
 * reconnecting (the client stops). code "connect_failed": several attempts
 * in a row failed before pushd's welcome, which is how a browser sees an
 * HTTP 401/403 (the client keeps trying). */
export class ConnectionError extends PushdError {
  constructor(code, message, { closeCode, reason = "", attempts = 0 } = {}) {
    super(code, message);
    this.name = "ConnectionError";
    this.closeCode = closeCode;
    this.reason = reason;
    this.attempts = attempts;
  }
}

// ---------------------------------------------------------------- policy

/** isTerminalClose reports whether close code `code` means "do not
 * reconnect" (docs/protocol.md §6): the client broke the protocol, or the
 * range 4500–4999 (token or permission problems). */
export function isTerminalClose(code) {
  return [1002, 1003, 1007, 1008, 1009, 1010].includes(code) || (code >= 4500 && code <= 4999);
}

/** reconnectDelay returns the wait before reconnect attempt `attempt`
 * (0-based): exponential backoff with full jitter, a uniformly random time
 * in [0, min(max, min·2^attempt)). The randomness is what keeps thousands of
 * clients of a restarted node from reconnecting in lockstep. */
export function reconnectDelay(attempt, min, max, random = Math.random) {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return random() * ceiling;
}

const TOPIC = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/; // docs/protocol.md §5
const MAX_TOPIC_BYTES = 128;
const TOPICS_PER_COMMAND = 100; // the server's --max-topics-per-command default
const DRAIN_SPREAD_MS = 5000; // 1001: reconnect after a random 0–5 s
const RETRY_HINT = /\bretry_ms=(\d+)/;
const RETRYABLE = new Set(["internal", "rate_limited", "timeout"]);

function checkTopic(topic) {
  if (typeof topic !== "string" || topic.length > MAX_TOPIC_BYTES || !TOPIC.test(topic)) {
    throw new PushdError("invalid_topic", `invalid topic ${JSON.stringify(topic)}: dot-separated tokens of A-Z a-z 0-9 _ -, at most ${MAX_TOPIC_BYTES} bytes`);
  }
}

const DEFAULTS = {
  token: undefined,
  getToken: undefined,
  WebSocket: undefined,
  minReconnectDelay: 500,
  maxReconnectDelay: 30000,
  stableAfter: 60000,
  connectTimeout: 10000,
  heartbeatTimeout: 10000,
  timeout: 10000,
  maxQueue: 100,
  maxMessageSize: 65536,
  failuresBeforeError: 3,
  random: Math.random,
  clock: undefined,
};

const defaultClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h),
};

// ---------------------------------------------------------------- events

const EMIT = Symbol("emit");
const REMOVE = Symbol("remove");
const DELIVER = Symbol("deliver");
const END = Symbol("end");

/** Emitter is the small event interface shared by PushdClient and
 * Subscription. A listener that throws does not stop the others; its error
 * is reported to the runtime (reportError in browsers, console.error in
 * Node). */
class Emitter {
  #listeners = new Map();

  /** on adds a listener and returns a function that removes it. */
  on(event, fn) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** off removes a listener added with on. */
  off(event, fn) {
    this.#listeners.get(event)?.delete(fn);
  }

  /** once adds a listener that runs at most once. */
  once(event, fn) {
    const off = this.on(event, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  [EMIT](event, ...args) {
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) return false;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(e);
        else console.error("pushd: a listener threw", e);
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------- subscription

/** Subscription is one interest in a topic, returned by
 * PushdClient.subscribe. Events: "subscribed" (after every successful
 * subscribe, the first and each restore), "recovered" (ok, reason) after a
 * resume, "error" (a PushdError; the subscription has ended). */
export class Subscription extends Emitter {
  #client;
  #handler;
  #state; // the client's per-topic state, shared by every Subscription of the topic
  #active = true;

  constructor(client, state, handler) {
    super();
    this.#client = client;
    this.#state = state;
    this.#handler = handler;
  }

  /** topic is the subscribed topic name. */
  get topic() {
    return this.#state.topic;
  }

  /** active reports whether the subscription still delivers messages. */
  get active() {
    return this.#active;
  }

  /** position is the offset and epoch of the last message delivered on a
   * durable topic, or null. Store it to resume in a later page load with
   * subscribe(topic, fn, { since: position }). */
  get position() {
    const s = this.#state;
    return s.offset == null ? null : { offset: s.offset, epoch: s.epoch };
  }

  /** unsubscribe stops delivery at once. The server-side subscription ends
   * when the last Subscription of the topic is gone. Safe to call twice. */
  unsubscribe() {
    if (!this.#active) return;
    this.#active = false;
    this.#client[REMOVE](this, this.#state);
  }

  [DELIVER](msg) {
    if (!this.#active) return;
    try {
      this.#handler?.(msg);
    } catch (e) {
      if (typeof globalThis.reportError === "function") globalThis.reportError(e);
      else console.error("pushd: a message handler threw", e);
    }
  }

  // Called by the client when the server refused the topic.
  [END](err) {
    this.#active = false;
    this[EMIT]("error", err);
  }
}

// ---------------------------------------------------------------- client

const PENDING = 0; // needs a subscribe on the current connection
const SUBSCRIBING = 1; // subscribe sent, no reply yet
const LIVE = 2; // subscribed on the current connection

function noop() {}

function detach(ws) {
  // Handlers become no-ops rather than null: the ws package throws an
  // "error" event that has no listener.
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = noop;
}

function decodeBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** toMessage turns a push (or a history entry) into what handlers get. */
function toMessage(m) {
  const msg = { topic: m.topic, data: m.data, seq: m.seq };
  if (m.offset !== undefined) msg.offset = m.offset;
  if (m.epoch !== undefined) msg.epoch = m.epoch;
  if (m.encoding === "base64" && typeof m.data === "string") msg.data = decodeBase64(m.data);
  else if (m.encoding !== undefined) msg.encoding = m.encoding; // a later encoding: passed through
  return msg;
}

/** overLimit reports whether s takes more than limit bytes in UTF-8. Only
 * strings that could be over it are encoded to find out. */
function overLimit(s, limit) {
  return s.length * 3 > limit && new TextEncoder().encode(s).length > limit;
}

/** PushdClient is a connection to pushd that reconnects by itself. Events:
 * "state" (state, info), "error" (PushdError). All methods are called from
 * the one JavaScript thread; none blocks. */
export class PushdClient extends Emitter {
  // Static after construction.
  #url;
  #o;
  #WS;
  #clock;

  // Connection.
  #state = "disconnected";
  #wanted = false; // connect() was called and neither close() nor a terminal close followed
  #gen = 0; // bumped by close(), so a getToken that resolves late is ignored
  #ws = null;
  #session = null;
  #pingInterval = 25; // seconds, from the welcome
  #welcomedAt = 0;
  #lastRecv = 0;
  #attempt = 0; // backoff exponent
  #failures = 0; // consecutive attempts that ended before a welcome
  #resyncAttempt = 0;
  #timers = { reconnect: null, connect: null, heartbeat: null, resync: null };

  // Commands.
  #nextId = 1;
  #inflight = new Map(); // id → entry, in send order (replies come in that order)
  #queue = []; // entries waiting for a connection

  // Subscriptions.
  #topics = new Map(); // topic → state {topic, subs, status, offset, epoch}
  #unsubs = new Set(); // topics to unsubscribe on the current connection
  #syncQueued = false;

  /** constructor takes the WebSocket URL (ws://host:8080/ws) and options
   * (docs/client-js.md). It does not connect: call connect(). */
  constructor(url, options = {}) {
    super();
    this.#url = String(url);
    this.#o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) this.#o[k] = v;
    this.#WS = this.#o.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WS !== "function") {
      throw new PushdError("no_websocket", "no WebSocket implementation: pass { WebSocket } (for example from the ws package) on this runtime");
    }
    const o = this.#o;
    if (!(o.minReconnectDelay > 0) || !(o.maxReconnectDelay >= o.minReconnectDelay)) {
      throw new PushdError("bad_option", "want 0 < minReconnectDelay ≤ maxReconnectDelay");
    }
    this.#clock = { ...defaultClock, ...o.clock };
  }

  /** state is "connecting", "connected", "disconnected" (waiting to
   * reconnect, or connect() not called yet) or "closed" (stopped: close()
   * or a terminal close code). */
  get state() {
    return this.#state;
  }

  /** session is the server's session ID of the current connection, or null. */
  get session() {
    return this.#state === "connected" ? this.#session : null;
  }

  /** connect starts connecting, and keeps the client connected until
   * close(). Calling it again while active does nothing; after close() or a
   * terminal close it starts over, restoring every subscription. */
  connect() {
    if (this.#wanted) return;
    this.#wanted = true;
    this.#attempt = 0;
    this.#failures = 0;
    this.#open();
  }

  /** close disconnects and stops reconnecting. Queued and in-flight commands
   * reject with ClosedError; no timer or socket handler is left behind.
   * Subscriptions stay registered, with their positions, for a later
   * connect(). */
  close() {
    if (this.#state === "closed" && !this.#wanted) return;
    this.#stop(new ClosedError(), {});
  }

  /** subscribe registers interest in `topic` and returns its Subscription.
   * `handler` gets every message. It works in any state: the subscribe is
   * sent now if connected, else on connect, and again after every
   * reconnect. `options.since` ({offset, epoch}) resumes a durable topic
   * from a stored position. Throws PushdError "invalid_topic". */
  subscribe(topic, handler, options = {}) {
    checkTopic(topic);
    let st = this.#topics.get(topic);
    if (!st) {
      const since = options.since;
      st = { topic, subs: new Set(), status: PENDING, offset: since?.offset ?? null, epoch: since?.epoch ?? null };
      this.#topics.set(topic, st);
      // Unsubscribed and subscribed again before the unsubscribe went out:
      // the server keeps the subscription, and the subscribe is idempotent.
      this.#unsubs.delete(topic);
      this.#queueSync();
    }
    const sub = new Subscription(this, st, handler);
    st.subs.add(sub);
    if (st.status === LIVE) queueMicrotask(() => sub.active && sub[EMIT]("subscribed", {}));
    return sub;
  }

  /** publish sends `data` (any JSON value) to `topic` and resolves with
   * pushd's ok reply (with offset and epoch on a durable topic). It needs
   * --client-publish and a token that allows the topic; otherwise it
   * rejects with PushdError "forbidden". */
  publish(topic, data) {
    try {
      checkTopic(topic);
    } catch (e) {
      return Promise.reject(e);
    }
    if (data === undefined) return Promise.reject(new PushdError("bad_request", "publish needs data (null is fine)"));
    return this.#request({ type: "publish", topic, data });
  }

  /** history reads stored messages of a durable topic, after `since`
   * ({offset, epoch}) when given, at most `limit`. */
  async history(topic, { since, limit } = {}) {
    checkTopic(topic);
    const reply = await this.#request({ type: "history", topic, since, limit });
    return (reply.messages ?? []).map(toMessage);
  }

  // ------------------------------------------------------------ connection

  #setState(state, info = {}) {
    if (this.#state === state) return;
    this.#state = state;
    this[EMIT]("state", state, info);
  }

  #after(ms, fn) {
    return this.#clock.setTimeout(fn, ms);
  }

  #clear(name) {
    if (this.#timers[name] !== null) {
      this.#clock.clearTimeout(this.#timers[name]);
      this.#timers[name] = null;
    }
  }

  #clearTimers() {
    for (const name of Object.keys(this.#timers)) this.#clear(name);
  }

  async #open() {
    this.#timers.reconnect = null;
    const gen = this.#gen;
    this.#setState("connecting", { attempt: this.#attempt });
    if (gen !== this.#gen) return; // a state listener called close()
    let token = this.#o.token;
    if (this.#o.getToken) {
      try {
        token = await this.#o.getToken();
      } catch (e) {
        if (gen !== this.#gen) return;
        this[EMIT]("error", new PushdError("token_error", "getToken failed: " + (e?.message ?? e), { cause: e }));
        this.#failures++;
        this.#scheduleReconnect(undefined, "");
        return;
      }
      if (gen !== this.#gen) return; // close() ran while the token was fetched
    }
    let ws;
    try {
      // Browsers cannot set headers, so the token travels as a subprotocol
      // next to "pushd.v1", which the server selects (docs/security.md §3.6).
      ws = token ? new this.#WS(this.#url, ["pushd.v1", "pushd.token." + token]) : new this.#WS(this.#url);
    } catch (e) {
      // A malformed URL: no retry can fix it.
      const err = new ConnectionError("bad_url", `cannot open ${this.#url}: ${e?.message ?? e}`);
      this.#stop(err, {});
      this[EMIT]("error", err);
      return;
    }
    this.#ws = ws;
    ws.onmessage = (ev) => this.#onFrame(ws, ev.data);
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason ?? "");
    ws.onerror = noop; // the close event that follows says what happened
    this.#timers.connect = this.#after(this.#o.connectTimeout, () => {
      this.#timers.connect = null;
      this.#abort(ws, 4000, "no welcome in time");
    });
  }

  /** abort closes ws locally and handles it as closed at once, without
   * waiting for a close handshake that a dead server never finishes. */
  #abort(ws, code, reason) {
    if (ws !== this.#ws) return;
    detach(ws);
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
    this.#onClose(ws, code, reason);
  }

  #onClose(ws, code, reason) {
    if (ws !== this.#ws) return;
    detach(ws);
    this.#ws = null;
    const welcomed = this.#state === "connected";
    const lived = welcomed ? this.#clock.now() - this.#welcomedAt : 0;
    this.#clear("connect");
    this.#clear("heartbeat");
    this.#clear("resync");
    this.#dropConnection(new DisconnectedError(code, reason));
    if (isTerminalClose(code)) {
      const err = new ConnectionError("terminal_close", `pushd closed the connection with ${code}${reason ? " (" + reason + ")" : ""}; not reconnecting`, { closeCode: code, reason });
      this.#stop(err, { code, reason });
      this[EMIT]("error", err);
      return;
    }
    if (welcomed) {
      this.#failures = 0;
      if (lived >= this.#o.stableAfter) this.#attempt = 0;
    } else {
      this.#failures++;
      if (this.#failures >= this.#o.failuresBeforeError) {
        this[EMIT]("error", new ConnectionError("connect_failed", `${this.#failures} connection attempts in a row failed before the welcome (close ${code}); still trying. Check the URL and the token: browsers report an HTTP 401 or 403 only as a failed connection`, { closeCode: code, reason, attempts: this.#failures }));
      }
    }
    this.#scheduleReconnect(code, reason);
  }

  /** dropConnection forgets what belonged to the connection that ended:
   * in-flight commands fail with err, every topic needs a new subscribe. */
  #dropConnection(err) {
    for (const entry of this.#inflight.values()) this.#settle(entry, null, err);
    this.#inflight.clear();
    for (const st of this.#topics.values()) st.status = PENDING;
    this.#unsubs.clear();
    this.#session = null;
  }

  #scheduleReconnect(code, reason) {
    let delay;
    const hint = RETRY_HINT.exec(reason);
    if (hint) delay = this.#o.random() * Number(hint[1]);
    else if (code === 1001) delay = this.#o.random() * DRAIN_SPREAD_MS;
    else delay = reconnectDelay(this.#attempt++, this.#o.minReconnectDelay, this.#o.maxReconnectDelay, this.#o.random);
    this.#setState("disconnected", { code, reason, delay });
    if (!this.#wanted) return; // a state listener called close()
    this.#timers.reconnect = this.#after(delay, () => this.#open());
  }

  /** stop ends everything: no socket, no timer, no queued command. */
  #stop(err, info) {
    this.#wanted = false;
    this.#gen++;
    this.#clearTimers();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this.#dropConnection(err);
    for (const entry of this.#queue.splice(0)) this.#settle(entry, null, err);
    this.#setState("closed", info);
  }

  #onFrame(ws, data) {
    if (ws !== this.#ws) return;
    this.#lastRecv = this.#clock.now();
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      this[EMIT]("error", new PushdError("bad_frame", "pushd sent a frame that is not JSON"));
      return;
    }
    switch (m?.type) {
      case "welcome":
        this.#onWelcome(m);
        break;
      case "message":
        this.#onPush(m);
        break;
      case "ok":
      case "error":
        this.#onReply(m);
        break;
      // Unknown types are ignored (docs/protocol.md §11).
    }
  }

  #onWelcome(m) {
    if (this.#state === "connected") return;
    this.#clear("connect");
    this.#session = m.session ?? null;
    this.#pingInterval = m.ping_interval > 0 ? m.ping_interval : 25;
    this.#welcomedAt = this.#clock.now();
    this.#failures = 0;
    this.#resyncAttempt = 0;
    this.#setState("connected", { session: this.#session });
    if (this.#state !== "connected") return; // a state listener closed the client
    // Restore subscriptions before anything queued, then flush the queue.
    this.#sync();
    for (const entry of this.#queue.splice(0)) this.#send(entry);
    this.#armHeartbeat();
  }

  // ------------------------------------------------------------ heartbeat

  /** armHeartbeat implements the dead-server check of docs/protocol.md §1:
   * after ping_interval + heartbeatTimeout with nothing received, send a
   * ping command; no reply within heartbeatTimeout means the server is gone.
   * Browser JavaScript never sees WebSocket ping frames, so this is the
   * only heartbeat it can observe. */
  #armHeartbeat() {
    this.#clear("heartbeat");
    const idle = this.#pingInterval * 1000 + this.#o.heartbeatTimeout;
    const wait = Math.max(0, this.#lastRecv + idle - this.#clock.now());
    this.#timers.heartbeat = this.#after(wait, () => {
      this.#timers.heartbeat = null;
      if (this.#clock.now() - this.#lastRecv < idle) {
        this.#armHeartbeat();
        return;
      }
      const ws = this.#ws;
      this.#send({
        body: { type: "ping" },
        timeout: this.#o.heartbeatTimeout,
        onReply: () => this.#armHeartbeat(),
        onFail: (err) => {
          if (err instanceof TimeoutError) this.#abort(ws, 4000, "ping timeout");
        },
      });
    });
  }

  // ------------------------------------------------------------ commands

  /** request sends a user command now, or queues it while disconnected. */
  #request(body) {
    if (this.#state === "closed") return Promise.reject(new ClosedError());
    return new Promise((resolve, reject) => {
      const entry = {
        body,
        onReply: (m) => (m.type === "ok" ? resolve(m) : reject(new PushdError(m.error?.code ?? "unknown", m.error?.message ?? "error reply"))),
        onFail: reject,
      };
      entry.json = JSON.stringify(body);
      if (overLimit(entry.json, this.#o.maxMessageSize - 32)) { // 32: room for the id
        reject(new PushdError("too_large", `command over maxMessageSize (${this.#o.maxMessageSize} bytes); pushd would close the connection with 1009`));
        return;
      }
      entry.timer = this.#after(this.#o.timeout, () => {
        entry.timer = null;
        const i = this.#queue.indexOf(entry);
        if (i >= 0) this.#queue.splice(i, 1);
        this.#settle(entry, null, new TimeoutError(`no reply to ${body.type} within ${this.#o.timeout} ms`));
      });
      if (this.#state === "connected") this.#send(entry);
      else if (this.#queue.length >= this.#o.maxQueue) this.#settle(entry, null, new QueueFullError(this.#o.maxQueue));
      else this.#queue.push(entry);
    });
  }

  /** send writes entry as a command on the open connection. entry: body
   * (the command without id), optional json (body encoded), onReply,
   * onFail, and either timer (a user command's overall timeout) or timeout
   * (ms, started now). */
  #send(entry) {
    if (entry.done) return;
    const id = this.#nextId++;
    const json = entry.json ?? JSON.stringify(entry.body);
    if (entry.timeout !== undefined) {
      entry.timer = this.#after(entry.timeout, () => {
        entry.timer = null;
        this.#settle(entry, null, new TimeoutError(`no reply to ${entry.body.type} within ${entry.timeout} ms`));
      });
    }
    // A timed-out entry stays in #inflight until its reply (or the
    // connection's end): id-less errors are matched by position.
    this.#inflight.set(id, entry);
    this.#ws.send(`{"id":${id},${json.slice(1)}`);
  }

  /** settle finishes entry once: with reply m, or with err. */
  #settle(entry, m, err) {
    if (entry.done) return;
    entry.done = true;
    if (entry.timer) this.#clock.clearTimeout(entry.timer);
    entry.timer = null;
    if (err) entry.onFail(err);
    else entry.onReply(m);
  }

  #onReply(m) {
    let id = m.id;
    if (id === undefined) {
      // pushd writes replies in command order, and an error it could not
      // tie to an id (rate_limited) answers the oldest command.
      if (m.type !== "error") return;
      id = this.#inflight.keys().next().value;
      if (id === undefined) {
        this[EMIT]("error", new PushdError(m.error?.code ?? "unknown", m.error?.message ?? "error"));
        return;
      }
    }
    const entry = this.#inflight.get(id);
    if (!entry) return;
    this.#inflight.delete(id);
    this.#settle(entry, m, null);
  }

  // ------------------------------------------------------------ subscriptions

  #queueSync() {
    if (this.#syncQueued || this.#state !== "connected") return;
    this.#syncQueued = true;
    // Batched in a microtask: subscribing to 50 topics in a loop sends one
    // command, not 50 (each costs one token of the server's rate limit).
    queueMicrotask(() => {
      this.#syncQueued = false;
      this.#sync();
    });
  }

  /** sync brings the server's subscriptions in line with #topics. */
  #sync() {
    if (this.#state !== "connected") return;
    const unsubs = [...this.#unsubs];
    this.#unsubs.clear();
    for (let i = 0; i < unsubs.length; i += TOPICS_PER_COMMAND) {
      this.#send({ body: { type: "unsubscribe", topics: unsubs.slice(i, i + TOPICS_PER_COMMAND) }, timeout: this.#o.timeout, onReply: noop, onFail: noop });
    }
    const pending = [...this.#topics.values()].filter((st) => st.status === PENDING);
    const batch = [];
    for (const st of pending) {
      if (st.solo) this.#subscribe([st]);
      else batch.push(st);
    }
    for (let i = 0; i < batch.length; i += TOPICS_PER_COMMAND) this.#subscribe(batch.slice(i, i + TOPICS_PER_COMMAND));
  }

  #subscribe(states) {
    const body = { type: "subscribe", topics: states.map((st) => st.topic) };
    const since = {};
    for (const st of states) {
      if (st.offset != null) since[st.topic] = { offset: st.offset, epoch: st.epoch };
    }
    if (Object.keys(since).length > 0) body.since = since;
    for (const st of states) st.status = SUBSCRIBING;
    this.#send({
      body,
      timeout: this.#o.timeout,
      onReply: (m) => this.#onSubscribed(states, m),
      onFail: (err) => {
        if (err instanceof TimeoutError) this.#retrySubscribe(states);
      },
    });
  }

  #onSubscribed(states, m) {
    const current = states.filter((st) => this.#topics.get(st.topic) === st && st.status === SUBSCRIBING);
    if (m.type === "error") {
      const code = m.error?.code ?? "unknown";
      if (RETRYABLE.has(code)) {
        this.#retrySubscribe(current);
      } else if (current.length > 1) {
        // subscribe is all or nothing: find the refused topic(s) one by one.
        for (const st of current) {
          st.status = PENDING;
          st.solo = true;
        }
        this.#queueSync();
      } else {
        const err = new PushdError(code, m.error?.message ?? "subscribe refused");
        for (const st of current) {
          this.#topics.delete(st.topic);
          for (const sub of st.subs) sub[END](err);
          st.subs.clear();
        }
      }
      return;
    }
    this.#resyncAttempt = 0;
    for (const st of current) {
      st.status = LIVE;
      st.solo = false;
      const ok = m.recovered?.[st.topic];
      const reason = m.reasons?.[st.topic];
      if (ok === false) {
        // A new history, or a gap: the next push starts a new position.
        st.offset = null;
        st.epoch = null;
      }
      for (const sub of [...st.subs]) {
        sub[EMIT]("subscribed", ok === undefined ? {} : { recovered: ok, reason });
        if (ok !== undefined) sub[EMIT]("recovered", ok, reason);
      }
    }
  }

  #retrySubscribe(states) {
    for (const st of states) if (this.#topics.get(st.topic) === st) st.status = PENDING;
    if (this.#timers.resync !== null || this.#state !== "connected") return;
    const delay = reconnectDelay(this.#resyncAttempt++, this.#o.minReconnectDelay, this.#o.maxReconnectDelay, this.#o.random);
    this.#timers.resync = this.#after(delay, () => {
      this.#timers.resync = null;
      this.#sync();
    });
  }

  #onPush(m) {
    const st = this.#topics.get(m.topic);
    if (!st) return; // unsubscribed; the server has not seen it yet
    if (typeof m.offset === "number") {
      // Defence in depth: the server replays without overlap, but a push at
      // or before the last delivered offset of the same history is dropped.
      // A different epoch is a new history and starts over.
      if (st.offset != null && m.epoch === st.epoch && m.offset <= st.offset) return;
      st.offset = m.offset;
      st.epoch = m.epoch ?? null;
    }
    const msg = toMessage(m);
    for (const sub of [...st.subs]) sub[DELIVER](msg);
  }

  [REMOVE](sub, st) {
    st.subs.delete(sub);
    if (st.subs.size > 0 || this.#topics.get(st.topic) !== st) return;
    this.#topics.delete(st.topic);
    if (this.#state === "connected" && st.status !== PENDING) {
      this.#unsubs.add(st.topic);
      this.#queueSync();
    }
  }
}
