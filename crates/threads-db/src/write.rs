//! The write path: checked, group-committed, applied, published.
//!
//! A write queues its batch on its thread and takes the thread's views lock; whoever holds
//! the lock takes every queued write (its own, and those that arrived while the previous
//! group was being committed) and commits them as one group:
//! 1. each gets a time from the clock and its counter in this peer's log;
//! 2. the views check the group, each write against the state as changed by the earlier
//!    ones (`AclViews::check_many`); a write with a refused operation gets
//!    [`DbError::Forbidden`] or [`DbError::Rejected`] and is left out;
//! 3. the others are built (signed, sealed) and stored in one transaction
//!    (`write_local_batch`), applied to the views in one commit, published to peers;
//! 4. each writer gets its own answer: its counter once its entry is durable and applied.
//!
//! So many tasks writing to one thread share store transactions, while one writer alone
//! pays for one. The views lock is the thread's single owner: checks, the clock, the log's
//! head and the views never race.

use std::sync::{Arc, Mutex, PoisonError};

use threads_acl::{ACL_VIEW, AclViews};
use threads_crypto::ThreadKey;
use threads_id::ThreadId;
use threads_log::{EventOrder, Head, Hlc, MAX_PAYLOAD_BYTES, Writer};
use threads_store::Store;
use threads_views::{Batch, Refused};
use tokio::sync::oneshot;

use crate::db::{Db, DbError, Inner};

/// A write waiting for its group.
pub(crate) struct Pending {
    batch: Batch,
    reply: oneshot::Sender<Result<u64, DbError>>,
}

/// The writes queued on one thread, and this peer's head of its own log there as last
/// written (`None` until read: this peer is the only writer of its log, so after the first
/// read the head is known without asking the store; a compare-and-set conflict drops it).
#[derive(Default)]
pub(crate) struct ThreadWrites {
    queue: Mutex<Vec<Pending>>,
    head: Mutex<Option<Option<Head>>>,
}

/// [`ThreadWrites`], shared.
pub(crate) type Queue = Arc<ThreadWrites>;

