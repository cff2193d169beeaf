//! Going back: a late event rewinds order-sensitive views to a snapshot before it and
//! replays; a rebuild starts from a snapshot or from nothing; a change of gate replays from
//! the earliest event it may judge differently.

use std::collections::BTreeMap;

use threads_id::LogId;
use threads_log::EventOrder;
use threads_store::Store;

use crate::engine::{Progress, REJECTIONS, Restart, Views};
use crate::error::{Result, ViewError};
use crate::event::ORDER_LEN;
use crate::mark::{Mark, Snapshot, position_from_meta};
use crate::reducer::ViewKind;

impl<S: Store + 'static> Views<S> {
    /// Recomputes every view from the latest snapshot before `since` (from nothing for
    /// `None`), asking the gate again for every event after it, then applies new events.
    /// Call it when the gate's rules changed in a way that changes its answers for events
    /// at `since` and later.
    ///
    /// # Errors
    /// As [`Views::catch_up`].
    pub async fn regate(&mut self, since: Option<EventOrder>) -> Result<Progress> {
        self.reload_if_stale().await?;
        let result = async {
            let snapshot = match since {
                Some(order) => self.snapshot_before(order).await?,
                None => None,
            };
            self.restart(snapshot, Restart::Rebuild).await
        }
        .await;
        if result.is_err() {
            self.stale = true;
        }
        result
    }

    /// Rebuilds every view from the latest snapshot (`from_snapshot`) or from nothing,
    /// replaying the logs; the result equals a full replay.
    ///
    /// # Errors
    /// As [`Views::catch_up`].
    pub async fn rebuild(&mut self, from_snapshot: bool) -> Result<Progress> {
        self.reload_if_stale().await?;
        let result = async {
            let snapshot = if from_snapshot {
                let snapshots = self.store.view_snapshots(&self.scope).await?;
                snapshots.last().map(|(seq, _)| *seq)
            } else {
                None
            };
            self.restart(snapshot, Restart::Rebuild).await
        }
        .await;
        if result.is_err() {
            self.stale = true;
        }
        result
    }

    pub(crate) async fn reload_if_stale(&mut self) -> Result<()> {
        if self.stale {
            self.drop_snapshots_from = None;
            self.load().await?;
            self.stale = false;
        }
        Ok(())
    }

    /// The latest snapshot whose position is before `order`.
    pub(crate) async fn snapshot_before(&self, order: EventOrder) -> Result<Option<u64>> {
        let snapshots = self.store.view_snapshots(&self.scope).await?;
        let mut chosen = None;
        for (seq, meta) in snapshots {
            match position_from_meta(&meta)? {
                Some(position) if position >= order => {}
                _ => chosen = Some(seq),
            }
        }
        Ok(chosen)
    }

    pub(crate) async fn restart(
        &mut self,
        snapshot: Option<u64>,
        kind: Restart,
    ) -> Result<Progress> {
        let snapshot = match snapshot {
            Some(seq) => {
                let data = self
                    .store
                    .view_snapshot(&self.scope, seq)
                    .await?
                    .ok_or_else(|| ViewError::Corrupt(format!("snapshot {seq} vanished")))?;
                let snapshot = Snapshot::decode(&data)?;
                if snapshot.mark.views != self.mark.views {
                    return Err(ViewError::Corrupt(format!(
                        "snapshot {seq} holds other views"
                    )));
                }
                Some((seq, snapshot))
            }
            None => None,
        };
        let (seq, mut snap) = match snapshot {
            Some((seq, snap)) => (Some(seq), snap),
            None => (
                None,
                Snapshot {
                    mark: Mark {
                        views: self.mark.views.clone(),
                        ..Mark::default()
                    },
                    states: BTreeMap::new(),
                },
            ),
        };
        for (i, reducer) in self.reducers.iter().enumerate() {
            if kind == Restart::Rebuild || reducer.kind() == ViewKind::Ordered {
                let rows = snap.states.remove(reducer.name()).unwrap_or_default();
                self.states[i].replace(rows);
            }
        }
        let snap_rejections = snap.states.remove(REJECTIONS).unwrap_or_default();
        let rejections = match kind {
            Restart::Rebuild => snap_rejections,
            Restart::Late => {
                // Commutative views (and whole-event refusals) keep what they refused; the
                // order-sensitive ones go back to the snapshot's and refuse again on replay.
                let keep_current = |key: &[u8]| {
                    let view = &key[ORDER_LEN.min(key.len())..];
                    !self.is_ordered_view(view)
                };
                let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = snap_rejections
                    .into_iter()
                    .filter(|(k, _)| !keep_current(k))
                    .collect();
                for (k, v) in self.rejections.iter() {
                    if keep_current(k) {
                        rows.insert(k.to_vec(), v.to_vec());
                    }
                }
                rows
            }
        };
        self.rejections.replace(rejections);

        let previous = std::mem::replace(&mut self.mark, snap.mark);
        self.mark.next_snapshot = previous.next_snapshot;
        self.mark.since_snapshot = 0;
        self.drop_snapshots_from = Some(seq.map_or(0, |s| s + 1));
        let replay_until: BTreeMap<LogId, u64> = previous
            .logs
            .iter()
            .map(|(log, m)| (*log, m.counter))
            .collect();
        let streams = self.streams(&self.mark.clone()).await?;
        let mut progress = self.run(streams, &replay_until, kind).await?;
        progress.rewound = kind == Restart::Late;
        Ok(progress)
    }

    pub(crate) fn is_ordered_view(&self, name: &[u8]) -> bool {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.by_name.get(n))
            .is_some_and(|&i| self.reducers[i].kind() == ViewKind::Ordered)
    }
}
