//! Configuring and starting headwater.

use std::sync::Arc;
use std::time::Duration;

use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::store::ChangeStore;
use headwater_core::transport::Transport;
use headwater_memory::MemoryStore;

use crate::handle::Headwater;
use crate::parts::{DynStore, DynTransport};
use crate::runtime::{self, Clock, SharedClock, SystemClock};
use crate::start_error::StartError;

/// Builds a [`Headwater`]: where to send, where to keep the outbox, and how to deliver.
/// Everything has a default but the Flume URLs.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use headwater::Headwater;
///
/// let headwater = Headwater::builder()
///     .flume(["http://flume-a:5140/", "http://flume-b:5140/"])
///     .round_robin()
///     .source("laptop-7")
///     .header("authorization", "Bearer s3cret")
///     .batch_size(500)
///     .configure(|config| config.linger = Duration::from_millis(20))
///     .start()?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct Builder {
    config: SyncConfig,
    store: Option<DynStore>,
    transport: Option<DynTransport>,
    clock: Option<SharedClock>,
    seed: Option<u64>,
    metrics_interval: Duration,
    leader_lock: Option<String>,
    /// The database file of a SQLite store: where the app's own transactions capture.
    #[cfg(feature = "sqlite")]
    delivery_database: Option<std::path::PathBuf>,
    #[cfg(feature = "http")]
    http: headwater_http::HttpConfig,
    #[cfg(feature = "http")]
    header_provider: Option<Arc<dyn headwater_http::HeaderProvider>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Builder");
        out.field("config", &self.config)
            .field("custom_store", &self.store.is_some())
            .field("custom_transport", &self.transport.is_some())
            .field("custom_clock", &self.clock.is_some())
            .field("seeded", &self.seed.is_some());
        #[cfg(feature = "http")]
        out.field("http", &self.http)
            .field("header_provider", &self.header_provider.is_some());
        out.finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            config: SyncConfig::default(),
            store: None,
            transport: None,
            clock: None,
            seed: None,
            metrics_interval: Duration::from_secs(1),
            leader_lock: None,
            #[cfg(feature = "sqlite")]
            delivery_database: None,
            #[cfg(feature = "http")]
            http: headwater_http::HttpConfig::new(Vec::<String>::new()),
            #[cfg(feature = "http")]
            header_provider: None,
        }
    }
}

