// Types of headwater-browser. Every promise rejects with a HeadwaterError (or, for a
// programming error outside headwater, whatever was thrown).

/** Any value JSON can carry: what a change's value may be. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** What `init` can load the wasm module from. */
export type InitInput =
  | RequestInfo
  | URL
  | Response
  | BufferSource
  | WebAssembly.Module
  | Promise<Response | BufferSource | WebAssembly.Module>;

/**
 * Loads the wasm module; await it once before anything else. By default it is fetched
 * from next to the package's module (bundlers such as Vite copy it).
 */
export function init(moduleOrPath?: InitInput): Promise<void>;

/** The object store the app's capturing transactions must include. */
export const OUTBOX_STORE: "headwater_changes";

/** Every object store headwater installs; the app must not use these names. */
export const HEADWATER_STORES: readonly string[];

/**
 * Installs headwater's object stores. Call it inside the app's own
 * `onupgradeneeded`, with the database being upgraded (`request.result`), in the
 * version that adds headwater. Idempotent.
 */
export function installHeadwater(database: IDBDatabase): void;

/** The stable codes of HeadwaterError. */
export type HeadwaterErrorCode =
  /** `init()` was not awaited first. */
  | "NOT_INITIALIZED"
  /** An argument of the wrong shape (the message says which). */
  | "INVALID_ARGUMENT"
  /** An unknown op, an empty collection or key, a value that is not JSON. */
  | "INVALID_CHANGE"
  /** installHeadwater could not create the stores. */
  | "UPGRADE"
  /** headwater could not open its connection to the database. */
  | "IDB_OPEN"
  /** The database has no headwater stores: call installHeadwater in an upgrade. */
  | "NOT_INSTALLED"
  /** Bad delivery settings (batch size, in flight, idle poll, a zero timeout or one not
   * below the lease, a header that cannot be sent). */
  | "CONFIG"
  /** No endpoint, or one that is not a valid http(s) URL. */
  | "ENDPOINTS"
  /** headwater could not start. */
  | "START"
  /** The browser's storage quota is used up: nothing of the write was stored. */
  | "QUOTA_EXCEEDED"
  /** The connection closed (another tab upgrades or deletes the database): reload. */
  | "STORE_CLOSED"
  /** The outbox is at its limit: wait for delivery, then capture again. */
  | "OUTBOX_FULL"
  /** The change cannot be stored (the transaction does not cover OUTBOX_STORE, or is not readwrite). */
  | "UNSTORABLE"
  /** The outbox's seqs are used up (after 2^53 changes). */
  | "SEQ_EXHAUSTED"
  /** The stored outbox is damaged beyond use. */
  | "STORE_UNUSABLE"
  /** Another IndexedDB failure (the transaction aborted, ...). */
  | "STORE"
  /** flush: delivery is blocked (e.g. Flume sends no CORS headers); status().blocked says why. */
  | "BLOCKED"
  /** flush: delivery is paused. */
  | "PAUSED"
  /** flush: headwater was shut down. */
  | "STOPPED"
  /** flush failed otherwise. */
  | "FLUSH";

/** An error of headwater's, with a stable `code` to branch on. */
export class HeadwaterError extends Error {
  constructor(code: HeadwaterErrorCode, message: string, options?: ErrorOptions);
  readonly name: "HeadwaterError";
  readonly code: HeadwaterErrorCode;
}

/** How delivery runs. */
export interface StartOptions {
  /** The app's open database, with headwater's stores installed. */
  database: IDBDatabase;
  /** Flume HTTP source URLs; a relative URL is on the page's origin (no CORS). */
  flume: string | string[];
  /** The `source` header on every event (e.g. the app's name). */
  source?: string;
  /**
   * The Web Lock whose holder sends: one tab of the origin delivers, the others only
   * capture, and the next takes over when it closes. Without it, every tab sends.
   */
  leaderLock?: string;
  /** Events per request (default 100). */
  batchSize?: number;
  /** Requests in flight at once (default 4; 1 keeps all changes in capture order). */
  maxInFlight?: number;
  /** How often an idle outbox looks for other tabs' changes, in ms (default 30000). */
  idlePollMs?: number;
  /** A request's timeout in ms (default 10000). */
  timeoutMs?: number;
  /** Headers sent with every request (e.g. `authorization`). */
  headers?: Record<string, string>;
}

