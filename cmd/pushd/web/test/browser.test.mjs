// The demo page in headless Chromium (Debian's, driven by puppeteer-core),
// served by pushd itself on its WebSocket port: it connects, shows pushes
// published over HTTP, publishes through the client, survives a pushd
// restart, and is photographed.
//
// CHROMIUM names the browser (default /usr/bin/chromium). The screenshot
// goes to PUSHD_DEMO_SCREENSHOT when set (docs/img/demo.png is made that
// way), else to a temporary file. PUSHD_WEB_DEV=1 serves cmd/pushd/web from
// a local static server instead, for working on the page without pushd's
// static serving.
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

  let origin = p.origin;
  let query = "";
  const js = await fetch(p.origin + "/pushd.js");
  if (js.status === 400 || js.status === 404) {
    // 400 and 404 are what a pushd without static serving answers.
    if (process.env.PUSHD_WEB_DEV !== "1") {
      t.skip(`pushd answers GET /pushd.js with ${js.status}: static serving is not built in yet`);
      return;
    }
    origin = await devServer();
    query = "?ws=" + encodeURIComponent(p.wsURL);
  } else {
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type"), /^text\/javascript/);
    assert.ok(js.headers.get("etag"), "an ETag for caching");
    assert.equal(await js.text(), readFileSync(join(WEB_DIR, "pushd.js"), "utf8"), "the embedded file is the one in the tree");
    const page = await fetch(p.origin + "/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type"), /^text\/html/);
    assert.equal((await fetch(p.origin + "/no-such-file")).status, 404);
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

  // Pushes published over HTTP reach the ticker and the log.
  const prices = [96950, 96990, 96970, 97020, 97010, 97060, 97040, 97110, 97090, 97150, 97130, 97180];
  for (const price of prices) await p.publish("demo.ticker", { symbol: "BTC", price });
  await until("the last price", async () => (await text("#price")) === "BTC 97,180");
  assert.match(await text("#delta"), /▲ 50/);
  await p.publish("demo.chat", { text: "hello from curl" });
  await until("the chat message in the log", async () => (await logText()).includes("hello from curl"));

  // Publishing from the page goes through pushd and comes back.
  await page.$eval("#data", (el) => (el.value = '{"text":"hello from the browser"}'));
  await page.click("#send");
  await until("the publish result", async () => (await text("#publish-result")) === "Published.");
  await until("the round trip", async () => (await logText()).includes("hello from the browser"));

  // pushd restarts: the page reconnects by itself and keeps receiving.
  const session = await text("#session");
  await p.restart();
  await until("a new session", async () => (await text("#state")) === "connected" && (await text("#session")) !== session);
  assert.match(await logText(), /disconnected \(close 1006, retrying in \d+\.\d s\)/);
  await until("subscriptions restored", async () => (await p.metric("pushd_subscriptions")) === 2);
  for (const price of [97160, 97210, 97240, 97200, 97260, 97310]) await p.publish("demo.ticker", { symbol: "BTC", price });
  await until("a price after the restart", async () => (await text("#price")) === "BTC 97,310");
  await p.publish("demo.chat", { text: "still here after a restart" });
  await until("the chat after the restart", async () => (await logText()).includes("still here after a restart"));

  const shot = process.env.PUSHD_DEMO_SCREENSHOT || join(mkdtempSync(join(tmpdir(), "pushd-shot-")), "demo.png");
  await page.screenshot({ path: shot });
  assert.ok(readFileSync(shot).length > 10000, "a real picture");
  t.diagnostic(`screenshot: ${shot}`);
  assert.deepEqual(pageErrors, []);
});
