// headwater-browser: the typed module over headwater's wasm bindings. The bindings do
// the work (IndexedDB outbox, delivery, retries, dead letters); this file gives them
// the shape a JavaScript developer expects: an explicit init(), option objects, Error
// subclasses with a stable code, and onChange subscriptions.
import initBindings, {
  Headwater as Bindings,
  installHeadwater as installBindings,
} from "./wasm/headwater_js.js";

/** The object store the app's capturing transactions must include. */
export const OUTBOX_STORE = "headwater_changes";

/** Every object store headwater installs (reserved: the app must not use these names). */
export const HEADWATER_STORES = Object.freeze([
  "headwater_changes",
  "headwater_retries",
  "headwater_dead_letters",
  "headwater_marker_log",
  "headwater_state",
]);

/** An error of headwater's, with a stable `code` to branch on. */
export class HeadwaterError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "HeadwaterError";
    this.code = code;
  }
}

let loading;
let ready = false;

/**
 * Loads the wasm module; await it once before anything else. By default the module
 * is fetched from next to this file (bundlers copy it); pass a URL, a Response, bytes
 * or a compiled WebAssembly.Module to load it from elsewhere.
 */
export function init(moduleOrPath) {
  loading ??= initBindings(
    moduleOrPath === undefined ? undefined : { module_or_path: moduleOrPath },
  ).then(() => {
    ready = true;
  });
  return loading;
}

function wrap(error) {
  if (error instanceof HeadwaterError) {
    return error;
  }
  if (error instanceof Error && error.name === "HeadwaterError" && typeof error.code === "string") {
    return new HeadwaterError(error.code, error.message, { cause: error });
  }
  return error;
}

function rethrow(error) {
  throw wrap(error);
}

function ensureReady() {
  if (!ready) {
    throw new HeadwaterError("NOT_INITIALIZED", "headwater is not loaded: await init() first");
  }
}

/** Calls `body`, giving headwater's errors their class. */
function guarded(body) {
  ensureReady();
  try {
    return body();
  } catch (error) {
    rethrow(error);
  }
}

/** Calls `body`, which gives a promise: every error, even one thrown before the
 * promise exists, comes as its rejection. */
function guardedAsync(body) {
  try {
    ensureReady();
    return body().catch(rethrow);
  } catch (error) {
    return Promise.reject(wrap(error));
  }
}

/** A stored change's value comes as JSON text (it keeps the app's key order). */
function parsed(change) {
  if (change) {
    const { valueJson, ...rest } = change;
    return { ...rest, value: valueJson == null ? null : JSON.parse(valueJson) };
  }
  return change;
}

/**
 * Installs headwater's object stores. Call it inside the app's own `onupgradeneeded`,
 * with the database being upgraded, in the version that adds headwater (idempotent).
 */
export function installHeadwater(database) {
  guarded(() => installBindings(database));
}

/** headwater running in this page on the app's IndexedDB database. */
export class Headwater {
  #bindings;
  #listeners = new Set();
  #watching = false;
  #stopped = false;

  /** @internal use Headwater.start */
  constructor(bindings) {
    if (!(bindings instanceof Bindings)) {
      throw new HeadwaterError("INVALID_ARGUMENT", "use Headwater.start(options)");
    }
    this.#bindings = bindings;
  }

