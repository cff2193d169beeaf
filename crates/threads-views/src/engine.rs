//! The engine's core: [`Views`] (opening and resuming from the store, reading the views,
//! keys and gates), its progress and rejections. The engine's work is in the files beside
//! it: `apply.rs` (catching up, applying events), `rewind.rs` (late events through undo
//! records, rebuilds, regating), `commit.rs` (committing rows, undo records and the cursor,
//! compaction), `read.rs` (reads that fetch what the cache misses), `check.rs` (checking
//! a write before it is stored), `config.rs` (pacing).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use std::sync::atomic::AtomicUsize;
use threads_crypto::{ReadKey, ThreadKey};
use threads_id::{LogId, ThreadId};
use threads_log::{EventOrder, Hlc, Verifier};
use threads_store::{RowRange, Store, ViewChange, ViewCommit};

use tokio::sync::watch;

use crate::config::ViewConfig;
use crate::error::{Result, ViewError};
use crate::event::{ORDER_LEN, decode_order, encode_order};
use crate::mark::{LogMark, Mark, Signature};
use crate::read::CacheBudget;
use crate::reducer::{Gate, Reducer, ViewKind};
use crate::state::State;
use crate::subscribe::{Cursor, Subscription};

/// The name under which rejections are kept, next to the views' rows.
pub(crate) const REJECTIONS: &str = "~rejections";
/// The name under which undo records of order-sensitive views are kept, keyed by the
/// event's order.
pub(crate) const UNDO: &str = "~undo";
/// The "view" named in rejections of a whole event (not a batch, time going back).
pub const EVENT_LEVEL: &str = "~event";

/// The reason recorded for an event sealed with a key these views pass over
/// ([`Views::pass_over`]) that addresses them: a follower holds the ACL key and cannot write
/// content with it.
pub const PASSED_OVER: &str = "sealed with a key that may not write to these views";

/// The engine's own entry in a scope's signature: when the rules by which the engine
/// applies events change (what it records as refused, in particular), views stored under
/// older rules are rebuilt, so every peer computes them by the same rules.
const RULES_VIEW: &str = "~rules";
/// 2: content sealed with a passed-over key (a follower writing with the ACL key) is
/// recorded as refused. 3: an event the gate voids (compacted by an operation of the
/// thread) applies nothing; an event stored without its body that the gate does not void
/// holds its log back (before, it applied nothing).
const RULES_VERSION: u32 = 3;

/// What a catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// New events applied.
    pub applied: u64,
    /// Events applied again after a rewind or for a rebuild.
    pub replayed: u64,
    /// Whether order-sensitive views undid events because of a late event.
    pub rewound: bool,
    /// Whether the views were rebuilt from the logs (a late event older than the undo
    /// horizon, a change of gate, or views that changed).
    pub rebuilt: bool,
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

/// The rows one commit changed, per view (the reserved views left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowChanges {
    /// Per view, the keys of the rows put or deleted, in key order.
    pub views: Vec<(String, Vec<Vec<u8>>)>,
    /// Views whose rows may all have changed (a rebuild, or more changed rows than are
    /// listed one by one): read them again.
    pub reset: Vec<String>,
}

impl RowChanges {
    /// Whether `view`'s rows changed in a way that must be read again as a whole.
    pub fn is_reset(&self, view: &str) -> bool {
        self.reset.iter().any(|v| v == view)
    }

    /// The changed keys of `view` (empty if none, or if it was reset).
    pub fn keys(&self, view: &str) -> &[Vec<u8>] {
        self.views
            .iter()
            .find(|(v, _)| v == view)
            .map_or(&[][..], |(_, keys)| keys.as_slice())
    }
}

/// How many commits a [`Views::watch_rows`] receiver may fall behind.
const ROW_CHANGES_QUEUE: usize = 256;

/// The most keys of one view listed in a [`RowChanges`]; beyond it the view is reset.
pub(crate) const ROW_CHANGES_KEYS: usize = 4096;

/// A decrypted event, with the order it is applied in.
pub(crate) struct Decoded {
    pub(crate) order: EventOrder,
    pub(crate) payload: Option<Vec<u8>>,
    /// `false` if its time did not increase in its log: it is then ordered right after the
    /// previous event of its log and refused.
    pub(crate) monotone: bool,
    /// Sealed with a key whose events these views pass over ([`Views::pass_over`]): it
    /// applies nothing, and operations of it addressed to these views are refused.
    pub(crate) passed: bool,
}

