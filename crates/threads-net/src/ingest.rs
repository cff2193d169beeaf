//! Validating and storing entries received from a peer.
//!
//! Everything is verified before anything is stored: each record is decrypted with the
//! service key and its signature, counter, `prev` and skip links checked; the event, header
//! and body bytes are checked against their links. A batch is stored in one transaction or
//! not at all, and a rejection names its reason (see [`Rejection::code`]).

use threads_crypto::ThreadKey;
use threads_id::{LogId, ThreadId};
use threads_log::{Appended, Head, MAX_ENTRY_BYTES, Verifier, VerifyError, skip_target};
use threads_store::{AppendOutcome, Store, StoreError};

use crate::message::{MAX_PAGE_ENTRIES, WireEntry};

/// Why received entries were rejected. The store is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// An entry failed verification.
    #[error("entry {index} of the batch: {source}")]
    Verify {
        /// Its position in the batch.
        index: usize,
        /// Why.
        source: VerifyError,
    },
    /// A validly signed record differs from the one stored at its counter, or the batch's
    /// first new record does not link to the stored head: the sender holds another branch
    /// of the log (its author forked it, at `counter` or before).
    #[error("the sender's record at counter {counter} differs from this node's")]
    Fork {
        /// A counter at which the sender's record and this node's differ.
        counter: u64,
        /// The sender's record at `counter` (sealed, its signature verified), when the
        /// batch holds it: with this node's record there it may prove the fork at once
        /// ([`threads_log::ForkProof::new`]).
        record: Option<threads_log::Block>,
    },
    /// This node holds a proof that the log's author forked it at `counter`
    /// ([`threads_log::ForkProof`]): nothing from there on is taken.
    #[error("the log's author forked it at counter {counter}")]
    Forked {
        /// The fork's counter.
        counter: u64,
    },
    /// The batch starts past the next counter: entries are missing in between.
    #[error("batch starts at counter {got}, the next is {expected}")]
    Gap {
        /// The counter the log needs next.
        expected: u64,
        /// The first counter of the batch.
        got: u64,
    },
    /// The batch has more entries than a page may hold.
    #[error("batch of {0} entries is too large")]
    TooMany(usize),
    /// An entry is larger than [`MAX_ENTRY_BYTES`]: no honest writer builds one.
    #[error("entry {index} of the batch has {size} bytes, more than an entry may have")]
    EntryTooLarge {
        /// Its position in the batch.
        index: usize,
        /// Its size.
        size: usize,
    },
    /// The batch would take the log past this node's storage quota for one log
    /// ([`NetConfig::with_log_quota`](crate::NetConfig::with_log_quota)).
    #[error("the log holds {used} bytes here; the batch would pass the quota of {limit}")]
    Quota {
        /// The quota, in bytes.
        limit: u64,
        /// What the log holds here already.
        used: u64,
    },
    /// A peer's records, asked for to locate a fork, do not prove one (they are not one
    /// chain): the peer misbehaves.
    #[error("records that do not locate a fork: {0}")]
    BadForkEvidence(threads_log::ForkError),
    /// The local store failed (not the peer's fault).
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl Rejection {
    /// A short stable code for counting rejections by reason.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Verify { source, .. } => match source {
                VerifyError::Decrypt { .. } => "decrypt",
                VerifyError::Signature => "signature",
                VerifyError::Counter { .. } | VerifyError::Prev { .. } => "chain",
                VerifyError::Skip { .. } => "skip-link",
                VerifyError::Link { .. } => "link",
                _ => "malformed",
            },
            Rejection::Fork { .. } => "fork",
            Rejection::Forked { .. } => "forked",
            Rejection::BadForkEvidence(_) => "bad-fork-evidence",
            Rejection::Gap { .. } => "gap",
            Rejection::TooMany(_) => "too-many",
            Rejection::EntryTooLarge { .. } => "entry-too-large",
            Rejection::Quota { .. } => "quota",
            Rejection::Store(_) => "store",
        }
    }

    /// Whether the sending peer is to blame: not for a local store failure, nor for a
    /// branch of a forked log (the log's author signed it; the sender may be honest and
    /// hold the other branch: the fork is located and proven instead,
    /// [`threads_log::ForkProof`]).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            Rejection::Store(_) | Rejection::Fork { .. } | Rejection::Forked { .. }
        )
    }
}

/// What an accepted batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// How many entries were new.
    pub stored: usize,
    /// The log's counter afterwards.
    pub counter: u64,
    /// How many entries stored compacted got their body back from the batch.
    pub filled: usize,
}

