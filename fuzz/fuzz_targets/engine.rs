//! An arbitrary sequence of captures, transport outcomes, crashes and clock jumps
//! driving the engine over the memory store: it never panics, never loses a change and
//! never exceeds its request bound (the invariants of
//! `headwater_core::testing::scenario`).
#![no_main]
#![forbid(unsafe_code)]

use arbitrary::Arbitrary;
use headwater_core::testing::scenario::{self, FaultKind, Setup, Step};
use headwater_memory::MemoryStore;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum ArbitraryStep {
    Capture { count: u8, poison: Option<u8> },
    Sync,
    Overloaded,
    TooManyRequests(u8),
    ServerError,
    BadGateway,
    TimeoutAfterCommit,
    ConnectionRefused,
    Unauthorized,
    Crash { mid_request: bool },
    Jump(i32),
}

#[derive(Debug, Arbitrary)]
struct Input {
    max_events: u8,
    transaction_capacity: Option<u8>,
    steps: Vec<ArbitraryStep>,
}

fuzz_target!(|input: Input| {
    let steps = input
        .steps
        .into_iter()
        .take(80)
        .map(|step| match step {
            ArbitraryStep::Capture { count, poison } => {
                let count = usize::from(count % 40) + 1;
                Step::Capture {
                    count,
                    poison: poison.map(|at| usize::from(at) % count),
                }
            }
            ArbitraryStep::Sync => Step::Sync,
            ArbitraryStep::Overloaded => Step::Fault(FaultKind::Overloaded),
            ArbitraryStep::TooManyRequests(seconds) => {
                Step::Fault(FaultKind::TooManyRequests(u64::from(seconds % 100)))
            }
            ArbitraryStep::ServerError => Step::Fault(FaultKind::ServerError),
            ArbitraryStep::BadGateway => Step::Fault(FaultKind::BadGateway),
            ArbitraryStep::TimeoutAfterCommit => Step::Fault(FaultKind::TimeoutAfterCommit),
            ArbitraryStep::ConnectionRefused => Step::Fault(FaultKind::ConnectionRefused),
            ArbitraryStep::Unauthorized => Step::Fault(FaultKind::Unauthorized),
            ArbitraryStep::Crash { mid_request } => Step::Crash { mid_request },
            ArbitraryStep::Jump(seconds) => Step::Jump(i64::from(seconds % 200_000)),
        })
        .collect();
    let setup = Setup {
        max_events: usize::from(input.max_events) + 1,
        transaction_capacity: input.transaction_capacity.map(|c| usize::from(c) + 1),
        steps,
    };
    if let Err(violation) = scenario::run(MemoryStore::new(), &setup) {
        panic!("{violation}\n{setup:#?}");
    }
});
