//! The store: the replicated [`State`] plus a change signal. "The store is the bus": actors read a
//! consistent view, compute, and write back through raft; they never call each other.

mod lookup;
mod refusal;
mod state;
#[cfg(test)]
mod tests;

pub use lookup::{LookupError, MIN_PREFIX};
pub use refusal::{Applied, ObjectKind, Refusal, Versioned};
pub use state::{State, FIRST_VNI};

use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::watch;

/// Shared handle to the applied state. Cloning is cheap.
#[derive(Clone)]
pub struct Store {
    inner: Arc<RwLock<State>>,
    applied: watch::Sender<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("applied", &*self.applied.borrow())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(State::default())
    }
}

impl Store {
    /// A store holding `state`.
    pub fn new(state: State) -> Store {
        let (applied, _) = watch::channel(0);
        Store {
            inner: Arc::new(RwLock::new(state)),
            applied,
        }
    }

    /// A read view. Hold it only for synchronous work: never across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with write access and then signals `index` to watchers. Only the raft state
    /// machine calls this.
    pub fn write<R>(&self, index: u64, f: impl FnOnce(&mut State) -> R) -> R {
        let r = {
            let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
            f(&mut g)
        };
        self.applied.send_replace(index);
        r
    }

    /// A receiver that changes whenever a log entry is applied (value = last applied index).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Last applied index signalled.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }
}
