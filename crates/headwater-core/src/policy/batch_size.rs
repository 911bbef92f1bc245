use serde::{Deserialize, Serialize};

use super::Overload;

/// The configured upper bounds of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BatchLimits {
    /// Most events per request. The default, 100, is the memory channel's default
    /// `transactionCapacity`: Flume answers 503 to every larger batch.
    pub max_events: usize,
    /// Most bytes of encoded JSON per request.
    pub max_bytes: usize,
}

impl BatchLimits {
    /// At most `max_events` events and `max_bytes` bytes of encoded JSON per request.
    pub const fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            max_events,
            max_bytes,
        }
    }
}

impl Default for BatchLimits {
    /// 100 events, 1 MiB.
    fn default() -> Self {
        Self {
            max_events: 100,
            max_bytes: 1024 * 1024,
        }
    }
}

/// The batch size in force, adapted to what Flume can take.
///
/// A 503 that names the channel's capacity N, for a batch larger than N, caps the size
/// at N at once and for good; other 503s (and one naming an N not below the refused
/// batch) halve it (down to 1), and each success grows it back by a
/// twentieth of the configured maximum (additive increase, multiplicative decrease).
/// A 413 lowers the byte limit (to half the refused request); successes grow it back
/// the same way, by a twentieth of the configured limit each, so a limit that was only
/// a passing proxy's heals.
///
/// ```
/// use headwater_core::policy::{BatchLimits, BatchSizer, Overload};
/// let mut sizer = BatchSizer::new(BatchLimits::new(150, 1 << 20));
/// sizer.on_overload(150, Overload::Capacity(100));
/// assert_eq!(sizer.max_events(), 100);
/// sizer.on_success();
/// assert_eq!(sizer.max_events(), 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSizer {
    configured: BatchLimits,
    max_events: usize,
    max_bytes: usize,
    learned_capacity: Option<usize>,
}

impl BatchSizer {
    /// Starts at the configured limits.
    pub fn new(configured: BatchLimits) -> Self {
        Self {
            configured,
            max_events: configured.max_events.max(1),
            max_bytes: configured.max_bytes,
            learned_capacity: None,
        }
    }

    /// Events allowed in the next batch.
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// Bytes allowed in the next batch.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The transaction capacity Flume told us, if it did.
    pub fn learned_capacity(&self) -> Option<usize> {
        self.learned_capacity
    }

    fn ceiling(&self) -> usize {
        let configured = self.configured.max_events.max(1);
        self.learned_capacity
            .map_or(configured, |capacity| capacity.min(configured))
    }

    /// The configured limits.
    pub fn configured(&self) -> BatchLimits {
        self.configured
    }

    /// A batch was committed: grow additively, in events and in bytes.
    pub fn on_success(&mut self) {
        let step = (self.configured.max_events / 20).max(1);
        self.max_events = (self.max_events + step).min(self.ceiling());
        let byte_step = (self.configured.max_bytes / 20).max(1);
        self.max_bytes = self
            .max_bytes
            .saturating_add(byte_step)
            .min(self.configured.max_bytes);
    }

    /// A batch of `sent` events was refused for overload.
    pub fn on_overload(&mut self, sent: usize, overload: Overload) {
        match overload {
            Overload::None => {}
            Overload::Capacity(capacity) if sent > capacity => {
                self.learned_capacity = Some(capacity);
                self.max_events = self.max_events.min(capacity);
            }
            Overload::Capacity(_) | Overload::Shrink => {
                self.max_events = (sent.min(self.max_events) / 2).max(1);
            }
        }
    }

    /// A request was refused as too large: allow at most `new_limit` bytes from now on
    /// (the engine passes half the refused request, but no less than its first event).
    pub fn on_too_large(&mut self, new_limit: usize) {
        self.max_bytes = self.max_bytes.min(new_limit).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizer(max_events: usize) -> BatchSizer {
        BatchSizer::new(BatchLimits {
            max_events,
            max_bytes: 1000,
        })
    }

    #[test]
    fn capacity_hint_sets_the_size_and_caps_growth() {
        let mut sizer = sizer(500);
        sizer.on_overload(500, Overload::Capacity(100));
        assert_eq!(sizer.max_events(), 100);
        for _ in 0..50 {
            sizer.on_success();
        }
        assert_eq!(sizer.max_events(), 100);
        assert_eq!(sizer.learned_capacity(), Some(100));
    }

    #[test]
    fn a_hint_above_what_was_sent_halves_instead() {
        let mut sizer = sizer(100);
        sizer.on_overload(80, Overload::Capacity(100));
        assert_eq!(sizer.max_events(), 40);
        assert_eq!(sizer.learned_capacity(), None);
    }

    #[test]
    fn aimd_halves_to_one_and_grows_back() {
        let mut sizer = sizer(100);
        for _ in 0..10 {
            sizer.on_overload(sizer.max_events(), Overload::Shrink);
        }
        assert_eq!(sizer.max_events(), 1);
        sizer.on_success();
        assert_eq!(sizer.max_events(), 6);
        for _ in 0..100 {
            sizer.on_success();
        }
        assert_eq!(sizer.max_events(), 100);
    }

    #[test]
    fn too_large_lowers_bytes_and_successes_heal_it() {
        let mut sizer = sizer(100);
        sizer.on_too_large(400);
        assert_eq!(sizer.max_bytes(), 400);
        sizer.on_too_large(2000);
        assert_eq!(sizer.max_bytes(), 400);
        sizer.on_too_large(0);
        assert_eq!(sizer.max_bytes(), 1);
        sizer.on_success();
        assert_eq!(sizer.max_bytes(), 51);
        for _ in 0..40 {
            sizer.on_success();
        }
        assert_eq!(sizer.max_bytes(), 1000, "back to the configured limit");
    }

    #[test]
    fn plain_retries_leave_the_size_alone() {
        let mut sizer = sizer(100);
        sizer.on_overload(100, Overload::None);
        assert_eq!(sizer.max_events(), 100);
    }
}
