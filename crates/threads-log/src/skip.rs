//! Skip links (Bamboo's lipmaa links) and inclusion proofs.
//!
//! Besides `prev`, record `n` links to record [`lipmaa`]`(n)` when that is not `n - 1`. The
//! links form a structure in which the path from any record down to any earlier one, taking
//! the skip link whenever it does not overshoot and `prev` otherwise, has length O(log n).
//! So a peer can prove that record `k` belongs to a log with a handful of records, checked
//! against the signed head, without the rest of the log.

use cid::Cid;

use crate::block::Block;
use crate::record::Record;
use crate::verify::{Verifier, VerifyError};

/// Bamboo's lipmaa function: the counter that record `n`'s long link points to (0 for
/// `n <= 1`).
///
/// ```
/// use threads_log::lipmaa;
/// let links: Vec<u64> = (1..=13).map(lipmaa).collect();
/// assert_eq!(links, [0, 1, 2, 1, 4, 5, 6, 4, 8, 9, 10, 8, 4]);
/// assert_eq!(lipmaa(40), 13);
/// ```
pub fn lipmaa(n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let n = u128::from(n);
    let (mut m, mut po3, mut u) = (1u128, 3u128, n);
    while m < n {
        po3 *= 3;
        m = (po3 - 1) / 2;
    }
    po3 /= 3;
    if m != n {
        while u != 0 {
            m = (po3 - 1) / 2;
            po3 /= 3;
            u %= m;
        }
        if m != po3 {
            po3 = m;
        }
    }
    (n - po3) as u64
}

/// The counter of the record that record `counter` must skip-link to, or `None` when its
/// long link would be its `prev` (or it is the genesis record).
pub fn skip_target(counter: u64) -> Option<u64> {
    let target = lipmaa(counter);
    (target >= 1 && target + 1 < counter).then_some(target)
}

/// The counters on the path from `from` down to `to` (both included), taking skip links
/// that do not overshoot `to`. Empty if `to` is 0 or greater than `from`.
pub fn proof_path(from: u64, to: u64) -> Vec<u64> {
    if to == 0 || to > from {
        return Vec::new();
    }
    let mut path = vec![from];
    let mut at = from;
    while at > to {
        at = match skip_target(at) {
            Some(target) if target >= to => target,
            _ => at - 1,
        };
        path.push(at);
    }
    path
}

/// Why an inclusion proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// A record of the proof failed to open or verify.
    #[error("proof record {index}: {source}")]
    Record {
        /// Its position in the proof.
        index: usize,
        /// Why.
        source: VerifyError,
    },
    /// The proof's records are not the path from the head to the target.
    #[error("proof record {index} is not the one the path links to (expected counter {expected})")]
    Path {
        /// Its position in the proof.
        index: usize,
        /// The counter the path needed there.
        expected: u64,
    },
    /// The proof does not start at the trusted head.
    #[error("proof does not start at the head {0}")]
    WrongHead(Cid),
    /// The proof is empty or does not reach the target counter.
    #[error("proof does not reach counter {0}")]
    Incomplete(u64),
}

/// Checks that `proof` (the record blocks on [`proof_path`] from a head down to `target`,
/// head first) is a valid chain of signed records from the head with CID `head` down to the
/// record with counter `target`, and returns that record.
pub fn verify_inclusion(
    verifier: &Verifier,
    head: &Cid,
    target: u64,
    proof: &[Block],
) -> Result<Record, ProofError> {
    let first = proof.first().ok_or(ProofError::Incomplete(target))?;
    if first.cid() != head {
        return Err(ProofError::WrongHead(*head));
    }
    let mut current = verifier
        .open_record(first)
        .map_err(|source| ProofError::Record { index: 0, source })?;
    let path = proof_path(current.counter(), target);
    if path.len() != proof.len() {
        return Err(ProofError::Incomplete(target));
    }
    for (index, (block, expected)) in proof.iter().zip(&path).enumerate().skip(1) {
        let link = if current.skip.is_some() && skip_target(current.counter) == Some(*expected) {
            current.skip
        } else if current.counter == expected + 1 {
            current.prev
        } else {
            None
        };
        if link.as_ref() != Some(block.cid()) {
            return Err(ProofError::Path {
                index,
                expected: *expected,
            });
        }
        let next = verifier
            .open_record(block)
            .map_err(|source| ProofError::Record { index, source })?;
        if next.counter != *expected {
            return Err(ProofError::Path {
                index,
                expected: *expected,
            });
        }
        current = next;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_targets_are_never_prev() {
        for n in 1..5_000u64 {
            if let Some(t) = skip_target(n) {
                assert!(t >= 1 && t + 1 < n, "{n} -> {t}");
            }
        }
        assert_eq!(skip_target(1), None);
        assert_eq!(skip_target(2), None);
        assert_eq!(skip_target(4), Some(1));
        assert_eq!(skip_target(13), Some(4));
    }

    #[test]
    fn proof_paths_are_logarithmic() {
        // The greedy path is at most about 4 log3(n) long.
        for n in (1..=20_000u64).step_by(97) {
            let bound = 4 * (64 - n.leading_zeros() as usize) + 4;
            for k in (1..=n).step_by((n as usize / 40).max(1)) {
                let path = proof_path(n, k);
                assert_eq!(path.first(), Some(&n));
                assert_eq!(path.last(), Some(&k));
                assert!(
                    path.len() <= bound,
                    "path {n}->{k} has {} steps",
                    path.len()
                );
                assert!(
                    path.windows(2)
                        .all(|w| w[1] == w[0] - 1 || skip_target(w[0]) == Some(w[1]))
                );
            }
        }
        assert!(proof_path(5, 6).is_empty());
        assert!(proof_path(5, 0).is_empty());
    }
}
