//! The peers of each thread: where pushes go and pulls come from.
//!
//! A thread's peers are learned from invites, from [`Node::add_peer`](crate::Node::add_peer),
//! and from the peers themselves: every sync round exchanges peer lists with each peer
//! (an authenticated `ExchangePeers` request carrying the requester's own addresses and the
//! peers it knows), so an inviter learns its invitees' addresses and members learn each
//! other through any member they share. The lists are bounded and persisted in the store's
//! thread metadata, so a restarted peer knows whom to sync with.

use std::collections::HashMap;
use std::sync::Mutex;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use threads_id::{PeerId, ThreadAddr, ThreadId};
use threads_store::{MetaBook, StoreError};

/// The most addresses a peer keeps per thread; addresses learned beyond it are dropped
/// (the ones known first stay).
pub const MAX_THREAD_PEERS: usize = 256;

/// The most addresses one `ExchangePeers` message carries.
pub const MAX_EXCHANGED_ADDRS: usize = 64;

/// The thread metadata key under which the peers are persisted (one address per line).
pub(crate) const PEERS_META: &str = "threads-net.peers";

/// The key under which threads-db 0.1 persisted the peers it was told about; read once
/// when a thread is watched, so data directories of that version keep their peers.
const LEGACY_PEERS_META: &str = "threads-db.peers";

#[derive(Debug, Default)]
struct ThreadPeers {
    addrs: Vec<ThreadAddr>,
    /// Bumped at every change: a peer whose last exchange saw an older version is told.
    version: u64,
    /// Changed since last persisted.
    dirty: bool,
}

/// The peer lists of every thread, shared by a node's tasks.
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    threads: Mutex<HashMap<ThreadId, ThreadPeers>>,
}

