//! The write path: checked, group-committed, applied, published.
//!
//! A write that finds nobody committing on its thread commits itself, as a group of one,
//! in its own task (a writer alone wakes no other task); writes that come while a group
//! is being committed queue, and the thread's committer, a task started when the group
//! before them ends, takes every queued write and commits them as one group, under the
//! thread's views lock, until the queue is empty:
//! 1. each gets a time from the clock and its counter in this peer's log;
//! 2. the views check the group, each write against the state as changed by the earlier
//!    ones (`AclViews::check_many`); a write with a refused operation gets
//!    [`DbError::Forbidden`] or [`DbError::Rejected`] and is left out;
//! 3. the others are built (signed, sealed), applied to the views from the batches in hand,
//!    and stored with the view rows that apply them in one store transaction
//!    (`AclViews::write_local`), then published to peers;
//! 4. each writer gets its own answer: its counter once its entry is durable and applied.
//!
//! So many tasks writing to one thread share store transactions, while one writer alone
//! pays for one; writers waiting for a group do not contend for the lock, they wait for
//! their answer. The views lock is the thread's single owner: checks, the clock, the log's
//! head and the views never race.

use std::sync::{Arc, PoisonError};

use threads_acl::{ACL_VIEW, AclViews};
use threads_crypto::ThreadKey;
use threads_id::ThreadId;
use threads_log::{Appended, Head};
use threads_log::{EventOrder, Hlc, MAX_PAYLOAD_BYTES, Writer};
use threads_store::Store;
use threads_store::ViewCommit;
use threads_views::{Batch, Begun, Landing, Refused};
use tokio::sync::oneshot;

