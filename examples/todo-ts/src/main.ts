// The todo list of examples/todo-web, written in TypeScript on headwater-browser: todos
// live in the app's own IndexedDB store, each write captures its change in the same
// transaction, and one tab (the Web Lock's holder) delivers to Flume on the page's own
// origin.
import {
  Headwater,
  HeadwaterError,
  OUTBOX_STORE,
  init,
  installHeadwater,
  type Status,
} from "headwater-browser";

const DB = "todo-ts";
const TODOS = "todos";

interface Todo {
  id: string;
  title: string;
  /** 0 or 1: IndexedDB cannot index booleans. */
  done: 0 | 1;
}

/** Opens the app's database: its store and index in version 1, headwater in version 2. */
function openDatabase(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 2);
    request.onupgradeneeded = (event) => {
      const db = request.result;
      if (event.oldVersion < 1) {
        db.createObjectStore(TODOS, { keyPath: "id" }).createIndex("by_done", "done");
      }
      if (event.oldVersion < 2) {
        installHeadwater(db);
      }
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`no #${id}`);
  return found as T;
}

function requestDone<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

class App {
  #rendering = false;
  #dirty = false;

  constructor(
    readonly db: IDBDatabase,
    readonly headwater: Headwater,
  ) {}

  /** Writes `todo` (or deletes `id`) and captures the change in one transaction. */
  async write(todo: Todo | { id: string; deleted: true }): Promise<void> {
    const tx = this.db.transaction([TODOS, OUTBOX_STORE], "readwrite", { durability: "strict" });
    const todos = tx.objectStore(TODOS);
    let receipt;
    if ("deleted" in todo) {
      todos.delete(todo.id);
      receipt = this.headwater.capture(tx, { collection: TODOS, key: todo.id, op: "delete" });
    } else {
      todos.put(todo);
      receipt = this.headwater.capture(tx, {
        collection: TODOS,
        key: todo.id,
        op: "update",
        value: { ...todo },
      });
    }
    await receipt;
    await this.render();
  }

  async todos(): Promise<Map<string, Todo>> {
    const tx = this.db.transaction(TODOS, "readonly");
    const all = await requestDone(tx.objectStore(TODOS).getAll() as IDBRequest<Todo[]>);
    return new Map(all.sort((a, b) => a.id.localeCompare(b.id)).map((todo) => [todo.id, todo]));
  }

  /** pending while a change of the row waits, dead while one is dead-lettered. */
  async rowStates(): Promise<Map<string, string>> {
    const states = new Map<string, string>();
    for (const letter of await this.headwater.deadLetters({ limit: 1000 })) {
      if (letter.change) states.set(letter.change.key, `dead: ${letter.reason}`);
    }
    for (const entry of await this.headwater.pending({ limit: 1000 })) {
      if (entry.change) states.set(entry.change.key, "pending");
    }
    return states;
  }

  /** Draws from the latest state; a call during a render makes it run once more. */
  async render(): Promise<void> {
    if (this.#rendering) {
      this.#dirty = true;
      return;
    }
    this.#rendering = true;
    try {
      do {
        this.#dirty = false;
        await this.draw();
      } while (this.#dirty);
    } finally {
      this.#rendering = false;
    }
  }

  async draw(): Promise<void> {
    const status = await this.headwater.status();
    const states = await this.rowStates();
    const todos = await this.todos();
    const header = element("status");
    header.textContent = describe(status);
    header.className = status.blocked ? "blocked" : status.stalledSince ? "stalled" : "";
    const list = element("todos");
    list.replaceChildren(
      ...[...todos.values()].map((todo) => {
        const state = states.get(todo.id) ?? "synced";
        const item = document.createElement("li");
        item.className = state === "pending" || state === "synced" ? state : "dead";
        item.dataset.todo = todo.id;
        const title = document.createElement("span");
        title.textContent = `${todo.done ? "☑" : "☐"} ${todo.title}`;
        title.dataset.id = todo.id;
        title.dataset.action = "toggle";
        const badge = document.createElement("span");
        badge.className = "state";
        badge.textContent = state;
        const remove = document.createElement("button");
        remove.textContent = "×";
        remove.dataset.id = todo.id;
        remove.dataset.action = "delete";
        item.append(title, badge, remove);
        return item;
      }),
    );
  }
}

/** The header line: the outbox at a glance (the same words as todo-web's). */
function describe(status: Status): string {
  let line =
    `pending ${status.pending} · in flight ${status.inFlight} · delivered ${status.delivered}` +
    ` · dead-lettered ${status.deadLettered} · ${status.leader ? "this tab sends" : "another tab sends"}`;
  if (status.blocked) line += ` · blocked: ${status.blocked}`;
  else if (status.stalledSince) line += " · stalled";
  if (status.lastError) line += ` · last error: ${status.lastError}`;
  return line;
}

/** A sortable id: the time, then four random digits (two tabs in one millisecond). */
function newId(): string {
  const random = crypto.getRandomValues(new Uint32Array(1))[0] % 10_000;
  return `${Date.now().toString().padStart(13, "0")}${random.toString().padStart(4, "0")}`;
}

async function main(): Promise<void> {
  await init();
  const db = await openDatabase();
  const headwater = await Headwater.start({
    database: db,
    // Flume on the page's own origin: no CORS needed.
    flume: "/",
    source: "todo-ts",
    leaderLock: DB,
    idlePollMs: 1000,
  });
  const app = new App(db, headwater);

  element<HTMLFormElement>("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = element<HTMLInputElement>("title");
    const title = input.value.trim();
    if (!title) return;
    input.value = "";
    app.write({ id: newId(), title, done: 0 }).catch(report);
  });
  element("todos").addEventListener("click", (event) => {
    const target = event.target as HTMLElement;
    const { id, action } = target.dataset;
    if (!id || !action) return;
    const change =
      action === "toggle"
        ? app.todos().then((todos) => {
            const todo = todos.get(id);
            return todo ? app.write({ ...todo, done: todo.done ? 0 : 1 }) : undefined;
          })
        : app.write({ id, deleted: true });
    change.catch(report);
  });

  headwater.onChange(() => void app.render().catch(report));
  // Another tab may be the one that sends: this tab's outbox then does not move, so it
  // looks at the shared database every second.
  setInterval(() => {
    if (!headwater.isLeader) void app.render().catch(report);
  }, 1000);
  await app.render();
}

function report(error: unknown): void {
  if (error instanceof HeadwaterError) {
    console.error(`headwater ${error.code}: ${error.message}`);
  } else {
    console.error(error);
  }
}

main().catch((error) => {
  report(error);
  element("status").textContent = `failed to start: ${error}`;
});
