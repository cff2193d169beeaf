#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod acl;
#[cfg(feature = "net")]
mod admission;
pub mod check;
mod error;
mod gate;
#[cfg(feature = "net")]
mod invite;
mod op;
mod role;
mod views;

pub use acl::{Acl, AclRejection};
#[cfg(feature = "net")]
pub use admission::AclAdmission;
pub use error::{AclError, Result};
pub use gate::{AclGate, AclLog, SharedAcl};
#[cfg(feature = "net")]
pub use invite::AclInvite;
pub use op::{
    ACL_VIEW, AclOp, MAX_COMPACT_RANGES, SALT_LEN, acl_key, acl_read_key, compact_proof,
    new_thread, owned_by,
};
pub use role::Role;
pub use views::{AclViews, RoleChange};
