//! `headwater send`: deliver a JSON-lines input to Flume, durably: the outbox lives in a
//! state database, so a run after a crash sends only what was not acknowledged, under
//! the same ids.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use headwater::sqlite::{SqliteOptions, SqliteStore};
use headwater::store::ChangeStore;
use headwater::{
    ClientIdentity, EventMapping, Headwater, HttpConfig, HttpTransport, OtlpEncoding, OtlpMapping,
    Protocol, Selection, TlsConfig,
};

use crate::cli::{OtlpBodyEncoding, SendArgs, WireProtocol};
use crate::deliver::{Counts, Ending, Progress, deliver, rate};
use crate::input::{Changes, Checked, Input, InputError, LineRules, check};
use crate::line_store::{CheckedInput, Identity, LineStore};
use crate::state::{self, Layout};
use crate::summary::Summary;

/// The lease is held under this name, so a run that follows a crash takes it back at
/// once; the lock on the state's database file keeps two runs from sharing it.
const OWNER: &str = "headwater-send";

fn check_args(args: &SendArgs) -> Result<(), String> {
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    if args.max_in_flight == 0 {
        return Err("--max-in-flight must be at least 1".into());
    }
    if let Some(rate) = args.max_rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(format!(
            "--max-rate must be a number of changes per second above 0, not {rate}"
        ));
    }
    if args.timeout_ms == 0 {
        return Err("--timeout-ms must be at least 1".into());
    }
    if args.max_event_bytes < 512 {
        return Err("--max-event-bytes must be at least 512".into());
    }
    if args.source.is_empty() {
        return Err("--source must not be empty".into());
    }
    Ok(())
}

fn parse_header(header: &str) -> Result<(String, String), String> {
    let (name, value) = header.split_once(':').ok_or_else(|| {
        format!(
            "--header {:?} is not NAME:VALUE",
            header.split(':').next().unwrap_or("")
        )
    })?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

fn read_pem(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("{flag} {}: {error}", path.display()))
}

/// `--ca-cert`, `--client-cert`, `--client-key` and `--danger-accept-invalid-certs`.
fn tls_config(args: &SendArgs) -> Result<TlsConfig, String> {
    let mut tls = TlsConfig::default();
    if let Some(path) = &args.ca_cert {
        tls.ca_certs_pem = read_pem(path, "--ca-cert")?;
    }
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        tls.client_identity = Some(ClientIdentity::from_pem(
            read_pem(cert, "--client-cert")?,
            read_pem(key, "--client-key")?,
        ));
    }
    tls.danger_accept_invalid_certs = args.danger_accept_invalid_certs;
    Ok(tls)
}

