// A small Socket.IO 4.8 broadcast server, the reference that run.sh
// measures pushd's Socket.IO endpoint against. It offers socket.io-client
// the contract pushd offers: emit("subscribe", topics, ack) joins a room per
// topic and acks {ok:true}; pushes arrive as "message" events
// {topic, data}; and a backend publishes with POST /v1/publish
// {"topic":…,"data":…} on a second port, which broadcasts with
// io.to(topic).emit (socket.io encodes a broadcast once for all its
// recipients, its best case). GET /readyz answers 200 once both ports
// listen.
//
//   PORT=8090 API_PORT=8091 node server.mjs
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 8090);
const apiPort = Number(process.env.API_PORT ?? 8091);
const host = "127.0.0.1";

const httpServer = createServer();
// Defaults otherwise (pingInterval 25 s, pingTimeout 20 s, no compression,
// both transports), as an application would run it.
const io = new Server(httpServer, { serveClient: false });
io.on("connection", (socket) => {
  socket.on("subscribe", (topics, ack) => {
    const list = Array.isArray(topics) ? topics : [topics];
    if (list.length === 0 || !list.every((t) => typeof t === "string")) {
      if (typeof ack === "function") ack({ error: { code: "bad_request", message: "topics must be strings" } });
      return;
    }
    socket.join(list);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("unsubscribe", (topics, ack) => {
    for (const t of Array.isArray(topics) ? topics : [topics]) socket.leave(t);
    if (typeof ack === "function") ack({ ok: true });
  });
});

const api = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/readyz") {
    res.end("ok\n");
    return;
  }
  if (req.method !== "POST" || req.url !== "/v1/publish") {
    res.statusCode = 404;
    res.end();
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let m;
    try {
      m = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      m = null;
    }
    if (!m || typeof m.topic !== "string" || !("data" in m)) {
      res.statusCode = 400;
      res.end('{"error":"want {\\"topic\\":…,\\"data\\":…}"}\n');
      return;
    }
    io.to(m.topic).emit("message", { topic: m.topic, data: m.data });
    res.setHeader("Content-Type", "application/json");
    res.end('{"ok":true}\n');
  });
});

let listening = 0;
const ready = () => {
  if (++listening === 2) console.log(`socket.io server ready: socket.io on ${host}:${port}, publish API on ${host}:${apiPort}`);
};
httpServer.listen(port, host, ready);
api.listen(apiPort, host, ready);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    io.close();
    api.close();
    process.exit(0);
  });
}
