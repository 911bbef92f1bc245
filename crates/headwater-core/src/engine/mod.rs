//! The delivery engine: [`Syncer`] moves changes from a [`ChangeStore`](crate::store::ChangeStore)
//! to a [`Transport`](crate::transport::Transport); [`Outbox`] is the application's side
//! (capture, status, dead letters).

mod config;
mod outbox;
mod run;
mod status;
mod syncer;
mod wake;

pub use config::{ConfigError, SyncConfig};
pub use outbox::{CaptureError, Outbox};
pub use run::RunError;
pub use status::{SyncCounters, SyncStatus};
pub use syncer::{SyncReport, Syncer};
