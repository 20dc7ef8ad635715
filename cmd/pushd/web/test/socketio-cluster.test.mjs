// The real npm socket.io-client against two pushd nodes on one NATS behind
// a round-robin TCP proxy without sticky sessions. cmd/pushd's
// TestSocketIOTwoNodes starts the nodes and the proxy (in Go) and runs this
// file with SIO_CLUSTER_URL (the proxy) and SIO_CLUSTER_APIS (the nodes'
// HTTP APIs, comma-separated); without them it skips.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";

import { sleep, waitFor } from "./helpers.mjs";

const URL = process.env.SIO_CLUSTER_URL;
const APIS = (process.env.SIO_CLUSTER_APIS || "").split(",").filter(Boolean);
const skip = !URL || APIS.length < 2 ? "run by cmd/pushd's TestSocketIOTwoNodes (SIO_CLUSTER_URL, SIO_CLUSTER_APIS)" : false;

const sockets = [];
after(() => {
  for (const s of sockets) s.disconnect();
});

function connect(options = {}) {
  const s = io(URL, { forceNew: true, reconnection: false, timeout: 5000, ...options });
  sockets.push(s);
  return s;
}

function once(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** publish posts through node i's HTTP API. */
async function publish(i, topic, data) {
  const res = await fetch(`${APIS[i % APIS.length]}/v1/publish`, { method: "POST", body: JSON.stringify({ topic, data }) });
  assert.equal(res.status, 200, await res.text());
}

/** metric sums a counter over both nodes. */
async function metric(name) {
  let sum = 0;
  for (const api of APIS) {
    const text = await (await fetch(`${api}/metrics`)).text();
    const quoted = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const m = new RegExp(`^${quoted} (\\S+)$`, "m").exec(text);
    sum += m ? Number(m[1]) : 0;
  }
  return sum;
}

test("polling only, requests spread over two nodes: one session, every push in order", { skip }, async () => {
  const relayedBefore = await metric('pushd_sio_relayed_requests_total{route="to_node"}');
  const s = connect({ transports: ["polling"] });
  const got = [];
  s.on("message", (m) => got.push(m.data));
  await once(s, "connect");
  assert.deepEqual(await s.emitWithAck("subscribe", ["cluster.poll"]), { ok: true });
  for (let i = 0; i < 10; i++) await publish(i, "cluster.poll", i);
  await waitFor("ten pushes", () => got.length === 10);
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(s.io.engine.transport.name, "polling");
  assert.ok((await metric('pushd_sio_relayed_requests_total{route="to_node"}')) > relayedBefore, "no request went to the other node");
});

/** upgrades counts the upgrades both nodes tried, by any result. */
async function upgrades() {
  let n = 0;
  for (const result of ["refused", "same_loop", "moved_loop"]) n += await metric(`pushd_sio_upgrades_total{result="${result}"}`);
  return n;
}

test("polling, then the upgrade where it reaches the session's node: every client gets every push", { skip }, async () => {
  const before = await upgrades();
  const clients = [];
  for (let i = 0; i < 6; i++) {
    const s = connect();
    const got = [];
    s.on("message", (m) => got.push(m.data));
    clients.push({ s, got, connected: once(s, "connect") });
  }
  for (const { s, connected } of clients) {
    await connected;
    assert.deepEqual(await s.emitWithAck("subscribe", ["cluster.up"]), { ok: true });
  }
  await sleep(500); // the probes: through the proxy, some reach the other node
  for (let i = 0; i < 8; i++) await publish(i, "cluster.up", i);
  for (const { s, got } of clients) {
    await waitFor(`eight pushes on ${s.io.engine.transport.name}`, () => got.length === 8);
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.ok(s.connected);
  }
  const transports = clients.map(({ s }) => s.io.engine.transport.name);
  assert.ok(transports.includes("polling") || transports.includes("websocket"));
  assert.equal((await upgrades()) - before, 6, `every client tried one upgrade (transports ${transports})`);
});
