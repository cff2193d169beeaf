//! This peer's own writes, applied in memory before their store transaction is done.
//!
//! [`Views::write_local`] applies a group of this peer's events and stores them with the
//! view rows in one transaction, waiting for it. A writer with more groups queued can do
//! better: [`Views::begin_local`] applies a group and hands back the commit to store,
//! whose rows are at once what later checks and applies of the views read (held in the
//! cache, which is not trimmed meanwhile); the writer stores it elsewhere
//! ([`Views::fly`]) while it checks, signs and applies the next group; then
//! [`Views::settle`] takes the outcome. If the store failed, the views reload from it
//! before their next use (every later group, built on the failed one, must be given up
//! by the writer: [`Views::finish_local`] with `stored` false). A read of a key range the cache does not hold
//! waits for the commit being stored first, since the store's rows are behind until then.
//! Everything else that uses the views (catching up, reads, rewinds) settles first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use threads_log::{Appended, EventOrder, Head};
use threads_store::{Store, ViewCommit};
use tokio::sync::oneshot;

use crate::engine::{Progress, RowChanges, Views};
use crate::error::Result;

/// How the outcome of a commit being stored reaches the views ([`Views::fly`]): `true`
/// once stored; `false`, or the sender dropped, if not.
pub type Outcome = oneshot::Receiver<bool>;

/// What [`Views::begin_local`] did.
#[derive(Debug)]
pub enum Begun {
    /// The events are applied in memory: store [`LocalCommit`]'s commit with the entries,
    /// then hand the outcome to the views.
    Commit(LocalCommit),
    /// The events could not apply from the payloads in hand: the entries were stored alone
    /// and the views caught up (nothing left to do).
    Done(Progress),
}

/// A commit of this peer's events applied in memory, to store with their entries in one
/// transaction ([`ViewBook::append_with_views`](threads_store::ViewBook::append_with_views)).
#[derive(Debug)]
pub struct LocalCommit {
    commit: ViewCommit,
    landing: Landing,
}

impl LocalCommit {
    /// The commit to store, and what the views need back with its outcome.
    pub fn into_parts(self) -> (ViewCommit, Landing) {
        (self.commit, self.landing)
    }
}

/// What the views need back once a [`LocalCommit`] is stored (or not). Dropped without
/// being handed back, it makes the views reload from the store before their next use.
#[derive(Debug)]
pub struct Landing {
    /// The rows the commit changes, for readers that follow the views.
    rows: Option<Arc<RowChanges>>,
    /// The events applied.
    pub progress: Progress,
    /// The views' count of landings lost (dropped without an outcome); `None` once handed
    /// back.
    lost: Option<Arc<AtomicUsize>>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        if let Some(lost) = self.lost.take() {
            lost.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl<S: Store + 'static> Views<S> {
    /// Applies this peer's own new entries `batch` (built after `expected`, the log's head)
    /// in memory, from `events` (their orders and payloads), and returns the commit that
    /// stores them with the rows that apply them; until its outcome is handed back
    /// ([`Views::finish_local`], or [`Views::fly`] and [`Views::settle`]), the views are
    /// ahead of the store. When the events cannot apply from the payloads in hand (as
    /// [`Views::write_local`] says), the entries are stored alone and the views catch up,
    /// once the commit being stored, if any, is done.
    ///
    /// # Errors
    /// A store error, or an error of the catch-up after the entries were stored alone.
    pub async fn begin_local(
        &mut self,
        expected: Option<Head>,
        batch: &[Appended],
        events: &[(EventOrder, &[u8])],
    ) -> Result<Begun> {
        let Some((first, _)) = events.first() else {
            return Ok(Begun::Done(Progress::default()));
        };
        let log = first.log;
        if events.len() != batch.len() || !self.applies_exactly(events).await? {
            self.settle().await;
            self.store.append(self.thread, log, expected, batch).await?;
            return Ok(Begun::Done(self.catch_up().await?));
        }
        let progress = self.apply_in_hand(events).await?;
        let (commit, changed) = self.prepare_commit().await?;
        // The changed rows go to the cache now, where the next group reads them; none is
        // evicted until every commit ahead of the store is settled.
        for (index, change) in changed.into_iter().zip(&commit.changes) {
            self.state_at_mut(index).committed(change);
        }
        let rows = (self.rows_tx.receiver_count() > 0)
            .then(|| Arc::new(crate::commit::row_changes(&commit)));
        // The rows in memory are the store's plus the commits ahead of it, this one
        // included (`prepare_commit` marked them stale: they are not, as long as the
        // writer hands back every commit's outcome, which `Landing` makes sure of).
        self.stale = false;
        self.ahead += 1;
        Ok(Begun::Commit(LocalCommit {
            commit,
            landing: Landing {
                rows,
                progress,
                lost: Some(Arc::clone(&self.lost)),
            },
        }))
    }

    /// The outcome of a [`LocalCommit`]: whether it was stored. Not stored, the views
    /// reload from the store once no commit is ahead of it any more.
    pub fn finish_local(&mut self, mut landing: Landing, stored: bool) {
        landing.lost = None;
        self.ahead = self.ahead.saturating_sub(1);
        if !stored {
            self.stale = true;
        }
        if stored && let Some(rows) = landing.rows.take() {
            let _ = self.rows_tx.send(rows);
        }
        if self.ahead == 0 && !self.stale {
            self.trim_cache();
            self.publish();
        }
    }

    /// Hands the views the outcome of a [`LocalCommit`] being stored: `done` says whether
    /// it was (a dropped sender: it was not). It is taken by [`Views::settle`], by the next
    /// use of the views other than this peer's next group, or by a range read the cache
    /// cannot answer. One at a time: a commit still flying is settled first.
    pub async fn fly(&mut self, landing: Landing, done: Outcome) {
        self.settle().await;
        self.flight = Some((landing, done));
    }

    /// Waits for the commit being stored, if any, and takes its outcome.
    pub async fn settle(&mut self) {
        if let Some((landing, done)) = self.flight.take() {
            let stored = done.await.unwrap_or(false);
            self.finish_local(landing, stored);
        }
    }
}
