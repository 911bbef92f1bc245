//! One syncing tab: the tab (or worker) holding a Web Lock (`navigator.locks.request`) delivers;
//! the others capture only, and neither send nor poll. When the leader's tab closes,
//! the browser hands the lock to a waiting tab at once.
//!
//! Where Web Locks exist, all tabs sync under one lease owner name (the lock's), so the
//! new leader takes the outbox's lease at once instead of waiting for the old one to
//! lapse: the lock, not the lease, guarantees that only one of them runs. Without Web
//! Locks each tab keeps an owner of its own, and the lease keeps them apart. A frozen leader keeps its lock;
//! its tab has to be closed (or discarded by the browser) for another to take over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Whether this tab holds the lock (shared with the handle).
pub(crate) type Leading = Arc<AtomicBool>;

/// Held until dropped: the lock's callback promise resolves then, releasing it.
pub(crate) struct Held {
    _release: futures::channel::oneshot::Sender<()>,
    leading: Leading,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.leading.store(false, Ordering::Release);
    }
}

/// The scope's `navigator.locks`, if this browser has Web Locks.
fn web_locks() -> Option<JsValue> {
    // The window's navigator in a page, the worker's in a dedicated worker: both have
    // `locks`.
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let locks = js_sys::Reflect::get(&navigator, &"locks".into()).ok()?;
    (!locks.is_undefined() && !locks.is_null()).then_some(locks)
}

/// Whether tabs can be kept apart by a Web Lock here. Only then may they share one
/// lease owner name: without the lock, the lease is all that keeps two tabs from
/// sending the same changes, and a shared name would let every tab hold it at once.
pub(crate) fn available() -> bool {
    web_locks().is_some()
}

/// Waits for the Web Lock `name`; `None` if the browser has no Web Locks (then every
/// tab syncs under a lease owner of its own, kept apart by the outbox's lease).
pub(crate) async fn acquire(name: &str, leading: Leading) -> Option<Held> {
    let locks = web_locks()?;
    let request: js_sys::Function = js_sys::Reflect::get(&locks, &"request".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let (acquired, granted) = futures::channel::oneshot::channel::<()>();
    let (release, released) = futures::channel::oneshot::channel::<()>();
    let callback = Closure::once_into_js(move |_lock: JsValue| -> js_sys::Promise {
        let _ = acquired.send(());
        wasm_bindgen_futures::future_to_promise(async move {
            // Resolves (releasing the lock) when the sender is dropped.
            let _ = released.await;
            Ok(JsValue::UNDEFINED)
        })
    });
    if request
        .call2(&locks, &JsValue::from_str(name), &callback)
        .is_err()
    {
        return None;
    }
    granted.await.ok()?;
    leading.store(true, Ordering::Release);
    Some(Held {
        _release: release,
        leading,
    })
}
