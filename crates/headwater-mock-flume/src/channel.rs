//! The memory channel between the source and the sink: transaction capacity, capacity,
//! keep-alive, and a sink that drains at a set rate.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::jetty;

#[derive(Debug)]
pub(crate) struct Channel {
    capacity: usize,
    transaction_capacity: usize,
    keep_alive: Duration,
    drains: bool,
    size: Mutex<usize>,
    space: Notify,
}

impl Channel {
    pub(crate) fn new(
        capacity: usize,
        transaction_capacity: usize,
        keep_alive: Duration,
        drains: bool,
    ) -> Self {
        Self {
            capacity,
            transaction_capacity,
            keep_alive,
            drains,
            size: Mutex::new(0),
            space: Notify::new(),
        }
    }

    fn size_lock(&self) -> MutexGuard<'_, usize> {
        self.size.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn size(&self) -> usize {
        *self.size_lock()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Puts a batch in one transaction: all of it, or an error with the channel's
    /// message (which Flume sends after its 503 prefix).
    pub(crate) async fn put(&self, events: usize) -> Result<(), String> {
        if events > self.transaction_capacity {
            return Err(jetty::put_queue_full(self.transaction_capacity));
        }
        if !self.drains {
            return Ok(());
        }
        let deadline = Instant::now() + self.keep_alive;
        loop {
            let notified = self.space.notified();
            {
                let mut size = self.size_lock();
                if *size + events <= self.capacity {
                    *size += events;
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(jetty::NO_SPACE.to_owned());
            }
        }
    }

    /// The sink: takes `rate` events per second until the channel is dropped.
    pub(crate) async fn drain(self: Arc<Self>, rate: f64, taken: impl Fn(usize)) {
        let tick = Duration::from_millis(10);
        let mut owed = 0.0;
        let mut interval = tokio::time::interval(tick);
        loop {
            interval.tick().await;
            owed += rate * tick.as_secs_f64();
            let take = {
                let mut size = self.size_lock();
                let take = (owed.floor() as usize).min(*size);
                *size -= take;
                if *size == 0 {
                    owed = owed.min(1.0);
                }
                take
            };
            if take > 0 {
                owed -= take as f64;
                taken(take);
                self.space.notify_waiters();
            }
        }
    }
}
