//! Why a run stopped short.

use headwater_core::engine::ConfigError;
use headwater_core::model::InvalidChange;
use headwater_core::store::StoreError;

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The scenario cannot run.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A client's configuration was refused.
    #[error("the delivery machine's configuration was refused: {0}")]
    Config(#[from] ConfigError),
    /// A change could not be made.
    #[error("a change could not be made: {0}")]
    Change(#[from] InvalidChange),
    /// The simulation contradicts itself (a bug here, not in what it simulates).
    #[error("the simulation is inconsistent: {0}")]
    Inconsistent(String),
    /// A client's store failed (the memory store never should).
    #[error("client {client}'s store failed: {source}")]
    Store {
        /// Which client.
        client: usize,
        /// What failed.
        source: StoreError,
    },
}
