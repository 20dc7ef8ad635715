// pushd.js against a real pushd binary (PUSHD_BIN), over loopback, in Node
// with the ws package as the WebSocket. Run by cmd/pushd/web_test.go.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";

import {
  PushdClient, PushdError, TimeoutError, QueueFullError, ClosedError, ConnectionError, DisconnectedError,
  reconnectDelay, isTerminalClose,
} from "../pushd.js";
import { Pushd, Proxy, pushdHas, signJWT, sleep, waitFor, nextEvent, countingClock, seededRandom } from "./helpers.mjs";

const clients = [];
const servers = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.kill()));
});

/** newClient makes a client with fast test timings, closed after the file. */
function newClient(url, options = {}) {
  const c = new PushdClient(url, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 200, ...options });
  clients.push(c);
  return c;
}

async function startPushd(args = []) {
  const p = await Pushd.start(args);
  servers.push(p);
  return p;
}

/** collect subscribes and returns the array its messages land in. */
function collect(client, topic, options) {
  const got = [];
  const sub = client.subscribe(topic, (m) => got.push(m), options);
  got.sub = sub;
  return got;
}

const connected = (c) => nextEvent(c, "state", (s) => s === "connected");

test("subscribe before connect, receive in order, unsubscribe", async () => {
  const p = await startPushd();
  const c = newClient(p.wsURL);
  const a = collect(c, "ticker.BTC");
  const a2 = collect(c, "ticker.BTC"); // a second interest in the same topic
  const b = collect(c, "news");
  const subscribed = Promise.all([nextEvent(a.sub, "subscribed"), nextEvent(a2.sub, "subscribed"), nextEvent(b.sub, "subscribed")]);
  c.connect();
  await subscribed;
  assert.equal(c.state, "connected");
  assert.match(c.session, /^\w{22}$/);
  assert.equal(await p.metric("pushd_subscriptions"), 2, "two topics, one server subscription each");

  for (let i = 0; i < 20; i++) {
    await p.publish("ticker.BTC", { price: 97000 + i });
    await p.publish("news", `headline ${i}`);
  }
  await waitFor("40 messages", () => a.length === 20 && b.length === 20);
  assert.deepEqual(a.map((m) => m.data.price), Array.from({ length: 20 }, (_, i) => 97000 + i));
  assert.deepEqual(a2.map((m) => m.data.price), a.map((m) => m.data.price));
  assert.deepEqual(b.map((m) => m.data), Array.from({ length: 20 }, (_, i) => `headline ${i}`));
  assert.deepEqual(a.map((m) => m.seq), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(a[0].topic, "ticker.BTC");
  assert.equal(a[0].offset, undefined, "not a durable topic");

  // Dropping one of two interests keeps the server subscription.
  a2.sub.unsubscribe();
  await p.publish("ticker.BTC", { price: 1 });
  await waitFor("the push after a2 left", () => a.length === 21);
  assert.equal(a2.length, 20);
  assert.equal(await p.metric("pushd_subscriptions"), 2);
  // Dropping the last one unsubscribes on the server.
  a.sub.unsubscribe();
  await waitFor("pushd_subscriptions = 1", async () => (await p.metric("pushd_subscriptions")) === 1);
  await p.publish("ticker.BTC", { price: 2 });
  await p.publish("news", "after");
  await waitFor("the news push", () => b.length === 21);
  assert.equal(a.length, 21, "no delivery after unsubscribe");
  assert.equal(a.sub.active, false);
  c.close();
});

test("invalid topics throw before anything is sent", async () => {
  const c = newClient("ws://127.0.0.1:1/ws");
  for (const bad of ["", "a..b", ".a", "a.", "a b", "a>", "x".repeat(129), 42]) {
    assert.throws(() => c.subscribe(bad, () => {}), (e) => e instanceof PushdError && e.code === "invalid_topic", String(bad));
  }
  await assert.rejects(c.publish("a b", 1), (e) => e.code === "invalid_topic");
  await assert.rejects(c.publish("ok", undefined), (e) => e.code === "bad_request");
});

test("publish: ok with --client-publish, forbidden without, too_large locally", async () => {
  const open = await startPushd(["--client-publish"]);
  const c = newClient(open.wsURL);
  const got = collect(c, "chat.room1");
  const ready = nextEvent(got.sub, "subscribed");
  // Queued before connect, sent after the welcome and after the subscribe.
  const early = c.publish("chat.room1", { text: "queued" });
  c.connect();
  await ready;
  const reply = await early;
  assert.equal(reply.type, "ok");
  assert.equal(typeof reply.id, "number");
  assert.deepEqual(await c.publish("chat.room1", { text: "hi" }).then((r) => r.type), "ok");
  await waitFor("both messages", () => got.length === 2);
  assert.deepEqual(got.map((m) => m.data.text), ["queued", "hi"]);

  await assert.rejects(c.publish("chat.room1", "x".repeat(70 << 10)), (e) => e instanceof PushdError && e.code === "too_large");
  assert.equal(c.state, "connected", "an oversized command is refused locally, not sent");

  const closed = await startPushd();
  const d = newClient(closed.wsURL);
  d.connect();
  await connected(d);
  await assert.rejects(d.publish("chat.room1", 1), (e) => e instanceof PushdError && e.code === "forbidden");
  c.close();
  d.close();
});

test("offline queue is bounded and its commands time out", async () => {
  const c = newClient("ws://127.0.0.1:1/ws", { maxQueue: 2, timeout: 150 });
  const p1 = c.publish("a", 1);
  const p2 = c.publish("a", 2);
  await assert.rejects(c.publish("a", 3), (e) => e instanceof QueueFullError && e.code === "queue_full");
  const t0 = Date.now();
  await assert.rejects(p1, (e) => e instanceof TimeoutError && e.code === "timeout");
  await assert.rejects(p2, TimeoutError);
  assert.ok(Date.now() - t0 >= 100, "the timeout ran");
  // The queue has room again, and close() rejects what is left.
  const p4 = c.publish("a", 4);
  c.close();
  await assert.rejects(p4, (e) => e instanceof ClosedError && e.code === "closed");
  await assert.rejects(c.publish("a", 5), ClosedError);
});

test("reconnects after pushd is restarted and restores subscriptions", async () => {
  const p = await startPushd(["--client-publish"]);
  const c = newClient(p.wsURL);
  const states = [];
  c.on("state", (s, info) => states.push([s, info]));
  const got = collect(c, "live.t");
  let subscribedCount = 0;
  got.sub.on("subscribed", () => subscribedCount++);
  const first = nextEvent(got.sub, "subscribed");
  c.connect();
  await first;
  const session1 = c.session;
  await p.publish("live.t", 1);
  await waitFor("message 1", () => got.length === 1);

  const again = nextEvent(got.sub, "subscribed");
  await p.restart();
  // A publish while pushd is down waits in the queue and goes out on reconnect.
  const queued = c.publish("live.t", "from the queue");
  await again;
  assert.notEqual(c.session, session1, "a reconnect is a new session");
  assert.equal(subscribedCount, 2);
  assert.equal((await queued).type, "ok");
  await p.publish("live.t", 2);
  await waitFor("two more messages", () => got.length === 3);
  assert.deepEqual(got.map((m) => m.data), [1, "from the queue", 2]);

  const closeInfo = states.find(([s]) => s === "disconnected")[1];
  assert.equal(closeInfo.code, 1006, "a killed server ends the connection without a close frame");
  assert.ok(closeInfo.delay >= 0 && closeInfo.delay < 200);
  const seq = states.map(([s]) => s);
  assert.deepEqual(seq.slice(0, 4), ["connecting", "connected", "disconnected", "connecting"]);
  assert.equal(seq.at(-1), "connected");
  c.close();
});

test("a drain (1001) reconnects after a random 0–5 s delay", async () => {
  const p = await startPushd();
  const c = newClient(p.wsURL, { random: () => 0.05 });
  const got = collect(c, "drain.t");
  const first = nextEvent(got.sub, "subscribed");
  c.connect();
  await first;
  const disc = nextEvent(c, "state", (s) => s === "disconnected");
  await p.kill("SIGTERM");
  const [, info] = await disc;
  assert.equal(info.code, 1001);
  assert.equal(info.delay, 250, "0.05 × 5000 ms");
  const again = nextEvent(got.sub, "subscribed", () => true, 15000);
  await p.start();
  await again;
  await p.publish("drain.t", "back");
  await waitFor("the push after the drain", () => got.length === 1);
  c.close();
});

test("unsubscribe while disconnected and subscribe while disconnected", async () => {
  const p = await startPushd();
  const c = newClient(p.wsURL);
  const a = collect(c, "off.a");
  const b = collect(c, "off.b");
  b.sub.unsubscribe(); // before connect: never sent
  const ready = nextEvent(a.sub, "subscribed");
  c.connect();
  await ready;
  assert.equal(await p.metric("pushd_subscriptions"), 1);

  await p.kill();
  await nextEvent(c, "state", (s) => s === "disconnected");
  a.sub.unsubscribe(); // while down
  const d = collect(c, "off.d"); // while down
  const back = nextEvent(d.sub, "subscribed", () => true, 15000);
  await p.start();
  await back;
  assert.equal(await p.metric("pushd_subscriptions"), 1, "only off.d is restored");
  await p.publish("off.a", "gone");
  await p.publish("off.d", "here");
  await waitFor("off.d", () => d.length === 1);
  assert.equal(a.length, 0);
  assert.equal(b.length, 0);
  c.close();
});

test("getToken is called before every connect; token expiry (4002) reconnects with a fresh one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pushd-jwt-"));
  const secret = "s".repeat(32) + "-test-secret";
  writeFileSync(join(dir, "k1"), secret);
  const p = await startPushd(["--jwt-secret-files", join(dir, "k1"), "--jwt-leeway", "0s", "--jwt-default-subscribe", "jwt.>"]);
  let calls = 0;
  const c = newClient(p.wsURL, {
    getToken: async () => {
      calls++;
      // The first token expires in 2 s; later ones last a minute.
      const exp = Math.floor(Date.now() / 1000) + (calls === 1 ? 2 : 60);
      return signJWT(secret, { sub: "42", exp }, "k1");
    },
  });
  const got = collect(c, "jwt.t");
  const sessions = [];
  c.on("state", (s) => s === "connected" && sessions.push(c.session));
  const closes = [];
  c.on("state", (s, info) => s === "disconnected" && closes.push(info.code));
  c.connect();
  await nextEvent(got.sub, "subscribed");
  assert.equal(calls, 1);
  await nextEvent(got.sub, "subscribed", () => true, 10000); // after the 4002 reconnect
  assert.deepEqual(closes, [4002]);
  assert.equal(calls, 2, "a new token for the new connection");
  assert.equal(sessions.length, 2);
  await p.publish("jwt.t", "fresh");
  await waitFor("the push on the new connection", () => got.length === 1);
  c.close();
});

