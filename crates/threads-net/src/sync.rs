//! Pulling and the periodic sync: what makes replication complete.
//!
//! The guarantee (docs/ARCHITECTURE.md, "Replication completes"): every entry a peer
//! stores reaches every peer of the thread that it can reach, whatever pushes were lost,
//! reordered or refused. Pushes are the fast path (`push.rs`); this file is the repair
//! path. Every round of the periodic sync, for each peer:
//! - one `ExchangeEdges` compares every shared thread's heads digest;
//! - for a thread whose digests differ, `GetLogs` tells both counters of every log: what
//!   we lack is pulled page by page, what the peer lacks is queued for the pusher;
//! - peer lists are exchanged (`ExchangePeers`) when ours changed since we last told that
//!   peer, and every few rounds anyway, so members learn each other's addresses.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::Multiaddr;
use threads_crypto::Identity;
use threads_id::{PeerId, ThreadAddr, ThreadId};
use threads_store::{Page, Store};

use crate::auth::AuthProof;
use crate::forks::Contested;
use crate::invite::Invite;
use crate::message::{Edge, LogHead, MAX_PAGE_BYTES, MAX_PAGE_ENTRIES, Request, Response};
use crate::node::{NetError, NetEvent, Node};
use crate::peers::parse_exchanged;
use crate::serve::exchanged;

/// Peer lists are exchanged with every peer at least once in this many sync rounds.
const EXCHANGE_EVERY: u64 = 8;

/// A peer that keeps failing is retried after at most this many sync intervals.
const MAX_BACKOFF_INTERVALS: u32 = 8;

