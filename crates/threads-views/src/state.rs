//! A view's state: ordered rows of bytes that a reducer reads and changes.
//!
//! The rows live in the store. A [`State`] holds the changes not committed yet (an
//! overlay) and a cache of committed rows and key ranges, bounded by a byte budget. A
//! reducer reads synchronously: a read the cache cannot answer is recorded as a *miss* and
//! answered as absent; the engine then throws the run's changes away, fetches every missed
//! key and range from the store in one round trip each, and runs the reducer again. A
//! reducer is a pure function of the state and the event, so running it again is safe, and
//! the run that counts is one that missed nothing: it saw the state exactly as committed
//! plus this commit's changes.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Bytes counted per cached row on top of its key and value.
const ROW_OVERHEAD: usize = 48;
/// Rows fetched at least when a range read misses.
const RANGE_CHUNK: usize = 128;

/// An overlay change before it was made: the overlay's entry for the key (`None`: the
/// key was not in the overlay).
pub(crate) type Logged = (Vec<u8>, Option<Option<Vec<u8>>>);

/// A row: key and value.
pub(crate) type Row = (Vec<u8>, Vec<u8>);

/// What a read could not answer from memory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Miss {
    /// A key's committed value.
    Key(Vec<u8>),
    /// More committed rows of the range `[from, to)` than the cache holds, read in key
    /// order or (`true`) from the end.
    Range(Vec<u8>, Option<Vec<u8>>, bool),
}

/// A range read: its bounds and whether it is read from the end.
type RangeId = (Vec<u8>, Option<Vec<u8>>, bool);

/// The committed rows of a range read so far, in the order read (descending for a range
/// read from the end).
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub(crate) rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether `rows` are all the committed rows of the range.
    pub(crate) complete: bool,
}

#[derive(Debug, Default)]
struct Base {
    /// `rows` holds every committed row (a state without a store, or rows written since a
    /// rebuild and not evicted yet): a key not in it is absent.
    complete: bool,
    /// Committed values known (`None`: known to be absent).
    rows: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Committed rows of ranges, by the range's bounds and direction.
    ranges: HashMap<RangeId, Chunk>,
    bytes: usize,
    misses: Vec<Miss>,
}

/// The rows of one view, ordered by key bytes. A reducer reads and changes them while it
/// applies an event; the engine persists exactly the rows that changed, with the cursor,
/// in one transaction.
///
/// A `State` made by [`State::new`] stands alone (no store behind it): every read is
/// answered from memory, which is how reducers and queries are tested.
#[derive(Debug)]
pub struct State {
    /// Changes not committed yet (`None`: deleted).
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    base: Mutex<Base>,
    /// The overlay changes of the event being applied, for rolling back.
    log: Option<Vec<Logged>>,
    /// The committed rows are to be deleted by the next commit (a rebuild).
    reset: bool,
    /// Bytes written to the overlay since the last commit (an upper bound).
    written: usize,
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

impl State {
    /// An empty state with no store behind it.
    pub fn new() -> State {
        State::with_base(true)
    }

    /// A state over committed rows in the store that it knows nothing of yet.
    pub(crate) fn stored() -> State {
        State::with_base(false)
    }

    fn with_base(complete: bool) -> State {
        State {
            overlay: BTreeMap::new(),
            base: Mutex::new(Base {
                complete,
                ..Base::default()
            }),
            log: None,
            reset: false,
            written: 0,
        }
    }

    fn base(&self) -> MutexGuard<'_, Base> {
        self.base.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(value) = self.overlay.get(key) {
            return value.clone();
        }
        let mut base = self.base();
        if let Some(value) = base.rows.get(key) {
            return value.clone();
        }
        if !base.complete {
            base.misses.push(Miss::Key(key.to_vec()));
        }
        None
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let key = key.into();
        let value = value.into();
        self.written += key.len() + value.len() + ROW_OVERHEAD;
        let before = self.overlay.insert(key.clone(), Some(value));
        if let Some(log) = &mut self.log {
            log.push((key, before));
        }
    }

    /// Deletes `key` (nothing happens if it is absent).
    pub fn delete(&mut self, key: &[u8]) {
        self.written += key.len() + ROW_OVERHEAD;
        let before = self.overlay.insert(key.to_vec(), None);
        if let Some(log) = &mut self.log {
            log.push((key.to_vec(), before));
        }
    }

