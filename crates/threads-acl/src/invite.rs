//! Invites to access-controlled threads: the keys the role needs, and the role.
//!
//! ```text
//! ACL invite = role code (1 byte) ‖ invite bytes (threads-net)        text: multibase base32
//! ```
//!
//! The invite (threads-net) is signed by the inviter, with the role code as its context:
//! the role outside must be the one signed, so it cannot be changed on the way.

use std::fmt;
use std::str::FromStr;

use threads_crypto::Identity;
use threads_crypto::KeySet;
use threads_id::ThreadAddr;
use threads_net::Invite;
use zeroize::Zeroizing;

use crate::error::{AclError, Result};
use crate::role::Role;

/// An invite with the role it grants. The role tells the invitee what to expect (a
/// follower opens no views); the ACL events decide what it may do.
#[derive(Clone, PartialEq, Eq)]
pub struct AclInvite {
    pub(crate) role: Role,
    pub(crate) invite: Invite,
}

impl fmt::Debug for AclInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AclInvite({}, {:?})", self.role, self.invite)
    }
}

impl AclInvite {
    /// An invite granting `role`: `invite`'s signed context must be the role's code
    /// (`Invite::with_terms(inviter, &[role.code()], expiry)`).
    ///
    /// # Errors
    /// [`AclError::Malformed`] if the invite does not grant `role`.
    pub fn new(role: Role, invite: Invite) -> Result<AclInvite> {
        if invite.context() != [role.code()] {
            return Err(AclError::Malformed(
                "the role is not the one the inviter signed".to_owned(),
            ));
        }
        Ok(AclInvite { role, invite })
    }

    /// The role granted.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The invite (addresses and sealed keys).
    pub const fn invite(&self) -> &Invite {
        &self.invite
    }

    /// The addresses and keys; `me` opens it.
    ///
    /// # Errors
    /// [`AclError::Invite`] if it is not sealed to `me` or was changed.
    pub fn open(&self, me: &Identity) -> Result<(Vec<ThreadAddr>, KeySet)> {
        Ok(self.invite.open(me)?)
    }

    /// The byte form.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let inner = self.invite.to_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(1 + inner.len()));
        out.push(self.role.code());
        out.extend_from_slice(&inner);
        out
    }

    /// Parses [`AclInvite::to_bytes`].
    ///
    /// # Errors
    /// [`AclError::Malformed`] or [`AclError::Invite`].
    pub fn from_bytes(bytes: &[u8]) -> Result<AclInvite> {
        let (&role, rest) = bytes
            .split_first()
            .ok_or_else(|| AclError::Malformed("empty invite".to_owned()))?;
        AclInvite::new(Role::from_code(role)?, Invite::from_bytes(rest)?)
    }

    /// The text form: multibase (base32, prefix `b`).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(multibase::encode(
            multibase::Base::Base32Lower,
            &*self.to_bytes(),
        ))
    }
}

impl FromStr for AclInvite {
    type Err = AclError;

    fn from_str(text: &str) -> Result<AclInvite> {
        let (_, bytes) = multibase::decode(text.trim())
            .map_err(|e| AclError::Malformed(format!("invite is not multibase: {e}")))?;
        AclInvite::from_bytes(&Zeroizing::new(bytes))
    }
}