  /** Starts delivery from the outbox in `options.database` to `options.flume`. */
  static async start(options) {
    ensureReady();
    const { database, flume, ...rest } = options ?? {};
    if (typeof IDBDatabase !== "undefined" && !(database instanceof IDBDatabase)) {
      throw new HeadwaterError("INVALID_ARGUMENT", "start needs `database`: the app's open IDBDatabase");
    }
    const endpoints = typeof flume === "string" ? [flume] : flume;
    if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((url) => typeof url === "string")) {
      throw new HeadwaterError("INVALID_ARGUMENT", "start needs `flume`: one URL or a non-empty array of URLs");
    }
    const bindings = await Bindings.start(database, endpoints, rest).catch(rethrow);
    return new Headwater(bindings);
  }

  /**
   * Captures `change` inside `tx`, the app's own readwrite transaction over its stores
   * and OUTBOX_STORE, after (or before) the app's own writes in it. Resolves with the
   * change's `{seq, id}` once `tx` completes; rejects if it aborts (then nothing of it
   * was stored).
   */
  capture(tx, change) {
    return guardedAsync(() => {
      const { collection, key, op, value, headers } = change ?? {};
      let json;
      if (value !== undefined) {
        try {
          json = JSON.stringify(value);
        } catch (error) {
          throw new HeadwaterError("INVALID_CHANGE", `the value of ${collection}/${key} is not JSON: ${error.message}`);
        }
      }
      return this.#bindings.capture(tx, String(collection ?? ""), String(key ?? ""), String(op ?? ""), json, headers);
    });
  }

  /** The outbox at a glance. */
  status() {
    return guardedAsync(() => this.#bindings.status());
  }

  /**
   * This tab's running totals (requests, retries, delivered, deadLettered,
   * rejectedByServer) as delivery last published them: read from memory, cheap enough
   * for every onChange (status() reads the database).
   */
  counters() {
    return guarded(() => this.#bindings.counters());
  }

  /** Whether this tab sends (holds the leader lock, or no lock was asked for). */
  get isLeader() {
    return guarded(() => this.#bindings.isLeader);
  }

  /**
   * Calls `listener` whenever this tab's outbox moves (a capture, a delivery, a retry, a
   * dead letter); returns a function that unsubscribes it.
   */
  onChange(listener) {
    if (typeof listener !== "function") {
      throw new HeadwaterError("INVALID_ARGUMENT", "onChange needs a function");
    }
    this.#listeners.add(listener);
    if (!this.#watching) {
      this.#watching = true;
      this.#watch();
    }
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async #watch() {
    try {
      while (this.#listeners.size > 0 && !this.#stopped) {
        await this.#bindings.changed();
        for (const listener of [...this.#listeners]) {
          try {
            listener();
          } catch (error) {
            // A listener's error is the listener's: report it, keep the others.
            queueMicrotask(() => {
              throw error;
            });
          }
        }
      }
    } finally {
      this.#watching = false;
    }
  }

  /** The last acknowledged change of `collection`/`key`, or null. */
  syncMarker(collection, key) {
    return guardedAsync(() => this.#bindings.syncMarker(String(collection), String(key)));
  }

  /** Resolves once every change captured so far is delivered or dead-lettered. */
  flush() {
    return guardedAsync(() => this.#bindings.flush());
  }

  /** Pending changes, oldest first: up to `limit` (100) after seq `after`. */
  pending({ after, limit } = {}) {
    return guardedAsync(() => this.#bindings.pending(after, limit)).then((entries) =>
      entries.map((entry) => ({ ...entry, change: parsed(entry.change) })),
    );
  }

  /** Dead letters, oldest first: up to `limit` (100) after seq `after`. */
  deadLetters({ after, limit } = {}) {
    return guardedAsync(() => this.#bindings.deadLetters(after, limit)).then((letters) =>
      letters.map((letter) => ({ ...letter, change: parsed(letter.change) })),
    );
  }

  /** Puts dead letters back in the outbox; resolves with how many were. */
  requeue(seqs) {
    return guardedAsync(() => this.#bindings.requeue(Float64Array.from(seqs)));
  }

  /** Deletes dead letters for good; resolves with how many were. */
  discard(seqs) {
    return guardedAsync(() => this.#bindings.discard(Float64Array.from(seqs)));
  }

  /** Stops sending until resume() (captures go on). */
  pause() {
    guarded(() => this.#bindings.pause());
  }

  /** Sends again after pause(). */
  resume() {
    guarded(() => this.#bindings.resume());
  }

  /** Sends now, ending a backoff wait. */
  flushNow() {
    guarded(() => this.#bindings.flushNow());
  }

  /** Stops delivery (the outbox stays for the next start) and releases the lock. */
  async shutdown() {
    this.#stopped = true;
    this.#listeners.clear();
    await guardedAsync(() => this.#bindings.shutdown());
  }
}
