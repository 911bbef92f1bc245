//! The pure decision rules of delivery: how long to wait before a retry, what a
//! transport outcome means, how large the next batch may be, how many may be in
//! flight, how fast a backlog goes out after failures, and which endpoint takes the
//! next request.

mod backoff;
mod batch_size;
mod classify;
mod concurrency;
mod endpoints;
mod pacing;
mod retry_after;

pub use backoff::{Backoff, Jitter, RetryLimits};
pub use batch_size::{BatchLimits, BatchSizer};
pub use classify::{Overload, Rejection, Verdict, classify, parse_capacity_hint};
pub use concurrency::ConcurrencyLimit;
pub use endpoints::{Endpoints, Selection};
pub use pacing::{Pacer, Pacing};
pub use retry_after::RetryAfter;
