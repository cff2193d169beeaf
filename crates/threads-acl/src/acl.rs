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
    /// A raw thread's read key, which checks the proofs of its compactions (`None`: none
    /// counts).
    raw_key: Option<ReadKey>,
    /// The counter ranges of each log that operations that count compacted (sorted,
    /// merged).
    voided: BTreeMap<LogId, Vec<(u64, u64)>>,
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
            raw_key: None,
            voided: BTreeMap::new(),
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
        Acl::compute_with(thread, ops, None)
    }

    /// [`Acl::compute`], with the read key of a raw thread: its members' compactions count
    /// when their proof holds ([`crate::compact_proof`]).
    pub fn compute_with(
        thread: ThreadId,
        ops: impl IntoIterator<Item = (Stamp, Result<AclOp, String>)>,
        raw_key: Option<&ReadKey>,
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
            acl.raw_key = raw_key.cloned();
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
                // A raw thread's compactions depend on a proof, not on a right.
                if matches!(op, AclOp::Init { .. }) || thread.variant() != Variant::AccessControlled
                {
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
                acl.merge_voided();
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
            // A raw thread's ACL events can come from anyone holding the service key
            // (followers): a compaction counts with the proof that its author holds the
            // read key.
            return match (op, &self.raw_key) {
                (AclOp::Compact { log, ranges, proof }, Some(read))
                    if proof[..]
                        == crate::op::compact_proof(self.thread, read, &author, log, ranges)[..] =>
                {
                    Ok(())
                }
                (AclOp::Compact { .. }, _) => Err(format!(
                    "{author} gave no proof that it holds the thread's read key"
                )),
                _ => Err("the thread is not access-controlled".to_owned()),
            };
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
            // Compaction is final: peers drop the bodies it names, so it must never stop
            // counting, and only the owner's right cannot be revoked back to before it.
            AclOp::Compact { .. } if Some(author) != self.owner => Err(format!(
                "{author} may not compact the thread: only its owner may"
            )),
            _ if !self.is_editor(&author, &stamp.order) => {
                Err(format!("{author} may not change the ACL"))
            }
            _ => Ok(()),
        }
    }

    /// Sorts and merges each log's voided ranges.
    fn merge_voided(&mut self) {
        for voided in self.voided.values_mut() {
            voided.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(voided.len());
            for &(first, last) in voided.iter() {
                match merged.last_mut() {
                    Some(prev) if first <= prev.1.saturating_add(1) => {
                        prev.1 = prev.1.max(last);
                    }
                    _ => merged.push((first, last)),
                }
            }
            *voided = merged;
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
            // Sorted and merged once the computation ends (`merge_voided`).
            AclOp::Compact {
                log, ref ranges, ..
            } => {
                self.voided
                    .entry(log)
                    .or_default()
                    .extend(ranges.iter().copied());
            }
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

    /// Whether event `counter` of `log` was compacted by an operation that counts: it
    /// applies nothing, on every peer, and its body may be dropped.
    pub fn voids(&self, log: &LogId, counter: u64) -> bool {
        let Some(ranges) = self.voided.get(log) else {
            return false;
        };
        let at = ranges.partition_point(|(first, _)| *first <= counter);
        at > 0 && ranges[at - 1].1 >= counter
    }

    /// The compacted counter ranges of each log (sorted, merged).
    pub const fn voided(&self) -> &BTreeMap<LogId, Vec<(u64, u64)>> {
        &self.voided
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

/// The smallest counter in exactly one of two sorted, merged range lists.
pub(crate) fn first_difference(a: &[(u64, u64)], b: &[(u64, u64)]) -> Option<u64> {
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => return None,
            (Some(&(first, _)), None) | (None, Some(&(first, _))) => return Some(first),
            (Some(&x), Some(&y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(&(x0, x1)), Some(&(y0, y1))) => {
                // The ranges differ: at their start, or just after the shorter one ends.
                return Some(if x0 == y0 { x1.min(y1) + 1 } else { x0.min(y0) });
            }
        }
    }
}

/// The counters of `a` not in `b` (both sorted, merged), as sorted ranges.
pub(crate) fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(first, last) in a {
        let mut start = first;
        while j < b.len() && b[j].1 < start {
            j += 1;
        }
        let mut k = j;
        let mut done = false;
        while k < b.len() && b[k].0 <= last {
            let (b0, b1) = b[k];
            if b0 > start {
                out.push((start, b0 - 1));
            }
            if b1 >= last {
                done = true;
                break;
            }
            start = b1 + 1;
            k += 1;
        }
        if !done {
            out.push((start, last));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{first_difference, subtract};

    #[test]
    fn range_differences() {
        assert_eq!(first_difference(&[], &[]), None);
        assert_eq!(first_difference(&[(1, 3)], &[(1, 3)]), None);
        assert_eq!(first_difference(&[(1, 3)], &[]), Some(1));
        assert_eq!(first_difference(&[(1, 3)], &[(1, 5)]), Some(4));
        assert_eq!(first_difference(&[(2, 3)], &[(1, 3)]), Some(1));
        assert_eq!(
            first_difference(&[(1, 3), (7, 9)], &[(1, 3), (8, 9)]),
            Some(7)
        );
        assert_eq!(subtract(&[(1, 10)], &[]), vec![(1, 10)]);
        assert_eq!(subtract(&[(1, 10)], &[(1, 10)]), vec![]);
        assert_eq!(
            subtract(&[(1, 10)], &[(3, 4), (8, 20)]),
            vec![(1, 2), (5, 7)]
        );
        assert_eq!(subtract(&[(1, 2), (5, 9)], &[(2, 6)]), vec![(1, 1), (7, 9)]);
        assert_eq!(subtract(&[(5, u64::MAX)], &[(1, 4)]), vec![(5, u64::MAX)]);
    }
}
