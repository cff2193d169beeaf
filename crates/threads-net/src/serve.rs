//! Answering the sync protocol's requests from the store: the responder side, independent
//! of the transport.

use std::sync::Arc;

use threads_id::PeerId;
use threads_store::{Page, Store};

use crate::admission::Admission;
use crate::auth::AuthProof;
use crate::health::Health;
use crate::message::{
    EdgeDigest, LogHead, MAX_PAGE_BYTES, MAX_PAGE_ENTRIES, Refusal, Request, Response, WireEntry,
};
use crate::peers::{MAX_EXCHANGED_ADDRS, PeerBook, parse_exchanged};

/// How many of the newest service-key epochs a responder checks a sync proof against,
/// besides the first service key.
pub const PROVABLE_EPOCHS: usize = 4;

/// What a responder answers from: its store, health, admission rule, peer book and
/// identity.
pub(crate) struct Responder<'a, S> {
    pub(crate) store: &'a S,
    pub(crate) health: &'a Arc<Health>,
    pub(crate) admission: &'a dyn Admission,
    pub(crate) peers: &'a PeerBook,
    pub(crate) local: PeerId,
    /// This node's own addresses, with `/p2p/<local>`.
    pub(crate) addrs: &'a [libp2p::Multiaddr],
    /// The storage quota of each log.
    pub(crate) quota: &'a crate::quota::Quota,
    /// Held while a fork proof is kept.
    pub(crate) forks: &'a tokio::sync::Mutex<()>,
    /// The node's events (a fork proven by a push is announced).
    pub(crate) events: &'a tokio::sync::broadcast::Sender<crate::node::NetEvent>,
}

