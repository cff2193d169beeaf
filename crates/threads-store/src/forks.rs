//! The fork proofs a peer holds, per thread: at most one per log, the one with the lowest
//! counter (where the log first forked). Kept as the thread's meta value [`FORKS_META`].
//!
//! Proofs are verified before they are put here (by whoever found or received them); what
//! is read back is only decoded. Views stop applying a log at its proof's counter.

use std::collections::BTreeMap;

use threads_id::{LogId, ThreadId, varint};
use threads_log::ForkProof;

use crate::error::StoreError;
use crate::traits::{MetaBook, Result};

/// The meta key under which a thread's fork proofs are kept.
pub const FORKS_META: &str = "threads.forks";

/// The fork proofs held for `thread`, by log.
///
/// # Errors
/// A store error, or [`StoreError::Corrupt`] if the stored value does not decode.
pub async fn fork_proofs<S: MetaBook + ?Sized>(
    store: &S,
    thread: ThreadId,
) -> Result<BTreeMap<LogId, ForkProof>> {
    let Some(bytes) = store.meta(thread, FORKS_META).await? else {
        return Ok(BTreeMap::new());
    };
    decode(&bytes)
}

/// The counter at which each forked log of `thread` stops (its proof's counter).
///
/// # Errors
/// As [`fork_proofs`].
pub async fn fork_stops<S: MetaBook + ?Sized>(
    store: &S,
    thread: ThreadId,
) -> Result<BTreeMap<LogId, u64>> {
    Ok(fork_proofs(store, thread)
        .await?
        .into_iter()
        .map(|(log, proof)| (log, proof.counter()))
        .collect())
}

/// Keeps `proof` (already verified) for `thread` if it is the first for its log or forks
/// it at a lower counter than the one held. Returns whether it was kept.
///
/// Callers that may put proofs of one thread concurrently serialize the calls (this reads,
/// then writes the thread's value).
///
/// # Errors
/// As [`fork_proofs`].
pub async fn put_fork_proof<S: MetaBook + ?Sized>(
    store: &S,
    thread: ThreadId,
    proof: &ForkProof,
) -> Result<bool> {
    let mut proofs = fork_proofs(store, thread).await?;
    if proofs
        .get(&proof.log())
        .is_some_and(|held| held.counter() <= proof.counter())
    {
        return Ok(false);
    }
    proofs.insert(proof.log(), proof.clone());
    store.put_meta(thread, FORKS_META, &encode(&proofs)).await?;
    Ok(true)
}

fn encode(proofs: &BTreeMap<LogId, ForkProof>) -> Vec<u8> {
    let mut out = Vec::new();
    for proof in proofs.values() {
        let bytes = proof.to_bytes();
        varint::encode(bytes.len() as u64, &mut out);
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode(mut bytes: &[u8]) -> Result<BTreeMap<LogId, ForkProof>> {
    let corrupt = |what: String| StoreError::Corrupt(format!("fork proofs: {what}"));
    let mut proofs = BTreeMap::new();
    while !bytes.is_empty() {
        let (len, rest) = varint::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= rest.len())
            .ok_or_else(|| corrupt("truncated".to_owned()))?;
        let (proof, rest) = rest.split_at(len);
        let proof = ForkProof::from_bytes(proof).map_err(|e| corrupt(e.to_string()))?;
        proofs.insert(proof.log(), proof);
        bytes = rest;
    }
    Ok(proofs)
}
