//! The protocol seam: which wire format a machine's batches take. The delivery machine,
//! the stores and the policies do not know which one runs; they see a codec that
//! builds request bodies under a byte limit, and answers classified the same way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::flume::{BatchEncoder, EventMapping, Push};
use crate::model::Change;
#[cfg(feature = "otlp")]
use crate::otlp::{OtlpEncoder, OtlpMapping};
use crate::transport::BodyFormat;

/// The protocol a syncer speaks to its tier.
///
/// ```
/// use headwater_core::engine::SyncConfig;
/// use headwater_core::protocol::Protocol;
/// let config: SyncConfig = serde_json::from_str(r#"{"protocol": {"otlp": {"service_name": "todo-app"}}}"#).unwrap();
/// assert!(matches!(config.protocol, Protocol::Otlp(ref otlp) if otlp.service_name == "todo-app"));
/// assert_eq!(SyncConfig::default().protocol, Protocol::Flume);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Protocol {
    /// Flume's HTTP source: a JSON array of events, mapped by the config's
    /// [`EventMapping`]. The default.
    #[default]
    Flume,
    /// OTLP/HTTP logs (`POST /v1/logs`, protobuf): changes as OpenTelemetry log
    /// records, for an OpenTelemetry Collector, Vector or Fluent Bit
    /// ([`crate::otlp`]).
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    Otlp(OtlpMapping),
}

/// Builds request bodies in the configured protocol, a change at a time, under a byte
/// limit measured on the finished body.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per machine, never moved on a hot path: a box would only add an indirection to every push"
)]
pub(crate) enum Codec {
    Flume(BatchEncoder),
    #[cfg(feature = "otlp")]
    Otlp(OtlpEncoder),
}

impl Codec {
    /// The codec of `protocol`, with `mapping`.
    pub(crate) fn new(protocol: &Protocol, mapping: &EventMapping) -> Self {
        match protocol {
            Protocol::Flume => Self::Flume(BatchEncoder::new(mapping.clone())),
            #[cfg(feature = "otlp")]
            Protocol::Otlp(otlp) => Self::Otlp(OtlpEncoder::new(mapping, otlp)),
        }
    }

    /// What its bodies are.
    pub(crate) fn format(&self) -> BodyFormat {
        match self {
            Self::Flume(_) => BodyFormat::FlumeJson,
            #[cfg(feature = "otlp")]
            Self::Otlp(encoder) => encoder.format(),
        }
    }

    /// Starts an empty batch in `body`, sent at `now`.
    pub(crate) fn start(&mut self, body: &mut Vec<u8>, now: DateTime<Utc>) {
        match self {
            Self::Flume(encoder) => {
                let _ = now;
                encoder.start(body);
            }
            #[cfg(feature = "otlp")]
            Self::Otlp(encoder) => encoder.start(body, now),
        }
    }

    /// Appends `change` to the batch in `body` (holding `events`) if the finished body
    /// stays within `max_bytes`.
    pub(crate) fn push(
        &mut self,
        body: &mut Vec<u8>,
        events: usize,
        change: &Change,
        max_bytes: usize,
    ) -> Push {
        match self {
            Self::Flume(encoder) => encoder.push(body, events, change, max_bytes),
            #[cfg(feature = "otlp")]
            Self::Otlp(encoder) => encoder.push(body, events, change, max_bytes),
        }
    }

    /// Closes the batch in `body`.
    pub(crate) fn finish(&mut self, body: &mut Vec<u8>) {
        match self {
            Self::Flume(encoder) => encoder.finish(body),
            #[cfg(feature = "otlp")]
            Self::Otlp(encoder) => encoder.finish(body),
        }
    }

    /// The size of a body that holds `change` alone.
    pub(crate) fn encoded_len(&mut self, change: &Change) -> usize {
        match self {
            Self::Flume(encoder) => encoder.encoded_len(change),
            #[cfg(feature = "otlp")]
            Self::Otlp(encoder) => encoder.encoded_len(change),
        }
    }
}