/// One log's events after a counter, read a page at a time.
pub(crate) struct LogStream {
    pub(crate) log: LogId,
    pub(crate) after: u64,
    pub(crate) last_time: Option<Hlc>,
    pub(crate) buffer: VecDeque<Decoded>,
    pub(crate) done: bool,
    /// The counter of an entry this peer cannot read with the keys it holds.
    pub(crate) blocked: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// A late event: order-sensitive views undo the events after it.
    Late,
    /// Every view starts from nothing.
    Rebuild,
}

/// A row an event changed: (index of the state, [`Views::states`] then the rejections;
/// key; value before, `None` when it is the committed one, read from the store when the
/// commit is written).
pub(crate) type Touched = (usize, Vec<u8>, Option<Option<Vec<u8>>>);

/// The undo record of an applied event, before its old values are all known.
pub(crate) struct PendingUndo {
    pub(crate) order: EventOrder,
    pub(crate) prev_log: Option<LogMark>,
    pub(crate) changes: Vec<Touched>,
}

/// The materialized views of one thread.
///
/// Open it over a store, call [`Views::catch_up`] whenever the thread's logs may have
/// grown, and read the views' [`State`]s. See the crate documentation for an example.
pub struct Views<S> {
    pub(crate) store: Arc<S>,
    pub(crate) thread: ThreadId,
    pub(crate) scope: String,
    pub(crate) key: ThreadKey,
    pub(crate) reducers: Vec<Arc<dyn Reducer>>,
    pub(crate) gate: Option<Arc<dyn Gate>>,
    /// Read keys of later key epochs, in the order they were added.
    pub(crate) epochs: Arc<std::sync::RwLock<Vec<ReadKey>>>,
    /// Events opened with one of these keys are passed over: they count as applied and
    /// change no view (see [`Views::pass_over`]).
    pub(crate) pass: Vec<ReadKey>,
    pub(crate) blocked: BTreeMap<LogId, u64>,
    /// Logs whose author forked them (a fork proof is held): the first counter not applied.
    pub(crate) stops: BTreeMap<LogId, u64>,
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) states: Vec<State>,
    pub(crate) rejections: State,
    pub(crate) mark: Mark,
    pub(crate) config: ViewConfig,
    pub(crate) verifiers: HashMap<LogId, Verifier>,
    /// Undo records of events applied since the last commit.
    pub(crate) undo_pending: Vec<PendingUndo>,
    /// Undo records to delete at the next commit (their events were undone).
    pub(crate) undo_done: Vec<Vec<u8>>,
    /// Delete every undo record at the next commit (a rebuild).
    pub(crate) undo_reset: bool,
    pub(crate) stale: bool,
    /// This peer's own commits applied in memory and not yet known to be stored
    /// ([`Views::begin_local`]): while there are any, the rows in memory are the truth and
    /// the cache is not trimmed (a row evicted and read back would be the store's older one).
    pub(crate) ahead: usize,
    /// How many of them were lost (their [`Landing`](crate::Landing) dropped without an
    /// outcome): the views reload.
    pub(crate) lost: Arc<AtomicUsize>,
    /// The commit being stored while the next is prepared, with how its outcome arrives.
    pub(crate) flight: Option<(crate::flight::Landing, crate::flight::Outcome)>,
    /// The budget this scope's cache counts in, and what it counts there.
    pub(crate) budget: Arc<CacheBudget>,
    pub(crate) cached: AtomicUsize,
    pub(crate) applied_tx: watch::Sender<BTreeMap<LogId, u64>>,
    /// The rows each commit changed, for readers that follow a view ([`Views::watch_rows`]).
    pub(crate) rows_tx: tokio::sync::broadcast::Sender<Arc<RowChanges>>,
}