    /// Every row, in key order.
    pub fn iter(&self) -> Rows<'_> {
        self.rows(Vec::new(), None, false)
    }

    /// The rows whose key starts with `prefix`, in key order.
    pub fn prefix(&self, prefix: &[u8]) -> Rows<'_> {
        self.rows(prefix.to_vec(), successor(prefix), false)
    }

    /// The rows with keys in `[from, to)`, in key order.
    pub fn range(&self, from: &[u8], to: &[u8]) -> Rows<'_> {
        self.rows(from.to_vec(), Some(to.to_vec()), false)
    }

    /// The rows with keys in `[from, to)`, greatest key first (a store reads them from the
    /// end of the range: the first rows cost what the first rows of [`State::range`] do).
    pub fn range_rev(&self, from: &[u8], to: &[u8]) -> Rows<'_> {
        self.rows(from.to_vec(), Some(to.to_vec()), true)
    }

    /// A SHA-256 digest of every row: equal digests mean byte-identical states. It reads
    /// every row (inside [`crate::Views::read`], through the store).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"threads-rs/view-state/v1");
        for (k, v) in self.iter() {
            hasher.update((k.len() as u64).to_be_bytes());
            hasher.update(&k);
            hasher.update((v.len() as u64).to_be_bytes());
            hasher.update(&v);
        }
        hasher.finalize().into()
    }

    fn rows(&self, from: Vec<u8>, to: Option<Vec<u8>>, rev: bool) -> Rows<'_> {
        Rows {
            state: self,
            from,
            to,
            rev,
            last: None,
            done: false,
        }
    }

    /// The first committed row of `[from, to)` after `last` (from `from` when `None`), or
    /// with `rev` the greatest one before `last` (from the end when `None`). `Err` if the
    /// cache cannot tell (the miss is recorded).
    fn committed_next(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        last: Option<&[u8]>,
        rev: bool,
    ) -> Result<Option<Row>, ()> {
        let mut base = self.base();
        let (start, end) = bounds(from, to, last, rev);
        if base.complete {
            if empty_range(start, end) {
                return Ok(None);
            }
            let pick = |(k, v): (&Vec<u8>, &Option<Vec<u8>>)| Some((k.clone(), v.clone()?));
            let mut within = base.rows.range::<[u8], _>((start, end));
            return Ok(if rev {
                within.rev().find_map(pick)
            } else {
                within.find_map(pick)
            });
        }
        let id = (from.to_vec(), to.map(<[u8]>::to_vec), rev);
        let Some(chunk) = base.ranges.get(&id) else {
            base.misses.push(Miss::Range(id.0, id.1, id.2));
            return Err(());
        };
        let at = match last {
            Some(last) if rev => chunk.rows.partition_point(|(k, _)| k.as_slice() >= last),
            Some(last) => chunk.rows.partition_point(|(k, _)| k.as_slice() <= last),
            None => 0,
        };
        match chunk.rows.get(at) {
            Some(row) => Ok(Some(row.clone())),
            None if chunk.complete => Ok(None),
            None => {
                base.misses.push(Miss::Range(id.0, id.1, id.2));
                Err(())
            }
        }
    }

    // ----- the engine's side -----

    /// Starts logging overlay changes (an event is being applied or checked).
    pub(crate) fn begin(&mut self) {
        self.log = Some(Vec::new());
    }

    /// A point of the log that [`State::roll_back_to`] can return to.
    pub(crate) fn savepoint(&self) -> usize {
        self.log.as_ref().map_or(0, Vec::len)
    }

    /// Undoes the overlay changes made since `point`, keeping the log open.
    pub(crate) fn roll_back_to(&mut self, point: usize) {
        if let Some(log) = &mut self.log {
            while log.len() > point {
                let Some((key, before)) = log.pop() else {
                    break;
                };
                match before {
                    Some(entry) => self.overlay.insert(key, entry),
                    None => self.overlay.remove(&key),
                };
            }
        }
    }

    /// Stops logging and returns the log: what the event changed, and how the overlay was
    /// before.
    pub(crate) fn end(&mut self) -> Vec<Logged> {
        self.log.take().unwrap_or_default()
    }

    /// The committed value of `key` if the cache knows it: `Some(None)` for absent.
    pub(crate) fn known_committed(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let base = self.base();
        match base.rows.get(key) {
            Some(value) => Some(value.clone()),
            None if base.complete => Some(None),
            None => None,
        }
    }

    /// Sets `key` to `value` (`None`: deleted) without logging (a rewind restoring rows).
    pub(crate) fn restore(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.written += key.len() + value.as_ref().map_or(0, Vec::len) + ROW_OVERHEAD;
        self.overlay.insert(key, value);
    }

    /// Forgets everything: the committed rows are to be deleted by the next commit, and
    /// until then the view is empty.
    pub(crate) fn wipe(&mut self) {
        self.overlay.clear();
        self.written = 0;
        self.log = None;
        self.reset = true;
        *self.base() = Base {
            complete: true,
            ..Base::default()
        };
    }

    /// Forgets the cache and the uncommitted changes (the store is the truth again).
    pub(crate) fn forget(&mut self) {
        self.overlay.clear();
        self.written = 0;
        self.log = None;
        self.reset = false;
        *self.base() = Base::default();
    }

    /// Declares that the store holds no row of this view (a new scope).
    pub(crate) fn known_empty(&mut self) {
        let mut base = self.base();
        if base.rows.is_empty() && base.ranges.is_empty() {
            base.complete = true;
        }
    }

    /// Bytes written since the last commit (at least what the overlay holds).
    pub(crate) fn pending_bytes(&self) -> usize {
        self.written
    }

    pub(crate) fn has_changes(&self) -> bool {
        self.reset || !self.overlay.is_empty()
    }

    /// Takes the pending changes (the overlay empties; reads see them once
    /// [`State::committed`] is called with them).
    pub(crate) fn take_changes(&mut self) -> threads_store::ViewChange {
        let reset = std::mem::take(&mut self.reset);
        self.written = 0;
        let mut change = threads_store::ViewChange {
            reset,
            ..Default::default()
        };
        for (key, value) in std::mem::take(&mut self.overlay) {
            match value {
                Some(value) => change.puts.push((key, value)),
                None => change.deletes.push(key),
            }
        }
        change
    }

    /// The store committed `change`: the cache learns its rows, and range reads start over.
    pub(crate) fn committed(&mut self, change: &threads_store::ViewChange) {
        let mut base = self.base();
        let base = &mut *base;
        if change.reset {
            base.rows.clear();
            base.bytes = 0;
        }
        for (_, chunk) in base.ranges.drain() {
            base.bytes = base.bytes.saturating_sub(chunk_bytes(&chunk));
        }
        for (key, value) in &change.puts {
            let size = key.len() + value.len() + ROW_OVERHEAD;
            if let Some(Some(old)) = base.rows.insert(key.clone(), Some(value.clone())) {
                base.bytes = base
                    .bytes
                    .saturating_sub(key.len() + old.len() + ROW_OVERHEAD);
            }
            base.bytes += size;
        }
        for key in &change.deletes {
            let old = if base.complete {
                base.rows.remove(key).flatten()
            } else {
                base.bytes += key.len() + ROW_OVERHEAD;
                base.rows.insert(key.clone(), None).flatten()
            };
            if let Some(old) = old {
                base.bytes = base
                    .bytes
                    .saturating_sub(key.len() + old.len() + ROW_OVERHEAD);
            }
        }
    }

    /// Bytes the cache holds.
    pub(crate) fn cached_bytes(&self) -> usize {
        self.base().bytes
    }

    /// Drops the cache (the store stays the truth; the overlay is kept).
    pub(crate) fn evict(&self) {
        let mut base = self.base();
        if base.complete && base.rows.is_empty() {
            return;
        }
        *base = Base::default();
    }

    pub(crate) fn has_misses(&self) -> bool {
        !self.base().misses.is_empty()
    }

    /// Whether a read of this run was not answered from memory (it returned `None`, or
    /// fewer rows than the store holds). The engine then fetches the rows and runs the
    /// reducer again, discarding this run: a reducer that keeps something beside the state
    /// (a cache of its own) must not keep what it computed from such a run.
    pub fn missed(&self) -> bool {
        self.has_misses()
    }

    pub(crate) fn take_misses(&self) -> Vec<Miss> {
        let mut misses = std::mem::take(&mut self.base().misses);
        misses.sort_unstable();
        misses.dedup();
        misses
    }

    /// Committed values fetched from the store for missed keys.
    pub(crate) fn learn_keys(&self, keys: Vec<Vec<u8>>, values: Vec<Option<Vec<u8>>>) {
        let mut base = self.base();
        for (key, value) in keys.into_iter().zip(values) {
            base.bytes += key.len() + value.as_ref().map_or(0, Vec::len) + ROW_OVERHEAD;
            base.rows.insert(key, value);
        }
    }

    /// The chunk of range `[from, to)` read so far (from the end with `rev`), to continue
    /// it: its last key and how many rows it holds.
    pub(crate) fn range_tail(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        rev: bool,
    ) -> (Option<Vec<u8>>, usize) {
        let base = self.base();
        base.ranges
            .get(&(from.to_vec(), to.map(<[u8]>::to_vec), rev))
            .map_or((None, 0), |c| {
                (c.rows.last().map(|(k, _)| k.clone()), c.rows.len())
            })
    }

    /// Committed rows fetched for range `[from, to)` (from its end with `rev`, in that
    /// order), following what it held; `complete` if they reach the end of the range.
    pub(crate) fn learn_range(&self, id: RangeId, rows: Vec<(Vec<u8>, Vec<u8>)>, complete: bool) {
        let mut base = self.base();
        let added: usize = rows
            .iter()
            .map(|(k, v)| k.len() + v.len() + ROW_OVERHEAD)
            .sum();
        base.bytes += added;
        let chunk = base.ranges.entry(id).or_default();
        chunk.rows.extend(rows);
        chunk.complete = complete;
    }
}

