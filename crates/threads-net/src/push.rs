//! The push queue: new entries go to each peer in log order, from one worker per peer.
//!
//! A write marks its (thread, log) for every known peer of the thread and for a head
//! announcement; nothing else happens on the writer's path. Each peer's worker takes the
//! marked logs and, for each, sends the entries after the counter the peer is known to
//! have (from its last `Pushed` answer, a pull, or an announcement), oldest first, in pages.
//! Marks coalesce: a thousand writes while a push is in flight become one push of a
//! thousand entries, so a slow peer costs a set of marks, never a queue of copies, and
//! never delays a write. A push refused for a gap makes the worker ask the peer for its
//! heads and resend from there; an unreachable peer is retried with a backoff that doubles
//! up to [`MAX_RETRY`]. What a worker cannot deliver, the periodic sync (`sync.rs`) repairs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use threads_id::{LogId, PeerId, ThreadId};
use threads_log::Entry;
use threads_store::{Page, Store};
use tokio::sync::Notify;

use crate::auth::AuthProof;
use crate::message::{MAX_PAGE_BYTES, MAX_PAGE_ENTRIES, Refusal, Request, Response, WireEntry};
use crate::node::{NetError, Node};
use crate::sync::lagging;

/// The shortest time between two rounds of head announcements: announcements are hints
/// (pushes and pulls deliver entries), so a little delay costs nothing and coalesces
/// bursts.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(20);
/// The first retry of an unreachable peer comes after this long.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Retries of an unreachable peer are at most this far apart.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(10);

/// The logs marked for one worker, and its wake-up.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    logs: Mutex<BTreeSet<(ThreadId, LogId)>>,
    notify: Notify,
}

impl Marks {
    fn mark(&self, thread: ThreadId, log: LogId) {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((thread, log));
        self.notify.notify_one();
    }

    fn take(&self) -> BTreeSet<(ThreadId, LogId)> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_back(&self, thread: ThreadId, log: LogId) {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((thread, log));
    }
}

/// The marks of every peer's worker and of the announcer.
#[derive(Debug, Default)]
pub(crate) struct PushQueues {
    peers: Mutex<HashMap<PeerId, Arc<Marks>>>,
    announce: Arc<Marks>,
}

/// What one push attempt ended with.
enum Outcome {
    /// The peer has everything we had when the attempt started (or cannot be given more).
    Done,
    /// The peer could not be reached: try again later.
    Retry(NetError),
    /// The peer refused: not retried by the worker.
    Refused(NetError),
}

