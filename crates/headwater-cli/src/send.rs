//! `headwater send`: deliver a JSON-lines input to Flume, durably: the outbox lives in a
//! state database, so a run after a crash sends only what was not acknowledged, under
//! the same ids.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use headwater::sqlite::{SqliteOptions, SqliteStore};
use headwater::{
    ClientIdentity, EventMapping, Headwater, HttpConfig, HttpTransport, OtlpEncoding, OtlpMapping,
    Protocol, Selection, TlsConfig,
};

use crate::cli::{OtlpBodyEncoding, SendArgs, WireProtocol};
use crate::deliver::{Counts, Ending, Progress, deliver, rate};
use crate::input::{Changes, Checked, Input, InputError, LineRules, check};
use crate::state;
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
    let (input, checked) = open_checked(&args)?;
    let total = checked.changes;

    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| state::default_path(&args.file));
    let options = SqliteOptions::default();
    let (state, mut connection) = state::open(
        &state_path,
        &checked.identity,
        || {
            crate::input::legacy_identities(&input)
                .map(Vec::from)
                .map_err(|error| error.to_string())
        },
        &options,
        args.fresh,
    )?;
    let resumed = state.lines_captured.min(total);
    if !args.json {
        eprintln!(
            "sending {total} changes from {} to {} (state: {}{})",
            if args.file.as_os_str() == "-" {
                "standard input".to_owned()
            } else {
                args.file.display().to_string()
            },
            http.shown_endpoints().join(", "),
            state.path.display(),
            if resumed > 0 {
                format!("; resuming: {resumed} lines captured before")
            } else {
                String::new()
            }
        );
    }

    let headwater = Headwater::builder()
        .http(|config| *config = http)
        .source(args.source.clone())
        .batch_size(args.batch_size)
        .max_in_flight(args.max_in_flight)
        .store(SqliteStore::open_with(&state.path, &options)?)
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
        .start()?;

    let started = Instant::now();
    let captured = Arc::new(AtomicU64::new(0));
    // Set when delivery ends early (Ctrl-C, blocked), so that a paced capture stops
    // instead of holding the process until its last chunk.
    let stop = Arc::new(AtomicBool::new(false));
    let mut capture_task = {
        let headwater = headwater.clone();
        let captured = Arc::clone(&captured);
        let stop = Arc::clone(&stop);
        let mut pending = Changes::new(&input, &checked, resumed)?;
        let mut done = resumed;
        let mut pace = args.max_rate.map(Pace::new);
        let chunk_size = pace.as_ref().map_or(crate::input::CHUNK, Pace::chunk);
        tokio::task::spawn_blocking(move || -> Result<(), CaptureStop> {
            // Read again a chunk at a time: only one chunk of changes is in memory.
            let _input = input;
            while done < total {
                if let Some(pace) = &mut pace
                    && !pace.wait(&stop)
                {
                    return Ok(());
                }
                let chunk = pending.next_chunk(chunk_size).map_err(CaptureStop::Input)?;
                if chunk.is_empty() {
                    return Err(CaptureStop::Input(format!(
                        "the input changed while it was being sent: it ends after {done} of its {total} changes"
                    )));
                }
                let count = chunk.len();
                headwater
                    .transaction(&mut connection, |tx, capture| {
                        capture.changes(chunk);
                        state::set_lines_captured(tx, done + count)?;
                        Ok::<_, CaptureFailure>(())
                    })
                    .map_err(|error| CaptureStop::State(error.to_string()))?;
                done += count;
                captured.fetch_add(count as u64, Ordering::Release);
                if let Some(pace) = &mut pace {
                    pace.took(count);
                }
            }
            Ok(())
        })
    };
    let mut capture_joined = false;
    let capture = async {
        let result = (&mut capture_task).await;
        capture_joined = true;
        result.map_err(|error| CaptureStop::State(format!("the capture task failed: {error}")))?
    };
    let mut progress = Progress::new(total as u64);
    let counts = Counts {
        captured: Arc::clone(&captured),
        captured_before: resumed as u64,
    };
    let ending = deliver(&headwater, capture, &counts, &mut progress).await;
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
    let in_outbox = resumed as u64 + captured.load(Ordering::Acquire);
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

/// Why capturing stopped partway.
enum CaptureStop {
    /// The input was not what the check read (it changed), or could not be read.
    Input(String),
    /// The state failed (a full disk, a read-only file).
    State(String),
}

/// The input, opened and read once to check every line as `send` sends it (with the
/// mapping's own headers and the event size limit).
fn open_checked(args: &SendArgs) -> Result<(Input, Checked), InputError> {
    let input = Input::open(&args.file)?;
    let mapping = EventMapping::with_source(args.source.clone());
    let checked = check(
        &input,
        &LineRules {
            mapping: &mapping,
            max_event_bytes: args.max_event_bytes,
        },
    )?;
    Ok((input, checked))
}

/// `send --check`: reads the input as `send` would and sends nothing.
fn check_only(args: &SendArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (_, checked) = open_checked(args)?;
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