use crate::db::{Db, Inner};
use crate::error::DbError;
use crate::queue::{Committer, Pending, Queue, ThreadWrites};

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
    /// A write dropped before its group starts is not written; once its group has
    /// started, the write is stored and applied (or refused) whether or not the future is
    /// still awaited: a group committed in the writer's own task goes on in a task of its
    /// own when that future is dropped.
    pub async fn write(&self, thread: ThreadId, batch: Batch) -> Result<u64, DbError> {
        let payload = batch.encode();
        let size = payload.len();
        if size > MAX_PAYLOAD_BYTES {
            return Err(DbError::TooLarge {
                size,
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let views = self.views(thread).await?;
        let writes = self.queue(thread);
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            batch,
            payload,
            reply,
        };
        let lead = {
            let mut queue = writes.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.committing || !queue.pending.is_empty() {
                // A committer is at work (or about to be): the write joins the next group.
                queue.pending.push(pending);
                writes.queued.notify_one();
                if std::mem::replace(&mut queue.committing, true) {
                    None
                } else {
                    Some(Vec::new())
                }
            } else {
                // Nobody commits: this write is a group of its own, led from here.
                queue.committing = true;
                Some(vec![pending])
            }
        };
        if let Some(first) = lead {
            let committer = Committer {
                writes: Arc::clone(&writes),
                finished: false,
            };
            let commit = commits(Arc::clone(&self.inner), views, thread, committer, first);
            // The commit runs in this task (no other task to wake for a writer alone);
            // dropped before it is done, it goes on in a task of its own, so a group that
            // started is committed whether or not its writers still wait.
            Finish {
                commit: Some(Box::pin(commit)),
                inner: Arc::clone(&self.inner),
            }
            .await;
        }
        // Shutting down, a committer that could not start was dropped, and with it every
        // queued write: their answers are `Interrupted`.
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

/// The committer's work: `first` (a group already taken, possibly empty), then group after
/// group of queued writes until none is left. The first group is committed where the
/// writer that found nobody committing awaits it; the rest in a task of its own, so that
/// writer is answered as soon as its own group is done.
async fn commits<S: Store + 'static>(
    inner: Arc<Inner<S>>,
    views: crate::db::ThreadViews<S>,
    thread: ThreadId,
    mut committer: Committer,
    first: Vec<Pending>,
) {
    if !first.is_empty() {
        let mut guard = views.lock().await;
        commit_group(&inner, thread, &committer.writes, &mut guard, first).await;
        drop(guard);
        // Writers that came meanwhile are left to a task of their own (the writer led
        // here is answered now); with none, the committer stops.
        if committer.queued_now().is_none() {
            return;
        }
    }
    let rest = {
        let inner = Arc::clone(&inner);
        async move { pipeline(&inner, &views, thread, &mut committer).await }
    };
    // Refused when shutting down: the committer is dropped with the writes queued.
    inner.spawn_commit(rest);
}

/// The fewest writes in each half of a group the committer splits in two.
const MIN_HALF: usize = 4;

/// Groups the committer holds the views lock for, one after the other, before it lets
/// readers waiting for the lock have their turn.
const GROUPS_PER_HOLD: usize = 8;

/// The committer's groups after the first, pipelined: while a group's store transaction
/// runs on a thread of its own, the next group is checked, signed and applied in memory
/// (the views read its rows from their cache: [`AclViews::begin_local`]); then the first is
/// landed (its writers answered) and the second's transaction starts. So signing, which a
/// log's chain makes one record after the other, and SQLite's work run side by side on two
/// cores. A group whose transaction fails fails the group built on it too.
async fn pipeline<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    views: &crate::db::ThreadViews<S>,
    thread: ThreadId,
    committer: &mut Committer,
) {
    let writes = Arc::clone(&committer.writes);
    let mut guard: Option<tokio::sync::MutexGuard<'_, AclViews<S>>> = None;
    let mut flying: Option<Flight> = None;
    let mut held = 0;
    loop {
        // With a group in flight, only what is queued now (landing it answers writers,
        // who queue again); with none, the committer lingers a little, then stops.
        let group = if flying.is_some() {
            committer.queued()
        } else {
            next_group(committer).await
        };
        let Some(group) = group else {
            // The views are locked while a group is in flight.
            match (flying.take(), guard.as_mut()) {
                (Some(mut flight), Some(views)) => {
                    // Writes queued meanwhile are prepared while it is stored: wait for
                    // the first of the two.
                    tokio::select! {
                        biased;
                        stored = &mut flight.stored => {
                            land_stored(inner, thread, &writes, views, flight.ready, stored).await;
                        }
                        () = writes.queued.notified() => flying = Some(flight),
                    }
                    continue;
                }
                _ => break,
            }
        };
        let mut group = group;
        if flying.is_none() && group.len() >= 2 * MIN_HALF {
            // Nothing in flight: half the writes now, the other half while the first is
            // stored (a group of every writer leaves none to prepare meanwhile).
            let rest = group.split_off(group.len() / 2);
            committer.put_back(rest);
        }
        let views = match &mut guard {
            Some(views) => views,
            None => guard.insert(views.lock().await),
        };
        let prepared = prepare_group(inner, thread, &writes, views, group).await;
        let landed = match flying.take() {
            Some(flight) => land_flight(inner, thread, &writes, views, flight).await,
            None => true,
        };
        if let Some(prepared) = prepared {
            if landed {
                flying = Some(launch(inner, thread, views, prepared).await);
            } else {
                // Built on a group that was not stored: its entries chain to records the
                // store does not hold.
                views.finish_local(prepared.landing, false);
                writes.forget();
                fail_all(
                    prepared.ready,
                    &DbError::Group("the group before this write's could not be stored".into()),
                );
            }
        }
        held += 1;
        if held >= GROUPS_PER_HOLD {
            if let Some(flight) = flying.take() {
                land_flight(inner, thread, &writes, views, flight).await;
            }
            guard = None;
            held = 0;
        }
        // Writers just answered write again: let them queue before the next group.
        tokio::task::yield_now().await;
    }
}

/// A group whose store transaction runs on a thread of its own.
struct Flight {
    ready: Vec<Ready>,
    stored: oneshot::Receiver<Result<(), DbError>>,
}

/// Starts the store transaction of `prepared` on a blocking thread (a task spawned from a
/// runtime thread would wait for this one to yield) and hands its outcome to the views.
async fn launch<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    thread: ThreadId,
    views: &mut AclViews<S>,
    prepared: Prepared,
) -> Flight {
    let Prepared {
        ready,
        appended,
        head,
        commit,
        landing,
    } = prepared;
    // A write is answered as soon as its transaction is done, by the thread that ran it:
    // the views hold it already (applied in memory, and every use of the views settles the
    // flight first), and its writer can queue its next write while the committer prepares
    // the next group. Writes that change the ACL are answered when they land, once the
    // views' new epochs are taken in ([`Inner::after_apply`]).
    let (late, early): (Vec<Ready>, Vec<Ready>) = ready.into_iter().partition(Ready::changes_acl);
    let early: Vec<_> = early
        .into_iter()
        .map(|r| (r.pending.reply, r.counter))
        .collect();
    let (to_views, outcome) = oneshot::channel();
    let (to_committer, stored) = oneshot::channel();
    let store = Arc::clone(inner.node.store());
    let me = inner.me.log_id();
    let runtime = tokio::runtime::Handle::current();
    // Not stored if the thread cannot start (shutting down): both senders are dropped, and
    // so are the early writers' (they are answered `Interrupted`).
    drop(tokio::task::spawn_blocking(move || {
        let result = runtime.block_on(store_group(&*store, thread, me, head, &appended, commit));
        let _ = to_views.send(result.is_ok());
        for (reply, counter) in early {
            let answer = match &result {
                Ok(()) => Ok(counter),
                Err(e) => Err(DbError::Group(e.to_string())),
            };
            let _ = reply.send(answer);
        }
        let _ = to_committer.send(result);
    }));
    views.fly(landing, outcome).await;
    Flight {
        ready: late,
        stored,
    }
}

