//! Views behind the ACL: the coordinator that keeps a thread's ACL and its other views in
//! step.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use threads_crypto::{Identity, KeySet, PublicKey, ReadKey, ServiceKey, ThreadKey};
use threads_id::{LogId, ThreadId, Variant};
use threads_log::{Appended, EventOrder, Head, Verifier};
use threads_store::{Page, Store};
use threads_views::{
    Batch, Begun, Landing, Progress, Reducer, Refused, Rejection, Stamp, State, ViewConfig,
    ViewError, Views,
};

use crate::acl::Acl;
use crate::error::{AclError, Result};
use crate::gate::{AclGate, AclLog, SharedAcl};
#[cfg(feature = "net")]
use crate::invite::AclInvite;
use crate::op::{ACL_VIEW, AclOp, acl_key, acl_read_key};
use crate::role::Role;

/// A change of roles that a key rotation is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// `member` gets this role.
    Member(LogId, Role),
    /// Members without a role of their own get this role.
    Default(Role),
}

/// Whether going from role `before` to `after` takes away a key: the read key or the
/// service key.
const fn loses(before: Role, after: Role) -> bool {
    (before.can_read() && !after.can_read()) || (before.can_follow() && !after.can_follow())
}

/// Whether a key set sealed in a rotation carries a read key: rotations seal plain keys
/// (the epoch's service key, with the read key for a reader), so the length tells.
fn carries_read_key(sealed: &[u8]) -> bool {
    sealed.len() > threads_crypto::SEALED_FOLLOWER_KEYSET_LEN
}

/// From where the views must be recomputed after the ACL changed.
enum Since {
    Nothing,
    All,
    At(EventOrder),
}

/// A thread's views with access control: the ACL is computed first (scope `"{name}.acl"`),
/// then every other view applies an operation only if its author's role at its place allows
/// it. When new ACL operations change the ACL, the views are recomputed from the earliest
/// event whose admission may differ ([`Views::regate`]).
///
/// For a thread of the `Raw` variant nothing is checked (every event applies) and ACL
/// operations count for nothing.
pub struct AclViews<S> {
    store: Arc<S>,
    thread: ThreadId,
    me: Identity,
    /// The thread's key ring without a read key: the first service key (records) and the
    /// service key of every later epoch this peer learned.
    ring: ThreadKey,
    /// Whether the ring changed since [`AclViews::take_new_epochs`] was last asked.
    new_epochs: bool,
    /// The service key of each epoch this peer was given, by the place of the rotation
    /// that started it, in that order.
    services: Vec<(Stamp, ServiceKey)>,
    /// Every read key this peer holds, in the order it learned them, with its epoch where
    /// known (the store's key has none: it may be the first key, or an invite's).
    keys: Vec<(Option<Stamp>, ReadKey)>,
    gated_key: String,
    acl_views: Views<S>,
    views: Views<S>,
    acl: SharedAcl,
}

