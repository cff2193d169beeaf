//! Committing: every changed row, the mark and (when due) a snapshot in one store
//! transaction; compaction of bodies no view needs any more.

use std::collections::{BTreeMap, VecDeque};

use threads_id::LogId;
use threads_store::{Store, ViewCommit, ViewSnapshot};

use crate::engine::{Decoded, LogStream, REJECTIONS, Views};
use crate::error::Result;
use crate::event::{Batch, Event};
use crate::mark::{Snapshot, position_meta};
use crate::state::State;

impl<S: Store + 'static> Views<S> {
    /// Writes every changed row, the mark and (when due) a snapshot in one transaction.
    pub(crate) async fn commit(&mut self) -> Result<()> {
        let mut changes = Vec::new();
        for (reducer, state) in self.reducers.iter().zip(&mut self.states) {
            if state.has_changes() {
                let mut change = state.take_changes();
                change.view = reducer.name().to_owned();
                changes.push(change);
            }
        }
        if self.rejections.has_changes() {
            let mut change = self.rejections.take_changes();
            change.view = REJECTIONS.to_owned();
            changes.push(change);
        }
        let mut snapshot = None;
        let mut drop_below = None;
        let rows = || self.states.iter().map(State::len).sum::<usize>() + self.rejections.len();
        let due = self.mark.since_snapshot >= self.config.snapshot_every
            && (!self.config.amortize_snapshots
                || self.mark.since_snapshot >= u64::try_from(rows()).unwrap_or(u64::MAX));
        if due {
            let seq = self.mark.next_snapshot;
            self.mark.next_snapshot += 1;
            self.mark.since_snapshot = 0;
            let mut states: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = self
                .reducers
                .iter()
                .zip(&self.states)
                .map(|(r, s)| (r.name().to_owned(), s.rows().clone()))
                .collect();
            states.insert(REJECTIONS.to_owned(), self.rejections.rows().clone());
            let data = Snapshot {
                mark: self.mark.clone(),
                states,
            }
            .encode();
            snapshot = Some(ViewSnapshot {
                seq,
                meta: position_meta(self.mark.last.as_ref()),
                data,
            });
            drop_below = (seq + 1).checked_sub(self.config.keep_snapshots);
        }
        let commit = ViewCommit {
            scope: self.scope.clone(),
            cursor: self.mark.encode(),
            changes,
            drop_snapshots_from: self.drop_snapshots_from.take(),
            drop_snapshots_below: drop_below,
            snapshot,
        };
        // The changed rows were taken from the states: if this future is dropped, or the
        // store fails, before the commit is done, the rows in memory are ahead of the
        // store, and the views reload before their next use.
        self.stale = true;
        self.store.view_commit(&commit).await?;
        self.stale = false;
        self.publish();
        Ok(())
    }

    /// Drops the bodies of applied events that no view needs any more (every operation
    /// superseded, say a put overwritten by a later put), keeping their signed records, so
    /// the logs stay verifiable and a rebuild gives the same views. Returns how many
    /// bodies were dropped. Views behind a [`Gate`](crate::Gate) drop nothing.
    ///
    /// # Errors
    /// A store error or an unreadable entry.
    pub async fn compact(&mut self) -> Result<u64> {
        self.catch_up().await?;
        if self.gate.is_some() {
            // Under a gate, a change of rules can refuse the operation that superseded
            // another one, which then matters again: nothing is dropped.
            return Ok(0);
        }
        let mut dropped = 0;
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
                if self.removable(&event) {
                    counters.push(event.order.counter);
                }
            }
            if !counters.is_empty() {
                dropped += self
                    .store
                    .compact_bodies(self.thread, log, &counters)
                    .await?;
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
