//! Lossless, resumable subscriptions to the events the views applied.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use threads_crypto::ThreadKey;
use threads_id::{LogId, ThreadId};
use threads_log::{EventOrder, Verifier};
use threads_store::{Page, Store};
use tokio::sync::watch;

use crate::error::{Result, ViewError};

/// How far a reader has come in each log of a thread: the last counter seen per log.
/// Encode it to resume a subscription after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    counters: BTreeMap<LogId, u64>,
}

#[derive(Serialize, Deserialize)]
struct WireCursor(Vec<(ByteBuf, u64)>);

impl Cursor {
    pub(crate) fn from_counters(counters: BTreeMap<LogId, u64>) -> Cursor {
        Cursor { counters }
    }

    /// The last counter seen in `log` (0 for none).
    pub fn counter(&self, log: &LogId) -> u64 {
        self.counters.get(log).copied().unwrap_or(0)
    }

    /// The number of events seen, over all logs.
    pub fn total(&self) -> u64 {
        self.counters.values().sum()
    }

    /// The cursor as bytes (DAG-CBOR).
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = WireCursor(
            self.counters
                .iter()
                .map(|(log, c)| (ByteBuf::from(log.to_bytes()), *c))
                .collect(),
        );
        serde_ipld_dagcbor::to_vec(&wire).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    /// A cursor from [`Cursor::to_bytes`].
    ///
    /// # Errors
    /// [`ViewError::Corrupt`] if the bytes are not a cursor.
    pub fn from_bytes(bytes: &[u8]) -> Result<Cursor> {
        let wire: WireCursor = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ViewError::Corrupt(format!("cursor: {e}")))?;
        let mut counters = BTreeMap::new();
        for (log, counter) in wire.0 {
            let log =
                LogId::from_bytes(&log).map_err(|e| ViewError::Corrupt(format!("cursor: {e}")))?;
            counters.insert(log, counter);
        }
        Ok(Cursor { counters })
    }
}

/// One event delivered to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The event's place in the order (its time as written).
    pub order: EventOrder,
    /// Its payload, or `None` if the body was compacted.
    pub payload: Option<Vec<u8>>,
    /// The subscription's cursor once this event is consumed: resume from it.
    pub cursor: Cursor,
}

/// A subscription to the events the views applied. Events of one log come in counter
/// order; events of several logs that become available together come in the thread's
/// order. Nothing is buffered beyond one page: a slow reader is served from the store, so
/// it never sees a gap.
pub struct Subscription<S> {
    store: Arc<S>,
    thread: ThreadId,
    key: ThreadKey,
    applied: watch::Receiver<BTreeMap<LogId, u64>>,
    at: Cursor,
    page: usize,
    buffer: VecDeque<Delivered>,
    verifiers: HashMap<LogId, Verifier>,
}

impl<S> std::fmt::Debug for Subscription<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("thread", &self.thread)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Subscription<S> {
    pub(crate) fn new(
        store: Arc<S>,
        thread: ThreadId,
        key: ThreadKey,
        applied: watch::Receiver<BTreeMap<LogId, u64>>,
        from: Cursor,
        page: usize,
    ) -> Subscription<S> {
        Subscription {
            store,
            thread,
            key,
            applied,
            at: from,
            page,
            buffer: VecDeque::new(),
            verifiers: HashMap::new(),
        }
    }

    /// The cursor after the last event returned.
    pub fn cursor(&self) -> &Cursor {
        &self.at
    }

    /// The next applied event, waiting until there is one. `Ok(None)` once the views were
    /// dropped and every applied event was delivered.
    ///
    /// # Errors
    /// A store error or an unreadable entry.
    pub async fn next(&mut self) -> Result<Option<Delivered>> {
        loop {
            if let Some(next) = self.buffer.pop_front() {
                for (log, counter) in &next.cursor.counters {
                    self.at.counters.insert(*log, *counter);
                }
                return Ok(Some(next));
            }
            let applied = self.applied.borrow_and_update().clone();
            self.fill(&applied).await?;
            if self.buffer.is_empty() && self.applied.changed().await.is_err() {
                // The views are gone; deliver what they had applied, then end.
                let applied = self.applied.borrow().clone();
                self.fill(&applied).await?;
                if self.buffer.is_empty() {
                    return Ok(None);
                }
            }
        }
    }

    /// The next event if one is ready now, without waiting.
    ///
    /// # Errors
    /// As [`Subscription::next`].
    pub async fn try_next(&mut self) -> Result<Option<Delivered>> {
        if self.buffer.is_empty() {
            let applied = self.applied.borrow().clone();
            self.fill(&applied).await?;
        }
        match self.buffer.pop_front() {
            Some(next) => {
                for (log, counter) in &next.cursor.counters {
                    self.at.counters.insert(*log, *counter);
                }
                Ok(Some(next))
            }
            None => Ok(None),
        }
    }

    async fn fill(&mut self, applied: &BTreeMap<LogId, u64>) -> Result<()> {
        let mut found: Vec<(EventOrder, Option<Vec<u8>>)> = Vec::new();
        for (&log, &until) in applied {
            let after = self.at.counter(&log);
            if after >= until {
                continue;
            }
            let want = usize::try_from(until - after)
                .unwrap_or(usize::MAX)
                .min(self.page);
            let entries = self
                .store
                .entries_after(self.thread, log, after, Page::new(want, 16 << 20))
                .await?;
            if !self.verifiers.contains_key(&log) {
                let verifier = Verifier::new(self.thread, log, &self.key).map_err(|source| {
                    ViewError::Unreadable {
                        log,
                        counter: 0,
                        source,
                    }
                })?;
                self.verifiers.insert(log, verifier);
            }
            let verifier = &self.verifiers[&log];
            for stored in entries.into_iter().filter(|e| e.counter <= until) {
                let read =
                    verifier
                        .read_stored(&stored.entry)
                        .map_err(|source| ViewError::Unreadable {
                            log,
                            counter: stored.counter,
                            source,
                        })?;
                let order = EventOrder {
                    time: read.time,
                    log,
                    counter: stored.counter,
                };
                found.push((order, read.payload));
            }
        }
        // Per log, counters increase; across logs, sort by the thread's order while
        // keeping each log's own sequence.
        found.sort_by_key(|(order, _)| (order.log, order.counter));
        let mut per_log: BTreeMap<LogId, VecDeque<(EventOrder, Option<Vec<u8>>)>> =
            BTreeMap::new();
        for item in found {
            per_log.entry(item.0.log).or_default().push_back(item);
        }
        let mut cursor = self.at.clone();
        loop {
            let next = per_log
                .iter()
                .filter_map(|(log, q)| q.front().map(|(o, _)| (*o, *log)))
                .min();
            let Some((_, log)) = next else { break };
            let Some((order, payload)) = per_log.get_mut(&log).and_then(VecDeque::pop_front)
            else {
                break;
            };
            cursor.counters.insert(log, order.counter);
            self.buffer.push_back(Delivered {
                order,
                payload,
                cursor: cursor.clone(),
            });
        }
        Ok(())
    }
}