/// Waits for a group's store transaction, lets the views take its outcome, and answers its
/// writers. Whether it was stored.
async fn land_flight<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    thread: ThreadId,
    writes: &ThreadWrites,
    views: &mut AclViews<S>,
    flight: Flight,
) -> bool {
    let stored = flight.stored.await;
    land_stored(inner, thread, writes, views, flight.ready, stored).await
}

/// [`land_flight`] once the outcome of the transaction is in hand.
async fn land_stored<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    thread: ThreadId,
    writes: &ThreadWrites,
    views: &mut AclViews<S>,
    ready: Vec<Ready>,
    stored: Result<Result<(), DbError>, oneshot::error::RecvError>,
) -> bool {
    let stored = stored.unwrap_or(Err(DbError::Interrupted(thread)));
    views.settle().await;
    let ok = stored.is_ok();
    land(inner, thread, writes, views, ready, stored).await;
    ok
}

/// A commit polled by the task that awaits it; dropped before it is done, it is finished by
/// a task of its own (the database's tracked commit tasks).
struct Finish<S: Store + 'static> {
    commit: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    inner: Arc<Inner<S>>,
}

impl<S: Store + 'static> std::future::Future for Finish<S> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let Some(commit) = self.commit.as_mut() else {
            return std::task::Poll::Ready(());
        };
        std::task::ready!(commit.as_mut().poll(cx));
        self.commit = None;
        std::task::Poll::Ready(())
    }
}

impl<S: Store + 'static> Drop for Finish<S> {
    fn drop(&mut self) {
        if let Some(commit) = self.commit.take() {
            // Refused when shutting down: the commit is dropped, and its writers are
            // answered `Interrupted`.
            self.inner.spawn_commit(commit);
        }
    }
}

/// How many times a committer that found the queue empty yields and looks again before it
/// stops: a writer answered a moment ago often writes again at once, and finding its write
/// costs less than starting a new committer task for it.
const LINGER_YIELDS: usize = 3;

/// The committer's next group: the writes queued now, or after a few yields; `None` when
/// none came (the committer stops).
async fn next_group(committer: &mut Committer) -> Option<Vec<Pending>> {
    for _ in 0..LINGER_YIELDS {
        if let Some(group) = committer.queued() {
            return Some(group);
        }
        tokio::task::yield_now().await;
    }
    committer.next_group()
}

/// One event of a write: a write is one event, or two when it mixes ACL operations with
/// others (the ACL's, sealed with the ACL key, first; then the rest with the read key), so
/// that content is never sealed with a key followers and revoked members hold.
struct Part {
    batch: Batch,
    /// The index in the write's batch of each of this part's operations.
    indices: Vec<u32>,
    key: ThreadKey,
    /// Whether this is the write's ACL part.
    acl: bool,
    time: Hlc,
    payload: Vec<u8>,
}

/// A write of the group with what it needs to be built.
struct Ready {
    pending: Pending,
    parts: Vec<Part>,
    /// Its counter in this peer's log (its last part's), once built.
    counter: u64,
}

impl Ready {
    /// Whether the write changes the ACL (its writer is answered once the views have
    /// taken the new epoch in, see [`launch`]).
    fn changes_acl(&self) -> bool {
        self.parts.iter().any(|p| p.acl)
    }
}

/// Splits `batch` into its ACL operations and the others, each with the indices of its
/// operations in `batch`, whether it is the ACL part, and its payload. A batch that does
/// not mix the two is one part, with the payload already encoded; an empty batch, none.
fn split(batch: Batch, payload: Vec<u8>) -> Vec<(Batch, Vec<u32>, bool, Vec<u8>)> {
    let is_acl = |(view, _): &(String, Vec<u8>)| view == ACL_VIEW;
    let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    if batch.ops().is_empty() {
        return Vec::new();
    }
    let acl_ops = batch.ops().iter().filter(|op| is_acl(op)).count();
    if acl_ops == 0 || acl_ops == batch.ops().len() {
        let indices = (0..batch.ops().len()).map(index).collect();
        return vec![(batch, indices, acl_ops > 0, payload)];
    }
    let mut acl = (Batch::new(), Vec::new());
    let mut content = (Batch::new(), Vec::new());
    for (i, op) in batch.ops().iter().enumerate() {
        let part = if is_acl(op) { &mut acl } else { &mut content };
        part.0.push(op.0.clone(), op.1.clone());
        part.1.push(index(i));
    }
    [(acl, true), (content, false)]
        .into_iter()
        .map(|((batch, indices), acl)| {
            let payload = batch.encode();
            (batch, indices, acl, payload)
        })
        .collect()
}

