//! ACL operations: the events that build a thread's ACL, and the thread id that names its
//! owner.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use threads_id::{LogId, ThreadId, Variant};

use crate::error::{AclError, Result};
use crate::role::Role;

/// The name of the ACL's view: batches address ACL operations to it.
pub const ACL_VIEW: &str = "acl";

const OWNER_DOMAIN: &[u8] = b"threads-rs/acl/owner/v1";

/// The length of the salt that binds an access-controlled thread's id to its owner.
pub const SALT_LEN: usize = 16;

/// A new access-controlled thread owned by `owner`: its id commits to the owner's identity,
/// `random = SHA-256("threads-rs/acl/owner/v1" ‖ owner LogId ‖ salt)`, so only the owner can
/// write the thread's [`AclOp::Init`]. Returns the id and the salt for that operation.
///
/// ```
/// use threads_acl::{AclOp, new_thread, owned_by};
/// use threads_crypto::Identity;
///
/// let owner = Identity::generate();
/// let (thread, salt) = new_thread(&owner.log_id());
/// assert!(owned_by(thread, &owner.log_id(), &salt));
/// assert!(!owned_by(thread, &Identity::generate().log_id(), &salt));
/// let init = AclOp::Init { salt }.encode();
/// assert_eq!(AclOp::decode(&init)?, AclOp::Init { salt });
/// # Ok::<(), threads_acl::AclError>(())
/// ```
pub fn new_thread(owner: &LogId) -> (ThreadId, [u8; SALT_LEN]) {
    let salt: [u8; SALT_LEN] = rand::random();
    (
        ThreadId::from_parts(Variant::AccessControlled, owner_hash(owner, &salt)),
        salt,
    )
}

/// Whether `thread` is access-controlled and its id commits to `owner` with `salt`.
pub fn owned_by(thread: ThreadId, owner: &LogId, salt: &[u8; SALT_LEN]) -> bool {
    thread.variant() == Variant::AccessControlled
        && ThreadId::from_parts(Variant::AccessControlled, owner_hash(owner, salt)) == thread
}

fn owner_hash(owner: &LogId, salt: &[u8; SALT_LEN]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(OWNER_DOMAIN);
    hasher.update(owner.to_bytes());
    hasher.update(salt);
    hasher.finalize().into()
}

/// One change to a thread's ACL, written as an operation for the view [`ACL_VIEW`].
///
/// Changes to one member carry `from`: the first counter of the member's log the change
/// applies to whatever its time (the next counter the editor had seen). A change applies to
/// the member's events after it in the thread's order and to every event from counter
/// `from` on, so a member cannot escape a revocation by back-dating its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclOp {
    /// Founds the ACL: its author becomes the owner (an editor with the delete role, for
    /// good). Valid only from the identity the thread id commits to (see [`new_thread`]).
    Init {
        /// The salt of [`new_thread`].
        salt: [u8; SALT_LEN],
    },
    /// Gives `member` a role.
    SetRole {
        /// The member.
        member: LogId,
        /// The new role.
        role: Role,
        /// The member's first counter it applies to.
        from: u64,
    },
    /// Sets the role of members without one of their own (at first [`Role::NoAccess`]).
    /// It applies by order only.
    SetDefault {
        /// The new default role.
        role: Role,
    },
    /// Makes `member` an editor of the ACL, or not.
    SetEditor {
        /// The member.
        member: LogId,
        /// Whether the member may change the ACL.
        editor: bool,
        /// The member's first counter it applies to.
        from: u64,
    },
}

#[derive(Serialize, Deserialize)]
enum WireOp {
    #[serde(rename = "init")]
    Init(ByteBuf),
    #[serde(rename = "role")]
    Role(ByteBuf, u8, u64),
    #[serde(rename = "default")]
    Default(u8),
    #[serde(rename = "editor")]
    Editor(ByteBuf, bool, u64),
}

impl AclOp {
    /// The operation's bytes (DAG-CBOR), for a batch entry of the view [`ACL_VIEW`].
    pub fn encode(&self) -> Vec<u8> {
        let wire = match self {
            AclOp::Init { salt } => WireOp::Init(ByteBuf::from(salt.to_vec())),
            AclOp::SetRole { member, role, from } => {
                WireOp::Role(ByteBuf::from(member.to_bytes()), role.code(), *from)
            }
            AclOp::SetDefault { role } => WireOp::Default(role.code()),
            AclOp::SetEditor {
                member,
                editor,
                from,
            } => WireOp::Editor(ByteBuf::from(member.to_bytes()), *editor, *from),
        };
        serde_ipld_dagcbor::to_vec(&wire).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    /// Decodes [`AclOp::encode`]'s bytes.
    ///
    /// # Errors
    /// [`AclError::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<AclOp> {
        let wire: WireOp = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| AclError::Malformed(format!("not an ACL operation: {e}")))?;
        let member = |b: &ByteBuf| {
            LogId::from_bytes(b).map_err(|e| AclError::Malformed(format!("member: {e}")))
        };
        Ok(match wire {
            WireOp::Init(salt) => AclOp::Init {
                salt: salt
                    .as_slice()
                    .try_into()
                    .map_err(|_| AclError::Malformed(format!("salt of {} bytes", salt.len())))?,
            },
            WireOp::Role(m, role, from) => AclOp::SetRole {
                member: member(&m)?,
                role: Role::from_code(role)?,
                from,
            },
            WireOp::Default(role) => AclOp::SetDefault {
                role: Role::from_code(role)?,
            },
            WireOp::Editor(m, editor, from) => AclOp::SetEditor {
                member: member(&m)?,
                editor,
                from,
            },
        })
    }
}