test("a rejected handshake (401) keeps retrying and reports connect_failed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pushd-jwt-"));
  const secret = "t".repeat(40);
  writeFileSync(join(dir, "k1"), secret);
  const p = await startPushd(["--jwt-secret-files", join(dir, "k1")]);
  let good = false;
  const c = newClient(p.wsURL, {
    failuresBeforeError: 3,
    getToken: () => (good ? signJWT(secret, { sub: "7", exp: Math.floor(Date.now() / 1000) + 60 }, "k1") : "not-a-jwt"),
  });
  const errors = [];
  c.on("error", (e) => errors.push(e));
  const reported = nextEvent(c, "error", (e) => e.code === "connect_failed");
  c.connect();
  const [err] = await reported;
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.attempts, 3);
  assert.equal(err.closeCode, 1006, "a browser sees the 401 only as a failed connection");
  assert.notEqual(c.state, "closed", "it keeps trying");
  good = true; // the backend issues a valid token again
  await connected(c);
  assert.ok(errors.every((e) => e.code === "connect_failed"));
  c.close();
});

test("a terminal close code (1009) stops reconnecting and leaves no timer", async () => {
  const p = await startPushd(["--client-publish"]);
  let opened = 0;
  class CountingWS extends WebSocket {
    constructor(...args) {
      super(...args);
      opened++;
    }
  }
  const clock = countingClock();
  const c = newClient(p.wsURL, { WebSocket: CountingWS, clock, maxMessageSize: Infinity });
  collect(c, "big.t");
  c.connect();
  await connected(c);
  const failed = nextEvent(c, "error");
  const closedState = nextEvent(c, "state", (s) => s === "closed");
  // 70 KiB is over pushd's 64 KiB --max-message: it closes with 1009.
  const big = c.publish("big.t", "x".repeat(70 << 10));
  await assert.rejects(big, (e) => e instanceof DisconnectedError && e.closeCode === 1009);
  const [err] = await failed;
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, "terminal_close");
  assert.equal(err.closeCode, 1009);
  const [, info] = await closedState;
  assert.equal(info.code, 1009);
  await sleep(500); // many times the 20–200 ms backoff
  assert.equal(opened, 1, "no reconnect after a terminal close");
  assert.equal(c.state, "closed");
  assert.equal(clock.live.size, 0, "no timer left running");
  await assert.rejects(c.publish("big.t", 1), ClosedError);
});

