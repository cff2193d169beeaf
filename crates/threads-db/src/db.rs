//! [`Db`]: a peer of the Threads network with its threads, their views and sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use threads_acl::{ACL_VIEW, AclAdmission, AclViews};
use threads_crypto::Identity;
use threads_id::{ThreadAddr, ThreadId};
use threads_log::Clock;
use threads_net::{NetConfig, NetEvent, Node, SyncStatus};
use threads_store::{MemoryStore, Store};
use threads_views::{Kv, Reducer};
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

use crate::config::{CustomViews, DbConfig, TimeFn};
use crate::crdt::{CRDT_VIEW, Crdt};
use crate::docs::{DOCS_VIEW, Docs};
use crate::error::DbError;

/// The name of every thread's key-value view.
pub const KV_VIEW: &str = "kv";

pub(crate) type ThreadViews<S> = Arc<AsyncMutex<AclViews<S>>>;

pub(crate) struct Inner<S: Store + 'static> {
    pub(crate) me: Identity,
    pub(crate) node: Node<S>,
    admission: AclAdmission,
    pub(crate) clock: Mutex<Clock<TimeFn>>,
    config: DbConfig,
    /// One row-cache budget for the views of every thread.
    cache: Arc<threads_views::CacheBudget>,
    /// The automerge view of every thread (one set of documents kept in memory).
    pub(crate) crdt: Crdt,
    /// The document view of every thread, shared: its parsed collections and compiled
    /// schemas serve every thread, and transactions' checks.
    pub(crate) docs: Arc<Docs>,
    /// Writes waiting for their group, per thread (see `write.rs`).
    pub(crate) queues: Mutex<HashMap<ThreadId, crate::queue::Queue>>,
    /// Per thread, the node's arrival count read before the views' latest catch-up: while
    /// it is still the count, every entry from peers is applied, and a write can be
    /// applied from the batch in hand.
    caught_up: Mutex<HashMap<ThreadId, u64>>,
    /// Threads whose keys this peer is rotating again (see `Inner::after_apply`).
    repairing: Mutex<std::collections::HashSet<ThreadId>>,
    /// Whether an automatic compaction runs.
    compacting: std::sync::atomic::AtomicBool,
    /// Entries (thread, log, counter) whose bodies were asked for lately.
    fill_tried: Mutex<HashMap<(ThreadId, threads_id::LogId, u64), tokio::time::Instant>>,
    pub(crate) threads: tokio::sync::RwLock<HashMap<ThreadId, ThreadViews<S>>>,
    background: Mutex<Option<JoinHandle<()>>>,
    /// Live queries' tasks; aborted and joined by [`Db::shutdown`].
    tasks: Mutex<Option<tokio::task::JoinSet<()>>>,
    /// Group commits in flight; joined (not aborted) by [`Db::shutdown`].
    commits: Mutex<Option<tokio::task::JoinSet<()>>>,
    /// Told the thread whose views changed, after every catch-up.
    pub(crate) changed: tokio::sync::broadcast::Sender<ThreadId>,
}

