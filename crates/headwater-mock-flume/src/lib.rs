//! # headwater-mock-flume
//!
//! A stand-in for Apache Flume 1.11's HTTP source with its default `JSONHandler`, a
//! memory channel and a sink, for tests and demos. By default it answers exactly as
//! Flume does (see `docs/flume.md`): any path; POST, and GET like POST; OPTIONS and
//! TRACE 403; PUT and DELETE 405; 200 with an empty body on commit; 400, 500 and 503
//! with Flume's messages in a Jetty error page; `[]` → 200; an empty body → 500; the
//! charset rules; atomic batches; `transactionCapacity` and `capacity` 503s; a sink
//! that drains at a configurable rate.
//!
//! Opt-in extras: CORS, a static folder, fault injection (statuses, delays, hangs,
//! connections dropped before or after the commit), a JSON-lines sink file, `/metrics`,
//! a request size cap. It binds 127.0.0.1 with a free port unless told otherwise.
//!
//! It also speaks OTLP/HTTP logs at `POST /v1/logs` (protobuf, gzip or not), as an
//! OpenTelemetry Collector's receiver answers (`ExportLogsServiceResponse`, errors as
//! `google.rpc.Status`), into the same channel and sink: a log record is kept as an
//! event whose `id` is its `log.record.uid` ([`MockFlume::otlp_url`]). The same faults
//! apply, and [`MockConfig::drop_containing`] answers with a partial success.
//!
//! ```
//! use headwater_mock_flume::{MockConfig, MockFlume};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let flume = MockFlume::start(MockConfig::default()).await.unwrap();
//! let client = reqwest::Client::new();
//! let answer = client
//!     .post(flume.url())
//!     .header("content-type", "application/json; charset=UTF-8")
//!     .body(r#"[{"headers":{"id":"a"},"body":"hello"}]"#)
//!     .send()
//!     .await
//!     .unwrap();
//! assert_eq!(answer.status(), 200);
//! assert_eq!(flume.events()[0].body, "hello");
//! flume.shutdown().await;
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod channel;
mod charset;
mod config;
mod faults;
pub mod jetty;
mod metrics;
mod otlp;
mod server;
mod sink;
mod source;
mod state;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use headwater_core::flume::FlumeEvent;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{MockConfig, MockError, MockFault, MockTls, RandomFaults};

use state::Shared;

/// A running mock Flume. Dropping it stops the server too; [`MockFlume::shutdown`]
/// also waits for it to close its connections.
#[derive(Debug)]
pub struct MockFlume {
    addr: SocketAddr,
    url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    drain: Option<JoinHandle<()>>,
}

impl MockFlume {
    /// Starts the mock on a tokio runtime.
    pub async fn start(config: MockConfig) -> Result<Self, MockError> {
        config.validate()?;
        let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let listener = server::bind(config.bind)
            .await
            .map_err(|source| MockError::Io {
                context: format!("cannot listen on {}", config.bind),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| MockError::Io {
            context: "cannot read the bound address".into(),
            source,
        })?;
        let sink = sink::Sink::new(
            config.sink_file.as_deref(),
            config.retain_events,
            config.count_distinct_ids,
        )
        .map_err(|source| MockError::Io {
            context: format!(
                "cannot open the sink file {}",
                config
                    .sink_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            ),
            source,
        })?;
        let drain_rate = config.drain_rate;
        let shared = Arc::new(Shared::new(config, sink));
        let drain = drain_rate.map(|rate| {
            let channel = Arc::clone(&shared.channel);
            let counters = Arc::clone(&shared);
            tokio::spawn(channel.drain(rate, move |taken| {
                metrics::add(&counters.counters.takes, taken);
            }))
        });
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(server::serve(
            listener,
            acceptor,
            Arc::clone(&shared),
            stopped,
        ));
        tracing::info!(%addr, "mock Flume listening");
        Ok(Self {
            url: format!("{scheme}://{addr}/"),
            addr,
            shared,
            stop: Some(stop),
            server: Some(server),
            drain,
        })
    }

    /// The URL to POST to (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of its OTLP/HTTP logs receiver (`…/v1/logs`).
    pub fn otlp_url(&self) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), otlp::LOGS_PATH)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes the next request that reaches the source meet `fault` (queued faults apply
    /// in order, before any random ones).
    pub fn push_fault(&self, fault: MockFault) {
        self.shared.faults().push(fault);
    }

    /// Drops the faults still queued by [`push_fault`](Self::push_fault) (a server
    /// that recovers), returning how many were left.
    pub fn clear_faults(&self) -> usize {
        self.shared.faults().clear()
    }

    /// Every committed event, in order, duplicates included (empty unless
    /// [`MockConfig::retain_events`]).
    pub fn events(&self) -> Vec<FlumeEvent> {
        self.shared.sink().events().to_vec()
    }

    /// How many events were committed, duplicates included.
    pub fn event_count(&self) -> usize {
        self.shared.sink().count()
    }

    /// The `id` header of every retained event, in order (empty where absent).
    pub fn ids(&self) -> Vec<String> {
        self.shared
            .sink()
            .events()
            .iter()
            .map(|event| event.headers.get("id").cloned().unwrap_or_default())
            .collect()
    }

    /// How many distinct `id`s arrived.
    pub fn unique_ids(&self) -> usize {
        self.shared.sink().unique_ids()
    }

    /// How many events repeated an `id` that had arrived before.
    pub fn duplicates(&self) -> usize {
        self.shared.sink().duplicates()
    }

    /// Requests that reached the source (POST and GET).
    pub fn requests(&self) -> u64 {
        self.shared
            .counters
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Events in the channel, not yet taken by the sink.
    pub fn channel_size(&self) -> usize {
        self.shared.channel.size()
    }

    /// The monitoring JSON that `GET /metrics` serves.
    pub fn metrics(&self) -> serde_json::Value {
        self.shared
            .counters
            .to_json(self.shared.channel.size(), self.shared.channel.capacity())
    }

    /// Stops listening, closes every connection and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(drain) = self.drain.take() {
            drain.abort();
        }
    }
}

impl Drop for MockFlume {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(drain) = self.drain.take() {
            drain.abort();
        }
    }
}
