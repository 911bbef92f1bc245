//! The page: its database, its delivery and its DOM.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use headwater::indexeddb::indexed_db_futures::prelude::*;
use headwater::indexeddb::{IdbStore, RecordWrite, open_database};
use headwater::{Headwater, SyncStatus};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Document, HtmlInputElement};

const DB: &str = "todo-web";
const TODOS: &str = "todos";

/// One todo, as the app stores it (a structured value keyed by `id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Todo {
    id: String,
    title: String,
    /// 0 or 1: IndexedDB cannot index booleans.
    done: u8,
}

struct App {
    document: Document,
    store: IdbStore,
    headwater: Headwater,
    /// A render is under way; `dirty` asks it to run once more when done, so the last
    /// render always reads the latest state and renders never interleave.
    rendering: Cell<bool>,
    dirty: Cell<bool>,
}

fn js_error(error: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&error.to_string())
}

/// Opens the database (the app's version 1 store and index, headwater joining in
/// version 2), starts delivery, and draws the page.
#[wasm_bindgen(start)]
pub async fn start() -> Result<(), JsValue> {
    let document = web_sys::window()
        .and_then(|window| window.document())
        .ok_or("no document")?;
    let db = open_database(DB, 2, |upgrade| {
        if upgrade.old_version() < 1 {
            upgrade.create_store(TODOS, Some("id"))?;
            upgrade.create_index(TODOS, "by_done", "done", false)?;
        }
        if upgrade.old_version() < 2 {
            upgrade.install_headwater()?;
        }
        Ok(())
    })
    .await
    .map_err(js_error)?;
    let store = IdbStore::new(db).map_err(js_error)?;
    // Flume on the page's own origin: no CORS needed.
    // One tab sends (the Web Lock's holder); the others capture, and the leader picks
    // their changes up within a second.
    let headwater = Headwater::builder()
        .flume(["/"])
        .source("todo-web")
        .store(store.clone())
        .leader_lock(DB)
        .configure(|config| config.idle_poll_interval = std::time::Duration::from_secs(1))
        .start()
        .map_err(js_error)?;
    let app = Rc::new(App {
        document,
        store,
        headwater,
        rendering: Cell::new(false),
        dirty: Cell::new(false),
    });
    app.listen()?;
    let watcher = Rc::clone(&app);
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            // Taken before the render reads the state, so no change is missed.
            let next = watcher.headwater.changed();
            if let Err(error) = watcher.render().await {
                web_sys::console::error_1(&error);
            }
            if watcher.headwater.is_leader() {
                next.await;
            } else {
                // Another tab delivers: this one's own delivery has nothing to report, so
                // it looks at the shared database every second.
                sleep_ms(1000).await;
            }
        }
    });
    Ok(())
}

impl App {
    fn element(&self, id: &str) -> Result<web_sys::Element, JsValue> {
        self.document
            .get_element_by_id(id)
            .ok_or_else(|| JsValue::from_str(&format!("no #{id}")))
    }

