//! The change-log model: what a captured change is and where it stands in delivery.

mod change;
mod delivery;
mod id;

pub use change::{
    Captured, Change, ChangeData, InvalidChange, JsonText, MAX_SEQ, Op, OpKind, RecordRef, Seq,
    SeqOutOfRange,
};
pub use delivery::{DeadContent, DeadLetter, Delivery, OutboxEntry, SyncMarker, UnreadableEntry};
pub use id::{ChangeId, ChangeIdGenerator};
