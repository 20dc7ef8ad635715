// Protocol edge cases that a healthy pushd rarely produces on demand:
// retry hints in close reasons, 4500 closes, duplicate and re-epoched pushes,
// refused resumes, id-less errors, all-or-nothing subscribe refusals. A
// scripted WebSocket server (the ws package's, on loopback) plays pushd's
// side of docs/protocol.md exactly as written there.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket, { WebSocketServer } from "ws";

import { PushdClient, PushdError, ConnectionError } from "../pushd.js";
import { sleep, waitFor, nextEvent, countingClock } from "./helpers.mjs";

const cleanup = [];
after(() => cleanup.forEach((f) => f()));

/** script starts a server that calls onConn(sock, n) for its n-th
 * connection (0-based); every command a client sends is recorded in
 * sock.commands and passed to sock.onCommand. */
async function script(onConn) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  const conns = [];
  wss.on("connection", (sock) => {
    sock.commands = [];
    sock.onCommand = () => {};
    sock.json = (obj) => sock.send(JSON.stringify(obj));
    sock.on("message", (data) => {
      const cmd = JSON.parse(String(data));
      sock.commands.push(cmd);
      sock.onCommand(cmd);
    });
    conns.push(sock);
    onConn(sock, conns.length - 1);
  });
  cleanup.push(() => wss.close());
  return { url: `ws://127.0.0.1:${wss.address().port}/ws`, conns };
}

const welcome = (sock) => sock.json({ type: "welcome", session: "S" + Math.random().toString(36).slice(2), ping_interval: 25 });

function newClient(url, options = {}) {
  const c = new PushdClient(url, { WebSocket, minReconnectDelay: 10, maxReconnectDelay: 20, ...options });
  cleanup.push(() => c.close());
  return c;
}

test("a retry_ms hint in the close reason sets the delay; 4500 is terminal", async () => {
  const s = await script((sock, n) => {
    welcome(sock);
    if (n === 0) sock.close(4000, "slow consumer retry_ms=2000");
    else sock.close(4500, "token invalid");
  });
  const clock = countingClock();
  const c = newClient(s.url, { random: () => 0.25, clock });
  const states = [];
  c.on("state", (st, info) => states.push([st, info]));
  const terminal = nextEvent(c, "error");
  c.connect();
  const [err] = await terminal;
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, "terminal_close");
  assert.equal(err.closeCode, 4500);
  const disc = states.find(([st]) => st === "disconnected")[1];
  assert.equal(disc.code, 4000);
  assert.equal(disc.delay, 500, "0.25 × retry_ms, not the 10–20 ms backoff");
  assert.deepEqual(states.at(-1), ["closed", { code: 4500, reason: "token invalid" }]);
  await sleep(100);
  assert.equal(s.conns.length, 2, "no third connection");
  assert.equal(clock.live.size, 0);
});

test("duplicates are dropped, a new epoch is a new history, recovered:false reaches the app", async () => {
  const s = await script((sock, n) => {
    welcome(sock);
    sock.onCommand = (cmd) => {
      if (cmd.type !== "subscribe") return;
      const push = (offset, epoch, data) => sock.json({ type: "message", topic: "d.t", seq: offset, data, offset, epoch });
      if (n === 0) {
        sock.json({ type: "ok", id: cmd.id });
        push(1, "E1", "a");
        push(2, "E1", "b");
        push(3, "E1", "c");
        push(2, "E1", "dup b");
        push(3, "E1", "dup c");
        push(4, "E1", "d");
        push(1, "E2", "new history");
        push(1, "E2", "dup new history");
        setTimeout(() => sock.terminate(), 20);
      } else {
        sock.json({ type: "ok", id: cmd.id, recovered: { "d.t": false }, reasons: { "d.t": "epoch_changed" } });
        push(7, "E3", "after the refused resume");
      }
    };
  });
  const c = newClient(s.url);
  const got = [];
  const sub = c.subscribe("d.t", (m) => got.push(m));
  const recovered = nextEvent(sub, "recovered");
  c.connect();
  assert.deepEqual(await recovered, [false, "epoch_changed"]);
  assert.deepEqual(s.conns[1].commands[0].since, { "d.t": { offset: 1, epoch: "E2" } }, "resume from the last delivered position");
  assert.equal(s.conns[0].commands[0].since, undefined, "nothing to resume the first time");
  await waitFor("the push after the refused resume", () => got.length === 6);
  assert.deepEqual(got.map((m) => m.data), ["a", "b", "c", "d", "new history", "after the refused resume"]);
  assert.deepEqual(sub.position, { offset: 7, epoch: "E3" });
});

test("an error without id answers the oldest command", async () => {
  const s = await script((sock) => {
    welcome(sock);
    let n = 0;
    sock.onCommand = (cmd) => {
      if (cmd.type !== "publish") return;
      if (n++ === 0) sock.json({ type: "error", error: { code: "rate_limited", message: "too many commands; slow down" } });
      else sock.json({ type: "ok", id: cmd.id });
    };
  });
  const c = newClient(s.url);
  c.connect();
  await nextEvent(c, "state", (st) => st === "connected");
  const first = c.publish("x", 1);
  const second = c.publish("x", 2);
  await assert.rejects(first, (e) => e instanceof PushdError && e.code === "rate_limited");
  assert.equal((await second).type, "ok");
});

