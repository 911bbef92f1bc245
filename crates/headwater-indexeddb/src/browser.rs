//! Driving a [`Syncer`] in the browser: a `setTimeout` sleep, wall time from `Date`
//! (never `std::time::Instant`, which panics on wasm32), and a wake-up when the
//! browser comes back online.

use std::time::Duration;

use chrono::{DateTime, Utc};
use headwater_core::engine::{Outbox, RunError, Syncer};
use headwater_core::store::ChangeStore;
use headwater_core::transport::Transport;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

/// A future that resolves after `duration`, on the timer of the global scope (a page's
/// window or a worker's scope: both have `setTimeout`).
pub async fn sleep(duration: Duration) {
    let millis = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())
            .ok()
            .and_then(|function| function.dyn_into::<js_sys::Function>().ok());
        let set = set_timeout.is_some_and(|set_timeout| {
            set_timeout
                .call2(&global, &resolve, &wasm_bindgen::JsValue::from(millis))
                .is_ok()
        });
        if !set {
            // A timer that cannot be set resolves at once: the loop then polls sooner.
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A syncer running in the page. Stop it with [`BrowserSync::stop`]; dropping it also
/// stops it.
pub struct BrowserSync<S: ChangeStore> {
    outbox: Outbox<S>,
    online: Option<Closure<dyn FnMut()>>,
}

impl<S: ChangeStore + Clone + 'static> BrowserSync<S> {
    /// Starts `syncer` on the page's event loop: it sends whenever there is work, sleeps
    /// on `setTimeout` until the next retry, and wakes at once on capture and when the
    /// browser fires `online`. Wall time comes from `clock`, the one source of time for
    /// the delivery machine (give an [`HttpTransport`] the same clock; `chrono::Utc::now`
    /// reads the browser's `Date`). `on_stop` receives the run loop's result.
    ///
    /// [`HttpTransport`]: https://docs.rs/headwater-http
    pub fn start<T: Transport + 'static>(
        syncer: Syncer<S, T>,
        clock: impl Fn() -> DateTime<Utc> + 'static,
        on_stop: impl FnOnce(Result<(), RunError>) + 'static,
    ) -> Self {
        let outbox = syncer.outbox();
        let online = web_sys::window().map(|window| {
            let wake = outbox.clone();
            let closure = Closure::<dyn FnMut()>::new(move || wake.wake());
            // Without the listener the loop still polls; nothing is lost.
            let _ =
                window.add_event_listener_with_callback("online", closure.as_ref().unchecked_ref());
            closure
        });
        let mut syncer = syncer;
        wasm_bindgen_futures::spawn_local(async move {
            let result = syncer.run(clock, sleep).await;
            on_stop(result);
        });
        Self { outbox, online }
    }

    /// The application's handle to the running syncer.
    pub fn outbox(&self) -> &Outbox<S> {
        &self.outbox
    }

    /// Stops the run loop after the step it is in, and the `online` listener.
    pub fn stop(self) {
        drop(self);
    }
}

impl<S: ChangeStore> Drop for BrowserSync<S> {
    fn drop(&mut self) {
        self.outbox.shutdown();
        if let (Some(window), Some(closure)) = (web_sys::window(), self.online.take()) {
            let _ = window
                .remove_event_listener_with_callback("online", closure.as_ref().unchecked_ref());
        }
    }
}
