//! An arbitrary sequence of captures, transport outcomes (500 and 400 outages among
//! them), crashes and clock jumps driving the engine over the memory store, with one or
//! several requests in flight: it never panics, never loses a change, dead-letters only
//! poison, keeps each record's order (and total order with one in flight) and never
//! exceeds its request bound (the invariants of `headwater_core::testing::scenario`).
//!
//! The mapping from bytes leans towards what broke per-record order once (issue 31):
//! several requests in flight three times in four, captures to repeated records (poison
//! among them) as often as not, and clock jumps of up to two hours either way beside
//! the long ones.
#![no_main]
#![forbid(unsafe_code)]

use arbitrary::Arbitrary;
use headwater_core::testing::scenario::{self, FaultKind, Poison, Setup, Step};
use headwater_memory::MemoryStore;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum ArbitraryStep {
    Capture {
        count: u8,
        poison: Option<(u8, bool)>,
        repeat: bool,
    },
    Sync,
    Overloaded,
    TooManyRequests(u8),
    ServerErrors(u8),
    BadRequests(u8),
    BadGateway,
    TimeoutAfterCommit,
    ConnectionRefused,
    Unauthorized,
    Crash {
        mid_request: bool,
    },
    Jump(i32),
}

#[derive(Debug, Arbitrary)]
struct Input {
    max_events: u8,
    max_in_flight: u8,
    transaction_capacity: Option<u8>,
    steps: Vec<ArbitraryStep>,
}

fuzz_target!(|input: Input| {
    let steps = input
        .steps
        .into_iter()
        .take(80)
        .map(|step| match step {
            ArbitraryStep::Capture {
                count,
                poison,
                repeat,
            } => {
                let count = usize::from(count % 40) + 1;
                Step::Capture {
                    count,
                    poison: poison.map(|(at, throws)| {
                        let kind = if throws {
                            Poison::Throws
                        } else {
                            Poison::BadRequest
                        };
                        (usize::from(at) % count, kind)
                    }),
                    repeat,
                }
            }
            ArbitraryStep::Sync => Step::Sync,
            ArbitraryStep::Overloaded => Step::Fault(FaultKind::Overloaded),
            ArbitraryStep::TooManyRequests(seconds) => {
                Step::Fault(FaultKind::TooManyRequests(u64::from(seconds % 100)))
            }
            ArbitraryStep::ServerErrors(count) => Step::Fault(FaultKind::ServerErrors(count % 12)),
            ArbitraryStep::BadRequests(count) => Step::Fault(FaultKind::BadRequests(count % 12)),
            ArbitraryStep::BadGateway => Step::Fault(FaultKind::BadGateway),
            ArbitraryStep::TimeoutAfterCommit => Step::Fault(FaultKind::TimeoutAfterCommit),
            ArbitraryStep::ConnectionRefused => Step::Fault(FaultKind::ConnectionRefused),
            ArbitraryStep::Unauthorized => Step::Fault(FaultKind::Unauthorized),
            ArbitraryStep::Crash { mid_request } => Step::Crash { mid_request },
            ArbitraryStep::Jump(seconds) if seconds % 2 == 0 => {
                Step::Jump(i64::from(seconds % 7_200))
            }
            ArbitraryStep::Jump(seconds) => Step::Jump(i64::from(seconds % 200_000)),
        })
        .collect();
    let setup = Setup {
        max_events: usize::from(input.max_events) + 1,
        max_in_flight: [1, 2, 2, 3, 4, 2, 1, 3][usize::from(input.max_in_flight % 8)],
        transaction_capacity: input.transaction_capacity.map(|c| usize::from(c) + 1),
        steps,
    };
    if let Err(violation) = scenario::run(MemoryStore::new(), &setup) {
        panic!("{violation}\n{setup:#?}");
    }
});
