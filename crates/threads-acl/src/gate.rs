//! Enforcement: the ACL's view, the gate in front of the other views, and network
//! admission.

use std::sync::{Arc, PoisonError, RwLock};

use threads_id::ThreadId;
use threads_views::{
    Access, Event, Gate, Reducer, Reject, State, ViewKind, decode_stamp, encode_stamp,
};

use crate::acl::Acl;
use crate::op::{ACL_VIEW, AclOp};
use crate::role::Role;

/// The view that keeps a thread's ACL operations, keyed by their place in the order. It only
/// records them (so it is commutative); [`Acl::compute`] decides which count.
#[derive(Debug, Clone, Copy, Default)]
pub struct AclLog;

impl AclLog {
    /// The ACL of `thread` from this view's state (with a raw thread's read key, which
    /// checks its compactions' proofs).
    pub fn acl(thread: ThreadId, state: &State, raw_key: Option<&threads_crypto::ReadKey>) -> Acl {
        Acl::compute_with(
            thread,
            state.iter().filter_map(|(key, op)| {
                let stamp = decode_stamp(&key).ok()?;
                Some((stamp, AclOp::decode(&op).map_err(|e| e.to_string())))
            }),
            raw_key,
        )
    }
}

impl Reducer for AclLog {
    fn name(&self) -> &str {
        ACL_VIEW
    }

    fn kind(&self) -> ViewKind {
        ViewKind::Commutative
    }

    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
        AclOp::decode(event.data).map_err(|e| Reject::new(e.to_string()))?;
        state.put(encode_stamp(&event.stamp()).to_vec(), event.data.to_vec());
        Ok(())
    }
}

/// An ACL shared between the views that compute it, their gate and network admission.
pub type SharedAcl = Arc<RwLock<Acl>>;

pub(crate) fn read(acl: &SharedAcl) -> std::sync::RwLockReadGuard<'_, Acl> {
    acl.read().unwrap_or_else(PoisonError::into_inner)
}

/// The gate of a thread's views: in an access-controlled thread an operation applies only
/// if its author's role at its place allows it ([`Role::Write`] to write, [`Role::Delete`]
/// to delete); in any thread, an event compacted by an [`AclOp::Compact`] that counts
/// applies nothing ([`Acl::voids`]).
#[derive(Debug, Clone)]
pub struct AclGate(pub SharedAcl);

impl Gate for AclGate {
    fn admits(
        &self,
        view: &str,
        access: Access,
        resource: Option<&[u8]>,
        event: &Event<'_>,
    ) -> Result<(), Reject> {
        if self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .thread()
            .variant()
            != threads_id::Variant::AccessControlled
        {
            // A raw thread's members may do anything.
            return Ok(());
        }
        let needed = match access {
            Access::Write => Role::Write,
            Access::Delete => Role::Delete,
        };
        let author = event.author();
        let role = match resource {
            Some(resource) => read(&self.0).role_on(&author, &event.order, view, resource),
            None => read(&self.0).role_at(&author, &event.order),
        };
        if role >= needed {
            Ok(())
        } else {
            Err(Reject::new(format!(
                "{author} has the {role} role here; {needed} is needed"
            )))
        }
    }

    fn voids(&self, log: &threads_id::LogId, counter: u64) -> bool {
        read(&self.0).voids(log, counter)
    }
}
