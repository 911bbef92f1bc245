//! The delivery engine: [`DeliveryMachine`] decides (sans-IO, every call takes `now`),
//! [`Syncer`] drives it over a [`ChangeStore`](crate::store::ChangeStore) and a
//! [`Transport`](crate::transport::Transport), and [`Outbox`] is the application's side
//! (capture, status, dead letters).

mod config;
pub mod machine;
mod outbox;
mod shared;
mod status;
mod syncer;
mod wake;

pub use config::{ConfigError, IsolationRules, OutboxLimits, SyncConfig};
pub use machine::{Command, DeliveryMachine, RequestId, SendRequest};
pub use outbox::{CaptureError, Outbox};
pub use status::{AnswerCounts, PartialRejectionReport, SyncCounters, SyncStatus};
pub use syncer::{DeliveryObserver, RunError, SyncReport, Syncer};