impl<S: Store + 'static> Db<S> {
    /// Writes `batch` as one event of this peer's log (ACL batches with the ACL key, others
    /// with the current read key): checks it against the views, stores it, applies it and
    /// publishes it to peers. Returns the event's counter in this peer's log once it is
    /// stored and applied. Writes that arrive together share one store transaction (group
    /// commit); each still gets its own answer.
    ///
    /// # Errors
    /// [`DbError::TooLarge`] if the batch is larger than an entry may carry,
    /// [`DbError::Forbidden`] if access control refuses an operation,
    /// [`DbError::Rejected`] if the views would refuse one (nothing is stored in either
    /// case), [`DbError::CannotWrite`] for a follower, or a store or view error.
    ///
    /// # Cancel safety
    /// A write dropped before its group is committed is not written; once its group is
    /// being committed, it is written or not as a whole with the group.
    pub async fn write(&self, thread: ThreadId, batch: Batch) -> Result<u64, DbError> {
        let size = batch.encode().len();
        if size > MAX_PAYLOAD_BYTES {
            return Err(DbError::TooLarge {
                size,
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let views = self.views(thread).await?;
        let writes = self.queue(thread);
        let (reply, answer) = oneshot::channel();
        writes
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Pending { batch, reply });
        {
            let mut views = views.lock().await;
            let group =
                std::mem::take(&mut *writes.queue.lock().unwrap_or_else(PoisonError::into_inner));
            if !group.is_empty() {
                commit_group(&self.inner, thread, &writes, &mut views, group).await;
            }
        }
        answer.await.unwrap_or(Err(DbError::Interrupted(thread)))
    }

    fn queue(&self, thread: ThreadId) -> Queue {
        let mut queues = self
            .inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(queues.entry(thread).or_default())
    }
}

/// A write of the group with what it needs to be built.
struct Ready {
    pending: Pending,
    key: ThreadKey,
    time: Hlc,
    payload: Vec<u8>,
}

async fn commit_group<S: Store + 'static>(
    inner: &Inner<S>,
    thread: ThreadId,
    writes: &ThreadWrites,
    views: &mut AclViews<S>,
    group: Vec<Pending>,
) {
    let me = inner.me.log_id();
    let store = inner.node.store();
    let mut ready: Vec<Ready> = Vec::with_capacity(group.len());
    for pending in group {
        // Its writer gave up before the group started: not written.
        if pending.reply.is_closed() {
            continue;
        }
        let acl = pending.batch.ops().iter().any(|(view, _)| view == ACL_VIEW);
        let key = if acl {
            views.acl_key()
        } else {
            match views.write_key() {
                Some(key) => key,
                None => {
                    let _ = pending.reply.send(Err(DbError::CannotWrite(thread)));
                    continue;
                }
            }
        };
        let time = {
            let mut clock = inner.clock.lock().unwrap_or_else(PoisonError::into_inner);
            match views.last_order().map(|o| o.time) {
                Some(seen) => clock.update(seen).or_else(|_| clock.now()),
                None => clock.now(),
            }
        };
        let time = match time {
            Ok(time) => time,
            Err(e) => {
                let _ = pending.reply.send(Err(DbError::Clock(e.to_string())));
                continue;
            }
        };
        let payload = pending.batch.encode();
        ready.push(Ready {
            pending,
            key,
            time,
            payload,
        });
    }
    let known = *writes.head.lock().unwrap_or_else(PoisonError::into_inner);
    let head = match known {
        Some(head) => head,
        None => match store.head(thread, me).await {
            Ok(head) => head,
            Err(e) => return fail_all(ready, &DbError::from(e)),
        },
    };
    let next = head.map_or(1, |h| h.counter + 1);
    // Check until every remaining write passes with the counters it will really get (a
    // refused write moves the later ones' counters down; roles can depend on counters).
    loop {
        let events: Vec<(EventOrder, &Batch)> = ready
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let order = EventOrder {
                    time: r.time,
                    log: me,
                    counter: next + i as u64,
                };
                (order, &r.pending.batch)
            })
            .collect();
        let verdicts = views.check_many(&events);
        if verdicts.iter().all(Vec::is_empty) {
            break;
        }
        let mut kept = Vec::with_capacity(ready.len());
        for (r, refused) in ready.into_iter().zip(verdicts) {
            if refused.is_empty() {
                kept.push(r);
            } else {
                let _ = r.pending.reply.send(Err(refusal(thread, refused)));
            }
        }
        ready = kept;
    }
    if ready.is_empty() {
        return;
    }
    // One writer per key (the ACL key, the read key of the current epoch).
    let mut writers: Vec<(ThreadKey, Writer)> = Vec::new();
    let mut which = Vec::with_capacity(ready.len());
    for r in &ready {
        let index = match writers.iter().position(|(k, _)| k == &r.key) {
            Some(index) => index,
            None => match Writer::new(inner.me.clone(), thread, &r.key) {
                Ok(writer) => {
                    writers.push((r.key.clone(), writer));
                    writers.len() - 1
                }
                Err(e) => return fail_all(ready, &DbError::Key(e.to_string())),
            },
        };
        which.push(index);
    }
    let built: Vec<(&Writer, &[u8], Hlc)> = ready
        .iter()
        .zip(&which)
        .map(|(r, &w)| (&writers[w].1, r.payload.as_slice(), r.time))
        .collect();
    let appended = match threads_store::write_local_batch_after(&**store, head, &built).await {
        Ok(appended) => appended,
        Err(e) => {
            // The head may be stale (another writer of this log): read it next time.
            *writes.head.lock().unwrap_or_else(PoisonError::into_inner) = None;
            return fail_all(ready, &DbError::from(e));
        }
    };
    *writes.head.lock().unwrap_or_else(PoisonError::into_inner) =
        Some(appended.last().map(|a| a.record.head()));
    // Stored: acknowledged from here on. Applied next, from the batches in hand when the
    // views hold everything from peers (else with a catch-up, so that entries that arrived
    // first apply first); a view error is reported, and the entries are applied at the
    // next catch-up.
    let applied = if inner.is_caught_up(thread) {
        let events: Vec<(EventOrder, &[u8])> = appended
            .iter()
            .zip(&ready)
            .map(|(a, r)| {
                let order = EventOrder {
                    time: r.time,
                    log: me,
                    counter: a.record.counter(),
                };
                (order, r.payload.as_slice())
            })
            .collect();
        views.apply_local(&events).await
    } else {
        let arrivals = inner.node.arrivals();
        let applied = views.catch_up().await;
        if applied.is_ok() {
            inner.caught_up(thread, arrivals);
        }
        applied
    };
    let _ = inner.changed.send(thread);
    inner.node.publish(thread, me);
    match applied {
        Ok(_) => {
            for (r, a) in ready.into_iter().zip(appended) {
                let _ = r.pending.reply.send(Ok(a.record.counter()));
            }
        }
        Err(e) => fail_all(ready, &DbError::from(e)),
    }
}

fn refusal(thread: ThreadId, refused: Vec<Refused>) -> DbError {
    if refused.iter().any(|r| r.forbidden) {
        DbError::Forbidden { thread, refused }
    } else {
        DbError::Rejected { thread, refused }
    }
}

/// Answers every write of the group with `error`, in words ([`DbError::Group`]): the
/// writes of a group fail together, and errors are not `Clone`.
fn fail_all(ready: Vec<Ready>, error: &DbError) {
    for r in ready {
        let _ = r.pending.reply.send(Err(DbError::Group(error.to_string())));
    }
}
