//! The requests an isolation asks for, how the machine reads their answers, and what the
//! isolation decides.

use crate::model::Seq;
use crate::policy::Rejection;

/// One request an isolation wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::engine::machine) enum IsoRequest {
    /// Some of the refused batch's changes. `sandwiched` says whether a refusal would
    /// count (it can only if the part is one change).
    Part { seqs: Vec<Seq>, sandwiched: bool },
    /// A suspect, alone.
    Lone { seq: Seq, sandwiched: bool },
    /// An empty batch: does Flume take requests at all?
    Probe(ProbePurpose),
}

impl IsoRequest {
    /// The changes the request carries.
    pub(in crate::engine::machine) fn seqs(&self) -> Vec<Seq> {
        match self {
            Self::Part { seqs, .. } => seqs.clone(),
            Self::Lone { seq, .. } => vec![*seq],
            Self::Probe(_) => Vec::new(),
        }
    }
}

/// Why an empty batch is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine::machine) enum ProbePurpose {
    /// To have an acceptance right before a suspect's lone request.
    Before,
    /// To have an answer right after a suspect's lone refusal.
    After,
    /// Requests kept failing: is it the server?
    Trouble,
}

/// How the machine reads the answer to an isolation's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::engine::machine) enum IsoAnswer {
    /// 2xx.
    Accepted,
    /// 400 or 500.
    Rejected {
        rejection: Rejection,
        reason: String,
    },
    /// 413.
    TooLarge { reason: String },
    /// Anything else (retried, or a block): the request is simply to be made again.
    Failed,
}

/// What an answer made the isolation decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::engine::machine) enum IsoEffect {
    /// Flume has these.
    Ack(Vec<Seq>),
    /// This change is condemned, with Flume's reason.
    Condemn { seq: Seq, reason: String },
    /// Requests fail whatever they hold: back off every change of the isolation.
    BackOff { reason: String },
    /// Flume refuses even an empty batch with 400: block the outbox.
    Block { reason: String },
}
