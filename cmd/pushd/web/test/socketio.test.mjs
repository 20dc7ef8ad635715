// The real npm socket.io-client (pinned in package.json) against a real
// pushd binary (PUSHD_BIN) over loopback: what an application that uses
// Socket.IO today does when pointed at pushd. Run by
// cmd/pushd/web_test.go.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io } from "socket.io-client";

import { Pushd, Proxy, pushdHas, signJWT, sleep, waitFor } from "./helpers.mjs";

const sockets = [];
const servers = [];
after(async () => {
  for (const s of sockets) s.disconnect();
  await Promise.all(servers.map((s) => s.kill()));
});

async function startPushd(args = []) {
  const p = await Pushd.start(args);
  servers.push(p);
  return p;
}

/** connect makes a socket.io-client socket to p with fast reconnects,
 * disconnected after the file. */
function connect(p, options = {}, nsp = "") {
  const s = io(p.origin + nsp, { forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 200, timeout: 5000, ...options });
  sockets.push(s);
  return s;
}

/** once resolves with the arguments of the next event, or rejects after ms. */
function once(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no ${event} event within ${ms} ms`));
    }, ms);
    const on = (...args) => {
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(args);
    };
    emitter.on(event, on);
  });
}

/** collect returns the array the socket's message events land in. */
function collect(s) {
  const got = [];
  s.on("message", (m) => got.push(m));
  return got;
}

const websocketOnly = { transports: ["websocket"] };
const pollingOnly = { transports: ["polling"] };

/** upgraded resolves once the socket's engine runs on WebSocket. */
function upgraded(s, ms = 10000) {
  if (s.io.engine.transport.name === "websocket") return Promise.resolve();
  return once(s.io.engine, "upgrade", ms);
}

test("websocket only: connect, subscribe with ack, receive pushes, unsubscribe", async () => {
  const p = await startPushd();
  const s = connect(p, websocketOnly);
  await once(s, "connect");
  assert.equal(s.io.engine.transport.name, "websocket");
  assert.match(s.id, /^\w{22}$/);
  const got = collect(s);

  assert.deepEqual(await s.emitWithAck("subscribe", ["news.a", "news.b"]), { ok: true });
  await p.publish("news.a", { n: 1 });
  await p.publish("news.b", "two");
  await p.publish("other", "not subscribed");
  await p.publish("news.a", [3]);
  await waitFor("three pushes", () => got.length === 3);
  assert.deepEqual(got, [
    { topic: "news.a", data: { n: 1 } },
    { topic: "news.b", data: "two" },
    { topic: "news.a", data: [3] },
  ]);

  assert.deepEqual(await s.emitWithAck("unsubscribe", ["news.a"]), { ok: true });
  await p.publish("news.a", "gone");
  await p.publish("news.b", "still");
  await waitFor("the push after unsubscribe", () => got.length === 4);
  assert.deepEqual(got[3], { topic: "news.b", data: "still" });
});

test("refusals come back on the ack: bad topics, unknown events, binary, publish disabled", async () => {
  const p = await startPushd();
  const s = connect(p, websocketOnly);
  await once(s, "connect");
  const err = async (...args) => (await s.emitWithAck(...args)).error;

  assert.equal((await err("subscribe", ["bad..topic"])).code, "invalid_topic");
  assert.equal((await err("subscribe", [])).code, "bad_request");
  assert.equal((await err("subscribe", [1, 2])).code, "bad_json");
  assert.equal((await err("nope", 1)).code, "unknown_command");
  assert.equal((await err("publish", { topic: "a", data: 1 })).code, "forbidden");
  const binary = await err("publish", Buffer.from([1, 2, 3]));
  assert.equal(binary.code, "bad_request");
  assert.match(binary.message, /binary/);
  // Without an ack callback a refusal arrives as an error event.
  const [e] = await Promise.all([once(s, "error"), s.emit("subscribe", "bad..topic")]);
  assert.equal(e[0].error.code, "invalid_topic");
  // None of it cost the connection.
  assert.deepEqual(await s.emitWithAck("subscribe", "fine"), { ok: true });
  assert.ok(s.connected);
});

test("publish event where the token allows it, acked", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pushd-sio-"));
  const secretFile = join(dir, "k1");
  const secret = "0123456789abcdef0123456789abcdef-sio";
  writeFileSync(secretFile, secret);
  const p = await startPushd(["--jwt-secret-files", secretFile, "--client-publish"]);
  const token = signJWT(secret, { sub: "bob", exp: Math.floor(Date.now() / 1000) + 3600, pushd: { subscribe: ["chat.>"], publish: ["chat.room1"] } }, "k1");
  const s = connect(p, { ...websocketOnly, auth: { token } });
  await once(s, "connect");
  const got = collect(s);
  assert.deepEqual(await s.emitWithAck("subscribe", ["chat.room1"]), { ok: true });
  assert.deepEqual(await s.emitWithAck("publish", { topic: "chat.room1", data: { text: "hi" } }), { ok: true });
  await waitFor("the published message", () => got.length === 1);
  assert.deepEqual(got[0], { topic: "chat.room1", data: { text: "hi" } });
  assert.equal((await s.emitWithAck("publish", { topic: "chat.room2", data: 1 })).error.code, "forbidden");
  assert.equal((await s.emitWithAck("subscribe", ["news"])).error.code, "forbidden");
});

test("auth: a token in the CONNECT, connect_error when refused, and no reconnection after it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pushd-sio-"));
  const secretFile = join(dir, "k1");
  const secret = "0123456789abcdef0123456789abcdef-sio";
  writeFileSync(secretFile, secret);
  const p = await startPushd(["--jwt-secret-files", secretFile]);

  const bad = connect(p, { ...websocketOnly, auth: { token: "not-a-jwt" } });
  const [e] = await once(bad, "connect_error");
  assert.equal(e.data.code, "unauthorized");
  assert.match(e.message, /invalid token/);
  assert.equal(bad.active, false, "socket.io-client gives up after a CONNECT_ERROR");

  const none = connect(p, websocketOnly);
  const [e2] = await once(none, "connect_error");
  assert.equal(e2.data.code, "unauthorized");

  // auth as a function: called for every connection attempt.
  let calls = 0;
  const token = signJWT(secret, { sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 }, "k1");
  const good = connect(p, { ...websocketOnly, auth: (cb) => { calls++; cb({ token }); } });
  await once(good, "connect");
  assert.equal(calls, 1);
  // The personal topic (--personal-prefix user.) is subscribed at CONNECT.
  const got = collect(good);
  await waitFor("the personal subscription", async () => (await p.metric("pushd_subscriptions")) >= 1);
  await p.publish("user.alice", "for alice");
  await waitFor("the personal push", () => got.length === 1);
  assert.deepEqual(got[0], { topic: "user.alice", data: "for alice" });
});

test("other namespaces are refused clearly", async () => {
  const p = await startPushd();
  const s = connect(p, websocketOnly, "/admin");
  const [e] = await once(s, "connect_error");
  assert.equal(e.message, "Invalid namespace");
  assert.equal(e.data.code, "invalid_namespace");
});

test("reconnect after a crash: the connect handler subscribes again and pushes resume", async () => {
  const p = await startPushd();
  const s = connect(p, websocketOnly);
  const got = collect(s);
  let connects = 0;
  s.on("connect", () => {
    connects++;
    s.emit("subscribe", ["ticker"], () => {});
  });
  await waitFor("the first subscription", async () => connects === 1 && (await p.metric("pushd_subscriptions")) === 1);
  await p.publish("ticker", 1);
  await waitFor("push 1", () => got.length === 1);

  const reason = once(s, "disconnect");
  await p.restart();
  assert.equal((await reason)[0], "transport close");
  await waitFor("the reconnection", async () => connects === 2 && (await p.metric("pushd_subscriptions")) === 1);
  await p.publish("ticker", 2);
  await waitFor("push 2", () => got.length === 2);
  assert.deepEqual(got.map((m) => m.data), [1, 2]);
});

test("Engine.IO heartbeat: the client answers pushd's pings and stays connected", async () => {
  const p = await startPushd(["--sio-ping-interval", "300ms", "--sio-ping-timeout", "300ms"]);
  const s = connect(p, websocketOnly);
  await once(s, "connect");
  let pings = 0;
  s.io.engine.on("ping", () => pings++);
  let disconnected = false;
  s.on("disconnect", () => (disconnected = true));
  await sleep(2000);
  assert.ok(pings >= 4, `only ${pings} pings in 2 s at a 300 ms interval`);
  assert.equal(disconnected, false);
  // What the handshake announced (engine.io-client keeps it in private fields).
  assert.equal(s.io.engine._pingInterval, 300);
  assert.equal(s.io.engine._pingTimeout, 300);
});

test("draining: the client reconnects on its own", async () => {
  const p = await startPushd();
  const s = connect(p, websocketOnly);
  await once(s, "connect");
  const reason = once(s, "disconnect");
  await p.kill("SIGTERM");
  assert.equal((await reason)[0], "transport close");
  assert.equal(s.active, true, "still trying to reconnect");
  await p.start();
  await once(s, "connect");
});

test("polling only: connect, subscribe with ack, pushes, refusals, heartbeat", async () => {
  const p = await startPushd(["--sio-ping-interval", "300ms", "--sio-ping-timeout", "300ms"]);
  const s = connect(p, pollingOnly);
  await once(s, "connect");
  assert.equal(s.io.engine.transport.name, "polling");
  assert.equal(await p.metric("pushd_sio_polling_sessions"), 1);
  const got = collect(s);
  assert.deepEqual(await s.emitWithAck("subscribe", ["news.a", "news.b"]), { ok: true });
  await p.publish("news.a", { n: 1 });
  await p.publish("news.b", "two");
  await p.publish("news.a", [3]);
  await waitFor("three pushes", () => got.length === 3);
  assert.deepEqual(got, [
    { topic: "news.a", data: { n: 1 } },
    { topic: "news.b", data: "two" },
    { topic: "news.a", data: [3] },
  ]);
  assert.equal((await s.emitWithAck("subscribe", ["bad..topic"])).error.code, "invalid_topic");
  const binary = await s.emitWithAck("publish", Buffer.from([1, 2, 3]));
  assert.equal(binary.error.code, "bad_request");
  // The heartbeat over polling: pings answer the held poll, pongs are POSTed.
  let pings = 0;
  s.io.engine.on("ping", () => pings++);
  let disconnected = false;
  s.on("disconnect", () => (disconnected = true));
  await sleep(1500);
  assert.ok(pings >= 3, `only ${pings} pings in 1.5 s at a 300 ms interval`);
  assert.equal(disconnected, false);
  assert.equal(s.io.engine.transport.name, "polling");
  await p.publish("news.b", "still");
  await waitFor("the push after the pings", () => got.length === 4);
});

test("polling upgraded to websocket: pushes before, during and after the upgrade, in order", async () => {
  const p = await startPushd();
  const s = connect(p); // socket.io-client's default: polling, then the upgrade
  const got = collect(s);
  await once(s, "connect");
  assert.deepEqual(await s.emitWithAck("subscribe", ["ticker"]), { ok: true });
  // Publish while the upgrade runs: nothing lost, nothing twice, in order.
  const sent = [];
  const publishing = (async () => {
    for (let i = 0; i < 40; i++) {
      await p.publish("ticker", i);
      sent.push(i);
      await sleep(5);
    }
  })();
  await upgraded(s);
  await publishing;
  assert.equal(s.io.engine.transport.name, "websocket");
  await waitFor("every push", () => got.length === sent.length);
  assert.deepEqual(got.map((m) => m.data), sent);
  assert.equal(await p.metric('pushd_sio_upgrades_total{result="same_loop"}'), 1);
  assert.equal(await p.metric("pushd_sio_polling_sessions"), 0);
  // Events on the upgraded session.
  assert.deepEqual(await s.emitWithAck("unsubscribe", ["ticker"]), { ok: true });
  await p.publish("ticker", "gone");
  assert.deepEqual(await s.emitWithAck("subscribe", "other"), { ok: true });
  await p.publish("other", "here");
  await waitFor("the push after resubscribing", () => got.length === sent.length + 1);
  assert.deepEqual(got.at(-1), { topic: "other", data: "here" });
});

test("polling: draining closes the session and the client reconnects on its own", async () => {
  const p = await startPushd();
  const s = connect(p, pollingOnly);
  await once(s, "connect");
  const reason = once(s, "disconnect");
  await p.kill("SIGTERM");
  // The close packet, when a poll was held; a 503 for the next poll (a
  // draining node refuses new connections) when none was.
  assert.match((await reason)[0], /^transport (close|error)$/);
  assert.equal(s.active, true, "still trying to reconnect");
  await p.start();
  await once(s, "connect");
  assert.equal(s.io.engine.transport.name, "polling");
});

test("polling: a malformed packet ends the session with a DISCONNECT, no reconnection", async () => {
  const p = await startPushd();
  const s = connect(p, pollingOnly);
  await once(s, "connect");
  const reason = once(s, "disconnect");
  // Through the engine, below Socket.IO: an EVENT whose data is not an array.
  s.io.engine.write('2{"not":"an array"}');
  assert.equal((await reason)[0], "io server disconnect");
  assert.equal(s.active, false);
});

for (const transports of [["websocket"], ["polling"]]) {
  test(`connection state recovery over ${transports}: socket.recovered, and the pushes missed while cut off`, async (t) => {
    if (!pushdHas("history") || !pushdHas("sio-recovery")) {
      t.skip("this pushd has no --history or --sio-recovery");
      return;
    }
    const p = await startPushd(["--history", "csr.>:100", "--sio-recovery", "1m"]);
    const proxy = new Proxy(p.wsPort);
    const port = await proxy.listen();
    after(() => proxy.close());
    const s = io(`http://127.0.0.1:${port}`, { forceNew: true, transports, reconnectionDelay: 300, reconnectionDelayMax: 300, timeout: 5000 });
    sockets.push(s);
    const got = [];
    const offsets = [];
    s.on("message", (m, offset) => {
      got.push(m.data);
      offsets.push(offset);
    });
    await once(s, "connect");
    assert.equal(s.recovered, false);
    assert.deepEqual(await s.emitWithAck("subscribe", ["csr.a"]), { ok: true });
    await p.publish("csr.a", 1);
    await p.publish("csr.a", 2);
    await waitFor("two pushes", () => got.length === 2);
    assert.match(offsets[1], /^csr\.a:[\w-]+:\d+$/, "the recovery offset is the push's last argument");

    const reason = once(s, "disconnect");
    proxy.cut(); // the network drops; no close frame, no DISCONNECT
    assert.match((await reason)[0], /^transport (close|error)$/);
    await waitFor("the server to keep the session", async () => (await p.metric("pushd_sio_recovery_states")) === 1);
    await p.publish("csr.a", 3);
    await p.publish("csr.a", 4);
    await once(s, "connect");
    assert.equal(s.recovered, true, "the session was recovered");
    await waitFor("the missed pushes", () => got.length === 4);
    assert.deepEqual(got, [1, 2, 3, 4]);
    await p.publish("csr.a", 5);
    await waitFor("a live push", () => got.length === 5);
    assert.equal(got[4], 5);
    assert.equal(await p.metric('pushd_sio_recoveries_total{result="recovered"}'), 1);
  });
}

