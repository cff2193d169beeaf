//! Catching up: reading each log's new entries from the store, merging them in the
//! thread's order, applying each event to the views (all of a view's operations or none),
//! and applying this peer's own events from the payloads in hand.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use threads_id::LogId;
use threads_log::{Appended, EventOrder, Head, Hlc};
use threads_store::{Page, Store};

use crate::engine::{
    Decoded, EVENT_LEVEL, IndexedOp, LogStream, PASSED_OVER, PendingUndo, Progress, Restart, Views,
    verifier,
};
use crate::error::Result;
use crate::event::{Batch, Event, ORDER_LEN, encode_order};
use crate::mark::{LogMark, Mark};
use crate::reducer::ViewKind;
use crate::state::Logged;

impl<S: Store + 'static> Views<S> {
    /// Applies every event the store holds that the views have not applied yet.
    ///
    /// Commutative views apply new events as they come; if a new event sorts before the
    /// latest applied one and there are order-sensitive views, those undo the events after
    /// it (from their undo records), apply it, and apply the undone events again; a late
    /// event older than [`ViewConfig::undo_horizon_ms`](crate::ViewConfig::undo_horizon_ms)
    /// rebuilds the views instead. Changes are committed with the cursor every
    /// [`ViewConfig::commit_every`](crate::ViewConfig::commit_every) events.
    ///
    /// # Errors
    /// A store error or an unreadable entry; the views stay as of the last commit.
    pub async fn catch_up(&mut self) -> Result<Progress> {
        self.reload_if_stale().await?;
        let result = self.catch_up_inner().await;
        if result.is_err() {
            self.stale = true;
        }
        result
    }

    /// Stores this peer's own new entries `batch` (built after `expected`, the log's head)
    /// and applies them, in one store transaction
    /// ([`ViewBook::append_with_views`](threads_store::ViewBook::append_with_views)):
    /// `events` are their orders and payloads. The entries and the view rows that apply them
    /// are durable together, so a crash never leaves one without the other, and a write
    /// costs one transaction. They apply exactly as [`Views::catch_up`] would apply them
    /// when they are the next events of their log and sort after everything applied; else
    /// (or if the log waits at an unreadable entry, or an event is dated beyond the allowed
    /// drift) the entries are stored alone and the views catch up. Entries of other logs
    /// stored meanwhile are left to the next catch-up.
    ///
    /// # Errors
    /// A store error (nothing is stored: a stale `expected` is
    /// [`StoreError::Conflict`](threads_store::StoreError::Conflict)), or an error of the
    /// catch-up after the entries were stored alone (they stay stored and apply at the next
    /// catch-up).
    pub async fn write_local(
        &mut self,
        expected: Option<Head>,
        batch: &[Appended],
        events: &[(EventOrder, &[u8])],
    ) -> Result<Progress> {
        let Some((first, _)) = events.first() else {
            return Ok(Progress::default());
        };
        let log = first.log;
        match self.begin_local(expected, batch, events).await? {
            crate::Begun::Done(progress) => Ok(progress),
            crate::Begun::Commit(local) => {
                let (commit, landing) = local.into_parts();
                // Until the transaction is done the views are ahead of the store: an
                // error, or this future dropped, makes them reload from the store before
                // the next use.
                let stored = self
                    .store
                    .append_with_views(
                        self.thread,
                        log,
                        expected,
                        batch,
                        std::slice::from_ref(&commit),
                    )
                    .await;
                let progress = landing.progress;
                self.finish_local(landing, stored.is_ok());
                stored?;
                Ok(progress)
            }
        }
    }

    /// Whether `events` (consecutive events of one log, oldest first) apply from the
    /// payloads in hand exactly as a catch-up would apply them.
    pub(crate) async fn applies_exactly(&mut self, events: &[(EventOrder, &[u8])]) -> Result<bool> {
        let Some((first, _)) = events.first() else {
            return Ok(false);
        };
        self.reload_unless_ahead().await?;
        let mark = self.mark.logs.get(&first.log);
        let follows = mark.map_or(0, |m| m.counter) + 1 == first.counter
            && mark.is_none_or(|m| first.time > m.time);
        let consecutive = events.windows(2).all(|pair| {
            let (a, b) = (pair[0].0, pair[1].0);
            a.log == b.log && a.counter + 1 == b.counter && a.time < b.time
        });
        let ordered = self.any_ordered();
        let late = ordered && self.mark.last.is_some_and(|last| *first < last);
        // An event dated beyond the allowed drift waits in a catch-up: not applied here.
        let horizon = now_ms().saturating_add(self.config.max_future_ms);
        let future = events.iter().any(|(o, _)| o.time.physical_ms() > horizon);
        let stopped = self.stops.contains_key(&first.log);
        Ok(follows && consecutive && !late && !future && !stopped && self.blocked.is_empty())
    }

    /// Applies `events` from their payloads, uncommitted.
    pub(crate) async fn apply_in_hand(
        &mut self,
        events: &[(EventOrder, &[u8])],
    ) -> Result<Progress> {
        let mut progress = Progress::default();
        for (order, payload) in events {
            let event = Decoded {
                order: *order,
                payload: Some(payload.to_vec()),
                monotone: true,
                passed: false,
            };
            if let Err(e) = self.apply(&event, false).await {
                self.stale = true;
                return Err(e);
            }
            progress.applied += 1;
        }
        Ok(progress)
    }

    pub(crate) async fn catch_up_inner(&mut self) -> Result<Progress> {
        if let Some(back) = self.refresh_stops().await? {
            // A log forked before events of it that were applied: they are undone.
            return self.regate_inner(Some(back)).await;
        }
        let mut streams = self.streams(&self.mark.clone()).await?;
        let Some(first) = self.peek_min(&mut streams).await? else {
            self.note_blocked(&streams);
            return Ok(Progress::default());
        };
        let ordered = self.any_ordered();
        if ordered && self.mark.last.is_some_and(|last| first < last) {
            return self.rewind(first).await;
        }
        self.run(streams, &BTreeMap::new(), Restart::Late).await
    }

    /// The verifier of `log`, made on first use.
    pub(crate) fn verifier_for(&mut self, log: LogId) -> Result<&threads_log::Verifier> {
        if !self.verifiers.contains_key(&log) {
            let epochs = self
                .epochs
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let verifier = verifier(self.thread, log, &self.key, &epochs)?;
            self.verifiers.insert(log, verifier);
        }
        Ok(&self.verifiers[&log])
    }

    pub(crate) async fn streams(&mut self, from: &Mark) -> Result<Vec<LogStream>> {
        let logs = self.store.logs(self.thread).await?;
        let mut streams = Vec::with_capacity(logs.len());
        for log in logs {
            self.verifier_for(log)?;
            let mark = from.logs.get(&log);
            streams.push(LogStream {
                log,
                after: mark.map_or(0, |m| m.counter),
                last_time: mark.map(|m| m.time),
                buffer: VecDeque::new(),
                done: false,
                blocked: None,
            });
        }
        Ok(streams)
    }

    pub(crate) async fn fill(&self, stream: &mut LogStream) -> Result<()> {
        if !stream.buffer.is_empty() || stream.done {
            return Ok(());
        }
        let entries = self
            .store
            .entries_after(
                self.thread,
                stream.log,
                stream.after,
                Page::new(self.config.page, 16 << 20),
            )
            .await?;
        if entries.is_empty() {
            stream.done = true;
            return Ok(());
        }
        let verifier = &self.verifiers[&stream.log];
        let horizon = now_ms().saturating_add(self.config.max_future_ms);
        let stop = self.stops.get(&stream.log).copied();
        for stored in entries {
            if stop.is_some_and(|stop| stored.counter >= stop) {
                // The author forked the log here: nothing from here on applies.
                stream.done = true;
                break;
            }
            let (time, monotone, payload, passed) = match verifier.read_stored(&stored.entry) {
                Ok(read) if read.time.physical_ms() > horizon => {
                    // Dated beyond the allowed drift: the log waits here until the clock
                    // reaches the event (a catch-up after that applies it).
                    tracing::debug!(log = %stream.log, counter = stored.counter, time = %read.time, "entry dated in the future waits");
                    stream.blocked = Some(stored.counter);
                    stream.done = true;
                    break;
                }
                Ok(read)
                    if read.payload.is_none()
                        && !self
                            .gate
                            .as_ref()
                            .is_some_and(|gate| gate.voids(&stream.log, stored.counter)) =>
                {
                    // Received without its body, and no operation of the thread compacted
                    // it (yet): the log waits here until one does or a peer serves the body.
                    tracing::debug!(log = %stream.log, counter = stored.counter, "entry without its body waits");
                    stream.blocked = Some(stored.counter);
                    stream.done = true;
                    break;
                }
                Ok(read) => {
                    // Sealed with a key whose events these views pass over: in its place,
                    // with nothing to apply.
                    let passed = self.pass.contains(&read.read_key);
                    match stream.last_time {
                        Some(last) if read.time <= last => (last, false, read.payload, passed),
                        _ => (read.time, true, read.payload, passed),
                    }
                }
                // Passed over: it counts as applied with nothing to apply, placed right
                // after the log's previous event.
                Err(_) if self.config.skip_unreadable => (
                    stream.last_time.unwrap_or(Hlc::new(0, 0)),
                    true,
                    None,
                    false,
                ),
                Err(source) => {
                    // Not readable with the keys held: the log waits here (events of a log
                    // apply in counter order) until a key that opens it is added.
                    tracing::debug!(log = %stream.log, counter = stored.counter, %source, "entry not readable");
                    stream.blocked = Some(stored.counter);
                    stream.done = true;
                    break;
                }
            };
            stream.last_time = Some(time);
            stream.after = stored.counter;
            stream.buffer.push_back(Decoded {
                order: EventOrder {
                    time,
                    log: stream.log,
                    counter: stored.counter,
                },
                payload,
                monotone,
                passed,
            });
        }
        Ok(())
    }

    /// Fills every stream and returns the smallest next order.
    pub(crate) async fn peek_min(&self, streams: &mut [LogStream]) -> Result<Option<EventOrder>> {
        let mut min: Option<EventOrder> = None;
        for stream in streams.iter_mut() {
            self.fill(stream).await?;
            if let Some(next) = stream.buffer.front() {
                min = Some(min.map_or(next.order, |m| m.min(next.order)));
            }
        }
        Ok(min)
    }

    /// Applies the streams' events in the thread's order. The merge never goes back: a
    /// stream whose buffer ran out is read again before the next event is chosen, so an
    /// entry stored meanwhile sorts after its log's last applied event; one that sorts
    /// before events of other logs already applied comes from a log whose stream ended,
    /// and waits for the next catch-up, which rewinds to it.
    pub(crate) async fn run(
        &mut self,
        mut streams: Vec<LogStream>,
        replay_until: &BTreeMap<LogId, u64>,
        kind: Restart,
    ) -> Result<Progress> {
        let mut progress = Progress::default();
        // Counted from the mark, not from the streams: they may have read ahead already.
        let mut replay_left: u64 = streams
            .iter()
            .map(|s| {
                let applied = self.mark.logs.get(&s.log).map_or(0, |m| m.counter);
                replay_until
                    .get(&s.log)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(applied)
            })
            .sum();
        let mut pending = 0usize;
        loop {
            let mut best: Option<(usize, EventOrder)> = None;
            for (i, stream) in streams.iter_mut().enumerate() {
                self.fill(stream).await?;
                if let Some(next) = stream.buffer.front()
                    && best.is_none_or(|(_, order)| next.order < order)
                {
                    best = Some((i, next.order));
                }
            }
            let Some((i, _)) = best else { break };
            let Some(event) = streams[i].buffer.pop_front() else {
                unreachable!("the chosen stream has an event")
            };
            let replay =
                event.order.counter <= replay_until.get(&event.order.log).copied().unwrap_or(0);
            let ordered_only = replay && kind == Restart::Late;
            self.apply(&event, ordered_only).await?;
            if replay {
                replay_left -= 1;
                progress.replayed += 1;
            } else {
                progress.applied += 1;
            }
            pending += 1;
            // A rewind commits when its replay is done: committed in the middle, a crash
            // would resume with commutative views ahead of the cursor. A rebuild replays
            // every view, so it commits as it goes and its memory stays bounded.
            let due = pending >= self.config.commit_every
                || self.pending_bytes() >= self.config.commit_bytes;
            if due && (replay_left == 0 || kind == Restart::Rebuild) {
                self.commit().await?;
                pending = 0;
            }
        }
        if pending > 0 || self.has_changes() {
            self.commit().await?;
        }
        self.note_blocked(&streams);
        Ok(progress)
    }

    pub(crate) fn note_blocked(&mut self, streams: &[LogStream]) {
        self.blocked = streams
            .iter()
            .filter_map(|s| s.blocked.map(|counter| (s.log, counter)))
            .collect();
    }

    pub(crate) fn reject(&mut self, order: &EventOrder, view: &str, reason: &str) {
        let key = rejection_key(order, view);
        tracing::debug!(author = %order.log, counter = order.counter, view, reason, "event refused");
        self.rejections.put(key, reason.as_bytes().to_vec());
    }

    /// Applies one event to the views, fetching what they read and the cache misses, then
    /// moves the cursor past it and keeps its undo record.
    pub(crate) async fn apply(&mut self, event: &Decoded, ordered_only: bool) -> Result<()> {
        let prev_log = self.mark.logs.get(&event.order.log).copied();
        loop {
            for index in 0..=self.states.len() {
                self.state_at_mut(index).begin();
            }
            let ordered = self.apply_event(event, ordered_only);
            if self.missed() {
                // Something read was not in memory: undo this run, fetch, run again.
                for index in 0..=self.states.len() {
                    let state = self.state_at_mut(index);
                    state.roll_back_to(0);
                    state.end();
                }
                self.fetch_missed().await?;
                continue;
            }
            let logs: Vec<Vec<Logged>> = (0..=self.states.len())
                .map(|index| self.state_at_mut(index).end())
                .collect();
            if ordered {
                self.keep_undo(event.order, prev_log, logs);
            }
            break;
        }
        self.mark.logs.insert(
            event.order.log,
            LogMark {
                counter: event.order.counter,
                time: event.order.time,
            },
        );
        self.mark.last = Some(self.mark.last.map_or(event.order, |l| l.max(event.order)));
        Ok(())
    }

    /// Keeps the undo record of an event that addressed order-sensitive views: the rows of
    /// those views (and their rejections) it changed, with their values before.
    fn keep_undo(&mut self, order: EventOrder, prev_log: Option<LogMark>, logs: Vec<Vec<Logged>>) {
        let mut changes = Vec::new();
        for (index, log) in logs.into_iter().enumerate() {
            let rejections = index == self.states.len();
            if !rejections && self.kind_of(index) != ViewKind::Ordered {
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            for (key, before) in log {
                if rejections && !self.is_ordered_view(&key[ORDER_LEN.min(key.len())..]) {
                    continue;
                }
                if !seen.insert(key.clone()) {
                    continue;
                }
                let old = match before {
                    Some(entry) => Some(entry),
                    None => self.state_at(index).known_committed(&key),
                };
                changes.push((index, key, old));
            }
        }
        self.undo_pending.push(PendingUndo {
            order,
            prev_log,
            changes,
        });
    }

    /// Applies one event: every operation to its view (to order-sensitive views only when
    /// `ordered_only`), the operations of one view all or none: a view that refuses its
    /// operations keeps none of them and records why, the other views apply theirs.
    /// Returns whether the event addressed an order-sensitive view.
    pub(crate) fn apply_event(&mut self, event: &Decoded, ordered_only: bool) -> bool {
        // A compacted event changes no view: one that an operation of the thread compacted
        // (whatever body this peer still holds), or one whose body is gone.
        if self
            .gate
            .as_ref()
            .is_some_and(|gate| gate.voids(&event.order.log, event.order.counter))
        {
            return false;
        }
        let Some(payload) = &event.payload else {
            return false;
        };
        if !event.monotone {
            if !ordered_only {
                self.reject(
                    &event.order,
                    EVENT_LEVEL,
                    "its time does not increase in its log",
                );
            }
            return false;
        }
        if event.passed {
            // Sealed with a key others hold too (the ACL key, which followers have): what
            // it addresses to these views is refused, in its place in the order.
            let addressed = Batch::decode(payload).is_some_and(|batch| {
                batch
                    .ops()
                    .iter()
                    .any(|(name, _)| self.by_name.contains_key(name))
            });
            if addressed && !ordered_only {
                self.reject(&event.order, EVENT_LEVEL, PASSED_OVER);
            }
            return false;
        }
        let Some(batch) = Batch::decode(payload) else {
            if !ordered_only {
                self.reject(&event.order, EVENT_LEVEL, "the payload is not a view batch");
            }
            return false;
        };
        // Group the operations by view, keeping their indices, in order of first use.
        let mut groups: Vec<(usize, Vec<IndexedOp<'_>>)> = Vec::new();
        for (index, (name, data)) in batch.ops().iter().enumerate() {
            let Some(&view) = self.by_name.get(name) else {
                continue;
            };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match groups.iter_mut().find(|(v, _)| *v == view) {
                Some((_, ops)) => ops.push((index, data)),
                None => groups.push((view, vec![(index, data)])),
            }
        }
        if self.config.atomic {
            self.apply_whole(&groups, event.order);
            return !groups.is_empty();
        }
        let mut ordered = false;
        for (view, ops) in &groups {
            if self.kind_of(*view) == ViewKind::Ordered {
                ordered = true;
            } else if ordered_only {
                continue;
            }
            if let Some(reason) = self.run_group(*view, ops, event.order) {
                let name = self.reducers[*view].name().to_owned();
                self.reject(&event.order, &name, &reason);
            }
        }
        ordered
    }

    /// Applies an event's operations whole or not at all ([`ViewConfig::atomic`]): at the
    /// first view that refuses its operations, every view's changes of this event are
    /// undone; that view records why, and every other view the event addressed records
    /// [`NOT_APPLIED`].
    ///
    /// [`ViewConfig::atomic`]: crate::ViewConfig::atomic
    fn apply_whole(&mut self, groups: &[(usize, Vec<IndexedOp<'_>>)], order: EventOrder) {
        let points: Vec<usize> = groups
            .iter()
            .map(|(view, _)| self.states[*view].savepoint())
            .collect();
        let refused = groups.iter().find_map(|(view, ops)| {
            self.run_group(*view, ops, order)
                .map(|reason| (*view, reason))
        });
        let Some((refusing, reason)) = refused else {
            return;
        };
        for ((view, _), point) in groups.iter().zip(points) {
            self.states[*view].roll_back_to(point);
        }
        for (view, _) in groups {
            let name = self.reducers[*view].name().to_owned();
            if *view == refusing {
                self.reject(&order, &name, &reason);
            } else {
                self.reject(&order, &name, NOT_APPLIED);
            }
        }
    }

    /// Runs one view's operations of an event through the gate and the reducer. Returns
    /// the reason of the first refusal (the view's state is then as before), or `None`.
    fn run_group(
        &mut self,
        view: usize,
        ops: &[IndexedOp<'_>],
        order: EventOrder,
    ) -> Option<String> {
        let reducer = Arc::clone(&self.reducers[view]);
        if let Some(gate) = &self.gate {
            let refused = ops.iter().find_map(|&(index, data)| {
                let op = Event {
                    thread: self.thread,
                    order,
                    index,
                    data,
                };
                let resource = reducer.resource(&op);
                gate.admits(
                    reducer.name(),
                    reducer.access(&op),
                    resource.as_deref(),
                    &op,
                )
                .err()
            });
            if let Some(reject) = refused {
                return Some(reject.0);
            }
        }
        let state = &mut self.states[view];
        let point = state.savepoint();
        for &(index, data) in ops {
            let op = Event {
                thread: self.thread,
                order,
                index,
                data,
            };
            if let Err(reject) = reducer.apply(state, &op) {
                state.roll_back_to(point);
                return Some(reject.0);
            }
        }
        None
    }
}

/// The reason recorded for a view whose operations of an event were fine but not applied,
/// because another view refused its operations of the same event
/// ([`ViewConfig::atomic`](crate::ViewConfig::atomic)).
pub const NOT_APPLIED: &str = "not applied: another operation of its event was refused";

/// The key of the rejection of `view`'s operations of the event at `order`.
pub(crate) fn rejection_key(order: &EventOrder, view: &str) -> Vec<u8> {
    let mut key = encode_order(order).to_vec();
    key.extend_from_slice(view.as_bytes());
    key
}

/// This peer's wall clock, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
