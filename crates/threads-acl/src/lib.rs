#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod acl;
mod error;
mod gate;
mod invite;
mod op;
mod role;
mod views;

pub use acl::{Acl, AclRejection};
pub use error::{AclError, Result};
pub use gate::{AclAdmission, AclGate, AclLog, SharedAcl};
pub use invite::AclInvite;
pub use op::{ACL_VIEW, AclOp, SALT_LEN, acl_key, new_thread, owned_by};
pub use role::Role;
pub use views::AclViews;
