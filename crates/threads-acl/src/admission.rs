//! Network admission by role: threads-net serves and pushes an access-controlled thread's
//! records only to peers whose identity holds a role.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use threads_id::{LogId, PeerId, ThreadId, Variant};

use crate::gate::{SharedAcl, read};
use crate::role::Role;

/// Network admission by role: a peer is served and pushed an access-controlled thread's
/// records only if the identity of its peer id has at least [`Role::Follow`] now. `Raw`
/// threads admit every peer that proves the service key; an access-controlled thread whose
/// ACL was not registered admits nobody.
#[derive(Debug, Clone, Default)]
pub struct AclAdmission {
    acls: Arc<RwLock<HashMap<ThreadId, SharedAcl>>>,
}

impl AclAdmission {
    /// Admission with no thread registered.
    pub fn new() -> AclAdmission {
        AclAdmission::default()
    }

    /// Decides admission to the ACL's thread from `acl` from now on.
    pub fn register(&self, acl: SharedAcl) {
        let thread = read(&acl).thread();
        self.acls
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(thread, acl);
    }
}

impl threads_net::Admission for AclAdmission {
    fn admits(&self, thread: ThreadId, peer: PeerId) -> bool {
        if thread.variant() == Variant::Raw {
            return true;
        }
        let Ok(member) = LogId::from_peer_id(peer) else {
            return false;
        };
        let acls = self.acls.read().unwrap_or_else(PoisonError::into_inner);
        acls.get(&thread)
            .is_some_and(|acl| read(acl).role(&member) >= Role::Follow)
    }
}