/** One change to one record. */
export type Change =
  | {
      collection: string;
      key: string;
      op: "insert" | "update";
      /** The record's new value: any JSON value. */
      value: JsonValue;
      /** Flume headers of the app's own. */
      headers?: Record<string, string>;
    }
  | {
      collection: string;
      key: string;
      op: "delete";
      value?: undefined;
      headers?: Record<string, string>;
    };

/** A stored change: its place in the outbox and its idempotency key. */
export interface Receipt {
  /** Its place in the outbox (increasing in capture order). */
  seq: number;
  /** Its UUIDv7: the `id` header of its event, the same on every retry. */
  id: string;
}

/** The outbox at a glance. Times are ISO 8601 strings. */
export interface Status {
  pending: number;
  pendingBytes: number;
  inFlight: number;
  deadLettered: number;
  /** Changes delivered by this tab since start. */
  delivered: number;
  requests: number;
  retries: number;
  oldestPendingAt: string | null;
  /** Why delivery is blocked (it waits for an operator or a fix), or null. */
  blocked: string | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  /** Since when delivery has made no progress while changes wait, or null. */
  stalledSince: string | null;
  /** Nothing pending, nothing in flight, nothing dead-lettered. */
  synced: boolean;
  /** Whether this tab sends. */
  leader: boolean;
}

/** This tab's running totals since start. */
export interface Counters {
  requests: number;
  retries: number;
  delivered: number;
  deadLettered: number;
  /** Events the server said it rejected in an answer that accepted the rest. */
  rejectedByServer: number;
}

/** A captured change as stored. */
export interface StoredChange {
  seq: number;
  id: string;
  capturedAt: string;
  collection: string;
  key: string;
  op: "insert" | "update" | "delete";
  value: JsonValue | null;
  headers: Record<string, string>;
}

/** A change waiting in the outbox. */
export interface PendingChange {
  seq: number;
  /** null if the stored change cannot be read (see `unreadable`). */
  change: StoredChange | null;
  attempts: number | null;
  unreadable: string | null;
}

/** A change headwater gave up on, kept with the reason until requeued or discarded. */
export interface DeadLetter {
  seq: number;
  reason: string;
  at: string;
  attempts: number;
  change: StoredChange | null;
  /** The stored text, if the change could not be read. */
  unreadable: string | null;
}

/** The last acknowledged change of one record. */
export interface SyncMarker {
  lastAckedSeq: number;
  ackedAt: string;
}

/** A page of the outbox or the dead letters. */
export interface Page {
  /** Only entries with a seq above this. */
  after?: number;
  /** At most this many (default 100). */
  limit?: number;
}

/** headwater running in this page on the app's IndexedDB database. */
export class Headwater {
  private constructor();
  /** Starts delivery from the outbox in `options.database` to `options.flume`. */
  static start(options: StartOptions): Promise<Headwater>;
  /**
   * Captures `change` inside `tx`, the app's own readwrite transaction over its stores
   * and OUTBOX_STORE. Call it in the same task as the app's writes (before any await
   * of something else). Resolves once `tx` completes; rejects if it aborts, and then
   * neither the app's writes nor the change were stored. Open `tx` with
   * `{ durability: "strict" }` for both to be on disk when it completes.
   */
  capture(tx: IDBTransaction, change: Change): Promise<Receipt>;
  status(): Promise<Status>;
  /**
   * This tab's running totals as delivery last published them: read from memory,
   * cheap enough for every onChange (status() reads the database).
   */
  counters(): Counters;
  /** Whether this tab sends. */
  readonly isLeader: boolean;
  /** Calls `listener` whenever this tab's outbox moves; returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
  syncMarker(collection: string, key: string): Promise<SyncMarker | null>;
  /** Resolves once every change captured so far is delivered or dead-lettered. */
  flush(): Promise<void>;
  pending(page?: Page): Promise<PendingChange[]>;
  deadLetters(page?: Page): Promise<DeadLetter[]>;
  /** Puts dead letters back in the outbox; resolves with how many were. */
  requeue(seqs: number[]): Promise<number>;
  /** Deletes dead letters for good; resolves with how many were. */
  discard(seqs: number[]): Promise<number>;
  pause(): void;
  resume(): void;
  /** Sends now, ending a backoff wait. */
  flushNow(): void;
  /** Stops delivery (the outbox stays for the next start) and releases the lock. */
  shutdown(): Promise<void>;
}
