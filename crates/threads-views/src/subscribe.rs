//! Lossless, resumable subscriptions to the events the views applied.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use threads_crypto::{ReadKey, ThreadKey};
use threads_id::{LogId, ThreadId};
use threads_log::{EventOrder, Verifier};
use threads_store::{Page, Store};
use tokio::sync::watch;

use crate::config::ViewConfig;
use crate::engine::verifier;
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

/// An event read ahead from one log: its order and its payload (`None`: compacted).
type Buffered = (EventOrder, Option<Vec<u8>>);

/// A subscription to the events the views applied, in the thread's order (HLC, log id,
/// counter) among the events available when it reads; an event that arrives late (sorting
/// before delivered ones) is delivered when it arrives. Events of one log always come in
/// counter order. Nothing is buffered beyond one page per log: a slow reader is served from
/// the store, so it never sees a gap.
pub struct Subscription<S> {
    store: Arc<S>,
    thread: ThreadId,
    key: ThreadKey,
    epochs: Arc<std::sync::RwLock<Vec<ReadKey>>>,
    known_epochs: usize,
    skip_unreadable: bool,
    applied: watch::Receiver<BTreeMap<LogId, u64>>,
    at: Cursor,
    page: usize,
    buffers: BTreeMap<LogId, VecDeque<Buffered>>,
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
        epochs: Arc<std::sync::RwLock<Vec<ReadKey>>>,
        applied: watch::Receiver<BTreeMap<LogId, u64>>,
        from: Cursor,
        config: &ViewConfig,
    ) -> Subscription<S> {
        Subscription {
            store,
            thread,
            key,
            epochs,
            known_epochs: 0,
            skip_unreadable: config.skip_unreadable,
            applied,
            at: from,
            page: config.page,
            buffers: BTreeMap::new(),
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
            let applied = self.applied.borrow_and_update().clone();
            if let Some(next) = self.take(&applied).await? {
                return Ok(Some(next));
            }
            if self.applied.changed().await.is_err() {
                // The views are gone; deliver what they had applied, then end.
                let applied = self.applied.borrow().clone();
                return self.take(&applied).await;
            }
        }
    }

    /// The next event if one is ready now, without waiting.
    ///
    /// # Errors
    /// As [`Subscription::next`].
    pub async fn try_next(&mut self) -> Result<Option<Delivered>> {
        let applied = self.applied.borrow().clone();
        self.take(&applied).await
    }

    /// Fills the buffer of every log that has undelivered applied events, then takes the
    /// smallest event.
    async fn take(&mut self, applied: &BTreeMap<LogId, u64>) -> Result<Option<Delivered>> {
        let epochs: Vec<ReadKey> = self
            .epochs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if epochs.len() != self.known_epochs {
            // Keys of later epochs were added: every verifier learns them.
            self.verifiers.clear();
            self.known_epochs = epochs.len();
        }
        for (&log, &until) in applied {
            let buffer = self.buffers.entry(log).or_default();
            let after = buffer
                .back()
                .map_or_else(|| self.at.counter(&log), |(o, _)| o.counter);
            if !buffer.is_empty() || after >= until {
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
                let verifier = verifier(self.thread, log, &self.key, &epochs)?;
                self.verifiers.insert(log, verifier);
            }
            let verifier = &self.verifiers[&log];
            for stored in entries.into_iter().filter(|e| e.counter <= until) {
                let Ok(read) = verifier.read_stored(&stored.entry) else {
                    if self.skip_unreadable {
                        // The views passed over it; so does the subscription.
                        self.at.counters.insert(log, stored.counter);
                        continue;
                    }
                    // Not readable with the keys held yet: this log waits here.
                    break;
                };
                let order = EventOrder {
                    time: read.time,
                    log,
                    counter: stored.counter,
                };
                self.buffers
                    .entry(log)
                    .or_default()
                    .push_back((order, read.payload));
            }
        }
        let next = self
            .buffers
            .iter()
            .filter_map(|(log, q)| q.front().map(|(o, _)| (*o, *log)))
            .min();
        let Some((_, log)) = next else {
            return Ok(None);
        };
        let Some((order, payload)) = self.buffers.get_mut(&log).and_then(VecDeque::pop_front)
        else {
            return Ok(None);
        };
        self.at.counters.insert(log, order.counter);
        Ok(Some(Delivered {
            order,
            payload,
            cursor: self.at.clone(),
        }))
    }
}
