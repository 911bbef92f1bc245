use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flume::{EventMapping, MappingError};
use crate::policy::{Backoff, BatchLimits, Pacing, RetryLimits};
use crate::protocol::Protocol;

/// Everything a [`Syncer`](super::Syncer) can be told. Start from
/// [`SyncConfig::new`] (or [`Default`]) and change what you need;
/// [`SyncConfig::validate`] says what is wrong, and [`Syncer::new`](super::Syncer::new)
/// calls it.
///
/// It reads from and writes to any serde format, with durations as text (`"250ms"`,
/// `"60s"`); missing fields take their defaults. The seed is never serialized: it is
/// drawn from a random source where the syncer starts.
///
/// ```
/// use std::time::Duration;
/// use headwater_core::engine::SyncConfig;
/// let mut config: SyncConfig = serde_json::from_str(r#"{
///     "batch": {"max_events": 500},
///     "linger": "50ms",
///     "max_in_flight": 2
/// }"#).unwrap();
/// assert_eq!(config.linger, Duration::from_millis(50));
/// assert_eq!(config.batch.max_bytes, 1 << 20, "unset fields keep their defaults");
/// assert!(config.validate().is_ok());
/// config.lease = Duration::ZERO;
/// assert!(config.validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SyncConfig {
    /// The wire protocol: Flume's HTTP source (the default), or OTLP/HTTP logs.
    pub protocol: Protocol,
    /// How changes become Flume events (header names, static headers, body, source id).
    /// Under OTLP its source is the resource's `service.instance.id` and its static
    /// headers are resource attributes.
    pub mapping: EventMapping,
    /// Upper bounds of a batch.
    pub batch: BatchLimits,
    /// At most this many requests in flight at once. Changes to one record are always
    /// delivered in capture order; with 1, all changes are (total order).
    pub max_in_flight: usize,
    /// Adapt the number of requests in flight to how Flume answers (from 1 up to
    /// `max_in_flight`), as Vector's adaptive request concurrency does. Off: always
    /// `max_in_flight`.
    pub adaptive_concurrency: bool,
    /// How long to wait after a capture before sending, so that a burst of captures
    /// shares one request. Zero sends at once.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long the outbox's sending lease lasts between renewals. Longer than the
    /// transport's request timeout; if the process dies, another syncer takes over
    /// after this (unless it restarts under the same [`owner`](Self::owner)).
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Backoff between retries.
    pub backoff: Backoff,
    /// How fast a backlog goes out after failures, so that a fleet coming back from an
    /// outage does not offer the tier every backlog at once (docs/fleet.md).
    pub pacing: Pacing,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// When to give up on a change (default: never).
    pub retry_limits: RetryLimits,
    /// How a batch that Flume refuses (400, 500) is taken apart.
    pub isolation: IsolationRules,
    /// How often a blocked outbox (a configuration problem such as 401 or 404) probes
    /// Flume again.
    #[serde(with = "humantime_serde")]
    pub blocked_probe_interval: Duration,
    /// How often an idle syncer looks at the store, for changes appended by another
    /// process or tab, or a lease another syncer let lapse.
    #[serde(with = "humantime_serde")]
    pub idle_poll_interval: Duration,
    /// When the head of the outbox has not moved for this long while changes wait and
    /// the outbox is neither blocked nor paused, the status says it is stalled
    /// ([`SyncStatus::stalled_since`](super::SyncStatus::stalled_since)) and a warning
    /// is logged. `None` turns the watchdog off.
    #[serde(with = "humantime_serde")]
    pub stall_after: Option<Duration>,
    /// Bounds on the outbox (default: none, so capture never fails for room).
    pub outbox_limits: OutboxLimits,
    /// Send only the latest change per (collection, key) among those batched together;
    /// the earlier ones are acknowledged without being sent.
    pub coalesce: bool,
    /// Cut batches by route: a record's route is a hash of its (collection, key) modulo
    /// this, and a batch holds changes of one route only, so that a transport routing
    /// by key (`Selection::ByKey`) sends all of a record's changes to one endpoint.
    /// `None` (the default): batches mix records freely. The `headwater` facade sets it
    /// to the number of endpoints when the transport routes by key.
    pub routes: Option<usize>,
    /// The name this syncer holds the outbox's lease under. By default each syncer
    /// makes its own (source and seed). A process that restarts under the same name
    /// takes its lease back at once instead of waiting for it to lapse; never run two
    /// syncers under one name on the same outbox.
    pub owner: Option<String>,
    /// Seeds the jitter and the change ids. Every process or tab needs its own random
    /// seed: two writers with the same seed would make the same ids. Not serialized.
    #[serde(skip)]
    pub seed: u64,
}

