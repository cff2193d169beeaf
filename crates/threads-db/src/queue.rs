//! The writes queued on a thread, and what its committer remembers of this peer's log there
//! (`write.rs` commits them).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use threads_log::{Appended, Cid, Head};
use threads_views::Batch;
use tokio::sync::oneshot;

use crate::error::DbError;

/// A write waiting for its group.
pub(crate) struct Pending {
    pub(crate) batch: Batch,
    /// The batch encoded (once, when the write is queued).
    pub(crate) payload: Vec<u8>,
    pub(crate) reply: oneshot::Sender<Result<u64, DbError>>,
}

/// The writes queued on one thread, and this peer's head of its own log there as last
/// written (`None` until read: this peer is the only writer of its log, so after the first
/// read the head is known without asking the store; a compare-and-set conflict drops it).
#[derive(Default)]
pub(crate) struct ThreadWrites {
    pub(crate) queue: Mutex<WriteQueue>,
    pub(crate) head: Mutex<Option<Option<Head>>>,
    /// Told when a write joins the queue of a committer at work.
    pub(crate) queued: tokio::sync::Notify,
    /// The record CIDs of this peer's latest entries in the log, newest last (skip links
    /// point a few records back, so most are found here instead of in the store).
    recent: Mutex<VecDeque<(u64, Cid)>>,
}

/// The writes waiting for a group, and whether a committer is at work.
#[derive(Default)]
pub(crate) struct WriteQueue {
    pub(crate) pending: Vec<Pending>,
    pub(crate) committing: bool,
}

/// The task that commits a thread's queued writes, group after group, until none is left.
/// Dropped (done, panicked or cancelled at shutdown), it lets the next writer start a new
/// one, and drops the writes still queued: their writers get [`DbError::Interrupted`].
pub(crate) struct Committer {
    pub(crate) writes: Queue,
    /// The queue was found empty and handed back: a later committer owns it.
    pub(crate) finished: bool,
}

impl Committer {
    /// Every write queued now, if any (the committer goes on either way).
    pub(crate) fn queued(&mut self) -> Option<Vec<Pending>> {
        let mut queue = self
            .writes
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (!queue.pending.is_empty()).then(|| std::mem::take(&mut queue.pending))
    }

    /// Whether writes are queued now; `None` when there are none (then this committer
    /// stops, atomically with the check).
    /// Puts `writes`, taken from the queue, back in front of it.
    pub(crate) fn put_back(&mut self, mut writes: Vec<Pending>) {
        let mut queue = self
            .writes
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        writes.append(&mut queue.pending);
        queue.pending = writes;
    }

    pub(crate) fn queued_now(&mut self) -> Option<()> {
        self.take_or_stop(|_| ())
    }

    /// The next group: every write queued now; `None` when there is none (then this
    /// committer stops, atomically with the check).
    pub(crate) fn next_group(&mut self) -> Option<Vec<Pending>> {
        self.take_or_stop(std::mem::take)
    }

    /// `take` of the queued writes if there are any; else this committer stops (the
    /// queue's next writer starts another), under the same lock as the check.
    fn take_or_stop<T>(&mut self, take: impl FnOnce(&mut Vec<Pending>) -> T) -> Option<T> {
        let mut queue = self
            .writes
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if queue.pending.is_empty() {
            queue.committing = false;
            self.finished = true;
            return None;
        }
        Some(take(&mut queue.pending))
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut queue = self
            .writes
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queue.committing = false;
        queue.pending.clear();
    }
}

/// How many of its latest record CIDs a log's writer remembers.
const RECENT_CIDS: usize = 64;

impl ThreadWrites {
    pub(crate) fn recent_cid(&self, counter: u64) -> Option<Cid> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = recent.back()?.0;
        let back = usize::try_from(newest.checked_sub(counter)?).ok()?;
        let index = recent.len().checked_sub(1 + back)?;
        recent
            .get(index)
            .filter(|(c, _)| *c == counter)
            .map(|(_, cid)| *cid)
    }

    /// Records that `appended` are stored: the log's new head and latest CIDs.
    pub(crate) fn wrote(&self, appended: &[Appended]) {
        let Some(last) = appended.last() else { return };
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = Some(Some(last.record.head()));
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        for a in appended {
            if recent
                .back()
                .is_some_and(|(c, _)| c + 1 != a.record.counter())
            {
                recent.clear();
            }
            recent.push_back((a.record.counter(), *a.record.cid()));
            if recent.len() > RECENT_CIDS {
                recent.pop_front();
            }
        }
    }

    /// Forgets the head and CIDs (read from the store next time).
    pub(crate) fn forget(&self) {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// [`ThreadWrites`], shared.
pub(crate) type Queue = Arc<ThreadWrites>;
