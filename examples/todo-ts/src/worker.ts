// headwater in a dedicated Web Worker: the worker opens the database, starts delivery,
// captures what the page asks it to and reports back. checks.ts runs it once.
import { Headwater, OUTBOX_STORE, init, installHeadwater } from "headwater-browser";

export interface WorkerRequest {
  database: string;
  count: number;
  /** Hide `navigator.locks` and start two handles on the database, as two tabs of a
   * browser without Web Locks would: `delivered` is then the sum of both handles'. */
  withoutWebLocks?: boolean;
}

export type WorkerReply =
  | { ok: true; delivered: number; pending: number; leader: boolean; lockHeld: boolean }
  | { ok: false; error: string };

function open(name: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore("todos", { keyPath: "id" });
      installHeadwater(request.result);
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Two handles under one leader lock name where Web Locks are missing: both sync, and
 * the outbox's lease alone must keep them from sending the same changes. */
async function twoTabs(db: IDBDatabase, lock: string, count: number): Promise<WorkerReply> {
  const options = { database: db, flume: "/", source: "worker", leaderLock: lock, batchSize: 10 };
  const first = await Headwater.start(options);
  const second = await Headwater.start(options);
  for (let i = 0; i < count; i++) {
    const tx = db.transaction(["todos", OUTBOX_STORE], "readwrite");
    const todo = { id: `t${i}`, title: `tab ${i % 2}` };
    tx.objectStore("todos").put(todo);
    const tab = i % 2 === 0 ? first : second;
    await tab.capture(tx, { collection: "todos", key: todo.id, op: "insert", value: todo });
  }
  await first.flush();
  await second.flush();
  const delivered = first.counters().delivered + second.counters().delivered;
  const pending = (await first.status()).pending;
  const leader = first.isLeader && second.isLeader;
  await first.shutdown();
  await second.shutdown();
  return { ok: true, delivered, pending, leader, lockHeld: false };
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const { database, count, withoutWebLocks } = event.data;
  let reply: WorkerReply;
  try {
    await init();
    const db = await open(database);
    if (withoutWebLocks) {
      Object.defineProperty(navigator, "locks", { value: undefined, configurable: true });
      reply = await twoTabs(db, database, count);
      db.close();
      self.postMessage(reply);
      return;
    }
    // A relative URL resolves against the worker's location, the page's origin.
    const headwater = await Headwater.start({ database: db, flume: "/", source: "worker", leaderLock: database });
    for (let i = 0; i < count; i++) {
      const tx = db.transaction(["todos", OUTBOX_STORE], "readwrite");
      const todo = { id: `w${i}`, title: `from the worker ${i}` };
      tx.objectStore("todos").put(todo);
      await headwater.capture(tx, { collection: "todos", key: todo.id, op: "insert", value: todo });
    }
    await headwater.flush();
    const status = await headwater.status();
    const locks = await navigator.locks.query();
    const lockHeld = (locks.held ?? []).some((lock) => lock.name === database);
    reply = { ok: true, delivered: status.delivered, pending: status.pending, leader: headwater.isLeader, lockHeld };
    await headwater.shutdown();
    db.close();
  } catch (error) {
    const code = (error as { code?: string }).code;
    reply = { ok: false, error: `${code ?? ""} ${error}` };
  }
  self.postMessage(reply);
};