for (const transports of [["websocket"], ["polling"]]) {
  test(`durable topics over ${transports}: acks as v1's replies (subscribed when followed, published with the position)`, async (t) => {
    if (!pushdHas("history")) {
      t.skip("this pushd has no --history");
      return;
    }
    const p = await startPushd(["--history", "dur.>:100", "--client-publish"]);
    const s = connect(p, { transports });
    await once(s, "connect");
    const got = [];
    s.on("message", (m, id) => got.push({ data: m.data, id }));
    // Each topic is new to the node: the ack comes once the node follows
    // its history, so the publish right after it reaches the client.
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await s.emitWithAck("subscribe", [`dur.t${i}`]), { ok: true });
      await p.publish(`dur.t${i}`, i);
    }
    await waitFor("five pushes", () => got.length === 5);
    assert.deepEqual(got.map((m) => m.data), [0, 1, 2, 3, 4]);
    const ack = await s.emitWithAck("publish", { topic: "dur.t0", data: "mine" });
    assert.equal(ack.ok, true);
    assert.ok(Number.isInteger(ack.offset) && ack.offset > 0, `offset in ${JSON.stringify(ack)}`);
    await waitFor("the client's own push", () => got.length === 6);
    assert.deepEqual(got[5], { data: "mine", id: `dur.t0:${ack.epoch}:${ack.offset}` });
  });
}
