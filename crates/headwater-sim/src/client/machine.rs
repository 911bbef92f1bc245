//! A client that is headwater itself: the real [`DeliveryMachine`] over a real
//! [`MemoryStore`], driven the way `Syncer` drives it, with every store step done at
//! once (the memory store's futures are ready when made).

use std::future::Future;

use futures::FutureExt;
use headwater_core::engine::{Command, ConfigError, DeliveryMachine, SyncConfig};
use headwater_core::model::{Captured, ChangeData, ChangeIdGenerator, Seq};
use headwater_core::policy::Endpoints;
use headwater_core::store::{ChangeStore, StoreError};
use headwater_core::transport::SendOutcome;
use headwater_memory::MemoryStore;

use super::{Effects, FleetClient, RequestKey, Send};
use crate::time::{Micros, virtual_time, wall};

/// headwater's delivery machine and its store.
#[derive(Debug)]
pub struct MachineClient {
    machine: DeliveryMachine,
    store: MemoryStore,
    ids: ChangeIdGenerator,
    endpoints: Endpoints,
    online: bool,
}

/// The result of a store future that the memory store completes at once.
fn ready<T>(future: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    future.now_or_never().unwrap_or_else(|| {
        Err(StoreError::backend(
            "the memory store did not answer at once",
        ))
    })
}

impl MachineClient {
    /// A client running `config` (its seed seeds the jitter and, mixed, the ids).
    pub fn new(config: SyncConfig, endpoints: Endpoints) -> Result<Self, ConfigError> {
        let ids = ChangeIdGenerator::from_seed(config.seed ^ 0x9e37_79b9_7f4a_7c15);
        Ok(Self {
            machine: DeliveryMachine::new(config)?,
            store: MemoryStore::new(),
            ids,
            endpoints,
            online: true,
        })
    }

    /// Performs every command the machine has at `now`.
    fn drive(&mut self, now: Micros, effects: &mut Effects) -> Result<(), StoreError> {
        let at = wall(now);
        let mut failure = None;
        while let Some(command) = self.machine.poll_command(at) {
            let owner = self.machine.owner();
            match command {
                Command::Claim(request) => match ready(self.store.claim(&request)) {
                    Ok(claim) => self.machine.handle_claimed(at, &request, claim),
                    Err(error) => {
                        self.machine.handle_store_failed(at, None, &error);
                        failure.get_or_insert(error);
                    }
                },
                Command::Record(outcome) => match ready(self.store.record(owner, at, &outcome)) {
                    Ok(recorded) => {
                        effects.acked.extend_from_slice(outcome.acked());
                        effects
                            .dead
                            .extend(outcome.dead().iter().map(|letter| letter.seq));
                        self.machine.handle_recorded(at, recorded);
                    }
                    Err(error) => {
                        self.machine.handle_store_failed(at, Some(outcome), &error);
                        failure.get_or_insert(error);
                    }
                },
                Command::RecordThenClaim(outcome, request) => {
                    match ready(self.store.record_then_claim(owner, at, &outcome, &request)) {
                        Ok((recorded, claim)) => {
                            effects.acked.extend_from_slice(outcome.acked());
                            effects
                                .dead
                                .extend(outcome.dead().iter().map(|letter| letter.seq));
                            match claim {
                                Ok(claim) => self.machine.handle_recorded_then_claimed(
                                    at,
                                    recorded,
                                    &request,
                                    Ok(claim),
                                ),
                                Err(error) => {
                                    self.machine.handle_recorded_then_claimed(
                                        at,
                                        recorded,
                                        &request,
                                        Err(&error),
                                    );
                                    failure.get_or_insert(error);
                                }
                            }
                        }
                        Err(error) => {
                            self.machine.handle_store_failed(at, Some(outcome), &error);
                            failure.get_or_insert(error);
                        }
                    }
                }
                Command::Release => {
                    // A fleet never shuts down mid-run; the lease lapses on its own.
                    let _ = ready(self.store.release(owner));
                    self.machine.handle_released(at);
                }
                Command::Send(request) => {
                    let seqs = self.machine.request_seqs(request.id).unwrap_or_default();
                    effects.sends.push(Send {
                        key: RequestKey::Machine(request.id),
                        seqs,
                        route: request.route,
                    });
                    // The body is not kept: the tier is told what the request carries, and
                    // a machine per client recycling its buffers would hold gigabytes.
                    drop(request.body);
                }
                _ => {}
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl FleetClient for MachineClient {
    fn capture(
        &mut self,
        now: Micros,
        changes: Vec<ChangeData>,
        effects: &mut Effects,
    ) -> Result<Vec<Seq>, StoreError> {
        let at = wall(now);
        let captured = changes
            .into_iter()
            .map(|data| Captured {
                id: self.ids.next_id(at),
                captured_at: at,
                data,
            })
            .collect();
        let stored = ready(self.store.append(captured))?;
        if self.online {
            self.machine.handle_captured(at);
            self.drive(now, effects)?;
        }
        Ok(stored
            .iter()
            .map(headwater_core::model::Change::seq)
            .collect())
    }

    fn answer(
        &mut self,
        now: Micros,
        key: RequestKey,
        outcome: SendOutcome,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        if let RequestKey::Machine(id) = key {
            self.machine
                .handle_answer(wall(now), id, outcome, Vec::new());
        }
        self.drive(now, effects)
    }

    fn set_online(
        &mut self,
        now: Micros,
        online: bool,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        self.online = online;
        if !online {
            return Ok(());
        }
        // As an app that starts: the syncer looks at its store.
        self.machine.handle_captured(wall(now));
        self.drive(now, effects)
    }

    fn wake(&mut self, now: Micros, effects: &mut Effects) -> Result<(), StoreError> {
        if !self.online {
            return Ok(());
        }
        self.drive(now, effects)
    }

    fn next_wake(&self, now: Micros) -> Option<Micros> {
        if !self.online {
            return None;
        }
        self.machine.poll_timeout(wall(now)).map(virtual_time)
    }

    fn stored(&self) -> Result<usize, StoreError> {
        Ok(ready(self.store.stats())?.pending)
    }

    fn paced_rate(&self) -> Option<f64> {
        self.machine.paced_rate()
    }

    fn endpoints(&mut self) -> &mut Endpoints {
        &mut self.endpoints
    }
}
