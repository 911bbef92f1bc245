//! The clients of a fleet: headwater's own delivery machine, or the baseline loop it is
//! compared with. The simulation tells a client what happened (a capture, an answer, a
//! timer) and collects what it asks for in [`Effects`].

mod machine;
mod seed_loop;

use headwater_core::model::{ChangeData, Seq};
use headwater_core::policy::Endpoints;
use headwater_core::store::StoreError;
use headwater_core::transport::SendOutcome;

use crate::time::Micros;

pub use machine::MachineClient;
pub use seed_loop::SeedLoopClient;

/// Names a request of one client, so that its answer finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKey {
    /// A request of a delivery machine.
    Machine(headwater_core::engine::RequestId),
    /// The baseline loop's one request in flight.
    Loop,
}

/// A request a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// Give this back with the answer.
    pub key: RequestKey,
    /// The changes it carries (empty for an empty probe).
    pub seqs: Vec<Seq>,
    /// Its route, when batches are cut by route.
    pub route: Option<usize>,
}

/// What a client asked for while it handled one thing.
#[derive(Debug, Default)]
pub struct Effects {
    /// Requests to send, in order.
    pub sends: Vec<Send>,
    /// Changes recorded as delivered.
    pub acked: Vec<Seq>,
    /// Changes dead-lettered.
    pub dead: Vec<Seq>,
}

/// One client of the fleet.
pub trait FleetClient {
    /// `changes` were captured at `now`, in one transaction; returns the seqs its store
    /// gave them.
    fn capture(
        &mut self,
        now: Micros,
        changes: Vec<ChangeData>,
        effects: &mut Effects,
    ) -> Result<Vec<Seq>, StoreError>;

    /// The answer to request `key` arrived at `now`.
    fn answer(
        &mut self,
        now: Micros,
        key: RequestKey,
        outcome: SendOutcome,
        effects: &mut Effects,
    ) -> Result<(), StoreError>;

    /// The client goes offline (`online` false: it captures but delivers nothing) or
    /// comes back online at `now`, with whatever it captured meanwhile.
    fn set_online(
        &mut self,
        now: Micros,
        online: bool,
        effects: &mut Effects,
    ) -> Result<(), StoreError>;

    /// A timer the client asked for (or an earlier one) rang at `now`.
    fn wake(&mut self, now: Micros, effects: &mut Effects) -> Result<(), StoreError>;

    /// When the client wants to be woken next, if at all.
    fn next_wake(&self, now: Micros) -> Option<Micros>;

    /// Changes still in its store, waiting or in flight.
    fn stored(&self) -> Result<usize, StoreError>;

    /// The rate pacing holds its backlog to, events/s, while it does.
    fn paced_rate(&self) -> Option<f64>;

    /// Its transport's endpoint order and health.
    fn endpoints(&mut self) -> &mut Endpoints;
}
