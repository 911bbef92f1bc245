//! Criterion benchmarks of headwater live in `benches/`; this library is empty.
#![forbid(unsafe_code)]