impl<S: Store + 'static> Node<S> {
    /// Starts the announcer (one task; head announcements of published logs, coalesced).
    pub(crate) fn start_pushing(&self) {
        let node = self.clone();
        let marks = Arc::clone(&self.inner.pushes.announce);
        self.spawn(async move {
            loop {
                tokio::select! {
                    () = node.inner.cancel.cancelled() => return,
                    () = marks.notify.notified() => {}
                }
                for (thread, log) in marks.take() {
                    let Ok(Some(head)) = node.inner.store.head(thread, log).await else {
                        continue;
                    };
                    let _ = node.announce(thread, log, head.counter).await;
                }
                // Writes published meanwhile wait for the next round: a burst of writes
                // costs one announcement (a store read and a signed gossip message) per
                // log and interval, not one per write.
                tokio::select! {
                    () = node.inner.cancel.cancelled() => return,
                    () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
                }
            }
        });
    }

    /// Publishes new entries of `log`: queues them for every known peer of `thread` (each
    /// peer's worker sends what that peer lacks, in log order) and for a head announcement.
    /// Returns at once.
    pub fn publish(&self, thread: ThreadId, log: LogId) {
        let mut peers: Vec<PeerId> = self
            .inner
            .peers
            .of(thread)
            .iter()
            .map(threads_id::ThreadAddr::peer_id)
            .collect();
        peers.sort();
        peers.dedup();
        for peer in peers {
            self.queue_push(peer, thread, log);
        }
        self.inner.pushes.announce.mark(thread, log);
    }

    /// Queues `log` of `thread` for `peer`'s worker, starting the worker if needed.
    pub(crate) fn queue_push(&self, peer: PeerId, thread: ThreadId, log: LogId) {
        let (marks, new) = {
            let mut peers = self
                .inner
                .pushes
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match peers.get(&peer) {
                Some(marks) => (Arc::clone(marks), false),
                None => {
                    let marks = Arc::new(Marks::default());
                    peers.insert(peer, Arc::clone(&marks));
                    (marks, true)
                }
            }
        };
        marks.mark(thread, log);
        if new {
            let node = self.clone();
            self.spawn(async move { node.push_worker(peer, marks).await });
        }
    }

    /// The worker of `peer`: pushes marked logs one after another, retrying unreachable
    /// ones with a backoff.
    async fn push_worker(self, peer: PeerId, marks: Arc<Marks>) {
        let mut retry = FIRST_RETRY;
        loop {
            tokio::select! {
                () = self.inner.cancel.cancelled() => return,
                () = marks.notify.notified() => {}
            }
            loop {
                let work = marks.take();
                if work.is_empty() {
                    break;
                }
                let mut failed = false;
                for (thread, log) in work {
                    match self.push_log(peer, thread, log).await {
                        Outcome::Done => {}
                        Outcome::Retry(error) => {
                            tracing::debug!(%peer, %thread, %log, %error, ?retry, "push failed, will retry");
                            self.inner
                                .health
                                .error(thread, log, peer, error.to_string());
                            marks.put_back(thread, log);
                            failed = true;
                        }
                        Outcome::Refused(error) => {
                            tracing::info!(%peer, %thread, %log, %error, "push refused");
                            self.inner
                                .health
                                .error(thread, log, peer, error.to_string());
                        }
                    }
                }
                if failed {
                    tokio::select! {
                        () = self.inner.cancel.cancelled() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                } else {
                    retry = FIRST_RETRY;
                }
            }
        }
    }

    /// Sends `peer` the entries of `log` it lacks, oldest first, in pages.
    async fn push_log(&self, peer: PeerId, thread: ThreadId, log: LogId) -> Outcome {
        let inner = &self.inner;
        if !inner.admission.admits(thread, peer) {
            return Outcome::Done;
        }
        let Ok(key) = self.key(thread).await else {
            return Outcome::Done;
        };
        let ours = match inner.store.head(thread, log).await {
            Ok(head) => head.map_or(0, |h| h.counter),
            Err(e) => return Outcome::Retry(e.into()),
        };
        // A forked log is pushed up to its fork, no further.
        let ours = match threads_store::fork_stops(&*inner.store, thread).await {
            Ok(stops) => stops
                .get(&log)
                .map_or(ours, |&stop| ours.min(stop.saturating_sub(1))),
            Err(e) => return Outcome::Retry(e.into()),
        };
        let dial = inner.peers.dial(thread, peer);
        let mut proof = AuthProof::new(key.epoch_service(), &thread, &inner.peer, &peer);
        // For a peer that has not learned the newest epoch yet: the first service key,
        // which every member holds (see `pull_peer`).
        let mut fallback = key
            .is_ring()
            .then(|| AuthProof::new(key.service(), &thread, &inner.peer, &peer));
        let mut refreshed = false;
        loop {
            let theirs = match inner.health.peer_counter(thread, log, peer) {
                Some(theirs) => theirs,
                None if !refreshed => {
                    refreshed = true;
                    if let Err(e) = self.learn_heads(thread, peer, dial.clone(), proof).await {
                        if lagging(&e)
                            && let Some(first) = fallback.take()
                        {
                            proof = first;
                            refreshed = false;
                            continue;
                        }
                        return failed(e);
                    }
                    continue;
                }
                None => 0,
            };
            if theirs >= ours {
                return Outcome::Done;
            }
            let page = Page::new(MAX_PAGE_ENTRIES as usize, MAX_PAGE_BYTES as usize);
            let entries = match inner.store.entries_after(thread, log, theirs, page).await {
                Ok(entries) => entries,
                Err(e) => return Outcome::Retry(e.into()),
            };
            // Compacted entries go without their body.
            let wire: Vec<WireEntry> = entries
                .iter()
                .map(|e| WireEntry::from_entry(&e.entry))
                .collect();
            let Some(last) = entries.get(wire.len().wrapping_sub(1)).map(|e| e.counter) else {
                return Outcome::Done;
            };
            if inner.faults.drop_push() {
                // Lost on the way, and taken as delivered.
                inner.health.peer_has(thread, log, peer, last);
                continue;
            }
            let batches = if wire.len() >= 2 && inner.faults.reorder_push() {
                let mut wire = wire;
                let later = wire.split_off(wire.len() / 2);
                vec![later, wire]
            } else {
                vec![wire]
            };
            let mut advanced = false;
            for entries in batches {
                let request = Request::PushRecords {
                    thread,
                    proof,
                    log,
                    entries,
                };
                match self.request(peer, dial.clone(), request).await {
                    Ok(Response::Pushed { counter }) => {
                        tracing::debug!(%peer, %thread, %log, counter, "pushed");
                        inner.health.peer_has(thread, log, peer, counter);
                        advanced |= counter > theirs;
                    }
                    Ok(_) => return Outcome::Done,
                    Err(NetError::Refused {
                        refusal: Refusal::Rejected(code),
                        ..
                    }) if code == "gap" => {
                        // The peer lacks entries before the batch: our idea of its counter
                        // is stale (or the batch came out of order). Ask, then resend.
                        if refreshed {
                            continue;
                        }
                        refreshed = true;
                        if let Err(e) = self.learn_heads(thread, peer, dial.clone(), proof).await {
                            return failed(e);
                        }
                        advanced = true;
                    }
                    Err(e) if lagging(&e) && fallback.is_some() => {
                        proof = fallback.take().unwrap_or(proof);
                        advanced = true;
                        break;
                    }
                    Err(e) => return failed(e),
                }
            }
            if !advanced {
                // The peer took nothing new: sending the same page again would not help.
                return Outcome::Done;
            }
        }
    }

    /// Pushes `entries` (new entries of `log`, oldest first) to every known peer of
    /// `thread` at once, waiting for each answer; failures are recorded in the health
    /// report. Returns how many peers took them. [`Node::publish`] is the queued form that
    /// writes use.
    pub async fn push(
        &self,
        thread: ThreadId,
        log: LogId,
        entries: &[Entry],
    ) -> Result<usize, NetError> {
        let key = self.key(thread).await?;
        let wire: Vec<WireEntry> = entries.iter().map(WireEntry::from_entry).collect();
        let mut ok = 0;
        for addr in self.peers_of(thread) {
            let peer = addr.peer_id();
            if !self.inner.admission.admits(thread, peer) {
                continue;
            }
            let request = |service| Request::PushRecords {
                thread,
                proof: AuthProof::new(service, &thread, &self.inner.peer, &peer),
                log,
                entries: wire.clone(),
            };
            let health = &self.inner.health;
            let dial = vec![addr.transport_addr()];
            let answer = match self
                .request(peer, dial.clone(), request(key.epoch_service()))
                .await
            {
                // A peer behind on the key ring (see `push_log`).
                Err(e) if lagging(&e) && key.is_ring() => {
                    self.request(peer, dial, request(key.service())).await
                }
                other => other,
            };
            match answer {
                Ok(Response::Pushed { counter }) => {
                    health.peer_has(thread, log, peer, counter);
                    ok += 1;
                }
                Ok(_) => health.error(thread, log, peer, "unexpected response".to_owned()),
                Err(e) => health.error(thread, log, peer, e.to_string()),
            }
        }
        Ok(ok)
    }
}

/// A failed request: retried if the peer could not be reached, dropped if it refused (a
/// peer that does not hold the thread, or rejects our entries, is not asked again by the
/// worker; the periodic sync and the health report take it from there).
fn failed(error: NetError) -> Outcome {
    match error {
        NetError::Request { .. } | NetError::Store(_) => Outcome::Retry(error),
        NetError::Refused {
            refusal: Refusal::Unavailable,
            ..
        } => Outcome::Retry(error),
        _ => Outcome::Refused(error),
    }
}
