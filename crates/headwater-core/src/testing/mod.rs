//! Test support shared by every backend and by the engine's own tests (feature
//! `testing`): the store [`conformance`] suite and [`SimFlume`], a simulated Flume
//! HTTP source with scripted faults.

pub mod conformance;
mod sim_flume;

pub use sim_flume::{BAD_REQUEST, Fault, INTERCEPTOR_FAILED, SimFlume, id_counts};
