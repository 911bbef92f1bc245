//! # headwater-sim
//!
//! The fleet simulator: thousands to hundreds of thousands of clients, each running
//! headwater's real [`DeliveryMachine`](headwater_core::engine::DeliveryMachine) over
//! its own [`MemoryStore`](headwater_memory::MemoryStore), against a simulated tier of
//! Flume agents that answers as Flume 1.11 does, in virtual time: discrete events,
//! deterministic from one seed, no sleeping. Clients are split into shards that may run
//! on threads, in windows shorter than any message takes to cross the network, so the
//! result is the same on any number of threads. What it shows is what ships, because it
//! is the machine that ships.
//!
//! It measures what a fleet's retries do to a recovering tier (how fast the backlog
//! drains against the physical limit `B / (C − L)`, how much load the fleet offers
//! while it does, how many requests it wastes) for headwater's defaults and for the
//! usual alternatives, side by side. `docs/fleet.md` explains the figures.
//!
//! ```
//! use headwater_sim::{Policy, Scenario, simulate};
//!
//! let mut scenario = Scenario::preset("outage").unwrap();
//! scenario.clients = 50;
//! let run = simulate(&scenario, Policy::Headwater, &mut |_| {}).unwrap();
//! assert_eq!(run.summary.lost, 0);
//! assert_eq!(run.summary.reordered, 0);
//! assert!(run.summary.drained);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod calendar;
pub mod client;
mod error;
pub mod ledger;
pub mod metrics;
pub mod plot;
pub mod report;
mod run;
pub mod scenario;
mod shard;
pub mod tier;
pub mod time;

pub use error::SimError;
pub use metrics::Summary;
pub use run::{Policy, Run, simulate, simulate_on, simulate_with};
pub use scenario::{Disruption, Scenario, ScenarioError, Spreading};
