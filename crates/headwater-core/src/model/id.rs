use std::fmt;

use chrono::{DateTime, Utc};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The idempotency key of a change: a UUIDv7 made at capture and never changed, sent as
/// Flume's `id` header so that consumers can drop redelivered duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangeId(Uuid);

impl ChangeId {
    /// The id `uuid`, as a store reads back one it kept (new ids come from a
    /// [`ChangeIdGenerator`]).
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The id in its canonical lowercase hyphenated form, without allocating.
    pub fn encode<'b>(&self, buffer: &'b mut [u8; 36]) -> &'b str {
        self.0.hyphenated().encode_lower(buffer)
    }
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Makes UUIDv7 change ids from the capture time and a seeded random stream.
///
/// The core never reads an OS random source: seed this from one (the browser's
/// `crypto.getRandomValues`, the OS on native) in the adapter. Two writers that share a
/// seed would make equal ids, so every process or tab needs its own random seed.
///
/// ```
/// use headwater_core::model::ChangeIdGenerator;
/// let mut ids = ChangeIdGenerator::from_seed(7);
/// let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
/// let id = ids.next_id(now);
/// assert_eq!(id.as_uuid().get_version_num(), 7);
/// ```
#[derive(Debug, Clone)]
pub struct ChangeIdGenerator {
    rng: ChaCha8Rng,
}

impl ChangeIdGenerator {
    /// A generator whose random bits come from `seed`.
    pub fn from_seed(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The next id for a change captured at `now`.
    pub fn next_id(&mut self, now: DateTime<Utc>) -> ChangeId {
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        // UUIDv7 holds 48 bits of unix milliseconds; times before 1970 are clamped.
        let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        ChangeId(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }
}
