//! Storage quotas: how many bytes of one log (one identity's writes in one thread) this
//! node stores when they come from peers.
//!
//! Without a bound, any member (or anyone holding the service key of a raw thread) could
//! fill a follower's disk. A batch that would take a log past the quota is refused
//! ([`Rejection::Quota`]), counted in the sync health like any rejection, and the log stays
//! where it was on this peer; other logs go on. This node's own log is never limited here
//! (its writes are its own). A batch counts whole, entries this node holds already included,
//! so a peer resending old entries near the limit can be refused early.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use threads_crypto::ThreadKey;
use threads_id::{LogId, PeerId, ThreadId};
use threads_store::Store;

use crate::ingest::{Ingested, Rejection, ingest};
use crate::message::WireEntry;

/// The bytes one log may take on a node by default (1 GiB).
pub const DEFAULT_LOG_QUOTA: u64 = 1 << 30;

/// The quota and what each log uses (read from the store the first time, then counted).
#[derive(Debug)]
pub(crate) struct Quota {
    limit: u64,
    own: Option<LogId>,
    used: Mutex<HashMap<(ThreadId, LogId), u64>>,
}

impl Quota {
    pub(crate) fn new(limit: u64, local: PeerId) -> Quota {
        Quota {
            limit,
            own: LogId::from_peer_id(local).ok(),
            used: Mutex::default(),
        }
    }

    /// [`ingest`], refused with [`Rejection::Quota`] if the batch would take the log past
    /// the quota.
    pub(crate) async fn ingest<S: Store>(
        &self,
        store: &S,
        thread: ThreadId,
        log: LogId,
        key: &ThreadKey,
        entries: Vec<WireEntry>,
    ) -> Result<Ingested, Rejection> {
        if self.own == Some(log) {
            return ingest(store, thread, log, key, entries).await;
        }
        let cached = self
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(thread, log))
            .copied();
        let used = match cached {
            Some(used) => used,
            None => store.log_bytes(thread, log).await?,
        };
        let incoming: u64 = entries.iter().map(|e| e.len() as u64).sum();
        if used.saturating_add(incoming) > self.limit {
            return Err(Rejection::Quota {
                limit: self.limit,
                used,
            });
        }
        let sizes: Vec<u64> = entries.iter().map(|e| e.len() as u64).collect();
        let done = ingest(store, thread, log, key, entries).await?;
        // The new entries are the batch's last ones (the known prefix is skipped).
        let added: u64 = sizes[sizes.len().saturating_sub(done.stored)..]
            .iter()
            .sum();
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((thread, log), used.saturating_add(added));
        Ok(done)
    }
}