/// Bounds on how much the outbox holds. A capture that would pass a hard limit fails
/// with [`StoreError::OutboxFull`](crate::store::StoreError::OutboxFull) and stores
/// nothing: the application decides (tell the user, drop its own low-value data, wait).
/// headwater never drops a captured change to make room. The check reads the store's
/// counts before each capture, so captures running at the same time may together pass
/// a limit by one call's changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OutboxLimits {
    /// Most changes pending (dead letters not counted).
    pub max_pending: Option<usize>,
    /// Most bytes pending (values, names and headers).
    pub max_pending_bytes: Option<u64>,
    /// A soft threshold: crossing it logs a warning (once per crossing); nothing fails.
    pub warn_pending: Option<usize>,
}

impl OutboxLimits {
    /// Whether any limit or threshold is set (only then does capture read the counts).
    pub fn is_set(&self) -> bool {
        self.max_pending.is_some()
            || self.max_pending_bytes.is_some()
            || self.warn_pending.is_some()
    }
}

/// How a refused batch is taken apart to find the changes Flume refuses. See
/// docs/delivery-semantics.md for the evidence a change is condemned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct IsolationRules {
    /// A batch holding a change refused with 500 this many times is taken apart (fewer:
    /// it is retried whole, with backoff, as a passing 500 is most often the server's).
    /// Counted per change; only an acknowledgement resets it, not a 503 or a timeout.
    pub isolate_after_server_errors: u32,
    /// A change sent alone is dead-lettered for a 500 after this many refusals, each
    /// right between two answers that show Flume taking other requests.
    pub server_error_strikes: u32,
}

impl Default for IsolationRules {
    fn default() -> Self {
        Self {
            isolate_after_server_errors: 2,
            server_error_strikes: 2,
        }
    }
}

impl Default for SyncConfig {
    /// The defaults with the source `headwater` and seed 0 (set a random seed).
    fn default() -> Self {
        Self::new("headwater", 0)
    }
}

impl SyncConfig {
    /// Defaults for a client called `source` (the `source` header), with `seed` from a
    /// random source of the caller's.
    pub fn new(source: impl Into<String>, seed: u64) -> Self {
        Self {
            protocol: Protocol::Flume,
            mapping: EventMapping::with_source(source),
            batch: BatchLimits::default(),
            max_in_flight: 4,
            adaptive_concurrency: true,
            linger: Duration::ZERO,
            lease: Duration::from_secs(60),
            backoff: Backoff::default(),
            pacing: Pacing::default(),
            max_retry_after: Duration::from_secs(3600),
            retry_limits: RetryLimits::default(),
            isolation: IsolationRules::default(),
            blocked_probe_interval: Duration::from_secs(60),
            idle_poll_interval: Duration::from_secs(30),
            stall_after: Some(Duration::from_secs(300)),
            outbox_limits: OutboxLimits::default(),
            coalesce: false,
            routes: None,
            owner: None,
            seed,
        }
    }

    /// The furthest ahead any lease or retry time can be set from a given moment. A
    /// lease or retry time further ahead than this from `now` was set before the wall
    /// clock jumped back, and counts as passed.
    ///
    /// A `Retry-After` is waited with a random share of up to half of it more (so that a
    /// fleet told the same wait comes back spread), so it reaches 1.5 times
    /// `max_retry_after`.
    pub fn schedule_horizon(&self) -> Duration {
        self.lease
            .max(self.backoff.cap)
            .max(self.max_retry_after + self.max_retry_after / 2)
            .max(self.blocked_probe_interval)
            + Duration::from_secs(60)
    }

