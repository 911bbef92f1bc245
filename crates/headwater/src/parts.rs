//! The store and the transport as a running headwater holds them: behind shared
//! pointers, whatever their kind.

use std::sync::Arc;

use headwater_core::store::ChangeStore;
use headwater_core::transport::Transport;

/// The store behind a [`Headwater`](crate::Headwater), whatever its kind.
pub type DynStore = Arc<dyn ChangeStore>;
/// The transport behind a [`Headwater`](crate::Headwater), whatever its kind.
pub(crate) type DynTransport = Arc<dyn Transport>;
