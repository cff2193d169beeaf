//! The paper's log address book: for each log of a thread, the addresses it can be
//! fetched from, each valid until a deadline.
//!
//! The peer book ([`crate::peers`]) says whom a node talks to about a thread: addresses
//! learned from invites, by hand and from peer exchanges, some never confirmed. The log
//! address book, kept in the store's [`AddrBook`], says where each log *was served*: when a
//! peer answers a sync request with its heads, every address of that peer becomes an
//! address of each log it holds (the writer's own log, and every log it follows: a
//! follower's address is an address of every log it serves), valid for the node's address
//! TTL from that answer. An address that stops answering is not extended, so it expires a
//! TTL after its last answer and is deleted at the next round. A node loads the unexpired
//! addresses of a thread's logs into the peer book when it starts watching the thread, so
//! a restarted reader falls back to any peer that served a log (a follower the writer
//! introduced), whatever its peer list kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use libp2p::Multiaddr;
use threads_id::{LogId, PeerId, ThreadAddr, ThreadId};
use threads_store::{AddrBook, LogBook, StoreError};

/// Milliseconds since the Unix epoch (the store's expiry clock).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// When each (thread, log, peer) was last written to the store, so that a peer answering
/// every round costs one store write per log per quarter TTL, not one per round.
#[derive(Debug, Default)]
pub(crate) struct LogAddrs {
    written: Mutex<HashMap<(ThreadId, LogId, PeerId), tokio::time::Instant>>,
}

impl LogAddrs {
    /// Records that `peer`, reached at `dial` (transport addresses), served `logs` of
    /// `thread`: each address is valid for `ttl` from now.
    pub(crate) async fn served<S: AddrBook>(
        &self,
        store: &S,
        thread: ThreadId,
        peer: PeerId,
        dial: &[Multiaddr],
        logs: impl IntoIterator<Item = LogId>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = tokio::time::Instant::now();
        let due: Vec<LogId> = {
            let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
            logs.into_iter()
                .filter(|log| {
                    let key = (thread, *log, peer);
                    let fresh = written
                        .get(&key)
                        .is_some_and(|at| now.saturating_duration_since(*at) < ttl / 4);
                    if !fresh {
                        written.insert(key, now);
                    }
                    !fresh
                })
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        let expires = now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let addrs: Vec<Multiaddr> = dial
            .iter()
            .filter_map(|transport| ThreadAddr::new(with_peer(transport, peer), thread).ok())
            .map(|a| a.peer_addr().clone())
            .collect();
        for log in due {
            for addr in &addrs {
                if let Err(error) = store.add_addr(thread, log, addr, expires).await {
                    // Written again at the next answer.
                    self.written
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&(thread, log, peer));
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Deletes the expired addresses of `thread` from the store, and forgets when they were
    /// written (so a peer that answers again is written at once).
    pub(crate) async fn expire<S: AddrBook>(
        &self,
        store: &S,
        thread: ThreadId,
        ttl: Duration,
    ) -> Result<u64, StoreError> {
        let now = tokio::time::Instant::now();
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _, _), at| *t != thread || now.saturating_duration_since(*at) < ttl);
        store.expire_addrs(thread, now_ms()).await
    }

    /// Forgets `thread` (this node left it).
    pub(crate) fn forget(&self, thread: ThreadId) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _, _), _| *t != thread);
    }
}

/// The unexpired addresses of every log of `thread`, by log (logs without one left out).
pub(crate) async fn of_thread<S: AddrBook + LogBook>(
    store: &S,
    thread: ThreadId,
) -> Result<Vec<(LogId, Vec<ThreadAddr>)>, StoreError> {
    let now = now_ms();
    let mut out = Vec::new();
    for log in store.logs(thread).await? {
        let addrs: Vec<ThreadAddr> = store
            .addrs(thread, log, now)
            .await?
            .into_iter()
            .filter_map(|a| ThreadAddr::new(a, thread).ok())
            .collect();
        if !addrs.is_empty() {
            out.push((log, addrs));
        }
    }
    Ok(out)
}

/// `transport` followed by `/p2p/<peer>` (unless it already ends with it).
fn with_peer(transport: &Multiaddr, peer: PeerId) -> Multiaddr {
    if crate::peers::peer_of(transport) == Some(peer) {
        transport.clone()
    } else {
        transport
            .clone()
            .with(libp2p::multiaddr::Protocol::P2p(peer))
    }
}
