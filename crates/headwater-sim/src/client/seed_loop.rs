//! The loop of the article headwater grew from, as the baseline a fleet is compared
//! with: one batch of up to 100 changes in flight at a time; on any failure the same
//! batch is sent again after a fixed 5 s, with no jitter and no other signal read.

use std::collections::VecDeque;
use std::time::Duration;

use headwater_core::model::{ChangeData, Seq};
use headwater_core::policy::{Endpoints, Verdict, classify};
use headwater_core::store::StoreError;
use headwater_core::transport::SendOutcome;

use super::{Effects, FleetClient, RequestKey, Send};
use crate::time::{Micros, SECOND};

/// The most changes in one request.
const BATCH: usize = 100;
/// The wait after any failure.
const RETRY_EVERY: Micros = 5 * SECOND;

/// The seed article's client.
#[derive(Debug)]
pub struct SeedLoopClient {
    queue: VecDeque<Seq>,
    next_seq: u64,
    in_flight: Option<usize>,
    retry_at: Option<Micros>,
    endpoints: Endpoints,
    online: bool,
}

impl SeedLoopClient {
    /// An idle client with an empty queue.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            queue: VecDeque::new(),
            next_seq: 1,
            in_flight: None,
            retry_at: None,
            endpoints,
            online: true,
        }
    }

    /// The constant wait after a failure.
    pub fn retry_interval() -> Duration {
        Duration::from_micros(RETRY_EVERY)
    }

    fn send_if_idle(&mut self, now: Micros, effects: &mut Effects) {
        if !self.online || self.in_flight.is_some() || self.retry_at.is_some_and(|at| at > now) {
            return;
        }
        self.retry_at = None;
        let count = self.queue.len().min(BATCH);
        if count == 0 {
            return;
        }
        self.in_flight = Some(count);
        effects.sends.push(Send {
            key: RequestKey::Loop,
            seqs: self.queue.iter().take(count).copied().collect(),
            route: None,
        });
    }
}

impl FleetClient for SeedLoopClient {
    fn capture(
        &mut self,
        now: Micros,
        changes: Vec<ChangeData>,
        effects: &mut Effects,
    ) -> Result<Vec<Seq>, StoreError> {
        let seqs = changes
            .iter()
            .map(|_| {
                let seq = Seq::new(self.next_seq).ok_or(StoreError::SeqExhausted)?;
                self.next_seq += 1;
                Ok(seq)
            })
            .collect::<Result<Vec<Seq>, StoreError>>()?;
        self.queue.extend(&seqs);
        self.send_if_idle(now, effects);
        Ok(seqs)
    }

    fn answer(
        &mut self,
        now: Micros,
        _key: RequestKey,
        outcome: SendOutcome,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let Some(count) = self.in_flight.take() else {
            return Ok(());
        };
        if classify(&outcome) == Verdict::Ack {
            effects.acked.extend(self.queue.drain(..count));
        } else {
            self.retry_at = Some(now + RETRY_EVERY);
        }
        self.send_if_idle(now, effects);
        Ok(())
    }

    fn set_online(
        &mut self,
        now: Micros,
        online: bool,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        self.online = online;
        self.send_if_idle(now, effects);
        Ok(())
    }

    fn wake(&mut self, now: Micros, effects: &mut Effects) -> Result<(), StoreError> {
        self.send_if_idle(now, effects);
        Ok(())
    }

    fn next_wake(&self, now: Micros) -> Option<Micros> {
        self.retry_at.filter(|at| *at > now)
    }

    fn stored(&self) -> Result<usize, StoreError> {
        Ok(self.queue.len())
    }

    fn paced_rate(&self) -> Option<f64> {
        None
    }

    fn endpoints(&mut self) -> &mut Endpoints {
        &mut self.endpoints
    }
}
