// Helpers shared by the tests: a real pushd process that can be killed,
// stopped and restarted on the same ports, and small promise utilities.
import { spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PUSHD_BIN is the pushd binary under test (set by cmd/pushd/web_test.go). */
export const PUSHD_BIN = process.env.PUSHD_BIN;

/** requireBin throws when PUSHD_BIN is unset. */
export function requireBin() {
  if (!PUSHD_BIN) throw new Error("set PUSHD_BIN to a pushd binary (go build -o /tmp/pushd ./cmd/pushd), or run: go test -run JSClient ./cmd/pushd");
}

/** pushdHas reports whether `pushd -h` lists the flag (pushd prints its
 * flags on stderr and exits 0). */
export function pushdHas(flag) {
  requireBin();
  const r = spawnSync(PUSHD_BIN, ["-h"], { encoding: "utf8" });
  const out = (r.stdout ?? "") + (r.stderr ?? "");
  return new RegExp(`^\\s*-{1,2}${flag}\\b`, "m").test(out);
}

/** Pushd is one pushd process on loopback. Its ports stay the same across
 * restart(), as a real deployment's do. */
export class Pushd {
  constructor(args = []) {
    requireBin();
    // Durable topics keep their history under --data-dir: give each pushd
    // its own (kept across restart(), removed when the process exits).
    if (args.includes("--history") && !args.includes("--data-dir")) {
      this.dataDir = mkdtempSync(join(tmpdir(), "pushd-js-"));
      args = [...args, "--data-dir", this.dataDir];
      process.once("exit", () => rmSync(this.dataDir, { recursive: true, force: true }));
    }
    this.args = args;
    this.wsPort = 0;
    this.apiPort = 0;
    this.proc = null;
    this.logs = [];
  }

  /** start runs pushd and resolves once it logs "pushd serving". */
  static async start(args = []) {
    const p = new Pushd(args);
    await p.start();
    return p;
  }

  async start() {
    const args = [
      "--listen", `127.0.0.1:${this.wsPort}`, "--api-listen", `127.0.0.1:${this.apiPort}`,
      "--nats-listen", "127.0.0.1:0", "--loops", "1", "--drain-grace", "2s", ...this.args,
    ];
    if (!this.args.some((a) => a.startsWith("--jwt-"))) args.push("--insecure");
    const proc = spawn(PUSHD_BIN, args, { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    await new Promise((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("pushd did not start within 20 s:\n" + this.logs.join("\n"))), 20000);
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`pushd exited with ${code}:\n${this.logs.join("\n")}`));
      });
      proc.stderr.setEncoding("utf8");
      proc.stderr.on("data", (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.logs.push(line);
          const m = /pushd serving.* ws=ws:\/\/127\.0\.0\.1:(\d+)(\S*) api=http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
          if (m) {
            this.wsPort = Number(m[1]);
            this.wsPath = m[2];
            this.apiPort = Number(m[3]);
            clearTimeout(timer);
            resolve();
          }
        }
      });
    });
  }

  /** wsURL is the WebSocket endpoint. */
  get wsURL() {
    return `ws://127.0.0.1:${this.wsPort}${this.wsPath}`;
  }

  /** origin is the http:// origin of the WebSocket port. */
  get origin() {
    return `http://127.0.0.1:${this.wsPort}`;
  }

  /** kill stops the process with signal and waits for it to exit. */
  async kill(signal = "SIGKILL") {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }

  /** restart kills pushd (a crash: clients see 1006) and starts it again
   * on the same ports. */
  async restart() {
    await this.kill("SIGKILL");
    await this.start();
  }

  /** publish posts one message over the HTTP API and checks the 200. */
  async publish(topic, data) {
    const res = await fetch(`http://127.0.0.1:${this.apiPort}/v1/publish`, {
      method: "POST",
      body: JSON.stringify({ topic, data }),
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`publish ${topic}: ${res.status} ${body}`);
    return JSON.parse(body);
  }

  /** metric returns a gauge or counter from /metrics; name may carry its
   * labels as exposed, e.g. `pushd_deflate_in_bytes_total{kind="pushes"}`. */
  async metric(name) {
    const text = await (await fetch(`http://127.0.0.1:${this.apiPort}/metrics`)).text();
    const quoted = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const m = new RegExp(`^${quoted} (\\S+)$`, "m").exec(text);
    if (!m) throw new Error(`metric ${name} not found`);
    return Number(m[1]);
  }
}

/** signJWT returns an HS256 JWT (RFC 7519) for pushd's --jwt-secret-files. */
export function signJWT(secret, payload, kid) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT", kid });
  const body = b64(payload);
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** sleep waits ms milliseconds. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** waitFor polls cond until it is true, or rejects after ms. */
export async function waitFor(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** nextEvent resolves with the arguments of the next `event` on emitter
 * that satisfies pred, or rejects after ms. */
export function nextEvent(emitter, event, pred = () => true, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${ms} ms`));
    }, ms);
    const off = emitter.on(event, (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

/** countingClock wraps the real timers and counts live ones, so a test can
 * check that close() leaves none behind. */
export function countingClock() {
  const live = new Set();
  return {
    live,
    now: () => Date.now(),
    setTimeout(fn, ms) {
      const h = setTimeout(() => {
        live.delete(h);
        fn();
      }, ms);
      live.add(h);
      return h;
    },
    clearTimeout(h) {
      live.delete(h);
      clearTimeout(h);
    },
  };
}

/** seededRandom is a small deterministic PRNG (mulberry32) whose draws are
 * recorded in .draws. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  const draws = [];
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    draws.push(r);
    return r;
  };
  random.draws = draws;
  return random;
}

/** Proxy is a TCP relay between clients and pushd that can cut every
 * connection, as a network drop would, while pushd keeps running. */
export class Proxy {
  constructor(target) {
    this.target = target;
    this.sockets = new Set();
    this.server = net.createServer((down) => {
      const up = net.connect(target, "127.0.0.1");
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      down.pipe(up).pipe(down);
      down.on("close", () => up.destroy());
      up.on("close", () => down.destroy());
    });
  }
  listen() {
    return new Promise((r) => this.server.listen(0, "127.0.0.1", () => r(this.server.address().port)));
  }
  cut() {
    for (const s of this.sockets) s.destroy();
  }
  close() {
    this.cut();
    this.server.close();
  }
}
