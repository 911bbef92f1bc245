//! The `headwater` command.
//!
//! - `headwater demo`: captures changes into the memory store and delivers them through
//!   the real HTTP transport to the built-in mock Flume, with faults, then prints a
//!   summary.
//! - `headwater mock-flume`: the mock Flume as a server.
//! - `headwater send --to URL FILE`: delivers changes from a JSON-lines file (or standard
//!   input) to a real (or mock) Flume, keeping its outbox in a SQLite state so that a
//!   run after a crash resumes under the same ids.
//! - `headwater dead-letters --state PATH list | requeue | discard`: what `send` set
//!   aside, for an operator.
//!
//! Exit codes: 0 everything delivered; 1 some changes dead-lettered; 2 bad input or
//! configuration, nothing sent; 3 Flume refused the configuration (blocked); 4 the
//! state failed partway; 5 the input changed (or could not be read) partway; 130
//! interrupted.
#![forbid(unsafe_code)]

mod cli;
mod dead_letters;
mod deliver;
mod demo;
mod input;
mod line_store;
mod mock;
mod send;
mod state;
mod stdout;
mod summary;
mod wal;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // `send` and `dead-letters` run on one thread: delivery's own work is one task and
    // its store works on a thread of its own, so a second worker only adds wake-ups
    // between threads (about a tenth of `send`'s CPU, measured). The demo and the mock
    // serve many connections and keep a worker per core.
    let mut builder = match cli.command {
        cli::Command::Send(_) | cli::Command::DeadLetters(_) => {
            tokio::runtime::Builder::new_current_thread()
        }
        cli::Command::Demo(_) | cli::Command::MockFlume(_) => {
            tokio::runtime::Builder::new_multi_thread()
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Demo(args) => demo::run(args).await,
            cli::Command::MockFlume(args) => mock::run(args).await,
            cli::Command::Send(args) => send::run(args).await,
            cli::Command::DeadLetters(args) => dead_letters::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
