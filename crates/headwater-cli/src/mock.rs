//! `headwater mock-flume`: the mock as a server.

use std::process::ExitCode;

use headwater_mock_flume::{MockConfig, MockFlume, MockTls, RandomFaults};

use crate::cli::MockArgs;

fn read(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("{flag} {}: {error}", path.display()))
}

/// `--tls-cert`, `--tls-key` and `--client-ca`.
fn tls(args: &MockArgs) -> Result<Option<MockTls>, String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    Ok(Some(MockTls {
        cert_chain_pem: read(cert, "--tls-cert")?,
        key_pem: read(key, "--tls-key")?,
        client_ca_pem: args
            .client_ca
            .as_deref()
            .map(|path| read(path, "--client-ca"))
            .transpose()?,
    }))
}

pub(crate) async fn run(args: MockArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let tls = tls(&args)?;
    let config = MockConfig {
        tls,
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
        refuse_containing: args.refuse_containing.filter(|text| !text.is_empty()),
        ..MockConfig::default()
    };
    let flume = MockFlume::start(config).await?;
    crate::stdout::print(&format!("{}\n", flume.url()));
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
