// Server-Sent Events in headless Chromium: pages open an EventSource on
// pushd's /sse and get the v1 messages as events; the token comes from the
// pushd_token cookie or ?token=; heartbeats keep the stream open; a refused
// request (403) or an expired token (a close event with 4002, then a 401 on
// the browser's own retry) stops the EventSource; a page of another origin
// reads the stream through CORS; and with durable topics (--history) the
// browser's Last-Event-ID resumes a cut stream with no loss and no
// duplicate.
//
// CHROMIUM names the browser (default /usr/bin/chromium).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Pushd, Proxy, pushdHas, signJWT, waitFor, sleep } from "./helpers.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

let browser;
/** page opens a new tab on url, failing the test on page errors other than
 * the failed requests a test provokes. */
async function page(url, pageErrors) {
  if (!browser) {
    const puppeteer = (await import("puppeteer-core")).default;
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: mkdtempSync(join(tmpdir(), "pushd-chromium-")),
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
    });
    cleanup.push(() => browser.close());
  }
  const pg = await browser.newPage();
  pg.on("pageerror", (e) => pageErrors.push(e.message));
  await pg.goto(url);
  return pg;
}

/** open starts an EventSource in the page, recording its events in
 * window.streams[name]. */
function open(pg, name, url) {
  return pg.evaluate((name, url) => {
    window.streams ??= {};
    const s = { messages: [], closes: [], errors: 0, es: new EventSource(url) };
    window.streams[name] = s;
    s.es.onmessage = (e) => s.messages.push({ data: JSON.parse(e.data), id: e.lastEventId });
    s.es.addEventListener("close", (e) => s.closes.push(JSON.parse(e.data)));
    s.es.onerror = () => s.errors++;
  }, name, url);
}

/** state returns what a stream has seen and its readyState. */
function state(pg, name) {
  return pg.evaluate((name) => {
    const s = window.streams[name];
    return { messages: s.messages, closes: s.closes, errors: s.errors, readyState: s.es.readyState };
  }, name);
}

