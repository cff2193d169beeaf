//! [`Db`]: a peer of the Threads network with its threads, their views and sync.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use threads_acl::{ACL_VIEW, AclAdmission, AclError, AclInvite, AclOp, AclViews, Role, new_thread};
use threads_crypto::{Identity, KeySet, PublicKey, ThreadKey};
use threads_id::{LogId, Multiaddr, ThreadAddr, ThreadId, Variant};
use threads_log::{Clock, TimeSource, WallClock};
use threads_net::{Faults, Invite, NetConfig, NetError, NetEvent, Node, SyncStatus};
use threads_store::{MemoryStore, PostgresStore, SqliteStore, Store, StoreError};
use threads_views::{Batch, Cursor, Kv, Reducer, Refused, Subscription, ViewConfig, ViewError};
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

use crate::changes::Changes;
use crate::crdt::{CRDT_VIEW, Crdt};
use crate::docs::{DOCS_VIEW, DocOp, Docs};
use crate::error::DocError;
use crate::live::{LiveQuery, ResultChange, Source};
use crate::query::{Query, QueryPage};

/// The name of every thread's key-value view.
pub const KV_VIEW: &str = "kv";

/// What can go wrong in a [`Db`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The thread is not one of this peer's.
    #[error("unknown thread {0}")]
    UnknownThread(ThreadId),
    /// A document operation or query was refused.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// This peer may not write: it holds no read key of the current epoch (a follower, or
    /// left out by a rotation).
    #[error("this peer cannot write to thread {0}: it holds no current read key")]
    CannotWrite(ThreadId),
    /// Access control refuses the write (a reader writing, a member without the role on a
    /// document, a non-editor changing roles or inviting): nothing was stored.
    #[error("forbidden in thread {thread}: {}", describe(refused))]
    Forbidden {
        /// The thread.
        thread: ThreadId,
        /// Every refused operation, with why.
        refused: Vec<Refused>,
    },
    /// The views would refuse operations of the write (a document that exists, a unique
    /// value taken, also by an earlier operation of the same transaction): nothing was
    /// stored.
    #[error("refused in thread {thread}: {}", describe(refused))]
    Rejected {
        /// The thread.
        thread: ThreadId,
        /// Every refused operation, with why.
        refused: Vec<Refused>,
    },
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The views failed.
    #[error(transparent)]
    Views(#[from] ViewError),
    /// Access control failed (a bad invite, say).
    #[error(transparent)]
    Acl(#[from] AclError),
    /// The write was interrupted: the task committing its group stopped (it was cancelled,
    /// or the database shut down). The write may or may not have been stored.
    #[error("a write to thread {0} was interrupted; it may or may not have been stored")]
    Interrupted(ThreadId),
    /// The group commit this write was part of failed; nothing of the group was stored
    /// unless the failure came after the store (then the entries apply at the next
    /// catch-up).
    #[error("group commit failed: {0}")]
    Group(String),
    /// The write is larger than an entry may carry
    /// ([`threads_log::MAX_PAYLOAD_BYTES`]): nothing was stored.
    #[error("the write has {size} bytes, more than the {max} an entry may carry")]
    TooLarge {
        /// The encoded batch's size.
        size: usize,
        /// The most an entry carries.
        max: usize,
    },
    /// A custom view's name is taken (by a built-in view or another custom view).
    #[error("the view name {0:?} is taken")]
    ViewName(String),
    /// The clock refused a time.
    #[error("clock: {0}")]
    Clock(String),
    /// An invalid key.
    #[error("key: {0}")]
    Key(String),
}

fn describe(refused: &[Refused]) -> String {
    let parts: Vec<String> = refused
        .iter()
        .map(|r| format!("operation {} ({}): {}", r.index, r.view, r.reason))
        .collect();
    parts.join("; ")
}

/// How a [`Db`] runs.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Where the node listens (default: a free TCP port on 127.0.0.1).
    pub listen: Vec<Multiaddr>,
    /// How often the node syncs with its peers (default: 2 s).
    pub sync_interval: Duration,
    /// How the views run.
    pub views: ViewConfig,
    /// Faults the node injects (none by default): for tests of replication.
    pub faults: Faults,
    /// Where the clock reads the physical time (the system's wall clock by default).
    pub time: TimeFn,
    /// Views of the application's own beside the built-in ones ([`DbConfig::with_view`]).
    pub custom: CustomViews,
}

