//! The shared store conformance suite, run against the in-memory store.

use headwater_core::testing::conformance;
use headwater_memory::MemoryStore;

headwater_core::conformance_tests!(memory_store, || async { MemoryStore::new() });

#[test]
fn seq_exhaustion_is_an_error_not_a_wrap() {
    futures::executor::block_on(conformance::seq_stays_below_2_pow_53(
        MemoryStore::starting_after(headwater_core::model::MAX_SEQ - 1),
    ));
}

#[test]
fn damaged_rows_are_reported_and_quarantined() {
    futures::executor::block_on(conformance::quarantine(
        MemoryStore::new(),
        |store: &MemoryStore, raw: &str| {
            let seq = store.append_damaged(raw).unwrap();
            async move { seq }
        },
    ));
}
