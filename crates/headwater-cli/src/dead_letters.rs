//! `headwater dead-letters`: the changes `send` set aside (a 400 for that change alone,
//! repeated 500s, an event too large, a damaged row), for an operator to list, put
//! back in line for the next `send`, or delete.

use std::process::ExitCode;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use headwater::sqlite::{SqliteOptions, SqliteStore, configure_connection, rusqlite};
use headwater::store::ChangeStore;
use headwater::{DeadLetter, Seq};

use crate::cli::{DeadLetterAction, DeadLetterSelection, DeadLettersArgs};
use crate::line_store::LineStore;
use crate::state;

/// Dead letters read per page while listing.
const PAGE: usize = 500;

pub(crate) async fn run(args: DeadLettersArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // Held until the command ends: a running `send` and this command never share it.
    let (_lock, layout) = state::lock_existing(&args.state)?;
    let store: Box<dyn ChangeStore> = match layout {
        state::Layout::Outbox => Box::new(SqliteStore::open_with(
            &args.state,
            &SqliteOptions::default(),
        )?),
        state::Layout::Lines(identity) => {
            let connection = rusqlite::Connection::open(&args.state)?;
            configure_connection(&connection, &SqliteOptions::default())?;
            Box::new(LineStore::open(
                connection,
                identity,
                None,
                Arc::new(AtomicU64::new(0)),
                tokio::sync::watch::channel(None).0,
            )?)
        }
    };
    let store = store.as_ref();
    match args.action {
        DeadLetterAction::List { json } => {
            let mut after = None;
            let mut count = 0usize;
            loop {
                let page = store.dead_letters(after, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.seq);
                let text: String = page
                    .iter()
                    .map(|letter| {
                        if json {
                            format!("{}\n", serde_json::to_string(letter).unwrap_or_default())
                        } else {
                            format!("{}\n", describe(letter))
                        }
                    })
                    .collect();
                crate::stdout::print(&text);
                count += page.len();
            }
            if !json {
                eprintln!("{count} dead letter(s) in {}", args.state.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        DeadLetterAction::Requeue(selection) => {
            let seqs = selected(store, &selection).await?;
            let done = store.requeue(&seqs).await?;
            eprintln!(
                "requeued {done} dead letter(s); run the same `headwater send` again to deliver them"
            );
            Ok(missing(done, &seqs))
        }
        DeadLetterAction::Discard(selection) => {
            let seqs = selected(store, &selection).await?;
            let done = store.discard(&seqs).await?;
            eprintln!("discarded {done} dead letter(s); they will not be sent");
            Ok(missing(done, &seqs))
        }
    }
}

/// One line an operator reads: seq, the record and its id, attempts, when and why.
fn describe(letter: &DeadLetter) -> String {
    let what = match letter.change() {
        Some(change) => format!(
            "{}/{} {} ({})",
            change.data().collection(),
            change.data().key(),
            change.data().kind(),
            change.id()
        ),
        None => "an unreadable row".to_owned(),
    };
    format!(
        "{}\t{what}\t{} attempt(s)\t{}\t{}",
        letter.seq,
        letter.attempts,
        letter
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        letter.reason
    )
}

/// The seqs chosen: those given (each checked to be a seq), or every dead letter.
async fn selected(
    store: &dyn ChangeStore,
    selection: &DeadLetterSelection,
) -> Result<Vec<Seq>, Box<dyn std::error::Error>> {
    if !selection.all {
        return selection
            .seqs
            .iter()
            .map(|&seq| {
                Seq::new(seq)
                    .ok_or_else(|| format!("{seq} is not a seq (the largest is 2^53 - 1)").into())
            })
            .collect();
    }
    let mut seqs = Vec::new();
    let mut after = None;
    loop {
        let page = store.dead_letters(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        seqs.extend(page.iter().map(|letter| letter.seq));
    }
    Ok(seqs)
}

/// Exit 0 when every seq given was a dead letter, else 1, naming how many were not.
fn missing(done: usize, seqs: &[Seq]) -> ExitCode {
    if done == seqs.len() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "{} of the {} seq(s) given are not dead letters in this state (see `list`)",
        seqs.len() - done,
        seqs.len()
    );
    ExitCode::FAILURE
}
