//! Equivocation as a first-class outcome: when a peer holds another branch of a log, this
//! node finds the exact counter where the branches part (a binary search over the peer's
//! records, O(log n) requests), keeps the two signed records there as a
//! [`ForkProof`], serves it to peers (`GetLogs` names the fork's counter, `GetForkProof`
//! returns the proof) and learns the proofs peers hold. A proof fixes the counter, so every
//! honest peer that holds it stops the log at the same place, whichever branch it has.

use libp2p::Multiaddr;
use threads_crypto::ThreadKey;
use threads_id::{LogId, PeerId, ThreadId};
use threads_log::{Block, ForkProof, Verifier};
use threads_store::Store;

use crate::auth::AuthProof;
use crate::message::{MAX_PAGE_BYTES, Request, Response};
use crate::node::{NetError, NetEvent, Node};

/// What a sync round compares with a peer for `thread` (`ExchangeEdges`): the digest of
/// the thread's heads and, when this node holds fork proofs, each forked log and the
/// counter it stops at. Two peers with the same heads but not the same proofs then differ,
/// so the one without pulls, and the pull names the fork and fetches its proof. A peer that
/// refused a forking push already held the first branch and made the proof from the two
/// records in hand: its heads are those of a peer it learned the branch from, which would
/// otherwise never ask it for anything. Without proofs, the heads digest alone, as before.
pub(crate) async fn edge_digest<S: Store + ?Sized>(
    store: &S,
    thread: ThreadId,
) -> Result<[u8; 32], threads_store::StoreError> {
    use sha2::Digest;
    let heads = store.heads_digest(thread).await?;
    let stops = threads_store::fork_stops(store, thread).await?;
    if stops.is_empty() {
        return Ok(heads.0);
    }
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"threads-rs/edge/v1");
    hasher.update(heads.0);
    for (log, counter) in stops {
        let log = log.to_bytes();
        hasher.update([u8::try_from(log.len()).unwrap_or(u8::MAX)]);
        hasher.update(&log);
        hasher.update(counter.to_be_bytes());
    }
    Ok(hasher.finalize().into())
}

/// Keeps a verified `proof` if it is new or forks its log earlier than the one held, and
/// tells subscribers. Returns whether it was kept.
pub(crate) async fn keep<S: Store>(
    store: &S,
    lock: &tokio::sync::Mutex<()>,
    events: &tokio::sync::broadcast::Sender<NetEvent>,
    thread: ThreadId,
    proof: &ForkProof,
) -> Result<bool, threads_store::StoreError> {
    let kept = {
        let _one_at_a_time = lock.lock().await;
        threads_store::put_fork_proof(store, thread, proof).await?
    };
    if kept {
        tracing::warn!(%thread, log = %proof.log(), counter = proof.counter(), "the log's author forked it: it stops at the fork");
        let _ = events.send(NetEvent::Forked {
            thread,
            log: proof.log(),
            counter: proof.counter(),
        });
    }
    Ok(kept)
}

/// The proof that `theirs` (a record of `log` at `counter`, its signature verified) and
/// this store's record there make, if they make one (same previous record).
pub(crate) async fn proof_in_hand<S: Store>(
    store: &S,
    thread: ThreadId,
    log: LogId,
    key: &ThreadKey,
    counter: u64,
    theirs: Block,
) -> Option<ForkProof> {
    let cid = store.record_cid(thread, log, counter).await.ok()??;
    let ours = store.get_block(&cid).await.ok()??;
    let verifier = Verifier::new(thread, log, key).ok()?;
    ForkProof::new(&verifier, ours, theirs).ok()
}

/// Whom a fork search talks to, about which log.
pub(crate) struct Contested<'a> {
    pub(crate) thread: ThreadId,
    pub(crate) log: LogId,
    pub(crate) peer: PeerId,
    pub(crate) dial: &'a [Multiaddr],
    pub(crate) proof: AuthProof,
    pub(crate) key: &'a ThreadKey,
}

