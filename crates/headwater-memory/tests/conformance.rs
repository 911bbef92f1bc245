//! The shared store conformance suite, run against the in-memory store.

use headwater_core::testing::conformance;
use headwater_memory::MemoryStore;

#[test]
fn memory_store_passes_the_conformance_suite() {
    futures::executor::block_on(conformance::run_all(|| async { MemoryStore::new() }));
}

#[test]
fn seq_exhaustion_is_an_error_not_a_wrap() {
    futures::executor::block_on(conformance::seq_stays_below_2_pow_53(
        MemoryStore::starting_after(headwater_core::model::MAX_SEQ - 1),
    ));
}
