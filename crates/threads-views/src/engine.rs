//! The engine: reads a thread's logs from the store, decrypts, orders and applies events
//! to every view, and commits the views' changes with the cursor in one transaction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use threads_crypto::{ReadKey, ThreadKey};
use threads_id::{LogId, ThreadId};
use threads_log::{EventOrder, Hlc, Verifier};
use threads_store::{Page, Store, ViewChange, ViewCommit, ViewSnapshot};
use tokio::sync::watch;

use crate::error::{Result, ViewError};
use crate::event::{Batch, Event, ORDER_LEN, decode_order, encode_order};
use crate::mark::{LogMark, Mark, Snapshot, position_from_meta, position_meta};
use crate::reducer::{Gate, Reducer, ViewKind};
use crate::state::State;
use crate::subscribe::{Cursor, Subscription};

/// The name under which rejections are kept, next to the views' rows.
const REJECTIONS: &str = "~rejections";
/// The "view" named in rejections of a whole event (not a batch, time going back).
pub const EVENT_LEVEL: &str = "~event";

/// How the engine paces its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewConfig {
    /// Save a snapshot of every view after this many applied events.
    pub snapshot_every: u64,
    /// Also wait, between snapshots, for at least as many events as the views have rows, so
    /// the cost of snapshots stays proportional to the events applied (on by default).
    pub amortize_snapshots: bool,
    /// How many snapshots to keep (the oldest are deleted).
    pub keep_snapshots: u64,
    /// Commit after this many applied events (and at the end of each catch-up).
    pub commit_every: usize,
    /// How many entries to read from a log at a time.
    pub page: usize,
    /// What to do with an entry this peer cannot read with the keys it holds: wait for a
    /// key that opens it (`false`, the default: the log stops there, see
    /// [`Views::blocked`]), or pass over it for good (`true`: for views that only read
    /// events sealed with one known key, such as the access-control list).
    pub skip_unreadable: bool,
}

impl Default for ViewConfig {
    fn default() -> ViewConfig {
        ViewConfig {
            snapshot_every: 10_000,
            amortize_snapshots: true,
            keep_snapshots: 3,
            commit_every: 1_000,
            page: 512,
            skip_unreadable: false,
        }
    }
}

impl ViewConfig {
    /// The defaults: a snapshot every 10,000 events (amortized), 3 kept, a commit every
    /// 1,000 events.
    pub fn new() -> ViewConfig {
        ViewConfig::default()
    }

    /// Sets [`ViewConfig::snapshot_every`] (at least 1).
    #[must_use]
    pub fn with_snapshot_every(mut self, events: u64) -> ViewConfig {
        self.snapshot_every = events.max(1);
        self
    }

    /// Sets [`ViewConfig::amortize_snapshots`].
    #[must_use]
    pub fn with_amortized_snapshots(mut self, amortize: bool) -> ViewConfig {
        self.amortize_snapshots = amortize;
        self
    }

    /// Sets [`ViewConfig::keep_snapshots`] (at least 1).
    #[must_use]
    pub fn with_keep_snapshots(mut self, snapshots: u64) -> ViewConfig {
        self.keep_snapshots = snapshots.max(1);
        self
    }

    /// Sets [`ViewConfig::commit_every`] (at least 1).
    #[must_use]
    pub fn with_commit_every(mut self, events: usize) -> ViewConfig {
        self.commit_every = events.max(1);
        self
    }

    /// Sets [`ViewConfig::skip_unreadable`].
    #[must_use]
    pub fn with_skip_unreadable(mut self, skip: bool) -> ViewConfig {
        self.skip_unreadable = skip;
        self
    }
}

/// What a catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// New events applied.
    pub applied: u64,
    /// Events applied again after a rewind or for a rebuild.
    pub replayed: u64,
    /// Whether order-sensitive views rewound to a snapshot because of a late event.
    pub rewound: bool,
}

/// An operation (or a whole event) that no view applied, and why. Every honest peer
/// records the same rejections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The event.
    pub order: EventOrder,
    /// The view that refused it ([`EVENT_LEVEL`] when the whole event was refused).
    pub view: String,
    /// Why.
    pub reason: String,
}