test("close() leaves no timer, and connect() afterwards restores subscriptions", async () => {
  const p = await startPushd();
  const clock = countingClock();
  const c = newClient(p.wsURL, { clock });
  const got = collect(c, "again.t");
  c.connect();
  await nextEvent(got.sub, "subscribed");
  assert.ok(clock.live.size > 0, "the heartbeat timer runs while connected");
  c.close();
  assert.equal(c.state, "closed");
  assert.equal(clock.live.size, 0);
  await waitFor("the server to see the close", async () => (await p.metric("pushd_connections")) === 0);
  c.connect();
  await nextEvent(got.sub, "subscribed");
  await p.publish("again.t", 1);
  await waitFor("the push", () => got.length === 1);
  c.close();
  assert.equal(clock.live.size, 0);
});

test("a frozen server is detected with the ping command", async () => {
  const p = await startPushd(["--ping-interval", "1s"]);
  const c = newClient(p.wsURL, { heartbeatTimeout: 1000, connectTimeout: 1000 });
  const got = collect(c, "hb.t");
  c.connect();
  await nextEvent(got.sub, "subscribed");
  // An idle but healthy connection stays up: pings get their ok.
  const pings0 = await p.metric("pushd_commands_total");
  await sleep(4500);
  assert.equal(c.state, "connected");
  assert.ok((await p.metric("pushd_commands_total")) - pings0 >= 2, "ping commands every ping_interval + 1 s of silence");
  const disc = nextEvent(c, "state", (s) => s === "disconnected");
  const t0 = Date.now();
  p.proc.kill("SIGSTOP"); // the TCP connection stays open; nothing answers
  try {
    const [, info] = await disc;
    assert.equal(info.code, 4000);
    assert.equal(info.reason, "ping timeout");
    // Silence for ping_interval (1 s) + 1 s, then a ping that gets 1 s for
    // its ok: however far along that cycle was at the freeze, the ping sent
    // after it had its full second.
    const took = Date.now() - t0;
    assert.ok(took >= 1000, `detected after ${took} ms`);
  } finally {
    p.proc.kill("SIGCONT");
  }
  const back = nextEvent(got.sub, "subscribed", () => true, 15000);
  await back;
  await p.publish("hb.t", "alive");
  await waitFor("the push after the freeze", () => got.length === 1);
  c.close();
});

