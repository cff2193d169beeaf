//! Fork proofs: the evidence that a log's author signed two different records at one place.
//!
//! An honest writer signs each counter of its log once. Two records of one log, both
//! validly signed, with the same counter and the same `prev` link (or both the genesis
//! record) but different bytes, prove that the author equivocated at exactly that counter:
//! below it the two branches are one chain (the `prev` links are equal, and hash links
//! fix everything before them), from it on they differ. Records are sealed with a
//! synthetic nonce, so one signed record has exactly one valid ciphertext: a follower that
//! seals a record again does not make a second one, and cannot forge a proof.
//!
//! Anyone holding the thread's service key checks a proof ([`ForkProof::verify`]); since
//! the proof fixes the counter, every peer that learns it stops applying the log at the
//! same place, whichever branch it holds.

use threads_id::{LogId, varint};

use crate::block::Block;
use crate::record::Record;
use crate::verify::{Verifier, VerifyError};

/// Format version of [`ForkProof::to_bytes`].
const VERSION: u8 = 1;

/// The largest record block a proof may carry, in bytes (a record is a few hundred).
pub const MAX_PROOF_RECORD_BYTES: usize = 4096;

/// Why a fork proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForkError {
    /// The bytes do not decode as a fork proof.
    #[error("malformed fork proof: {0}")]
    Malformed(&'static str),
    /// The proof is about another log than the one it was checked for.
    #[error("the proof is about log {proof}, not {expected}")]
    WrongLog {
        /// The log the proof names.
        proof: LogId,
        /// The log it was checked for.
        expected: LogId,
    },
    /// One of the records does not open or verify.
    #[error("record {index} of the proof: {source}")]
    Record {
        /// 0 or 1.
        index: usize,
        /// Why.
        source: VerifyError,
    },
    /// The two records are one and the same.
    #[error("the two records are the same")]
    Same,
    /// The records are at different counters.
    #[error("the records are at counters {0} and {1}")]
    Counters(u64, u64),
    /// The records link to different previous records: they may differ because of an
    /// earlier fork, so they do not fix where the log forked.
    #[error("the records do not link to the same previous record")]
    Prev,
}

/// Two validly signed records of one log at the same counter, with the same previous
/// record, and different: the author forked its log there.
///
/// The records are kept sealed, as stored, in a canonical order (by CID), so two peers
/// that find the same fork build byte-identical proofs.
///
/// ```
/// use threads_crypto::{Identity, ThreadKey};
/// use threads_id::{ThreadId, Variant};
/// use threads_log::{ForkProof, Hlc, Verifier, Writer};
///
/// let thread = ThreadId::new(Variant::Raw);
/// let key = ThreadKey::generate();
/// let writer = Writer::new(Identity::generate(), thread, &key)?;
/// // The author signs two different first records.
/// let one = writer.append(None, None, b"one", Hlc::new(1, 0))?;
/// let two = writer.append(None, None, b"two", Hlc::new(1, 0))?;
///
/// let verifier = Verifier::new(thread, writer.log_id(), &key)?;
/// let proof = ForkProof::new(&verifier, one.entry.record, two.entry.record)?;
/// assert_eq!(proof.counter(), 1);
/// // Anyone with the service key checks it from its bytes.
/// let read = ForkProof::from_bytes(&proof.to_bytes())?;
/// read.verify(&verifier)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkProof {
    log: LogId,
    counter: u64,
    records: [Block; 2],
}

impl ForkProof {
    /// Checks that `a` and `b` (sealed record blocks of the verifier's log) prove a fork,
    /// and builds the proof.
    ///
    /// # Errors
    /// Why they do not ([`ForkError`]).
    pub fn new(verifier: &Verifier, a: Block, b: Block) -> Result<ForkProof, ForkError> {
        let mut records = [a, b];
        records.sort_by_key(|r| r.cid().to_bytes());
        let counter = check(verifier, &records)?.counter();
        Ok(ForkProof {
            log: verifier.log_id(),
            counter,
            records,
        })
    }

