//! Flume's side of the wire: how a change becomes a Flume event, and the JSON codec of
//! Flume's HTTP source (`JSONHandler`).

#[cfg(feature = "decode")]
#[cfg_attr(docsrs, doc(cfg(feature = "decode")))]
mod decode;
mod encode;
mod event;
mod mapping;
mod write;

#[cfg(feature = "decode")]
#[cfg_attr(docsrs, doc(cfg(feature = "decode")))]
pub use decode::{
    DecodeError, DecodeErrorKind, DecodeLimits, decode_batch, decode_batch_with_replacement,
};
pub use encode::{BatchEncoder, EncodedBatch, Fit, Push, encode_events};
pub use event::FlumeEvent;
pub use mapping::{BodyShape, EventMapping, HeaderNames, MappingError};
