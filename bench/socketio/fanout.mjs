// fanout.mjs drives a Socket.IO server with real socket.io-client
// connections (WebSocket transport) and measures its fan-out: N subscribers
// on one topic, M messages published over HTTP at R per second, for each
// step of --rate/--messages. run.sh runs it against pushd and against
// server.mjs in one sitting.
//
//   node fanout.mjs --url http://127.0.0.1:8080 --publish http://127.0.0.1:8081/v1/publish \
//     --server-pid 1234 --subs 5000 --rate 10,500 --messages 200,200 --label pushd --out pushd.json
//   node fanout.mjs report pushd.json socketio.json      (a Markdown table with ratios)
//
// The clients run in --workers child processes (this file with "worker"),
// so the driver's publisher is not slowed by their event loops. For each
// step it reports deliveries, losses, deliveries per second (first publish
// to last delivery), latency percentiles (publish to receipt, both clocks
// this machine's), and the server process's CPU time per delivery (from
// /proc/<pid>/stat around the step), plus the server's RSS growth per
// connection after the subscribers joined. Loopback only; every wait is
// bounded.
import { fork, execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms precision

// ---------------------------------------------------------------- driver

async function drive() {
  const { values: o } = parseArgs({
    options: {
      url: { type: "string", default: "http://127.0.0.1:8080" },
      path: { type: "string", default: "/socket.io/" },
      publish: { type: "string", default: "http://127.0.0.1:8081/v1/publish" },
      "server-pid": { type: "string" },
      subs: { type: "string", default: "5000" },
      workers: { type: "string", default: "2" },
      rate: { type: "string", default: "10,500" },
      messages: { type: "string", default: "200,200" },
      size: { type: "string", default: "100" },
      topic: { type: "string", default: "fan" },
      label: { type: "string", default: "server" },
      out: { type: "string" },
      "drain-timeout": { type: "string", default: "10" },
    },
  });
  for (const u of [o.url, o.publish]) {
    const h = new URL(u).hostname;
    if (h !== "127.0.0.1" && h !== "localhost" && h !== "[::1]") throw new Error(`${u}: loopback targets only`);
  }
  const subs = Number(o.subs), nWorkers = Math.max(1, Number(o.workers));
  const rates = o.rate.split(",").map(Number), counts = o.messages.split(",").map(Number);
  if (rates.length !== counts.length) throw new Error("--rate and --messages need as many values");
  const pid = o["server-pid"] ? Number(o["server-pid"]) : 0;
  const hz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const cpu = () => {
    if (!pid) return 0;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / hz; // utime + stime, seconds
  };
  const rss = () => {
    if (!pid) return 0;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  };

  const workers = [];
  for (let w = 0; w < nWorkers; w++) workers.push(new Worker(fileURLToPath(import.meta.url)));
  const result = { label: o.label, subs, workers: nWorkers, size: Number(o.size), steps: [] };
  try {
    const rss0 = rss();
    const t0 = now();
    const per = Math.ceil(subs / nWorkers);
    const opened = await Promise.all(
      workers.map((w, i) => w.call({ op: "open", url: o.url, path: o.path, topic: o.topic, count: Math.min(per, subs - i * per) }, 300000)),
    );
    const failed = opened.reduce((s, r) => s + r.failed, 0);
    if (failed > 0) throw new Error(`${failed} of ${subs} clients failed to connect or subscribe`);
    result.connect_s = (now() - t0) / 1000;
    await sleep(2000); // let the server settle before its RSS is read
    result.rss_per_conn = pid ? Math.round((rss() - rss0) / subs) : null;
    log(`${o.label}: ${subs} subscribers in ${result.connect_s.toFixed(1)} s, server RSS +${result.rss_per_conn} B per connection`);

    const pad = "x".repeat(Math.max(0, Number(o.size) - 40));
    for (let s = 0; s < rates.length; s++) {
      const rate = rates[s], messages = counts[s], expected = messages * subs;
      await Promise.all(workers.map((w) => w.call({ op: "step" })));
      const cpu0 = cpu();
      const start = now();
      for (let i = 0; i < messages; i++) {
        const due = start + (i * 1000) / rate;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        const res = await fetch(o.publish, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ topic: o.topic, data: { t: now(), i, pad } }),
        });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`publish: HTTP ${res.status}`);
      }
      const published = now();
      let got = 0;
      for (const deadline = now() + Number(o["drain-timeout"]) * 1000; now() < deadline; await sleep(20)) {
        got = (await Promise.all(workers.map((w) => w.call({ op: "count" })))).reduce((a, r) => a + r.count, 0);
        if (got >= expected) break;
      }
      const cpu1 = cpu();
      const reports = await Promise.all(workers.map((w) => w.call({ op: "report" })));
      const lat = concat(reports.map((r) => r.lat));
      lat.sort();
      const last = Math.max(...reports.map((r) => r.last));
      const deliveries = lat.length;
      const pct = (q) => (deliveries ? lat[Math.min(deliveries - 1, Math.floor(q * deliveries))] : NaN);
      const step = {
        rate, messages, expected, deliveries, lost: expected - deliveries,
        achieved_rate: messages / ((published - start) / 1000),
        deliveries_per_s: deliveries / ((last - start) / 1000),
        p50_ms: pct(0.5), p90_ms: pct(0.9), p99_ms: pct(0.99), max_ms: deliveries ? lat[deliveries - 1] : NaN,
        server_cpu_s: cpu1 - cpu0,
        cpu_us_per_delivery: deliveries ? ((cpu1 - cpu0) * 1e6) / deliveries : NaN,
      };
      result.steps.push(step);
      log(`${o.label} ${rate}/s x ${messages}: ${deliveries}/${expected} delivered, ${fmt(step.deliveries_per_s, 0)} deliveries/s, ` +
        `p50 ${fmt(step.p50_ms, 1)} ms p99 ${fmt(step.p99_ms, 1)} ms, ${fmt(step.cpu_us_per_delivery, 2)} µs server CPU/delivery`);
    }
  } finally {
    await Promise.all(workers.map((w) => w.exit()));
  }
  const json = JSON.stringify(result, null, 1);
  if (o.out) writeFileSync(o.out, json + "\n");
  else console.log(json);
}

