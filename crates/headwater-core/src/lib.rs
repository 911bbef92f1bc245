//! # headwater-core
//!
//! The pure core of headwater, which captures changes to local data and delivers them
//! to Apache Flume durably, in order and with idempotency keys. This crate does no I/O,
//! owns no runtime and never reads the clock or an OS random source: time and seeds
//! are inputs, so the whole delivery engine can be driven faster than real time in
//! tests, and the same code runs natively and in the browser (wasm32).
//!
//! Applications depend on the `headwater` crate, which runs all of this for them. This
//! crate is what store and transport adapters, and tests, build on:
//!
//! - [`model`]: changes, their idempotency ids (UUIDv7) and delivery bookkeeping;
//! - [`flume`]: the change → Flume event mapping and the JSON codec of Flume's HTTP source;
//! - `otlp` (feature `otlp`): the second protocol, OTLP/HTTP logs, and [`protocol`],
//!   the seam that picks one;
//! - [`policy`]: backoff, `Retry-After`, outcome classification, batch size, concurrency;
//! - [`store`] and [`transport`]: the two traits adapters implement;
//! - [`engine`]: the sans-IO [`DeliveryMachine`](engine::DeliveryMachine), the
//!   [`Syncer`](engine::Syncer) that drives it, and the [`Outbox`](engine::Outbox) an
//!   application captures through.
//!
//! The machine says what to do and is told what happened; nothing here awaits:
//!
//! ```
//! use headwater_core::engine::{Command, DeliveryMachine, SyncConfig};
//! use headwater_core::model::{Captured, Change, ChangeData, ChangeIdGenerator, OutboxEntry, Seq};
//! use headwater_core::store::{Claim, Recorded};
//! use headwater_core::transport::{Response, SendOutcome};
//!
//! let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
//! let mut machine = DeliveryMachine::new(SyncConfig::new("laptop-1", 0x5eed)).unwrap();
//! let data = ChangeData::insert("todos", "1", &serde_json::json!({"title": "milk"})).unwrap();
//! let id = ChangeIdGenerator::from_seed(1).next_id(now);
//! let change = Change::new(Seq::new(1).unwrap(), Captured { id, captured_at: now, data });
//!
//! // It asks for changes from the store...
//! let Some(Command::Claim(request)) = machine.poll_command(now) else { panic!() };
//! machine.handle_claimed(now, &request, Claim::Granted(vec![Ok(OutboxEntry::new(change))]));
//! // ...to send a batch...
//! let Some(Command::Send(batch)) = machine.poll_command(now) else { panic!() };
//! assert_eq!(batch.events, 1);
//! machine.handle_answer(now, batch.id, SendOutcome::Response(Response::status(200)), batch.body);
//! // ...and to record that Flume has it.
//! let Some(Command::Record(outcome)) = machine.poll_command(now) else { panic!() };
//! assert_eq!(outcome.acked(), &[Seq::new(1).unwrap()]);
//! machine.handle_recorded(now, Recorded::Applied);
//! assert_eq!(machine.counters().delivered, 1);
//! ```
//!
//! ## Features
//!
//! - `decode`: the decoder of Flume's JSON batches (`flume::decode_batch`), for servers,
//!   fuzzers and tests; a client only encodes.
//! - `otlp`: OTLP/HTTP logs as a second protocol (`headwater_core::otlp`,
//!   `Protocol::Otlp`).
//! - `testing`: the store conformance suite, a simulated Flume and whole-engine
//!   scenarios (`headwater_core::testing`), for adapters' tests. Implies `decode`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod engine;
pub mod flume;
pub mod model;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
pub mod policy;
pub mod protocol;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod transport;

/// `Send + Sync` natively; nothing on wasm32, where IndexedDB handles and browser
/// futures are `!Send` and everything runs on one thread.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}

/// `Send + Sync` natively; nothing on wasm32, where IndexedDB handles and browser
/// futures are `!Send` and everything runs on one thread.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}
