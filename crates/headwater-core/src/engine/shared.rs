//! What an [`Outbox`](super::Outbox) and its [`Syncer`](super::Syncer) share: wake-ups
//! and requests from the application, and the syncer's published view.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use event_listener::{Event, EventListener};

use crate::model::{ChangeIdGenerator, Seq};

use super::config::OutboxLimits;
use super::status::SyncStatus;
use super::wake::Wake;

/// Requests from the application to the syncer, taken by the syncer at its next turn.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    pub(crate) captured: AtomicBool,
    pub(crate) requeued: AtomicBool,
    pub(crate) flush_now: AtomicBool,
    pub(crate) shutdown: AtomicBool,
    pub(crate) paused: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) wake: Wake,
    pub(crate) signals: Signals,
    pub(crate) ids: Mutex<ChangeIdGenerator>,
    view: Mutex<SyncStatus>,
    /// Fired whenever the syncer wrote an outcome or changed state.
    progress: Event,
    /// The highest seq captured through this outbox.
    pub(crate) last_captured: AtomicU64,
    pub(crate) stopped: AtomicBool,
    /// The configured bounds, checked at capture.
    pub(crate) limits: OutboxLimits,
    /// Whether the soft threshold was crossed (warned once per crossing).
    pub(crate) over_warn: AtomicBool,
}

impl Shared {
    pub(crate) fn new(id_seed: u64, view: SyncStatus, limits: OutboxLimits) -> Self {
        Self {
            wake: Wake::default(),
            signals: Signals::default(),
            ids: Mutex::new(ChangeIdGenerator::from_seed(id_seed)),
            view: Mutex::new(view),
            progress: Event::new(),
            last_captured: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            limits,
            over_warn: AtomicBool::new(false),
        }
    }

    pub(crate) fn view(&self) -> MutexGuard<'_, SyncStatus> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn publish(&self, view: SyncStatus) {
        *self.view() = view;
        self.progress.notify(usize::MAX);
    }

    pub(crate) fn listen(&self) -> EventListener {
        self.progress.listen()
    }

    pub(crate) fn notify_progress(&self) {
        self.progress.notify(usize::MAX);
    }

    pub(crate) fn captured(&self, last: Seq) {
        self.last_captured.fetch_max(last.0, Ordering::AcqRel);
        self.signals.captured.store(true, Ordering::Release);
        self.wake.notify();
    }

    pub(crate) fn signal(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.wake.notify();
    }
}
