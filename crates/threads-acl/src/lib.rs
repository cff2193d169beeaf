//! Access control for threads-rs: roles, kept as a view of the thread's own events,
//! enforced by every reader, and followed by the network.
//!
//! - [`Role`]: no-access, follow, read, write, delete, each including the ones below it.
//! - [`AclOp`]: the events that change a thread's ACL (written to the view [`ACL_VIEW`]);
//!   [`new_thread`] makes an access-controlled thread id that names its owner.
//! - [`Acl`]: the ACL computed from those events in the thread's order, the same on every
//!   peer; [`AclViews`]: a thread's views behind it (an event whose author lacked the role
//!   at its place is ignored by every view and recorded as a rejection).
//! - [`AclAdmission`]: threads-net's admission hook, serving a thread only to peers with at
//!   least the follow role.
//! - Revoking read starts a new read-key epoch ([`AclViews::set_role`] adds an
//!   [`AclOp::Rotate`]): the new key is sealed to each remaining reader, and a revoked
//!   reader keeps what it could read but cannot open later events. ACL events themselves are
//!   sealed with [`acl_key`], which every member holds (followers enforce admission from it).
//! - [`AclInvite`]: an invite with its role; a follower's carries no read key.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use threads_acl::{ACL_VIEW, AclOp, AclViews, Role, acl_key, new_thread};
//! use threads_crypto::{Identity, ThreadKey};
//! use threads_log::Hlc;
//! use threads_store::{MemoryStore, ThreadBook, write_local};
//! use threads_views::{Batch, Kv, ViewConfig};
//!
//! let (owner, guest) = (Identity::generate(), Identity::generate());
//! let (thread, salt) = new_thread(&owner.log_id());
//! let key = ThreadKey::generate();
//! let store = Arc::new(MemoryStore::new());
//! store.put_thread(thread, &key).await?;
//! // ACL events are sealed with the ACL key (derived from the service key).
//! let owner_acl = threads_log::Writer::new(owner, thread, &acl_key(thread, key.service()))?;
//! let guest_log = threads_log::Writer::new(guest.clone(), thread, &key)?;
//!
//! // The owner founds the ACL and lets the guest read only.
//! let grant = AclOp::SetRole { member: guest.log_id(), role: Role::Read, from: 1 };
//! let acl = Batch::new()
//!     .with(ACL_VIEW, AclOp::Init { salt }.encode())
//!     .with(ACL_VIEW, grant.encode());
//! write_local(&*store, &owner_acl, &acl.encode(), Hlc::new(1, 0)).await?;
//! // The guest writes anyway.
//! let put = Batch::new().with("kv", Kv::put(b"k", b"v")).encode();
//! write_local(&*store, &guest_log, &put, Hlc::new(2, 0)).await?;
//!
//! let kv = Arc::new(Kv::new("kv"));
//! let mut views = AclViews::open(store, thread, &guest, vec![kv], ViewConfig::new()).await?;
//! views.catch_up().await?;
//! assert_eq!(views.acl().role(&guest.log_id()), Role::Read);
//! assert_eq!(views.read("kv", |state| Kv::get(state, b"k")).await?, None);
//! assert_eq!(views.rejections().await?[0].author(), guest.log_id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
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
