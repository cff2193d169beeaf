//! What the view layer keeps in the store: rows of materialized state and a cursor per
//! scope, written in one transaction per commit, and read back a key or a key range at a
//! time (the views are not held whole in memory).
//!
//! The store gives these bytes no meaning; threads-views decides what a scope, a view and
//! a cursor hold (docs/FORMAT.md, "View tables").

use std::future::Future;

use threads_id::{LogId, ThreadId};

use threads_log::{Appended, Head};

use crate::traits::{AppendOutcome, Result};

/// The changes to one view's rows in a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewChange {
    /// The view's name within the scope.
    pub view: String,
    /// Delete every row of the view before applying the rest.
    pub reset: bool,
    /// Delete every row whose key sorts before this (applied before `puts`).
    pub delete_below: Option<Vec<u8>>,
    /// Rows to insert or replace.
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Rows to delete.
    pub deletes: Vec<Vec<u8>>,
}

/// One atomic change to a scope: rows of any of its views and its cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewCommit {
    /// The scope (a set of views over one thread).
    pub scope: String,
    /// The scope's new cursor.
    pub cursor: Vec<u8>,
    /// Row changes, per view: at most one per view (a backend may apply one view's puts
    /// after another view's deletes).
    pub changes: Vec<ViewChange>,
}

impl ViewCommit {
    /// Refuses a commit that changes a view twice (see [`ViewCommit::changes`]).
    pub(crate) fn check(&self) -> Result<()> {
        let mut views: Vec<&str> = self.changes.iter().map(|c| c.view.as_str()).collect();
        views.sort_unstable();
        if views.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(crate::StoreError::Corrupt(format!(
                "a commit of scope {} changes a view twice",
                self.scope
            )));
        }
        Ok(())
    }
}

/// A range of a view's keys to read: keys from `from` (after it when `after`) up to `to`
/// (excluded; `None`: to the end), at most `limit` rows, in key order, or from the end
/// when `reverse` (the greatest keys first; to go on, read again with `to` set to the
/// last key read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRange {
    /// The first key (or the key to start after).
    pub from: Vec<u8>,
    /// Whether `from` itself is excluded.
    pub after: bool,
    /// The end of the range, excluded.
    pub to: Option<Vec<u8>>,
    /// How many rows to return at most.
    pub limit: usize,
    /// Whether rows come in descending key order, from the end of the range.
    pub reverse: bool,
}

impl RowRange {
    /// Every key from `from` up to `to`, at most `limit` rows.
    pub fn new(from: impl Into<Vec<u8>>, to: Option<Vec<u8>>, limit: usize) -> RowRange {
        RowRange {
            from: from.into(),
            after: false,
            to,
            limit,
            reverse: false,
        }
    }

    /// The same range read from its end, greatest keys first.
    #[must_use]
    pub fn reversed(mut self) -> RowRange {
        self.reverse = true;
        self
    }

    /// Whether `key` lies in the range (ignoring the limit).
    pub fn contains(&self, key: &[u8]) -> bool {
        let above = if self.after {
            key > self.from.as_slice()
        } else {
            key >= self.from.as_slice()
        };
        above && self.to.as_deref().is_none_or(|to| key < to)
    }
}

/// Persistence for materialized views, in the same database as the logs.
pub trait ViewBook: Send + Sync {
    /// The cursor of `scope`, if it was ever committed.
    fn view_cursor(&self, scope: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// The values of `keys` in `view` of `scope`, in the order of `keys`.
    fn view_get(
        &self,
        scope: &str,
        view: &str,
        keys: &[Vec<u8>],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>>> + Send;
    /// The rows of `view` in `scope` within `range`, in key order.
    fn view_range(
        &self,
        scope: &str,
        view: &str,
        range: &RowRange,
    ) -> impl Future<Output = Result<Vec<(Vec<u8>, Vec<u8>)>>> + Send;
    /// Applies `commit` in one transaction: all of it or none of it.
    fn view_commit(&self, commit: &ViewCommit) -> impl Future<Output = Result<()>> + Send;
    /// [`LogBook::append`](crate::LogBook::append) and [`ViewBook::view_commit`] of each of
    /// `commits` in one transaction: a peer's own new entries and the view rows that apply
    /// them become durable together or not at all. The commits are written only when the
    /// batch is appended (not when it was stored already); on an error nothing is stored.
    fn append_with_views(
        &self,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
        commits: &[ViewCommit],
    ) -> impl Future<Output = Result<AppendOutcome>> + Send;
    /// Drops the stored bodies of entries `counters` of a log, keeping their record, event
    /// and header blocks. A compacted entry reads back with an empty body block. Returns
    /// how many bodies were dropped (entries already compacted or absent count nothing).
    fn compact_bodies(
        &self,
        thread: ThreadId,
        log: LogId,
        counters: &[u64],
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Puts back the body of entry `counter` of a log stored without one (received
    /// compacted). The caller checked `body` against the entry's links. Returns whether a
    /// body was put back (not if the entry is absent or already has one).
    fn fill_body(
        &self,
        thread: ThreadId,
        log: LogId,
        counter: u64,
        body: &[u8],
    ) -> impl Future<Output = Result<bool>> + Send;
}
