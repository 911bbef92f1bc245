//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Delivers captured changes to Apache Flume, durably and in order.
#[derive(Debug, Parser)]
#[command(name = "headwater", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Capture changes and deliver them over HTTP to the built-in mock Flume, with faults.
    Demo(DemoArgs),
    /// Run the mock Flume HTTP source as a server until Ctrl-C or SIGTERM.
    MockFlume(MockArgs),
    /// Deliver changes from a JSON-lines file (or standard input) to Flume, resuming
    /// after a crash under the same ids.
    Send(SendArgs),
    /// List, requeue or discard the changes `send` set aside in a state.
    DeadLetters(DeadLettersArgs),
}

/// The protocol the tier speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum WireProtocol {
    /// Flume's HTTP source: a JSON array of events.
    #[default]
    Flume,
    /// OTLP/HTTP logs (`…/v1/logs`, gzip-compressed protobuf), for an OpenTelemetry
    /// Collector, Vector or Fluent Bit.
    Otlp,
}

/// How OTLP bodies are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum OtlpBodyEncoding {
    /// `application/x-protobuf`.
    #[default]
    Protobuf,
    /// `application/json`.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct DeadLettersArgs {
    /// The state `send` kept (its path is printed when `send` starts).
    #[arg(long, value_name = "PATH")]
    pub state: PathBuf,
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLetterAction {
    /// Print every dead letter: seq, record, id, attempts, when and why.
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in line (same seq and id); the next `send` of the same
    /// input delivers them.
    Requeue(DeadLetterSelection),
    /// Delete dead letters for good.
    Discard(DeadLetterSelection),
}

