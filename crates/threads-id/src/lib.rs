//! Identifiers of the Threads protocol.
//!
//! - [`ThreadId`]: a thread's id, `uvarint(1) ‖ uvarint(variant) ‖ 32 random bytes`, written
//!   in multibase (base32, prefix `b`), compatible with go-threads.
//! - [`LogId`]: a single-writer log's id, the libp2p [`PeerId`] of its ed25519 key.
//! - [`ThreadAddr`]: `<multiaddr>/p2p/<peer>/thread/<id>`, where a thread can be reached.
//! - [`varint`]: the strict unsigned varint codec these formats use.
//! - [`check`]: invariant checks over untrusted input, shared by fuzz targets and tests.
//!
//! Every type parses strictly (typed errors, never a panic) and round-trips through its text
//! and byte forms. docs/FORMAT.md gives the byte layouts.
//!
//! ```
//! use threads_id::{LogId, ThreadAddr, ThreadId, Variant};
//!
//! let thread = ThreadId::new(Variant::Raw);
//! let key = libp2p_identity::Keypair::generate_ed25519().public();
//! let log = LogId::from_public_key(&key)?;
//! let addr = ThreadAddr::new(format!("/ip4/127.0.0.1/tcp/4006/p2p/{log}").parse()?, thread)?;
//! assert_eq!(addr.to_string().parse::<ThreadAddr>()?, addr);
//! assert_eq!(addr.peer_id(), log.peer_id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod addr;
pub mod check;
mod log_id;
mod serde_impl;
mod thread_id;
pub mod varint;

pub use addr::{THREAD_PROTOCOL_CODE, THREAD_PROTOCOL_NAME, ThreadAddr, ThreadAddrError};
pub use libp2p_identity::PeerId;
pub use log_id::{LogId, LogIdError};
pub use multiaddr::Multiaddr;
pub use thread_id::{THREAD_ID_VERSION, ThreadId, ThreadIdError, Variant};
pub use varint::VarintError;