impl<S: Store + 'static> Node<S> {
    /// The fork proofs this node holds for `thread`: one per forked log, at the lowest
    /// counter known. Anyone with the thread's service key checks them
    /// ([`ForkProof::verify`]).
    ///
    /// # Errors
    /// A store error.
    pub async fn fork_proofs(&self, thread: ThreadId) -> Result<Vec<ForkProof>, NetError> {
        Ok(threads_store::fork_proofs(&*self.inner.store, thread)
            .await?
            .into_values()
            .collect())
    }

    /// Keeps a verified `proof` if it is new or forks its log earlier than the one held,
    /// and tells subscribers ([`NetEvent::Forked`]). Returns whether it was kept.
    ///
    /// # Errors
    /// A store error.
    pub async fn keep_fork_proof(
        &self,
        thread: ThreadId,
        proof: &ForkProof,
    ) -> Result<bool, NetError> {
        Ok(keep(
            &*self.inner.store,
            &self.inner.forks,
            &self.inner.events,
            thread,
            proof,
        )
        .await?)
    }

    /// Asks the peer for the proof it holds of the log's fork, checks it and keeps it.
    /// A proof that does not hold is counted against the peer. Returns whether a proof was
    /// kept.
    pub(crate) async fn fetch_fork_proof(&self, at: &Contested<'_>) -> Result<bool, NetError> {
        let request = Request::GetForkProof {
            thread: at.thread,
            proof: at.proof,
            log: at.log,
        };
        let bytes = match self.request(at.peer, at.dial.to_vec(), request).await? {
            Response::ForkProof(Some(bytes)) => bytes,
            Response::ForkProof(None) => return Ok(false),
            _ => return Err(NetError::Unexpected(at.peer)),
        };
        let verifier = verifier(at)?;
        match ForkProof::from_bytes(&bytes).and_then(|p| p.verify(&verifier).map(|()| p)) {
            Ok(proof) => self.keep_fork_proof(at.thread, &proof).await,
            Err(error) => {
                tracing::warn!(peer = %at.peer, thread = %at.thread, log = %at.log, %error, "a peer's fork proof does not hold");
                self.inner
                    .health
                    .refused(at.thread, at.log, at.peer, "bad-fork-proof");
                self.inner.health.error(
                    at.thread,
                    at.log,
                    at.peer,
                    format!("bad fork proof: {error}"),
                );
                Ok(false)
            }
        }
    }

    /// The peer's record at `differs` is not this node's: finds the first counter where
    /// the two branches part, and keeps the proof. A peer whose answers do not make a proof
    /// (it sent records that are not one chain) is counted against and gets the log
    /// quarantined. Returns whether a proof was kept.
    pub(crate) async fn locate_fork(
        &self,
        at: &Contested<'_>,
        differs: u64,
    ) -> Result<bool, NetError> {
        if differs == 0 {
            return Ok(false);
        }
        let verifier = verifier(at)?;
        let mut requests = 0u32;
        let theirs = self
            .their_record(at, &verifier, differs, &mut requests)
            .await?;
        let ours = self.our_record(at, differs).await?;
        let (Some(mut theirs_hi), Some(ours_hi)) = (theirs, ours) else {
            return Ok(false);
        };
        if theirs_hi.cid() == ours_hi.cid() {
            return Ok(false);
        }
        // Below `lo` the branches are one; at `hi` they differ.
        let (mut lo, mut hi) = (0u64, differs);
        let mut ours_at_hi = ours_hi;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let (Some(theirs), Some(ours)) = (
                self.their_record(at, &verifier, mid, &mut requests).await?,
                self.our_record(at, mid).await?,
            ) else {
                return Ok(false);
            };
            if theirs.cid() == ours.cid() {
                lo = mid;
            } else {
                (hi, theirs_hi, ours_at_hi) = (mid, theirs, ours);
            }
        }
        match ForkProof::new(&verifier, ours_at_hi, theirs_hi) {
            Ok(proof) => {
                tracing::debug!(peer = %at.peer, thread = %at.thread, log = %at.log, counter = proof.counter(), requests, "fork located");
                self.keep_fork_proof(at.thread, &proof).await
            }
            Err(error) => {
                let rejection = crate::ingest::Rejection::BadForkEvidence(error);
                tracing::warn!(peer = %at.peer, thread = %at.thread, log = %at.log, %rejection, "the peer's records do not locate a fork");
                self.inner
                    .health
                    .rejected(at.thread, at.log, at.peer, &rejection);
                Ok(false)
            }
        }
    }

    /// Whether the peer's record at `counter` (before the log's fork) differs from ours.
    /// Asked once per peer counter (`remote`): a peer's log only grows. A failed request
    /// counts as no difference (the next sync round asks again).
    pub(crate) async fn differs_below_fork(
        &self,
        at: &Contested<'_>,
        remote: u64,
        counter: u64,
    ) -> bool {
        let key = (at.thread, at.log, at.peer);
        let checked = self
            .inner
            .fork_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .is_some_and(|&seen| seen == (remote, counter));
        if checked {
            return false;
        }
        let Ok(verifier) = verifier(at) else {
            return false;
        };
        let mut requests = 0;
        let (theirs, ours) = match (
            self.their_record(at, &verifier, counter, &mut requests)
                .await,
            self.our_record(at, counter).await,
        ) {
            (Ok(Some(theirs)), Ok(Some(ours))) => (theirs, ours),
            _ => return false,
        };
        if theirs.cid() != ours.cid() {
            return true;
        }
        let mut seen = self
            .inner
            .fork_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= crate::health::MAX_HEALTH_ROWS {
            seen.clear();
        }
        seen.insert(key, (remote, counter));
        false
    }

    /// [`Node::locate_fork`], its failure logged (the other logs go on syncing).
    pub(crate) async fn found_fork(&self, at: &Contested<'_>, differs: u64) -> bool {
        match self.locate_fork(at, differs).await {
            Ok(kept) => kept,
            Err(error) => {
                tracing::debug!(peer = %at.peer, thread = %at.thread, log = %at.log, %error, "fork not located");
                self.inner.health.error(
                    at.thread,
                    at.log,
                    at.peer,
                    format!("fork not located: {error}"),
                );
                false
            }
        }
    }

    /// The peer's record at `counter`, signature checked; `None` if it did not send it.
    async fn their_record(
        &self,
        at: &Contested<'_>,
        verifier: &Verifier,
        counter: u64,
        requests: &mut u32,
    ) -> Result<Option<Block>, NetError> {
        *requests += 1;
        let request = Request::GetRecords {
            thread: at.thread,
            proof: at.proof,
            log: at.log,
            after: counter - 1,
            max_entries: 1,
            max_bytes: MAX_PAGE_BYTES,
        };
        let Response::Records(page) = self.request(at.peer, at.dial.to_vec(), request).await?
        else {
            return Err(NetError::Unexpected(at.peer));
        };
        let Some(first) = page.into_iter().next() else {
            return Ok(None);
        };
        let block = Block::raw(first.record);
        Ok(verifier
            .open_record(&block)
            .ok()
            .filter(|r| r.counter() == counter)
            .map(|_| block))
    }

    /// This node's record block at `counter`.
    async fn our_record(
        &self,
        at: &Contested<'_>,
        counter: u64,
    ) -> Result<Option<Block>, NetError> {
        let store = &self.inner.store;
        let Some(cid) = store.record_cid(at.thread, at.log, counter).await? else {
            return Ok(None);
        };
        Ok(store.get_block(&cid).await?)
    }
}

fn verifier(at: &Contested<'_>) -> Result<Verifier, NetError> {
    Verifier::new(at.thread, at.log, at.key).map_err(|source| NetError::Rejected {
        peer: at.peer,
        rejection: crate::ingest::Rejection::Verify { index: 0, source },
    })
}
