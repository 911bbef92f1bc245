//! Captures 1000 changes, waits until Flume has them all, and prints how many were
//! delivered.
//!
//! ```sh
//! cargo run -p headwater-cli -- mock-flume --sink /tmp/sink.jsonl &
//! cargo run -p headwater --example quickstart -- http://127.0.0.1:5140/
//! ```

use headwater::{ChangeData, Headwater};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:5140/".to_owned());
    let headwater = Headwater::builder()
        .flume([url])
        .source("quickstart")
        .start()?;

    for n in 0..1000 {
        let todo = serde_json::json!({"title": format!("todo {n}"), "done": n % 3 == 0});
        headwater
            .capture(ChangeData::insert("todos", n.to_string(), &todo)?)
            .await?;
    }
    headwater.flush().await?;

    let status = headwater.status().await?;
    println!(
        "delivered {} changes in {} requests",
        status.counters.delivered, status.counters.requests
    );
    headwater.shutdown().await;
    Ok(())
}
