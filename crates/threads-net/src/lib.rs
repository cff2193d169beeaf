#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod addrs;
mod admission;
mod auth;
pub mod car;
pub mod check;
mod faults;
mod forks;
pub mod gossip;
mod health;
mod ingest;
mod invite;
mod limits;
mod logaddrs;
pub mod message;
mod node;
mod peers;
mod push;
mod quota;
mod serve;
mod sync;

pub use addrs::is_loopback;
pub use admission::{Admission, AdmitAll};
pub use auth::AuthProof;
pub use faults::Faults;
pub use health::{Health, HealthRow, MAX_HEALTH_ROWS, PeerLogHealth, SyncStatus};
pub use ingest::{Ingested, Rejection, ingest};
pub use invite::{Invite, InviteError, MAX_INVITE_ADDRS, MAX_INVITE_CONTEXT};
pub use node::{DEFAULT_ADDR_TTL, NetConfig, NetError, NetEvent, Node, SYNC_PROTOCOL};
pub use peers::{MAX_EXCHANGED_ADDRS, MAX_THREAD_PEERS};
pub use quota::DEFAULT_LOG_QUOTA;
pub use serve::PROVABLE_EPOCHS;
