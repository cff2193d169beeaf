//! Committing: every changed row, the undo records of the events applied and the mark in
//! one store transaction; the events no view needs any more, and dropping their bodies.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use threads_id::LogId;
use threads_log::Hlc;
use threads_store::{Store, ViewChange, ViewCommit};

use crate::engine::{Decoded, LogStream, ROW_CHANGES_KEYS, RowChanges, UNDO, Views};
use crate::error::Result;
use crate::event::{Batch, Event, encode_order};
use crate::mark::UndoRecord;

/// The rows `commit` changed, per view, for [`Views::watch_rows`].
pub(crate) fn row_changes(commit: &ViewCommit) -> RowChanges {
    let mut out = RowChanges::default();
    for change in &commit.changes {
        if change.view.starts_with('~') {
            continue;
        }
        if change.reset
            || change.delete_below.is_some()
            || change.puts.len() + change.deletes.len() > ROW_CHANGES_KEYS
        {
            out.reset.push(change.view.clone());
            continue;
        }
        let mut keys: Vec<Vec<u8>> = change
            .puts
            .iter()
            .map(|(k, _)| k.clone())
            .chain(change.deletes.iter().cloned())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        out.views.push((change.view.clone(), keys));
    }
    out
}

impl<S: Store + 'static> Views<S> {
    pub(crate) fn has_changes(&self) -> bool {
        self.states.iter().any(crate::state::State::has_changes)
            || self.rejections.has_changes()
            || !self.undo_pending.is_empty()
            || !self.undo_done.is_empty()
            || self.undo_reset
    }

    /// Bytes of rows and undo records applied since the last commit.
    pub(crate) fn pending_bytes(&self) -> usize {
        let rows: usize = (0..=self.states.len())
            .map(|i| self.state_at(i).pending_bytes())
            .sum();
        let undo: usize = self
            .undo_pending
            .iter()
            .flat_map(|r| &r.changes)
            .map(|(_, key, old)| {
                64 + key.len() + old.as_ref().and_then(Option::as_ref).map_or(0, Vec::len)
            })
            .sum();
        rows + undo
    }

    /// Writes every changed row, the undo records and the mark in one transaction.
    pub(crate) async fn commit(&mut self) -> Result<()> {
        let (commit, changed) = self.prepare_commit().await?;
        self.store.view_commit(&commit).await?;
        self.committed(&commit, changed);
        Ok(())
    }

    /// The commit of every changed row, the undo records and the mark, taken from the
    /// states, with the indices of the states it changes (in the order of its changes).
    /// Until [`Views::committed`] is called the views are stale: if the commit is not
    /// written, they reload before their next use.
    pub(crate) async fn prepare_commit(&mut self) -> Result<(ViewCommit, Vec<usize>)> {
        // Old values an undo record needs that only the store knows (it still holds the
        // committed rows): one read per view.
        let mut wanted: HashMap<usize, Vec<Vec<u8>>> = HashMap::new();
        for record in &self.undo_pending {
            for (index, key, old) in &record.changes {
                if old.is_none() {
                    wanted.entry(*index).or_default().push(key.clone());
                }
            }
        }
        let mut fetched: HashMap<(usize, Vec<u8>), Option<Vec<u8>>> = HashMap::new();
        for (index, keys) in wanted {
            let name = self.state_name(index).to_owned();
            let values = self.store.view_get(&self.scope, &name, &keys).await?;
            for (key, value) in keys.into_iter().zip(values) {
                fetched.insert((index, key), value);
            }
        }
        let mut undo = ViewChange {
            view: UNDO.to_owned(),
            reset: std::mem::take(&mut self.undo_reset),
            ..ViewChange::default()
        };
        for record in std::mem::take(&mut self.undo_pending) {
            let changes = record
                .changes
                .into_iter()
                .map(|(index, key, old)| {
                    let old = old
                        .unwrap_or_else(|| fetched.get(&(index, key.clone())).cloned().flatten());
                    (self.state_name(index).to_owned(), key, old)
                })
                .collect();
            let bytes = UndoRecord {
                prev_log: record.prev_log,
                changes,
            }
            .encode();
            undo.puts
                .push((encode_order(&record.order).to_vec(), bytes));
        }
        let put: HashSet<&[u8]> = undo.puts.iter().map(|(k, _)| k.as_slice()).collect();
        undo.deletes = std::mem::take(&mut self.undo_done)
            .into_iter()
            .filter(|k| !put.contains(k.as_slice()))
            .collect();
        // Undo records older than the horizon go; a late event before it rebuilds.
        if let Some(last) = self.mark.last {
            let horizon = self.config.undo_horizon_ms;
            let floor_ms = last.time.physical_ms().saturating_sub(horizon);
            let step = (horizon / 64).max(1);
            let due = self.mark.undo_floor.map_or(floor_ms > 0, |f| {
                floor_ms >= f.physical_ms().saturating_add(step)
            });
            if due {
                let floor = Hlc::new(floor_ms, 0);
                undo.delete_below = Some(floor_ms.to_be_bytes().to_vec());
                self.mark.undo_floor = Some(floor);
            }
        }

        // The changed states, in the order of their changes in the commit.
        let mut changed = Vec::new();
        let mut commit = ViewCommit {
            scope: self.scope.clone(),
            cursor: self.mark.encode(),
            changes: Vec::new(),
        };
        for index in 0..=self.states.len() {
            let name = self.state_name(index).to_owned();
            let state = self.state_at_mut(index);
            if state.has_changes() {
                let mut change = state.take_changes();
                change.view = name;
                commit.changes.push(change);
                changed.push(index);
            }
        }
        if undo.reset
            || undo.delete_below.is_some()
            || !undo.puts.is_empty()
            || !undo.deletes.is_empty()
        {
            commit.changes.push(undo);
        }
        // The changed rows were taken from the states: if this future is dropped, or the
        // store fails, before the commit is written, the rows in memory are ahead of the
        // store, and the views reload before their next use.
        self.stale = true;
        Ok((commit, changed))
    }

    /// Records that `commit` (from [`Views::prepare_commit`]) is written.
    pub(crate) fn committed(&mut self, commit: &ViewCommit, changed: Vec<usize>) {
        self.stale = false;
        if self.rows_tx.receiver_count() > 0 {
            let _ = self.rows_tx.send(Arc::new(row_changes(commit)));
        }
        for (index, change) in changed.into_iter().zip(&commit.changes) {
            self.state_at_mut(index).committed(change);
        }
        self.trim_cache();
        self.publish();
    }

    /// The applied events that no view needs any more: every operation superseded (say a
    /// put overwritten by a later put, [`Reducer::superseded`](crate::Reducer::superseded)),
    /// none refused, with their body, not compacted already. By log, counters increasing.
    ///
    /// A peer does not drop these bodies on its own: whether an operation matters can
    /// change later (a late event, a change of rules), and peers that kept a body would
    /// then compute other views than peers that dropped it. Naming them in an operation of
    /// the thread that every peer applies (threads-acl's `AclOp::Compact`, behind a
    /// [`Gate`](crate::Gate) that [voids](crate::Gate::voids) them) makes every peer treat
    /// them alike; then [`Views::drop_bodies`] may drop them.
    ///
    /// # Errors
    /// A store error or an unreadable entry.
    pub async fn superseded(&mut self) -> Result<BTreeMap<LogId, Vec<u64>>> {
        self.catch_up().await?;
        let refused: HashSet<(LogId, u64)> = self
            .rejections()
            .await?
            .iter()
            .map(|r| (r.order.log, r.order.counter))
            .collect();
        let mut out = BTreeMap::new();
        let logs: Vec<(LogId, u64)> = self
            .mark
            .logs
            .iter()
            .map(|(log, m)| (*log, m.counter))
            .collect();
        for (log, until) in logs {
            let mut stream = LogStream {
                log,
                after: 0,
                last_time: None,
                buffer: VecDeque::new(),
                done: false,
                blocked: None,
            };
            let mut counters = Vec::new();
            loop {
                self.fill(&mut stream).await?;
                let Some(event) = stream.buffer.pop_front() else {
                    break;
                };
                if event.order.counter > until {
                    break;
                }
                let voided = self
                    .gate
                    .as_ref()
                    .is_some_and(|gate| gate.voids(&log, event.order.counter));
                if voided || refused.contains(&(log, event.order.counter)) {
                    continue;
                }
                let removable = loop {
                    let removable = self.removable(&event);
                    if !self.missed() {
                        break removable;
                    }
                    self.fetch_missed().await?;
                };
                if removable {
                    counters.push(event.order.counter);
                }
            }
            if !counters.is_empty() {
                out.insert(log, counters);
            }
        }
        Ok(out)
    }

    /// Drops the stored bodies of `events` (by log, counters), keeping their signed
    /// records: only for events a [`Gate`](crate::Gate) [voids](crate::Gate::voids) on
    /// every peer (an event without its body and not voided makes its log wait here).
    /// Returns how many bodies were dropped.
    ///
    /// # Errors
    /// A store error.
    pub async fn drop_bodies(&self, events: &BTreeMap<LogId, Vec<u64>>) -> Result<u64> {
        let mut dropped = 0;
        for (log, counters) in events {
            for chunk in counters.chunks(4_096) {
                dropped += self.store.compact_bodies(self.thread, *log, chunk).await?;
            }
        }
        Ok(dropped)
    }

    pub(crate) fn removable(&self, event: &Decoded) -> bool {
        let Some(payload) = &event.payload else {
            return false;
        };
        if !event.monotone {
            return false;
        }
        let Some(batch) = Batch::decode(payload) else {
            return false;
        };
        if batch.is_empty() {
            return false;
        }
        batch.ops().iter().enumerate().all(|(index, (name, data))| {
            let Some(&view) = self.by_name.get(name) else {
                return false;
            };
            let op = Event {
                thread: self.thread,
                order: event.order,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                data,
            };
            self.reducers[view].superseded(&self.states[view], &op)
        })
    }
}
