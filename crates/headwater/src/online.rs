//! Browser only: when the page comes back online (the `online` event of the window, or
//! of the worker headwater runs in),
//! delivery tries at once instead of waiting out a backoff grown while the network was
//! gone, after a random delay of up to [`MAX_DELAY`], so that a fleet whose network
//! returns at the same moment (an ISP, a building's Wi-Fi) does not retry in lockstep.

use std::time::Duration;

use headwater_core::engine::Outbox;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use crate::parts::DynStore;
use crate::runtime;

/// The longest wait between the `online` event and the retry it brings.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(10);

/// The `online` listener, removed when dropped (with the last handle).
pub(crate) struct OnlineWake {
    listener: Closure<dyn FnMut()>,
}

impl OnlineWake {
    /// Listens on the global scope (the page's window, or a worker's scope).
    pub(crate) fn listen(outbox: Outbox<DynStore>) -> Option<Self> {
        let scope = global_scope();
        let listener = Closure::<dyn FnMut()>::new(move || {
            let outbox = outbox.clone();
            // A random draw per event: the facade owns the randomness, as it does the
            // seed. Without one the retry waits the longest delay rather than none.
            let draw = runtime::os_seed().unwrap_or(u64::MAX);
            let delay = MAX_DELAY.mul_f64((draw >> 11) as f64 / (1u64 << 53) as f64);
            wasm_bindgen_futures::spawn_local(async move {
                runtime::sleep(delay).await;
                outbox.flush_now();
            });
        });
        scope
            .add_event_listener_with_callback("online", listener.as_ref().unchecked_ref())
            .ok()?;
        Some(Self { listener })
    }
}

impl Drop for OnlineWake {
    fn drop(&mut self) {
        let _ = global_scope()
            .remove_event_listener_with_callback("online", self.listener.as_ref().unchecked_ref());
    }
}

/// The global scope as an event target: a window and a worker's scope both are one.
fn global_scope() -> web_sys::EventTarget {
    js_sys::global().unchecked_into()
}