test("EventSource: pushes, cookie token, heartbeats, 403, expiry, CORS", async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "pushd-sse-"));
  const secret = "0123456789abcdef0123456789abcdef-sse-test";
  writeFileSync(join(dir, "k1.key"), secret);
  const p = await Pushd.start(["--jwt-secret-files", join(dir, "k1.key"), "--jwt-leeway", "0", "--ping-interval", "1s"]);
  cleanup.push(() => p.kill());
  const now = () => Math.floor(Date.now() / 1000);
  const token = (exp, subscribe = ["sse.>"]) => signJWT(secret, { sub: "web", exp, pushd: { subscribe } }, "k1");

  // A page of pushd's origin (pushd.js is always served), with the token
  // in an HttpOnly cookie: EventSource sends it, the page cannot read it.
  const errors = [];
  const pg = await page(p.origin + "/pushd.js", errors);
  await pg.setCookie({ name: "pushd_token", value: token(now() + 3600), url: p.origin, httpOnly: true, sameSite: "Strict" });
  await open(pg, "a", "/sse?topics=sse.a");
  await waitFor("the welcome", async () => (await state(pg, "a")).messages.length === 1);
  assert.equal((await state(pg, "a")).messages[0].data.type, "welcome");
  await waitFor("sse.a and the personal topic", async () => (await p.metric("pushd_subscriptions")) === 2);
  for (let i = 0; i < 3; i++) await p.publish("sse.a", { n: i });
  await p.publish("user.web", "just for you");
  await waitFor("four pushes", async () => (await state(pg, "a")).messages.length === 5);
  const a = await state(pg, "a");
  assert.deepEqual(a.messages.slice(1).map((m) => [m.data.topic, m.data.data]),
    [["sse.a", { n: 0 }], ["sse.a", { n: 1 }], ["sse.a", { n: 2 }], ["user.web", "just for you"]]);
  assert.deepEqual(a.messages.slice(1, 4).map((m) => m.data.seq), [1, 2, 3]);
  assert.ok(a.messages.every((m) => m.id === ""), "volatile pushes carry no id");

  // Heartbeat comments (": ping" every second here) are invisible to the
  // page and keep the stream open.
  await sleep(2500);
  const quiet = await state(pg, "a");
  assert.equal(quiet.readyState, 1, "still open");
  assert.equal(quiet.errors, 0);
  assert.equal(quiet.messages.length, 5);
  assert.ok((await p.metric("pushd_pings_sent_total")) >= 2, "heartbeats sent");

  // A topic the token does not allow: 403, which ends the EventSource.
  await open(pg, "forbidden", "/sse?topics=chat.x");
  await waitFor("the refusal", async () => (await state(pg, "forbidden")).readyState === 2);
  assert.equal((await state(pg, "forbidden")).messages.length, 0);

  // A token that expires: the close event says 4002; the browser's retry
  // with the same token gets 401, and the EventSource stops.
  await open(pg, "short", "/sse?topics=sse.a&token=" + token(now() + 2));
  await waitFor("the close event", async () => (await state(pg, "short")).closes.length === 1, 10000);
  assert.deepEqual((await state(pg, "short")).closes[0], { type: "close", code: 4002, reason: "token expired" });
  await waitFor("the EventSource gives up", async () => (await state(pg, "short")).readyState === 2, 15000);
  assert.equal((await state(pg, "a")).readyState, 1, "the other stream is unaffected");

  // Another origin reads the stream through CORS (Access-Control-Allow-Origin
  // echoes its Origin); it passes the token in the query.
  const other = createServer((req, res) => res.writeHead(200, { "Content-Type": "text/html" }).end("<!doctype html><title>app</title>"));
  await new Promise((r) => other.listen(0, "127.0.0.1", r));
  cleanup.push(() => {
    other.closeAllConnections(); // the browser keeps its connection alive
    return new Promise((r) => other.close(r));
  });
  const pg2 = await page(`http://127.0.0.1:${other.address().port}/`, errors);
  await open(pg2, "x", `${p.origin}/sse?topics=sse.b&token=${token(now() + 3600)}`);
  await waitFor("the cross-origin welcome", async () => (await state(pg2, "x")).messages.length === 1);
  await waitFor("sse.b", async () => (await p.metric("pushd_subscriptions")) >= 3);
  await p.publish("sse.b", { cross: true });
  await waitFor("the cross-origin push", async () => (await state(pg2, "x")).messages.length === 2);
  assert.deepEqual((await state(pg2, "x")).messages[1].data.data, { cross: true });
  assert.deepEqual(errors, []);
});

test("EventSource: Last-Event-ID resumes a durable topic after a cut", async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
    return;
  }
  if (!pushdHas("history")) {
    t.skip("this pushd has no --history flag (durable topics not built in yet)");
    return;
  }
  const p = await Pushd.start(["--history", "sse.dur:1000"]);
  cleanup.push(() => p.kill());
  // The page and its stream go through a relay that can cut the stream as
  // a network drop would, while pushd keeps running.
  const proxy = new Proxy(p.wsPort);
  const port = await proxy.listen();
  cleanup.push(() => proxy.close());
  const errors = [];
  const pg = await page(`http://127.0.0.1:${port}/pushd.js`, errors);
  await open(pg, "d", "/sse?topics=sse.dur");
  await waitFor("the subscription", async () => (await p.metric("pushd_subscriptions")) === 1);
  for (let i = 0; i < 5; i++) await p.publish("sse.dur", { n: i });
  await waitFor("five pushes", async () => (await state(pg, "d")).messages.length === 6);
  const first = (await state(pg, "d")).messages.slice(1);
  for (const m of first) {
    assert.equal(m.id, `sse.dur:${m.data.epoch}:${m.data.offset}`, "the id is the push's position");
  }
  proxy.cut();
  for (let i = 5; i < 10; i++) await p.publish("sse.dur", { n: i });
  // The browser reconnects by itself (retry: 1-5 s) with Last-Event-ID.
  await waitFor("the missed pushes", async () => (await state(pg, "d")).messages.filter((m) => m.data.type === "message").length >= 10, 20000);
  await sleep(300); // anything duplicated would arrive now
  const pushes = (await state(pg, "d")).messages.filter((m) => m.data.type === "message");
  assert.deepEqual(pushes.map((m) => m.data.data.n), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "no loss, no duplicate, in order");
  assert.deepEqual(errors, []);
});