impl Builder {
    /// Flume HTTP source URLs (`http://host:port/`), with failover: a client starts at
    /// the URL its seed draws (so that a fleet listing the same agents spreads over
    /// them) and moves through the others in the order given; `HttpConfig::primary`
    /// (through [`http`](Self::http)) prefers one. [`round_robin`](Self::round_robin)
    /// and [`route_by_key`](Self::route_by_key) spread requests instead.
    #[cfg(feature = "http")]
    pub fn flume<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.http.endpoints = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Delivers to OpenTelemetry Collector OTLP/HTTP logs endpoints instead of Flume
    /// (the full URL, `http://host:4318/v1/logs`), with failover as for
    /// [`flume`](Self::flume) unless [`round_robin`](Self::round_robin): each change becomes a log record with its id
    /// as `log.record.uid`, in gzip-compressed protobuf (docs/otlp.md). The
    /// [`source`](Self::source) is the resource's `service.instance.id`; `service_name`
    /// its `service.name`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let headwater = headwater::Headwater::builder()
    ///     .otlp(["http://127.0.0.1:4318/v1/logs"], "todo-app")
    ///     .source("laptop-7")
    ///     .start()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp<I, S>(mut self, urls: I, service_name: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.http.endpoints = urls.into_iter().map(Into::into).collect();
        self.config.protocol = headwater_core::protocol::Protocol::Otlp(
            headwater_core::otlp::OtlpMapping::with_service_name(service_name),
        );
        self
    }

    /// Spreads requests over the Flume URLs in turn instead of failing over. Changes
    /// of one record may then reach the final sink out of order across agents
    /// (docs/fleet.md); [`route_by_key`](Self::route_by_key) keeps them on one agent.
    #[cfg(feature = "http")]
    pub fn round_robin(mut self) -> Self {
        self.http.selection = headwater_http::Selection::RoundRobin;
        self
    }

    /// Spreads records over the Flume URLs: each record's changes go to one agent (a
    /// hash of its collection and key picks it), moving on only while it fails, so that
    /// the agent's channel keeps their order. Batches are cut so that each holds the
    /// changes of one agent's records.
    #[cfg(feature = "http")]
    pub fn route_by_key(mut self) -> Self {
        self.http.selection = headwater_http::Selection::ByKey;
        self
    }

    /// Adds a request header (for a proxy in front of Flume). Its value never appears
    /// in logs or errors.
    #[cfg(feature = "http")]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.http.headers.push((name.into(), value.into()));
        self
    }

    /// The timeout of one request, from connecting to the last byte of the answer
    /// (default 10 s).
    #[cfg(feature = "http")]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self
    }

    /// HTTPS to Flume (native): extra CAs to trust, a client certificate for mutual
    /// TLS. In the browser the page's TLS applies, and `start` refuses TLS settings.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use headwater::{ClientIdentity, Headwater, TlsConfig};
    /// let mut tls = TlsConfig::default();
    /// tls.ca_certs_pem = std::fs::read("ca.pem")?;
    /// tls.client_identity = Some(ClientIdentity::from_pem(
    ///     std::fs::read("client.pem")?,
    ///     std::fs::read("client.key")?,
    /// ));
    /// let headwater = Headwater::builder()
    ///     .flume(["https://flume.internal:5140/"])
    ///     .tls(tls)
    ///     .start()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "http")]
    pub fn tls(mut self, tls: headwater_http::TlsConfig) -> Self {
        self.http.tls = tls;
        self
    }

    /// Asks `provider` for headers before each request (a token that rotates), and to
    /// refresh them once when Flume or a proxy answers 401 or 403, before the outbox
    /// blocks. See [`HeaderProvider`](headwater_http::HeaderProvider).
    #[cfg(feature = "http")]
    pub fn header_provider(
        mut self,
        provider: impl headwater_http::HeaderProvider + 'static,
    ) -> Self {
        self.header_provider = Some(Arc::new(provider));
        self
    }

    /// In a browser, runs delivery only in the tab holding the Web Lock `name` (use one
    /// name per database): the other tabs capture only, and neither send nor poll;
    /// when the leader's tab closes, a waiting tab takes over at once. Where Web Locks
    /// are missing, every tab syncs, kept apart by the outbox's lease. Natively there
    /// is nothing to wait for and delivery starts at once.
    pub fn leader_lock(mut self, name: impl Into<String>) -> Self {
        self.leader_lock = Some(name.into());
        self
    }

    /// How often the status is published to the `metrics` facade (feature `metrics`;
    /// default 1 s). The latency histogram is recorded as each answer arrives.
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Changes any HTTP setting (TLS, endpoint rests, message limits).
    #[cfg(feature = "http")]
    pub fn http(mut self, configure: impl FnOnce(&mut headwater_http::HttpConfig)) -> Self {
        configure(&mut self.http);
        self
    }

    /// Names this client: the `source` header of every event (default `headwater`).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.config.mapping.source = source.into();
        self
    }

    /// Most events per request (default 100: keep it at or below the Flume channel's
    /// `transactionCapacity`; headwater adapts if it is above).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.config.batch.max_events = events;
        self
    }

    /// Most requests in flight at once (default 4). Changes to one record always arrive
    /// in capture order; with 1, all changes do.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.config.max_in_flight = requests;
        self
    }

    /// Replaces every delivery setting (for a [`SyncConfig`] read from a config file).
    /// The source set with [`source`](Self::source) is kept if the config has the
    /// default one.
    pub fn config(mut self, config: SyncConfig) -> Self {
        let source = std::mem::take(&mut self.config.mapping.source);
        self.config = config;
        if self.config.mapping.source == SyncConfig::default().mapping.source {
            self.config.mapping.source = source;
        }
        self
    }

    /// Changes any delivery setting.
    pub fn configure(mut self, configure: impl FnOnce(&mut SyncConfig)) -> Self {
        configure(&mut self.config);
        self
    }

    /// Where the outbox lives (default: in memory, lost with the process).
    pub fn store(mut self, store: impl ChangeStore + 'static) -> Self {
        #[cfg(feature = "sqlite")]
        {
            self.delivery_database = (&store as &dyn std::any::Any)
                .downcast_ref::<headwater_sqlite::SqliteStore>()
                .and_then(|sqlite| sqlite.database_path())
                // Once here, not at each transaction that is compared with it.
                .map(|path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        }
        self.store = Some(Arc::new(store));
        self
    }

    /// Sends through this transport instead of HTTP (tests, other protocols).
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Reads time from this clock instead of the system's (tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Seeds the change ids and jitter with this instead of a random seed (tests).
    /// Two running outboxes with one seed would make equal ids.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the settings, spawns delivery on the current runtime (tokio natively, the
    /// page's event loop in a browser) and returns the handle.
    pub fn start(self) -> Result<Headwater, StartError> {
        let Self {
            mut config,
            store,
            transport,
            clock,
            seed,
            metrics_interval,
            leader_lock,
            #[cfg(feature = "sqlite")]
            delivery_database,
            #[cfg(feature = "http")]
            http,
            #[cfg(feature = "http")]
            header_provider,
        } = self;
        config.seed = match seed {
            Some(seed) => seed,
            None => runtime::os_seed().map_err(|error| StartError::Seed(error.to_string()))?,
        };
        #[cfg(target_arch = "wasm32")]
        if let Some(name) = &leader_lock
            && config.owner.is_none()
            && crate::leader::available()
        {
            // One lease owner for every tab under the lock: a new leader takes the
            // lease at once (the lock, not the lease, keeps two from running). Without
            // Web Locks the lease is what keeps tabs apart, so each keeps its own.
            config.owner = Some(format!("leader:{name}"));
        }
        #[cfg(feature = "http")]
        if transport.is_none()
            && http.selection == headwater_http::Selection::ByKey
            && config.routes.is_none()
        {
            // One route per endpoint: a batch goes whole to its records' agent.
            config.routes = Some(http.endpoints.len().max(1));
        }
        #[cfg(feature = "sqlite")]
        let process_lock = match (&delivery_database, &config.owner) {
            (Some(database), None) => crate::sqlite::sole_process_lock(database),
            _ => None,
        };
        #[cfg(feature = "sqlite")]
        if process_lock.is_some() {
            config.owner = Some(crate::sqlite::SOLE_PROCESS_OWNER.into());
        }
        config.validate()?;
        let clock: SharedClock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let transport = match transport {
            Some(transport) => transport,
            #[cfg(feature = "http")]
            None => Self::http_transport(&config, http, header_provider, &clock)?,
            #[cfg(not(feature = "http"))]
            None => return Err(StartError::NoTransport),
        };
        let store: DynStore = store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let syncer = Syncer::new(store, transport, config)?;
        Headwater::spawn(
            syncer,
            clock,
            crate::handle::SpawnOptions {
                metrics_interval,
                leader_lock,
                #[cfg(feature = "sqlite")]
                delivery_database,
                #[cfg(feature = "sqlite")]
                process_lock,
            },
        )
    }

    #[cfg(feature = "http")]
    // In the browser there is one thread: a header provider need not be Send.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    fn http_transport(
        config: &SyncConfig,
        mut http: headwater_http::HttpConfig,
        header_provider: Option<Arc<dyn headwater_http::HeaderProvider>>,
        clock: &SharedClock,
    ) -> Result<DynTransport, StartError> {
        if http.endpoints.is_empty() {
            return Err(StartError::NoTransport);
        }
        if http.primary.is_none() {
            // Each client prefers an endpoint of its own: a fleet listing the same
            // agents spreads over them (with failover from the first, every client of
            // a fleet sent to one agent; docs/fleet.md has the figures).
            let draw = config.seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
            http.primary = Some((draw % http.endpoints.len() as u64) as usize);
        }
        if config.lease <= http.timeout {
            return Err(StartError::LeaseTooShort {
                lease: config.lease,
                timeout: http.timeout,
            });
        }
        let wall = Arc::clone(clock);
        let mut transport = headwater_http::HttpTransport::new(http, move || wall.now())?;
        if let Some(provider) = header_provider {
            transport = transport.with_header_provider(provider);
        }
        Ok(Arc::new(transport))
    }
}

impl Headwater {
    /// Starts configuring: see [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }
}
