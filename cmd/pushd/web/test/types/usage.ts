// Compiled (not run) by types.test.mjs: the documented API must type-check
// against pushd.d.ts, and misuse must not.
import {
  PushdClient, Subscription, PushdError, TimeoutError, QueueFullError, ClosedError, DisconnectedError, ConnectionError,
  type Message, type State, type StateInfo, type Position, type Reply,
} from "../../pushd.js";

declare const WS: unknown;

const client = new PushdClient("ws://localhost:8080/ws", {
  getToken: async () => "token",
  WebSocket: WS,
  minReconnectDelay: 250,
  maxReconnectDelay: 10_000,
});
client.on("state", (s: State, info: StateInfo) => {
  if (s === "disconnected") console.log(info.delay, info.code);
});
client.on("error", (e) => console.log(e.code, e.message));

interface Tick { price: number }
const sub = client.subscribe<Tick>("ticker.BTC", (msg: Message<Tick>) => {
  const p: number = msg.data.price;
  const o: number | undefined = msg.offset;
  console.log(p, o, msg.epoch, msg.seq, msg.topic);
});
sub.on("recovered", (ok: boolean, reason) => {
  if (!ok) console.log("refetch", reason);
});
const pos: Position | null = sub.position;
client.subscribe("user.42", () => {}, { since: pos ?? undefined });
client.connect();

async function main() {
  const reply: Reply = await client.publish("chat.room1", { text: "hi" });
  console.log(reply.offset, reply.epoch);
  const old = await client.history<Tick>("ticker.BTC", { since: { offset: 1, epoch: "E" }, limit: 10 });
  console.log(old[0]?.data.price);
  try {
    await client.publish("x", 1);
  } catch (e) {
    if (e instanceof TimeoutError || e instanceof QueueFullError || e instanceof ClosedError) console.log(e.code);
    if (e instanceof DisconnectedError) console.log(e.closeCode);
    if (e instanceof ConnectionError) console.log(e.attempts);
    if (e instanceof PushdError) console.log(e.code);
  }
  sub.unsubscribe();
  client.close();
}
void main;

// @ts-expect-error: states are a closed set
const bad: State = "open";
// @ts-expect-error: events are typed
client.on("state", (s: number) => s);
// @ts-expect-error: handlers take a message
client.subscribe("t", (m: string) => m);
void bad;
// @ts-expect-error: subscriptions come from client.subscribe
new Subscription();