#[derive(Debug, Args)]
pub(crate) struct DeadLetterSelection {
    /// The seqs of the dead letters, as `list` shows them.
    #[arg(
        value_name = "SEQ",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub seqs: Vec<u64>,
    /// Every dead letter in the state.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many changes to capture.
    #[arg(long, default_value_t = 100_000)]
    pub changes: usize,
    /// Share of requests (0 to 1) that meet a fault: 503, 502, 504, a slow answer, a
    /// connection dropped before or after the commit.
    #[arg(long, default_value_t = 0.05)]
    pub fault_rate: f64,
    /// Seeds the faults and the engine.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Most requests in flight at once (1 keeps total order).
    #[arg(long, default_value_t = 4)]
    pub max_in_flight: usize,
    /// The mock channel's transactionCapacity.
    #[arg(long, default_value_t = 100)]
    pub transaction_capacity: usize,
    /// The protocol to deliver in: to the mock's Flume source, or to its OTLP/HTTP
    /// logs receiver.
    #[arg(long, value_enum, default_value_t = WireProtocol::Flume)]
    pub protocol: WireProtocol,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5140")]
    pub bind: SocketAddr,
    /// The channel's capacity.
    #[arg(long, default_value_t = 100)]
    pub capacity: usize,
    /// The channel's transactionCapacity.
    #[arg(long, default_value_t = 100)]
    pub transaction_capacity: usize,
    /// Events per second the sink takes (default: as fast as they come).
    #[arg(long, value_name = "EPS")]
    pub drain_rate: Option<f64>,
    /// Answer CORS preflights (as a proxy in front of Flume would).
    #[arg(long)]
    pub cors: bool,
    /// Serve this folder's files to GET requests.
    #[arg(long = "static", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// Append committed events to this file as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub sink: Option<PathBuf>,
    /// Share of requests (0 to 1) that meet a random network fault.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Seeds the faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Answer 400, committing nothing, to every request whose body contains this text
    /// (as a strict proxy in front of Flume refuses a poison change): to see isolation
    /// and dead letters at work.
    #[arg(long, value_name = "TEXT")]
    pub refuse_containing: Option<String>,
    /// Serve Flume-style monitoring JSON at GET /metrics.
    #[arg(long)]
    pub metrics: bool,
    /// Serve HTTPS with this certificate chain (PEM), as Flume's `ssl = true` does.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Flume HTTP source URLs, comma-separated (failover in order, or round-robin).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "check",
        value_name = "URL[,URL...]"
    )]
    pub to: Vec<String>,
    /// Check the input (and any URLs, headers and certificates given) and send
    /// nothing: exit 0 if every line is a change that can be sent, 2 naming each bad
    /// line otherwise. No state is made or read.
    #[arg(long)]
    pub check: bool,
    /// JSON lines, one change per line: {"collection","key","op","value","headers"};
    /// `-` reads standard input.
    pub file: PathBuf,
    /// Where what Flume acknowledged is kept between runs, so that a rerun resumes
    /// (default: printed at start, one per input).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Forget earlier runs of this input and start over (new ids for every line).
    #[arg(long)]
    pub fresh: bool,
    /// Spread requests round-robin instead of failing over.
    #[arg(long, conflicts_with = "route_by_key")]
    pub round_robin: bool,
    /// Spread records over the URLs: each record's changes go to one agent (picked by
    /// a hash of its collection and key), moving on only while that agent fails, so
    /// each record's order is kept even with several agents taking requests.
    #[arg(long)]
    pub route_by_key: bool,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Most requests in flight at once (1 keeps total order).
    #[arg(long, default_value_t = 4)]
    pub max_in_flight: usize,
    /// Take in at most this many changes per second (default: as fast as Flume takes
    /// them), for a run that must last, e.g. while agents are failed on purpose. Lines
    /// are released to delivery at this rate (from the first not yet acknowledged), so
    /// new changes are sent no faster; resends after a failure are not counted.
    #[arg(long, value_name = "EVENTS_PER_S")]
    pub max_rate: Option<f64>,
    /// The largest event, encoded, in bytes; a line over it is refused before anything
    /// is sent.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_event_bytes: usize,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Extra request header, NAME:VALUE (repeatable), e.g. for a proxy's auth. Values
    /// are never printed.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// The source header: which client sent the events (with OTLP, the resource's
    /// `service.instance.id`).
    #[arg(long, default_value = "headwater-cli")]
    pub source: String,
    /// The protocol the URLs speak: Flume's HTTP source, or OTLP/HTTP logs (give the
    /// full URL, `http://host:4318/v1/logs`).
    #[arg(long, value_enum, default_value_t = WireProtocol::Flume)]
    pub protocol: WireProtocol,
    /// With `--protocol otlp`: the resource's `service.name`.
    #[arg(long, default_value = "headwater", value_name = "NAME")]
    pub service_name: String,
    /// With `--protocol otlp`: the body's encoding, protobuf (smaller, read by every
    /// receiver) or OTLP's JSON.
    #[arg(long, value_enum, default_value_t = OtlpBodyEncoding::Protobuf)]
    pub otlp_encoding: OtlpBodyEncoding,
    /// Trust this CA (PEM) for HTTPS endpoints, in addition to the system's roots: the
    /// private CA that signed Flume's keystore.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Present this client certificate chain (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert. Never printed.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics while sending (pending, oldest
    /// age, requests by outcome, retries, delivery latency, ...).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// DEVELOPMENT ONLY: accept any server certificate (no verification at all).
    #[arg(long)]
    pub danger_accept_invalid_certs: bool,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The exit codes the command's sources use: `ExitCode::from(N)`, and 0 and 1 for
    /// `SUCCESS` and `FAILURE`.
    fn codes_in_sources() -> std::collections::BTreeSet<u8> {
        let sources = [
            include_str!("main.rs"),
            include_str!("send.rs"),
            include_str!("demo.rs"),
            include_str!("mock.rs"),
            include_str!("dead_letters.rs"),
            include_str!("deliver.rs"),
        ];
        let mut codes = std::collections::BTreeSet::new();
        for source in sources {
            for (at, _) in source.match_indices("ExitCode::from(") {
                let digits: String = source[at + 15..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                codes.extend(digits.parse::<u8>());
            }
            if source.contains("ExitCode::SUCCESS") {
                codes.insert(0);
            }
            if source.contains("ExitCode::FAILURE") {
                codes.insert(1);
            }
        }
        codes
    }

    /// docs/cli.md's exit code table has a row for every code the command can exit
    /// with, and none it cannot.
    #[test]
    fn the_exit_code_table_is_the_codes_the_command_uses() {
        let page = include_str!("../../../docs/cli.md");
        let table = &page[page.find("### Exit codes").expect("an exit code table")..];
        let documented: std::collections::BTreeSet<u8> = table
            .lines()
            .skip_while(|line| !line.starts_with("| Code"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| line.trim_start_matches('|').split('|').next())
            .filter_map(|code| code.trim().parse().ok())
            .collect();
        assert_eq!(documented, codes_in_sources());
    }

    /// How far after a flag's first mention in docs/cli.md its default must be named.
    const NEAR: usize = 80;

    /// docs/cli.md is the CLI's reference: every flag of every command is named in it,
    /// with its default close by. A flag added, renamed or given a new default without
    /// the page fails here.
    #[test]
    fn the_cli_page_names_every_flag_and_its_default() {
        let page = include_str!("../../../docs/cli.md");
        let mut missing = Vec::new();
        let command = Cli::command();
        let mut commands: Vec<(String, &clap::Command)> = Vec::new();
        for sub in command.get_subcommands() {
            commands.push((sub.get_name().to_owned(), sub));
            for nested in sub.get_subcommands() {
                commands.push((format!("{} {}", sub.get_name(), nested.get_name()), nested));
            }
        }
        for (name, sub) in commands {
            // `headwater dead-letters list` may be written with flags between the words.
            let mut words = name.split(' ');
            let (first, rest) = (words.next().unwrap_or_default(), words.next());
            let shown = page.lines().any(|line| {
                line.contains(&format!("headwater {first}"))
                    && rest.is_none_or(|word| line.split_whitespace().any(|w| w == word))
            });
            assert!(shown, "docs/cli.md never shows `headwater {name}`");
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if matches!(long, "help" | "version") {
                    continue;
                }
                let flag = format!("`--{long}");
                let Some(at) = page.find(&flag) else {
                    missing.push(format!("{name}: --{long} is not named"));
                    continue;
                };
                for default in arg.get_default_values() {
                    let default = default.to_string_lossy();
                    let near = &page[at..(at + NEAR).min(page.len())];
                    if !near.contains(default.as_ref()) {
                        missing.push(format!(
                            "{name}: --{long}'s default {default} is not named near it"
                        ));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "docs/cli.md: {missing:#?}");
    }
}
