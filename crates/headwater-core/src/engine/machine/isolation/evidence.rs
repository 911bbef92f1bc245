//! What the answers so far say about the server, as evidence for and against changes.

use std::collections::BTreeSet;

use crate::model::Seq;
use crate::policy::Rejection;

/// What the answers so far say about the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::engine::machine) struct Health {
    /// Whether the latest answer to any request was an acceptance.
    pub(in crate::engine::machine) last_any: Option<bool>,
    /// Acceptances of requests with events so far: the clock that tokens are read on.
    pub(in crate::engine::machine) real_successes: u64,
    /// Changes refused alone with 500 since Flume last accepted events.
    pub(in crate::engine::machine) refused_alone: BTreeSet<Seq>,
}

impl Health {
    /// Whether a lone request of `seq`, last tried alone at `mark`, could count against
    /// it: see the module docs.
    pub(in crate::engine::machine) fn has_token(
        &self,
        rejection: Rejection,
        seq: Seq,
        mark: u64,
    ) -> bool {
        match rejection {
            Rejection::BadRequest => true,
            Rejection::ServerError => {
                self.real_successes > mark
                    || self.refused_alone.iter().all(|refused| *refused == seq)
            }
        }
    }

    pub(in crate::engine::machine) fn last_accepted(&self) -> bool {
        self.last_any == Some(true)
    }
}
