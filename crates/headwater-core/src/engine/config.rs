use std::time::Duration;

use crate::flume::{EventMapping, MappingError};
use crate::policy::{Backoff, BatchLimits, ClassifyRules, RetryLimits};

/// Everything a [`Syncer`](super::Syncer) can be told. Start from
/// [`SyncConfig::new`] and change what you need; [`SyncConfig::validate`] says what is
/// wrong, and [`Syncer::new`](super::Syncer::new) calls it.
///
/// ```
/// use std::time::Duration;
/// use headwater_core::engine::SyncConfig;
/// let mut config = SyncConfig::new("phone-7", 0x5eed);
/// config.batch.max_events = 500;
/// config.linger = Duration::from_millis(50);
/// assert!(config.validate().is_ok());
/// config.lease = Duration::ZERO;
/// assert!(config.validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    /// How changes become Flume events (header names, static headers, body, source id).
    pub mapping: EventMapping,
    /// Upper bounds of a batch.
    pub batch: BatchLimits,
    /// How long to wait after a capture before sending, so that a burst of captures
    /// shares one request. Zero sends at once.
    pub linger: Duration,
    /// How long a claimed batch stays reserved. Must be longer than the transport's
    /// request timeout; if the process dies, its batch is sent again after this.
    pub lease: Duration,
    /// Backoff between retries.
    pub backoff: Backoff,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
    /// When to give up on a change (default: never).
    pub retry_limits: RetryLimits,
    /// Classification tunables.
    pub classify: ClassifyRules,
    /// How often a blocked outbox (a configuration problem such as 401 or 404) probes
    /// Flume again.
    pub blocked_probe_interval: Duration,
    /// How often an idle run loop looks at the store, for changes whose lease another
    /// syncer let lapse.
    pub idle_poll_interval: Duration,
    /// Send only the latest change per (collection, key) among those claimed together;
    /// the earlier ones are acknowledged without being sent.
    pub coalesce: bool,
    /// Seeds the jitter and the change ids. Every process or tab needs its own random
    /// seed: two writers with the same seed would make the same ids.
    pub seed: u64,
}

impl SyncConfig {
    /// Defaults for a client called `source` (the `source` header), with `seed` from a
    /// random source of the caller's.
    pub fn new(source: impl Into<String>, seed: u64) -> Self {
        SyncConfig {
            mapping: EventMapping::with_source(source),
            batch: BatchLimits::default(),
            linger: Duration::ZERO,
            lease: Duration::from_secs(60),
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(3600),
            retry_limits: RetryLimits::default(),
            classify: ClassifyRules::default(),
            blocked_probe_interval: Duration::from_secs(60),
            idle_poll_interval: Duration::from_secs(30),
            coalesce: false,
            seed,
        }
    }

    /// The furthest ahead any lease or retry time can be set from a given moment. A store
    /// entry scheduled further ahead than this from `now` was scheduled before the wall
    /// clock jumped back, and counts as due.
    pub fn schedule_horizon(&self) -> Duration {
        self.lease
            .max(self.backoff.cap)
            .max(self.max_retry_after)
            .max(self.blocked_probe_interval)
            + Duration::from_secs(60)
    }

    /// Says what is wrong with the configuration, if anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mapping.validate()?;
        if self.mapping.source.is_empty() {
            return Err(ConfigError::EmptySource);
        }
        if self.batch.max_events == 0 {
            return Err(ConfigError::ZeroMaxEvents);
        }
        if self.batch.max_bytes < MIN_MAX_BYTES {
            return Err(ConfigError::MaxBytesTooSmall {
                max_bytes: self.batch.max_bytes,
                min: MIN_MAX_BYTES,
            });
        }
        if self.lease.is_zero() {
            return Err(ConfigError::ZeroDuration("lease"));
        }
        if self.backoff.base.is_zero() {
            return Err(ConfigError::ZeroDuration("backoff.base"));
        }
        if self.blocked_probe_interval.is_zero() {
            return Err(ConfigError::ZeroDuration("blocked_probe_interval"));
        }
        if self.idle_poll_interval.is_zero() {
            return Err(ConfigError::ZeroDuration("idle_poll_interval"));
        }
        if self.backoff.cap < self.backoff.base {
            return Err(ConfigError::BackoffCapBelowBase);
        }
        if self.classify.isolate_after_server_errors == 0 {
            return Err(ConfigError::ZeroIsolateThreshold);
        }
        if self.retry_limits.max_attempts == Some(0) {
            return Err(ConfigError::ZeroMaxAttempts);
        }
        Ok(())
    }
}

/// The smallest `max_bytes` that holds an event with the default headers.
const MIN_MAX_BYTES: usize = 512;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The event mapping would make Flume reject every request.
    #[error("invalid event mapping: {0}")]
    Mapping(#[from] MappingError),
    /// The source id is empty.
    #[error("the source id (mapping.source) must not be empty")]
    EmptySource,
    /// `batch.max_events` is zero.
    #[error("batch.max_events must be at least 1")]
    ZeroMaxEvents,
    /// `batch.max_bytes` cannot hold an event.
    #[error("batch.max_bytes is {max_bytes}; it must be at least {min} to hold one event")]
    MaxBytesTooSmall {
        /// The configured value.
        max_bytes: usize,
        /// The minimum.
        min: usize,
    },
    /// A duration that must be positive is zero.
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    /// The backoff cap is below its base.
    #[error("backoff.cap must not be below backoff.base")]
    BackoffCapBelowBase,
    /// `classify.isolate_after_server_errors` is zero.
    #[error("classify.isolate_after_server_errors must be at least 1")]
    ZeroIsolateThreshold,
    /// `retry_limits.max_attempts` is zero, which would dead-letter every change unsent.
    #[error("retry_limits.max_attempts must be at least 1 (or None for no limit)")]
    ZeroMaxAttempts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(SyncConfig::new("x", 1).validate(), Ok(()));
    }

    #[test]
    fn each_misconfiguration_is_named() {
        let check = |change: fn(&mut SyncConfig), expected: ConfigError| {
            let mut config = SyncConfig::new("x", 1);
            change(&mut config);
            assert_eq!(config.validate(), Err(expected));
        };
        check(|c| c.mapping.source.clear(), ConfigError::EmptySource);
        check(|c| c.batch.max_events = 0, ConfigError::ZeroMaxEvents);
        check(
            |c| c.batch.max_bytes = 10,
            ConfigError::MaxBytesTooSmall {
                max_bytes: 10,
                min: 512,
            },
        );
        check(
            |c| c.lease = Duration::ZERO,
            ConfigError::ZeroDuration("lease"),
        );
        check(
            |c| c.backoff.cap = Duration::from_millis(1),
            ConfigError::BackoffCapBelowBase,
        );
        check(
            |c| c.classify.isolate_after_server_errors = 0,
            ConfigError::ZeroIsolateThreshold,
        );
        check(
            |c| c.retry_limits.max_attempts = Some(0),
            ConfigError::ZeroMaxAttempts,
        );
        check(
            |c| c.mapping.headers.op = Some("id".into()),
            ConfigError::Mapping(MappingError::DuplicateHeaderName("id".into())),
        );
    }
}