/// Checks, signs and applies `group` in memory ([`AclViews::begin_local`]): the group to
/// store, or `None` when every writer is answered already (refused, failed, or stored by
/// the views themselves).
async fn prepare_group<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    thread: ThreadId,
    writes: &ThreadWrites,
    views: &mut AclViews<S>,
    group: Vec<Pending>,
) -> Option<Prepared> {
    let me = inner.me.log_id();
    let store = inner.node.store();
    // The views first take in what arrived from peers, so that the writes are checked
    // against, and timed after, everything this peer holds.
    if !inner.is_caught_up(thread) {
        let arrivals = inner.node.arrivals();
        if views.catch_up().await.is_ok() {
            inner.caught_up(thread, arrivals);
            inner.after_apply(views).await;
        }
    }
    let mut ready: Vec<Ready> = Vec::with_capacity(group.len());
    'writes: for mut pending in group {
        // Its writer gave up before the group started: not written.
        if pending.reply.is_closed() {
            continue;
        }
        let mut parts = Vec::with_capacity(2);
        let batch = std::mem::take(&mut pending.batch);
        let payload = std::mem::take(&mut pending.payload);
        for (batch, indices, acl, payload) in split(batch, payload) {
            let key = if acl {
                views.acl_key()
            } else {
                match views.write_key() {
                    Some(key) => key,
                    None => {
                        let _ = pending.reply.send(Err(DbError::CannotWrite(thread)));
                        continue 'writes;
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
                    continue 'writes;
                }
            };
            parts.push(Part {
                batch,
                indices,
                key,
                acl,
                time,
                payload,
            });
        }
        if parts.is_empty() {
            // An empty batch: nothing to write.
            let _ = pending.reply.send(Err(DbError::Rejected {
                thread,
                refused: Vec::new(),
            }));
            continue;
        }
        ready.push(Ready {
            pending,
            parts,
            counter: 0,
        });
    }
    let known = *writes.head.lock().unwrap_or_else(PoisonError::into_inner);
    let head = match known {
        Some(head) => head,
        None => match store.head(thread, me).await {
            Ok(head) => head,
            Err(e) => {
                fail_all(ready, &DbError::from(e));
                return None;
            }
        },
    };
    let next = head.map_or(1, |h| h.counter + 1);
    // Check until every remaining write passes with the counters it will really get (a
    // refused write moves the later ones' counters down; roles can depend on counters).
    loop {
        let mut events: Vec<(EventOrder, &Batch)> = Vec::new();
        for part in ready.iter().flat_map(|r| &r.parts) {
            let order = EventOrder {
                time: part.time,
                log: me,
                counter: next + events.len() as u64,
            };
            events.push((order, &part.batch));
        }
        let verdicts = match views.check_many(&events).await {
            Ok(verdicts) => verdicts,
            Err(e) => {
                fail_all(ready, &DbError::from(e));
                return None;
            }
        };
        let mut verdicts = verdicts.into_iter();
        let mut kept = Vec::with_capacity(ready.len());
        let mut all_passed = true;
        for r in ready {
            // A write passes if every part does; refusals name the write's own indices.
            let mut refused = Vec::new();
            for part in &r.parts {
                for mut refusal in verdicts.next().unwrap_or_default() {
                    refusal.index = part
                        .indices
                        .get(refusal.index as usize)
                        .copied()
                        .unwrap_or(refusal.index);
                    refused.push(refusal);
                }
            }
            if refused.is_empty() {
                kept.push(r);
            } else {
                all_passed = false;
                refused.sort_by_key(|r| r.index);
                let _ = r.pending.reply.send(Err(refusal(thread, refused)));
            }
        }
        ready = kept;
        if all_passed {
            break;
        }
    }
    if ready.is_empty() {
        return None;
    }
    // One writer per key (the ACL key, the read key of the current epoch).
    let mut writers: Vec<(ThreadKey, Writer)> = Vec::new();
    let mut which = Vec::new();
    for part in ready.iter().flat_map(|r| &r.parts) {
        let index = match writers.iter().position(|(k, _)| k == &part.key) {
            Some(index) => index,
            None => match Writer::new(inner.me.clone(), thread, &part.key) {
                Ok(writer) => {
                    writers.push((part.key.clone(), writer));
                    writers.len() - 1
                }
                Err(e) => {
                    fail_all(ready, &DbError::Key(e.to_string()));
                    return None;
                }
            },
        };
        which.push(index);
    }
    let built: Vec<(&Writer, &[u8], Hlc)> = ready
        .iter()
        .flat_map(|r| &r.parts)
        .zip(&which)
        .map(|(part, &w)| (&writers[w].1, part.payload.as_slice(), part.time))
        .collect();
    let known = |counter: u64| writes.recent_cid(counter);
    let appended = match threads_store::build_local_batch(&**store, head, &built, known).await {
        Ok(appended) => appended,
        Err(e) => {
            fail_all(ready, &DbError::from(e));
            return None;
        }
    };
    let mut counters = appended.iter().map(|a| a.record.counter());
    for r in &mut ready {
        r.counter = counters.by_ref().take(r.parts.len()).last().unwrap_or(0);
    }
    // Applied from the batches in hand (`begin_local` stores them alone and catches up
    // whenever applying them here would not be exact).
    let events: Vec<(EventOrder, &[u8])> = appended
        .iter()
        .zip(ready.iter().flat_map(|r| &r.parts))
        .map(|(a, part)| {
            let order = EventOrder {
                time: part.time,
                log: me,
                counter: a.record.counter(),
            };
            (order, part.payload.as_slice())
        })
        .collect();
    let begun = views.begin_local(head, &appended, &events).await;
    drop(events);
    match begun {
        Ok(Begun::Commit(local)) => {
            // The next group chains from these entries.
            writes.wrote(&appended);
            let (commit, landing) = local.into_parts();
            Some(Prepared {
                ready,
                appended,
                head,
                commit,
                landing,
            })
        }
        Ok(Begun::Done(_)) => {
            // Stored by the views themselves.
            writes.wrote(&appended);
            land(inner, thread, writes, views, ready, Ok(())).await;
            None
        }
        Err(e) => {
            land(inner, thread, writes, views, ready, Err(DbError::from(e))).await;
            None
        }
    }
}

