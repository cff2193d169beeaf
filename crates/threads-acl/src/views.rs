//! Views behind the ACL: the coordinator that keeps a thread's ACL and its other views in
//! step.

use std::sync::{Arc, PoisonError, RwLock};

use threads_id::{LogId, ThreadId, Variant};
use threads_log::{EventOrder, Verifier};
use threads_store::{Page, Store};
use threads_views::{Progress, Reducer, Rejection, State, ViewConfig, ViewError, Views};

use crate::acl::Acl;
use crate::error::{AclError, Result};
use crate::gate::{AclGate, AclLog, SharedAcl};
use crate::op::{ACL_VIEW, AclOp};

/// From where the views must be recomputed after the ACL changed.
enum Since {
    Nothing,
    All,
    At(EventOrder),
}

/// A thread's views with access control: the ACL is computed first (scope `"{name}.acl"`),
/// then every other view applies an operation only if its author's role at its place allows
/// it. When new ACL operations change the ACL, the views are recomputed from the latest
/// snapshot before the earliest event whose admission may differ.
///
/// For a thread of the `Raw` variant nothing is checked (every event applies) and ACL
/// operations count for nothing.
pub struct AclViews<S> {
    store: Arc<S>,
    thread: ThreadId,
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
    /// Opens the views of `thread` (scope `"views"`) behind its ACL.
    ///
    /// # Errors
    /// As [`Views::open`], or a store error.
    pub async fn open(
        store: Arc<S>,
        thread: ThreadId,
        reducers: Vec<Arc<dyn Reducer>>,
        config: ViewConfig,
    ) -> Result<AclViews<S>> {
        AclViews::open_scope(store, thread, "views", reducers, config).await
    }

    /// [`AclViews::open`] under another scope name.
    ///
    /// # Errors
    /// As [`Views::open_scope`], or a store error.
    pub async fn open_scope(
        store: Arc<S>,
        thread: ThreadId,
        name: &str,
        reducers: Vec<Arc<dyn Reducer>>,
        config: ViewConfig,
    ) -> Result<AclViews<S>> {
        if reducers.iter().any(|r| r.name() == ACL_VIEW) {
            return Err(AclError::Views(ViewError::DuplicateView(
                ACL_VIEW.to_owned(),
            )));
        }
        let mut acl_views = Views::open_scope(
            Arc::clone(&store),
            thread,
            &format!("{name}.acl"),
            vec![Arc::new(AclLog)],
            config,
        )
        .await?;
        acl_views.catch_up().await?;
        let acl = Arc::new(RwLock::new(AclLog::acl(thread, acl_views.state(ACL_VIEW)?)));
        let mut views =
            Views::open_scope(Arc::clone(&store), thread, name, reducers, config).await?;
        let gated_key = format!("acl.gated.{name}");
        if thread.variant() == Variant::AccessControlled {
            views.set_gate(Arc::new(AclGate(Arc::clone(&acl))));
            // The views may have been computed under another ACL (a crash between the
            // ACL's commit and theirs): then they are recomputed.
            let digest = Self::read(&acl).digest();
            if store.meta(thread, &gated_key).await?.as_deref() != Some(&digest[..]) {
                views.regate(None).await?;
                store.put_meta(thread, &gated_key, &digest).await?;
            }
        }
        Ok(AclViews {
            store,
            thread,
            gated_key,
            acl_views,
            views,
            acl,
        })
    }

    fn read(acl: &SharedAcl) -> std::sync::RwLockReadGuard<'_, Acl> {
        acl.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies what the store holds that the ACL and the views have not applied yet.
    ///
    /// # Errors
    /// As [`Views::catch_up`].
    pub async fn catch_up(&mut self) -> Result<Progress> {
        self.acl_views.catch_up().await?;
        let next = AclLog::acl(self.thread, self.acl_views.state(ACL_VIEW)?);
        if self.thread.variant() != Variant::AccessControlled
            || next.digest() == Self::read(&self.acl).digest()
        {
            // The same operations count (the refused ones may differ).
            *self.acl.write().unwrap_or_else(PoisonError::into_inner) = next;
            return Ok(self.views.catch_up().await?);
        }
        let current = Self::read(&self.acl).clone();
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
        Ok(progress)
    }

    /// The earliest place where the two ACLs may admit an event differently.
    async fn since(&self, old: &Acl, new: &Acl) -> Result<Since> {
        let mut earliest: Option<EventOrder> = None;
        let mut consider = |order: EventOrder| {
            earliest = Some(earliest.map_or(order, |e| e.min(order)));
        };
        for (stamp, op) in old.difference(new) {
            match op {
                AclOp::Init { .. } => return Ok(Since::All),
                AclOp::SetDefault { .. } => consider(stamp.order),
                AclOp::SetRole { member, from, .. } => {
                    consider(stamp.order);
                    if let Some(order) = self.order_of(member, from).await? {
                        consider(order);
                    }
                }
                // An editor right admits ACL operations only; the operations it admitted
                // or refused are in the difference themselves.
                AclOp::SetEditor { .. } => {}
            }
        }
        Ok(earliest.map_or(Since::Nothing, Since::At))
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
        let verifier = Verifier::new(self.thread, member, &key).map_err(unreadable)?;
        let read = verifier.read_stored(&stored.entry).map_err(unreadable)?;
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

    /// The ACL as applied so far.
    pub fn acl(&self) -> Acl {
        Self::read(&self.acl).clone()
    }

    /// The ACL, shared: register it with [`crate::AclAdmission`] so the network follows it.
    pub fn shared_acl(&self) -> SharedAcl {
        Arc::clone(&self.acl)
    }

    /// The state of the view named `name`.
    ///
    /// # Errors
    /// [`ViewError::UnknownView`].
    pub fn state(&self, name: &str) -> Result<&State> {
        Ok(self.views.state(name)?)
    }

    /// The views behind the ACL.
    pub const fn views(&self) -> &Views<S> {
        &self.views
    }

    /// Every operation the views refused (the ACL's refusals included: an operation whose
    /// author lacked the role), in the order of the events.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.views.rejections()
    }

    /// A digest of the ACL and of every view: equal digests, identical ACL and views.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(Self::read(&self.acl).digest());
        hasher.update(self.views.digest());
        hasher.finalize().into()
    }
}
