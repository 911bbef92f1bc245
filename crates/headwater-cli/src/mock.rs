//! `headwater mock-flume`: the mock as a server.

use std::process::ExitCode;

use headwater_mock_flume::{MockConfig, MockFlume, RandomFaults};

use crate::cli::MockArgs;

pub async fn run(args: MockArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = MockConfig {
        bind: args.bind,
        capacity: args.capacity,
        transaction_capacity: args.transaction_capacity,
        drain_rate: args.drain_rate,
        cors: args.cors,
        static_dir: args.static_dir,
        sink_file: args.sink,
        metrics: args.metrics,
        // A server that runs for days must not keep every event in memory.
        retain_events: false,
        random_faults: (args.fault_rate > 0.0)
            .then(|| RandomFaults::network(args.fault_rate, args.seed)),
        ..MockConfig::default()
    };
    let flume = MockFlume::start(config).await?;
    println!("{}", flume.url());
    eprintln!(
        "mock Flume listening at {} (Ctrl-C or SIGTERM to stop)",
        flume.url()
    );
    crate::deliver::interrupted().await;
    eprintln!(
        "received {} requests, {} events ({} unique ids)",
        flume.requests(),
        flume.event_count(),
        flume.unique_ids()
    );
    flume.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
