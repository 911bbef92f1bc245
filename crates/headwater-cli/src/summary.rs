//! The summary printed after a demo or a send.

use serde::Serialize;

/// What a run achieved. `delivered_unique` and `duplicates` are counted at the sink
/// when it can be inspected (the demo's mock); for a real Flume, `delivered_unique` is
/// what Flume acknowledged (over every run of the same input) and `duplicates` is
/// unknown.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub captured: u64,
    /// Lines captured by earlier runs of the same input (send only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<u64>,
    pub delivered_unique: u64,
    pub duplicates: Option<u64>,
    pub dead_lettered: u64,
    pub requests: u64,
    pub retries: u64,
    /// Records the server accepted batches of but said it dropped (OTLP partial
    /// success): acknowledged, not sent again.
    pub rejected_by_server: u64,
    pub elapsed_ms: u64,
    pub events_per_sec: f64,
}

impl Summary {
    pub(crate) fn print(&self, json: bool) {
        crate::stdout::print(&self.render(json));
    }

    fn render(&self, json: bool) -> String {
        if json {
            return match serde_json::to_string(self) {
                Ok(line) => format!("{line}\n"),
                Err(error) => {
                    eprintln!("error: cannot write the summary: {error}");
                    String::new()
                }
            };
        }
        let duplicates = self.duplicates.map_or_else(
            || "unknown (not visible from the client)".to_owned(),
            |d| d.to_string(),
        );
        let mut out = format!("captured          {}\n", self.captured);
        if let Some(resumed) = self.resumed.filter(|resumed| *resumed > 0) {
            out.push_str(&format!(
                "resumed after     {resumed} (captured by an earlier run)\n"
            ));
        }
        out.push_str(&format!(
            "delivered unique  {}\nduplicates        {duplicates}\ndead-lettered     {}\nrequests          {}\nretries           {}\nelapsed           {} ms\nevents per second {:.0}\n",
            self.delivered_unique,
            self.dead_lettered,
            self.requests,
            self.retries,
            self.elapsed_ms,
            self.events_per_sec
        ));
        if self.rejected_by_server > 0 {
            out.push_str(&format!(
                "rejected by server {} (in batches it accepted; they are not sent again: see the warnings above)\n",
                self.rejected_by_server
            ));
        }
        out
    }

    pub(crate) fn complete(&self) -> bool {
        self.delivered_unique == self.captured && self.dead_lettered == 0
    }
}
