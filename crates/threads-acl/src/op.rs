//! ACL operations: the events that build a thread's ACL, and the thread id that names its
//! owner.

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use threads_crypto::{ReadKey, ServiceKey, ThreadKey};
use threads_id::{LogId, ThreadId, Variant};
use threads_views::{Stamp, decode_stamp, encode_stamp};

use crate::error::{AclError, Result};
use crate::role::Role;

/// The name of the ACL's view: batches address ACL operations to it.
pub const ACL_VIEW: &str = "acl";

const OWNER_DOMAIN: &[u8] = b"threads-rs/acl/owner/v1";

/// The key that seals a thread's ACL events now: the thread's key ring (its first service
/// key seals the records) with the ACL read key of the newest service-key epoch
/// ([`acl_read_key`] of [`ThreadKey::epoch_service`]). Every member of the epoch reads the
/// ACL, followers included (they enforce admission from it, and a member reads the keys
/// sealed to it whatever read-key epoch it holds); a member revoked before the epoch began
/// does not. What ACL events carry is public to members: identities, roles, and keys each
/// sealed to one member.
pub fn acl_key(thread: ThreadId, key: &ThreadKey) -> ThreadKey {
    key.to_follower()
        .with_read(acl_read_key(thread, key.epoch_service()))
}

/// The ACL read key of the epoch of `service`:
/// `HKDF-SHA256(ikm = service key, info = "threads-rs/acl/key/v1" ‖ thread id)`.
pub fn acl_read_key(thread: ThreadId, service: &ServiceKey) -> ReadKey {
    let mut key = [0u8; 32];
    let mut info = b"threads-rs/acl/key/v1".to_vec();
    info.extend_from_slice(&thread.to_bytes());
    Hkdf::<Sha256>::new(None, service.as_bytes())
        .expand(&info, &mut key)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    ReadKey::from_bytes(key)
}

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

pub(crate) fn owner_hash(owner: &LogId, salt: &[u8; SALT_LEN]) -> [u8; 32] {
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Gives `member` a role on one resource of one view (a key, a document): it replaces
    /// the member's thread-wide role for operations on that resource, to narrow it or widen
    /// it.
    SetResourceRole {
        /// The view.
        view: String,
        /// The resource within the view ([`threads_views::Reducer::resource`]).
        resource: Vec<u8>,
        /// The member.
        member: LogId,
        /// The role on the resource.
        role: Role,
        /// The member's first counter it applies to.
        from: u64,
    },
    /// Starts a new key epoch: a new read key and a new service key. Writers that apply it
    /// seal their later events with the new read key and ACL events with the ACL key of
    /// the new service key ([`acl_key`]); peers prove the new service key in sync requests
    /// and announce on its topic. Each member that keeps a role gets the keys sealed to it
    /// (both to a reader, the service key alone to a follower); a member left out reads
    /// nothing of the epoch. (A rotation whose key sets carry the thread's first service
    /// key rotates the read key only.)
    Rotate {
        /// The new keys, sealed to each member ([`threads_crypto::SealedKeySet`] bytes).
        sealed: Vec<(LogId, Vec<u8>)>,
    },
    /// Hands read keys to members (a reader added after a rotation needs the keys of
    /// earlier epochs to read the thread's history, and the current one to write).
    Share {
        /// Keys sealed to members, any number per member, each with its epoch: the place of
        /// the [`AclOp::Rotate`] that started it, or `None` for the thread's first read key.
        sealed: Vec<(LogId, Option<Stamp>, Vec<u8>)>,
    },
    /// Compacts events of `log`: every peer treats the events with a counter in one of
    /// `ranges` (inclusive, in increasing order, not overlapping) as applying nothing, and
    /// may then drop their bodies (their signed records stay). Written by the owner of an
    /// access-controlled thread, or by a member of a raw thread with a proof that it holds
    /// the read key ([`compact_proof`]; a raw thread's ACL events can come from anyone
    /// holding the service key, followers included), naming events it found superseded,
    /// so that every peer computes the same views whatever bodies it still holds. Only
    /// the owner in an access-controlled thread, because compaction must be final: an
    /// editor's right can be revoked back to before its operation, which would make the
    /// events apply again after peers dropped their bodies.
    Compact {
        /// The log whose events are compacted.
        log: LogId,
        /// Counter ranges `(first, last)`, at most [`MAX_COMPACT_RANGES`].
        ranges: Vec<(u64, u64)>,
        /// In a raw thread, [`compact_proof`]: that its author holds the thread's read key
        /// (followers do not). Empty in an access-controlled thread.
        proof: Vec<u8>,
    },
}

