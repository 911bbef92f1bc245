use serde::{Deserialize, Serialize};

/// What OTLP adds to the shared [`EventMapping`](crate::flume::EventMapping) (whose
/// source becomes `service.instance.id` and whose static headers become resource
/// attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OtlpMapping {
    /// The resource's `service.name`: the application that captured the changes.
    pub service_name: String,
    /// Protobuf (the default, what every receiver reads, and the smaller) or JSON.
    pub encoding: OtlpEncoding,
}

/// How an OTLP request body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    #[default]
    Protobuf,
    /// `application/json`: OTLP's JSON encoding of the same messages, for receivers or
    /// proxies that only take JSON, or to read requests on the wire.
    Json,
}

impl Default for OtlpMapping {
    fn default() -> Self {
        Self {
            service_name: "headwater".into(),
            encoding: OtlpEncoding::Protobuf,
        }
    }
}

impl OtlpMapping {
    /// The default mapping with `service_name` as the resource's `service.name`.
    pub fn with_service_name(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            ..Self::default()
        }
    }
}
