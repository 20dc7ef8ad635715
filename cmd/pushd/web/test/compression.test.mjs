// permessage-deflate with the npm ws package as the client (its
// perMessageDeflate option): pushd compresses each push once for every
// compressing client, and inflates what they send. Run by
// cmd/pushd/web_test.go against a real pushd (PUSHD_BIN).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";

import { Pushd, waitFor } from "./helpers.mjs";

const servers = [];
after(async () => {
  await Promise.all(servers.map((s) => s.kill()));
});

/** open connects with ws, offering (or not) permessage-deflate, and resolves
 * with the socket and the messages it receives. */
function open(url, perMessageDeflate) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate });
    const got = [];
    ws.on("message", (data) => got.push(JSON.parse(data.toString())));
    ws.once("open", () => resolve({ ws, got }));
    ws.once("error", reject);
  });
}

test("compressed pushes reach ws clients that offer permessage-deflate, plain ones the others", async () => {
  const p = await Pushd.start();
  servers.push(p);
  const url = p.wsURL + "?topics=deflate.t";
  const zipped = await open(url, { threshold: 0 });
  const plain = await open(url, false);
  assert.match(zipped.ws.extensions, /permessage-deflate/);
  assert.equal(plain.ws.extensions, "");
  await waitFor("subscriptions", async () => (await p.metric("pushd_subscriptions")) === 2);
  const before = await p.metric('pushd_deflate_in_bytes_total{kind="pushes"}');
  const data = { book: Array.from({ length: 50 }, (_, i) => ({ price: 97000 + i, qty: i % 7 })) };
  for (let i = 0; i < 5; i++) await p.publish("deflate.t", { ...data, n: i });
  await waitFor("pushes", () => zipped.got.length === 6 && plain.got.length === 6); // welcome + 5
  for (const c of [zipped, plain]) {
    assert.deepEqual(c.got.slice(1).map((m) => m.data.n), [0, 1, 2, 3, 4]);
    assert.deepEqual(c.got[5].data.book, data.book);
  }
  // Each push was compressed once, whatever the number of subscribers,
  // and came out much smaller.
  const pushesIn = (await p.metric('pushd_deflate_in_bytes_total{kind="pushes"}')) - before;
  const bytes = JSON.stringify(data).length;
  assert.ok(pushesIn >= 5 * bytes && pushesIn < 5 * (bytes + 200), `compressed ${pushesIn} bytes for 5 pushes of ~${bytes}`);

  // A compressed command from the client is inflated.
  zipped.ws.send(JSON.stringify({ id: 9, type: "subscribe", topics: ["deflate.u"], pad: "x".repeat(300) }));
  await waitFor("ok", () => zipped.got.some((m) => m.type === "ok" && m.id === 9));
  assert.ok((await p.metric("pushd_inflated_messages_total")) >= 1);
  zipped.ws.close();
  plain.ws.close();
});

test("--compression=false leaves the extension unanswered", async () => {
  const p = await Pushd.start(["--compression=false"]);
  servers.push(p);
  const c = await open(p.wsURL, { threshold: 0 });
  assert.equal(c.ws.extensions, "");
  c.ws.close();
});
