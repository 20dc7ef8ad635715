// Type declarations for pushd.js. docs/client-js.md is the manual.

export declare const VERSION: string;

/** Connection state. "disconnected": not connected and will reconnect (or
 * connect() not called yet). "closed": stopped by close() or a terminal
 * close code. */
export type State = "connecting" | "connected" | "disconnected" | "closed";

/** Detail passed with each "state" event. */
export interface StateInfo {
  /** "connecting": the backoff exponent of this attempt. */
  attempt?: number;
  /** "connected": the server's session ID. */
  session?: string | null;
  /** "disconnected" and "closed": the close code and reason. */
  code?: number;
  reason?: string;
  /** "disconnected": milliseconds until the next attempt. */
  delay?: number;
}

/** A position in a durable topic's history. */
export interface Position {
  offset: number;
  epoch: string;
}

/** A message delivered to a subscription handler. */
export interface Message<T = unknown> {
  topic: string;
  /** The published JSON value; a Uint8Array when the payload was not UTF-8
   * (sent as base64 by pushd). */
  data: T;
  /** Per-node, per-topic counter (docs/protocol.md §3). */
  seq: number;
  /** Durable topics only: position in the topic's history. */
  offset?: number;
  epoch?: string;
  /** Set only for an encoding this version does not decode. */
  encoding?: string;
}

/** The reply to a command: `{type: "ok", id, …}`. A publish to a durable
 * topic carries offset and epoch. */
export interface Reply {
  type: "ok";
  id: number;
  offset?: number;
  epoch?: string;
  [field: string]: unknown;
}

/** Timers and time, injectable for tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface Options {
  /** A token, sent as the Sec-WebSocket-Protocol element pushd.token.<jwt>. */
  token?: string;
  /** Called before every connect and reconnect; return the current token. */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** A WebSocket constructor, for runtimes without a global one (Node 20:
   * the ws package's default export). */
  WebSocket?: unknown;
  /** First backoff ceiling in ms (default 500); it doubles per attempt. */
  minReconnectDelay?: number;
  /** Largest backoff ceiling in ms (default 30000). */
  maxReconnectDelay?: number;
  /** A connection that lasted this long (ms, default 60000) resets the backoff. */
  stableAfter?: number;
  /** Time from opening the socket to pushd's welcome (ms, default 10000). */
  connectTimeout?: number;
  /** Extra silence before a ping command, and the time its reply may take
   * (ms, default 10000). */
  heartbeatTimeout?: number;
  /** Overall time a command may take, queue included (ms, default 10000). */
  timeout?: number;
  /** Commands held while disconnected (default 100). */
  maxQueue?: number;
  /** Largest command in bytes (default 65536, pushd's --max-message). */
  maxMessageSize?: number;
  /** Failed attempts before the welcome, in a row, before a
   * "connect_failed" error event (default 3). */
  failuresBeforeError?: number;
  /** Random source in [0, 1) for jitter (default Math.random). */
  random?: () => number;
  /** Timers (default the global ones). */
  clock?: Partial<Clock>;
}

export interface SubscribeOptions {
  /** Resume a durable topic after this position (for example one stored
   * from Subscription.position in an earlier page load). */
  since?: Position;
}

export interface HistoryOptions {
  since?: Position;
  limit?: number;
}

/** Reason a resume did not recover (docs/protocol.md). */
export type RecoveryReason = "epoch_changed" | "trimmed" | "limit" | "not_durable" | (string & {});

interface EventMap {
  [event: string]: unknown[];
}

declare class Emitter<E extends EventMap> {
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E & string>(event: K, fn: (...args: E[K]) => void): () => void;
  off<K extends keyof E & string>(event: K, fn: (...args: E[K]) => void): void;
  once<K extends keyof E & string>(event: K, fn: (...args: E[K]) => void): () => void;
}

export interface ClientEvents extends EventMap {
  state: [state: State, info: StateInfo];
  error: [error: PushdError];
}

export interface SubscriptionEvents extends EventMap {
  subscribed: [info: { recovered?: boolean; reason?: RecoveryReason }];
  recovered: [ok: boolean, reason: RecoveryReason | undefined];
  error: [error: PushdError];
}

export declare class PushdClient extends Emitter<ClientEvents> {
  constructor(url: string | URL, options?: Options);
  readonly state: State;
  /** The current connection's session ID, or null. */
  readonly session: string | null;
  connect(): void;
  close(): void;
  /** Throws PushdError "invalid_topic" for a malformed name. */
  subscribe<T = unknown>(topic: string, handler: (msg: Message<T>) => void, options?: SubscribeOptions): Subscription;
  publish(topic: string, data: unknown): Promise<Reply>;
  history<T = unknown>(topic: string, options?: HistoryOptions): Promise<Message<T>[]>;
}

export declare class Subscription extends Emitter<SubscriptionEvents> {
  /** Made by PushdClient.subscribe only. */
  private constructor();
  readonly topic: string;
  readonly active: boolean;
  /** Last delivered position on a durable topic, or null. */
  readonly position: Position | null;
  unsubscribe(): void;
}

export declare class PushdError extends Error {
  constructor(code: string, message: string, options?: { cause?: unknown });
  /** pushd's error code ("forbidden", "invalid_topic", …) or one of this
   * module's: timeout, disconnected, queue_full, closed, too_large,
   * terminal_close, connect_failed, token_error, bad_url, bad_request,
   * bad_frame, no_websocket, bad_option. */
  readonly code: string;
}
export declare class TimeoutError extends PushdError {
  constructor(message: string);
}
export declare class DisconnectedError extends PushdError {
  constructor(closeCode: number, reason: string);
  readonly closeCode: number;
  readonly reason: string;
}
export declare class QueueFullError extends PushdError {
  constructor(max: number);
}
export declare class ClosedError extends PushdError {
  constructor(message?: string, options?: { cause?: unknown });
}
export declare class ConnectionError extends PushdError {
  constructor(code: string, message: string, details?: { closeCode?: number; reason?: string; attempts?: number });
  readonly closeCode: number | undefined;
  readonly reason: string;
  readonly attempts: number;
}

/** Whether close code `code` means "do not reconnect". */
export declare function isTerminalClose(code: number): boolean;

/** Backoff for attempt n: random() × min(max, min × 2^n). */
export declare function reconnectDelay(attempt: number, min: number, max: number, random?: () => number): number;