test("backoff: exponential ceiling, full jitter, within its bounds", async () => {
  // The pure policy, with a recorded random source.
  const r = seededRandom(7);
  for (let n = 0; n < 12; n++) {
    const d = reconnectDelay(n, 100, 3000, r);
    const ceiling = Math.min(3000, 100 * 2 ** n);
    assert.ok(d >= 0 && d < ceiling, `attempt ${n}: ${d}`);
    assert.equal(d, r.draws.at(-1) * ceiling);
  }
  assert.ok(reconnectDelay(1000, 100, 3000, () => 0.999999) < 3000, "huge attempts stay under the maximum");

  // The client's real schedule against a port with nothing listening: every
  // delay it announces is random() × min(max, min·2^n).
  const rand = seededRandom(42);
  const c = newClient("ws://127.0.0.1:1/ws", { minReconnectDelay: 10, maxReconnectDelay: 80, random: rand });
  const delays = [];
  c.on("state", (s, info) => s === "disconnected" && delays.push(info.delay));
  c.connect();
  await waitFor("8 attempts", () => delays.length >= 8);
  c.close();
  delays.forEach((d, n) => {
    const ceiling = Math.min(80, 10 * 2 ** n);
    assert.ok(d >= 0 && d < ceiling, `attempt ${n}: ${d} ≥ ${ceiling}`);
    assert.equal(d, rand.draws[n] * ceiling);
  });

  // Many clients that lose the same server do not reconnect in lockstep.
  const many = Array.from({ length: 20 }, () => newClient("ws://127.0.0.1:1/ws", { minReconnectDelay: 1000, maxReconnectDelay: 1000 }));
  const firstDelays = many.map((m) => nextEvent(m, "state", (s) => s === "disconnected"));
  many.forEach((m) => m.connect());
  const first = (await Promise.all(firstDelays)).map(([, info]) => info.delay);
  many.forEach((m) => m.close());
  assert.equal(new Set(first).size, 20, "all different");
  assert.ok(Math.max(...first) - Math.min(...first) > 300, `spread over the window: ${first.map(Math.round)}`);
  assert.ok(first.every((d) => d >= 0 && d < 1000));
});