impl<S> std::fmt::Debug for AclViews<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclViews")
            .field("thread", &self.thread)
            .field("views", &self.views)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> AclViews<S> {
    /// Opens the views of `thread` (scope `"views"`) behind its ACL, as the member `me`
    /// (whose identity opens the read keys of later epochs sealed to it).
    ///
    /// # Errors
    /// As [`Views::open`], or a store error.
    pub async fn open(
        store: Arc<S>,
        thread: ThreadId,
        me: &Identity,
        reducers: Vec<Arc<dyn Reducer>>,
        config: ViewConfig,
    ) -> Result<AclViews<S>> {
        AclViews::open_scope(store, thread, me, "views", reducers, config).await
    }

    /// [`AclViews::open`] under another scope name.
    ///
    /// # Errors
    /// As [`Views::open_scope`], or a store error.
    pub async fn open_scope(
        store: Arc<S>,
        thread: ThreadId,
        me: &Identity,
        name: &str,
        reducers: Vec<Arc<dyn Reducer>>,
        config: ViewConfig,
    ) -> Result<AclViews<S>> {
        if reducers.iter().any(|r| r.name() == ACL_VIEW) {
            return Err(AclError::Views(ViewError::DuplicateView(
                ACL_VIEW.to_owned(),
            )));
        }
        let key = store
            .thread_key(thread)
            .await?
            .ok_or(AclError::Views(ViewError::UnknownThread))?;
        // The ACL's scope reads only events sealed with an ACL key (one per service-key
        // epoch), and passes over the others: every member, follower or reader, sees the
        // same ACL events.
        let ring = key.to_follower();
        let first_acl = ring.with_read(acl_read_key(thread, ring.service()));
        let mut acl_views = Views::open_scope_with_key(
            Arc::clone(&store),
            thread,
            &format!("{name}.acl"),
            first_acl.clone(),
            vec![Arc::new(AclLog)],
            // One commutative view: atomic events mean nothing here, and without them the
            // ACL never rewinds.
            config
                .with_skip_unreadable(true)
                .with_atomic(false)
                .with_in_order(false),
        )
        .await?;
        for service in ring.epochs() {
            acl_views.add_read_key(acl_read_key(thread, service));
        }
        // A follower's views read nothing but ACL events: they stay empty, blocked at the
        // first event of each log sealed with a read key.
        let content_key = if key.can_read() {
            key.clone()
        } else {
            first_acl
        };
        // In order: a change of the ACL from some event on (a revocation arriving late)
        // undoes the events from there, commutative views' too, instead of rebuilding them.
        let mut views = Views::open_scope_with_key(
            Arc::clone(&store),
            thread,
            name,
            content_key,
            reducers,
            config.with_in_order(true),
        )
        .await?;
        // Events sealed with an ACL key (which followers hold too) carry ACL operations
        // only: the content views take their place in the order and nothing else, so a
        // follower cannot write content.
        for service in ring.services() {
            views.pass_over(acl_read_key(thread, service));
        }
        let mut this = AclViews {
            store,
            thread,
            me: me.clone(),
            ring,
            new_epochs: false,
            services: Vec::new(),
            keys: key.read().cloned().map(|k| (None, k)).into_iter().collect(),
            gated_key: format!("acl.gated.{name}"),
            acl_views,
            views,
            acl: Arc::new(RwLock::new(Acl::empty(thread))),
        };
        let acl = this.sync_acl().await?;
        let digest = acl.digest();
        // A raw thread's views computed before compaction existed (no digest stored) were
        // computed under this ACL if it compacts nothing.
        let unchanged_raw =
            thread.variant() != Variant::AccessControlled && acl.voided().is_empty();
        *this.acl.write().unwrap_or_else(PoisonError::into_inner) = acl;
        this.views
            .set_gate(Arc::new(AclGate(Arc::clone(&this.acl))));
        // The views may have been computed under another ACL (a crash between the ACL's
        // commit and theirs): then they are recomputed.
        let stored = this.store.meta(thread, &this.gated_key).await?;
        if stored.as_deref() != Some(&digest[..]) {
            if !(stored.is_none() && unchanged_raw) {
                this.views.regate(None).await?;
            }
            this.store
                .put_meta(thread, &this.gated_key, &digest)
                .await?;
        }
        Ok(this)
    }

    /// Catches the ACL up and gives the views every read key sealed to this member, and
    /// the ring every service key: a new service-key epoch is stored with the thread's key
    /// (the network proves it and announces on its topic) and its ACL key is added, and the
    /// ACL is computed again (its events sealed with that key, passed over until now, are
    /// read). Returns the ACL it computed.
    async fn sync_acl(&mut self) -> Result<Acl> {
        let thread = self.thread;
        loop {
            self.acl_views.catch_up().await?;
            let raw_key = self.raw_key();
            let acl = self
                .acl_views
                .read(ACL_VIEW, |state| {
                    AclLog::acl(thread, state, raw_key.as_ref())
                })
                .await?;
            // The service key of each epoch given to this peer, in the order of the
            // rotations that started them (operations that stopped counting, say a
            // rotation by an editor revoked before it, give none).
            let sealed = acl.sealed_for(&self.me);
            let mut epochs: Vec<(Stamp, ServiceKey)> = Vec::new();
            for (epoch, key) in &sealed {
                if let Some(epoch) = epoch
                    && key.service() != self.ring.service()
                    && !epochs.iter().any(|(_, known)| known == key.service())
                {
                    epochs.push((*epoch, key.service().clone()));
                }
            }
            epochs.sort_by_key(|(epoch, _)| *epoch);
            let mut grew = 0;
            for (_, service) in &epochs {
                if !self.ring.services().any(|known| known == service) {
                    grew += 1;
                    self.acl_views.add_read_key(acl_read_key(thread, service));
                    self.views.pass_over(acl_read_key(thread, service));
                }
            }
            // The ring: keys known otherwise first (an invite's, or a rotation's that no
            // longer counts), then the epochs in order, so that the last is the newest
            // epoch this peer was given.
            let ring = self.ring.with_epochs(
                self.ring
                    .epochs()
                    .iter()
                    .filter(|known| !epochs.iter().any(|(_, s)| s == *known))
                    .chain(epochs.iter().map(|(_, s)| s)),
            );
            if ring.epochs().len() < self.ring.epochs().len() + grew {
                tracing::warn!(%thread, "the key ring is full: a new epoch is not taken");
            }
            self.services = epochs;
            if ring != self.ring {
                self.ring = ring;
                self.new_epochs = true;
                self.store_ring().await?;
            }
            if grew > 0 {
                // Events sealed with the new ACL key were passed over: read them now.
                self.acl_views.rebuild().await?;
                continue;
            }
            let read_keys = sealed
                .into_iter()
                .filter_map(|(epoch, key)| key.read().cloned().map(|read| (epoch, read)));
            for (epoch, key) in read_keys {
                match self.keys.iter_mut().find(|(_, k)| *k == key) {
                    Some(known) => known.0 = known.0.or(epoch),
                    None => self.keys.push((epoch, key.clone())),
                }
                self.views.add_read_key(key);
            }
            return Ok(acl);
        }
    }

    /// Stores the ring's epochs with the thread's key, under the thread's key lock: the
    /// stored key may have gained a read key or epochs meanwhile (a join), which are kept
    /// (its epochs unknown here first, not as the newest).
    async fn store_ring(&self) -> Result<()> {
        let ring = &self.ring;
        let stored = threads_store::update_thread_key(&*self.store, self.thread, |stored| {
            let stored = stored?;
            (stored.service() == ring.service()).then(|| {
                stored.with_epochs(
                    stored
                        .epochs()
                        .iter()
                        .filter(|known| !ring.epochs().contains(known))
                        .chain(ring.epochs()),
                )
            })
        })
        .await?;
        if stored.is_none_or(|stored| stored.service() != ring.service()) {
            return Err(AclError::Views(ViewError::UnknownThread));
        }
        Ok(())
    }

    /// Whether this peer learned a new service-key epoch since last asked: the network
    /// should watch the new epoch's announcement topic (`Node::watch`).
    pub fn take_new_epochs(&mut self) -> bool {
        std::mem::take(&mut self.new_epochs)
    }

    /// The thread's key ring as this peer holds it, without a read key: the first service
    /// key and each later epoch's.
    pub const fn ring(&self) -> &ThreadKey {
        &self.ring
    }

    fn lock_acl(acl: &SharedAcl) -> std::sync::RwLockReadGuard<'_, Acl> {
        acl.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies what the store holds that the ACL and the views have not applied yet.
    ///
    /// # Errors
    /// As [`Views::catch_up`].
    pub async fn catch_up(&mut self) -> Result<Progress> {
        let next = self.sync_acl().await?;
        if next.digest() == Self::lock_acl(&self.acl).digest() {
            // The same operations count (the refused ones may differ).
            *self.acl.write().unwrap_or_else(PoisonError::into_inner) = next;
            return Ok(self.views.catch_up().await?);
        }
        let current = Self::lock_acl(&self.acl).clone();
        let since = self.since(&current, &next).await?;
        let digest = next.digest();
        *self.acl.write().unwrap_or_else(PoisonError::into_inner) = next;
        let progress = match since {
            Since::Nothing => self.views.catch_up().await?,
            Since::All => self.views.regate(None).await?,
            Since::At(order) => self.views.regate(Some(order)).await?,
        };
        self.store
            .put_meta(self.thread, &self.gated_key, &digest)
            .await?;
        if current.voided() != Self::lock_acl(&self.acl).voided() {
            self.drop_voided_bodies(current.voided()).await?;
        }
        Ok(progress)
    }

    /// Stores this peer's own new entries `batch` (built after `expected`) and applies them
    /// in one store transaction ([`Views::write_local`]) when none of them carries an ACL
    /// operation; otherwise (the ACL may change) stores them and catches up.
    ///
    /// # Errors
    /// As [`Views::write_local`].
    pub async fn write_local(
        &mut self,
        expected: Option<Head>,
        batch: &[Appended],
        events: &[(EventOrder, &[u8])],
    ) -> Result<Progress> {
        if carries_acl(events) {
            return self.store_and_catch_up(expected, batch, events).await;
        }
        Ok(self.views.write_local(expected, batch, events).await?)
    }

    /// Stores this peer's entries `batch` alone, then catches up (the way of events with
    /// ACL operations, which may change what the rest admits).
    async fn store_and_catch_up(
        &mut self,
        expected: Option<Head>,
        batch: &[Appended],
        events: &[(EventOrder, &[u8])],
    ) -> Result<Progress> {
        if let Some((order, _)) = events.first() {
            self.store
                .append(self.thread, order.log, expected, batch)
                .await?;
        }
        self.catch_up().await
    }

    /// [`AclViews::write_local`] in two steps for a writer with more groups queued
    /// ([`Views::begin_local`]): applies `batch` in memory and returns the commit to
    /// store, unless an event carries an ACL operation (then the entries are stored and
    /// the views catch up, once the commit being stored, if any, is done).
    ///
    /// # Errors
    /// As [`Views::begin_local`].
    pub async fn begin_local(
        &mut self,
        expected: Option<Head>,
        batch: &[Appended],
        events: &[(EventOrder, &[u8])],
    ) -> Result<Begun> {
        if carries_acl(events) {
            // After the commit being stored: the entries chain to its records.
            self.views.settle().await;
            return Ok(Begun::Done(
                self.store_and_catch_up(expected, batch, events).await?,
            ));
        }
        Ok(self.views.begin_local(expected, batch, events).await?)
    }

    /// The outcome of a commit from [`AclViews::begin_local`] ([`Views::finish_local`]).
    pub fn finish_local(&mut self, landing: Landing, stored: bool) {
        self.views.finish_local(landing, stored);
    }

    /// A commit being stored ([`Views::fly`]).
    pub async fn fly(&mut self, landing: Landing, done: threads_views::Outcome) {
        self.views.fly(landing, done).await;
    }

    /// Waits for the commit being stored, if any ([`Views::settle`]).
    pub async fn settle(&mut self) {
        self.views.settle().await;
    }

    /// The earliest place where the two ACLs may admit an event differently.
    async fn since(&self, old: &Acl, new: &Acl) -> Result<Since> {
        let mut earliest: Option<EventOrder> = None;
        let mut consider = |order: EventOrder| {
            earliest = Some(earliest.map_or(order, |e| e.min(order)));
        };
        for (stamp, op) in &old.difference(new) {
            match op {
                AclOp::Init { .. } => return Ok(Since::All),
                AclOp::SetDefault { .. } => consider(stamp.order),
                AclOp::SetRole { member, from, .. }
                | AclOp::SetResourceRole { member, from, .. } => {
                    let member = *member;
                    consider(stamp.order);
                    if let Some(order) = self.order_of(member, *from).await? {
                        consider(order);
                    }
                }
                // An editor right admits ACL operations only; the operations it admitted
                // or refused are in the difference themselves. Keys change what this peer
                // can read, not what is admitted.
                AclOp::SetEditor { .. } | AclOp::Rotate { .. } | AclOp::Share { .. } => {}
                // The compacted events apply nothing from their place on (or apply again,
                // when the operation stopped counting).
                // Compactions change answers where the voided set changed (below): a
                // compaction naming events voided already changes nothing.
                AclOp::Compact { .. } => {}
            }
        }
        // The first counter of each log whose voided answer differs: the events from its
        // place on are recomputed (an event not stored, or not readable here, was not
        // applied, and neither were the later ones of its log).
        let logs: std::collections::BTreeSet<&LogId> =
            old.voided().keys().chain(new.voided().keys()).collect();
        for log in logs {
            let none = Vec::new();
            let before = old.voided().get(log).unwrap_or(&none);
            let after = new.voided().get(log).unwrap_or(&none);
            if let Some(counter) = crate::acl::first_difference(before, after)
                && let Some(order) = self.order_of(*log, counter).await?
            {
                consider(order);
            }
        }
        Ok(earliest.map_or(Since::Nothing, Since::At))
    }

    /// Drops the bodies of the compacted events this peer holds (their records stay):
    /// they apply nothing on any peer now. Only the events compacted since `before` (the
    /// voided ranges of an earlier ACL; empty: all of them). Returns how many were dropped.
    ///
    /// # Errors
    /// A store error.
    pub async fn drop_voided_bodies(
        &mut self,
        before: &BTreeMap<LogId, Vec<(u64, u64)>>,
    ) -> Result<u64> {
        let voided: BTreeMap<LogId, Vec<(u64, u64)>> = Self::lock_acl(&self.acl)
            .voided()
            .iter()
            .map(|(log, ranges)| {
                let old = before.get(log).map_or(&[][..], Vec::as_slice);
                (*log, crate::acl::subtract(ranges, old))
            })
            .filter(|(_, ranges)| !ranges.is_empty())
            .collect();
        if voided.is_empty() {
            return Ok(0);
        }
        // Only content events lose their bodies: an event sealed with an ACL key (or one
        // this peer cannot read) keeps it whatever an operation names, since every peer
        // computes the ACL from all of them.
        let Some(key) = self.store.thread_key(self.thread).await? else {
            return Err(AclError::Views(ViewError::UnknownThread));
        };
        let acl_keys: Vec<ReadKey> = self
            .ring
            .services()
            .map(|service| acl_read_key(self.thread, service))
            .collect();
        let mut dropped = 0;
        for (log, ranges) in &voided {
            let Some(head) = self.store.head(self.thread, *log).await? else {
                continue;
            };
            let Ok(verifier) = self.verifier(*log, &key) else {
                continue;
            };
            for &(first, last) in ranges {
                let last = last.min(head.counter);
                let mut after = first.saturating_sub(1);
                while after < last {
                    let page = Page::new(1_024, 16 << 20);
                    let entries = self
                        .store
                        .entries_after(self.thread, *log, after, page)
                        .await?;
                    let Some(end) = entries.last().map(|e| e.counter) else {
                        break;
                    };
                    let content: Vec<u64> = entries
                        .iter()
                        .filter(|e| e.counter <= last && !e.entry.body.data().is_empty())
                        .filter(|e| {
                            verifier
                                .read_stored(&e.entry)
                                .is_ok_and(|read| !acl_keys.contains(&read.read_key))
                        })
                        .map(|e| e.counter)
                        .collect();
                    dropped += self
                        .store
                        .compact_bodies(self.thread, *log, &content)
                        .await?;
                    after = end;
                }
            }
        }
        tracing::debug!(thread = %self.thread, dropped, "bodies of compacted events dropped");
        Ok(dropped)
    }

    /// A verifier of `log` that reads with every read key this peer holds and every ACL
    /// key of the ring.
    fn verifier(
        &self,
        log: LogId,
        key: &ThreadKey,
    ) -> std::result::Result<Verifier, threads_log::VerifyError> {
        let mut verifier = Verifier::new(self.thread, log, key)?;
        for (_, read) in &self.keys {
            verifier.add_read_key(read.clone());
        }
        for service in self.ring.services() {
            verifier.add_read_key(acl_read_key(self.thread, service));
        }
        Ok(verifier)
    }

    /// The place of `member`'s event `counter`, if the store holds it.
    async fn order_of(&self, member: LogId, counter: u64) -> Result<Option<EventOrder>> {
        let counter = counter.max(1);
        let entries = self
            .store
            .entries_after(self.thread, member, counter - 1, Page::new(1, usize::MAX))
            .await?;
        let Some(stored) = entries.first().filter(|e| e.counter == counter) else {
            return Ok(None);
        };
        let Some(key) = self.store.thread_key(self.thread).await? else {
            return Err(AclError::Views(ViewError::UnknownThread));
        };
        let unreadable = |source| ViewError::Unreadable {
            log: member,
            counter,
            source,
        };
        let verifier = self.verifier(member, &key).map_err(unreadable)?;
        // An event this peer cannot read is not applied to its views: no answer changes.
        let Ok(read) = verifier.read_stored(&stored.entry) else {
            return Ok(None);
        };
        Ok(Some(EventOrder {
            time: read.time,
            log: member,
            counter,
        }))
    }

    /// The thread.
    pub const fn thread(&self) -> ThreadId {
        self.thread
    }

    /// The key to write ACL batches with: the ACL key of the newest service-key epoch this
    /// peer holds (see [`crate::acl_key`]).
    pub fn acl_key(&self) -> ThreadKey {
        acl_key(self.thread, &self.ring)
    }

    /// The key to write with now: the read key of the latest epoch (the thread key's if the
    /// read key was never rotated). `None` if the latest rotation left this member out: it
    /// may no longer read, so it should not write.
    pub fn write_key(&self) -> Option<ThreadKey> {
        let read = match Self::lock_acl(&self.acl).epoch() {
            None => self.keys.first().map(|(_, k)| k.clone())?,
            Some(epoch) => self
                .keys
                .iter()
                .find(|(e, _)| *e == Some(epoch))
                .map(|(_, k)| k.clone())?,
        };
        Some(self.ring.with_read(read))
    }

    /// The first counter of `member`'s log that a change written now should reach: one past
    /// the member's head in this peer's store.
    ///
    /// # Errors
    /// A store error.
    pub async fn next_counter(&self, member: LogId) -> Result<u64> {
        let head = self.store.head(self.thread, member).await?;
        Ok(head.map_or(1, |h| h.counter + 1))
    }

    /// The ACL operations that give `member` `role`, from its next event on, as a batch to
    /// write with [`AclViews::acl_key`]. Taking the read role or every role away also starts
    /// a new key epoch ([`AclOp::Rotate`]): a new read key and a new service key, sealed to
    /// every member that keeps a role (this one included): the members with a role of
    /// their own, and the authors of the thread's logs this peer holds that have a role by
    /// default. Giving the read role hands over every read key this member holds, so the
    /// new reader can read the thread's history.
    ///
    /// # Errors
    /// A store error, or [`AclError::Malformed`] for a member whose id is not a key.
    pub async fn set_role(&self, member: LogId, role: Role) -> Result<Batch> {
        let from = self.next_counter(member).await?;
        let before = Self::lock_acl(&self.acl).role(&member);
        let mut batch = Batch::new().with(ACL_VIEW, AclOp::SetRole { member, role, from }.encode());
        if loses(before, role) {
            batch.push(
                ACL_VIEW,
                self.rotate(Some(RoleChange::Member(member, role)))
                    .await?
                    .encode(),
            );
        } else if !before.can_read() && role.can_read() {
            batch.push(ACL_VIEW, self.share(member)?.encode());
        }
        Ok(batch)
    }

    /// The ACL operations that make `role` the default role (of members without a role of
    /// their own), as a batch to write with [`AclViews::acl_key`]. Taking the read role or
    /// every role away by default starts a new key epoch, sealed to every member that keeps
    /// a role (members by default role are known by their logs).
    ///
    /// # Errors
    /// A store error, or [`AclError::Malformed`] for a member whose id is not a key.
    pub async fn set_default(&self, role: Role) -> Result<Batch> {
        let before = Self::lock_acl(&self.acl).default_role();
        let mut batch = Batch::new().with(ACL_VIEW, AclOp::SetDefault { role }.encode());
        if loses(before, role) {
            batch.push(
                ACL_VIEW,
                self.rotate(Some(RoleChange::Default(role))).await?.encode(),
            );
        }
        Ok(batch)
    }

    /// Whether the keys must rotate again because the latest rotation reached a member it
    /// should not have: one that has no role now, or that got the read key and may not
    /// read now. It happens when two editors change roles at once (each rotation sealed
    /// to the members its editor knew of); an editor that sees it writes a new rotation
    /// ([`AclViews::rotate`]), sealed to the members as they are now.
    pub fn needs_rotation(&self) -> bool {
        let acl = Self::lock_acl(&self.acl);
        acl.counted()
            .iter()
            .rev()
            .find_map(|(_, op)| match op {
                AclOp::Rotate { sealed } => Some(sealed),
                _ => None,
            })
            .is_some_and(|sealed| {
                sealed.iter().any(|(member, bytes)| {
                    let role = acl.role(member);
                    !role.can_follow() || (carries_read_key(bytes) && !role.can_read())
                })
            })
    }

    /// A new key epoch ([`AclOp::Rotate`]): a fresh read key and service key, sealed to
    /// every member that keeps a role after `change`, by the role it keeps.
    ///
    /// # Errors
    /// A store error, or [`AclError::Malformed`] for a member whose id is not a key.
    pub async fn rotate(&self, change: Option<RoleChange>) -> Result<AclOp> {
        let logs = self.store.logs(self.thread).await?;
        let roles = {
            let acl = Self::lock_acl(&self.acl);
            let default = match change {
                Some(RoleChange::Default(role)) => role,
                _ => acl.default_role(),
            };
            let mut roles = acl.members();
            // Members by default role are known by their logs.
            for log in logs.into_iter().chain([self.me.log_id()]) {
                roles.entry(log).or_insert(default);
            }
            roles
        };
        let read = ReadKey::generate();
        let service = ServiceKey::generate();
        let mut sealed = Vec::new();
        for (member, role) in roles {
            let role = match change {
                Some(RoleChange::Member(changed, role)) if changed == member => role,
                _ => role,
            };
            // This peer writes the rotation, so it keeps what it needs to read it.
            let role = if member == self.me.log_id() {
                role.max(Role::Read)
            } else {
                role
            };
            let key = if role.can_read() {
                ThreadKey::new(service.clone(), read.clone())
            } else if role.can_follow() {
                ThreadKey::follower(service.clone())
            } else {
                continue;
            };
            sealed.push((member, self.seal_key(key, &member)?));
        }
        Ok(AclOp::Rotate { sealed })
    }

    /// An operation that hands every read key this member holds to `member`.
    ///
    /// # Errors
    /// [`AclError::Malformed`] for a member whose id is not a key.
    pub fn share(&self, member: LogId) -> Result<AclOp> {
        let sealed = self
            .keys
            .iter()
            .map(|(epoch, key)| {
                // With the epoch's service key, so the new reader learns the epochs (and
                // their order) it was left out of.
                let service = epoch
                    .and_then(|e| self.services.iter().find(|(s, _)| *s == e))
                    .map_or_else(|| self.ring.service().clone(), |(_, s)| s.clone());
                let key = ThreadKey::new(service, key.clone());
                Ok((member, *epoch, self.seal_key(key, &member)?))
            })
            .collect::<Result<_>>()?;
        Ok(AclOp::Share { sealed })
    }

    fn seal_key(&self, key: ThreadKey, member: &LogId) -> Result<Vec<u8>> {
        let public = PublicKey::from_log_id(member)
            .map_err(|e| AclError::Malformed(format!("member {member}: {e}")))?;
        let set = KeySet::new(self.thread, key);
        Ok(set.seal(&public).as_bytes().to_vec())
    }

    /// An invite for `member` with `role`: the keys it needs (the service key only for a
    /// follower, the current epoch's read key too for a reader), sealed to it, and the role.
    /// Write the batch of [`AclViews::set_role`] as well: the ACL, not the invite, decides.
    ///
    /// # Errors
    /// [`AclError::Malformed`] for a member whose id is not a key, or
    /// [`AclError::NoReadKey`] if this member was left out of the current epoch.
    #[cfg(feature = "net")]
    pub fn invite(
        &self,
        addrs: Vec<threads_id::ThreadAddr>,
        member: &LogId,
        role: Role,
    ) -> Result<AclInvite> {
        self.invite_until(addrs, member, role, None)
    }

    /// [`AclViews::invite`] that cannot be opened after `expires_ms` (milliseconds since
    /// the Unix epoch; signed with the rest, so it cannot be extended).
    ///
    /// # Errors
    /// As [`AclViews::invite`].
    #[cfg(feature = "net")]
    pub fn invite_until(
        &self,
        addrs: Vec<threads_id::ThreadAddr>,
        member: &LogId,
        role: Role,
        expires_ms: Option<u64>,
    ) -> Result<AclInvite> {
        let public = PublicKey::from_log_id(member)
            .map_err(|e| AclError::Malformed(format!("member {member}: {e}")))?;
        let key = if role.can_read() {
            self.write_key().ok_or(AclError::NoReadKey)?
        } else {
            self.ring.clone()
        };
        let invite =
            threads_net::Invite::sealed(&self.me, addrs, &KeySet::new(self.thread, key), &public)
                .with_terms(&self.me, &[role.code()], expires_ms)?;
        AclInvite::new(role, invite)
    }

    /// The ACL as applied so far.
    pub fn acl(&self) -> Acl {
        Self::lock_acl(&self.acl).clone()
    }

    /// The ACL, shared: register it with [`crate::AclAdmission`] so the network follows it.
    pub fn shared_acl(&self) -> SharedAcl {
        Arc::clone(&self.acl)
    }

    /// Runs `read` over the view named `name` ([`Views::read`]).
    ///
    /// # Errors
    /// [`ViewError::UnknownView`] or a store error.
    pub async fn read<T>(&mut self, name: &str, read: impl Fn(&State) -> T) -> Result<T> {
        Ok(self.views.read(name, read).await?)
    }

    /// Shares `budget` among the row caches of the ACL's views, these views and any
    /// others given it ([`Views::share_cache`]).
    pub fn share_cache(&mut self, budget: Arc<threads_views::CacheBudget>) {
        self.acl_views.share_cache(Arc::clone(&budget));
        self.views.share_cache(budget);
    }

    /// The views behind the ACL.
    pub const fn views(&self) -> &Views<S> {
        &self.views
    }

    /// Where the ACL's scope and the views wait, by log: the counter of an entry they
    /// cannot apply yet (not readable, dated ahead, or without its body).
    pub fn blocked(&self) -> BTreeMap<LogId, u64> {
        let mut out = self.acl_views.blocked().clone();
        for (log, counter) in self.views.blocked() {
            let at = out.entry(*log).or_insert(*counter);
            *at = (*at).min(*counter);
        }
        out
    }

    /// The events the views no longer need ([`Views::superseded`]), to name in
    /// [`AclOp::Compact`] operations.
    ///
    /// # Errors
    /// As [`Views::superseded`].
    pub async fn superseded(&mut self) -> Result<BTreeMap<LogId, Vec<u64>>> {
        Ok(self.views.superseded().await?)
    }

    /// Whether this peer may compact the thread: it is the owner of an access-controlled
    /// thread, or holds a raw thread's read key ([`AclOp::Compact`]).
    pub fn may_compact(&self) -> bool {
        match self.thread.variant() {
            Variant::AccessControlled => {
                Self::lock_acl(&self.acl).owner() == Some(self.me.log_id())
            }
            _ => self.raw_key().is_some(),
        }
    }

    /// A raw thread's read key, if this peer holds it (it proves compactions there).
    fn raw_key(&self) -> Option<ReadKey> {
        if self.thread.variant() == Variant::AccessControlled {
            return None;
        }
        self.keys.first().map(|(_, key)| key.clone())
    }

    /// The operation that compacts `ranges` of `log`, written by this peer (with its proof
    /// in a raw thread, [`crate::compact_proof`]).
    pub fn compact_op(&self, log: LogId, ranges: Vec<(u64, u64)>) -> AclOp {
        let proof = self.raw_key().map_or_else(Vec::new, |read| {
            crate::op::compact_proof(self.thread, &read, &self.me.log_id(), &log, &ranges).to_vec()
        });
        AclOp::Compact { log, ranges, proof }
    }

    /// What the ACL and the views would refuse of `batch` written by this peer as the event
    /// at `order`, given the current state ([`Views::check`]): ACL operations other than
    /// `Init` need this peer to be an editor of the ACL at `order`; the others go through
    /// the gate (the author's role) and their reducers. Nothing changes.
    ///
    /// # Errors
    /// A store error while reading rows the views need.
    pub async fn check(&mut self, order: EventOrder, batch: &Batch) -> Result<Vec<Refused>> {
        Ok(self.check_many(&[(order, batch)]).await?.remove(0))
    }

    /// [`AclViews::check`] for several events written one after the other (a group
    /// commit), each seeing the effects of the earlier ones on the views
    /// ([`Views::check_many`]). ACL operations of an earlier event of the group are not
    /// taken into account for the later ones (they apply when the group is applied, as
    /// always).
    ///
    /// # Errors
    /// A store error while reading rows the views need.
    pub async fn check_many(
        &mut self,
        events: &[(EventOrder, &Batch)],
    ) -> Result<Vec<Vec<Refused>>> {
        let author = self.me.log_id();
        let mut acl_refused: Vec<Vec<Refused>> = Vec::with_capacity(events.len());
        for (order, batch) in events {
            let mut refused = Vec::new();
            for (index, (view, data)) in batch.ops().iter().enumerate() {
                if view != ACL_VIEW {
                    continue;
                }
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                match AclOp::decode(data) {
                    Ok(AclOp::Init { .. }) => {}
                    // Every member of a raw thread may compact it.
                    Ok(AclOp::Compact { .. }) if self.may_compact() => {}
                    Ok(AclOp::Compact { .. }) => refused.push(Refused {
                        index,
                        view: view.clone(),
                        reason: format!(
                            "{author} may not compact the thread: only the owner of an access-controlled thread may"
                        ),
                        forbidden: true,
                    }),
                    Ok(_) if Self::lock_acl(&self.acl).is_editor(&author, order) => {}
                    Ok(_) => refused.push(Refused {
                        index,
                        view: view.clone(),
                        reason: format!("{author} may not change the ACL"),
                        forbidden: true,
                    }),
                    Err(e) => refused.push(Refused {
                        index,
                        view: view.clone(),
                        reason: e.to_string(),
                        forbidden: false,
                    }),
                }
            }
            acl_refused.push(refused);
        }
        let views_refused = self.views.check_many(events).await?;
        Ok(acl_refused
            .into_iter()
            .zip(views_refused)
            .map(|(mut acl, views)| {
                acl.extend(views);
                acl.sort_by_key(|r| r.index);
                acl
            })
            .collect())
    }

    /// The time of the latest applied event of `log`, in the ACL or the views.
    pub fn log_time(&self, log: &LogId) -> Option<threads_log::Hlc> {
        self.views.log_time(log).max(self.acl_views.log_time(log))
    }

    /// The greatest place in the order applied by the ACL or the views.
    pub fn last_order(&self) -> Option<EventOrder> {
        self.views.last_order().max(self.acl_views.last_order())
    }

    /// Every operation the views refused (the ACL's refusals included: an operation whose
    /// author lacked the role), in the order of the events.
    ///
    /// # Errors
    /// A store error.
    pub async fn rejections(&mut self) -> Result<Vec<Rejection>> {
        Ok(self.views.rejections().await?)
    }

    /// The content views' rejections of the event at `order` ([`Views::rejections_of`]).
    ///
    /// # Errors
    /// A store error.
    pub async fn rejections_of(&mut self, order: &EventOrder) -> Result<Vec<Rejection>> {
        Ok(self.views.rejections_of(order).await?)
    }

    /// A digest of the ACL and of every view: equal digests, identical ACL and views.
    ///
    /// # Errors
    /// A store error.
    pub async fn digest(&mut self) -> Result<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(Self::lock_acl(&self.acl).digest());
        hasher.update(self.views.digest().await?);
        Ok(hasher.finalize().into())
    }
}

/// Whether any of `events` carries an ACL operation (or cannot be read as a batch).
fn carries_acl(events: &[(EventOrder, &[u8])]) -> bool {
    events.iter().any(|(_, payload)| {
        Batch::decode(payload)
            .is_none_or(|batch| batch.ops().iter().any(|(view, _)| view == ACL_VIEW))
    })
}
