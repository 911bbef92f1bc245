//! Flume's side of the wire: how a change becomes a Flume event, and the JSON codec of
//! Flume's HTTP source (`JSONHandler`).

mod decode;
mod encode;
mod event;
mod mapping;
mod write;

pub use decode::{DecodeError, DecodeErrorKind, DecodeLimits, decode_batch};
pub use encode::{BatchEncoder, EncodedBatch, Fit, Push, encode_events};
pub use event::FlumeEvent;
pub use mapping::{BodyShape, EventMapping, HeaderNames, MappingError};
