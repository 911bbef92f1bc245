//! # todo-web
//!
//! headwater's scenario as a page: a todo list kept in IndexedDB under the app's own
//! schema (a `todos` store keyed by `id`, an index on `done`), each write captured in the
//! same transaction, delivered to Flume on the page's own origin (`/`, a relative URL)
//! whenever it can be. Each row shows whether its last change is pending, synced or
//! dead-lettered; the header shows the outbox. Plain web-sys DOM: see README.md for why.
//!
//! Build and serve it with `bash scripts/web-demo.sh`. On targets other than wasm32
//! this crate is empty (its end-to-end test in `tests/` drives the page natively).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod app;

#[cfg(target_arch = "wasm32")]
pub use app::start;