/// A group checked, signed and applied in memory, whose entries and rows are to be stored
/// in one transaction.
struct Prepared {
    ready: Vec<Ready>,
    appended: Vec<Appended>,
    /// The log's head the entries follow.
    head: Option<Head>,
    commit: ViewCommit,
    landing: Landing,
}

/// Commits `group` in this task: checked, signed, applied and stored, then answered.
async fn commit_group<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    thread: ThreadId,
    writes: &ThreadWrites,
    views: &mut AclViews<S>,
    group: Vec<Pending>,
) {
    let Some(prepared) = prepare_group(inner, thread, writes, views, group).await else {
        return;
    };
    let Prepared {
        ready,
        appended,
        head,
        commit,
        landing,
    } = prepared;
    let store = inner.node.store();
    let stored = store_group(&**store, thread, inner.me.log_id(), head, &appended, commit).await;
    views.finish_local(landing, stored.is_ok());
    land(inner, thread, writes, views, ready, stored).await;
}

/// Stores a group's entries, after `head`, with the view rows that apply them, in one
/// transaction.
async fn store_group<S: Store>(
    store: &S,
    thread: ThreadId,
    me: threads_id::LogId,
    head: Option<Head>,
    appended: &[Appended],
    commit: ViewCommit,
) -> Result<(), DbError> {
    store
        .append_with_views(thread, me, head, appended, std::slice::from_ref(&commit))
        .await?;
    Ok(())
}

/// After a group is stored (or not): the views' follow-ups, peers told, and each writer
/// answered with its counter (its last part's), or the group's error.
async fn land<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    thread: ThreadId,
    writes: &ThreadWrites,
    views: &mut AclViews<S>,
    ready: Vec<Ready>,
    stored: Result<(), DbError>,
) {
    inner.after_apply(views).await;
    if stored.is_err() {
        // The head may be stale (another writer of this log), or the entries may be
        // stored with the views behind: read it next time.
        writes.forget();
    }
    let _ = inner.changed.send(thread);
    inner.node.publish(thread, inner.me.log_id());
    match stored {
        Ok(()) => {
            for r in ready {
                let _ = r.pending.reply.send(Ok(r.counter));
            }
        }
        Err(e) => fail_all(ready, &e),
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
