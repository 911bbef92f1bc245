//! What arrived: every committed event, in order, for inspection and an optional
//! JSON-lines file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use headwater_core::flume::FlumeEvent;

#[derive(Debug, Default)]
pub(crate) struct Sink {
    events: Vec<FlumeEvent>,
    file: Option<BufWriter<File>>,
}

impl Sink {
    pub(crate) fn new(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        Ok(Sink {
            events: Vec::new(),
            file,
        })
    }

    pub(crate) fn record(&mut self, events: Vec<FlumeEvent>) {
        if let Some(file) = &mut self.file {
            for event in &events {
                let line = serde_json::json!({"headers": event.headers, "body": event.body});
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
        self.events.extend(events);
    }

    pub(crate) fn events(&self) -> &[FlumeEvent] {
        &self.events
    }
}