/// How many rows to fetch when continuing a range that holds `held` rows.
pub(crate) fn range_fetch(held: usize) -> usize {
    held.max(RANGE_CHUNK)
}

fn chunk_bytes(chunk: &Chunk) -> usize {
    chunk
        .rows
        .iter()
        .map(|(k, v)| k.len() + v.len() + ROW_OVERHEAD)
        .sum()
}

/// The bounds of what is left of `[from, to)` after `last`, or before it with `rev`.
fn bounds<'a>(
    from: &'a [u8],
    to: Option<&'a [u8]>,
    last: Option<&'a [u8]>,
    rev: bool,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    let end = to.map_or(Bound::Unbounded, Bound::Excluded);
    match (last, rev) {
        (Some(last), true) => (Bound::Included(from), Bound::Excluded(last)),
        (None, _) => (Bound::Included(from), end),
        (Some(last), false) => (Bound::Excluded(last), end),
    }
}

fn empty_range(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(a), Bound::Excluded(b)) => a >= b,
        (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no bound).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < u8::MAX {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// The rows of a range of a [`State`], in key order (or from the end, for
/// [`State::range_rev`]): the committed rows with this commit's changes over them.
#[derive(Debug)]
pub struct Rows<'a> {
    state: &'a State,
    from: Vec<u8>,
    to: Option<Vec<u8>>,
    rev: bool,
    last: Option<Vec<u8>>,
    done: bool,
}