impl Rejection {
    /// The event's author.
    pub const fn author(&self) -> LogId {
        self.order.log
    }
}

/// A decrypted event, with the order it is applied in.
struct Decoded {
    order: EventOrder,
    payload: Option<Vec<u8>>,
    /// `false` if its time did not increase in its log: it is then ordered right after the
    /// previous event of its log and refused.
    monotone: bool,
}

/// One log's events after a counter, read a page at a time.
struct LogStream {
    log: LogId,
    after: u64,
    last_time: Option<Hlc>,
    buffer: VecDeque<Decoded>,
    done: bool,
    /// The counter of an entry this peer cannot read with the keys it holds.
    blocked: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// A late event: order-sensitive views go back to a snapshot.
    Late,
    /// Every view goes back to a snapshot (or to nothing).
    Rebuild,
}

/// The materialized views of one thread.
///
/// Open it over a store, call [`Views::catch_up`] whenever the thread's logs may have
/// grown, and read the views' [`State`]s. See the crate documentation for an example.
pub struct Views<S> {
    store: Arc<S>,
    pub(crate) thread: ThreadId,
    scope: String,
    key: ThreadKey,
    pub(crate) reducers: Vec<Arc<dyn Reducer>>,
    pub(crate) gate: Option<Arc<dyn Gate>>,
    /// Read keys of later key epochs, in the order they were added.
    epochs: Arc<std::sync::RwLock<Vec<ReadKey>>>,
    blocked: BTreeMap<LogId, u64>,
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) states: Vec<State>,
    rejections: State,
    mark: Mark,
    config: ViewConfig,
    verifiers: HashMap<LogId, Verifier>,
    drop_snapshots_from: Option<u64>,
    stale: bool,
    applied_tx: watch::Sender<BTreeMap<LogId, u64>>,
}