pub(crate) async fn run(args: SendArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    check_args(&args)?;
    let headers = args
        .headers
        .iter()
        .map(|header| parse_header(header))
        .collect::<Result<Vec<_>, _>>()?;
    let mut http = HttpConfig::new(args.to.iter().map(|url| url.trim().to_owned()));
    http.timeout = Duration::from_millis(args.timeout_ms);
    http.headers = headers;
    http.tls = tls_config(&args)?;
    if args.round_robin {
        http.selection = Selection::RoundRobin;
    } else if args.route_by_key {
        http.selection = Selection::ByKey;
    }
    // A wrong URL or header is reported before any state is made (with --check, URLs
    // are checked when given).
    if !(args.check && args.to.is_empty()) {
        HttpTransport::new(http.clone(), chrono::Utc::now)?;
    }
    if args.check {
        return check_only(&args);
    }
    if let Some(addr) = args.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|error| format!("--metrics-addr {addr}: {error}"))?;
        if !args.json {
            eprintln!("Prometheus metrics at http://{addr}/metrics");
        }
    }
    // Off the runtime's one thread, so that the metrics endpoint answers during a long
    // check.
    let (input, mut checked) = {
        let (file, source, max_event_bytes) =
            (args.file.clone(), args.source.clone(), args.max_event_bytes);
        tokio::task::spawn_blocking(move || open_checked(&file, source, max_event_bytes))
            .await
            .map_err(|error| format!("the check of the input stopped: {error}"))??
    };
    let total = checked.changes;

    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| state::default_path(&args.file));
    let options = SqliteOptions::default();
    let (state, connection) = state::open(
        &state_path,
        &checked.identity,
        || {
            crate::input::legacy_identities(&input)
                .map(Vec::from)
                .map_err(|error| error.to_string())
        },
        &options,
        args.fresh,
        Layout::Lines(Identity::new()),
    )?;
    // Lines made pending so far (the lines layout), or captured by this run (the outbox
    // layout): what progress and the summary count from.
    let captured = Arc::new(AtomicU64::new(0));
    let (failure, mut failed) = tokio::sync::watch::channel(None::<String>);
    let shown_endpoints = http.shown_endpoints();
    let (headwater, resumed, connection) = match state.layout {
        Layout::Outbox => (
            start(
                &args,
                http.clone(),
                SqliteStore::open_with(&state.path, &options)?,
            )?,
            state.lines_captured.min(total),
            Some(connection),
        ),
        Layout::Lines(identity) => {
            // Unpaced, every line is pending at once; paced, from the first not settled.
            captured.store(u64::MAX, Ordering::Release);
            let store = LineStore::open(
                connection,
                identity,
                Some(CheckedInput {
                    input: &input,
                    spans: std::mem::take(&mut checked.spans),
                    changes: total as u64,
                    weight: checked.weight,
                }),
                Arc::clone(&captured),
                failure,
            )
            .map_err(|reason| state_failed(&state.path, &reason))?;
            if args.max_rate.is_some() {
                captured.store(store.settled_head(), Ordering::Release);
            }
            let resumed = if state.existed { total } else { 0 };
            (start(&args, http.clone(), store)?, resumed, None)
        }
    };
    if !args.json {
        eprintln!(
            "sending {total} changes from {} to {} (state: {}{})",
            if args.file.as_os_str() == "-" {
                "standard input".to_owned()
            } else {
                args.file.display().to_string()
            },
            shown_endpoints.join(", "),
            state.path.display(),
            match (state.existed, state.layout) {
                (false, _) => String::new(),
                (true, Layout::Outbox) => format!("; resuming: {resumed} lines captured before"),
                (true, Layout::Lines(_)) =>
                    "; resuming: what Flume acknowledged before is not sent again".to_owned(),
            }
        );
    }

    let started = Instant::now();
    // Set when delivery ends early (Ctrl-C, blocked), so that a paced capture stops
    // instead of holding the process until its last chunk.
    let stop = Arc::new(AtomicBool::new(false));
    let pace = args.max_rate.map(Pace::new);
    let mut capture_task = match connection {
        Some(connection) => spawn_capture(
            &headwater,
            connection,
            Changes::new(&input, &checked, resumed)?,
            CaptureRun {
                done: resumed,
                total,
                pace,
                captured: Arc::clone(&captured),
                stop: Arc::clone(&stop),
            },
        ),
        None => spawn_release(
            &headwater,
            CaptureRun {
                done: usize::try_from(captured.load(Ordering::Acquire)).unwrap_or(usize::MAX),
                total,
                pace,
                captured: Arc::clone(&captured),
                stop: Arc::clone(&stop),
            },
        ),
    };
    let mut capture_joined = false;
    let capture = async {
        let result = (&mut capture_task).await;
        capture_joined = true;
        result.map_err(|error| CaptureStop::State(format!("the capture task failed: {error}")))?
    };
    // The lines layout reads the input again as it sends: a change found there stops
    // the run as one found by the outbox layout's capture does.
    let input_changed = async move {
        match failed.wait_for(Option::is_some).await {
            Ok(reason) => CaptureStop::Input(reason.clone().unwrap_or_default()),
            Err(_) => std::future::pending().await,
        }
    };
    let mut progress = Progress::new(total as u64);
    let counts = Counts {
        captured: Arc::clone(&captured),
        // In the lines layout `captured` counts every line pending, earlier runs' too.
        captured_before: match state.layout {
            Layout::Outbox => resumed as u64,
            Layout::Lines(_) => 0,
        },
    };
    let ending = deliver(&headwater, capture, input_changed, &counts, &mut progress).await;
    stop.store(true, Ordering::Release);
    if !capture_joined {
        // Delivery ended before the capture did (only a paced capture lasts that long):
        // it stops within one sleep, and then the counts below are final.
        let _ = capture_task.await;
    }
    let ending = ending.unwrap_or_else(|stop| match stop {
        CaptureStop::State(error) => {
            Ending::StateFailed(format!("capturing into it failed: {error}"))
        }
        CaptureStop::Input(error) => Ending::InputFailed(error),
    });
    let elapsed = started.elapsed();
    // A state that cannot be read now gives no true summary: none is printed.
    let status = match headwater.status().await {
        Ok(status) => status,
        Err(error) => {
            eprintln!("{}", state_failed(&state.path, &error.to_string()));
            return Ok(ExitCode::from(4));
        }
    };
    let settled = status.counters.delivered;
    // Lines in the outbox: all of them, unless a paced capture was stopped early.
    let in_outbox = match state.layout {
        Layout::Outbox => resumed as u64 + captured.load(Ordering::Acquire),
        Layout::Lines(_) => captured.load(Ordering::Acquire).min(total as u64),
    };
    let summary = Summary {
        captured: in_outbox,
        resumed: Some(resumed as u64),
        delivered_unique: in_outbox.saturating_sub((status.pending + status.dead_lettered) as u64),
        duplicates: None,
        dead_lettered: status.dead_lettered as u64,
        requests: status.counters.requests,
        retries: status.counters.retries,
        rejected_by_server: status.counters.rejected_by_server,
        elapsed_ms: elapsed.as_millis() as u64,
        events_per_sec: rate(settled, elapsed),
    };
    summary.print(args.json);
    for letter in headwater.dead_letters(None, 20).await.unwrap_or_default() {
        let (what, id) = match letter.change() {
            Some(change) => (
                format!("{}/{}", change.data().collection(), change.data().key()),
                change.id().to_string(),
            ),
            None => (
                "an unreadable row".to_owned(),
                format!("seq {}", letter.seq),
            ),
        };
        eprintln!("dead-lettered: {what} ({id}): {}", letter.reason);
    }
    if status.dead_lettered > 0 {
        eprintln!(
            "{} dead-lettered in all; to list, requeue or discard them: headwater dead-letters --state {} list",
            status.dead_lettered,
            state.path.display()
        );
    }
    // Not delivered: pending in the outbox, and lines a stopped capture never took in.
    let open = status.pending as u64 + (total as u64).saturating_sub(in_outbox);
    Ok(match ending {
        Ending::Drained if status.dead_lettered == 0 => ExitCode::SUCCESS,
        Ending::Drained => ExitCode::FAILURE,
        Ending::Blocked(reason) => {
            eprintln!(
                "error: Flume refused the configuration, so nothing more was sent ({open} changes not delivered; they are kept in the state): {reason}"
            );
            ExitCode::from(3)
        }
        Ending::Interrupted => {
            eprintln!(
                "interrupted: {open} changes not delivered; run the same command again to resume"
            );
            ExitCode::from(130)
        }
        Ending::StateFailed(reason) => {
            eprintln!(
                "{} ({open} changes not delivered)",
                state_failed(&state.path, &reason)
            );
            ExitCode::from(4)
        }
        Ending::InputFailed(reason) => {
            eprintln!(
                "error: {reason}. Nothing was lost: what was captured before is kept in the state at {} and delivered as far as shown ({open} changes not delivered). Put the input back as it was and run the same command to resume, or run with --fresh to send the new input under new ids",
                state.path.display()
            );
            ExitCode::from(5)
        }
    })
}

