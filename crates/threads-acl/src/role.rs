//! Roles: what a member may do in an access-controlled thread.

use std::fmt;
use std::str::FromStr;

use crate::error::AclError;

/// A member's role. Each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Nothing: peers do not serve or push the thread's records to this member.
    NoAccess,
    /// Replicates the thread's records without reading them (the service key only).
    Follow,
    /// Reads the thread's events (the read key too).
    Read,
    /// Writes events that create and change data.
    Write,
    /// Also writes events that delete data.
    Delete,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 5] = [
        Role::NoAccess,
        Role::Follow,
        Role::Read,
        Role::Write,
        Role::Delete,
    ];

    /// The role's code in ACL operations.
    pub const fn code(self) -> u8 {
        match self {
            Role::NoAccess => 0,
            Role::Follow => 1,
            Role::Read => 2,
            Role::Write => 3,
            Role::Delete => 4,
        }
    }

    /// The role of a code.
    ///
    /// # Errors
    /// [`AclError::Malformed`] for an unknown code.
    pub fn from_code(code: u8) -> Result<Role, AclError> {
        Role::ALL
            .get(usize::from(code))
            .copied()
            .ok_or_else(|| AclError::Malformed(format!("unknown role code {code}")))
    }

    /// Whether the role holds the read key.
    pub const fn can_read(self) -> bool {
        matches!(self, Role::Read | Role::Write | Role::Delete)
    }

    /// Whether the role holds the service key (any role but [`Role::NoAccess`]): it may
    /// replicate the thread.
    pub const fn can_follow(self) -> bool {
        !matches!(self, Role::NoAccess)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::NoAccess => "no-access",
            Role::Follow => "follow",
            Role::Read => "read",
            Role::Write => "write",
            Role::Delete => "delete",
        })
    }
}

impl FromStr for Role {
    type Err = AclError;

    fn from_str(s: &str) -> Result<Role, AclError> {
        Role::ALL
            .into_iter()
            .find(|r| r.to_string() == s)
            .ok_or_else(|| AclError::Malformed(format!("unknown role {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_code(role.code()).expect("code"), role);
            assert_eq!(role.to_string().parse::<Role>().expect("name"), role);
        }
        assert!(Role::from_code(5).is_err());
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::Follow < Role::Read && Role::Write < Role::Delete);
    }
}