impl<S> std::fmt::Debug for Views<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views")
            .field("thread", &self.thread)
            .field("scope", &self.scope)
            .field(
                "views",
                &self.reducers.iter().map(|r| r.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> Views<S> {
    /// Opens the views of `thread` (scope `"views"`), resuming from what the store holds.
    ///
    /// # Errors
    /// [`ViewError::UnknownThread`], [`ViewError::NoReadKey`] for a follower,
    /// [`ViewError::DuplicateView`], or a store error.
    pub async fn open(
        store: Arc<S>,
        thread: ThreadId,
        reducers: Vec<Arc<dyn Reducer>>,
        config: ViewConfig,
    ) -> Result<Views<S>> {
        Views::open_scope(store, thread, "views", reducers, config).await
    }

    /// [`Views::open`] under another scope name: a second, independent set of views over
    /// the same thread (each scope has its own rows, cursor and snapshots).
    ///
    /// If the stored views of the scope are not the ones given (a view was added, removed
    /// or changed kind), the scope is rebuilt from the logs.
    pub async fn open_scope(
        store: Arc<S>,
        thread: ThreadId,
        name: &str,
        reducers: Vec<Arc<dyn Reducer>>,
        config: ViewConfig,
    ) -> Result<Views<S>> {
        let key = store
            .thread_key(thread)
            .await?
            .ok_or(ViewError::UnknownThread)?;
        Views::open_scope_with_key(store, thread, name, key, reducers, config).await
    }

    /// [`Views::open_scope`] reading events with `key` instead of the thread key the store
    /// holds (its service key must be the thread's): for views of events sealed with a
    /// read key derived for them, such as the access-control list.
    ///
    /// # Errors
    /// As [`Views::open`].
    pub async fn open_scope_with_key(
        store: Arc<S>,
        thread: ThreadId,
        name: &str,
        key: ThreadKey,
        reducers: Vec<Arc<dyn Reducer>>,
        config: ViewConfig,
    ) -> Result<Views<S>> {
        if store.thread_key(thread).await?.is_none() {
            return Err(ViewError::UnknownThread);
        }
        if !key.can_read() {
            return Err(ViewError::NoReadKey);
        }
        let mut by_name = HashMap::new();
        for (i, reducer) in reducers.iter().enumerate() {
            let name = reducer.name().to_owned();
            if name.starts_with('~') || by_name.insert(name.clone(), i).is_some() {
                return Err(ViewError::DuplicateView(name));
            }
        }
        let (applied_tx, _) = watch::channel(BTreeMap::new());
        let mut views = Views {
            store,
            thread,
            scope: format!("{thread}/{name}"),
            key,
            states: vec![State::new(); reducers.len()],
            reducers,
            gate: None,
            epochs: Arc::default(),
            blocked: BTreeMap::new(),
            by_name,
            rejections: State::new(),
            mark: Mark::default(),
            config,
            verifiers: HashMap::new(),
            drop_snapshots_from: None,
            stale: false,
            applied_tx,
        };
        views.load().await?;
        Ok(views)
    }

    fn signature(&self) -> Vec<(String, ViewKind)> {
        self.reducers
            .iter()
            .map(|r| (r.name().to_owned(), r.kind()))
            .collect()
    }

    /// Loads the states and the mark from the store; starts over if the views changed.
    async fn load(&mut self) -> Result<()> {
        let stored = match self.store.view_cursor(&self.scope).await? {
            Some(bytes) => Some(Mark::decode(&bytes)?),
            None => None,
        };
        let signature = self.signature();
        match stored {
            Some(mark) if mark.views == signature => {
                for (i, reducer) in self.reducers.iter().enumerate() {
                    let rows = self.store.view_rows(&self.scope, reducer.name()).await?;
                    self.states[i] = State::from_rows(rows);
                }
                let rows = self.store.view_rows(&self.scope, REJECTIONS).await?;
                self.rejections = State::from_rows(rows);
                self.mark = mark;
            }
            previous => {
                // New scope, or different views: start from nothing and say so in the store
                // at once, dropping rows of views that are gone and every snapshot.
                let mut changes: Vec<ViewChange> = Vec::new();
                let mut names: Vec<String> = signature.iter().map(|(n, _)| n.clone()).collect();
                names.push(REJECTIONS.to_owned());
                if let Some(previous) = &previous {
                    for (name, _) in &previous.views {
                        if !names.contains(name) {
                            names.push(name.clone());
                        }
                    }
                }
                for name in names {
                    changes.push(ViewChange {
                        view: name,
                        reset: true,
                        ..ViewChange::default()
                    });
                }
                let next_snapshot = previous.map_or(0, |m| m.next_snapshot);
                self.mark = Mark {
                    views: signature,
                    next_snapshot,
                    ..Mark::default()
                };
                for state in &mut self.states {
                    *state = State::new();
                }
                self.rejections = State::new();
                self.store
                    .view_commit(&ViewCommit {
                        scope: self.scope.clone(),
                        cursor: self.mark.encode(),
                        changes,
                        drop_snapshots_from: Some(0),
                        ..ViewCommit::default()
                    })
                    .await?;
            }
        }
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        let counters = self
            .mark
            .logs
            .iter()
            .map(|(log, m)| (*log, m.counter))
            .collect();
        self.applied_tx.send_replace(counters);
    }

    /// Puts `gate` in front of every view: from now on, each operation applies only if the
    /// gate admits it. Views already applied stay as they are: call [`Views::regate`] if
    /// they were computed under other rules.
    pub fn set_gate(&mut self, gate: Arc<dyn Gate>) {
        self.gate = Some(gate);
    }

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

    /// Also reads events sealed with `key`, the read key of a later key epoch (access
    /// control rotates the read key when it revokes a reader). Events this peer could not
    /// read before are applied by the next [`Views::catch_up`] (as late events). Returns
    /// whether the key was new.
    pub fn add_read_key(&mut self, key: ReadKey) -> bool {
        let mut epochs = self
            .epochs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if epochs.contains(&key) || self.key.read() == Some(&key) {
            return false;
        }
        for verifier in self.verifiers.values_mut() {
            verifier.add_read_key(key.clone());
        }
        epochs.push(key);
        true
    }

    /// The logs whose next event this peer cannot read with the keys it holds (sealed with
    /// the read key of an epoch it was not given, or not sealed right), with that event's
    /// counter, as of the last catch-up. Later events of such a log wait behind it.
    pub fn blocked(&self) -> &BTreeMap<LogId, u64> {
        &self.blocked
    }

    /// The thread.
    pub const fn thread(&self) -> ThreadId {
        self.thread
    }

    /// The state of the view named `name`.
    ///
    /// # Errors
    /// [`ViewError::UnknownView`].
    pub fn state(&self, name: &str) -> Result<&State> {
        self.by_name
            .get(name)
            .map(|&i| &self.states[i])
            .ok_or_else(|| ViewError::UnknownView(name.to_owned()))
    }

    /// A digest of every view's rows and of the rejections: equal digests mean
    /// byte-identical views.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"threads-rs/views/v1");
        let mut named: Vec<(&str, &State)> = self
            .reducers
            .iter()
            .zip(&self.states)
            .map(|(r, s)| (r.name(), s))
            .collect();
        named.push((REJECTIONS, &self.rejections));
        named.sort_by_key(|(n, _)| *n);
        for (name, state) in named {
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            hasher.update(state.digest());
        }
        hasher.finalize().into()
    }

    /// The time of the latest applied event of `log` (`None` if none was applied).
    pub fn log_time(&self, log: &LogId) -> Option<Hlc> {
        self.mark.logs.get(log).map(|m| m.time)
    }

    /// Every rejection, in the order of the events.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.rejections
            .iter()
            .filter_map(|(key, reason)| {
                let order = decode_order(key.get(..ORDER_LEN)?).ok()?;
                Some(Rejection {
                    order,
                    view: String::from_utf8_lossy(&key[ORDER_LEN..]).into_owned(),
                    reason: String::from_utf8_lossy(reason).into_owned(),
                })
            })
            .collect()
    }

    /// The greatest place in the order applied so far: a writer's clock should move past
    /// its time.
    pub const fn last_order(&self) -> Option<EventOrder> {
        self.mark.last
    }

    /// How far each log has been applied.
    pub fn cursor(&self) -> Cursor {
        Cursor::from_counters(self.applied_tx.borrow().clone())
    }

    /// A lossless subscription to applied events, starting after `from` (use
    /// [`Cursor::default`] for the beginning). It reads from the store, so it never
    /// misses an event however slowly it is read.
    pub fn subscribe(&self, from: Cursor) -> Subscription<S> {
        Subscription::new(
            Arc::clone(&self.store),
            self.thread,
            self.key.clone(),
            Arc::clone(&self.epochs),
            self.applied_tx.subscribe(),
            from,
            &self.config,
        )
    }

    /// Applies every event the store holds that the views have not applied yet.
    ///
    /// Commutative views apply new events as they come; if a new event sorts before the
    /// latest applied one and there are order-sensitive views, those go back to the latest
    /// snapshot before it and replay. Changes are committed with the cursor every
    /// [`ViewConfig::commit_every`] events.
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

    /// Applies this peer's own events, just stored, from the payloads in hand instead of
    /// reading them back: `events` are consecutive events of one log, oldest first, with
    /// their order and payload. They apply exactly as [`Views::catch_up`] would apply them
    /// when they are the next events of their log and sort after everything applied; else
    /// (or if the views are stale, or the log waits at an unreadable entry) this is
    /// [`Views::catch_up`]. Entries of other logs stored meanwhile are left to the next
    /// catch-up.
    ///
    /// # Errors
    /// As [`Views::catch_up`].
    pub async fn apply_local(&mut self, events: &[(EventOrder, &[u8])]) -> Result<Progress> {
        let Some((first, _)) = events.first() else {
            return Ok(Progress::default());
        };
        let mark = self.mark.logs.get(&first.log);
        let follows = mark.map_or(0, |m| m.counter) + 1 == first.counter
            && mark.is_none_or(|m| first.time > m.time);
        let consecutive = events.windows(2).all(|pair| {
            let (a, b) = (pair[0].0, pair[1].0);
            a.log == b.log && a.counter + 1 == b.counter && a.time < b.time
        });
        let ordered = self.reducers.iter().any(|r| r.kind() == ViewKind::Ordered);
        let late = ordered && self.mark.last.is_some_and(|last| *first < last);
        if self.stale || !follows || !consecutive || late || self.blocked.contains_key(&first.log) {
            return self.catch_up().await;
        }
        let mut progress = Progress::default();
        for (order, payload) in events {
            let event = Decoded {
                order: *order,
                payload: Some(payload.to_vec()),
                monotone: true,
            };
            self.apply_event(&event, false);
            self.mark.logs.insert(
                order.log,
                LogMark {
                    counter: order.counter,
                    time: order.time,
                },
            );
            self.mark.last = Some(self.mark.last.map_or(*order, |l| l.max(*order)));
            self.mark.since_snapshot += 1;
            progress.applied += 1;
        }
        if let Err(e) = self.commit().await {
            // The rows in memory are ahead of the store: reload before the next use.
            self.stale = true;
            return Err(e);
        }
        Ok(progress)
    }

    async fn catch_up_inner(&mut self) -> Result<Progress> {
        let mut streams = self.streams(&self.mark.clone()).await?;
        let Some(first) = self.peek_min(&mut streams).await? else {
            self.note_blocked(&streams);
            return Ok(Progress::default());
        };
        let ordered = self.reducers.iter().any(|r| r.kind() == ViewKind::Ordered);
        if ordered && self.mark.last.is_some_and(|last| first < last) {
            let snapshot = self.snapshot_before(first).await?;
            return self.restart(snapshot, Restart::Late).await;
        }
        self.run(streams, &BTreeMap::new(), Restart::Late).await
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

    async fn reload_if_stale(&mut self) -> Result<()> {
        if self.stale {
            self.drop_snapshots_from = None;
            self.load().await?;
            self.stale = false;
        }
        Ok(())
    }

    /// The latest snapshot whose position is before `order`.
    async fn snapshot_before(&self, order: EventOrder) -> Result<Option<u64>> {
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

    async fn restart(&mut self, snapshot: Option<u64>, kind: Restart) -> Result<Progress> {
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

    fn is_ordered_view(&self, name: &[u8]) -> bool {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.by_name.get(n))
            .is_some_and(|&i| self.reducers[i].kind() == ViewKind::Ordered)
    }

    async fn streams(&mut self, from: &Mark) -> Result<Vec<LogStream>> {
        let logs = self.store.logs(self.thread).await?;
        let mut streams = Vec::with_capacity(logs.len());
        for log in logs {
            if !self.verifiers.contains_key(&log) {
                let epochs = self
                    .epochs
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let verifier = verifier(self.thread, log, &self.key, &epochs)?;
                self.verifiers.insert(log, verifier);
            }
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

    async fn fill(&self, stream: &mut LogStream) -> Result<()> {
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
        for stored in entries {
            let (time, monotone, payload) = match verifier.read_stored(&stored.entry) {
                Ok(read) => match stream.last_time {
                    Some(last) if read.time <= last => (last, false, read.payload),
                    _ => (read.time, true, read.payload),
                },
                // Passed over: it counts as applied with nothing to apply, placed right
                // after the log's previous event.
                Err(_) if self.config.skip_unreadable => {
                    (stream.last_time.unwrap_or(Hlc::new(0, 0)), true, None)
                }
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
            });
        }
        Ok(())
    }

    /// Fills every stream and returns the smallest next order.
    async fn peek_min(&self, streams: &mut [LogStream]) -> Result<Option<EventOrder>> {
        let mut min: Option<EventOrder> = None;
        for stream in streams.iter_mut() {
            self.fill(stream).await?;
            if let Some(next) = stream.buffer.front() {
                min = Some(min.map_or(next.order, |m| m.min(next.order)));
            }
        }
        Ok(min)
    }

    async fn run(
        &mut self,
        mut streams: Vec<LogStream>,
        replay_until: &BTreeMap<LogId, u64>,
        kind: Restart,
    ) -> Result<Progress> {
        let mut progress = Progress::default();
        let mut replay_left: u64 = streams
            .iter()
            .map(|s| {
                replay_until
                    .get(&s.log)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(s.after)
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
            self.apply_event(&event, ordered_only);
            self.mark.logs.insert(
                event.order.log,
                LogMark {
                    counter: event.order.counter,
                    time: event.order.time,
                },
            );
            self.mark.last = Some(self.mark.last.map_or(event.order, |l| l.max(event.order)));
            self.mark.since_snapshot += 1;
            if replay {
                replay_left -= 1;
                progress.replayed += 1;
            } else {
                progress.applied += 1;
            }
            pending += 1;
            if pending >= self.config.commit_every && replay_left == 0 {
                self.commit().await?;
                pending = 0;
            }
        }
        if pending > 0 || self.drop_snapshots_from.is_some() {
            self.commit().await?;
        }
        self.note_blocked(&streams);
        Ok(progress)
    }

    fn note_blocked(&mut self, streams: &[LogStream]) {
        self.blocked = streams
            .iter()
            .filter_map(|s| s.blocked.map(|counter| (s.log, counter)))
            .collect();
    }

    fn reject(&mut self, order: &EventOrder, view: &str, reason: &str) {
        let mut key = encode_order(order).to_vec();
        key.extend_from_slice(view.as_bytes());
        tracing::debug!(author = %order.log, counter = order.counter, view, reason, "event refused");
        self.rejections.put(key, reason.as_bytes().to_vec());
    }

    /// Applies one event: every operation to its view (to order-sensitive views only when
    /// `ordered_only`), the operations of one view all or none.
    fn apply_event(&mut self, event: &Decoded, ordered_only: bool) {
        // A compacted event changes no view (that is why it was compacted).
        let Some(payload) = &event.payload else {
            return;
        };
        if !event.monotone {
            if !ordered_only {
                self.reject(
                    &event.order,
                    EVENT_LEVEL,
                    "its time does not increase in its log",
                );
            }
            return;
        }
        let Some(batch) = Batch::decode(payload) else {
            if !ordered_only {
                self.reject(&event.order, EVENT_LEVEL, "the payload is not a view batch");
            }
            return;
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
        for (view, ops) in groups {
            let reducer = Arc::clone(&self.reducers[view]);
            if ordered_only && reducer.kind() != ViewKind::Ordered {
                continue;
            }
            if let Some(gate) = &self.gate {
                let refused = ops.iter().find_map(|&(index, data)| {
                    let op = Event {
                        thread: self.thread,
                        order: event.order,
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
                    self.reject(&event.order, reducer.name(), &reject.0);
                    continue;
                }
            }
            let state = &mut self.states[view];
            state.begin();
            let mut refused = None;
            for (index, data) in ops {
                let op = Event {
                    thread: self.thread,
                    order: event.order,
                    index,
                    data,
                };
                if let Err(reject) = reducer.apply(state, &op) {
                    refused = Some(reject.0);
                    break;
                }
            }
            match refused {
                Some(reason) => {
                    state.roll_back();
                    self.reject(&event.order, reducer.name(), &reason);
                }
                None => state.keep(),
            }
        }
    }

    /// Writes every changed row, the mark and (when due) a snapshot in one transaction.
    async fn commit(&mut self) -> Result<()> {
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
        self.store.view_commit(&commit).await?;
        self.publish();
        Ok(())
    }

    /// Drops the bodies of applied events that no view needs any more (every operation
    /// superseded, say a put overwritten by a later put), keeping their signed records, so
    /// the logs stay verifiable and a rebuild gives the same views. Returns how many
    /// bodies were dropped. Views behind a [`Gate`] drop nothing.
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

    fn removable(&self, event: &Decoded) -> bool {
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

/// A verifier of `log` that reads with the thread key and the read keys of later epochs.
pub(crate) fn verifier(
    thread: ThreadId,
    log: LogId,
    key: &ThreadKey,
    epochs: &[ReadKey],
) -> Result<Verifier> {
    let mut verifier = Verifier::new(thread, log, key).map_err(|source| ViewError::Unreadable {
        log,
        counter: 0,
        source,
    })?;
    for epoch in epochs {
        verifier.add_read_key(epoch.clone());
    }
    Ok(verifier)
}

/// One operation of a batch with its index in the batch.
type IndexedOp<'a> = (u32, &'a [u8]);
