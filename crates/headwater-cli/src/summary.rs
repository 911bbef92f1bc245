//! The summary printed after a demo or a send.

use serde::Serialize;

/// What a run achieved. `delivered_unique` and `duplicates` are counted at the sink
/// when it can be inspected (the demo's mock); for a real Flume, `delivered_unique` is
/// what Flume acknowledged (over every run of the same input) and `duplicates` is
/// unknown.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub captured: u64,
    /// Lines captured by earlier runs of the same input (send only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<u64>,
    pub delivered_unique: u64,
    pub duplicates: Option<u64>,
    pub dead_lettered: u64,
    pub requests: u64,
    pub retries: u64,
    pub elapsed_ms: u64,
    pub events_per_sec: f64,
}

impl Summary {
    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string(self) {
                Ok(line) => println!("{line}"),
                Err(error) => eprintln!("error: cannot write the summary: {error}"),
            }
            return;
        }
        let duplicates = self.duplicates.map_or_else(
            || "unknown (not visible from the client)".to_owned(),
            |d| d.to_string(),
        );
        println!("captured          {}", self.captured);
        if let Some(resumed) = self.resumed.filter(|resumed| *resumed > 0) {
            println!("resumed after     {resumed} (captured by an earlier run)");
        }
        println!("delivered unique  {}", self.delivered_unique);
        println!("duplicates        {duplicates}");
        println!("dead-lettered     {}", self.dead_lettered);
        println!("requests          {}", self.requests);
        println!("retries           {}", self.retries);
        println!("elapsed           {} ms", self.elapsed_ms);
        println!("events per second {:.0}", self.events_per_sec);
    }

    pub fn complete(&self) -> bool {
        self.delivered_unique == self.captured && self.dead_lettered == 0
    }
}
