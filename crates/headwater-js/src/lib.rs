//! # headwater-js
//!
//! headwater for web apps written in JavaScript or TypeScript: the browser facade
//! (IndexedDB outbox, Flume over `fetch`, one sending tab by Web Lock) compiled to wasm
//! with wasm-bindgen. Applications do not use this crate directly: they install the npm
//! package `headwater-browser` (built by `scripts/js-package.sh` from
//! `packages/headwater-browser`), whose typed ES module wraps these bindings, turns
//! their errors into `HeadwaterError`s with a stable `code`, and adds `onChange`.
//!
//! The bindings, as the package's module calls them:
//!
//! ```js
//! // inside the app's own onupgradeneeded:
//! installHeadwater(request.result);
//! // once the database is open:
//! const hw = await Headwater.start(db, ["/flume/"], { source: "todo-app", leaderLock: "todos" });
//! const tx = db.transaction(["todos", "headwater_changes"], "readwrite");
//! tx.objectStore("todos").put(todo);
//! const receipt = await hw.capture(tx, "todos", todo.id, "update", JSON.stringify(todo), undefined);
//! ```
//!
//! Everything here runs on wasm32 only; on other targets the crate is empty.
#![cfg_attr(not(target_arch = "wasm32"), allow(unused))]

#[cfg(target_arch = "wasm32")]
mod change;
#[cfg(target_arch = "wasm32")]
mod error;
#[cfg(target_arch = "wasm32")]
mod handle;
#[cfg(target_arch = "wasm32")]
mod options;
#[cfg(target_arch = "wasm32")]
mod views;

#[cfg(target_arch = "wasm32")]
pub use handle::{Headwater, install_headwater};
