//! Walking a log back from a head over any block source, detecting missing blocks, cycles
//! and forks.

use std::collections::{BTreeMap, HashMap, HashSet};

use cid::Cid;

use crate::block::{Block, BlockError};
use crate::record::Record;
use crate::verify::{Verifier, VerifyError};

/// Somewhere blocks can be looked up by CID (a store, a map, a network cache).
pub trait BlockSource {
    /// The bytes of the block named `cid`, if present. They are checked against the CID by
    /// the caller.
    fn get(&self, cid: &Cid) -> Option<Vec<u8>>;
}

impl BlockSource for HashMap<Cid, Vec<u8>> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        HashMap::get(self, cid).cloned()
    }
}

impl BlockSource for BTreeMap<Cid, Vec<u8>> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        BTreeMap::get(self, cid).cloned()
    }
}

/// Why a traversal stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraverseError {
    /// A linked record is not in the source.
    #[error("record {0} is missing")]
    Missing(Cid),
    /// A block's bytes do not match its CID.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A record failed verification.
    #[error("record {cid}: {source}")]
    Verify {
        /// The record.
        cid: Cid,
        /// Why.
        source: VerifyError,
    },
    /// The walk came back to a record it had already visited.
    #[error("cycle at record {0}")]
    Cycle(Cid),
    /// A record's counter is not one less than its successor's.
    #[error("record {cid} has counter {actual}, expected {expected}")]
    Counter {
        /// The record.
        cid: Cid,
        /// The counter its successor implies.
        expected: u64,
        /// The counter it has.
        actual: u64,
    },
    /// Two different records claim the same counter in one log: the writer forked it.
    #[error("fork at counter {counter}: {first} and {second}")]
    Fork {
        /// The contested counter.
        counter: u64,
        /// The record seen first.
        first: Cid,
        /// The other record.
        second: Cid,
    },
}

/// The records of one log by counter, to detect forks across walks.
#[derive(Debug, Default, Clone)]
pub struct LogIndex {
    by_counter: BTreeMap<u64, Cid>,
}

impl LogIndex {
    /// An empty index.
    pub fn new() -> LogIndex {
        LogIndex::default()
    }

    /// Records `record`; a different record with the same counter is a fork.
    pub fn insert(&mut self, record: &Record) -> Result<(), TraverseError> {
        match self.by_counter.get(&record.counter()) {
            Some(first) if first != record.cid() => Err(TraverseError::Fork {
                counter: record.counter(),
                first: *first,
                second: *record.cid(),
            }),
            Some(_) => Ok(()),
            None => {
                self.by_counter.insert(record.counter(), *record.cid());
                Ok(())
            }
        }
    }

    /// The CID of the record with `counter`, if indexed.
    pub fn get(&self, counter: u64) -> Option<&Cid> {
        self.by_counter.get(&counter)
    }
}

/// An iterator over a log's records from a head back to genesis, verifying each one
/// (follower level) and its link to the next. Stops after the first error.
#[derive(Debug)]
pub struct WalkBack<'a, S: ?Sized> {
    verifier: &'a Verifier,
    source: &'a S,
    index: Option<&'a mut LogIndex>,
    next: Option<(Cid, Option<u64>)>,
    seen: HashSet<Cid>,
}

impl<'a, S: BlockSource + ?Sized> WalkBack<'a, S> {
    /// Walks back from `head` over `source`.
    pub fn new(verifier: &'a Verifier, source: &'a S, head: Cid) -> WalkBack<'a, S> {
        WalkBack {
            verifier,
            source,
            index: None,
            next: Some((head, None)),
            seen: HashSet::new(),
        }
    }

    /// The same walk, also recording every record in `index` (to find forks across heads).
    pub fn with_index(mut self, index: &'a mut LogIndex) -> WalkBack<'a, S> {
        self.index = Some(index);
        self
    }

    fn step(&mut self, cid: Cid, expected: Option<u64>) -> Result<Record, TraverseError> {
        if !self.seen.insert(cid) {
            return Err(TraverseError::Cycle(cid));
        }
        let data = self.source.get(&cid).ok_or(TraverseError::Missing(cid))?;
        let block = Block::new(cid, data)?;
        let record = self
            .verifier
            .open_record(&block)
            .map_err(|source| TraverseError::Verify { cid, source })?;
        if let Some(expected) = expected
            && record.counter() != expected
        {
            return Err(TraverseError::Counter {
                cid,
                expected,
                actual: record.counter(),
            });
        }
        if let Some(index) = self.index.as_deref_mut() {
            index.insert(&record)?;
        }
        Ok(record)
    }
}

impl<S: BlockSource + ?Sized> Iterator for WalkBack<'_, S> {
    type Item = Result<Record, TraverseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (cid, expected) = self.next.take()?;
        let result = self.step(cid, expected);
        if let Ok(record) = &result
            && let Some(prev) = record.prev()
        {
            self.next = Some((*prev, Some(record.counter() - 1)));
        }
        Some(result)
    }
}