impl Iterator for Rows<'_> {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        while !self.done {
            let (start, end) = bounds(
                &self.from,
                self.to.as_deref(),
                self.last.as_deref(),
                self.rev,
            );
            let changed = if empty_range(start, end) {
                None
            } else {
                let mut within = self.state.overlay.range::<[u8], _>((start, end));
                if self.rev {
                    within.next_back()
                } else {
                    within.next()
                }
            };
            let Ok(committed) = self.state.committed_next(
                &self.from,
                self.to.as_deref(),
                self.last.as_deref(),
                self.rev,
            ) else {
                // The cache cannot tell what comes next: the run ends here and is redone.
                self.done = true;
                return None;
            };
            let (key, value) = match (changed, committed) {
                (None, None) => {
                    self.done = true;
                    return None;
                }
                // The overlay's change comes first (or replaces the committed row).
                (Some((k, v)), Some((ck, _)))
                    if (k.as_slice() <= ck.as_slice()) != self.rev || k == &ck =>
                {
                    (k.clone(), v.clone())
                }
                (Some((k, v)), None) => (k.clone(), v.clone()),
                (_, Some((ck, cv))) => (ck, Some(cv)),
            };
            self.last = Some(key.clone());
            if let Some(value) = value {
                return Some((key, value));
            }
            // Deleted in this commit: go on after it.
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rows: Rows<'_>) -> Vec<Vec<u8>> {
        rows.map(|(k, _)| k).collect()
    }

    #[test]
    fn prefix_and_range_scan_in_key_order() {
        let mut s = State::new();
        for k in [&b"b2"[..], b"a", b"b1", b"c", b"b"] {
            s.put(k, k);
        }
        assert_eq!(
            keys(s.prefix(b"b")),
            vec![b"b".to_vec(), b"b1".to_vec(), b"b2".to_vec()]
        );
        assert_eq!(
            keys(s.range(b"a", b"b2")),
            vec![b"a".to_vec(), b"b".to_vec(), b"b1".to_vec()]
        );
        assert_eq!(successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(successor(&[0xFF, 0xFF]), None);
    }

    #[test]
    fn roll_back_restores_the_overlay() {
        let mut s = State::new();
        s.put(b"keep".to_vec(), b"1".to_vec());
        s.put(b"gone".to_vec(), b"2".to_vec());
        s.begin();
        s.put(b"keep".to_vec(), b"changed".to_vec());
        s.delete(b"gone");
        s.put(b"new".to_vec(), b"3".to_vec());
        s.roll_back_to(0);
        assert_eq!(s.end(), Vec::new());
        assert_eq!(s.get(b"keep"), Some(b"1".to_vec()));
        assert_eq!(s.get(b"gone"), Some(b"2".to_vec()));
        assert_eq!(s.get(b"new"), None);
        let change = s.take_changes();
        assert_eq!(change.puts.len(), 2);
        assert!(change.deletes.is_empty());
    }

    #[test]
    fn reads_a_cache_cannot_answer_are_misses_until_learned() {
        let mut s = State::stored();
        assert_eq!(s.get(b"k"), None);
        assert_eq!(s.take_misses(), vec![Miss::Key(b"k".to_vec())]);
        s.learn_keys(vec![b"k".to_vec()], vec![Some(b"v".to_vec())]);
        assert_eq!(s.get(b"k"), Some(b"v".to_vec()));
        assert!(!s.has_misses());

        // A range: committed rows merged with the overlay, a miss at the end of a chunk.
        s.put(b"p2".to_vec(), b"new".to_vec());
        s.delete(b"p3");
        assert_eq!(keys(s.prefix(b"p")), Vec::<Vec<u8>>::new());
        assert_eq!(
            s.take_misses(),
            vec![Miss::Range(b"p".to_vec(), Some(b"q".to_vec()), false)]
        );
        let row = |k: &[u8]| (k.to_vec(), b"old".to_vec());
        let id = (b"p".to_vec(), Some(b"q".to_vec()), false);
        s.learn_range(id.clone(), vec![row(b"p1"), row(b"p3")], false);
        assert_eq!(keys(s.prefix(b"p")), vec![b"p1".to_vec(), b"p2".to_vec()]);
        assert_eq!(s.take_misses().len(), 1, "the chunk may go on");
        s.learn_range(id, vec![row(b"p4")], true);
        let rows: Vec<_> = s.prefix(b"p").collect();
        assert_eq!(
            rows,
            vec![row(b"p1"), (b"p2".to_vec(), b"new".to_vec()), row(b"p4")]
        );
        assert!(!s.has_misses());

        // The same range from its end: a chunk of its own, read greatest key first.
        s.put(b"p5".to_vec(), b"new".to_vec());
        assert_eq!(keys(s.range_rev(b"p", b"q")), Vec::<Vec<u8>>::new());
        let back = (b"p".to_vec(), Some(b"q".to_vec()), true);
        assert_eq!(
            s.take_misses(),
            vec![Miss::Range(back.0.clone(), back.1.clone(), true)]
        );
        s.learn_range(back.clone(), vec![row(b"p4"), row(b"p3")], false);
        assert_eq!(
            keys(s.range_rev(b"p", b"q")),
            vec![b"p5".to_vec(), b"p4".to_vec()],
            "p3 is deleted; what comes before it is not known yet"
        );
        assert_eq!(s.take_misses().len(), 1);
        s.learn_range(back, vec![row(b"p1")], true);
        assert_eq!(
            keys(s.range_rev(b"p", b"q")),
            vec![
                b"p5".to_vec(),
                b"p4".to_vec(),
                b"p2".to_vec(),
                b"p1".to_vec()
            ]
        );
        assert!(!s.has_misses());
        // A state without a store reads backwards from memory.
        let mut m = State::new();
        for k in [b"a".as_slice(), b"b", b"c"] {
            m.put(k.to_vec(), b"v".to_vec());
        }
        assert_eq!(
            keys(m.range_rev(b"a", b"c")),
            vec![b"b".to_vec(), b"a".to_vec()]
        );
    }
}
