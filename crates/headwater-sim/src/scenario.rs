//! What a run simulates: the fleet, the tier, the network and what goes wrong, as named
//! presets or a JSON file of the same fields.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Everything one run depends on, besides the policy. Every field has a default (the
/// `outage` preset's); a file gives only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name, for the report.
    pub name: String,
    /// How many clients (each a delivery machine over its own outbox).
    pub clients: usize,
    /// Seeds every random draw of the run: the same seed gives the same run.
    pub seed: u64,
    /// Flume agents in the tier.
    pub agents: usize,
    /// The tier's capacity per client, in events/s: the tier takes
    /// `capacity_per_client × clients` events/s (C), shared equally by the agents.
    pub capacity_per_client: f64,
    /// The mean gap between one client's captures, in seconds (gaps are exponential).
    pub capture_interval_s: f64,
    /// How much clients differ: each client's capture rate is the mean times a
    /// log-normal factor with mean 1 and this standard deviation of its logarithm.
    pub rate_spread: f64,
    /// A burst of captures, if any.
    pub burst: Option<Burst>,
    /// Clients capture offline for this many seconds, then every one starts delivering
    /// at the same moment, with the backlog it holds: an app release reaching clients
    /// that were offline. Zero: clients deliver from the start.
    pub initial_backlog_s: f64,
    /// Each agent's channel holds this many seconds of its share of C.
    pub channel_s: f64,
    /// Each channel's `transactionCapacity`: a larger batch gets Flume's 503.
    pub transaction_capacity: usize,
    /// How long a commit waits for room in a full channel before Flume answers 503
    /// (the memory channel's `keep-alive`).
    pub keep_alive_s: f64,
    /// Request threads per agent (Jetty's `QueuedThreadPool`, 200 by default in Flume's
    /// HTTP source): a request holds one until it is answered.
    pub agent_threads: usize,
    /// Cores per agent, which parse requests.
    pub agent_cores: usize,
    /// CPU time per request, in microseconds.
    pub request_cost_us: f64,
    /// CPU time per event parsed, in microseconds (Flume parses a batch whole before it
    /// knows whether the channel takes it).
    pub event_cost_us: f64,
    /// The mean round trip between a client and an agent, in milliseconds.
    pub rtt_ms: f64,
    /// Round trips are spread uniformly by this much either side, in milliseconds.
    pub rtt_jitter_ms: f64,
    /// Every round trip is multiplied by this (a slow network or tier).
    pub latency_factor: f64,
    /// The share of answers lost on the way back after the agent committed (the client
    /// sees a timeout; its retry is a duplicate that the id makes harmless).
    pub answer_loss: f64,
    /// The client transport's request timeout, in seconds.
    pub request_timeout_s: f64,
    /// How each client's transport spreads its requests over the agents.
    pub spreading: Spreading,
    /// What goes wrong, if anything.
    pub disruption: Option<Disruption>,
    /// The run ends after this many seconds, or a minute after the fleet has drained
    /// once the disruption is over.
    pub duration_s: f64,
}

/// How each client's transport spreads its requests over the agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spreading {
    /// Failover from a primary agent each client draws from its seed: headwater's
    /// default (`Selection::Failover`, the primary drawn by the facade).
    #[default]
    Failover,
    /// Failover from the first agent listed, the same for every client, as Flume's own
    /// `default_failover` client does (and headwater did before the fleet simulation).
    FailoverFirst,
    /// Each request to the next agent in turn (`Selection::RoundRobin`).
    RoundRobin,
    /// Each record's changes to one agent, by a hash of the record (`Selection::ByKey`).
    ByKey,
}

/// A burst of captures: every client captures `factor` times as fast for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// When it starts, in seconds.
    pub from_s: f64,
    /// When it ends, in seconds.
    pub to_s: f64,
    /// How many times the usual rate.
    pub factor: f64,
}

