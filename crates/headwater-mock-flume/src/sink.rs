//! What arrived: every committed event, in order, for inspection and an optional
//! JSON-lines file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use headwater_core::flume::FlumeEvent;

#[derive(Debug, Default)]
pub(crate) struct Sink {
    retain: bool,
    count_ids: bool,
    events: Vec<FlumeEvent>,
    count: usize,
    with_id: usize,
    /// Distinct ids; FxHash because ids are many, short, and not attacker-chosen here.
    ids: rustc_hash::FxHashSet<String>,
    file: Option<BufWriter<File>>,
}

impl Sink {
    pub(crate) fn new(path: Option<&Path>, retain: bool, count_ids: bool) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        Ok(Self {
            retain,
            count_ids,
            file,
            ..Self::default()
        })
    }

    pub(crate) fn record(&mut self, events: Vec<FlumeEvent>) {
        if let Some(file) = &mut self.file {
            for event in &events {
                let mut headers: serde_json::Map<String, serde_json::Value> = event
                    .headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone().into()))
                    .collect();
                // Flume keeps a header whose value is null.
                for name in &event.null_headers {
                    headers.insert(name.clone(), serde_json::Value::Null);
                }
                let line = serde_json::json!({"headers": headers, "body": event.body});
                // The sink file is a convenience; a full disk must not fail the request.
                let written = serde_json::to_writer(&mut *file, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| file.write_all(b"\n"));
                if let Err(error) = written {
                    tracing::warn!(%error, "could not write the sink file");
                }
            }
            if let Err(error) = file.flush() {
                tracing::warn!(%error, "could not flush the sink file");
            }
        }
        self.count += events.len();
        for event in &events {
            if let Some(id) = event.headers.get("id") {
                self.with_id += 1;
                if self.count_ids && !self.ids.contains(id) {
                    self.ids.insert(id.clone());
                }
            }
        }
        if self.retain {
            self.events.extend(events);
        }
    }

    /// The committed events, if the sink retains them.
    pub(crate) fn events(&self) -> &[FlumeEvent] {
        &self.events
    }

    /// Events committed, duplicates included.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Distinct `id` headers committed.
    pub(crate) fn unique_ids(&self) -> usize {
        self.ids.len()
    }

    /// Committed events whose `id` had arrived before.
    pub(crate) fn duplicates(&self) -> usize {
        if self.count_ids {
            self.with_id - self.ids.len()
        } else {
            0
        }
    }
}
