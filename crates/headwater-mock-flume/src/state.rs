//! What every connection of the mock shares: its configuration, channel, sink, faults
//! and counters, and how one request closes its own connection.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use headwater_core::flume::FlumeEvent;
use tokio::sync::Notify;

use crate::channel::Channel;
use crate::config::{MockConfig, MockFault};
use crate::faults::Faults;
use crate::metrics::{Counters, add};
use crate::sink::Sink;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    pub(crate) channel: Arc<Channel>,
    pub(crate) counters: Counters,
    sink: Mutex<Sink>,
    faults: Mutex<Faults>,
}

impl Shared {
    pub(crate) fn new(config: MockConfig, sink: Sink) -> Self {
        Self {
            channel: Arc::new(Channel::new(
                config.capacity,
                config.transaction_capacity,
                config.keep_alive,
                config.drain_rate.is_some(),
            )),
            counters: Counters::default(),
            sink: Mutex::new(sink),
            faults: Mutex::new(Faults::new(config.random_faults.clone())),
            config,
        }
    }

    pub(crate) fn sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Draws this request's fault and plays the part that comes before the commit: a
    /// delay, a hang, a connection dropped before the commit (the last two never
    /// return). `Err(status)` when the fault is an answer to give at once; otherwise
    /// whether the connection is to be dropped after the commit
    /// ([`after_commit`](Self::after_commit)).
    pub(crate) async fn fault_before_commit(&self, kill: &ConnectionKill) -> Result<bool, u16> {
        let fault = self.faults().next();
        match fault {
            Some(MockFault::Status(code)) => Err(code),
            Some(MockFault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(false)
            }
            Some(MockFault::Hang) => std::future::pending().await,
            Some(MockFault::DropBeforeCommit) => {
                kill.fire();
                std::future::pending().await
            }
            Some(MockFault::DropAfterCommit) => Ok(true),
            None => Ok(false),
        }
    }

    /// After a commit: drops the connection without an answer (never returning) if the
    /// fault said so.
    pub(crate) async fn after_commit(&self, kill: &ConnectionKill, drop_connection: bool) {
        if drop_connection {
            kill.fire();
            std::future::pending::<()>().await;
        }
    }

    /// Puts `events` in the channel in one transaction and hands them to the sink,
    /// counting as Flume's monitoring does; `Err` with the channel's reason when it has
    /// no room (nothing committed). Either source, Flume's or OTLP's, commits this way.
    pub(crate) async fn commit(&self, events: Vec<FlumeEvent>) -> Result<(), String> {
        let count = events.len();
        add(&self.counters.batches_received, 1);
        add(&self.counters.events_received, count);
        add(&self.counters.put_attempts, count);
        self.channel.put(count).await?;
        add(&self.counters.put_successes, count);
        if self.config.drain_rate.is_none() {
            add(&self.counters.takes, count);
        }
        self.sink().record(events);
        add(&self.counters.batches_accepted, 1);
        add(&self.counters.events_accepted, count);
        Ok(())
    }
}

/// Closes the connection a request came on, without an answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    pub(crate) fn fire(&self) {
        self.0.notify_one();
    }

    /// Resolves when a request on this connection fired the kill.
    pub(crate) async fn fired(&self) {
        self.0.notified().await;
    }
}
