//! Going back: a late event undoes the order-sensitive views' events after it from their
//! undo records and replays them; a rebuild (a late event older than the undo horizon, a
//! change of gate, or on request) starts every view from nothing and streams the logs.

use std::collections::BTreeMap;

use threads_id::LogId;
use threads_log::EventOrder;
use threads_store::{RowRange, Store};

use crate::engine::{Progress, REJECTIONS, Restart, UNDO, Views};
use crate::error::Result;
use crate::event::{decode_order, encode_order};
use crate::mark::{Mark, UndoRecord};
use crate::reducer::ViewKind;

/// Undo records read from the store at a time.
const UNDO_PAGE: usize = 1024;

impl<S: Store + 'static> Views<S> {
    /// Recomputes the views asking the gate again for every event at `since` and after
    /// (every event for `None`), then applies new events. Call it when the gate's rules
    /// changed in a way that changes its answers for events at `since` and later.
    ///
    /// The views undo the events from `since` on by their undo records when every view
    /// keeps them (order-sensitive views, and every view of an atomic or in-order scope:
    /// [`ViewConfig::in_order`](crate::ViewConfig::in_order)); a commutative view of a
    /// bare scope keeps none, so there (and when `since` is beyond the undo horizon) every
    /// view is rebuilt from the logs.
    ///
    /// # Errors
    /// As [`Views::catch_up`].
    pub async fn regate(&mut self, since: Option<EventOrder>) -> Result<Progress> {
        self.reload_if_stale().await?;
        let since = match (since, self.refresh_stops().await) {
            (_, Err(e)) => {
                self.stale = true;
                return Err(e);
            }
            (Some(since), Ok(Some(back))) => Some(since.min(back)),
            (since, Ok(_)) => since,
        };
        self.regate_inner(since).await
    }

    pub(crate) async fn regate_inner(&mut self, since: Option<EventOrder>) -> Result<Progress> {
        let commutative =
            (0..self.reducers.len()).any(|i| self.kind_of(i) == ViewKind::Commutative);
        let result = match since {
            // Entries stored since the last catch-up that sort before `since` are undone
            // to as well (`rewind` reads the logs again after undoing).
            Some(order) if !commutative => self.rewind(order).await,
            _ => self.rebuild_all().await,
        };
        if result.is_err() {
            self.stale = true;
        }
        result
    }

    /// Rebuilds every view from nothing, streaming the logs (memory stays bounded: it
    /// commits as it goes); the result equals the views built event by event.
    ///
    /// # Errors
    /// As [`Views::catch_up`].
    pub async fn rebuild(&mut self) -> Result<Progress> {
        self.reload_if_stale().await?;
        let result = match self.refresh_stops().await {
            Ok(_) => self.rebuild_all().await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.stale = true;
        }
        result
    }

    /// Reads the fork proofs' stops from the store. Returns the earliest place to go back
    /// to when a log newly stopped had events applied at or after its stop.
    pub(crate) async fn refresh_stops(&mut self) -> Result<Option<EventOrder>> {
        let stops = threads_store::fork_stops(&*self.store, self.thread).await?;
        if stops == self.stops {
            return Ok(None);
        }
        let mut back: Option<EventOrder> = None;
        for (&log, &stop) in &stops {
            let applied = self.mark.logs.get(&log).map_or(0, |m| m.counter);
            if applied < stop {
                continue;
            }
            tracing::warn!(thread = %self.thread, %log, counter = stop, "the log's author forked it: its events from the fork on are undone");
            let order = self.order_of(log, stop).await?;
            back = Some(back.map_or(order, |b| b.min(order)));
        }
        self.stops = stops;
        Ok(back)
    }

    /// A place in the order at or before where the entry `counter` of `log` was applied:
    /// its own time (an event is applied at its time, or later if its log's time did not
    /// increase), or the start of the order if it cannot be read.
    async fn order_of(&mut self, log: LogId, counter: u64) -> Result<EventOrder> {
        let start = EventOrder {
            time: threads_log::Hlc::new(0, 0),
            log,
            counter,
        };
        let entries = self
            .store
            .entries_after(
                self.thread,
                log,
                counter.saturating_sub(1),
                threads_store::Page::new(1, 16 << 20),
            )
            .await?;
        let Some(stored) = entries.into_iter().next() else {
            return Ok(start);
        };
        let verifier = self.verifier_for(log)?;
        Ok(match verifier.read_stored(&stored.entry) {
            Ok(read) => EventOrder {
                time: read.time,
                log,
                counter,
            },
            Err(_) => start,
        })
    }

    /// Reloads the views from the store if the rows in memory may differ from it, once
    /// the commit being stored, if any, is done ([`Views::settle`]).
    pub(crate) async fn reload_if_stale(&mut self) -> Result<()> {
        self.settle().await;
        let lost = self.lost.swap(0, std::sync::atomic::Ordering::AcqRel) > 0;
        // A commit still ahead here was begun and never flown: its writer is gone.
        if self.stale || lost || self.ahead > 0 {
            self.load().await?;
            self.stale = false;
            self.ahead = 0;
        }
        Ok(())
    }

    /// [`Views::reload_if_stale`] for the steps of this peer's own writes: while commits of
    /// its own are ahead of the store, the rows in memory are the truth (nothing reloads,
    /// and nothing waits for the commit being stored), unless they went wrong.
    pub(crate) async fn reload_unless_ahead(&mut self) -> Result<()> {
        // A commit lost (its writer dropped it) leaves the rows in memory ahead for good.
        let lost = self.lost.load(std::sync::atomic::Ordering::Acquire) > 0;
        if self.stale || lost {
            self.settle().await;
        }
        if self.ahead == 0 || lost {
            self.reload_if_stale().await?;
        }
        Ok(())
    }

    /// Undoes the order-sensitive views' events after `late` (every event at or after it
    /// when it was applied already), then applies the logs from there: the undone events
    /// again, `late` and new events. Falls back to a rebuild if undo records no longer
    /// reach back to `late`.
    ///
    /// Entries keep arriving while this runs (peers push into the store): once the undo is
    /// done the logs are read again, and if an entry stored meanwhile sorts before `late`,
    /// the undo goes on back to it before anything applies, so no event is ever applied
    /// after one it sorts before.
    pub(crate) async fn rewind(&mut self, mut late: EventOrder) -> Result<Progress> {
        let previous: BTreeMap<LogId, u64> = self
            .mark
            .logs
            .iter()
            .map(|(log, m)| (*log, m.counter))
            .collect();
        // Records at this order and after are undone already.
        let mut undone_from: Option<EventOrder> = None;
        let mut undone = 0usize;
        let streams = loop {
            if self.mark.undo_floor.is_some_and(|floor| late.time < floor) {
                tracing::info!(
                    scope = %self.scope,
                    late = %late.time,
                    "a late event is older than the undo horizon: rebuilding the views"
                );
                return self.rebuild_all().await;
            }
            // The records of events from `late` to what is undone already, oldest first,
            // a page at a time.
            let mut records = Vec::new();
            let mut range = RowRange::new(
                encode_order(&late).to_vec(),
                undone_from.map(|o| encode_order(&o).to_vec()),
                UNDO_PAGE,
            );
            loop {
                let page = self.store.view_range(&self.scope, UNDO, &range).await?;
                let full = page.len() == range.limit;
                if let Some((last, _)) = page.last() {
                    range.from.clone_from(last);
                    range.after = true;
                }
                records.extend(page);
                if !full {
                    break;
                }
            }
            undone += records.len();
            // Undo newest first; a log's cursor goes back to before its oldest undone event.
            for (key, bytes) in records.into_iter().rev() {
                let order = decode_order(&key)?;
                let record = UndoRecord::decode(&bytes)?;
                for (view, row, old) in record.changes {
                    let index = if view == REJECTIONS {
                        self.states.len()
                    } else {
                        self.view_index(&view)?
                    };
                    self.state_at_mut(index).restore(row, old);
                }
                match record.prev_log {
                    Some(mark) => self.mark.logs.insert(order.log, mark),
                    None => self.mark.logs.remove(&order.log),
                };
                self.undo_done.push(key);
            }
            undone_from = Some(late);
            let mut streams = self.streams(&self.mark.clone()).await?;
            match self.peek_min(&mut streams).await? {
                Some(first) if first < late => {
                    tracing::debug!(scope = %self.scope, late = %first.time, "an entry stored during the rewind sorts before it: undoing further");
                    late = first;
                }
                _ => break streams,
            }
        };
        tracing::debug!(scope = %self.scope, undone, "late event: undid the events after it");
        let mut progress = self.run(streams, &previous, Restart::Late).await?;
        progress.rewound = true;
        Ok(progress)
    }

    /// Starts every view, the rejections and the undo records from nothing and applies
    /// every event again.
    pub(crate) async fn rebuild_all(&mut self) -> Result<Progress> {
        let previous: BTreeMap<LogId, u64> = self
            .mark
            .logs
            .iter()
            .map(|(log, m)| (*log, m.counter))
            .collect();
        for state in &mut self.states {
            state.wipe();
        }
        self.rejections.wipe();
        self.undo_pending.clear();
        self.undo_done.clear();
        self.undo_reset = true;
        self.mark = Mark {
            views: self.mark.views.clone(),
            atomic: self.mark.atomic,
            ..Mark::default()
        };
        let streams = self.streams(&self.mark.clone()).await?;
        let mut progress = self.run(streams, &previous, Restart::Rebuild).await?;
        progress.rebuilt = true;
        Ok(progress)
    }

    pub(crate) fn is_ordered_view(&self, name: &[u8]) -> bool {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.by_name.get(n))
            .is_some_and(|&i| self.kind_of(i) == ViewKind::Ordered)
    }
}