test("close codes: which are terminal", () => {
  for (const code of [1002, 1003, 1007, 1008, 1009, 1010, 4500, 4501, 4999]) assert.ok(isTerminalClose(code), String(code));
  for (const code of [1000, 1001, 1005, 1006, 1011, 4000, 4001, 4002, 4499]) assert.ok(!isTerminalClose(code), String(code));
});

// ------------------------------------------------------------------ durable

test("durable topic: resume across dropped connections with no loss and no duplicate", async (t) => {
  if (!pushdHas("history")) {
    t.skip("this pushd has no --history flag (durable topics not built in yet)");
    return;
  }
  const p = await startPushd(["--history", "dur.orders:100000"]);
  const proxy = new Proxy(p.wsPort);
  const port = await proxy.listen();
  t.after(() => proxy.close());
  const c = newClient(`ws://127.0.0.1:${port}${p.wsPath}`, { minReconnectDelay: 50, maxReconnectDelay: 100 });
  const got = collect(c, "dur.orders");
  const recovered = [];
  got.sub.on("recovered", (ok, reason) => recovered.push([ok, reason]));
  let subscribed = 0;
  got.sub.on("subscribed", () => subscribed++);
  c.connect();
  await waitFor("the first subscribe", () => subscribed === 1);

  const N = 300;
  const cuts = [80, 160, 240];
  for (let i = 0; i < N; i++) {
    await p.publish("dur.orders", { n: i });
    const k = cuts.indexOf(i);
    if (k >= 0) {
      // Cut only a live subscription, so each cut is one resume; publishing
      // goes on while the client is away.
      await waitFor(`the resume after cut ${k}`, () => subscribed === k + 1);
      proxy.cut();
    }
  }
  await waitFor(`${N} messages`, () => got.length >= N, 20000);
  await waitFor("the last resume", () => subscribed === cuts.length + 1);
  await sleep(300); // anything duplicated would arrive now
  assert.equal(got.length, N, "no duplicate");
  assert.deepEqual(got.map((m) => m.data.n), Array.from({ length: N }, (_, i) => i), "no loss, in order");
  for (let i = 1; i < N; i++) assert.ok(got[i].offset > got[i - 1].offset, "offsets increase");
  assert.ok(got.every((m) => m.epoch === got[0].epoch && typeof m.epoch === "string"));
  assert.deepEqual(recovered, cuts.map(() => [true, undefined]), "every resume recovered");
  assert.deepEqual(got.sub.position, { offset: got.at(-1).offset, epoch: got.at(-1).epoch });

  // history reads what comes after a position, like a resume.
  const since = got[N - 6];
  const h = await c.history("dur.orders", { since: { offset: since.offset, epoch: since.epoch }, limit: 3 });
  assert.deepEqual(h.map((m) => m.data.n), [N - 5, N - 4, N - 3]);
  assert.deepEqual(h.map((m) => m.offset), got.slice(N - 5, N - 2).map((m) => m.offset));

  // A second client resumes from a stored position (another page load).
  const c2 = newClient(p.wsURL);
  const from = got[N - 11];
  const tail = collect(c2, "dur.orders", { since: { offset: from.offset, epoch: from.epoch } });
  const rec = nextEvent(tail.sub, "recovered");
  c2.connect();
  assert.deepEqual(await rec, [true, undefined]);
  await waitFor("the 10 newer messages", () => tail.length === 10);
  assert.deepEqual(tail.map((m) => m.data.n), got.slice(N - 10).map((m) => m.data.n));
  c.close();
  c2.close();
});
