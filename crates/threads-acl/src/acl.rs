//! The ACL: computed from a thread's ACL operations, the same on every peer that holds the
//! same operations.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use threads_crypto::{Identity, ReadKey, ThreadKey, open_sealed_bytes};
use threads_id::{LogId, ThreadId, Variant};
use threads_log::EventOrder;
use threads_views::{Stamp, encode_stamp};

use crate::op::{AclOp, owned_by};
use crate::role::Role;

/// One change to a member's role or editor right, where it stands in the order and the
/// first counter of the member's log it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change<T> {
    stamp: Stamp,
    from: u64,
    value: T,
}

/// The latest change (by stamp) that reaches the member's event at `at`: one before it in
/// the order, or one whose `from` counter it has reached.
fn reaching<T: Copy>(changes: &[Change<T>], at: &EventOrder) -> Option<T> {
    changes
        .iter()
        .rev()
        .find(|c| c.stamp.order < *at || c.from <= at.counter)
        .map(|c| c.value)
}

/// An ACL operation that does not count, and why. Every honest peer computes the same list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRejection {
    /// The operation's place: its event's order and its index in the event.
    pub stamp: Stamp,
    /// Why it does not count.
    pub reason: String,
}

impl AclRejection {
    /// Who wrote the operation.
    pub const fn author(&self) -> LogId {
        self.stamp.order.log
    }
}

/// A thread's access-control list at every point of its order.
///
/// Computed by [`Acl::compute`] from the thread's ACL operations: they are taken in the
/// thread's order, each counting only if its author was an editor at its place (the owner
/// always is). Changes to one member also reach that member's events from their `from`
/// counter on whatever their time, and a revoked editor's operations from that counter on
/// stop counting, with everything that depended on them: the computation repeats until no
/// counted operation loses its author's right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    thread: ThreadId,
    owner: Option<LogId>,
    roles: BTreeMap<LogId, Vec<Change<Role>>>,
    resource_roles: BTreeMap<(String, Vec<u8>, LogId), Vec<Change<Role>>>,
    editors: BTreeMap<LogId, Vec<Change<bool>>>,
    defaults: Vec<(Stamp, Role)>,
    counted: Vec<(Stamp, AclOp)>,
    rejected: Vec<AclRejection>,
}

