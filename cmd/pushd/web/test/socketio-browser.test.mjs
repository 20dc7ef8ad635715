// socket.io-client in headless Chromium, loaded by a page of another
// origin than pushd: long-polling is XMLHttpRequest under CORS (the
// answers must carry Access-Control-Allow-Origin; extraHeaders make the
// browser send a preflight first), the upgrade to WebSocket is not subject
// to CORS, and an Origin outside --allowed-origins is refused.
//
// CHROMIUM names the browser (default /usr/bin/chromium).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Pushd, waitFor } from "./helpers.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CLIENT_JS = resolve(dirname(fileURLToPath(import.meta.url)), "node_modules/socket.io-client/dist/socket.io.min.js");

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

/** pageServer serves a blank page and socket.io-client's browser bundle
 * from its own origin. */
async function pageServer() {
  const srv = createServer((req, res) => {
    if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" }).end(readFileSync(CLIENT_JS));
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html" }).end('<!doctype html><script src="/socket.io.min.js"></script>');
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  cleanup.push(() => new Promise((r) => srv.close(r)));
  return `http://127.0.0.1:${srv.address().port}`;
}

/** connect opens a socket in the page, recording its events in
 * window.sockets[name]. */
function connect(pg, name, url, options) {
  return pg.evaluate((name, url, options) => {
    window.sockets ??= {};
    const rec = { connected: false, errors: [], messages: [], transports: [] };
    const s = io(url, { forceNew: true, reconnection: false, ...options });
    rec.socket = s;
    window.sockets[name] = rec;
    // The engine's first transport and its upgrade are recorded from the
    // manager's "open", which comes before the engine starts probing: the
    // upgrade can finish before the Socket.IO "connect" arrives.
    s.io.on("open", () => {
      rec.transports.push(s.io.engine.transport.name);
      s.io.engine.on("upgrade", (t) => rec.transports.push(t.name));
    });
    s.on("connect", () => {
      rec.connected = true;
      s.emit("subscribe", ["browser.news"], (res) => (rec.subscribed = res));
    });
    s.on("connect_error", (e) => rec.errors.push(e.message));
    s.on("message", (m) => rec.messages.push(m));
  }, name, url, options);
}

function state(pg, name) {
  return pg.evaluate((name) => {
    const r = window.sockets[name];
    return { connected: r.connected, errors: r.errors, messages: r.messages, transports: r.transports, subscribed: r.subscribed };
  }, name);
}

test("socket.io-client in a browser, cross-origin: polling under CORS, preflight, upgrade, refused origin", async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
    return;
  }
  if (!existsSync(CLIENT_JS)) {
    t.skip("socket.io-client is not installed (npm ci)");
    return;
  }
  const origin = await pageServer();
  const p = await Pushd.start(["--allowed-origins", origin]);
  cleanup.push(() => p.kill());
  const other = await Pushd.start(["--allowed-origins", "https://somewhere.else.example"]);
  cleanup.push(() => other.kill());

  const puppeteer = (await import("puppeteer-core")).default;
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: mkdtempSync(join(tmpdir(), "pushd-chromium-")),
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  cleanup.push(() => browser.close());
  const pg = await browser.newPage();
  const pageErrors = [];
  pg.on("pageerror", (e) => pageErrors.push(e.message));
  await pg.goto(origin + "/");

  // Polling only: simple requests, readable thanks to the CORS header.
  await connect(pg, "polling", p.origin, { transports: ["polling"] });
  // Polling with a custom header: the browser sends a preflight first.
  await connect(pg, "preflight", p.origin, { transports: ["polling"], extraHeaders: { "x-pushd-test": "1" } });
  // The default: polling, then the upgrade (WebSocket is not under CORS).
  await connect(pg, "upgrade", p.origin, {});
  for (const name of ["polling", "preflight", "upgrade"]) {
    await waitFor(`${name} subscribed`, async () => (await state(pg, name)).subscribed?.ok === true);
  }
  await waitFor("the upgrade", async () => (await state(pg, "upgrade")).transports.includes("websocket"));
  await p.publish("browser.news", { n: 1 });
  for (const name of ["polling", "preflight", "upgrade"]) {
    await waitFor(`${name}'s push`, async () => (await state(pg, name)).messages.length === 1);
    assert.deepEqual((await state(pg, name)).messages[0], { topic: "browser.news", data: { n: 1 } });
  }
  assert.deepEqual((await state(pg, "polling")).transports, ["polling"]);
  assert.deepEqual((await state(pg, "upgrade")).transports, ["polling", "websocket"]);

  // A pushd that does not allow this page's origin: 403 at the handshake.
  await connect(pg, "refused", other.origin, { transports: ["polling"] });
  await waitFor("the refusal", async () => (await state(pg, "refused")).errors.length > 0);
  assert.equal((await state(pg, "refused")).connected, false);
  assert.equal(await other.metric('pushd_auth_failures_total{reason="origin"}'), 1);
  assert.deepEqual(pageErrors, []);
});
