//! The change-log model: what a captured change is and where it stands in delivery.

mod change;
mod delivery;
mod id;

pub use change::{Captured, Change, ChangeData, InvalidChange, JsonText, MAX_SEQ, Op, Seq};
pub use delivery::{Delivery, DeliveryState, OutboxEntry, SyncMarker};
pub use id::{ChangeId, ChangeIdGenerator};
