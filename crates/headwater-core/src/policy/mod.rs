//! The pure decision rules of delivery: how long to wait before a retry, what a
//! transport outcome means, and how large the next batch may be.

mod backoff;
mod batch_size;
mod classify;
mod retry_after;

pub use backoff::{Backoff, RetryLimits};
pub use batch_size::{BatchLimits, BatchSizer};
pub use classify::{Action, ClassifyRules, Overload, classify, parse_capacity_hint};
pub use retry_after::RetryAfter;
