//! Captures changes into the memory store and delivers them to the simulated Flume of
//! `headwater_core::testing`, with faults, printing a summary.
//!
//! Run: `cargo run --release -p headwater-memory --example demo`

use std::time::Instant;

use chrono::{DateTime, TimeDelta};
use futures::executor::block_on;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::model::ChangeData;
use headwater_core::testing::{Fault, SimFlume, id_counts};
use headwater_memory::MemoryStore;

fn main() {
    let changes = 100_000;
    let flume = SimFlume::new().with_transaction_capacity(100);
    for index in 0..200 {
        flume.push_fault(match index % 4 {
            0 => Fault::Status(503, "Channel might be full.".into()),
            1 => Fault::TimeoutAfterCommit,
            2 => Fault::ConnectionRefused,
            _ => Fault::Status(502, "Bad Gateway".into()),
        });
    }
    let mut syncer = Syncer::new(
        MemoryStore::new(),
        flume.clone(),
        SyncConfig::new("demo", 42),
    )
    .expect("the default configuration is valid");
    let outbox = syncer.outbox();
    let mut now = DateTime::from_timestamp_millis(1_700_000_000_000).expect("a valid time");
    let started = Instant::now();
    let batch: Vec<ChangeData> = (0..changes)
        .map(|index| {
            ChangeData::upsert(
                "todos",
                format!("todo-{index}"),
                &serde_json::json!({"n": index}),
            )
            .expect("JSON value")
        })
        .collect();
    block_on(outbox.capture_all(now, batch)).expect("capture");
    loop {
        let report = block_on(syncer.sync_once(now)).expect("memory store");
        if report.idle {
            let status = block_on(outbox.status(now)).expect("memory store");
            if status.pending == 0 && status.in_flight == 0 {
                break;
            }
        }
        if !report.more_ready() {
            now += TimeDelta::seconds(61);
        }
    }
    let elapsed = started.elapsed();
    let ids = flume.delivered_ids();
    let unique = id_counts(&ids).len();
    let status = block_on(outbox.status(now)).expect("memory store");
    println!("captured          {changes}");
    println!("delivered unique  {unique}");
    println!("duplicates        {}", ids.len() - unique);
    println!("dead-lettered     {}", status.dead_lettered);
    println!("requests          {}", flume.requests());
    println!("retries           {}", status.counters.retries);
    println!("elapsed           {:.0} ms", elapsed.as_secs_f64() * 1000.0);
}