/// The proof that the author of a raw thread's [`AclOp::Compact`] holds the thread's read
/// key: `HKDF-SHA256(ikm = read key, info = "threads-rs/acl/compact/v1" ‖ thread id ‖
/// author LogId ‖ log LogId ‖ each range's first and last counter, u64 big-endian)`, 32
/// bytes. Bound to the author, so a follower cannot copy a member's operation into its own
/// log.
pub fn compact_proof(
    thread: ThreadId,
    read: &ReadKey,
    author: &LogId,
    log: &LogId,
    ranges: &[(u64, u64)],
) -> [u8; 32] {
    let mut info = b"threads-rs/acl/compact/v1".to_vec();
    info.extend_from_slice(&thread.to_bytes());
    info.extend_from_slice(&author.to_bytes());
    info.extend_from_slice(&log.to_bytes());
    for (first, last) in ranges {
        info.extend_from_slice(&first.to_be_bytes());
        info.extend_from_slice(&last.to_be_bytes());
    }
    let mut proof = [0u8; 32];
    Hkdf::<Sha256>::new(None, read.as_bytes())
        .expand(&info, &mut proof)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    proof
}

/// The most counter ranges one [`AclOp::Compact`] names.
pub const MAX_COMPACT_RANGES: usize = 4_096;

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
    #[serde(rename = "resource-role")]
    ResourceRole(String, ByteBuf, ByteBuf, u8, u64),
    #[serde(rename = "rotate")]
    Rotate(Vec<(ByteBuf, ByteBuf)>),
    #[serde(rename = "share")]
    Share(Vec<(ByteBuf, ByteBuf, ByteBuf)>),
    #[serde(rename = "compact")]
    Compact(ByteBuf, Vec<(u64, u64)>, ByteBuf),
}

fn wire_keys(sealed: &[(LogId, Vec<u8>)]) -> Vec<(ByteBuf, ByteBuf)> {
    sealed
        .iter()
        .map(|(m, k)| (ByteBuf::from(m.to_bytes()), ByteBuf::from(k.clone())))
        .collect()
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
            AclOp::SetResourceRole {
                view,
                resource,
                member,
                role,
                from,
            } => WireOp::ResourceRole(
                view.clone(),
                ByteBuf::from(resource.clone()),
                ByteBuf::from(member.to_bytes()),
                role.code(),
                *from,
            ),
            AclOp::Rotate { sealed } => WireOp::Rotate(wire_keys(sealed)),
            AclOp::Share { sealed } => WireOp::Share(
                sealed
                    .iter()
                    .map(|(m, epoch, k)| {
                        (
                            ByteBuf::from(m.to_bytes()),
                            ByteBuf::from(
                                epoch.map(|e| encode_stamp(&e).to_vec()).unwrap_or_default(),
                            ),
                            ByteBuf::from(k.clone()),
                        )
                    })
                    .collect(),
            ),
            AclOp::Compact { log, ranges, proof } => WireOp::Compact(
                ByteBuf::from(log.to_bytes()),
                ranges.clone(),
                ByteBuf::from(proof.clone()),
            ),
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
            WireOp::ResourceRole(view, resource, m, role, from) => AclOp::SetResourceRole {
                view,
                resource: resource.into_vec(),
                member: member(&m)?,
                role: Role::from_code(role)?,
                from,
            },
            WireOp::Rotate(keys) => AclOp::Rotate {
                sealed: keys
                    .into_iter()
                    .map(|(m, k)| Ok((member(&m)?, k.into_vec())))
                    .collect::<Result<_>>()?,
            },
            WireOp::Share(keys) => AclOp::Share {
                sealed: keys
                    .into_iter()
                    .map(|(m, epoch, k)| {
                        let epoch = if epoch.is_empty() {
                            None
                        } else {
                            Some(
                                decode_stamp(&epoch)
                                    .map_err(|e| AclError::Malformed(format!("key epoch: {e}")))?,
                            )
                        };
                        Ok((member(&m)?, epoch, k.into_vec()))
                    })
                    .collect::<Result<_>>()?,
            },
            WireOp::Compact(log, ranges, proof) => {
                if ranges.is_empty() || ranges.len() > MAX_COMPACT_RANGES {
                    return Err(AclError::Malformed(format!(
                        "{} counter ranges (1 to {MAX_COMPACT_RANGES})",
                        ranges.len()
                    )));
                }
                let mut last = 0;
                for &(first, end) in &ranges {
                    if first == 0 || first > end || first <= last {
                        return Err(AclError::Malformed(format!(
                            "counter range {first}..={end} is empty, starts at 0 or is not after the previous one"
                        )));
                    }
                    last = end;
                }
                AclOp::Compact {
                    log: member(&log)?,
                    ranges,
                    proof: proof.into_vec(),
                }
            }
        })
    }
}