/** Worker is the driver's handle on one child process. */
class Worker {
  constructor(file) {
    this.proc = fork(file, ["worker"], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.waiting = [];
    this.proc.on("message", (m) => this.waiting.shift()?.resolve(m));
    this.proc.on("exit", (code) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`worker exited with ${code}`));
    });
  }

  /** call sends one request and resolves with its answer (one at a time). */
  call(msg, ms = 60000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker: no answer to ${msg.op} in ${ms} ms`)), ms);
      this.waiting.push({
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.proc.send(msg);
    });
  }

  async exit() {
    if (this.proc.exitCode !== null) return;
    const gone = new Promise((r) => this.proc.once("exit", r));
    this.proc.send({ op: "exit" });
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 10000);
    await gone;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------- worker

async function worker() {
  const { io } = await import("socket.io-client");
  const sockets = [];
  let lat = new Float64Array(1 << 16), n = 0, last = 0;
  const onMessage = (m) => {
    const t = now();
    if (n === lat.length) {
      const bigger = new Float64Array(lat.length * 2);
      bigger.set(lat);
      lat = bigger;
    }
    lat[n++] = t - m.data.t;
    last = t;
  };
  const open = (url, path, topic) =>
    new Promise((resolve) => {
      const s = io(url, { path, transports: ["websocket"], forceNew: true, reconnection: false, timeout: 60000 });
      sockets.push(s);
      s.on("message", onMessage);
      s.once("connect_error", () => resolve(false));
      s.once("connect", () => s.timeout(60000).emit("subscribe", [topic], (err, res) => resolve(!err && res?.ok === true)));
    });
  process.on("message", async (m) => {
    switch (m.op) {
      case "open": {
        let failed = 0;
        for (let i = 0; i < m.count; i += 100) {
          const batch = [];
          for (let j = i; j < Math.min(m.count, i + 100); j++) batch.push(open(m.url, m.path, m.topic));
          failed += (await Promise.all(batch)).filter((ok) => !ok).length;
        }
        process.send({ failed });
        break;
      }
      case "step":
        n = 0;
        last = 0;
        process.send({ ok: true });
        break;
      case "count":
        process.send({ count: n });
        break;
      case "report":
        process.send({ lat: lat.slice(0, n), last });
        break;
      case "exit":
        for (const s of sockets) s.disconnect();
        setTimeout(() => process.exit(0), 100);
        break;
    }
  });
}

// ---------------------------------------------------------------- report

/** report prints a Markdown table of two or more result files, each step
 * with the ratio of the first to the second. */
function report(files) {
  const rs = files.map((f) => JSON.parse(readFileSync(f, "utf8")));
  const [a, b] = rs;
  const out = [];
  out.push(`${a.subs} socket.io-client subscribers (WebSocket transport) on one topic, ${a.size}-byte payloads, one sequential HTTP publisher.`);
  out.push("");
  out.push("| server | asked msg/s × messages | published msg/s | delivered | deliveries/s | p50 ms | p99 ms | server CPU µs/delivery |");
  out.push("|---|---|---|---|---|---|---|---|");
  for (let s = 0; s < a.steps.length; s++) {
    for (const r of rs) {
      const x = r.steps[s];
      out.push(`| ${r.label} | ${x.rate} × ${x.messages} | ${fmt(x.achieved_rate, 0)} | ${x.deliveries}/${x.expected} | ${fmt(x.deliveries_per_s, 0)} | ${fmt(x.p50_ms, 1)} | ${fmt(x.p99_ms, 1)} | ${fmt(x.cpu_us_per_delivery, 2)} |`);
    }
    if (b) {
      const x = a.steps[s], y = b.steps[s];
      out.push(`| ${a.label} / ${b.label} | | ${fmt(x.achieved_rate / y.achieved_rate, 2)}× | | ${fmt(x.deliveries_per_s / y.deliveries_per_s, 2)}× | ${fmt(x.p50_ms / y.p50_ms, 2)}× | ${fmt(x.p99_ms / y.p99_ms, 2)}× | ${fmt(x.cpu_us_per_delivery / y.cpu_us_per_delivery, 2)}× |`);
    }
  }
  out.push("");
  out.push("Latency is publish to receipt in the socket.io-client processes, which share the machine's cores with the server: when a server delivers faster than the clients read, the backlog waits in the clients and shows up as latency.");
  out.push("");
  out.push("| server | connect time s | server RSS growth per connection (B) |");
  out.push("|---|---|---|");
  for (const r of rs) out.push(`| ${r.label} | ${fmt(r.connect_s, 1)} | ${r.rss_per_conn ?? "n/a"} |`);
  console.log(out.join("\n"));
}

// ---------------------------------------------------------------- helpers

function concat(arrays) {
  const out = new Float64Array(arrays.reduce((s, a) => s + a.length, 0));
  let off = 0;
  for (const a of arrays) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

function fmt(x, digits) {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function log(s) {
  process.stderr.write(s + "\n");
}

// Dispatch last: the classes above must be initialized first.
if (process.argv[2] === "worker") worker();
else if (process.argv[2] === "report") report(process.argv.slice(3));
else await drive();
