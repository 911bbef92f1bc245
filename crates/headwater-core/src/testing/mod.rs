//! Test support shared by every backend and by the engine's own tests (feature
//! `testing`): the store [`conformance`] suite, [`SimFlume`], a simulated Flume
//! HTTP source with scripted faults, and whole-engine [`scenario`]s with their
//! invariants.

pub mod conformance;
pub mod scenario;
mod sim_flume;

pub use sim_flume::{BAD_REQUEST, Fault, INTERCEPTOR_FAILED, POISON_HEADER, SimFlume, id_counts};