/// What goes wrong in the tier for a while. The fleet recovers when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Disruption {
    /// Agents are down (connections refused): all of them, or those listed (0-based).
    Outage {
        /// When it starts, in seconds.
        from_s: f64,
        /// When it ends, in seconds.
        to_s: f64,
        /// Which agents are down (all when absent).
        agents: Option<Vec<usize>>,
    },
    /// A share of all requests is answered 503 (channel full) without being committed.
    Brownout {
        /// When it starts, in seconds.
        from_s: f64,
        /// When it ends, in seconds.
        to_s: f64,
        /// The share of requests refused, from 0 to 1.
        share: f64,
    },
    /// A proxy in front of the tier answers every request `503` with this `Retry-After`.
    RetryAfter {
        /// When it starts, in seconds.
        from_s: f64,
        /// When it ends, in seconds.
        to_s: f64,
        /// The `Retry-After` it sends, in seconds.
        retry_after_s: u64,
    },
}

impl Disruption {
    /// When it starts and ends, in seconds.
    pub fn window(&self) -> (f64, f64) {
        match self {
            Self::Outage { from_s, to_s, .. }
            | Self::Brownout { from_s, to_s, .. }
            | Self::RetryAfter { from_s, to_s, .. } => (*from_s, *to_s),
        }
    }
}

/// The named presets, in the order the report lists them.
pub const PRESETS: &[&str] = &[
    "steady",
    "outage",
    "partial",
    "brownout",
    "mass-start",
    "slow-tier",
    "retry-after",
];

impl Default for Scenario {
    /// The `outage` preset's tier and fleet, with no disruption.
    fn default() -> Self {
        Self {
            name: "custom".into(),
            clients: 2_000,
            seed: 1,
            agents: 3,
            capacity_per_client: 0.2,
            capture_interval_s: 10.0,
            rate_spread: 0.5,
            burst: None,
            initial_backlog_s: 0.0,
            channel_s: 2.0,
            transaction_capacity: 100,
            keep_alive_s: 3.0,
            agent_threads: 200,
            agent_cores: 4,
            request_cost_us: 100.0,
            event_cost_us: 4.0,
            rtt_ms: 20.0,
            rtt_jitter_ms: 10.0,
            latency_factor: 1.0,
            answer_loss: 0.0,
            request_timeout_s: 10.0,
            spreading: Spreading::Failover,
            disruption: None,
            duration_s: 3_600.0,
        }
    }
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Neither a preset nor a file.
    #[error("no scenario {name:?}: the presets are {}, or give the path of a JSON file", PRESETS.join(", "))]
    Unknown {
        /// What was asked for.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read the scenario file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a scenario (bad JSON, an unknown field, a wrong type).
    #[error("the scenario file {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What serde found.
        source: serde_json::Error,
    },
    /// A value that cannot be simulated.
    #[error("scenario field `{field}`: {reason}")]
    Invalid {
        /// The field, as written in a file.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn positive(field: &'static str, value: f64) -> Result<(), ScenarioError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be above zero, not {value}")))
    }
}

fn not_negative(field: &'static str, value: f64) -> Result<(), ScenarioError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be zero or more, not {value}")))
    }
}

impl Scenario {
    /// The preset called `name`, if there is one.
    pub fn preset(name: &str) -> Option<Self> {
        let ten_minutes = |disruption| Self {
            name: name.into(),
            disruption: Some(disruption),
            ..Self::default()
        };
        let outage = Disruption::Outage {
            from_s: 120.0,
            to_s: 720.0,
            agents: None,
        };
        Some(match name {
            "steady" => Self {
                name: name.into(),
                duration_s: 600.0,
                ..Self::default()
            },
            "outage" => ten_minutes(outage),
            "partial" => ten_minutes(Disruption::Outage {
                from_s: 120.0,
                to_s: 720.0,
                agents: Some(vec![0]),
            }),
            "brownout" => ten_minutes(Disruption::Brownout {
                from_s: 120.0,
                to_s: 720.0,
                share: 0.5,
            }),
            "mass-start" => Self {
                name: name.into(),
                initial_backlog_s: 600.0,
                ..Self::default()
            },
            "slow-tier" => Self {
                latency_factor: 10.0,
                ..ten_minutes(outage)
            },
            "retry-after" => ten_minutes(Disruption::RetryAfter {
                from_s: 120.0,
                to_s: 720.0,
                retry_after_s: 30,
            }),
            _ => return None,
        })
    }

