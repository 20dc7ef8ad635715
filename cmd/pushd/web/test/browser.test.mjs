// The demo page in headless Chromium (Debian's, driven by puppeteer-core),
// served by pushd itself on its WebSocket port: pushd.js and the page come
// with their caching headers, the page shows pushd's own demo ticker live,
// shows pushes published over HTTP, publishes through the client, survives
// a pushd restart, and is photographed.
//
// CHROMIUM names the browser (default /usr/bin/chromium). The screenshot
// goes to PUSHD_DEMO_SCREENSHOT when set (docs/img/demo.png is made that
// way), else to a temporary file. PUSHD_WEB_DEV=1 loads the page from a
// local static server serving cmd/pushd/web instead, for working on the
// page without rebuilding pushd.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname, resolve, extname } from "node:path";
import { fileURLToPath } from "node:url";

import { Pushd, waitFor } from "./helpers.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

/** devServer serves the files of cmd/pushd/web, for PUSHD_WEB_DEV=1. */
async function devServer() {
  const types = { ".js": "text/javascript; charset=utf-8", ".html": "text/html; charset=utf-8" };
  const srv = createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname === "/" ? "index.html" : new URL(req.url, "http://x").pathname.slice(1);
    const file = join(WEB_DIR, name);
    if (name.includes("/") || !types[extname(name)] || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": types[extname(name)] }).end(readFileSync(file));
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  cleanup.push(() => new Promise((r) => srv.close(r)));
  return `http://127.0.0.1:${srv.address().port}`;
}

test("demo page: live pushes, publish, survives a pushd restart, screenshot", async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
    return;
  }
  const puppeteer = (await import("puppeteer-core")).default;
  const p = await Pushd.start(["--client-publish"]);
  cleanup.push(() => p.kill());

  // pushd serves the client and the demo page (--insecure turns --demo on).
  const js = await fetch(p.origin + "/pushd.js");
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
  assert.equal(js.headers.get("cache-control"), "no-cache");
  const etag = js.headers.get("etag");
  assert.match(etag, /^"[\w-]+"$/, "a strong ETag for revalidation");
  assert.equal(await js.text(), readFileSync(join(WEB_DIR, "pushd.js"), "utf8"), "the embedded file is the one in the tree");
  assert.equal((await fetch(p.origin + "/pushd.js", { headers: { "If-None-Match": etag } })).status, 304);
  const index = await fetch(p.origin + "/");
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /^text\/html/);
  assert.equal(await index.text(), readFileSync(join(WEB_DIR, "index.html"), "utf8"));
  assert.equal((await fetch(p.origin + "/no-such-file")).status, 404);
  assert.equal((await fetch(p.origin + "/pushd.js", { method: "POST", body: "x" })).status, 405);

  let origin = p.origin;
  let query = "";
  if (process.env.PUSHD_WEB_DEV === "1") {
    origin = await devServer();
    query = "?ws=" + encodeURIComponent(p.wsURL);
  }

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: mkdtempSync(join(tmpdir(), "pushd-chromium-")),
    // The machine has no network beyond loopback: without these Chromium
    // keeps trying to reach its update, sync and QUIC endpoints.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  cleanup.push(() => browser.close());
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 700 });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    // Failed reconnect attempts while pushd restarts are expected noise.
    if (m.type() === "error" && !/WebSocket connection to .* failed/.test(m.text())) pageErrors.push(m.text());
  });

  const text = (sel) => page.$eval(sel, (el) => el.textContent);
  const logText = () => text("#log");
  const until = (what, fn, ms = 15000) => waitFor(what, fn, ms);

  await page.goto(origin + "/" + query);
  await until("state connected", async () => (await text("#state")) === "connected");
  assert.match(await text("#session"), /^session \w{22}$/);
  // The page's subscriptions are live on the server before anything is published.
  await until("two subscriptions", async () => (await p.metric("pushd_subscriptions")) === 2);

  // pushd's demo ticker is live: a price a second, without anyone
  // publishing, drawn as a sparkline.
  const sparkPoints = () => page.$eval("#spark-line", (el) => el.getAttribute("points").split(" ").filter(Boolean).length);
  await until("the demo ticker's prices", async () => /^BTC \d{1,3}(,\d{3})*(\.\d+)?$/.test(await text("#price")) && (await sparkPoints()) >= 3);
  assert.match(await text("#delta"), /^[▲▼] [\d,.]+$/);
  assert.match(await logText(), /demo\.ticker #\d+ \{"symbol":"BTC","price":\d+(\.\d+)?\}/);

  // Pushes published over HTTP reach the log.
  await p.publish("demo.chat", { text: "hello from curl" });
  await until("the chat message in the log", async () => (await logText()).includes("hello from curl"));

  // Publishing from the page goes through pushd and comes back.
  await page.$eval("#data", (el) => (el.value = '{"text":"hello from the browser"}'));
  await page.click("#send");
  await until("the publish result", async () => (await text("#publish-result")) === "Published.");
  await until("the round trip", async () => (await logText()).includes("hello from the browser"));

  // Chromium offers permessage-deflate; pushd accepts it and sends the
  // browser's pushes compressed (each push compressed once).
  const zipIn = () => p.metric('pushd_deflate_in_bytes_total{kind="pushes"}');
  const zipBefore = await zipIn();
  const zipped = page.evaluate((url) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type !== "message") return;
      resolve({ ext: ws.extensions, data: m.data });
      ws.close();
    };
    ws.onerror = () => reject(new Error("websocket failed"));
  }), p.wsURL + "?topics=demo.zip");
  await until("the browser's compressing subscription", async () => (await p.metric("pushd_subscriptions")) === 3);
  const book = Array.from({ length: 40 }, (_, i) => ({ price: 97000 + i, qty: i % 5 }));
  await p.publish("demo.zip", { book });
  const got = await zipped;
  assert.match(got.ext, /permessage-deflate/);
  assert.deepEqual(got.data.book, book);
  assert.ok((await zipIn()) - zipBefore >= JSON.stringify({ book }).length, "the push to the browser was compressed");
  await until("back to two subscriptions", async () => (await p.metric("pushd_subscriptions")) === 2);

  // pushd restarts: the page reconnects by itself and keeps receiving.
  const session = await text("#session");
  await p.restart();
  await until("a new session", async () => (await text("#state")) === "connected" && (await text("#session")) !== session);
  assert.match(await logText(), /disconnected \(close 1006, retrying in \d+\.\d s\)/);
  await until("subscriptions restored", async () => (await p.metric("pushd_subscriptions")) === 2);
  // The restarted pushd's ticker keeps the sparkline moving.
  const before = await sparkPoints();
  await until("ticks after the restart", async () => (await sparkPoints()) >= Math.min(before + 3, 60));
  await p.publish("demo.chat", { text: "still here after a restart" });
  await until("the chat after the restart", async () => (await logText()).includes("still here after a restart"));

  // A few more ticks, so the picture shows a ticker that has run a while.
  await until("a longer sparkline", async () => (await sparkPoints()) >= 12, 20000);
  const shot = process.env.PUSHD_DEMO_SCREENSHOT || join(mkdtempSync(join(tmpdir(), "pushd-shot-")), "demo.png");
  await page.screenshot({ path: shot });
  assert.ok(readFileSync(shot).length > 10000, "a real picture");
  t.diagnostic(`screenshot: ${shot}`);
  assert.deepEqual(pageErrors, []);
});