impl<S: Store + 'static> Node<S> {
    /// Pulls every log of `thread` from the peer at `addr`, page by page, verifying and
    /// storing each page before asking for the next, until the peer has nothing more.
    /// Returns the number of entries stored.
    ///
    /// A log whose entries are rejected does not stop the others: they are pulled, and the
    /// first rejection is returned at the end (every one is in the health report).
    ///
    /// # Cancel safety
    /// Each stored page is complete; dropping the future stops between pages.
    pub async fn pull(&self, addr: &ThreadAddr) -> Result<usize, NetError> {
        self.pull_peer(
            addr.thread_id(),
            addr.peer_id(),
            vec![addr.transport_addr()],
        )
        .await
    }

    /// Asks `peer` for its heads of `thread` and records them in the health report; a log
    /// we have that the peer does not list is recorded at counter 0 (the peer lacks all
    /// of it).
    pub(crate) async fn learn_heads(
        &self,
        thread: ThreadId,
        peer: PeerId,
        dial: Vec<Multiaddr>,
        proof: AuthProof,
    ) -> Result<Vec<LogHead>, NetError> {
        let Response::Logs(logs) = self
            .request(peer, dial.clone(), Request::GetLogs { thread, proof })
            .await?
        else {
            return Err(NetError::Unexpected(peer));
        };
        let health = &self.inner.health;
        for remote in &logs {
            health.peer_has(thread, remote.log, peer, remote.counter);
        }
        self.log_served(
            thread,
            peer,
            &dial,
            logs.iter().filter(|l| l.counter > 0).map(|l| l.log),
        )
        .await;
        for ours in self.inner.store.logs(thread).await? {
            if !logs.iter().any(|l| l.log == ours) {
                health.peer_has(thread, ours, peer, 0);
            }
        }
        Ok(logs)
    }

    /// Records in the log address book that `peer` (dialed at `dial`, or at its known
    /// addresses) served `logs` of `thread`; a store error is logged, not returned (the
    /// next answer writes it again).
    async fn log_served(
        &self,
        thread: ThreadId,
        peer: PeerId,
        dial: &[Multiaddr],
        logs: impl IntoIterator<Item = threads_id::LogId>,
    ) {
        let known;
        let dial = if dial.is_empty() {
            known = self.inner.peers.dial(thread, peer);
            &known[..]
        } else {
            dial
        };
        let store = &*self.inner.store;
        if let Err(error) = self
            .inner
            .log_addrs
            .served(store, thread, peer, dial, logs, self.inner.addr_ttl)
            .await
        {
            tracing::debug!(%peer, %thread, %error, "log addresses not recorded");
        }
    }

    /// [`Node::pull`] from `peer`, dialing `dial` if not connected.
    pub(crate) async fn pull_peer(
        &self,
        thread: ThreadId,
        peer: PeerId,
        dial: Vec<Multiaddr>,
    ) -> Result<usize, NetError> {
        let key = self.key(thread).await?;
        let mut proof = AuthProof::new(key.epoch_service(), &thread, &self.inner.peer, &peer);
        let logs = match self.learn_heads(thread, peer, dial.clone(), proof).await {
            // A peer that has not learned the newest epoch yet does not know its key: the
            // first service key, which every member holds, proves the thread to it (it
            // learns the epoch from what it pulls or is pushed).
            Err(error) if lagging(&error) && key.is_ring() => {
                proof = AuthProof::new(key.service(), &thread, &self.inner.peer, &peer);
                self.learn_heads(thread, peer, dial.clone(), proof).await?
            }
            other => other?,
        };
        let (store, health) = (&self.inner.store, &self.inner.health);
        let mut forks = threads_store::fork_stops(&**store, thread).await?;
        let mut stored = 0;
        let mut first_error = None;
        for remote in logs {
            let at = Contested {
                thread,
                log: remote.log,
                peer,
                dial: &dial,
                proof,
                key: &key,
            };
            if let Some(fork) = remote.fork
                && forks.get(&remote.log).is_none_or(|&ours| fork < ours)
            {
                // The peer holds a proof that the log forked, earlier than any we hold.
                match self.fetch_fork_proof(&at).await {
                    Ok(true) => {
                        forks = threads_store::fork_stops(&**store, thread).await?;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(%peer, %thread, log = %remote.log, %error, "fork proof not fetched");
                    }
                }
            }
            if health.is_quarantined(thread, remote.log, peer) {
                continue;
            }
            let stop = forks.get(&remote.log).copied();
            let ours = store.head(thread, remote.log).await?;
            let mut after = ours.map_or(0, |h| h.counter);
            // Does the peer hold another branch of what we take of the log (all of it, or
            // what is before its fork)? Compared at the last counter both have.
            let limit = stop.map_or(u64::MAX, |s| s.saturating_sub(1));
            let compared = remote.counter.min(after).min(limit);
            if compared > 0 {
                let differs = if compared == remote.counter {
                    match &remote.head {
                        Some(theirs) => store
                            .record_cid(thread, remote.log, compared)
                            .await?
                            .is_none_or(|cid| cid.to_bytes() != theirs.as_slice()),
                        None => false,
                    }
                } else if stop.is_some() {
                    // Records before a fork: one held by the peer may still differ from
                    // ours (the log forked earlier too). Asked once per peer counter.
                    self.differs_below_fork(&at, remote.counter, compared).await
                } else {
                    // We are behind: the pull below finds out.
                    false
                };
                if differs {
                    if self.found_fork(&at, compared).await {
                        forks = threads_store::fork_stops(&**store, thread).await?;
                    }
                    continue;
                }
            }
            if stop.is_some() {
                // A forked log takes nothing more.
                continue;
            }
            while after < remote.counter {
                let request = Request::GetRecords {
                    thread,
                    proof,
                    log: remote.log,
                    after,
                    max_entries: MAX_PAGE_ENTRIES,
                    max_bytes: MAX_PAGE_BYTES,
                };
                let Response::Records(page) = self.request(peer, dial.clone(), request).await?
                else {
                    return Err(NetError::Unexpected(peer));
                };
                if page.is_empty() {
                    break;
                }
                match self
                    .inner
                    .quota
                    .ingest(&**store, thread, remote.log, &key, page)
                    .await
                {
                    Ok(done) => {
                        tracing::debug!(%peer, %thread, log = %remote.log, stored = done.stored, counter = done.counter, "pulled");
                        health.accepted(thread, remote.log, peer, done.stored);
                        stored += done.stored;
                        if done.counter <= after {
                            break;
                        }
                        after = done.counter;
                        if done.stored > 0 {
                            self.inner
                                .arrivals
                                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        let _ = self.inner.events.send(NetEvent::Stored {
                            thread,
                            log: remote.log,
                            counter: after,
                        });
                    }
                    Err(crate::ingest::Rejection::Fork { counter, record }) => {
                        let rejection = crate::ingest::Rejection::Fork { counter, record };
                        // The peer holds another branch: find where it parts from ours.
                        tracing::debug!(%peer, %thread, log = %remote.log, counter, "pulled entries are another branch");
                        health.rejected(thread, remote.log, peer, &rejection);
                        if self.found_fork(&at, counter).await {
                            forks = threads_store::fork_stops(&**store, thread).await?;
                        }
                        break;
                    }
                    Err(rejection) => {
                        tracing::warn!(%peer, %thread, log = %remote.log, %rejection, "pulled entries rejected");
                        health.rejected(thread, remote.log, peer, &rejection);
                        first_error.get_or_insert(NetError::Rejected { peer, rejection });
                        break;
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(stored),
        }
    }

    /// Joins a thread from an invite: stores its keys, remembers its addresses as peers,
    /// pulls it from the first address that answers and tells that peer where this node
    /// can be reached (so the inviter can push and pull to it from now on). Returns the
    /// thread and the number of entries stored.
    pub async fn join(
        &self,
        invite: &Invite,
        me: &Identity,
    ) -> Result<(ThreadId, usize), NetError> {
        let (addrs, keys) = invite
            .open(me)
            .map_err(|e| NetError::Invite(e.to_string()))?;
        let thread = keys.thread_id();
        // A known thread keeps its key unless the invite adds the read key to a follower's:
        // an invite never replaces the service key nor takes the read key away.
        let key = keys.thread_key();
        // What the invite adds to a known key (the read key to a follower's, epochs of the
        // key ring) is kept; nothing is taken away or replaced. Under the thread's key lock:
        // views adding an epoch meanwhile do not lose it, nor this the invite's read key.
        let mut other = false;
        threads_store::update_thread_key(&*self.inner.store, thread, |known| match known {
            None => Some(key.clone()),
            Some(known) => {
                let merged = known.merged(key);
                other = merged.is_none();
                merged
            }
        })
        .await?;
        if other {
            return Err(NetError::Invite(format!(
                "the invite's service key is not the one this peer holds for {thread}"
            )));
        }
        self.watch(thread).await?;
        for addr in &addrs {
            self.add_peer(addr.clone());
        }
        self.inner.peers.save(&*self.inner.store, thread).await?;
        let mut last = None;
        for addr in &addrs {
            match self.pull(addr).await {
                Ok(stored) => {
                    if let Err(error) = self
                        .exchange_peers(thread, addr.peer_id(), vec![addr.transport_addr()])
                        .await
                    {
                        tracing::debug!(%error, "peer exchange after joining failed");
                    }
                    return Ok((thread, stored));
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e),
            None => Ok((thread, 0)),
        }
    }

    /// Asks the thread's known peers, one after another, for `log`'s entries from
    /// `counter` on, and puts back the bodies of those this node holds without one
    /// (received compacted: the views wait at such an entry until an operation of the
    /// thread compacts it or its body is back). Stops at the first peer that gives the body
    /// at `counter`. Returns how many bodies were put back.
    ///
    /// # Errors
    /// [`NetError::Refused`] if this node does not hold the thread, or a store error;
    /// peers that fail are skipped.
    pub async fn fill_bodies(
        &self,
        thread: ThreadId,
        log: threads_id::LogId,
        counter: u64,
    ) -> Result<usize, NetError> {
        let key = self.key(thread).await?;
        let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for addr in self.inner.peers.of(thread) {
            by_peer
                .entry(addr.peer_id())
                .or_default()
                .push(addr.transport_addr());
        }
        let mut filled = 0;
        for (peer, dial) in by_peer {
            let mut proofs = vec![AuthProof::new(
                key.epoch_service(),
                &thread,
                &self.inner.peer,
                &peer,
            )];
            if key.is_ring() {
                proofs.push(AuthProof::new(
                    key.service(),
                    &thread,
                    &self.inner.peer,
                    &peer,
                ));
            }
            for proof in proofs {
                let request = Request::GetRecords {
                    thread,
                    proof,
                    log,
                    after: counter.saturating_sub(1),
                    max_entries: MAX_PAGE_ENTRIES,
                    max_bytes: MAX_PAGE_BYTES,
                };
                let page = match self.request(peer, dial.clone(), request).await {
                    Ok(Response::Records(page)) => page,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::debug!(%peer, %thread, %log, %error, "bodies not fetched");
                        break;
                    }
                };
                match crate::ingest(&*self.inner.store, thread, log, &key, page).await {
                    Ok(done) => {
                        if done.filled > 0 {
                            tracing::info!(%peer, %thread, %log, counter, filled = done.filled, "bodies put back");
                        }
                        filled += done.filled;
                    }
                    Err(error) => {
                        tracing::debug!(%peer, %thread, %log, %error, "bodies refused");
                    }
                }
                // Done once the entry asked for has its body here.
                let page = Page::new(1, usize::MAX);
                let held = self
                    .inner
                    .store
                    .entries_after(thread, log, counter.saturating_sub(1), page)
                    .await?;
                if held
                    .first()
                    .is_none_or(|e| e.counter != counter || !e.entry.body.data().is_empty())
                {
                    return Ok(filled);
                }
                break;
            }
        }
        Ok(filled)
    }

    /// Tells `peer` where this node and the thread's other known peers can be reached, and
    /// learns the peers it knows. Returns how many addresses were new.
    pub(crate) async fn exchange_peers(
        &self,
        thread: ThreadId,
        peer: PeerId,
        dial: Vec<Multiaddr>,
    ) -> Result<usize, NetError> {
        let key = self.key(thread).await?;
        let addrs = exchanged(
            &self.advertised_addrs(),
            &self.inner.peers.of(thread),
            Some(peer),
        );
        let request = |service| Request::ExchangePeers {
            thread,
            proof: AuthProof::new(service, &thread, &self.inner.peer, &peer),
            addrs: addrs.clone(),
        };
        let answer = match self
            .request(peer, dial.clone(), request(key.epoch_service()))
            .await
        {
            // A peer behind on the key ring (see `pull_peer`).
            Err(error) if lagging(&error) && key.is_ring() => {
                self.request(peer, dial, request(key.service())).await
            }
            other => other,
        };
        let Response::Peers(theirs) = answer? else {
            return Err(NetError::Unexpected(peer));
        };
        let mut learned = 0;
        for addr in parse_exchanged(thread, &theirs) {
            if self.inner.peers.learn(addr, self.inner.peer, peer) {
                learned += 1;
            }
        }
        if learned > 0 {
            self.inner.peers.save(&*self.inner.store, thread).await?;
        }
        Ok(learned)
    }

    /// Queues for `peer` every log of `thread` of which we have more entries than the
    /// peer has, as last heard.
    pub(crate) async fn push_missing(
        &self,
        thread: ThreadId,
        peer: PeerId,
    ) -> Result<(), NetError> {
        let store = &self.inner.store;
        for log in store.logs(thread).await? {
            let ours = store.head(thread, log).await?.map_or(0, |h| h.counter);
            let theirs = self.inner.health.peer_counter(thread, log, peer);
            if theirs.is_some_and(|theirs| theirs < ours) {
                self.queue_push(peer, thread, log);
            }
        }
        Ok(())
    }

    /// Starts syncing with every known peer of every thread every `interval` (with ±25%
    /// jitter, so peers do not fall into step): pulls what we lack, queues pushes of what
    /// the peer lacks, exchanges peer lists. A peer that fails is retried after a delay
    /// that doubles up to 8 intervals, or as soon as it sends us a request; errors go to
    /// the health report. Stops with the node.
    pub fn start_sync(&self, interval: Duration) {
        let node = self.clone();
        self.spawn(async move {
            // (peer, thread) -> the version of our peer list last told to that peer.
            let mut told: HashMap<(PeerId, ThreadId), u64> = HashMap::new();
            let mut round: u64 = 0;
            loop {
                let jitter = 0.75 + rand::random::<f64>() * 0.5;
                tokio::select! {
                    () = node.inner.cancel.cancelled() => break,
                    () = tokio::time::sleep(interval.mul_f64(jitter)) => {}
                }
                round += 1;
                for addr in node
                    .inner
                    .peers
                    .expire(tokio::time::Instant::now(), node.inner.addr_ttl)
                {
                    tracing::info!(%addr, "a peer address that stopped answering expired");
                }
                if round.is_multiple_of(EXCHANGE_EVERY) {
                    let threads: std::collections::BTreeSet<ThreadId> =
                        node.inner.peers.all().iter().map(ThreadAddr::thread_id).collect();
                    for thread in threads {
                        match node
                            .inner
                            .log_addrs
                            .expire(&*node.inner.store, thread, node.inner.addr_ttl)
                            .await
                        {
                            Ok(0) => {}
                            Ok(deleted) => tracing::info!(%thread, deleted, "log addresses that stopped answering expired"),
                            Err(error) => tracing::debug!(%thread, %error, "log addresses not expired"),
                        }
                    }
                }
                for thread in node.inner.peers.dirty() {
                    if let Err(error) = node.inner.peers.save(&*node.inner.store, thread).await {
                        tracing::debug!(%error, "peers could not be persisted");
                    }
                }
                // Group the known addresses by peer: one ExchangeEdges per peer covers all
                // the threads shared with it.
                let mut by_peer: HashMap<PeerId, Vec<ThreadAddr>> = HashMap::new();
                for addr in node.inner.peers.all() {
                    by_peer.entry(addr.peer_id()).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    let now = tokio::time::Instant::now();
                    let waiting = node
                        .inner
                        .backoff
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&peer)
                        .is_some_and(|(_, until)| *until > now);
                    if waiting {
                        continue;
                    }
                    let result = tokio::select! {
                        () = node.inner.cancel.cancelled() => return,
                        result = node.sync_with(peer, &addrs, round, &mut told) => result,
                    };
                    let mut backoff = node.inner.backoff.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(()) => {
                            backoff.remove(&peer);
                            node.inner.peers.answered(peer);
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "sync failed");
                            node.inner.peers.failed(peer, now);
                            let failures = backoff.get(&peer).map_or(0, |(n, _)| *n) + 1;
                            let factor = 2u32
                                .saturating_pow(failures.min(6))
                                .min(MAX_BACKOFF_INTERVALS);
                            backoff.insert(peer, (failures, now + interval * factor));
                        }
                    }
                }
            }
        });
    }

    /// One sync round with `peer`: compares every shared thread in one `ExchangeEdges`
    /// request; for each thread whose heads differ, pulls what we lack and queues pushes of
    /// what the peer lacks; exchanges peer lists where due. Fails only if the peer cannot
    /// be reached; errors about one thread go to the health report and the others go on.
    async fn sync_with(
        &self,
        peer: PeerId,
        addrs: &[ThreadAddr],
        round: u64,
        told: &mut HashMap<(PeerId, ThreadId), u64>,
    ) -> Result<(), NetError> {
        let mut edges = Vec::with_capacity(addrs.len());
        let mut threads = Vec::with_capacity(addrs.len());
        // Threads whose key is a ring: a peer behind on it answers as if it did not share
        // the thread (it does not know the newest epoch's key).
        let mut rings = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let thread = addr.thread_id();
            if threads.contains(&thread) {
                continue;
            }
            // A thread this node does not hold (or cannot read now) is left out; the
            // others shared with the peer go on.
            let (Ok(key), Ok(digest)) = (
                self.key(thread).await,
                crate::forks::edge_digest(&*self.inner.store, thread).await,
            ) else {
                tracing::debug!(%peer, %thread, "thread left out of the sync round");
                continue;
            };
            edges.push(Edge {
                thread,
                proof: AuthProof::new(key.epoch_service(), &thread, &self.inner.peer, &peer),
                digest,
            });
            threads.push(thread);
            rings.push(key.is_ring());
        }
        if edges.is_empty() {
            return Ok(());
        }
        let dial: Vec<Multiaddr> = addrs.iter().map(ThreadAddr::transport_addr).collect();
        let Response::Edges(answers) = self
            .request(
                peer,
                dial.clone(),
                Request::ExchangeEdges {
                    edges: edges.clone(),
                },
            )
            .await?
        else {
            return Err(NetError::Unexpected(peer));
        };
        if answers.len() != edges.len() {
            return Err(NetError::Unexpected(peer));
        }
        for ((edge, answer), ring) in edges.iter().zip(answers).zip(rings) {
            let thread = edge.thread;
            match answer {
                Some(theirs) if theirs.0 == edge.digest => {
                    // The peer holds every log we hold, as far as we do.
                    if let Ok(logs) = self.inner.store.logs(thread).await {
                        self.log_served(thread, peer, &dial, logs).await;
                    }
                }
                // Unknown to the peer under the newest epoch's key: pulling proves the
                // first key when refused, so a peer behind on the ring is synced with.
                None if ring => {
                    if let Err(error) = self.pull_peer(thread, peer, dial.clone()).await {
                        tracing::debug!(%peer, %thread, %error, "peer does not share the thread");
                        continue;
                    }
                    if let Err(error) = self.push_missing(thread, peer).await {
                        tracing::debug!(%peer, %thread, %error, "push queueing failed");
                    }
                }
                Some(_) => {
                    // Pull what we lack (this also learns the peer's counters), then queue
                    // what the peer lacks.
                    if let Err(error) = self.pull_peer(thread, peer, dial.clone()).await {
                        tracing::debug!(%peer, %thread, %error, "pull failed");
                    }
                    if let Err(error) = self.push_missing(thread, peer).await {
                        tracing::debug!(%peer, %thread, %error, "push queueing failed");
                    }
                }
                None => {
                    tracing::debug!(%peer, %thread, "peer does not share the thread");
                    continue;
                }
            }
            let version = self.inner.peers.version(thread);
            if told.get(&(peer, thread)) != Some(&version) || round.is_multiple_of(EXCHANGE_EVERY) {
                match self.exchange_peers(thread, peer, dial.clone()).await {
                    Ok(_) => {
                        told.insert((peer, thread), version);
                    }
                    Err(error) => tracing::debug!(%peer, %thread, %error, "peer exchange failed"),
                }
            }
        }
        Ok(())
    }
}

/// Whether `error` is a peer's refusal to know the thread: the answer to a proof made with
/// a service key it does not hold (as well as to a thread it does not hold).
pub(crate) fn lagging(error: &NetError) -> bool {
    matches!(
        error,
        NetError::Refused {
            refusal: crate::message::Refusal::UnknownThread,
            ..
        }
    )
}