    /// A preset by name, or else the JSON file at that path.
    pub fn open(name_or_path: &str) -> Result<Self, ScenarioError> {
        if let Some(preset) = Self::preset(name_or_path) {
            return Ok(preset);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ScenarioError::Unknown {
                name: name_or_path.into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: name_or_path.into(),
            source,
        })?;
        let scenario: Self =
            serde_json::from_str(&text).map_err(|source| ScenarioError::Parse {
                path: name_or_path.into(),
                source,
            })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The tier's capacity C, in events/s.
    pub fn capacity(&self) -> f64 {
        self.capacity_per_client * self.clients as f64
    }

    /// The fleet's steady load L, in events/s (bursts aside).
    pub fn load(&self) -> f64 {
        self.clients as f64 / self.capture_interval_s
    }

    /// When the fleet recovers, in seconds: the end of the disruption, or when a fleet
    /// that captured offline starts delivering. `None`: nothing to recover from.
    pub fn recovery_s(&self) -> Option<f64> {
        match &self.disruption {
            Some(disruption) => Some(disruption.window().1.max(self.initial_backlog_s)),
            None if self.initial_backlog_s > 0.0 => Some(self.initial_backlog_s),
            None => None,
        }
    }

    /// Says what is wrong, naming the field, if anything is.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.clients == 0 {
            return Err(invalid("clients", "a fleet needs at least one client"));
        }
        if self.agents == 0 {
            return Err(invalid("agents", "a tier needs at least one agent"));
        }
        positive("capacity_per_client", self.capacity_per_client)?;
        positive("capture_interval_s", self.capture_interval_s)?;
        not_negative("rate_spread", self.rate_spread)?;
        not_negative("initial_backlog_s", self.initial_backlog_s)?;
        if self.initial_backlog_s >= self.duration_s {
            return Err(invalid(
                "initial_backlog_s",
                format!("must end before duration_s ({} s)", self.duration_s),
            ));
        }
        positive("channel_s", self.channel_s)?;
        if self.transaction_capacity == 0 {
            return Err(invalid("transaction_capacity", "must be at least 1"));
        }
        not_negative("keep_alive_s", self.keep_alive_s)?;
        if self.agent_threads == 0 {
            return Err(invalid(
                "agent_threads",
                "an agent needs at least one thread",
            ));
        }
        if self.agent_cores == 0 {
            return Err(invalid("agent_cores", "an agent needs at least one core"));
        }
        not_negative("request_cost_us", self.request_cost_us)?;
        not_negative("event_cost_us", self.event_cost_us)?;
        not_negative("rtt_ms", self.rtt_ms)?;
        not_negative("rtt_jitter_ms", self.rtt_jitter_ms)?;
        if self.rtt_jitter_ms > self.rtt_ms {
            return Err(invalid(
                "rtt_jitter_ms",
                format!(
                    "cannot exceed rtt_ms ({}): a round trip is never negative",
                    self.rtt_ms
                ),
            ));
        }
        positive("latency_factor", self.latency_factor)?;
        if !(0.0..1.0).contains(&self.answer_loss) {
            return Err(invalid(
                "answer_loss",
                format!("must be at least 0 and below 1, not {}", self.answer_loss),
            ));
        }
        positive("request_timeout_s", self.request_timeout_s)?;
        positive("duration_s", self.duration_s)?;
        if let Some(burst) = &self.burst {
            not_negative("burst.from_s", burst.from_s)?;
            positive("burst.factor", burst.factor)?;
            if burst.to_s <= burst.from_s || burst.to_s > self.duration_s {
                return Err(invalid(
                    "burst.to_s",
                    format!(
                        "must be after burst.from_s and within duration_s ({} s)",
                        self.duration_s
                    ),
                ));
            }
        }
        if let Some(disruption) = &self.disruption {
            let (from, to) = disruption.window();
            not_negative("disruption.from_s", from)?;
            if !(to > from && to <= self.duration_s) {
                return Err(invalid(
                    "disruption.to_s",
                    format!(
                        "must be after disruption.from_s ({from} s) and within duration_s ({} s): a disruption longer than the run never ends",
                        self.duration_s
                    ),
                ));
            }
            match disruption {
                Disruption::Outage {
                    agents: Some(down), ..
                } => {
                    if down.is_empty() {
                        return Err(invalid(
                            "disruption.agents",
                            "lists no agent (leave it out for all)",
                        ));
                    }
                    if let Some(bad) = down.iter().find(|agent| **agent >= self.agents) {
                        return Err(invalid(
                            "disruption.agents",
                            format!(
                                "agent {bad} does not exist: there are {} (from 0)",
                                self.agents
                            ),
                        ));
                    }
                }
                Disruption::Brownout { share, .. } if !(0.0..=1.0).contains(share) => {
                    return Err(invalid(
                        "disruption.share",
                        format!("must be from 0 to 1, not {share}"),
                    ));
                }
                _ => {}
            }
        }
        if self.recovery_s().is_some() && self.capacity() <= self.load() {
            return Err(invalid(
                "capacity_per_client",
                format!(
                    "the tier ({} events/s) must take more than the fleet captures ({} events/s), or no backlog ever drains",
                    self.capacity(),
                    self.load()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid() {
        for name in PRESETS {
            let scenario = Scenario::preset(name).unwrap();
            scenario.validate().unwrap();
            assert_eq!(scenario.name, *name);
        }
    }

    #[test]
    fn the_outage_preset_is_pinned() {
        let outage = Scenario::preset("outage").unwrap();
        assert_eq!(outage.agents, 3);
        assert_eq!(outage.capture_interval_s, 10.0);
        assert_eq!(outage.capacity(), 0.2 * outage.clients as f64);
        assert_eq!(outage.capacity(), 2.0 * outage.load());
        assert_eq!(outage.channel_s, 2.0);
        assert_eq!(outage.transaction_capacity, 100);
        assert_eq!((outage.rtt_ms, outage.rtt_jitter_ms), (20.0, 10.0));
        assert_eq!(outage.recovery_s(), Some(720.0));
        assert_eq!(outage.duration_s, 3_600.0);
    }

    fn parse(json: &str) -> Result<Scenario, String> {
        let scenario: Scenario = serde_json::from_str(json).map_err(|e| e.to_string())?;
        scenario.validate().map_err(|e| e.to_string())?;
        Ok(scenario)
    }

    #[test]
    fn a_file_names_what_is_wrong() {
        assert!(parse(r#"{"clients": 10}"#).is_ok());
        let unknown = parse(r#"{"clinets": 10}"#).unwrap_err();
        assert!(unknown.contains("clinets"), "{unknown}");
        let zero = parse(r#"{"agents": 0}"#).unwrap_err();
        assert!(zero.contains("`agents`"), "{zero}");
        let negative = parse(r#"{"capacity_per_client": -1}"#).unwrap_err();
        assert!(negative.contains("`capacity_per_client`"), "{negative}");
        let long = parse(
            r#"{"duration_s": 600, "disruption": {"kind": "outage", "from_s": 120, "to_s": 900}}"#,
        )
        .unwrap_err();
        assert!(long.contains("`disruption.to_s`"), "{long}");
        let agent =
            parse(r#"{"disruption": {"kind": "outage", "from_s": 1, "to_s": 2, "agents": [3]}}"#)
                .unwrap_err();
        assert!(agent.contains("agent 3 does not exist"), "{agent}");
        let kind =
            parse(r#"{"disruption": {"kind": "meteor", "from_s": 1, "to_s": 2}}"#).unwrap_err();
        assert!(kind.contains("meteor"), "{kind}");
        let slow = parse(r#"{"capacity_per_client": 0.05, "initial_backlog_s": 60}"#).unwrap_err();
        assert!(slow.contains("no backlog ever drains"), "{slow}");
    }

    #[test]
    fn unknown_names_list_the_presets() {
        let error = Scenario::open("no-such-scenario").unwrap_err().to_string();
        assert!(
            error.contains("outage") && error.contains("retry-after"),
            "{error}"
        );
    }
}