/// The application's own reducers, in the order added ([`DbConfig::with_view`]).
#[derive(Clone, Default)]
pub struct CustomViews(Vec<Arc<dyn Reducer>>);

impl std::fmt::Debug for CustomViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| r.name().to_owned()))
            .finish()
    }
}

/// A source of physical time for a [`Db`]'s clock ([`DbConfig::with_time`]).
#[derive(Clone)]
pub struct TimeFn(Arc<dyn Fn() -> u64 + Send + Sync>);

impl TimeFn {
    /// Milliseconds since the Unix epoch from `now`.
    pub fn new(now: impl Fn() -> u64 + Send + Sync + 'static) -> TimeFn {
        TimeFn(Arc::new(now))
    }

    /// The system's wall clock.
    pub fn wall() -> TimeFn {
        TimeFn::new(|| WallClock.now_ms())
    }
}

impl TimeSource for TimeFn {
    fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for TimeFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimeFn")
    }
}

impl Default for DbConfig {
    fn default() -> DbConfig {
        DbConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| unreachable!("a valid address")),
            ],
            sync_interval: Duration::from_secs(2),
            views: ViewConfig::new(),
            faults: Faults::new(),
            time: TimeFn::wall(),
            custom: CustomViews::default(),
        }
    }
}

impl DbConfig {
    /// Listens on `addrs` instead.
    #[must_use]
    pub fn with_listen(mut self, addrs: Vec<Multiaddr>) -> DbConfig {
        self.listen = addrs;
        self
    }

    /// Injects `faults` into the node's pushes and requests (for tests; keep the handle to
    /// change them while the database runs).
    #[must_use]
    pub fn with_faults(mut self, faults: Faults) -> DbConfig {
        self.faults = faults;
        self
    }

    /// Adds the application's own view, computed from the thread's events like the
    /// built-in ones on every peer, persisted and caught up the same way: write to it with
    /// [`Db::write`] (a [`Batch`] with operations addressed to its name), read it with
    /// [`Db::read_view`]. Its name must differ from the built-in views' (`kv`, `docs`,
    /// `crdt`, `acl`) and from the other custom views' ([`Db::open`] refuses it otherwise).
    #[must_use]
    pub fn with_view(mut self, reducer: impl Reducer + 'static) -> DbConfig {
        self.custom.0.push(Arc::new(reducer));
        self
    }

    /// Reads physical time from `time` instead of the wall clock (for tests of clocks that
    /// move back).
    #[must_use]
    pub fn with_time(mut self, time: TimeFn) -> DbConfig {
        self.time = time;
        self
    }

    /// Syncs every `interval` instead.
    #[must_use]
    pub const fn with_sync_interval(mut self, interval: Duration) -> DbConfig {
        self.sync_interval = interval;
        self
    }
}

type ThreadViews<S> = Arc<AsyncMutex<AclViews<S>>>;

pub(crate) struct Inner<S: Store + 'static> {
    pub(crate) me: Identity,
    pub(crate) node: Node<S>,
    admission: AclAdmission,
    pub(crate) clock: Mutex<Clock<TimeFn>>,
    config: DbConfig,
    /// One row-cache budget for the views of every thread.
    cache: Arc<threads_views::CacheBudget>,
    /// The automerge view of every thread (one set of documents kept in memory).
    crdt: Crdt,
    /// Writes waiting for their group, per thread (see `write.rs`).
    pub(crate) queues: Mutex<HashMap<ThreadId, crate::write::Queue>>,
    /// Per thread, the node's arrival count read before the views' latest catch-up: while
    /// it is still the count, every entry from peers is applied, and a write can be
    /// applied from the batch in hand.
    caught_up: Mutex<HashMap<ThreadId, u64>>,
    threads: tokio::sync::RwLock<HashMap<ThreadId, ThreadViews<S>>>,
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