/// Verifies `entries` (oldest first) of `log` in `thread` and stores the new ones.
///
/// Entries the store already holds are skipped if identical (a body missing here, the
/// entry was stored compacted, is put back) and a [`Rejection::Fork`] if a validly signed
/// record differs. The batch must continue the stored log without a gap. An entry without
/// a body (compacted by the sender) is taken with its record, event and header checked.
///
/// # Cancel safety
/// Dropping the future stores nothing or the whole batch (one transaction).
pub async fn ingest<S: Store>(
    store: &S,
    thread: ThreadId,
    log: LogId,
    key: &ThreadKey,
    entries: Vec<WireEntry>,
) -> Result<Ingested, Rejection> {
    if entries.len() > MAX_PAGE_ENTRIES as usize {
        return Err(Rejection::TooMany(entries.len()));
    }
    if let Some((index, entry)) = entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.len() > MAX_ENTRY_BYTES)
    {
        return Err(Rejection::EntryTooLarge {
            index,
            size: entry.len(),
        });
    }
    let verifier =
        Verifier::new(thread, log, key).map_err(|source| Rejection::Verify { index: 0, source })?;
    let stop = threads_store::fork_stops(store, thread)
        .await?
        .get(&log)
        .copied();
    let entries: Vec<_> = entries.into_iter().map(WireEntry::into_entry).collect();
    // A concurrent ingest of the same log may win the compare-and-set; then verify again
    // against the new head (the overlap is skipped), once.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let head = store.head(thread, log).await?;
        let head_counter = head.map_or(0, |h| h.counter);
        // Every signature at once (batch verification); then the chain, links and skips.
        let blocks: Vec<_> = entries.iter().map(|e| e.record.clone()).collect();
        let records = verifier
            .open_records(&blocks)
            .map_err(|(index, source)| Rejection::Verify { index, source })?;
        let mut prev = head;
        let mut fresh: Vec<Appended> = Vec::new();
        let mut filled = 0;
        for (index, (record, entry)) in records.into_iter().zip(&entries).enumerate() {
            let reject = |source| Rejection::Verify { index, source };
            let counter = record.counter();
            if counter <= head_counter && fresh.is_empty() {
                // Already stored? The same CID means the same bytes, verified back then.
                let stored = store.record_cid(thread, log, counter).await?;
                if stored.as_ref() != Some(record.cid()) {
                    return Err(Rejection::Fork {
                        counter,
                        record: Some(entry.record.clone()),
                    });
                }
                // Stored compacted and received whole: the body is put back once it
                // matches the record's links.
                if !entry.body.data().is_empty()
                    && verifier.check_entry_links(&record, entry).is_ok()
                    && store
                        .fill_body(thread, log, counter, entry.body.data())
                        .await?
                {
                    filled += 1;
                }
                continue;
            }
            if fresh.is_empty() && counter > head_counter + 1 {
                return Err(Rejection::Gap {
                    expected: head_counter + 1,
                    got: counter,
                });
            }
            if let Some(stop) = stop.filter(|&stop| counter >= stop) {
                return Err(Rejection::Forked { counter: stop });
            }
            if fresh.is_empty()
                && counter == head_counter + 1
                && let Some(head) = &head
                && record.prev() != Some(&head.cid)
            {
                // Validly signed, the next counter, another previous record: the sender's
                // record at the head's counter is not ours.
                return Err(Rejection::Fork {
                    counter: head_counter,
                    record: None,
                });
            }
            Verifier::check_successor(prev.as_ref(), &record).map_err(reject)?;
            if entry.body.data().is_empty() {
                // Compacted by the sender: the record, event and header are checked; the
                // views apply it only if an operation of the thread compacted it, and
                // otherwise wait until a peer serves its body.
                verifier
                    .check_compacted_links(&record, entry)
                    .map_err(reject)?;
            } else {
                verifier.check_entry_links(&record, entry).map_err(reject)?;
            }
            if let Some(target) = skip_target(counter) {
                let expected = match fresh.iter().find(|a| a.record.counter() == target) {
                    Some(a) => Some(*a.record.cid()),
                    None => store.record_cid(thread, log, target).await?,
                };
                if let Some(expected) = expected {
                    Verifier::check_skip(&record, &expected).map_err(reject)?;
                }
            }
            prev = Some(record.head());
            fresh.push(Appended {
                entry: entry.clone(),
                record,
            });
        }
        if fresh.is_empty() {
            return Ok(Ingested {
                stored: 0,
                counter: head_counter,
                filled,
            });
        }
        match store.append(thread, log, head, &fresh).await {
            Ok(AppendOutcome::Appended {
                head: Head { counter, .. },
            }) => {
                return Ok(Ingested {
                    stored: fresh.len(),
                    counter,
                    filled,
                });
            }
            Ok(AppendOutcome::AlreadyStored {
                head: Head { counter, .. },
            }) => {
                return Ok(Ingested {
                    stored: 0,
                    counter,
                    filled,
                });
            }
            Err(StoreError::Conflict { .. }) if attempts < 2 => continue,
            Err(e) => return Err(Rejection::Store(e)),
        }
    }
}