    /// Checks the proof with `verifier` (of the thread and log it is about).
    ///
    /// # Errors
    /// Why the proof does not hold ([`ForkError`]).
    pub fn verify(&self, verifier: &Verifier) -> Result<(), ForkError> {
        if self.log != verifier.log_id() {
            return Err(ForkError::WrongLog {
                proof: self.log,
                expected: verifier.log_id(),
            });
        }
        let record = check(verifier, &self.records)?;
        if record.counter() != self.counter {
            return Err(ForkError::Malformed("the counter is not the records'"));
        }
        Ok(())
    }

    /// The forked log.
    pub const fn log(&self) -> LogId {
        self.log
    }

    /// The counter at which the log forked: records before it are one chain.
    pub const fn counter(&self) -> u64 {
        self.counter
    }

    /// The two sealed records.
    pub const fn records(&self) -> &[Block; 2] {
        &self.records
    }

    /// The proof's bytes (docs/FORMAT.md, "Fork proofs"):
    /// `1 ‖ uvarint(len) ‖ LogId ‖ uvarint(counter) ‖ 2 × (uvarint(len) ‖ record)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let log = self.log.to_bytes();
        let mut out = Vec::with_capacity(
            16 + log.len()
                + self
                    .records
                    .iter()
                    .map(|r| r.data().len() + 4)
                    .sum::<usize>(),
        );
        out.push(VERSION);
        varint::encode(log.len() as u64, &mut out);
        out.extend_from_slice(&log);
        varint::encode(self.counter, &mut out);
        for record in &self.records {
            varint::encode(record.data().len() as u64, &mut out);
            out.extend_from_slice(record.data());
        }
        out
    }

    /// Decodes a proof. Nothing is verified but its form: call [`ForkProof::verify`].
    ///
    /// # Errors
    /// [`ForkError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<ForkProof, ForkError> {
        let (&version, rest) = bytes.split_first().ok_or(ForkError::Malformed("empty"))?;
        if version != VERSION {
            return Err(ForkError::Malformed("unknown version"));
        }
        let (log, rest) = field(rest, 128)?;
        let log = LogId::from_bytes(log).map_err(|_| ForkError::Malformed("log id"))?;
        let (counter, rest) = varint::decode(rest).map_err(|_| ForkError::Malformed("counter"))?;
        if counter == 0 {
            return Err(ForkError::Malformed("counter"));
        }
        let (a, rest) = field(rest, MAX_PROOF_RECORD_BYTES)?;
        let (b, rest) = field(rest, MAX_PROOF_RECORD_BYTES)?;
        if !rest.is_empty() {
            return Err(ForkError::Malformed("trailing bytes"));
        }
        let records = [Block::raw(a.to_vec()), Block::raw(b.to_vec())];
        if records[0].cid().to_bytes() >= records[1].cid().to_bytes() {
            return Err(ForkError::Malformed("records out of order"));
        }
        Ok(ForkProof {
            log,
            counter,
            records,
        })
    }
}

/// One length-prefixed field of at most `max` bytes.
fn field(input: &[u8], max: usize) -> Result<(&[u8], &[u8]), ForkError> {
    let (len, rest) = varint::decode(input).map_err(|_| ForkError::Malformed("length"))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= max && len <= rest.len())
        .ok_or(ForkError::Malformed("length"))?;
    Ok(rest.split_at(len))
}