impl PeerBook {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ThreadId, ThreadPeers>) -> T) -> T {
        f(&mut self.threads.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds `addr` unless known, this node's own, or the thread is full. Returns whether it
    /// was added.
    pub(crate) fn add(&self, addr: ThreadAddr, local: PeerId) -> bool {
        if addr.peer_id() == local {
            return false;
        }
        self.with(|threads| {
            let peers = threads.entry(addr.thread_id()).or_default();
            if peers.addrs.contains(&addr) || peers.addrs.len() >= MAX_THREAD_PEERS {
                return false;
            }
            peers.addrs.push(addr);
            peers.version += 1;
            peers.dirty = true;
            true
        })
    }

    /// The addresses of `thread`'s peers.
    pub(crate) fn of(&self, thread: ThreadId) -> Vec<ThreadAddr> {
        self.with(|threads| {
            threads
                .get(&thread)
                .map(|p| p.addrs.clone())
                .unwrap_or_default()
        })
    }

    /// The transport addresses of `peer` among `thread`'s peers.
    pub(crate) fn dial(&self, thread: ThreadId, peer: PeerId) -> Vec<Multiaddr> {
        self.with(|threads| {
            threads
                .get(&thread)
                .map(|p| {
                    p.addrs
                        .iter()
                        .filter(|a| a.peer_id() == peer)
                        .map(ThreadAddr::transport_addr)
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// The version of `thread`'s list (0 if it has none).
    pub(crate) fn version(&self, thread: ThreadId) -> u64 {
        self.with(|threads| threads.get(&thread).map_or(0, |p| p.version))
    }

    /// Every (thread, address) pair.
    pub(crate) fn all(&self) -> Vec<ThreadAddr> {
        self.with(|threads| {
            threads
                .values()
                .flat_map(|p| p.addrs.iter().cloned())
                .collect()
        })
    }

    /// Loads `thread`'s persisted peers (this version's key and the legacy one).
    pub(crate) async fn load<S: MetaBook>(
        &self,
        store: &S,
        thread: ThreadId,
        local: PeerId,
    ) -> Result<(), StoreError> {
        for key in [PEERS_META, LEGACY_PEERS_META] {
            if let Some(bytes) = store.meta(thread, key).await? {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    if let Ok(addr) = line.parse::<ThreadAddr>()
                        && addr.thread_id() == thread
                    {
                        self.add(addr, local);
                    }
                }
            }
        }
        // What was just loaded is already persisted (or will be under the new key below).
        self.save(store, thread).await
    }

    /// Persists `thread`'s list if it changed since it was last persisted.
    pub(crate) async fn save<S: MetaBook>(
        &self,
        store: &S,
        thread: ThreadId,
    ) -> Result<(), StoreError> {
        let text = self.with(|threads| {
            let peers = threads.get_mut(&thread)?;
            if !peers.dirty {
                return None;
            }
            peers.dirty = false;
            let lines: Vec<String> = peers.addrs.iter().map(ToString::to_string).collect();
            Some(lines.join("\n"))
        });
        if let Some(text) = text
            && let Err(e) = store.put_meta(thread, PEERS_META, text.as_bytes()).await
        {
            // Try again at the next save.
            self.with(|threads| {
                if let Some(peers) = threads.get_mut(&thread) {
                    peers.dirty = true;
                }
            });
            return Err(e);
        }
        Ok(())
    }

    /// Threads whose lists changed since they were last persisted.
    pub(crate) fn dirty(&self) -> Vec<ThreadId> {
        self.with(|threads| {
            threads
                .iter()
                .filter(|(_, p)| p.dirty)
                .map(|(t, _)| *t)
                .collect()
        })
    }
}

/// The peer id named by the last `/p2p/` component of `addr`, if any.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// Parses addresses received in an `ExchangePeers` message for `thread`: at most
/// [`MAX_EXCHANGED_ADDRS`], each a valid multiaddr ending in `/p2p/<peer>`; anything else
/// is skipped.
pub(crate) fn parse_exchanged(thread: ThreadId, addrs: &[serde_bytes::ByteBuf]) -> Vec<ThreadAddr> {
    addrs
        .iter()
        .take(MAX_EXCHANGED_ADDRS)
        .filter_map(|bytes| Multiaddr::try_from(bytes.to_vec()).ok())
        .filter(|addr| peer_of(addr).is_some())
        .filter_map(|addr| ThreadAddr::new(addr, thread).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;
    use threads_crypto::Identity;
    use threads_id::Variant;
    use threads_store::{MemoryStore, ThreadBook};

    fn addr(thread: ThreadId, seed: u8, port: u16) -> ThreadAddr {
        let peer = Identity::from_secret_bytes(&[seed; 32]).log_id().peer_id();
        let text = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}");
        ThreadAddr::new(text.parse().expect("multiaddr"), thread).expect("thread addr")
    }

    #[tokio::test]
    async fn bounded_deduplicated_persisted() {
        let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
        let local = Identity::from_secret_bytes(&[9; 32]).log_id().peer_id();
        let book = PeerBook::default();
        assert!(book.add(addr(thread, 1, 1000), local));
        assert!(!book.add(addr(thread, 1, 1000), local), "known");
        let own = ThreadAddr::new(
            format!("/ip4/127.0.0.1/tcp/1/p2p/{local}")
                .parse()
                .expect("multiaddr"),
            thread,
        )
        .expect("thread addr");
        assert!(!book.add(own, local), "our own address");
        for port in 0..(MAX_THREAD_PEERS as u16 + 10) {
            book.add(addr(thread, 2, 2000 + port), local);
        }
        assert_eq!(book.of(thread).len(), MAX_THREAD_PEERS);
        assert_eq!(book.dial(thread, addr(thread, 1, 0).peer_id()).len(), 1);

        let store = MemoryStore::new();
        store
            .put_thread(thread, &threads_crypto::ThreadKey::generate())
            .await
            .expect("thread");
        book.save(&store, thread).await.expect("save");
        assert!(book.dirty().is_empty());
        let again = PeerBook::default();
        again.load(&store, thread, local).await.expect("load");
        assert_eq!(again.of(thread), book.of(thread));
    }

    #[test]
    fn exchanged_addresses_need_a_peer_and_are_bounded() {
        let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
        let good = ByteBuf::from(addr(thread, 1, 1000).peer_addr().to_vec());
        let no_peer: Multiaddr = "/ip4/127.0.0.1/tcp/5".parse().expect("multiaddr");
        let garbage = ByteBuf::from(vec![0xff, 0x00, 0x13]);
        let got = parse_exchanged(
            thread,
            &[good.clone(), ByteBuf::from(no_peer.to_vec()), garbage],
        );
        assert_eq!(got, vec![addr(thread, 1, 1000)]);
        let many = vec![good; MAX_EXCHANGED_ADDRS * 2];
        assert_eq!(parse_exchanged(thread, &many).len(), MAX_EXCHANGED_ADDRS);
    }
}