/// The answer of the responder to `request` from `remote`.
///
/// # Cancel safety
/// Dropping the future leaves the store as it was or with a whole pushed batch stored.
pub(crate) async fn serve<S: Store>(
    responder: &Responder<'_, S>,
    remote: PeerId,
    request: Request,
) -> Response {
    let Responder {
        store,
        health,
        admission,
        peers,
        local,
        addrs,
        quota,
        forks,
        events,
    } = *responder;
    // The peer is checked against the admission rule and the proof against the thread's
    // key; an unknown thread, a peer not admitted and a bad proof all get the same answer.
    // The proof is checked against the thread's key, then the peer against the admission
    // rule; an unknown thread, a bad proof and a peer not admitted all get the same answer.
    // A peer that proves the key but is not admitted (a revoked member) is counted.
    async fn authorized<S: Store>(
        store: &S,
        admission: &dyn Admission,
        health: &Health,
        thread: threads_id::ThreadId,
        proof: &AuthProof,
        local: PeerId,
        remote: PeerId,
    ) -> Option<threads_crypto::ThreadKey> {
        let key = store.thread_key(thread).await.ok()??;
        // A proof of the first service key or of one of the newest epochs' keys is
        // accepted: a member that has not learned the newest epoch must still sync to learn
        // it (one further behind proves the first key, which every member holds), and
        // admission by role, not the key, keeps a revoked member out. At most
        // `PROVABLE_EPOCHS + 1` checks per proof, however long the ring.
        let mut provable = key
            .epochs()
            .iter()
            .rev()
            .take(PROVABLE_EPOCHS)
            .chain(std::iter::once(key.service()));
        if !provable.any(|service| proof.verify(service, &thread, &remote, &local)) {
            return None;
        }
        if !admission.admits(thread, remote) {
            health.denied(thread, remote);
            return None;
        }
        Some(key)
    }

    match request {
        Request::GetLogs { thread, proof } => {
            if authorized(store, admission, health, thread, &proof, local, remote)
                .await
                .is_none()
            {
                return Response::Refused(Refusal::UnknownThread);
            }
            let Ok(logs) = store.logs(thread).await else {
                return Response::Refused(Refusal::Unavailable);
            };
            let Ok(forks) = threads_store::fork_stops(store, thread).await else {
                return Response::Refused(Refusal::Unavailable);
            };
            let mut heads = Vec::with_capacity(logs.len());
            for log in logs {
                let Ok(head) = store.head(thread, log).await else {
                    return Response::Refused(Refusal::Unavailable);
                };
                heads.push(LogHead {
                    log,
                    counter: head.map_or(0, |h| h.counter),
                    head: head.map(|h| serde_bytes::ByteBuf::from(h.cid.to_bytes())),
                    fork: forks.get(&log).copied(),
                });
            }
            Response::Logs(heads)
        }
        Request::GetRecords {
            thread,
            proof,
            log,
            after,
            max_entries,
            max_bytes,
        } => {
            if authorized(store, admission, health, thread, &proof, local, remote)
                .await
                .is_none()
            {
                return Response::Refused(Refusal::UnknownThread);
            }
            let page = Page::new(
                max_entries.clamp(1, MAX_PAGE_ENTRIES) as usize,
                max_bytes.clamp(1, MAX_PAGE_BYTES) as usize,
            );
            match store.entries_after(thread, log, after, page).await {
                // Compacted entries are served without their body (the receiver's views
                // apply one only if an operation of the thread compacted it).
                Ok(entries) => {
                    let wire: Vec<WireEntry> = entries
                        .iter()
                        .map(|e| WireEntry::from_entry(&e.entry))
                        .collect();
                    if !wire.is_empty() {
                        tracing::debug!(peer = %remote, %thread, %log, after, entries = wire.len(), "served records");
                    }
                    Response::Records(wire)
                }
                Err(_) => Response::Refused(Refusal::Unavailable),
            }
        }
        Request::PushRecords {
            thread,
            proof,
            log,
            entries,
        } => {
            let Some(key) =
                authorized(store, admission, health, thread, &proof, local, remote).await
            else {
                return Response::Refused(Refusal::UnknownThread);
            };
            if health.is_quarantined(thread, log, remote) {
                health.refused(thread, log, remote, "quarantined");
                return Response::Refused(Refusal::Rejected("quarantined".to_owned()));
            }
            match quota.ingest(store, thread, log, &key, entries).await {
                Ok(done) => {
                    tracing::debug!(peer = %remote, %thread, %log, stored = done.stored, counter = done.counter, "pushed entries stored");
                    health.accepted(thread, log, remote, done.stored);
                    health.peer_has_at_least(thread, log, remote, done.counter);
                    Response::Pushed {
                        counter: done.counter,
                    }
                }
                Err(rejection) => {
                    if let crate::ingest::Rejection::Fork {
                        counter,
                        record: Some(theirs),
                    } = &rejection
                        && let Some(proof) = crate::forks::proof_in_hand(
                            store,
                            thread,
                            log,
                            &key,
                            *counter,
                            theirs.clone(),
                        )
                        .await
                    {
                        // The pushed record and ours prove the fork by themselves.
                        if let Err(error) =
                            crate::forks::keep(store, forks, events, thread, &proof).await
                        {
                            tracing::warn!(%error, "a fork proof could not be kept");
                        }
                    }
                    if matches!(rejection, crate::ingest::Rejection::Gap { .. }) {
                        tracing::debug!(peer = %remote, %thread, %log, %rejection, "pushed entries not stored");
                    } else {
                        tracing::warn!(peer = %remote, %thread, %log, %rejection, "pushed entries rejected");
                    }
                    health.rejected(thread, log, remote, &rejection);
                    Response::Refused(Refusal::Rejected(rejection.code().to_owned()))
                }
            }
        }
        Request::GetForkProof { thread, proof, log } => {
            if authorized(store, admission, health, thread, &proof, local, remote)
                .await
                .is_none()
            {
                return Response::Refused(Refusal::UnknownThread);
            }
            match threads_store::fork_proofs(store, thread).await {
                Ok(proofs) => Response::ForkProof(
                    proofs
                        .get(&log)
                        .map(|p| serde_bytes::ByteBuf::from(p.to_bytes())),
                ),
                Err(_) => Response::Refused(Refusal::Unavailable),
            }
        }
        Request::ExchangeEdges { edges } => {
            if edges.len() > 10_000 {
                return Response::Refused(Refusal::TooLarge);
            }
            let mut out = Vec::with_capacity(edges.len());
            for edge in edges {
                let digest = match authorized(
                    store,
                    admission,
                    health,
                    edge.thread,
                    &edge.proof,
                    local,
                    remote,
                )
                .await
                {
                    Some(_) => crate::forks::edge_digest(store, edge.thread)
                        .await
                        .ok()
                        .map(EdgeDigest),
                    None => None,
                };
                out.push(digest);
            }
            Response::Edges(out)
        }
        Request::ExchangePeers {
            thread,
            proof,
            addrs: theirs,
        } => {
            if authorized(store, admission, health, thread, &proof, local, remote)
                .await
                .is_none()
            {
                return Response::Refused(Refusal::UnknownThread);
            }
            if theirs.len() > MAX_EXCHANGED_ADDRS {
                return Response::Refused(Refusal::TooLarge);
            }
            let mut learned = false;
            for addr in parse_exchanged(thread, &theirs) {
                learned |= peers.learn(addr, local, remote);
            }
            if learned && let Err(error) = peers.save(store, thread).await {
                tracing::debug!(%error, "peers could not be persisted");
            }
            Response::Peers(exchanged(addrs, &peers.of(thread), Some(remote)))
        }
    }
}

/// The addresses to send in an `ExchangePeers` message: `own` first, then known peers
/// other than `to`, at most [`MAX_EXCHANGED_ADDRS`] in all.
pub(crate) fn exchanged(
    own: &[libp2p::Multiaddr],
    known: &[threads_id::ThreadAddr],
    to: Option<PeerId>,
) -> Vec<serde_bytes::ByteBuf> {
    own.iter()
        .cloned()
        .chain(
            known
                .iter()
                .filter(|a| Some(a.peer_id()) != to)
                .map(|a| a.peer_addr().clone()),
        )
        .take(MAX_EXCHANGED_ADDRS)
        .map(|a| serde_bytes::ByteBuf::from(a.to_vec()))
        .collect()
}
