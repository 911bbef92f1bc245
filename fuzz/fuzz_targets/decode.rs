//! Arbitrary bytes into the Flume decoder: it never panics, respects its limits, and
//! what it accepts re-encodes and decodes to an equal batch.
#![no_main]
#![forbid(unsafe_code)]

use headwater_core::flume::{DecodeLimits, decode_batch, encode_events};
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: 64 * 1024,
    max_events: 64,
    max_depth: 16,
};

fuzz_target!(|data: &[u8]| {
    // Flume decodes the charset first; the decoder sees text.
    let text = String::from_utf8_lossy(data);
    match decode_batch(&text, &LIMITS) {
        Ok(events) => {
            assert!(events.len() <= LIMITS.max_events);
            let mut encoded = Vec::new();
            encode_events(&events, &mut encoded);
            let encoded = std::str::from_utf8(&encoded).expect("the encoder writes UTF-8");
            let again = decode_batch(encoded, &DecodeLimits::default())
                .expect("what the decoder accepted re-encodes to a valid batch");
            assert_eq!(again, events);
        }
        Err(error) => {
            assert!(
                error.offset <= text.len(),
                "{error:?} points past the input"
            );
            let status = error.flume_status();
            assert!(matches!(status, 400 | 413 | 500), "{status}");
        }
    }
});
