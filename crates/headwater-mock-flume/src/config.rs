use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A fault the mock applies to one Flume request (POST or GET) instead of, or around,
/// its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MockFault {
    /// Answer with this status (and a Jetty error page), committing nothing. A 503
    /// carries Flume's "channel full" text; a 429 carries `Retry-After: 1`.
    Status(u16),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Never answer (until the client gives up or the mock shuts down).
    Hang,
    /// Close the connection without an answer, committing nothing.
    DropBeforeCommit,
    /// Commit the batch, then close the connection without an answer: a lost
    /// acknowledgement, which makes the client send the batch again.
    DropAfterCommit,
}

/// Which requests meet a fault, besides those queued with
/// [`MockFlume::push_fault`](crate::MockFlume::push_fault).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFaults {
    /// The share of requests (0.0 to 1.0) that meet a fault.
    pub rate: f64,
    /// Seeds the choice, so a run can be repeated.
    pub seed: u64,
    /// The faults to draw from, uniformly.
    pub kinds: Vec<MockFault>,
}

impl RandomFaults {
    /// The faults a flaky network and a busy Flume produce and a client must survive
    /// without losing data: channel full (503), a proxy's 502 and 504, a slow answer,
    /// a connection dropped before the commit and one dropped after it.
    pub fn network(rate: f64, seed: u64) -> Self {
        Self {
            rate,
            seed,
            kinds: vec![
                MockFault::Status(503),
                MockFault::Status(502),
                MockFault::Status(504),
                MockFault::Delay(Duration::from_millis(20)),
                MockFault::DropBeforeCommit,
                MockFault::DropAfterCommit,
            ],
        }
    }
}

/// How the mock behaves. [`MockConfig::default`] is Flume 1.11's HTTP source with
/// `JSONHandler` and a default memory channel (capacity 100, transactionCapacity 100)
/// whose sink keeps up, on 127.0.0.1 with a free port, with every extra off.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Where to listen. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// The channel's `capacity` (events it holds before the sink takes them).
    pub capacity: usize,
    /// The channel's `transactionCapacity`: a larger batch gets a 503, every time.
    pub transaction_capacity: usize,
    /// Events per second the sink takes from the channel; `None` takes each batch at
    /// once, so the channel never fills.
    pub drain_rate: Option<f64>,
    /// How long a commit waits for room in a full channel before the 503 (Flume's
    /// `keep-alive`, 3 s).
    pub keep_alive: Duration,
    /// Answer CORS preflights and add `Access-Control-*` headers, as a proxy in front
    /// of Flume would (Flume itself answers OPTIONS with 403).
    pub cors: bool,
    /// Serve this folder's files to GET requests (a browser app on the same origin).
    pub static_dir: Option<PathBuf>,
    /// Append every committed event to this file as a JSON line.
    pub sink_file: Option<PathBuf>,
    /// Serve Flume-style monitoring JSON at `GET /metrics`.
    pub metrics: bool,
    /// Keep every committed event in memory for [`MockFlume::events`](crate::MockFlume::events).
    /// A long-running server turns this off; counts and distinct ids are kept either way.
    pub retain_events: bool,
    /// Keep the set of distinct `id` headers for [`MockFlume::unique_ids`](crate::MockFlume::unique_ids)
    /// and [`duplicates`](crate::MockFlume::duplicates). A benchmark server turns this
    /// off, since the set grows with every event; both then report 0.
    pub count_distinct_ids: bool,
    /// Faults drawn at random.
    pub random_faults: Option<RandomFaults>,
    /// Largest request body; larger ones get 413 (Flume has no limit; a proxy would), or
    /// at the OTLP receiver 400, as a Collector answers one over its
    /// `max_request_body_size`.
    pub max_request_bytes: usize,
    /// Answer 400, committing nothing, to every request whose body contains this text:
    /// a poison change (one a strict proxy or validator in front of Flume refuses), for
    /// tests of isolation and dead letters.
    pub refuse_containing: Option<String>,
    /// OTLP only: accept a batch but drop every record whose body or attributes contain
    /// this text, and say so in the answer's `partial_success` (as a Collector's
    /// processor that filters records does): for tests of partial rejections.
    pub drop_containing: Option<String>,
    /// Serve HTTPS (Flume's `ssl = true`), and ask for client certificates if set.
    pub tls: Option<MockTls>,
}

/// The mock's HTTPS: its certificate and key, and optionally the CA whose client
/// certificates it requires (mutual TLS, as a proxy in front of Flume may demand).
#[derive(Clone, PartialEq, Eq)]
pub struct MockTls {
    /// The server's certificate chain, PEM.
    pub cert_chain_pem: Vec<u8>,
    /// The server's private key, PEM.
    pub key_pem: Vec<u8>,
    /// Require a client certificate signed by one of these CAs (PEM).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for MockTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockTls")
            .field("key_pem", &format_args!("<redacted>"))
            .field(
                "client_certificates_required",
                &self.client_ca_pem.is_some(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            capacity: 100,
            transaction_capacity: 100,
            drain_rate: None,
            keep_alive: Duration::from_secs(3),
            cors: false,
            static_dir: None,
            sink_file: None,
            metrics: false,
            retain_events: true,
            count_distinct_ids: true,
            random_faults: None,
            max_request_bytes: 64 * 1024 * 1024,
            drop_containing: None,
            refuse_containing: None,
            tls: None,
        }
    }
}

/// A configuration the mock cannot run with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// A channel size of zero, or a transaction capacity above the capacity.
    #[error(
        "invalid channel: capacity {capacity}, transactionCapacity {transaction_capacity} (both must be at least 1, and transactionCapacity at most capacity)"
    )]
    InvalidChannel {
        /// The configured capacity.
        capacity: usize,
        /// The configured transaction capacity.
        transaction_capacity: usize,
    },
    /// A fault rate outside 0..=1, or a rate with no faults to draw.
    #[error("fault rate must be between 0 and 1 and have faults to draw from, got {0}")]
    InvalidFaultRate(f64),
    /// A drain rate that is not a positive number.
    #[error("drain rate must be a positive number of events per second, got {0}")]
    InvalidDrainRate(f64),
    /// The static folder does not exist.
    #[error("static folder {0} is not a directory")]
    StaticDirMissing(PathBuf),
    /// The TLS certificate, key or client CA cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding the socket or opening the sink file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl MockConfig {
    /// Says what is wrong with the configuration, if anything.
    pub fn validate(&self) -> Result<(), MockError> {
        if self.capacity == 0
            || self.transaction_capacity == 0
            || self.transaction_capacity > self.capacity
        {
            return Err(MockError::InvalidChannel {
                capacity: self.capacity,
                transaction_capacity: self.transaction_capacity,
            });
        }
        if let Some(faults) = &self.random_faults
            && (!(0.0..=1.0).contains(&faults.rate)
                || (faults.rate > 0.0 && faults.kinds.is_empty()))
        {
            return Err(MockError::InvalidFaultRate(faults.rate));
        }
        if let Some(rate) = self.drain_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(MockError::InvalidDrainRate(rate));
        }
        if let Some(dir) = &self.static_dir
            && !dir.is_dir()
        {
            return Err(MockError::StaticDirMissing(dir.clone()));
        }
        Ok(())
    }
}
