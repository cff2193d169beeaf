//! Threads a peer holds: creating one, inviting a member, joining with an invite.

use threads_acl::{ACL_VIEW, AclError, AclInvite, AclOp, Role, new_thread};
use threads_crypto::{KeySet, PublicKey, ThreadKey};
use threads_id::{LogId, ThreadId, Variant};
use threads_net::Invite;
use threads_store::Store;
use threads_views::Batch;

use crate::db::{Db, open_thread};
use crate::error::DbError;

impl<S: Store + 'static> Db<S> {
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
        self.invite_until(thread, member, role, None).await
    }

    /// [`Db::invite`] that cannot be opened after `expires_ms` (milliseconds since the Unix
    /// epoch): the expiry is signed with the rest of the invite. The role it grants in an
    /// access-controlled thread stays granted; only the invite stops working.
    ///
    /// # Errors
    /// As [`Db::invite`].
    pub async fn invite_until(
        &self,
        thread: ThreadId,
        member: LogId,
        role: Role,
        expires_ms: Option<u64>,
    ) -> Result<String, DbError> {
        // Every address a remote peer may dial (never loopback when there is another), at
        // most as many as an invite carries.
        let addrs = self.inner.node.thread_addrs(thread);
        let views = self.views(thread).await?;
        if thread.variant() == Variant::AccessControlled {
            let batch = views.lock().await.set_role(member, role).await?;
            self.write(thread, batch).await?;
            let invite = views
                .lock()
                .await
                .invite_until(addrs, &member, role, expires_ms)?;
            return Ok(invite.to_text().to_string());
        }
        let key = self.raw_key(thread, role).await?;
        let public = PublicKey::from_log_id(&member).map_err(|e| DbError::Key(e.to_string()))?;
        let me = &self.inner.me;
        let invite = Invite::sealed(me, addrs, &KeySet::new(thread, key), &public)
            .with_terms(me, &[role.code()], expires_ms)
            .map_err(AclError::from)?;
        Ok(AclInvite::new(role, invite)?.to_text().to_string())
    }

    /// The key a member of the raw `thread` with `role` gets: the thread key, or its service
    /// key alone for a role that does not read.
    async fn raw_key(&self, thread: ThreadId, role: Role) -> Result<ThreadKey, DbError> {
        let key = self
            .inner
            .node
            .store()
            .thread_key(thread)
            .await?
            .ok_or(DbError::UnknownThread(thread))?;
        Ok(if role.can_read() {
            key
        } else {
            key.to_follower()
        })
    }

    /// Leaves `thread`: stops syncing it and deletes everything of it here (its keys, logs,
    /// views and peers). Work on the thread in flight finishes first; later calls about it
    /// get [`DbError::UnknownThread`]. Other members are not told: to leave an
    /// access-controlled thread for good, an editor revokes the member
    /// ([`Db::set_role`]).
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], or a store error.
    pub async fn leave(&self, thread: ThreadId) -> Result<(), DbError> {
        let views = self
            .inner
            .threads
            .write()
            .await
            .remove(&thread)
            .ok_or(DbError::UnknownThread(thread))?;
        // Whatever holds the thread's views (a commit, a catch-up) finishes first.
        let _held = views.lock().await;
        self.inner.node.forget(thread);
        self.inner.node.store().delete_thread(thread).await?;
        Ok(())
    }

    /// A link invite: whoever holds its text can join, with the keys `role` needs (the
    /// read key for a reader or writer, the service key alone for a follower). In an
    /// access-controlled thread a link names no member, so what its holders may do is the
    /// thread's default role (`AclOp::SetDefault`); in a raw thread every member with the
    /// read key may write. Keep the text secret: it holds the keys. It cannot be opened
    /// after `expires_ms` (milliseconds since the Unix epoch), when given.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`]; [`DbError::CannotWrite`] if this peer holds no read key
    /// of the current epoch and a reader's link is asked for.
    pub async fn invite_link(
        &self,
        thread: ThreadId,
        role: Role,
        expires_ms: Option<u64>,
    ) -> Result<String, DbError> {
        let addrs = self.inner.node.thread_addrs(thread);
        let views = self.views(thread).await?;
        let key = if thread.variant() == Variant::AccessControlled {
            let views = views.lock().await;
            if role.can_read() {
                views.write_key().ok_or(DbError::CannotWrite(thread))?
            } else {
                views.ring().clone()
            }
        } else {
            self.raw_key(thread, role).await?
        };
        let me = &self.inner.me;
        let invite = Invite::link(me, addrs, KeySet::new(thread, key))
            .with_terms(me, &[role.code()], expires_ms)
            .map_err(AclError::from)?;
        Ok(AclInvite::new(role, invite)?.to_text().to_string())
    }

    /// Gives `member` `role` in an access-controlled thread, from its next event on:
    /// `Role::NoAccess` revokes it (peers stop serving it and taking its pushes, and a
    /// member that loses the read role is left out of a new read-key epoch, so it cannot
    /// read what is written after). Only an editor of the ACL may do it.
    ///
    /// # Errors
    /// [`DbError::Forbidden`] if this peer may not change the ACL, or if the thread is not
    /// access-controlled (a raw thread has no roles); [`DbError::UnknownThread`].
    pub async fn set_role(
        &self,
        thread: ThreadId,
        member: LogId,
        role: Role,
    ) -> Result<(), DbError> {
        let views = self.views(thread).await?;
        if thread.variant() != Variant::AccessControlled {
            return Err(no_roles(thread));
        }
        let batch = views.lock().await.set_role(member, role).await?;
        self.write(thread, batch).await?;
        Ok(())
    }

    /// Makes `role` the default role of an access-controlled thread: the role of members
    /// without one of their own (holders of a link invite, say), from now on. Taking the
    /// read role (or every role) away by default starts a new key epoch, sealed to every
    /// member that keeps a role. Only an editor of the ACL may do it.
    ///
    /// # Errors
    /// As [`Db::set_role`].
    pub async fn set_default_role(&self, thread: ThreadId, role: Role) -> Result<(), DbError> {
        let views = self.views(thread).await?;
        if thread.variant() != Variant::AccessControlled {
            return Err(no_roles(thread));
        }
        let batch = views.lock().await.set_default(role).await?;
        self.write(thread, batch).await?;
        Ok(())
    }

    /// Writes a new key rotation if the latest one reached a member it should not have
    /// (checked again under the thread's lock: another may have landed meanwhile).
    /// (A boxed future: the write it makes applies events, which may call this again.)
    pub(crate) fn rotate_again(
        &self,
        thread: ThreadId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DbError>> + Send + '_>> {
        Box::pin(async move {
            let views = self.views(thread).await?;
            let batch = {
                let views = views.lock().await;
                if !views.needs_rotation() {
                    return Ok(());
                }
                Batch::new().with(ACL_VIEW, views.rotate(None).await?.encode())
            };
            self.write(thread, batch).await?;
            Ok(())
        })
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
}

/// The refusal of a role change in a raw thread.
fn no_roles(thread: ThreadId) -> DbError {
    DbError::Forbidden {
        thread,
        refused: vec![threads_views::Refused {
            index: 0,
            view: ACL_VIEW.to_owned(),
            reason: "a raw thread has no roles".to_owned(),
            forbidden: true,
        }],
    }
}
