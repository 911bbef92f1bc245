//! Shared by the browser test files.

use std::cell::Cell;

use headwater_indexeddb::{IdbStore, Schema};

thread_local! {
    static NEXT: Cell<u32> = const { Cell::new(0) };
}

/// A database name no other test (or earlier run in this profile) uses.
pub(crate) fn fresh_name(prefix: &str) -> String {
    let n = NEXT.with(|next| {
        let n = next.get();
        next.set(n + 1);
        n
    });
    format!("{prefix}-{n}-{}", (js_sys::Math::random() * 1e12) as u64)
}

/// A fresh database with the app store `todos`.
pub(crate) async fn fresh(prefix: &str) -> IdbStore {
    Schema::new(fresh_name(prefix))
        .app_store("todos")
        .open()
        .await
        .unwrap()
}