impl Acl {
    /// The ACL of a thread without ACL operations.
    pub fn empty(thread: ThreadId) -> Acl {
        Acl {
            thread,
            owner: None,
            roles: BTreeMap::new(),
            resource_roles: BTreeMap::new(),
            editors: BTreeMap::new(),
            defaults: Vec::new(),
            counted: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// Computes the ACL of `thread` from its operations (malformed ones carry the reason
    /// they could not be read). The order of `ops` does not matter.
    pub fn compute(
        thread: ThreadId,
        ops: impl IntoIterator<Item = (Stamp, Result<AclOp, String>)>,
    ) -> Acl {
        let mut ops: Vec<(Stamp, Result<AclOp, String>)> = ops.into_iter().collect();
        ops.sort_by_key(|(stamp, _)| *stamp);
        let mut refused: BTreeMap<Stamp, String> = BTreeMap::new();
        for (stamp, op) in &ops {
            if let Err(reason) = op {
                refused.insert(*stamp, reason.clone());
            }
        }
        loop {
            let mut acl = Acl::empty(thread);
            for (stamp, op) in &ops {
                let Ok(op) = op else { continue };
                if refused.contains_key(stamp) {
                    continue;
                }
                match acl.check(stamp, op) {
                    Ok(()) => acl.apply(*stamp, op.clone()),
                    Err(reason) => {
                        refused.insert(*stamp, reason);
                    }
                }
            }
            // An operation counted at its place may lose its author's right afterwards: a
            // later revocation that reaches its counter.
            let mut lost = false;
            for (stamp, op) in &acl.counted {
                if matches!(op, AclOp::Init { .. }) {
                    continue;
                }
                let author = stamp.order.log;
                if !acl.is_editor(&author, &stamp.order) {
                    refused.insert(
                        *stamp,
                        format!("{author}'s right to change the ACL was revoked"),
                    );
                    lost = true;
                }
            }
            if !lost {
                acl.rejected = refused
                    .into_iter()
                    .map(|(stamp, reason)| AclRejection { stamp, reason })
                    .collect();
                return acl;
            }
        }
    }

    fn check(&self, stamp: &Stamp, op: &AclOp) -> Result<(), String> {
        let author = stamp.order.log;
        if self.thread.variant() != Variant::AccessControlled {
            return Err("the thread is not access-controlled".to_owned());
        }
        match op {
            AclOp::Init { salt } => {
                if self.owner.is_some() {
                    Err("the ACL already has an owner".to_owned())
                } else if owned_by(self.thread, &author, salt) {
                    Ok(())
                } else {
                    Err(format!("{author} is not the identity the thread id names"))
                }
            }
            _ if self.owner.is_none() => Err("the ACL has no owner yet".to_owned()),
            AclOp::SetRole { member, .. }
            | AclOp::SetEditor { member, .. }
            | AclOp::SetResourceRole { member, .. }
                if Some(*member) == self.owner =>
            {
                Err("the owner's rights cannot change".to_owned())
            }
            _ if !self.is_editor(&author, &stamp.order) => {
                Err(format!("{author} may not change the ACL"))
            }
            _ => Ok(()),
        }
    }

    fn apply(&mut self, stamp: Stamp, op: AclOp) {
        match op {
            AclOp::Init { .. } => self.owner = Some(stamp.order.log),
            AclOp::SetRole { member, role, from } => {
                self.roles.entry(member).or_default().push(Change {
                    stamp,
                    from,
                    value: role,
                });
            }
            AclOp::SetDefault { role } => self.defaults.push((stamp, role)),
            AclOp::SetResourceRole {
                ref view,
                ref resource,
                member,
                role,
                from,
            } => {
                self.resource_roles
                    .entry((view.clone(), resource.clone(), member))
                    .or_default()
                    .push(Change {
                        stamp,
                        from,
                        value: role,
                    });
            }
            AclOp::Rotate { .. } | AclOp::Share { .. } => {}
            AclOp::SetEditor {
                member,
                editor,
                from,
            } => {
                self.editors.entry(member).or_default().push(Change {
                    stamp,
                    from,
                    value: editor,
                });
            }
        }
        self.counted.push((stamp, op));
    }

    /// The keys sealed to `me` by operations that count, in the order of the operations,
    /// each with its epoch (the place of the [`AclOp::Rotate`] that started it, `None` for
    /// the thread's first keys): from a rotation, the epoch's service key with its read key
    /// (a reader) or alone (a follower); from a share, one epoch's read key with that
    /// epoch's service key (or the thread's first one, from a share written before service
    /// keys rotated). Keys that do not open (sealed wrong, or for another thread) are
    /// skipped.
    pub fn sealed_for(&self, me: &Identity) -> Vec<(Option<Stamp>, ThreadKey)> {
        let mine = me.log_id();
        let open = |bytes: &[u8]| {
            open_sealed_bytes(bytes, me)
                .ok()
                .filter(|set| set.thread_id() == self.thread)
                .map(|set| set.thread_key().clone())
        };
        let mut out = Vec::new();
        for (stamp, op) in &self.counted {
            match op {
                AclOp::Rotate { sealed } => {
                    for (member, bytes) in sealed {
                        if *member == mine
                            && let Some(key) = open(bytes)
                        {
                            out.push((Some(*stamp), key));
                        }
                    }
                }
                AclOp::Share { sealed } => {
                    for (member, epoch, bytes) in sealed {
                        if *member == mine
                            && let Some(key) = open(bytes)
                        {
                            out.push((*epoch, key));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The read keys of [`Acl::sealed_for`], each with its epoch.
    pub fn keys_for(&self, me: &Identity) -> Vec<(Option<Stamp>, ReadKey)> {
        self.sealed_for(me)
            .into_iter()
            .filter_map(|(epoch, key)| key.read().cloned().map(|read| (epoch, read)))
            .collect()
    }

    /// The members the latest rotation of the keys was sealed to, if there was one.
    pub fn rotated_to(&self) -> Option<BTreeSet<LogId>> {
        self.counted.iter().rev().find_map(|(_, op)| match op {
            AclOp::Rotate { sealed } => Some(sealed.iter().map(|(m, _)| *m).collect()),
            _ => None,
        })
    }

    /// The current read-key epoch: the place of the latest [`AclOp::Rotate`] that counts
    /// (`None` while the thread's first read key is in use).
    pub fn epoch(&self) -> Option<Stamp> {
        self.counted
            .iter()
            .rev()
            .find(|(_, op)| matches!(op, AclOp::Rotate { .. }))
            .map(|(stamp, _)| *stamp)
    }

    /// The thread.
    pub const fn thread(&self) -> ThreadId {
        self.thread
    }

    /// The owner, once the ACL is founded.
    pub const fn owner(&self) -> Option<LogId> {
        self.owner
    }

    /// The role of `member` for its event at `at` (`at.log` is the member's log).
    pub fn role_at(&self, member: &LogId, at: &EventOrder) -> Role {
        if Some(*member) == self.owner {
            return Role::Delete;
        }
        if let Some(role) = self.roles.get(member).and_then(|c| reaching(c, at)) {
            return role;
        }
        self.defaults
            .iter()
            .rev()
            .find(|(stamp, _)| stamp.order < *at)
            .map_or(Role::NoAccess, |(_, role)| *role)
    }

    /// The role of `member` for its event at `at` operating on `resource` of `view`: its
    /// role on that resource if one reaches the event, else its thread-wide role.
    pub fn role_on(&self, member: &LogId, at: &EventOrder, view: &str, resource: &[u8]) -> Role {
        if Some(*member) == self.owner {
            return Role::Delete;
        }
        self.resource_roles
            .get(&(view.to_owned(), resource.to_vec(), *member))
            .and_then(|c| reaching(c, at))
            .unwrap_or_else(|| self.role_at(member, at))
    }

    /// The role of `member` for its next events: after every change known.
    pub fn role(&self, member: &LogId) -> Role {
        if Some(*member) == self.owner {
            return Role::Delete;
        }
        if let Some(change) = self.roles.get(member).and_then(|c| c.last()) {
            return change.value;
        }
        self.defaults
            .last()
            .map_or(Role::NoAccess, |(_, role)| *role)
    }

    /// The default role now.
    pub fn default_role(&self) -> Role {
        self.defaults
            .last()
            .map_or(Role::NoAccess, |(_, role)| *role)
    }

    /// Whether `member` may change the ACL with its event at `at`.
    pub fn is_editor(&self, member: &LogId, at: &EventOrder) -> bool {
        Some(*member) == self.owner
            || self
                .editors
                .get(member)
                .and_then(|c| reaching(c, at))
                .unwrap_or(false)
    }

    /// Whether `member` may change the ACL with its next events.
    pub fn is_editor_now(&self, member: &LogId) -> bool {
        Some(*member) == self.owner
            || self
                .editors
                .get(member)
                .and_then(|c| c.last())
                .is_some_and(|c| c.value)
    }

    /// Every member with a role of its own, and the owner, with their role now.
    pub fn members(&self) -> BTreeMap<LogId, Role> {
        let mut out: BTreeMap<LogId, Role> =
            self.roles.keys().map(|m| (*m, self.role(m))).collect();
        if let Some(owner) = self.owner {
            out.insert(owner, Role::Delete);
        }
        out
    }

    /// The operations that count, in order.
    pub fn counted(&self) -> &[(Stamp, AclOp)] {
        &self.counted
    }

    /// The operations that do not count, in order, with the reason.
    pub fn rejections(&self) -> &[AclRejection] {
        &self.rejected
    }

    /// A digest of the operations that count: equal digests, equal ACLs.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.thread.to_bytes());
        for (stamp, op) in &self.counted {
            hasher.update(encode_stamp(stamp));
            let bytes = op.encode();
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(&bytes);
        }
        hasher.finalize().into()
    }

    /// The operations that count in one ACL and not in the other.
    pub(crate) fn difference<'a>(&'a self, other: &'a Acl) -> Vec<(Stamp, AclOp)> {
        let mine: BTreeSet<_> = self.counted.iter().map(|(s, o)| (*s, o.encode())).collect();
        let theirs: BTreeSet<_> = other
            .counted
            .iter()
            .map(|(s, o)| (*s, o.encode()))
            .collect();
        self.counted
            .iter()
            .filter(|(s, o)| !theirs.contains(&(*s, o.encode())))
            .chain(
                other
                    .counted
                    .iter()
                    .filter(|(s, o)| !mine.contains(&(*s, o.encode()))),
            )
            .cloned()
            .collect()
    }
}