test("a refused multi-topic subscribe is split to find the refused topic", async () => {
  const s = await script((sock) => {
    welcome(sock);
    sock.onCommand = (cmd) => {
      if (cmd.type !== "subscribe") return;
      if (cmd.topics.includes("secret.x")) sock.json({ type: "error", id: cmd.id, error: { code: "forbidden", message: "not allowed" } });
      else sock.json({ type: "ok", id: cmd.id });
    };
  });
  const c = newClient(s.url);
  const a = c.subscribe("a", () => {});
  const secret = c.subscribe("secret.x", () => {});
  const b = c.subscribe("b", () => {});
  const refused = nextEvent(secret, "error");
  const ok = Promise.all([nextEvent(a, "subscribed"), nextEvent(b, "subscribed")]);
  c.connect();
  const [err] = await refused;
  await ok;
  assert.equal(err.code, "forbidden");
  assert.equal(secret.active, false);
  assert.equal(a.active && b.active, true);
  const sent = s.conns[0].commands.map((cmd) => cmd.topics);
  assert.deepEqual(sent[0], ["a", "secret.x", "b"]);
  assert.deepEqual(sent.slice(1).sort(), [["a"], ["b"], ["secret.x"]]);
});

test("an internal subscribe error is retried; subscribes in one tick share a command", async () => {
  const s = await script((sock) => {
    welcome(sock);
    let n = 0;
    sock.onCommand = (cmd) => {
      if (cmd.type !== "subscribe") return;
      if (n++ === 0) sock.json({ type: "error", id: cmd.id, error: { code: "internal", message: "upstream subscribe failed" } });
      else sock.json({ type: "ok", id: cmd.id });
    };
  });
  const c = newClient(s.url);
  c.connect();
  await nextEvent(c, "state", (st) => st === "connected");
  const subs = ["t.1", "t.2", "t.3"].map((t) => c.subscribe(t, () => {}));
  const errors = [];
  subs.forEach((sub) => sub.on("error", (e) => errors.push(e)));
  await Promise.all(subs.map((sub) => nextEvent(sub, "subscribed")));
  assert.deepEqual(s.conns[0].commands.map((cmd) => cmd.topics), [["t.1", "t.2", "t.3"], ["t.1", "t.2", "t.3"]]);
  assert.equal(errors.length, 0);
});

test("base64 data arrives as bytes; unknown message types are ignored", async () => {
  const s = await script((sock) => {
    welcome(sock);
    sock.onCommand = (cmd) => {
      sock.json({ type: "ok", id: cmd.id });
      sock.json({ type: "something_new", topic: "raw.t" });
      sock.json({ type: "message", topic: "raw.t", seq: 1, data: "AP8Q", encoding: "base64" });
    };
  });
  const c = newClient(s.url);
  const got = [];
  c.subscribe("raw.t", (m) => got.push(m));
  c.connect();
  await waitFor("the push", () => got.length === 1);
  assert.ok(got[0].data instanceof Uint8Array);
  assert.deepEqual([...got[0].data], [0x00, 0xff, 0x10]);
});

test("no welcome within connectTimeout: abort and retry", async () => {
  const s = await script((sock, n) => {
    if (n > 0) welcome(sock); // the first connection stays silent
  });
  const c = newClient(s.url, { connectTimeout: 150 });
  const disc = nextEvent(c, "state", (st) => st === "disconnected");
  c.connect();
  const [, info] = await disc;
  assert.equal(info.code, 4000);
  assert.equal(info.reason, "no welcome in time");
  await nextEvent(c, "state", (st) => st === "connected");
  assert.equal(s.conns.length, 2);
});

test("close() from a state listener stops the reconnect it interrupts", async () => {
  const s = await script((sock) => {
    welcome(sock);
    sock.close(4000, "slow consumer");
  });
  const clock = countingClock();
  const c = newClient(s.url, { clock });
  c.on("state", (st) => st === "disconnected" && c.close());
  c.connect();
  await nextEvent(c, "state", (st) => st === "closed");
  await sleep(100);
  assert.equal(s.conns.length, 1);
  assert.equal(clock.live.size, 0);
  assert.equal(c.state, "closed");
});

test("options left undefined keep their defaults", async () => {
  const c = newClient("ws://127.0.0.1:1/ws", { random: undefined, minReconnectDelay: undefined, maxReconnectDelay: undefined });
  const disc = nextEvent(c, "state", (st) => st === "disconnected");
  c.connect();
  const [, info] = await disc;
  c.close();
  assert.ok(Number.isFinite(info.delay) && info.delay >= 0 && info.delay < 500, `first delay ${info.delay} within the default 500 ms`);
  assert.throws(() => new PushdClient("ws://x/ws", { WebSocket, minReconnectDelay: 0 }), (e) => e.code === "bad_option");
  if (globalThis.WebSocket === undefined) {
    // Node 20: no global WebSocket, and none given.
    assert.throws(() => new PushdClient("ws://x/ws"), (e) => e instanceof PushdError && e.code === "no_websocket");
  }
});