impl Db<PostgresStore> {
    /// A database in PostgreSQL (for servers), at `url`
    /// (`postgres://user@host:port/database`).
    ///
    /// # Errors
    /// As [`Db::open`], or the server cannot be reached.
    pub async fn open_postgres(
        url: &str,
        me: Identity,
        config: DbConfig,
    ) -> Result<Db<PostgresStore>, DbError> {
        let store = PostgresStore::connect(url).await?;
        Db::open(me, Arc::new(store), config).await
    }
}

impl Db<SqliteStore> {
    /// A database in a SQLite file (created if missing).
    ///
    /// # Errors
    /// As [`Db::open`], or the file cannot be opened.
    pub async fn open_sqlite(
        path: impl AsRef<Path>,
        me: Identity,
        config: DbConfig,
    ) -> Result<Db<SqliteStore>, DbError> {
        let store = SqliteStore::open(path.as_ref()).await?;
        Db::open(me, Arc::new(store), config).await
    }
}

fn reducers(crdt: &Crdt, custom: &CustomViews) -> Vec<Arc<dyn Reducer>> {
    let mut all: Vec<Arc<dyn Reducer>> = vec![
        Arc::new(Kv::new(KV_VIEW)),
        Arc::new(Docs::new(DOCS_VIEW)),
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
            .with_admission(admission.clone())
            .with_faults(config.faults.clone());
        let node = Node::start(&me, Arc::clone(&store), net).await?;
        let inner = Arc::new(Inner {
            me,
            node,
            admission,
            clock: Mutex::new(Clock::new(config.time.clone())),
            cache: threads_views::CacheBudget::new(config.views.cache_bytes),
            crdt: Crdt::new(CRDT_VIEW),
            queues: Mutex::default(),
            caught_up: Mutex::default(),
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
            loop {
                let thread = tokio::select! {
                    event = events.recv() => match event {
                        Ok(NetEvent::Stored { thread, .. }) => Some(thread),
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tick.tick() => {
                        let Some(inner) = weak.upgrade() else { return };
                        let all: Vec<ThreadViews<S>> =
                            inner.threads.read().await.values().cloned().collect();
                        for views in all {
                            let mut views = views.lock().await;
                            if views.views().blocked().is_empty() {
                                continue;
                            }
                            let arrivals = inner.node.arrivals();
                            if views.catch_up().await.is_ok() {
                                inner.caught_up(views.thread(), arrivals);
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

    /// Creates a thread: `Raw` (every member with the keys may write) or
    /// `AccessControlled` (this peer owns its ACL; others get roles with
    /// [`Db::invite`]).
    ///
    /// # Errors
    /// A store, network or view error.
    pub async fn create_thread(&self, variant: Variant) -> Result<ThreadId, DbError> {
        let node = &self.inner.node;
        let thread = match variant {
            Variant::Raw => node.create_thread(Variant::Raw).await?.0,
            Variant::AccessControlled => {
                let (thread, salt) = new_thread(&self.inner.me.log_id());
                node.store()
                    .put_thread(thread, &ThreadKey::generate())
                    .await?;
                node.watch(thread).await?;
                open_thread(&self.inner, thread).await?;
                let init = Batch::new().with(ACL_VIEW, AclOp::Init { salt }.encode());
                self.write(thread, init).await?;
                thread
            }
            other => {
                return Err(DbError::Key(format!("unknown thread variant {other}")));
            }
        };
        open_thread(&self.inner, thread).await?;
        Ok(thread)
    }

    /// An invite for `member` with `role` (as text). In an access-controlled thread this
    /// also writes the ACL change that gives the role (and hands over read keys). A
    /// follower's invite carries no read key.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], or the ACL change cannot be written.
    pub async fn invite(
        &self,
        thread: ThreadId,
        member: LogId,
        role: Role,
    ) -> Result<String, DbError> {
        let addrs: Vec<_> = self.inner.node.thread_addr(thread).into_iter().collect();
        let views = self.views(thread).await?;
        if thread.variant() == Variant::AccessControlled {
            let batch = views.lock().await.set_role(member, role).await?;
            self.write(thread, batch).await?;
            let invite = views.lock().await.invite(addrs, &member, role)?;
            return Ok(invite.to_text().to_string());
        }
        let key = self
            .inner
            .node
            .store()
            .thread_key(thread)
            .await?
            .ok_or(DbError::UnknownThread(thread))?;
        let key = if role.can_read() {
            key
        } else {
            key.to_follower()
        };
        let public = PublicKey::from_log_id(&member).map_err(|e| DbError::Key(e.to_string()))?;
        let invite = Invite::sealed(addrs, &KeySet::new(thread, key), &public);
        Ok(AclInvite::new(role, invite).to_text().to_string())
    }

    /// Joins a thread from an invite's text: stores its keys, pulls it from the inviter,
    /// and opens its views. Returns the thread.
    ///
    /// # Errors
    /// A bad invite, or no address answered.
    pub async fn join(&self, invite: &str) -> Result<ThreadId, DbError> {
        let invite: AclInvite = invite.parse()?;
        let (addrs, _) = invite.open(&self.inner.me)?;
        let (thread, _) = self
            .inner
            .node
            .join(invite.invite(), &self.inner.me)
            .await?;
        for addr in addrs {
            self.add_peer(addr).await?;
        }
        open_thread(&self.inner, thread).await?;
        self.catch_up(thread).await?;
        Ok(thread)
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
        Ok(())
    }

    /// A transaction: writes collected and written as one event.
    pub fn transaction(&self, thread: ThreadId) -> Transaction<'_, S> {
        Transaction {
            db: self,
            thread,
            batch: Batch::new(),
            docs: Vec::new(),
        }
    }

    /// The value of `key` in the thread's key-value view.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn get(&self, thread: ThreadId, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views.read(KV_VIEW, |state| Kv::get(state, key)).await?)
    }

    /// The live keys starting with `prefix` and their values.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn list(
        &self,
        thread: ThreadId,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(KV_VIEW, |state| Kv::scan(state, prefix).collect())
            .await?)
    }

    /// A document.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn doc(
        &self,
        thread: ThreadId,
        collection: &str,
        id: &str,
    ) -> Result<Option<Value>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(DOCS_VIEW, |state| {
                Docs::get(state, collection, id).map(|(d, _)| d)
            })
            .await?)
    }

    /// Runs a query over a document collection.
    ///
    /// # Errors
    /// [`DocError::UnknownCollection`], [`DocError::BadQuery`].
    pub async fn query(
        &self,
        thread: ThreadId,
        collection: &str,
        query: &Query,
    ) -> Result<QueryPage, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(DOCS_VIEW, |state| Docs::query(state, collection, query))
            .await??)
    }

    /// Reads a view of the thread (a custom one added with [`DbConfig::with_view`], or a
    /// built-in one) with `read`, under the thread's views lock: the state is the one
    /// of the latest applied event, consistent across the view's rows. `read` may run more
    /// than once (see [`threads_views::Views::read`]): it must depend only on the state.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], or a view error if no view has that name.
    pub async fn read_view<T>(
        &self,
        thread: ThreadId,
        view: &str,
        read: impl Fn(&threads_views::State) -> T,
    ) -> Result<T, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views.read(view, read).await?)
    }

    /// An automerge document as JSON.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn crdt(
        &self,
        thread: ThreadId,
        collection: &str,
        id: &str,
    ) -> Result<Option<Value>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(CRDT_VIEW, |state| Crdt::get(state, collection, id))
            .await?)
    }

    /// Changes an automerge document: `edit` makes changes on the current document, which
    /// are written as one event.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], a write error, or [`DocError::Automerge`].
    pub async fn change_crdt(
        &self,
        thread: ThreadId,
        collection: &str,
        id: &str,
        edit: impl FnOnce(&mut automerge::AutoCommit) -> Result<(), automerge::AutomergeError>,
    ) -> Result<u64, DbError> {
        let mut doc = {
            let views = self.views(thread).await?;
            let mut views = views.lock().await;
            views
                .read(CRDT_VIEW, |state| {
                    self.inner.crdt.document_kept(thread, state, collection, id)
                })
                .await??
        };
        doc.set_actor(automerge::ActorId::from(self.inner.me.log_id().to_bytes()));
        edit(&mut doc).map_err(|e| DocError::Automerge(e.to_string()))?;
        doc.commit();
        let Some(change) = doc.get_last_local_change() else {
            return Err(DocError::Automerge("the edit changed nothing".to_owned()).into());
        };
        self.write(
            thread,
            Batch::new().with(CRDT_VIEW, Crdt::change(collection, id, &change)),
        )
        .await
    }

    /// A live query: the changes to the result set of `query` over `collection`, sent
    /// after every change of the thread's views (the first message holds the whole result
    /// set as added). Dropping the receiver ends it.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], or [`DocError::BadQuery`].
    pub async fn live_query(
        &self,
        thread: ThreadId,
        source: Source,
        collection: &str,
        query: Query,
    ) -> Result<tokio::sync::mpsc::Receiver<Vec<ResultChange>>, DbError> {
        let views = self.views(thread).await?;
        let mut live = LiveQuery::new(source, collection, query)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let view = live.view();
        // Followed from the rows each commit changes: subscribed before the first read,
        // so no commit falls between them.
        let mut rows = views.lock().await.views().watch_rows();
        let task = async move {
            // Whether the whole result set must be read (at first, after a rebuild, a lag,
            // a change of the collection, or for a query with a limit).
            let mut full = true;
            let mut ids = std::collections::BTreeSet::new();
            loop {
                let changes = {
                    let mut views = views.lock().await;
                    if full {
                        match views.read(view, |state| live.result(state)).await {
                            Ok(now) => now.map(|now| live.update(now)),
                            Err(_) => return,
                        }
                    } else {
                        match views.read(view, |state| live.result_for(state, &ids)).await {
                            Ok(now) => Ok(live.update_some(now)),
                            Err(_) => return,
                        }
                    }
                };
                // A collection that does not exist yet is read again at its creation.
                full = changes.is_err();
                ids.clear();
                if let Ok(changes) = changes
                    && !changes.is_empty()
                    && tx.send(changes).await.is_err()
                {
                    return;
                }
                // Wait for a commit that touches the result set, then take every commit
                // already queued with it.
                let mut waiting = true;
                loop {
                    let next = if waiting {
                        rows.recv().await
                    } else {
                        match rows.try_recv() {
                            Ok(next) => Ok(next),
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(n))
                            }
                            Err(_) => break,
                        }
                    };
                    match next {
                        Ok(commit) => match live.changed_ids(&commit) {
                            Some(changed) => ids.extend(changed),
                            None => full = true,
                        },
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => full = true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                    waiting = !full && ids.is_empty();
                }
                if tx.is_closed() {
                    return;
                }
            }
        };
        // Tracked, so that shutdown stops it.
        self.inner.spawn(task);
        Ok(rx)
    }

    /// A lossless subscription to the thread's events in its order, from `from`.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn subscribe(
        &self,
        thread: ThreadId,
        from: Cursor,
    ) -> Result<Subscription<S>, DbError> {
        let views = self.views(thread).await?;
        let views = views.lock().await;
        Ok(views.views().subscribe(from))
    }

    /// The thread's change feed from `from` ([`Cursor::default`] for the beginning): each
    /// applied event once, with what each of its operations does (collection, document,
    /// action, the document written; key and value) and whether it was refused, and the
    /// cursor to resume after it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use serde_json::json;
    /// use threads_crypto::Identity;
    /// use threads_db::{ChangeKind, Db, DbConfig, DocAction};
    /// use threads_id::Variant;
    /// use threads_views::Cursor;
    ///
    /// let db = Db::open_memory(Identity::generate(), DbConfig::default()).await?;
    /// let thread = db.create_thread(Variant::Raw).await?;
    /// db.transaction(thread)
    ///     .create_collection("notes", &json!({"type": "object"}))
    ///     .create("notes", "n1", &json!({"text": "hi"}))
    ///     .commit()
    ///     .await?;
    /// let mut feed = db.changes(thread, Cursor::default()).await?;
    /// let event = feed.next().await?.expect("an event");
    /// assert!(matches!(
    ///     &event.changes[1].kind,
    ///     ChangeKind::Doc { id: Some(id), action: DocAction::Create, .. } if id == "n1"
    /// ));
    /// assert_eq!(event.changes[1].rejected, None);
    /// // Resume later from `event.cursor`: the next event is the one after it.
    /// db.shutdown().await;
    /// # Ok::<(), threads_db::DbError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn changes(&self, thread: ThreadId, from: Cursor) -> Result<Changes<S>, DbError> {
        let views = self.views(thread).await?;
        let events = views.lock().await.views().subscribe(from);
        Ok(Changes::new(events, views))
    }

    /// Every operation refused in the thread, with author and reason.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn rejections(
        &self,
        thread: ThreadId,
    ) -> Result<Vec<threads_views::Rejection>, DbError> {
        Ok(self.views(thread).await?.lock().await.rejections().await?)
    }

    /// Sync health per thread, log and peer.
    ///
    /// # Errors
    /// A store error.
    pub async fn health(&self) -> Result<Vec<SyncStatus>, DbError> {
        Ok(self.inner.node.sync_status().await?)
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

async fn open_thread<S: Store + 'static>(
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
        reducers(&inner.crdt, &inner.config.custom),
        inner.config.views,
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

/// Writes collected to be written as one event ([`Db::transaction`]).
#[must_use = "a transaction does nothing until committed"]
pub struct Transaction<'a, S: Store + 'static> {
    db: &'a Db<S>,
    thread: ThreadId,
    batch: Batch,
    docs: Vec<DocOp>,
}

impl<S: Store + 'static> std::fmt::Debug for Transaction<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("thread", &self.thread)
            .field("operations", &self.batch.ops().len())
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> Transaction<'_, S> {
    /// Sets `key` to `value` in the key-value view.
    pub fn put(mut self, key: &[u8], value: &[u8]) -> Self {
        self.batch.push(KV_VIEW, Kv::put(key, value));
        self
    }

    /// Deletes `key` from the key-value view.
    pub fn del(mut self, key: &[u8]) -> Self {
        self.batch.push(KV_VIEW, Kv::del(key));
        self
    }

    /// A document operation.
    pub fn doc(mut self, op: DocOp) -> Self {
        self.batch.push(DOCS_VIEW, op.encode());
        self.docs.push(op);
        self
    }

    /// Creates a collection with a JSON Schema.
    pub fn create_collection(self, name: &str, schema: &Value) -> Self {
        self.doc(DocOp::CreateCollection {
            name: name.to_owned(),
            schema: schema.to_string(),
        })
    }

    /// Creates a document.
    pub fn create(self, collection: &str, id: &str, doc: &Value) -> Self {
        self.doc(DocOp::Create {
            collection: collection.to_owned(),
            id: id.to_owned(),
            doc: doc.to_string(),
        })
    }

    /// Replaces a document.
    pub fn save(self, collection: &str, id: &str, doc: &Value) -> Self {
        self.doc(DocOp::Save {
            collection: collection.to_owned(),
            id: id.to_owned(),
            doc: doc.to_string(),
        })
    }

    /// Deletes a document.
    pub fn delete(self, collection: &str, id: &str) -> Self {
        self.doc(DocOp::Delete {
            collection: collection.to_owned(),
            id: id.to_owned(),
        })
    }

    /// Checks the document operations against the current state (a schema violation, an
    /// unknown collection, a taken unique value are refused here, and nothing is written),
    /// then writes everything as one event. Returns its counter in this peer's log.
    ///
    /// # Errors
    /// A [`DocError`], or as [`Db::write`].
    pub async fn commit(self) -> Result<u64, DbError> {
        {
            let views = self.db.views(self.thread).await?;
            let mut views = views.lock().await;
            let checker = Docs::default();
            let created: Vec<&str> = self
                .docs
                .iter()
                .filter_map(|op| match op {
                    DocOp::CreateCollection { name, .. } => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            views
                .read(DOCS_VIEW, |state| {
                    for op in &self.docs {
                        match checker.check(state, op) {
                            Ok(()) => {}
                            // An operation on a collection this transaction creates is
                            // checked when it applies.
                            Err(DocError::UnknownCollection(name))
                                if created.contains(&name.as_str()) => {}
                            Err(error) => return Err(error),
                        }
                    }
                    Ok(())
                })
                .await??;
        }
        self.db.write(self.thread, self.batch).await
    }
}
