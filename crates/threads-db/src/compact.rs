//! Compaction: the events no view needs any more (a key-value put or a document `save`
//! replaced by a later one), named in an operation of the thread so that every peer
//! applies nothing of them, whatever bodies it holds, and may drop their bodies.
//!
//! A peer cannot drop a body on its own judgment: whether an operation still matters can
//! change (a late event, a revocation reaching back), and a peer that kept the body would
//! then compute other views than one that dropped it. So [`Db::compact`] writes
//! [`threads_acl::AclOp::Compact`] operations (the owner's right in an access-controlled
//! thread: a compaction is final, so its author's right must be one that cannot be
//! revoked back to before it; in a raw thread any member's, with a proof that it holds the
//! read key, since a raw thread's ACL events can come from followers) naming the
//! superseded events; every peer that applies them voids
//! those events from their place (the views are recomputed from the earliest, as for a
//! change of the ACL) and drops their bodies. Records stay: logs stay verifiable, and a
//! compacted entry is served without its body (threads-net), which a receiver takes only
//! for what such an operation names (otherwise its views wait for a peer with the body).

use threads_acl::{ACL_VIEW, MAX_COMPACT_RANGES};
use threads_id::ThreadId;
use threads_store::Store;
use threads_views::{Batch, Refused};

use crate::db::Db;
use crate::error::DbError;

/// What [`Db::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compacted {
    /// How many events it named (they now apply nothing, on every peer).
    pub events: u64,
    /// The bytes of the bodies it dropped here (the operations it wrote add an entry of a
    /// few hundred bytes per log and 4,096 ranges).
    pub freed_bytes: u64,
}

/// `counters` (increasing) as inclusive ranges.
fn ranges(counters: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &counter in counters {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(counter) => last.1 = counter,
            _ => out.push((counter, counter)),
        }
    }
    out
}

impl<S: Store + 'static> Db<S> {
    /// Compacts `thread`: finds the events no view needs any more (every operation
    /// superseded, none refused) and writes [`threads_acl::AclOp::Compact`] operations naming them, so
    /// every peer (this one first) applies nothing of them and drops their bodies. The
    /// views are the same afterwards; the store is smaller. Returns what it did (nothing,
    /// if nothing is superseded).
    ///
    /// ```no_run
    /// # async fn run(db: threads_db::Db<threads_store::MemoryStore>, thread: threads_id::ThreadId) -> Result<(), threads_db::DbError> {
    /// let done = db.compact(thread).await?;
    /// println!("{} events compacted, {} bytes freed", done.events, done.freed_bytes);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`DbError::Forbidden`] if this peer is not the owner of an access-controlled thread
    /// (or a follower of a raw one); [`DbError::UnknownThread`]; a view or store error.
    pub async fn compact(&self, thread: ThreadId) -> Result<Compacted, DbError> {
        let views = self.views(thread).await?;
        let superseded = {
            let mut views = views.lock().await;
            if !views.may_compact() {
                return Err(DbError::Forbidden {
                    thread,
                    refused: vec![Refused {
                        index: 0,
                        view: ACL_VIEW.to_owned(),
                        reason: format!(
                            "{} may not compact the thread: the owner of an access-controlled thread may, and a member of a raw one",
                            self.identity().log_id()
                        ),
                        forbidden: true,
                    }],
                });
            }
            views.catch_up().await?;
            views.superseded().await?
        };
        if superseded.is_empty() {
            return Ok(Compacted::default());
        }
        let freed_bytes = self.body_bytes(thread, &superseded).await?;
        let mut events = 0;
        for (log, counters) in &superseded {
            events += counters.len() as u64;
            for chunk in ranges(counters).chunks(MAX_COMPACT_RANGES) {
                let op = views.lock().await.compact_op(*log, chunk.to_vec());
                self.write(thread, Batch::new().with(ACL_VIEW, op.encode()))
                    .await?;
            }
        }
        // Applying the operations dropped the bodies.
        tracing::info!(%thread, events, freed_bytes, "compacted");
        Ok(Compacted {
            events,
            freed_bytes,
        })
    }

    /// The bytes of the bodies of `events` this peer stores.
    async fn body_bytes(
        &self,
        thread: ThreadId,
        events: &std::collections::BTreeMap<threads_id::LogId, Vec<u64>>,
    ) -> Result<u64, DbError> {
        let store = self.node().store();
        let mut total = 0u64;
        for (log, counters) in events {
            let mut after = 0;
            loop {
                let page = store
                    .entries_after(
                        thread,
                        *log,
                        after,
                        threads_store::Page::new(1_024, 16 << 20),
                    )
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.counter;
                for stored in &page {
                    if counters.binary_search(&stored.counter).is_ok() {
                        total = total.saturating_add(stored.entry.body.data().len() as u64);
                    }
                }
                if counters.last().is_none_or(|&c| after >= c) {
                    break;
                }
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn counters_become_ranges() {
        assert_eq!(ranges(&[]), vec![]);
        assert_eq!(ranges(&[3]), vec![(3, 3)]);
        assert_eq!(
            ranges(&[1, 2, 3, 5, 7, 8, u64::MAX]),
            vec![(1, 3), (5, 5), (7, 8), (u64::MAX, u64::MAX)]
        );
    }
}
