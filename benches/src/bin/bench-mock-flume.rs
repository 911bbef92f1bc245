//! The mock Flume in a process of its own for the end-to-end bench: prints its URL on
//! stdout, serves until stdin closes.
#![forbid(unsafe_code)]

use std::io::Read;

use headwater_mock_flume::{MockConfig, MockFlume};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let flume = runtime.block_on(MockFlume::start(MockConfig {
        capacity: 10_000_000,
        transaction_capacity: 10_000,
        retain_events: false,
        count_distinct_ids: false,
        ..MockConfig::default()
    }))?;
    println!("{}", flume.url());
    let mut sink = Vec::new();
    // Serve until the bench closes our stdin (or dies).
    std::io::stdin().read_to_end(&mut sink)?;
    runtime.block_on(flume.shutdown());
    Ok(())
}