    /// The name the lease is held under.
    pub fn owner_name(&self) -> String {
        self.owner
            .clone()
            .unwrap_or_else(|| format!("{}#{:016x}", self.mapping.source, self.seed))
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
        if self.max_in_flight == 0 {
            return Err(ConfigError::ZeroMaxInFlight);
        }
        if self.routes == Some(0) {
            return Err(ConfigError::ZeroRoutes);
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
        if self.stall_after.is_some_and(|after| after.is_zero()) {
            return Err(ConfigError::ZeroDuration("stall_after"));
        }
        if self.outbox_limits.max_pending == Some(0) {
            return Err(ConfigError::ZeroOutboxLimit("outbox_limits.max_pending"));
        }
        if self.outbox_limits.max_pending_bytes == Some(0) {
            return Err(ConfigError::ZeroOutboxLimit(
                "outbox_limits.max_pending_bytes",
            ));
        }
        if self.backoff.cap < self.backoff.base {
            return Err(ConfigError::BackoffCapBelowBase);
        }
        let pacing = &self.pacing;
        if !(pacing.increase.is_finite() && pacing.increase >= 1.0) {
            return Err(ConfigError::Pacing("pacing.increase must be at least 1"));
        }
        if !(pacing.decrease > 0.0 && pacing.decrease < 1.0) {
            return Err(ConfigError::Pacing(
                "pacing.decrease must be above 0 and below 1",
            ));
        }
        if pacing.gather.is_zero() {
            return Err(ConfigError::ZeroDuration("pacing.gather"));
        }
        if self.isolation.isolate_after_server_errors == 0 {
            return Err(ConfigError::ZeroIsolation(
                "isolation.isolate_after_server_errors",
            ));
        }
        if self.isolation.server_error_strikes == 0 {
            return Err(ConfigError::ZeroIsolation("isolation.server_error_strikes"));
        }
        if self.retry_limits.max_attempts == Some(0) {
            return Err(ConfigError::ZeroMaxAttempts);
        }
        if self.owner.as_deref() == Some("") {
            return Err(ConfigError::EmptyOwner);
        }
        Ok(())
    }
}

/// The smallest `max_bytes` that holds an event with the default headers.
const MIN_MAX_BYTES: usize = 512;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The event mapping would make Flume reject every request.
    #[error("invalid event mapping: {0}")]
    Mapping(#[from] MappingError),
    /// An outbox limit of zero, which would refuse every capture.
    #[error("{0} must be at least 1 (or null for no limit)")]
    ZeroOutboxLimit(&'static str),
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
    /// `max_in_flight` is zero.
    #[error("max_in_flight must be at least 1")]
    ZeroMaxInFlight,
    /// A duration that must be positive is zero.
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    /// The backoff cap is below its base.
    #[error("backoff.cap must not be below backoff.base")]
    BackoffCapBelowBase,
    /// An isolation threshold is zero.
    #[error("{0} must be at least 1")]
    ZeroIsolation(&'static str),
    /// `routes` is zero.
    #[error("routes must be at least 1 (or unset to not cut batches by route)")]
    ZeroRoutes,
    /// A pacing factor out of its range.
    #[error("{0}")]
    Pacing(&'static str),
    /// `retry_limits.max_attempts` is zero, which would dead-letter every change unsent.
    #[error("retry_limits.max_attempts must be at least 1 (or unset for no limit)")]
    ZeroMaxAttempts,
    /// `owner` is set but empty.
    #[error("owner must not be empty (leave it unset for a generated one)")]
    EmptyOwner,
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
        check(|c| c.max_in_flight = 0, ConfigError::ZeroMaxInFlight);
        check(
            |c| c.lease = Duration::ZERO,
            ConfigError::ZeroDuration("lease"),
        );
        check(
            |c| c.backoff.cap = Duration::from_millis(1),
            ConfigError::BackoffCapBelowBase,
        );
        check(
            |c| c.pacing.decrease = 1.5,
            ConfigError::Pacing("pacing.decrease must be above 0 and below 1"),
        );
        check(
            |c| c.pacing.increase = 0.5,
            ConfigError::Pacing("pacing.increase must be at least 1"),
        );
        check(
            |c| c.isolation.isolate_after_server_errors = 0,
            ConfigError::ZeroIsolation("isolation.isolate_after_server_errors"),
        );
        check(
            |c| c.retry_limits.max_attempts = Some(0),
            ConfigError::ZeroMaxAttempts,
        );
        check(|c| c.owner = Some(String::new()), ConfigError::EmptyOwner);
        check(
            |c| c.mapping.headers.op = Some("id".into()),
            ConfigError::Mapping(MappingError::DuplicateHeaderName("id".into())),
        );
    }

    #[test]
    fn round_trips_through_json_without_the_seed() {
        let mut config = SyncConfig::new("phone", 99);
        config.backoff.base = Duration::from_millis(300);
        config.retry_limits.max_age = Some(Duration::from_secs(86_400));
        let text = serde_json::to_string(&config).unwrap();
        assert!(text.contains("\"300ms\""), "{text}");
        assert!(!text.contains("seed"), "{text}");
        let back: SyncConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.backoff, config.backoff);
        assert_eq!(back.retry_limits, config.retry_limits);
        assert_eq!(back.seed, 0);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<SyncConfig>(r#"{"max_inflight": 3}"#).unwrap_err();
        assert!(error.to_string().contains("max_inflight"), "{error}");
    }
}