    /// The form adds a todo; a click on a row's title toggles it, on its "×" deletes it.
    fn listen(self: &Rc<Self>) -> Result<(), JsValue> {
        let app = Rc::clone(self);
        let submit = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            event.prevent_default();
            let app = Rc::clone(&app);
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(error) = app.add().await {
                    web_sys::console::error_1(&error);
                }
            });
        });
        self.element("add-form")?
            .add_event_listener_with_callback("submit", submit.as_ref().unchecked_ref())?;
        submit.forget();

        let app = Rc::clone(self);
        let click = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(target) = event
                .target()
                .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
            else {
                return;
            };
            let (Some(id), Some(action)) = (
                target.get_attribute("data-id"),
                target.get_attribute("data-action"),
            ) else {
                return;
            };
            let app = Rc::clone(&app);
            wasm_bindgen_futures::spawn_local(async move {
                let result = match action.as_str() {
                    "toggle" => app.toggle(&id).await,
                    _ => app.delete(&id).await,
                };
                if let Err(error) = result {
                    web_sys::console::error_1(&error);
                }
            });
        });
        self.element("todos")?
            .add_event_listener_with_callback("click", click.as_ref().unchecked_ref())?;
        click.forget();
        Ok(())
    }

    async fn add(&self) -> Result<(), JsValue> {
        let input: HtmlInputElement = self.element("title")?.dyn_into()?;
        let title = input.value().trim().to_owned();
        if title.is_empty() {
            return Ok(());
        }
        input.set_value("");
        let id = format!("{:013}", js_sys::Date::now() as u64) + &format!("{:04}", rand4());
        self.save(Todo { id, title, done: 0 }).await
    }

    async fn toggle(&self, id: &str) -> Result<(), JsValue> {
        let Some(mut todo) = self.todos().await?.remove(id) else {
            return Ok(());
        };
        todo.done = 1 - todo.done;
        self.save(todo).await
    }

    async fn save(&self, todo: Todo) -> Result<(), JsValue> {
        self.write(RecordWrite::put(TODOS, todo.id.clone(), &todo).map_err(js_error)?)
            .await
    }

    async fn delete(&self, id: &str) -> Result<(), JsValue> {
        self.write(RecordWrite::delete(TODOS, id).map_err(js_error)?)
            .await
    }

    /// Writes the record (or deletes it) and captures its change in one transaction.
    async fn write(&self, write: RecordWrite) -> Result<(), JsValue> {
        self.store
            .write(
                self.headwater.outbox(),
                self.headwater.clock_now(),
                vec![write],
            )
            .await
            .map_err(js_error)?;
        self.render().await
    }

    /// Every todo, by id.
    async fn todos(&self) -> Result<BTreeMap<String, Todo>, JsValue> {
        let tx = self
            .store
            .database()
            .transaction(TODOS)
            .build()
            .map_err(js_error)?;
        let values: Vec<JsValue> = tx
            .object_store(TODOS)
            .map_err(js_error)?
            .get_all::<JsValue>()
            .await
            .map_err(js_error)?
            .collect::<Result<_, _>>()
            .map_err(js_error)?;
        Ok(values
            .into_iter()
            .filter_map(|value| serde_wasm_bindgen::from_value::<Todo>(value).ok())
            .map(|todo| (todo.id.clone(), todo))
            .collect())
    }

    /// A row is pending while a change of its record waits in the outbox, dead while
    /// one sits in the dead letters (with the reason), synced otherwise.
    async fn row_states(&self) -> Result<HashMap<String, String>, JsValue> {
        let mut states = HashMap::new();
        for letter in self
            .headwater
            .dead_letters(None, 1000)
            .await
            .map_err(js_error)?
        {
            if let Some(change) = letter.change() {
                states.insert(
                    change.data().key().to_owned(),
                    format!("dead: {}", letter.reason),
                );
            }
        }
        let pending = self.headwater.pending(None, 1000).await.map_err(js_error)?;
        for entry in pending.into_iter().flatten() {
            states.insert(entry.change.data().key().to_owned(), "pending".into());
        }
        Ok(states)
    }

    /// Draws the page from the latest state; a call during a render makes that render
    /// run again instead of interleaving with it.
    async fn render(&self) -> Result<(), JsValue> {
        if self.rendering.replace(true) {
            self.dirty.set(true);
            return Ok(());
        }
        let result = loop {
            self.dirty.set(false);
            let drawn = self.draw().await;
            if drawn.is_err() || !self.dirty.get() {
                break drawn;
            }
        };
        self.rendering.set(false);
        result
    }

    /// Reads everything first, then writes the DOM in one go.
    async fn draw(&self) -> Result<(), JsValue> {
        let status = self.headwater.status().await.map_err(js_error)?;
        let states = self.row_states().await?;
        let todos = self.todos().await?;
        let header = self.element("status")?;
        header.set_text_content(Some(&describe(&status, self.headwater.is_leader())));
        header.set_class_name(if status.blocked.is_some() {
            "blocked"
        } else if status.stalled_since.is_some() {
            "stalled"
        } else {
            ""
        });
        let list = self.element("todos")?;
        list.set_inner_html("");
        for todo in todos.values() {
            let state = states.get(&todo.id).map_or("synced", String::as_str);
            let class = match state {
                "pending" => "pending",
                "synced" => "synced",
                _ => "dead",
            };
            let item = self.document.create_element("li")?;
            item.set_class_name(class);
            item.set_attribute("data-todo", &todo.id)?;
            let title = self.document.create_element("span")?;
            title.set_text_content(Some(&format!(
                "{} {}",
                if todo.done == 1 { "☑" } else { "☐" },
                todo.title
            )));
            title.set_attribute("data-id", &todo.id)?;
            title.set_attribute("data-action", "toggle")?;
            let badge = self.document.create_element("span")?;
            badge.set_class_name("state");
            badge.set_text_content(Some(state));
            let remove = self.document.create_element("button")?;
            remove.set_text_content(Some("×"));
            remove.set_attribute("data-id", &todo.id)?;
            remove.set_attribute("data-action", "delete")?;
            item.append_child(&title)?;
            item.append_child(&badge)?;
            item.append_child(&remove)?;
            list.append_child(&item)?;
        }
        Ok(())
    }
}

/// A `setTimeout` of `millis`.
async fn sleep_ms(millis: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, millis);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// The header line: the outbox at a glance.
fn describe(status: &SyncStatus, leader: bool) -> String {
    let mut line = format!(
        "pending {} · in flight {} · delivered {} · dead-lettered {} · {}",
        status.pending,
        status.in_flight,
        status.counters.delivered,
        status.dead_lettered,
        if leader {
            "this tab sends"
        } else {
            "another tab sends"
        }
    );
    if let Some(reason) = &status.blocked {
        line.push_str(&format!(" · blocked: {reason}"));
    } else if status.stalled_since.is_some() {
        line.push_str(" · stalled");
    }
    if let Some(error) = &status.last_error {
        line.push_str(&format!(" · last error: {error}"));
    }
    line
}

/// Four random digits from crypto.getRandomValues, so two tabs adding at the same
/// millisecond make different ids.
fn rand4() -> u32 {
    let mut bytes = [0u8; 4];
    let ok = web_sys::window()
        .and_then(|window| window.crypto().ok())
        .is_some_and(|crypto| crypto.get_random_values_with_u8_array(&mut bytes).is_ok());
    if ok {
        u32::from_le_bytes(bytes) % 10_000
    } else {
        0
    }
}