/// Starts delivery from `store` with `send`'s settings.
fn start(
    args: &SendArgs,
    http: HttpConfig,
    store: impl ChangeStore + 'static,
) -> Result<Headwater, Box<dyn std::error::Error>> {
    Ok(Headwater::builder()
        .http(|config| *config = http)
        .source(args.source.clone())
        .batch_size(args.batch_size)
        .max_in_flight(args.max_in_flight)
        .store(store)
        .configure(|config| {
            if args.protocol == WireProtocol::Otlp {
                let mut otlp = OtlpMapping::with_service_name(args.service_name.clone());
                otlp.encoding = match args.otlp_encoding {
                    OtlpBodyEncoding::Protobuf => OtlpEncoding::Protobuf,
                    OtlpBodyEncoding::Json => OtlpEncoding::Json,
                };
                config.protocol = Protocol::Otlp(otlp);
            }
            config.owner = Some(OWNER.into());
            // The state's backlog was loaded at once: its age is no rate to pace by.
            config.pacing.old_backlog = false;
            config.batch.max_bytes = config.batch.max_bytes.max(args.max_event_bytes);
            config.lease = Duration::from_millis(args.timeout_ms).max(Duration::from_secs(1)) * 3;
        })
        .start()?)
}

/// Where a capture starts and how it goes.
struct CaptureRun {
    /// Changes captured (or made pending) before it starts.
    done: usize,
    total: usize,
    pace: Option<Pace>,
    /// Changes captured (the outbox layout) or made pending (the lines layout) so far.
    captured: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// The outbox layout's capture: the input read again a chunk at a time (only one chunk
/// of changes is in memory), each chunk one transaction with its count.
fn spawn_capture(
    headwater: &Headwater,
    mut connection: headwater::sqlite::rusqlite::Connection,
    mut pending: Changes,
    mut run: CaptureRun,
) -> tokio::task::JoinHandle<Result<(), CaptureStop>> {
    let headwater = headwater.clone();
    let chunk_size = run.pace.as_ref().map_or(crate::input::CHUNK, Pace::chunk);
    tokio::task::spawn_blocking(move || -> Result<(), CaptureStop> {
        while run.done < run.total {
            if let Some(pace) = &mut run.pace
                && !pace.wait(&run.stop)
            {
                return Ok(());
            }
            let chunk = pending.next_chunk(chunk_size).map_err(CaptureStop::Input)?;
            if chunk.is_empty() {
                return Err(CaptureStop::Input(format!(
                    "the input changed while it was being sent: it ends after {} of its {} changes",
                    run.done, run.total
                )));
            }
            let count = chunk.len();
            let done = run.done;
            headwater
                .transaction(&mut connection, |tx, capture| {
                    capture.changes(chunk);
                    state::set_lines_captured(tx, done + count)?;
                    Ok::<_, CaptureFailure>(())
                })
                .map_err(|error| CaptureStop::State(error.to_string()))?;
            run.done += count;
            run.captured.fetch_add(count as u64, Ordering::Release);
            if let Some(pace) = &mut run.pace {
                pace.took(count);
            }
        }
        Ok(())
    })
}

/// The lines layout's pacing: with `--max-rate`, lines become pending at that rate (the
/// store claims none beyond `captured`); without, all are pending already.
fn spawn_release(
    headwater: &Headwater,
    mut run: CaptureRun,
) -> tokio::task::JoinHandle<Result<(), CaptureStop>> {
    let headwater = headwater.clone();
    tokio::task::spawn_blocking(move || -> Result<(), CaptureStop> {
        let Some(mut pace) = run.pace.take() else {
            return Ok(());
        };
        let chunk_size = pace.chunk();
        while run.done < run.total {
            if !pace.wait(&run.stop) {
                return Ok(());
            }
            let count = chunk_size.min(run.total - run.done);
            run.done += count;
            run.captured.store(run.done as u64, Ordering::Release);
            // Delivery is told as a capture would tell it.
            headwater.wake();
            pace.took(count);
        }
        Ok(())
    })
}

/// Why capturing stopped partway.
enum CaptureStop {
    /// The input was not what the check read (it changed), or could not be read.
    Input(String),
    /// The state failed (a full disk, a read-only file).
    State(String),
}

/// The input, opened and read once to check every line as `send` sends it (with the
/// mapping's own headers and the event size limit).
fn open_checked(
    file: &std::path::Path,
    source: String,
    max_event_bytes: usize,
) -> Result<(Input, Checked), InputError> {
    let input = Input::open(file)?;
    let mapping = EventMapping::with_source(source);
    let checked = check(
        &input,
        &LineRules {
            mapping: &mapping,
            max_event_bytes,
        },
    )?;
    Ok((input, checked))
}

/// `send --check`: reads the input as `send` would and sends nothing.
fn check_only(args: &SendArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (_, checked) = open_checked(&args.file, args.source.clone(), args.max_event_bytes)?;
    let name = if args.file.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        args.file.display().to_string()
    };
    if args.json {
        crate::stdout::print(&format!(
            "{}\n",
            serde_json::json!({
                "input": name,
                "changes": checked.changes,
                "valid": true,
            })
        ));
    } else {
        crate::stdout::print(&format!(
            "{name}: {} changes, every line valid; nothing was sent\n",
            checked.changes
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// What to say when the state fails partway through a run.
fn state_failed(path: &std::path::Path, reason: &str) -> String {
    format!(
        "error: the state at {} failed, so delivery stopped partway: {reason}. The disk may be full or read-only, or the state damaged; what Flume acknowledged is recorded. Fix the cause and run the same command again to resume, or move the state aside and run with --fresh to send every line again under new ids",
        path.display()
    )
}

/// `--max-rate`: the capture takes in changes no faster than `rate` per second, in
/// chunks of about a tenth of a second's worth, so that the sender's stream stays even
/// rather than a burst per second.
struct Pace {
    rate: f64,
    started: Instant,
    taken: u64,
}

impl Pace {
    /// The longest single sleep: a stop is noticed within it.
    const SLICE: Duration = Duration::from_millis(100);

    fn new(rate: f64) -> Self {
        Self {
            rate,
            started: Instant::now(),
            taken: 0,
        }
    }

    /// Changes per capture transaction: a tenth of a second's worth, at least one, at
    /// most what an unpaced capture takes.
    fn chunk(&self) -> usize {
        ((self.rate / 10.0) as usize).clamp(1, crate::input::CHUNK)
    }

    /// Sleeps until the changes taken so far are due at `rate`; false if `stop` was set
    /// meanwhile.
    fn wait(&self, stop: &AtomicBool) -> bool {
        // None: not due within any time an Instant can hold (a rate of 1e-300), so only
        // a stop ends the wait.
        let due = Duration::try_from_secs_f64(self.taken as f64 / self.rate)
            .ok()
            .and_then(|offset| self.started.checked_add(offset));
        loop {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            let now = Instant::now();
            let left = due.map_or(Self::SLICE, |due| due.saturating_duration_since(now));
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Self::SLICE));
        }
    }

    fn took(&mut self, count: usize) {
        self.taken += count as u64;
    }
}

/// A failed capture transaction.
#[derive(Debug, thiserror::Error)]
enum CaptureFailure {
    #[error("cannot write to the state: {0}")]
    Sqlite(#[from] headwater::sqlite::rusqlite::Error),
    #[error(transparent)]
    Capture(#[from] headwater::CaptureError),
}
