//! What the facade owns so that applications do not: wall time, a random seed, a timer
//! and spawning, natively (tokio) and in the browser (the page's event loop).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where time comes from. The system clock unless a test injects its own.
pub trait Clock: Send + Sync + 'static {
    /// The current wall time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock (`Date.now()` in a browser; never `Instant`, which panics
/// on wasm32).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> DateTime<Utc> + Send + Sync + 'static,
{
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

pub(crate) type SharedClock = Arc<dyn Clock>;

/// A random seed from the operating system (`crypto.getRandomValues` in a browser).
pub(crate) fn os_seed() -> Result<u64, getrandom::Error> {
    getrandom::u64()
}

/// A timer future on the runtime in use.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn sleep(duration: Duration) -> tokio::time::Sleep {
    tokio::time::sleep(duration)
}

/// A timer future on the browser's `setTimeout`.
#[cfg(target_arch = "wasm32")]
pub(crate) fn sleep(duration: Duration) -> gloo_timers::future::TimeoutFuture {
    let millis = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
    gloo_timers::future::TimeoutFuture::new(millis)
}

/// The running delivery task: awaited by shutdown.
#[derive(Debug)]
pub(crate) struct Task {
    done: futures::channel::oneshot::Receiver<()>,
}

impl Task {
    /// Resolves when the task ended (or was dropped by its runtime).
    pub(crate) async fn join(self) {
        let _ = self.done.await;
    }
}

/// Spawns `future` on the current tokio runtime.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn spawn<F>(future: F) -> Result<Task, crate::start_error::StartError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| crate::start_error::StartError::NoRuntime)?;
    let (sender, done) = futures::channel::oneshot::channel();
    handle.spawn(async move {
        future.await;
        let _ = sender.send(());
    });
    Ok(Task { done })
}

/// Spawns `future` on the page's event loop.
#[cfg(target_arch = "wasm32")]
pub(crate) fn spawn<F>(future: F) -> Result<Task, crate::start_error::StartError>
where
    F: Future<Output = ()> + 'static,
{
    let (sender, done) = futures::channel::oneshot::channel();
    wasm_bindgen_futures::spawn_local(async move {
        future.await;
        let _ = sender.send(());
    });
    Ok(Task { done })
}