impl<S> Drop for Views<S> {
    fn drop(&mut self) {
        self.budget
            .release(self.cached.load(std::sync::atomic::Ordering::Relaxed));
    }
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
    /// the same thread (each scope has its own rows, cursor and undo records).
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
        let (rows_tx, _) = tokio::sync::broadcast::channel(ROW_CHANGES_QUEUE);
        let mut views = Views {
            store,
            thread,
            scope: format!("{thread}/{name}"),
            key,
            states: (0..reducers.len()).map(|_| State::stored()).collect(),
            reducers,
            gate: None,
            epochs: Arc::default(),
            pass: Vec::new(),
            blocked: BTreeMap::new(),
            stops: BTreeMap::new(),
            by_name,
            rejections: State::stored(),
            mark: Mark::default(),
            config,
            verifiers: HashMap::new(),
            undo_pending: Vec::new(),
            undo_done: Vec::new(),
            undo_reset: false,
            budget: CacheBudget::new(config.cache_bytes),
            cached: AtomicUsize::new(0),
            stale: false,
            ahead: 0,
            lost: Arc::default(),
            flight: None,
            applied_tx,
            rows_tx,
        };
        views.load().await?;
        Ok(views)
    }

    /// The views as the cursor records them: name, how the view takes events here (a
    /// commutative view of an atomic or in-order scope is recorded as ordered: it keeps
    /// undo records) and reducer version.
    pub(crate) fn signature(&self) -> Signature {
        self.reducers
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name().to_owned(), self.kind_of(i), r.version()))
            .chain([(RULES_VIEW.to_owned(), ViewKind::Ordered, RULES_VERSION)])
            .collect()
    }

    /// How the view at `index` takes events here: in the thread's order when it is
    /// order-sensitive, when events are atomic ([`ViewConfig::atomic`]) or when the scope
    /// is in order ([`ViewConfig::in_order`]).
    pub(crate) fn kind_of(&self, index: usize) -> ViewKind {
        if self.config.atomic || self.config.in_order {
            ViewKind::Ordered
        } else {
            self.reducers[index].kind()
        }
    }

    /// Whether any view takes events in the thread's order.
    pub(crate) fn any_ordered(&self) -> bool {
        (0..self.reducers.len()).any(|i| self.kind_of(i) == ViewKind::Ordered)
    }

    /// Resumes from the store's cursor (no row is read: rows are read when used); starts
    /// over if the views changed.
    pub(crate) async fn load(&mut self) -> Result<()> {
        let stored = match self.store.view_cursor(&self.scope).await? {
            Some(bytes) => Some(Mark::decode(&bytes)?),
            None => None,
        };
        let signature = self.signature();
        for state in &mut self.states {
            state.forget();
        }
        self.rejections.forget();
        self.undo_pending.clear();
        self.undo_done.clear();
        self.undo_reset = false;
        match stored {
            Some(Some(mark)) if mark.views == signature && mark.atomic == self.config.atomic => {
                self.mark = mark;
            }
            previous => {
                // New scope, older format or different views (names, kinds or reducer
                // versions): start from nothing and say so in the store at once, dropping
                // rows of views that are gone.
                if previous.is_some() {
                    tracing::info!(scope = %self.scope, "views changed: rebuilding them from the logs");
                }
                let mut names: Vec<String> = signature.iter().map(|(n, _, _)| n.clone()).collect();
                names.push(REJECTIONS.to_owned());
                names.push(UNDO.to_owned());
                if let Some(Some(previous)) = &previous {
                    for (name, _, _) in &previous.views {
                        if !names.contains(name) {
                            names.push(name.clone());
                        }
                    }
                }
                let changes = names
                    .into_iter()
                    .map(|view| ViewChange {
                        view,
                        reset: true,
                        ..ViewChange::default()
                    })
                    .collect();
                self.mark = Mark {
                    views: signature,
                    atomic: self.config.atomic,
                    ..Mark::default()
                };
                self.store
                    .view_commit(&ViewCommit {
                        scope: self.scope.clone(),
                        cursor: self.mark.encode(),
                        changes,
                    })
                    .await?;
                for state in &mut self.states {
                    state.known_empty();
                }
                self.rejections.known_empty();
            }
        }
        self.publish();
        Ok(())
    }

    pub(crate) fn publish(&self) {
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

    /// Passes over every event sealed with `key`: such events count as applied, in their
    /// place in the order, and change no view, whatever they hold. For views that must not
    /// take operations from a key that others hold as well: a thread's content views and
    /// the ACL key, which followers hold (a follower could otherwise write content under
    /// it). The key is also added as a read key, so those events do not hold their log back.
    pub fn pass_over(&mut self, key: ReadKey) {
        if !self.pass.contains(&key) {
            self.pass.push(key.clone());
        }
        self.add_read_key(key);
    }

    /// The logs whose next event cannot be applied yet, with that event's counter, as of
    /// the last catch-up: this peer cannot read it with the keys it holds (sealed with the
    /// read key of an epoch it was not given, or not sealed right), or it is dated beyond
    /// [`ViewConfig::max_future_ms`] ahead of this peer's clock. Later events of such a log
    /// wait behind it.
    pub fn blocked(&self) -> &BTreeMap<LogId, u64> {
        &self.blocked
    }

    /// The logs whose author forked them, with the counter at which each forked, as of the
    /// last catch-up: the fork proofs the store holds ([`threads_store::fork_proofs`]).
    /// The views apply such a log's events before that counter and none from it on, so
    /// every peer that holds the proof computes the same views, whichever branch it holds.
    pub fn stopped(&self) -> &BTreeMap<LogId, u64> {
        &self.stops
    }

    /// The thread.
    pub const fn thread(&self) -> ThreadId {
        self.thread
    }

    /// The index of the view named `name`.
    pub(crate) fn view_index(&self, name: &str) -> Result<usize> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| ViewError::UnknownView(name.to_owned()))
    }

    /// A digest of every view's rows and of the rejections, read from the store: equal
    /// digests mean byte-identical views.
    ///
    /// # Errors
    /// A store error.
    pub async fn digest(&mut self) -> Result<[u8; 32]> {
        use sha2::{Digest, Sha256};
        self.reload_if_stale().await?;
        let mut names: Vec<String> = self.reducers.iter().map(|r| r.name().to_owned()).collect();
        names.push(REJECTIONS.to_owned());
        names.sort();
        let mut hasher = Sha256::new();
        hasher.update(b"threads-rs/views/v1");
        for name in names {
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            let mut view = Sha256::new();
            view.update(b"threads-rs/view-state/v1");
            let mut range = RowRange::new(Vec::new(), None, 4096);
            loop {
                let rows = self.store.view_range(&self.scope, &name, &range).await?;
                for (k, v) in &rows {
                    view.update((k.len() as u64).to_be_bytes());
                    view.update(k);
                    view.update((v.len() as u64).to_be_bytes());
                    view.update(v);
                }
                match rows.last() {
                    Some((last, _)) if rows.len() == range.limit => {
                        range.from.clone_from(last);
                        range.after = true;
                    }
                    _ => break,
                }
            }
            hasher.update(view.finalize());
        }
        Ok(hasher.finalize().into())
    }

    /// The time of the latest applied event of `log` (`None` if none was applied).
    pub fn log_time(&self, log: &LogId) -> Option<Hlc> {
        self.mark.logs.get(log).map(|m| m.time)
    }

    /// Every rejection, in the order of the events.
    ///
    /// # Errors
    /// A store error.
    pub async fn rejections(&mut self) -> Result<Vec<Rejection>> {
        self.reload_if_stale().await?;
        let rows = self
            .store
            .view_range(
                &self.scope,
                REJECTIONS,
                &RowRange::new(Vec::new(), None, usize::MAX),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, reason)| {
                let order = decode_order(key.get(..ORDER_LEN)?).ok()?;
                Some(Rejection {
                    order,
                    view: String::from_utf8_lossy(&key[ORDER_LEN..]).into_owned(),
                    reason: String::from_utf8_lossy(&reason).into_owned(),
                })
            })
            .collect())
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

    /// Follows the rows of the views: after every commit, which rows of which view changed
    /// ([`RowChanges`]). A reader that keeps something derived from a view (a live query's
    /// result set) updates it from the changed rows instead of reading the view again. A
    /// receiver that falls more than a few commits behind gets
    /// [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged), and must
    /// then read the views again, as after a [`RowChanges::reset`].
    pub fn watch_rows(&self) -> tokio::sync::broadcast::Receiver<Arc<RowChanges>> {
        self.rows_tx.subscribe()
    }

    /// The rejections of the event at `order` (one per view it addressed that did not
    /// apply it, or one for the whole event), as of the last commit.
    ///
    /// # Errors
    /// A store error.
    pub async fn rejections_of(&mut self, order: &EventOrder) -> Result<Vec<Rejection>> {
        self.reload_if_stale().await?;
        let from = encode_order(order).to_vec();
        // View names are UTF-8, so no suffix holds the byte 0xFF.
        let mut to = from.clone();
        to.push(0xFF);
        let rows = self
            .store
            .view_range(
                &self.scope,
                REJECTIONS,
                &RowRange::new(from, Some(to), usize::MAX),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(key, reason)| Rejection {
                order: *order,
                view: String::from_utf8_lossy(&key[ORDER_LEN.min(key.len())..]).into_owned(),
                reason: String::from_utf8_lossy(&reason).into_owned(),
            })
            .collect())
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
pub(crate) type IndexedOp<'a> = (u32, &'a [u8]);
