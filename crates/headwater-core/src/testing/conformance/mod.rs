//! The conformance suite every [`ChangeStore`] backend runs on its own platform (memory
//! and SQLite natively, IndexedDB in a headless browser).
//!
//! Each check takes a fresh, empty store and panics with a message naming the broken
//! rule. [`conformance_tests!`](crate::conformance_tests) makes one `#[test]` per check,
//! in a module of its own, each on a fresh store from a factory, so a failure names
//! the check and the store:
//!
//! ```text
//! // natively: each test blocks on its check
//! headwater_core::conformance_tests!(my_store, || async { MyStore::open_empty() });
//! // in a browser: async tests under the attribute given
//! headwater_core::conformance_tests!(#[wasm_bindgen_test] async idb, || fresh("conformance"));
//! ```
//!
//! [`run_all`] runs every check in one call, where one test is enough.

mod checks;
mod support;

use std::future::Future;

pub use checks::*;
pub use support::{block_on, claim_request, epoch, sample};

use crate::store::ChangeStore;

/// One test per conformance check, in a module named `$name`, each on a fresh store
/// from the factory `$make` (a closure returning a future of the store). Natively each
/// test blocks on its check; with `#[attribute] async` before the name, each is an
/// async function under that attribute (`#[wasm_bindgen_test]` in a browser). The
/// checks are those of [`run_all`](crate::testing::conformance::run_all).
#[macro_export]
macro_rules! conformance_tests {
    (#[$attr:meta] async $name:ident, $make:expr) => {
        $crate::conformance_tests!(@checks $name (async [$attr]) $make);
    };
    ($name:ident, $make:expr) => {
        $crate::conformance_tests!(@checks $name (blocking) $make);
    };
    (@checks $name:ident $mode:tt $make:expr) => {
        $crate::conformance_tests!(@each $name $mode $make;
            append_assigns_increasing_seqs_and_keeps_content
            claim_reads_in_order_after_a_seq
            a_lease_keeps_others_out_until_it_lapses
            acks_remove_changes_and_move_markers_forward
            retries_are_stored_with_their_changes
            dead_letters_leave_the_line_and_can_be_requeued_or_discarded
            a_syncer_that_lost_the_lease_can_only_acknowledge
            stats_count_and_find_the_head
            pending_bytes_hold_whichever_call_comes_first
            seqs_are_never_reused
        );
    };
    (@each $name:ident (blocking) $make:expr; $($check:ident)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $check() {
                    let make = $make;
                    $crate::testing::conformance::block_on(async move {
                        $crate::testing::conformance::$check(make().await).await;
                    });
                }
            )*
        }
    };
    (@each $name:ident (async [$attr:meta]) $make:expr; $($check:ident)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[$attr]
                async fn $check() {
                    let make = $make;
                    $crate::testing::conformance::$check(make().await).await;
                }
            )*
        }
    };
}

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: ChangeStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    append_assigns_increasing_seqs_and_keeps_content(make().await).await;
    claim_reads_in_order_after_a_seq(make().await).await;
    a_lease_keeps_others_out_until_it_lapses(make().await).await;
    acks_remove_changes_and_move_markers_forward(make().await).await;
    retries_are_stored_with_their_changes(make().await).await;
    dead_letters_leave_the_line_and_can_be_requeued_or_discarded(make().await).await;
    a_syncer_that_lost_the_lease_can_only_acknowledge(make().await).await;
    stats_count_and_find_the_head(make().await).await;
    pending_bytes_hold_whichever_call_comes_first(make().await).await;
    seqs_are_never_reused(make().await).await;
}
