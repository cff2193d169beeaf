//! What the view layer keeps in the store: rows of materialized state, a cursor and
//! snapshots per scope, all written in one transaction per commit.
//!
//! The store gives these bytes no meaning; threads-views decides what a scope, a view, a
//! cursor and a snapshot hold (docs/FORMAT.md, "View tables").

use std::future::Future;

use threads_id::{LogId, ThreadId};

use crate::traits::Result;

/// The changes to one view's rows in a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewChange {
    /// The view's name within the scope.
    pub view: String,
    /// Delete every row of the view before applying `puts` and `deletes`.
    pub reset: bool,
    /// Rows to insert or replace.
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Rows to delete.
    pub deletes: Vec<Vec<u8>>,
}

/// A snapshot to save with a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSnapshot {
    /// Its sequence number in the scope (increasing).
    pub seq: u64,
    /// Small data read to choose a snapshot (its position).
    pub meta: Vec<u8>,
    /// The snapshot itself.
    pub data: Vec<u8>,
}

/// One atomic change to a scope: rows of any of its views, its cursor and its snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewCommit {
    /// The scope (a set of views over one thread).
    pub scope: String,
    /// The scope's new cursor.
    pub cursor: Vec<u8>,
    /// Row changes, per view.
    pub changes: Vec<ViewChange>,
    /// Snapshots with a sequence number at or above this are deleted (before `snapshot`
    /// is saved).
    pub drop_snapshots_from: Option<u64>,
    /// Snapshots with a sequence number below this are deleted.
    pub drop_snapshots_below: Option<u64>,
    /// A snapshot to save.
    pub snapshot: Option<ViewSnapshot>,
}

/// Persistence for materialized views, in the same database as the logs.
pub trait ViewBook: Send + Sync {
    /// The cursor of `scope`, if it was ever committed.
    fn view_cursor(&self, scope: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Every row of `view` in `scope`, ordered by key bytes.
    fn view_rows(
        &self,
        scope: &str,
        view: &str,
    ) -> impl Future<Output = Result<Vec<(Vec<u8>, Vec<u8>)>>> + Send;
    /// Applies `commit` in one transaction: all of it or none of it.
    fn view_commit(&self, commit: &ViewCommit) -> impl Future<Output = Result<()>> + Send;
    /// The snapshots of `scope` as (sequence number, meta), oldest first.
    fn view_snapshots(
        &self,
        scope: &str,
    ) -> impl Future<Output = Result<Vec<(u64, Vec<u8>)>>> + Send;
    /// The data of snapshot `seq` of `scope`.
    fn view_snapshot(
        &self,
        scope: &str,
        seq: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Drops the stored bodies of entries `counters` of a log, keeping their record, event
    /// and header blocks. A compacted entry reads back with an empty body block. Returns
    /// how many bodies were dropped (entries already compacted or absent count nothing).
    fn compact_bodies(
        &self,
        thread: ThreadId,
        log: LogId,
        counters: &[u64],
    ) -> impl Future<Output = Result<u64>> + Send;
}
