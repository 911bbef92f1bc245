//! The shared store conformance suite and the engine's property model, run against
//! SQLite (in memory and on disk).

use headwater_core::testing::conformance;
use headwater_core::testing::scenario::{self, FaultKind, Poison, Setup, Step};
use headwater_sqlite::SqliteStore;
use proptest::prelude::*;

headwater_core::conformance_tests!(sqlite_in_memory, || async {
    SqliteStore::open_in_memory().unwrap()
});

/// A database file of its own for each check, in a folder that outlives the test (the
/// system's temp folder holds it; each is a few kilobytes).
fn on_disk() -> SqliteStore {
    let dir = tempfile::tempdir().unwrap().keep();
    SqliteStore::open(dir.join("store.db")).unwrap()
}

headwater_core::conformance_tests!(sqlite_on_disk, || async { on_disk() });

#[test]
fn seq_exhaustion_is_an_error_not_a_wrap() {
    futures::executor::block_on(async {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .force_last_seq(headwater_core::model::MAX_SEQ - 1)
            .await
            .unwrap();
        conformance::seq_stays_below_2_pow_53(store).await;
    });
}

#[test]
fn damaged_rows_are_reported_and_quarantined() {
    futures::executor::block_on(conformance::quarantine(
        SqliteStore::open_in_memory().unwrap(),
        |store: &SqliteStore, raw: &str| {
            let store = store.clone();
            let raw = raw.to_owned();
            async move { store.append_damaged(&raw).await.unwrap() }
        },
    ));
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .map_or(64, |cases: u32| (cases / 8).max(16))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The engine's model (captures, faults, outages, crashes, clock jumps) over SQLite:
    /// nothing lost, only poison dead-lettered, order kept per record.
    #[test]
    fn delivery_over_sqlite_survives_faults_and_crashes(
        max_in_flight in 1usize..4,
        steps in prop::collection::vec(
            prop_oneof![
                (1usize..30, any::<bool>(), prop::option::weighted(0.15, 0usize..30)).prop_map(|(count, repeat, poison)| Step::Capture {
                    count,
                    poison: poison.map(|at| (at % count, if at % 2 == 0 { Poison::BadRequest } else { Poison::Throws })),
                    repeat,
                }),
                Just(Step::Sync),
                Just(Step::Fault(FaultKind::Overloaded)),
                (2u8..8).prop_map(|n| Step::Fault(FaultKind::ServerErrors(n))),
                Just(Step::Fault(FaultKind::TimeoutAfterCommit)),
                Just(Step::Fault(FaultKind::ConnectionRefused)),
                any::<bool>().prop_map(|mid_request| Step::Crash { mid_request }),
                (-3_600i64..3_600).prop_map(Step::Jump),
            ],
            1..30,
        ),
    ) {
        let setup = Setup { max_events: 10, max_in_flight, transaction_capacity: None, steps };
        scenario::run(SqliteStore::open_in_memory().unwrap(), &setup)
            .map_err(|violation| TestCaseError::fail(violation.0))?;
    }
}
