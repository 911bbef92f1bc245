//! What the transport asks the page it runs in: whether the browser is online, where
//! the page is (to resolve a relative endpoint URL), and whether a server that fetch
//! cannot reach answers at all.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, RequestMode, Window, WorkerGlobalScope};

enum Scope {
    Window(Window),
    Worker(WorkerGlobalScope),
    Other,
}

fn scope() -> Scope {
    let global = js_sys::global();
    if let Some(window) = global.dyn_ref::<Window>() {
        Scope::Window(window.clone())
    } else if let Some(worker) = global.dyn_ref::<WorkerGlobalScope>() {
        Scope::Worker(worker.clone())
    } else {
        Scope::Other
    }
}

/// `navigator.onLine`, in a page or a worker (true where there is no navigator).
pub(crate) fn online() -> bool {
    match scope() {
        Scope::Window(window) => window.navigator().on_line(),
        Scope::Worker(worker) => worker.navigator().on_line(),
        Scope::Other => true,
    }
}

/// The page's (or worker's) own URL, which relative endpoint URLs are resolved
/// against, as fetch itself would.
pub(crate) fn location() -> Option<String> {
    match scope() {
        Scope::Window(window) => window.location().href().ok(),
        Scope::Worker(worker) => Some(worker.location().href()),
        Scope::Other => None,
    }
}

/// Whether the page is cross-origin isolated (served with `Cross-Origin-Embedder-Policy:
/// require-corp`). Such a page cannot receive even an opaque answer from a server that
/// sends no `Cross-Origin-Resource-Policy` header, as Flume does not, so
/// [`answers_at_all`] cannot tell a CORS problem from a server that is down there.
pub(crate) fn cross_origin_isolated() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"crossOriginIsolated".into())
        .ok()
        .and_then(|value| value.as_bool())
        .unwrap_or(false)
}

/// Whether anything answers at `url`. A `no-cors` request needs no CORS headers to
/// succeed (its answer is opaque, unreadable, but it arrives), so it succeeds against
/// a Flume that withholds CORS headers and fails against one that is down or
/// unreachable: the two cases a CORS-mode fetch reports alike as "Failed to fetch".
pub(crate) async fn answers_at_all(url: &str, timeout: std::time::Duration) -> bool {
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_mode(RequestMode::NoCors);
    let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(millis)));
    let promise = match scope() {
        Scope::Window(window) => window.fetch_with_str_and_init(url, &init),
        Scope::Worker(worker) => worker.fetch_with_str_and_init(url, &init),
        Scope::Other => return false,
    };
    JsFuture::from(promise).await.is_ok()
}