/// Opens both records and checks that they prove a fork; returns the first.
fn check(verifier: &Verifier, records: &[Block; 2]) -> Result<Record, ForkError> {
    let open = |index: usize| {
        verifier
            .open_record(&records[index])
            .map_err(|source| ForkError::Record { index, source })
    };
    let (a, b) = (open(0)?, open(1)?);
    if a.cid() == b.cid() {
        return Err(ForkError::Same);
    }
    if a.counter() != b.counter() {
        return Err(ForkError::Counters(a.counter(), b.counter()));
    }
    if a.prev() != b.prev() {
        return Err(ForkError::Prev);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::writer::Writer;
    use threads_crypto::{Identity, ThreadKey};
    use threads_id::{ThreadId, Variant};

    struct World {
        key: ThreadKey,
        writer: Writer,
        verifier: Verifier,
    }

    fn world() -> World {
        let thread = ThreadId::from_parts(Variant::Raw, [5; 32]);
        let key = ThreadKey::generate();
        let writer = Writer::new(Identity::from_secret_bytes(&[6; 32]), thread, &key).unwrap();
        let verifier = Verifier::new(thread, writer.log_id(), &key).unwrap();
        World {
            key,
            writer,
            verifier,
        }
    }

    #[test]
    fn a_proof_at_a_later_counter_round_trips_and_is_canonical() {
        let w = world();
        let first = w.writer.append(None, None, b"a", Hlc::new(1, 0)).unwrap();
        let head = first.record.head();
        let x = w
            .writer
            .append(Some(&head), None, b"x", Hlc::new(2, 0))
            .unwrap();
        let y = w
            .writer
            .append(Some(&head), None, b"y", Hlc::new(2, 0))
            .unwrap();
        let one =
            ForkProof::new(&w.verifier, x.entry.record.clone(), y.entry.record.clone()).unwrap();
        let other = ForkProof::new(&w.verifier, y.entry.record, x.entry.record).unwrap();
        assert_eq!(one, other, "the order of discovery does not matter");
        assert_eq!(one.counter(), 2);
        assert_eq!(one.log(), w.writer.log_id());
        let read = ForkProof::from_bytes(&one.to_bytes()).unwrap();
        assert_eq!(read, one);
        read.verify(&w.verifier).unwrap();
    }

    #[test]
    fn records_that_do_not_prove_a_fork_are_refused() {
        let w = world();
        let first = w.writer.append(None, None, b"a", Hlc::new(1, 0)).unwrap();
        let other_first = w.writer.append(None, None, b"b", Hlc::new(1, 0)).unwrap();
        let second = w
            .writer
            .append(Some(&first.record.head()), None, b"x", Hlc::new(2, 0))
            .unwrap();
        let other_second = w
            .writer
            .append(Some(&other_first.record.head()), None, b"y", Hlc::new(2, 0))
            .unwrap();
        let r = |a: &crate::Appended| a.entry.record.clone();
        assert_eq!(
            ForkProof::new(&w.verifier, r(&first), r(&first)),
            Err(ForkError::Same)
        );
        assert!(matches!(
            ForkProof::new(&w.verifier, r(&first), r(&second)),
            Err(ForkError::Counters(1, 2) | ForkError::Counters(2, 1))
        ));
        // Different because of an earlier fork: not where the log forked.
        assert_eq!(
            ForkProof::new(&w.verifier, r(&second), r(&other_second)),
            Err(ForkError::Prev)
        );
        // Another author's record.
        let stranger = Writer::new(
            Identity::from_secret_bytes(&[7; 32]),
            w.verifier.thread_id(),
            &w.key,
        )
        .unwrap();
        let forged = stranger.append(None, None, b"b", Hlc::new(1, 0)).unwrap();
        assert!(matches!(
            ForkProof::new(&w.verifier, r(&first), r(&forged)),
            Err(ForkError::Record { .. })
        ));
    }

    #[test]
    fn a_tampered_or_misplaced_proof_is_refused() {
        let w = world();
        let one = w.writer.append(None, None, b"one", Hlc::new(1, 0)).unwrap();
        let two = w.writer.append(None, None, b"two", Hlc::new(1, 0)).unwrap();
        let proof = ForkProof::new(&w.verifier, one.entry.record, two.entry.record).unwrap();
        let bytes = proof.to_bytes();
        // Every truncation is malformed; no prefix decodes.
        for len in 0..bytes.len() {
            assert!(
                ForkProof::from_bytes(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(ForkProof::from_bytes(&trailing).is_err());
        // A flipped byte in a record: it no longer opens.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        if let Ok(decoded) = ForkProof::from_bytes(&flipped) {
            assert!(decoded.verify(&w.verifier).is_err());
        }
        // A wrong counter claimed.
        let mut lied = proof.clone();
        lied.counter = 2;
        assert!(lied.verify(&w.verifier).is_err());
        // Checked against another log.
        let other = Writer::new(
            Identity::from_secret_bytes(&[8; 32]),
            w.verifier.thread_id(),
            &w.key,
        )
        .unwrap();
        let verifier = Verifier::new(w.verifier.thread_id(), other.log_id(), &w.key).unwrap();
        assert!(matches!(
            proof.verify(&verifier),
            Err(ForkError::WrongLog { .. })
        ));
    }
}
