//! Replication of threads between peers: the sync protocol of threads-rs.
//!
//! This crate is being built in layers. Present today, all of it sans-IO and tested without
//! sockets:
//!
//! - [`message`]: the protocol's requests and responses and their limits;
//! - [`AuthProof`]: proof of holding a thread's service key without sending it;
//! - [`ingest`]: verifying received entries completely before storing any of them, with a
//!   typed [`Rejection`];
//! - [`Health`]: per thread, log and peer counts of accepted and rejected entries, what the
//!   peer has, and the last error.
//!
//! The libp2p host that carries these messages (TCP + Noise + Yamux, request-response,
//! gossipsub) is the next step; see docs/ARCHITECTURE.md.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod auth;
pub mod gossip;
mod health;
mod ingest;
mod invite;
pub mod message;
mod node;
mod serve;

pub use auth::AuthProof;
pub use health::{Health, HealthRow, PeerLogHealth, SyncStatus};
pub use ingest::{Ingested, Rejection, ingest};
pub use invite::{Invite, InviteError, MAX_INVITE_ADDRS};
pub use node::{NetConfig, NetError, NetEvent, Node, SYNC_PROTOCOL};
pub use serve::serve;
