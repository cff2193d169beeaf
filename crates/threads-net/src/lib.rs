//! Replication of threads between peers over libp2p: the sync protocol of threads-rs.
//!
//! - [`Node`]: a libp2p host (TCP + Noise + Yamux; QUIC with the `quic` feature; identify,
//!   ping, gossipsub, mDNS when asked) and the handle to it: create and [`join`](Node::join)
//!   threads, [`write`](Node::write) (store, then push in log order and announce from a
//!   queue), [`pull`](Node::pull) in pages, background sync with
//!   [`start_sync`](Node::start_sync) (pulls what we lack, pushes what peers lack,
//!   exchanges peer lists), [`sync_status`](Node::sync_status) (lag both ways).
//! - [`Faults`]: dropped and reordered pushes and partitions, for tests of replication.
//! - [`message`]: the protocol's requests and responses and their limits; [`AuthProof`]:
//!   proof of holding a thread's service key without sending it; [`gossip`]: topic names that
//!   reveal nothing without the key.
//! - [`ingest`]: verifying received entries completely before storing any of them, with a
//!   typed [`Rejection`].
//! - [`Invite`]: sealed (to one identity) and link invites; [`Health`]: per thread, log and
//!   peer counts of accepted and rejected entries, what the peer has, the last error.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use threads_crypto::{Identity, KeySet};
//! use threads_id::Variant;
//! use threads_log::{Hlc, Writer};
//! use threads_net::{Invite, NetConfig, Node};
//! use threads_store::MemoryStore;
//!
//! let loopback = || NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
//! let alice_id = Identity::generate();
//! let bob_id = Identity::generate();
//! let alice = Node::start(&alice_id, Arc::new(MemoryStore::new()), loopback()).await?;
//! let bob = Node::start(&bob_id, Arc::new(MemoryStore::new()), loopback()).await?;
//!
//! // Alice creates a thread, writes to it, and invites Bob.
//! let (thread, key) = alice.create_thread(Variant::Raw).await?;
//! let writer = Writer::new(alice_id.clone(), thread, &key).unwrap();
//! alice.write(&writer, b"hello", Hlc::new(1, 0)).await?;
//! let addrs = vec![alice.thread_addr(thread).unwrap()];
//! let invite = Invite::sealed(&alice_id, addrs, &KeySet::new(thread, key), &bob_id.public());
//!
//! // Bob joins from the invite's text and has Alice's entry, verified.
//! let (_, stored) = bob.join(&invite.to_text().parse().unwrap(), &bob_id).await?;
//! assert_eq!(stored, 1);
//! # alice.shutdown().await; bob.shutdown().await;
//! # Ok::<(), threads_net::NetError>(())
//! # }).unwrap();
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod addrs;
mod admission;
mod auth;
pub mod check;
mod faults;
pub mod gossip;
mod health;
mod ingest;
mod invite;
mod limits;
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
