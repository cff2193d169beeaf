//! A view's state: ordered rows of bytes that a reducer reads and changes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use sha2::{Digest, Sha256};

/// A row's key and its value before a change (`None`: it did not exist).
type Undo = (Vec<u8>, Option<Vec<u8>>);

/// The rows of one view, ordered by key bytes. A reducer changes them while it applies an
/// event; the engine persists exactly the rows that changed, with the cursor, in one
/// transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    dirty: BTreeSet<Vec<u8>>,
    undo: Option<Vec<Undo>>,
    reset: bool,
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State::default()
    }

    pub(crate) fn from_rows(rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> State {
        State {
            rows: rows.into_iter().collect(),
            ..State::default()
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.rows.get(key).map(Vec::as_slice)
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let key = key.into();
        let old = self.rows.insert(key.clone(), value.into());
        self.touched(key, old);
    }

    /// Deletes `key` (nothing happens if it is absent).
    pub fn delete(&mut self, key: &[u8]) {
        if let Some(old) = self.rows.remove(key) {
            self.touched(key.to_vec(), Some(old));
        }
    }

    fn touched(&mut self, key: Vec<u8>, old: Option<Vec<u8>>) {
        if let Some(undo) = &mut self.undo {
            undo.push((key.clone(), old));
        }
        self.dirty.insert(key);
    }

    /// Every row, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The rows whose key starts with `prefix`, in key order.
    pub fn prefix<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.rows
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// [`State::prefix`] with an owned prefix, so the iterator can outlive the caller's
    /// buffer.
    pub fn prefix_owned(&self, prefix: Vec<u8>) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.rows
            .range::<[u8], _>((Bound::Included(prefix.as_slice()), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The rows with keys in `[from, to)`, in key order.
    pub fn range<'a>(
        &'a self,
        from: &'a [u8],
        to: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.rows
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A SHA-256 digest of every row: equal digests mean byte-identical states.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"threads-rs/view-state/v1");
        for (k, v) in &self.rows {
            hasher.update((k.len() as u64).to_be_bytes());
            hasher.update(k);
            hasher.update((v.len() as u64).to_be_bytes());
            hasher.update(v);
        }
        hasher.finalize().into()
    }

    pub(crate) fn begin(&mut self) {
        self.undo = Some(Vec::new());
    }

    pub(crate) fn keep(&mut self) {
        self.undo = None;
    }

    /// A point inside the scope opened by [`State::begin`] that
    /// [`State::roll_back_to`] can return to.
    pub(crate) fn savepoint(&self) -> usize {
        self.undo.as_ref().map_or(0, Vec::len)
    }

    /// Undoes the changes made since `point`, keeping the scope open.
    pub(crate) fn roll_back_to(&mut self, point: usize) {
        if let Some(undo) = &mut self.undo {
            while undo.len() > point {
                let Some((key, old)) = undo.pop() else { break };
                match old {
                    Some(value) => self.rows.insert(key, value),
                    None => self.rows.remove(&key),
                };
            }
        }
    }

    /// Undoes every change since [`State::begin`]. Keys stay marked dirty; writing their
    /// old value back is harmless.
    pub(crate) fn roll_back(&mut self) {
        if let Some(undo) = self.undo.take() {
            for (key, old) in undo.into_iter().rev() {
                match old {
                    Some(value) => self.rows.insert(key, value),
                    None => self.rows.remove(&key),
                };
            }
        }
    }

    /// Replaces every row (a rewind or a rebuild): the next commit rewrites the view.
    pub(crate) fn replace(&mut self, rows: BTreeMap<Vec<u8>, Vec<u8>>) {
        self.rows = rows;
        self.dirty.clear();
        self.reset = true;
    }

    pub(crate) fn rows(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.rows
    }

    /// Takes the pending changes: (reset, puts, deletes).
    pub(crate) fn take_changes(&mut self) -> threads_store::ViewChange {
        let reset = std::mem::take(&mut self.reset);
        let dirty = std::mem::take(&mut self.dirty);
        let mut change = threads_store::ViewChange {
            reset,
            ..Default::default()
        };
        if reset {
            change.puts = self
                .rows
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        } else {
            for key in dirty {
                match self.rows.get(&key) {
                    Some(value) => change.puts.push((key, value.clone())),
                    None => change.deletes.push(key),
                }
            }
        }
        change
    }

    pub(crate) fn has_changes(&self) -> bool {
        self.reset || !self.dirty.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_range_scan_in_key_order() {
        let mut s = State::new();
        for k in [&b"b2"[..], b"a", b"b1", b"c", b"b"] {
            s.put(k, k);
        }
        let keys: Vec<&[u8]> = s.prefix(b"b").map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"b"[..], b"b1", b"b2"]);
        let keys: Vec<&[u8]> = s.range(b"a", b"b2").map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b", b"b1"]);
    }

    #[test]
    fn roll_back_restores_rows_and_changes_name_every_touched_key() {
        let mut s = State::new();
        s.put(b"keep".to_vec(), b"1".to_vec());
        s.put(b"gone".to_vec(), b"2".to_vec());
        let before = s.digest();
        s.begin();
        s.put(b"keep".to_vec(), b"changed".to_vec());
        s.delete(b"gone");
        s.put(b"new".to_vec(), b"3".to_vec());
        s.roll_back();
        assert_eq!(s.digest(), before);
        let change = s.take_changes();
        assert_eq!(change.puts.len(), 2);
        assert_eq!(change.deletes, vec![b"new".to_vec()]);
        assert!(!s.has_changes());
    }
}
