//! The peers of each thread: where pushes go and pulls come from.
//!
//! A thread's peers are learned from invites, from [`Node::add_peer`](crate::Node::add_peer),
//! and from the peers themselves: every sync round exchanges peer lists with each peer
//! (an authenticated `ExchangePeers` request carrying the requester's own addresses and the
//! peers it knows), so an inviter learns its invitees' addresses and members learn each
//! other through any member they share. The lists are bounded and persisted in the store's
//! thread metadata, so a restarted peer knows whom to sync with.
//!
//! Addresses expire: a peer that has not answered the periodic sync for the node's address
//! TTL ([`NetConfig::with_addr_ttl`](crate::NetConfig::with_addr_ttl), a day by default)
//! loses its addresses, and for as long again other peers cannot give them back (they may
//! still list it); the peer itself can, by exchanging peers with us, and so can an address
//! added by hand.

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
    /// Peers that did not answer, since when (cleared when one answers or sends a
    /// request). Kept in memory: a restart starts their clocks again, which only keeps
    /// an address longer.
    failing: Mutex<HashMap<PeerId, tokio::time::Instant>>,
    /// Peers whose addresses expired, and until when other peers cannot give them back
    /// (the peer itself can, and so can [`Node::add_peer`](crate::Node::add_peer)).
    expired: Mutex<HashMap<PeerId, tokio::time::Instant>>,
}

impl PeerBook {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ThreadId, ThreadPeers>) -> T) -> T {
        f(&mut self.threads.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds `addr` learned from `from` in a peer exchange: as [`PeerBook::add`] when it
    /// is `from`'s own address; else not while its peer's addresses are expired (so peers
    /// that still list a dead address do not bring it back every round).
    pub(crate) fn learn(&self, addr: ThreadAddr, local: PeerId, from: PeerId) -> bool {
        if addr.peer_id() != from {
            let now = tokio::time::Instant::now();
            let mut expired = self.expired.lock().unwrap_or_else(|p| p.into_inner());
            expired.retain(|_, until| *until > now);
            if expired.contains_key(&addr.peer_id()) {
                return false;
            }
        }
        self.add(addr, local)
    }

    /// Forgets every peer of `thread` (this node left it).
    pub(crate) fn forget(&self, thread: ThreadId) {
        self.with(|threads| threads.remove(&thread));
    }

    /// Adds `addr` unless known, this node's own, or the thread is full. Returns whether it
    /// was added.
    pub(crate) fn add(&self, addr: ThreadAddr, local: PeerId) -> bool {
        if addr.peer_id() == local {
            return false;
        }
        self.expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&addr.peer_id());
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

    /// `peer` could not be reached (its clock starts at the first failure).
    pub(crate) fn failed(&self, peer: PeerId, now: tokio::time::Instant) {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer)
            .or_insert(now);
    }

    /// `peer` answered, or sent us a request.
    pub(crate) fn answered(&self, peer: PeerId) {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&peer);
    }

    /// Drops every address of the peers that have not answered for `ttl` or longer (the
    /// lists are persisted at the next save). A peer that comes back tells us its
    /// addresses again when it exchanges peers with us. Returns the addresses dropped.
    pub(crate) fn expire(
        &self,
        now: tokio::time::Instant,
        ttl: std::time::Duration,
    ) -> Vec<ThreadAddr> {
        let gone: std::collections::HashSet<PeerId> = {
            let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            let gone = failing
                .iter()
                .filter(|(_, since)| now.saturating_duration_since(**since) >= ttl)
                .map(|(peer, _)| *peer)
                .collect::<std::collections::HashSet<_>>();
            failing.retain(|peer, _| !gone.contains(peer));
            gone
        };
        {
            let mut expired = self.expired.lock().unwrap_or_else(|p| p.into_inner());
            for peer in &gone {
                expired.insert(*peer, now + ttl);
            }
        }
        if gone.is_empty() {
            return Vec::new();
        }
        self.with(|threads| {
            let mut dropped = Vec::new();
            for peers in threads.values_mut() {
                let before = peers.addrs.len();
                peers.addrs.retain(|a| {
                    let keep = !gone.contains(&a.peer_id());
                    if !keep {
                        dropped.push(a.clone());
                    }
                    keep
                });
                if peers.addrs.len() != before {
                    peers.version += 1;
                    peers.dirty = true;
                }
            }
            dropped
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

    #[tokio::test]
    async fn an_expired_peer_comes_back_only_by_itself_or_by_hand() {
        let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
        let local = Identity::from_secret_bytes(&[9; 32]).log_id().peer_id();
        let book = PeerBook::default();
        let (dead, other) = (addr(thread, 1, 1000), addr(thread, 2, 2000));
        book.add(dead.clone(), local);
        book.add(other.clone(), local);
        let start = tokio::time::Instant::now();
        let ttl = std::time::Duration::from_secs(60);
        book.failed(dead.peer_id(), start);
        book.failed(other.peer_id(), start);
        book.answered(other.peer_id());
        assert!(book.expire(start + ttl / 2, ttl).is_empty(), "not yet");
        assert_eq!(book.expire(start + ttl, ttl), vec![dead.clone()]);
        assert_eq!(book.of(thread), vec![other.clone()]);
        assert!(!book.dirty().is_empty(), "the shorter list is saved");
        // Another peer still listing it does not bring it back...
        assert!(!book.learn(dead.clone(), local, other.peer_id()));
        // ...the peer itself does, and so does adding it by hand.
        assert!(book.learn(dead.clone(), local, dead.peer_id()));
        book.failed(dead.peer_id(), start);
        book.expire(start + ttl, ttl);
        assert!(book.add(dead.clone(), local));
        assert_eq!(book.of(thread).len(), 2);
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