impl<S: Store + 'static> Inner<S> {
    /// Runs `task` in the database's task set (aborted and joined by [`Db::shutdown`]);
    /// `false` once the database is shut down.
    pub(crate) fn spawn(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> bool {
        Self::spawn_in(&self.tasks, task)
    }

    /// Runs a group commit in its own task, which [`Db::shutdown`] lets finish; `false`
    /// once the database is shut down.
    pub(crate) fn spawn_commit(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> bool {
        Self::spawn_in(&self.commits, task)
    }

    fn spawn_in(
        set: &Mutex<Option<tokio::task::JoinSet<()>>>,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> bool {
        let mut tasks = set.lock().unwrap_or_else(PoisonError::into_inner);
        match tasks.as_mut() {
            Some(tasks) => {
                while tasks.try_join_next().is_some() {}
                tasks.spawn(task);
                true
            }
            None => false,
        }
    }

    /// After `views` applied new events: watches the announcement topic of a service-key
    /// epoch they learned (a rotation sealed to this peer), and, if this peer is an editor
    /// and the latest rotation reached a member it should not have (two editors changed
    /// roles at once), has the keys rotated again ([`AclViews::needs_rotation`]).
    pub(crate) async fn after_apply(self: &Arc<Self>, views: &mut AclViews<S>) {
        let thread = views.thread();
        if views.take_new_epochs()
            && let Err(error) = self.node.watch(thread).await
        {
            tracing::warn!(%thread, %error, "the new epoch's topic is not watched");
        }
        if views.needs_rotation()
            && views.acl().is_editor_now(&self.me.log_id())
            && self
                .repairing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(thread)
        {
            let inner = Arc::clone(self);
            let spawned = self.spawn(async move {
                let db = Db {
                    inner: Arc::clone(&inner),
                };
                if let Err(error) = db.rotate_again(thread).await {
                    tracing::warn!(%thread, %error, "the keys could not be rotated again");
                }
                inner
                    .repairing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&thread);
            });
            if !spawned {
                self.repairing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&thread);
            }
        }
    }

    /// Asks the peers, in a task of the database, for the bodies of the entries among
    /// `blocked` (where the views of `thread` wait) that this peer holds without one; an
    /// entry is asked for at most once every five sync intervals.
    fn fill_bodies(
        self: &Arc<Self>,
        thread: ThreadId,
        blocked: std::collections::BTreeMap<threads_id::LogId, u64>,
    ) {
        let now = tokio::time::Instant::now();
        let again = self.config.sync_interval * 5;
        let due: Vec<(threads_id::LogId, u64)> = {
            let mut tried = self
                .fill_tried
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            tried.retain(|_, at| now.saturating_duration_since(*at) < again);
            blocked
                .into_iter()
                .filter(|&(log, counter)| tried.insert((thread, log, counter), now).is_none())
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let inner = Arc::clone(self);
        self.spawn(async move {
            let store = inner.node.store();
            for (log, counter) in due {
                let page = threads_store::Page::new(1, usize::MAX);
                let bodyless = store
                    .entries_after(thread, log, counter.saturating_sub(1), page)
                    .await
                    .ok()
                    .and_then(|entries| entries.into_iter().next())
                    .is_some_and(|e| e.counter == counter && e.entry.body.data().is_empty());
                if bodyless && let Err(error) = inner.node.fill_bodies(thread, log, counter).await {
                    tracing::debug!(%thread, %log, counter, %error, "bodies not fetched");
                }
            }
        });
    }

    /// Compacts every thread this peer may compact, in a task of the database (one run at
    /// a time).
    fn compact_all(self: &Arc<Self>) {
        if self
            .compacting
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let inner = Arc::clone(self);
        let spawned = self.spawn(async move {
            let db = Db {
                inner: Arc::clone(&inner),
            };
            for thread in db.threads().await {
                let allowed = match db.views(thread).await {
                    Ok(views) => views.lock().await.may_compact(),
                    Err(_) => false,
                };
                if allowed && let Err(error) = db.compact(thread).await {
                    tracing::warn!(%thread, %error, "automatic compaction failed");
                }
            }
            inner
                .compacting
                .store(false, std::sync::atomic::Ordering::SeqCst);
        });
        if !spawned {
            self.compacting
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Records that `thread`'s views caught up with everything stored when the node's
    /// arrival count was `arrivals`.
    pub(crate) fn caught_up(&self, thread: ThreadId, arrivals: u64) {
        let mut map = self
            .caught_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seen = map.entry(thread).or_insert(arrivals);
        *seen = (*seen).max(arrivals);
    }

    /// Whether `thread`'s views hold every entry from peers stored so far.
    pub(crate) fn is_caught_up(&self, thread: ThreadId) -> bool {
        let map = self
            .caught_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&thread) == Some(&self.node.arrivals())
    }
}

/// A peer: its identity, its store, its node on the network, and every thread it holds,
/// with views (a key-value view, documents, automerge collections) kept up to date as
/// entries arrive.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use threads_db::{Db, DbConfig, Query};
/// use threads_crypto::Identity;
/// use threads_id::Variant;
/// use serde_json::json;
///
/// let db = Db::open_memory(Identity::generate(), DbConfig::default()).await?;
/// let thread = db.create_thread(Variant::Raw).await?;
/// db.transaction(thread)
///     .put(b"greeting", b"hello")
///     .create_collection("notes", &json!({"type": "object", "required": ["text"]}))
///     .create("notes", "n1", &json!({"text": "first"}))
///     .commit()
///     .await?;
/// assert_eq!(db.get(thread, b"greeting").await?, Some(b"hello".to_vec()));
/// let page = db.query(thread, "notes", &Query::all()).await?;
/// assert_eq!(page.docs[0].1, json!({"text": "first"}));
/// db.shutdown().await;
/// # Ok::<(), threads_db::DbError>(())
/// # }).unwrap();
/// ```
pub struct Db<S: Store + 'static> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S: Store + 'static> Clone for Db<S> {
    /// Another handle to the same database.
    fn clone(&self) -> Db<S> {
        Db {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Store + 'static> std::fmt::Debug for Db<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("peer", &self.inner.node.peer_id())
            .finish_non_exhaustive()
    }
}

impl Db<MemoryStore> {
    /// A database in memory (lost when dropped): for tests and demos.
    ///
    /// # Errors
    /// As [`Db::open`].
    pub async fn open_memory(me: Identity, config: DbConfig) -> Result<Db<MemoryStore>, DbError> {
        Db::open(me, Arc::new(MemoryStore::new()), config).await
    }
}

#[cfg(feature = "postgres")]
impl Db<threads_store::PostgresStore> {
    /// A database in PostgreSQL (for servers), at `url`
    /// (`postgres://user@host:port/database`).
    ///
    /// # Errors
    /// As [`Db::open`], or the server cannot be reached.
    pub async fn open_postgres(
        url: &str,
        me: Identity,
        config: DbConfig,
    ) -> Result<Db<threads_store::PostgresStore>, DbError> {
        let store = threads_store::PostgresStore::connect(url).await?;
        Db::open(me, Arc::new(store), config).await
    }
}

#[cfg(feature = "sqlite")]
impl Db<threads_store::SqliteStore> {
    /// A database in a SQLite file (created if missing).
    ///
    /// # Errors
    /// As [`Db::open`], or the file cannot be opened.
    pub async fn open_sqlite(
        path: impl AsRef<std::path::Path>,
        me: Identity,
        config: DbConfig,
    ) -> Result<Db<threads_store::SqliteStore>, DbError> {
        let store = threads_store::SqliteStore::open(path.as_ref()).await?;
        Db::open(me, Arc::new(store), config).await
    }
}

fn reducers(crdt: &Crdt, docs: &Arc<Docs>, custom: &CustomViews) -> Vec<Arc<dyn Reducer>> {
    let mut all: Vec<Arc<dyn Reducer>> = vec![
        Arc::new(Kv::new(KV_VIEW)),
        Arc::clone(docs) as Arc<dyn Reducer>,
        Arc::new(crdt.clone()),
    ];
    all.extend(custom.0.iter().cloned());
    all
}

/// Refuses custom views whose names are taken.
fn check_custom(custom: &CustomViews) -> Result<(), DbError> {
    let mut names = vec![KV_VIEW, DOCS_VIEW, CRDT_VIEW, ACL_VIEW];
    for reducer in &custom.0 {
        let name = reducer.name();
        if names.contains(&name) {
            return Err(DbError::ViewName(name.to_owned()));
        }
        names.push(name);
    }
    Ok(())
}

impl<S: Store + 'static> Db<S> {
    /// Opens a database over `store` as `me`: starts the node, opens the views of every
    /// thread the store holds (catching them up), and starts syncing.
    ///
    /// # Errors
    /// A store, network or view error.
    pub async fn open(me: Identity, store: Arc<S>, config: DbConfig) -> Result<Db<S>, DbError> {
        check_custom(&config.custom)?;
        let admission = AclAdmission::new();
        let net = NetConfig::new(config.listen.clone())
            .with_announce(config.announce.clone())
            .with_log_quota(config.log_quota)
            .with_admission(admission.clone())
            .with_faults(config.faults.clone());
        let net = match config.peer_limits {
            Some((in_flight, per_second, burst)) => {
                net.with_peer_limits(in_flight, per_second, burst)
            }
            None => net,
        };
        #[cfg(feature = "relay")]
        let net = net.with_relay(config.relay);
        #[cfg(not(feature = "relay"))]
        if config.relay {
            return Err(DbError::Net(threads_net::NetError::Transport(
                "serving as a relay needs the cargo feature `relay`".to_owned(),
            )));
        }
        let node = Node::start(&me, Arc::clone(&store), net).await?;
        let inner = Arc::new(Inner {
            me,
            node,
            admission,
            clock: Mutex::new(Clock::new(config.time.clone())),
            cache: threads_views::CacheBudget::new(config.views.cache_bytes),
            crdt: Crdt::new(CRDT_VIEW),
            docs: Arc::new(Docs::new(DOCS_VIEW)),
            queues: Mutex::default(),
            caught_up: Mutex::default(),
            repairing: Mutex::default(),
            compacting: std::sync::atomic::AtomicBool::new(false),
            fill_tried: Mutex::default(),
            config,
            threads: tokio::sync::RwLock::new(HashMap::new()),
            background: Mutex::new(None),
            tasks: Mutex::new(Some(tokio::task::JoinSet::new())),
            commits: Mutex::new(Some(tokio::task::JoinSet::new())),
            changed: tokio::sync::broadcast::channel(256).0,
        });
        for thread in store.threads().await? {
            open_thread(&inner, thread).await?;
            // Also loads the thread's persisted peers.
            inner.node.watch(thread).await?;
        }
        inner.node.start_sync(inner.config.sync_interval);
        let mut events = inner.node.subscribe();
        let weak = Arc::downgrade(&inner);
        let tick_every = inner.config.sync_interval;
        let background = tokio::spawn(async move {
            // Every sync interval, threads whose views wait (an event dated ahead of the
            // clock, an entry not readable yet) are caught up again, even when nothing
            // arrives.
            let mut tick = tokio::time::interval(tick_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut compacted = tokio::time::Instant::now();
            loop {
                let thread = tokio::select! {
                    event = events.recv() => match event {
                        Ok(NetEvent::Stored { thread, .. } | NetEvent::Forked { thread, .. }) => {
                            Some(thread)
                        }
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tick.tick() => {
                        let Some(inner) = weak.upgrade() else { return };
                        if inner
                            .config
                            .compaction
                            .is_some_and(|every| compacted.elapsed() >= every)
                        {
                            compacted = tokio::time::Instant::now();
                            inner.compact_all();
                        }
                        let all: Vec<ThreadViews<S>> =
                            inner.threads.read().await.values().cloned().collect();
                        for views in all {
                            let (thread, blocked) = {
                                let views = views.lock().await;
                                (views.thread(), views.blocked())
                            };
                            if blocked.is_empty() {
                                continue;
                            }
                            // Entries received without their body that nothing compacted:
                            // the peers are asked for the bodies (in a task of its own).
                            inner.fill_bodies(thread, blocked);
                            let mut views = views.lock().await;
                            let arrivals = inner.node.arrivals();
                            if views.catch_up().await.is_ok() {
                                inner.caught_up(views.thread(), arrivals);
                                inner.after_apply(&mut views).await;
                                let _ = inner.changed.send(views.thread());
                            }
                        }
                        continue;
                    }
                };
                let Some(inner) = weak.upgrade() else { return };
                let targets: Vec<ThreadViews<S>> = match thread {
                    Some(thread) => inner
                        .threads
                        .read()
                        .await
                        .get(&thread)
                        .cloned()
                        .into_iter()
                        .collect(),
                    None => inner.threads.read().await.values().cloned().collect(),
                };
                for views in targets {
                    let mut views = views.lock().await;
                    let arrivals = inner.node.arrivals();
                    match views.catch_up().await {
                        Ok(_) => {
                            inner.caught_up(views.thread(), arrivals);
                            inner.after_apply(&mut views).await;
                            let _ = inner.changed.send(views.thread());
                        }
                        Err(error) => tracing::warn!(%error, "views could not catch up"),
                    }
                }
            }
        });
        *inner
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(background);
        Ok(Db { inner })
    }

    /// Remembers `addr` as a peer of its thread, here and across restarts: pushes go there
    /// and pulls come from there.
    ///
    /// # Errors
    /// A store error.
    pub async fn add_peer(&self, addr: ThreadAddr) -> Result<(), DbError> {
        self.inner.node.remember_peer(addr).await?;
        Ok(())
    }

    /// This peer's identity.
    pub fn identity(&self) -> &Identity {
        &self.inner.me
    }

    /// The node (its addresses, health, the store).
    pub fn node(&self) -> &Node<S> {
        &self.inner.node
    }

    /// The threads this peer holds.
    pub async fn threads(&self) -> Vec<ThreadId> {
        let mut out: Vec<ThreadId> = self.inner.threads.read().await.keys().copied().collect();
        out.sort();
        out
    }

    pub(crate) async fn views(&self, thread: ThreadId) -> Result<ThreadViews<S>, DbError> {
        self.inner
            .threads
            .read()
            .await
            .get(&thread)
            .cloned()
            .ok_or(DbError::UnknownThread(thread))
    }

    /// Applies whatever the store holds for `thread` that the views have not applied yet
    /// (the background task does this as entries arrive).
    ///
    /// # Errors
    /// A view error.
    pub async fn catch_up(&self, thread: ThreadId) -> Result<(), DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        let arrivals = self.inner.node.arrivals();
        views.catch_up().await?;
        self.inner.caught_up(thread, arrivals);
        self.inner.after_apply(&mut views).await;
        Ok(())
    }

    /// Sync health per thread, log and peer.
    ///
    /// # Errors
    /// A store error.
    pub async fn health(&self) -> Result<Vec<SyncStatus>, DbError> {
        Ok(self.inner.node.sync_status().await?)
    }

    /// The CARv1 archive of `thread`: every log this peer holds, encrypted as stored
    /// (docs/FORMAT.md, "CAR archives"). Any IPFS tool reads its blocks; a peer that holds
    /// the thread's keys imports it with [`Db::import_car`].
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], or a store error.
    pub async fn export_car(
        &self,
        thread: ThreadId,
    ) -> Result<(Vec<u8>, threads_net::car::CarSummary), DbError> {
        self.views(thread).await?;
        Ok(threads_net::car::export_car(&**self.inner.node.store(), thread).await?)
    }

    /// Imports a CAR archive of a thread whose keys this peer holds: every block's CID is
    /// checked, every entry verified exactly as sync verifies it, new entries stored and
    /// applied. A tampered archive is refused with the reason ([`DbError::Car`]); entries
    /// stored before the refusal are valid and stay.
    ///
    /// # Errors
    /// [`DbError::Car`], or a view error while applying.
    pub async fn import_car(
        &self,
        bytes: &[u8],
    ) -> Result<(ThreadId, threads_net::car::CarSummary), DbError> {
        let (thread, summary) =
            threads_net::car::import_car(&**self.inner.node.store(), bytes).await?;
        open_thread(&self.inner, thread).await?;
        self.catch_up(thread).await?;
        Ok((thread, summary))
    }

    /// The logs of `thread` whose next event the views cannot apply yet, with its counter:
    /// dated beyond the allowed clock drift ahead of this peer's clock (it applies once the
    /// clock reaches it), or not readable with the keys this peer holds. Later events of
    /// such a log wait behind it.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn waiting(
        &self,
        thread: ThreadId,
    ) -> Result<std::collections::BTreeMap<threads_id::LogId, u64>, DbError> {
        let views = self.views(thread).await?;
        let views = views.lock().await;
        Ok(views.views().blocked().clone())
    }

    /// The proofs this peer holds that a log's author forked its log (signed two different
    /// records at one counter): the views apply such a log up to the record before the
    /// fork and nothing after, on every peer that holds the proof. Peers exchange proofs as
    /// they sync.
    ///
    /// # Errors
    /// A store error.
    pub async fn forks(&self, thread: ThreadId) -> Result<Vec<threads_log::ForkProof>, DbError> {
        Ok(self.inner.node.fork_proofs(thread).await?)
    }

    /// Stops syncing, live queries and the node, and returns once every task the
    /// database started has ended. Everything acknowledged is already stored (each write
    /// and each view commit is one transaction), so nothing is lost. Live queries' receivers
    /// then see their channel closed.
    pub async fn shutdown(&self) {
        // Group commits in flight finish: their writers get their answers.
        let commits = self
            .inner
            .commits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut commits) = commits {
            while commits.join_next().await.is_some() {}
        }
        let tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut tasks) = tasks {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        let task = self
            .inner
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
            // Wait until it stopped, so no catch-up runs after this returns.
            let _ = task.await;
        }
        self.inner.node.shutdown().await;
    }
}

pub(crate) async fn open_thread<S: Store + 'static>(
    inner: &Arc<Inner<S>>,
    thread: ThreadId,
) -> Result<(), DbError> {
    if inner.threads.read().await.contains_key(&thread) {
        return Ok(());
    }
    let mut views = AclViews::open(
        Arc::clone(inner.node.store()),
        thread,
        &inner.me,
        reducers(&inner.crdt, &inner.docs, &inner.config.custom),
        // A database's events apply whole or not at all across its views.
        inner.config.views.with_atomic(true),
    )
    .await?;
    views.share_cache(Arc::clone(&inner.cache));
    let arrivals = inner.node.arrivals();
    views.catch_up().await?;
    inner.caught_up(thread, arrivals);
    // The clock resumes after this peer's own latest event, so a wall clock that moved
    // back across a restart cannot date a new event before it (its log would refuse it).
    if let Some(last) = views.log_time(&inner.me.log_id()) {
        inner
            .clock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .resume(last);
    }
    inner.admission.register(views.shared_acl());
    inner
        .threads
        .write()
        .await
        .entry(thread)
        .or_insert_with(|| Arc::new(AsyncMutex::new(views)));
    Ok(())
}
