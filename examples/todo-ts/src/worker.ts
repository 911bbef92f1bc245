// headwater in a dedicated Web Worker: the worker opens the database, starts delivery,
// captures what the page asks it to and reports back. checks.ts runs it once.
import { Headwater, OUTBOX_STORE, init, installHeadwater } from "headwater-browser";

export interface WorkerRequest {
  database: string;
  count: number;
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

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const { database, count } = event.data;
  let reply: WorkerReply;
  try {
    await init();
    const db = await open(database);
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
