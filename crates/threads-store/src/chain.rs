//! The backend-independent rules of an append and of the heads digest.

use sha2::{Digest, Sha256};
use threads_id::LogId;
use threads_log::{Appended, Cid, Head};

use crate::error::StoreError;
use crate::traits::{AppendOutcome, HeadsDigest};

/// What a backend must do with a batch, decided from the log's current head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Store the batch; the head becomes `new_head`.
    Append { new_head: Head },
    /// Nothing to do.
    Done(AppendOutcome),
}

/// Checks that `batch` is a chain starting right after `expected`, with each record
/// matching its entry's blocks.
pub(crate) fn check_chain(expected: Option<Head>, batch: &[Appended]) -> Result<Head, StoreError> {
    if batch.is_empty() {
        return Err(StoreError::NotAChain("empty batch".to_owned()));
    }
    let mut prev = expected;
    for (i, appended) in batch.iter().enumerate() {
        let record = &appended.record;
        if record.cid() != appended.entry.record.cid()
            || record.event() != appended.entry.event.cid()
        {
            return Err(StoreError::NotAChain(format!(
                "entry {i} does not match its record"
            )));
        }
        let wanted = prev.map_or(1, |h| h.counter + 1);
        if record.counter() != wanted || record.prev() != prev.as_ref().map(|h| &h.cid) {
            return Err(StoreError::NotAChain(format!(
                "entry {i} (counter {}) does not follow counter {}",
                record.counter(),
                wanted - 1
            )));
        }
        prev = Some(record.head());
    }
    prev.ok_or_else(|| unreachable!("a non-empty batch sets the head"))
}

/// Decides what to do with a chain ending in `last` that was verified against `expected`,
/// when the log's head is `current`. `stored_at` looks up the stored record CID at a
/// counter.
pub(crate) fn plan(
    log: LogId,
    expected: Option<Head>,
    current: Option<Head>,
    last: Head,
    stored_at: impl FnOnce(u64) -> Option<Cid>,
) -> Result<Plan, StoreError> {
    if current == expected {
        return Ok(Plan::Append { new_head: last });
    }
    if let Some(current) = current
        && current.counter >= last.counter
        && stored_at(last.counter) == Some(last.cid)
    {
        return Ok(Plan::Done(AppendOutcome::AlreadyStored { head: current }));
    }
    Err(StoreError::Conflict {
        log,
        expected,
        current,
    })
}

/// The digest of a thread's heads, given `(log, head)` pairs in any order.
pub(crate) fn heads_digest(mut heads: Vec<(LogId, Head)>) -> HeadsDigest {
    heads.sort_by_key(|(log, _)| *log);
    let mut hasher = Sha256::new();
    hasher.update(b"threads-rs/heads/v1");
    for (log, head) in heads {
        let log = log.to_bytes();
        hasher.update([log.len() as u8]);
        hasher.update(&log);
        hasher.update(head.counter.to_be_bytes());
        let cid = head.cid.to_bytes();
        hasher.update([cid.len() as u8]);
        hasher.update(&cid);
    }
    HeadsDigest(hasher.finalize().into())
}
