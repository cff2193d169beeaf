//! Sync health: per thread, log and peer, what was accepted and rejected and why, what the
//! peer has, and the last error. Silent sync failures are the most common complaint about
//! systems like this one, so every rejection is counted where an operator can read it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use threads_id::{LogId, PeerId, ThreadId};

use crate::ingest::Rejection;

/// The most (thread, log, peer) rows a node keeps; updates of new rows past it are dropped.
pub const MAX_HEALTH_ROWS: usize = 100_000;

/// What one peer did for one log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerLogHealth {
    /// Entries accepted from the peer.
    pub accepted: u64,
    /// Batches rejected from the peer, by reason code ([`Rejection::code`]).
    pub rejections: BTreeMap<&'static str, u64>,
    /// The peer's counter for the log, as last heard.
    pub peer_counter: Option<u64>,
    /// The last error, in words.
    pub last_error: Option<String>,
    /// Why the log is quarantined with this peer, if it is: the peer sent entries of it
    /// that failed verification, so this node neither pulls that log from the peer nor
    /// takes pushes of it from the peer (other logs and threads with the peer go on).
    pub quarantined: Option<String>,
}

impl PeerLogHealth {
    /// All rejections, whatever the reason.
    pub fn rejected(&self) -> u64 {
        self.rejections.values().sum()
    }
}

/// One row of a health report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    /// The thread.
    pub thread: ThreadId,
    /// The log.
    pub log: LogId,
    /// The peer.
    pub peer: PeerId,
    /// What the peer did.
    pub health: PeerLogHealth,
}

/// A health row with the local side added: how far this node has the log, and how far it
/// lags the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// The thread.
    pub thread: ThreadId,
    /// The log.
    pub log: LogId,
    /// The peer.
    pub peer: PeerId,
    /// This node's counter for the log.
    pub local_counter: u64,
    /// The peer's counter, as last heard.
    pub peer_counter: Option<u64>,
    /// How many entries the peer has that this node lacks (0 if unknown or none).
    pub lag: u64,
    /// How many entries this node has that the peer lacks, as last heard (0 if unknown or
    /// none): what the push queue and the periodic sync still have to deliver.
    pub peer_lacks: u64,
    /// The counter at which the log's author forked it, if this node holds the proof
    /// ([`Node::fork_proofs`](crate::Node::fork_proofs)): the log stops there.
    pub forked: Option<u64>,
    /// What the peer did.
    pub health: PeerLogHealth,
}

impl SyncStatus {
    /// The status of `row` when this node has `local_counter` entries of the log.
    pub fn new(row: HealthRow, local_counter: u64) -> SyncStatus {
        let peer_counter = row.health.peer_counter;
        SyncStatus {
            thread: row.thread,
            log: row.log,
            peer: row.peer,
            local_counter,
            peer_counter,
            lag: peer_counter.map_or(0, |p| p.saturating_sub(local_counter)),
            peer_lacks: peer_counter.map_or(0, |p| local_counter.saturating_sub(p)),
            forked: None,
            health: row.health,
        }
    }
}

/// The sync health of a node, shared by its tasks.
#[derive(Debug, Default)]
pub struct Health {
    rows: Mutex<BTreeMap<(ThreadId, LogId, PeerId), PeerLogHealth>>,
    /// Requests refused because the peer, though it proved the thread's key, is not
    /// admitted (a revoked member), per (thread, peer).
    denied: Mutex<BTreeMap<(ThreadId, PeerId), u64>>,
}

impl Health {
    /// Empty health.
    pub fn new() -> Health {
        Health::default()
    }

    fn update(
        &self,
        thread: ThreadId,
        log: LogId,
        peer: PeerId,
        f: impl FnOnce(&mut PeerLogHealth),
    ) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: past the limit, only existing rows change.
        if rows.len() >= MAX_HEALTH_ROWS && !rows.contains_key(&(thread, log, peer)) {
            return;
        }
        f(rows.entry((thread, log, peer)).or_default());
    }

    /// Records entries accepted from `peer`.
    pub fn accepted(&self, thread: ThreadId, log: LogId, peer: PeerId, entries: usize) {
        self.update(thread, log, peer, |h| h.accepted += entries as u64);
    }

    /// Records a rejected batch from `peer`; a batch that failed by the peer's fault (not
    /// a gap, which a stale counter explains, nor a local store failure) quarantines the
    /// log with the peer.
    pub fn rejected(&self, thread: ThreadId, log: LogId, peer: PeerId, rejection: &Rejection) {
        self.update(thread, log, peer, |h| {
            *h.rejections.entry(rejection.code()).or_default() += 1;
            h.last_error = Some(rejection.to_string());
            if rejection.is_peer_fault() && rejection.code() != "gap" {
                h.quarantined = Some(rejection.to_string());
            }
        });
    }

    /// Counts a batch from `peer` refused unread, by `code` (a quarantined log).
    pub fn refused(&self, thread: ThreadId, log: LogId, peer: PeerId, code: &'static str) {
        self.update(thread, log, peer, |h| {
            *h.rejections.entry(code).or_default() += 1;
        });
    }

    /// Counts a request of `peer` about `thread` refused because the peer is not admitted
    /// (it proved the thread's key: a member whose access was revoked).
    pub fn denied(&self, thread: ThreadId, peer: PeerId) {
        let mut denied = self.denied.lock().unwrap_or_else(|p| p.into_inner());
        if denied.len() >= MAX_HEALTH_ROWS && !denied.contains_key(&(thread, peer)) {
            return;
        }
        *denied.entry((thread, peer)).or_default() += 1;
    }

    /// Requests refused because the peer is not admitted, per (thread, peer).
    pub fn denials(&self) -> BTreeMap<(ThreadId, PeerId), u64> {
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `log` is quarantined with `peer`.
    pub fn is_quarantined(&self, thread: ThreadId, log: LogId, peer: PeerId) -> bool {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.get(&(thread, log, peer))
            .is_some_and(|h| h.quarantined.is_some())
    }

    /// Lifts the quarantine of `log` with `peer` (an operator's decision).
    pub fn release(&self, thread: ThreadId, log: LogId, peer: PeerId) {
        self.update(thread, log, peer, |h| h.quarantined = None);
    }

    /// Records how far `peer` has the log.
    pub fn peer_has(&self, thread: ThreadId, log: LogId, peer: PeerId, counter: u64) {
        self.update(thread, log, peer, |h| h.peer_counter = Some(counter));
    }

    /// Records that `peer` has at least `counter` entries of the log (it pushed them).
    pub fn peer_has_at_least(&self, thread: ThreadId, log: LogId, peer: PeerId, counter: u64) {
        self.update(thread, log, peer, |h| {
            h.peer_counter = Some(h.peer_counter.map_or(counter, |c| c.max(counter)));
        });
    }

    /// The counter of the log `peer` has, as last heard.
    pub fn peer_counter(&self, thread: ThreadId, log: LogId, peer: PeerId) -> Option<u64> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.get(&(thread, log, peer)).and_then(|h| h.peer_counter)
    }

    /// Records an error talking to `peer` about a log (a failed request, a refusal).
    pub fn error(&self, thread: ThreadId, log: LogId, peer: PeerId, error: String) {
        self.update(thread, log, peer, |h| h.last_error = Some(error));
    }

    /// Every row, ordered by thread, log and peer.
    pub fn report(&self) -> Vec<HealthRow> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.iter()
            .map(|((thread, log, peer), health)| HealthRow {
                thread: *thread,
                log: *log,
                peer: *peer,
                health: health.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_crypto::Identity;
    use threads_id::Variant;

    #[test]
    fn status_computes_the_lag() {
        let health = Health::new();
        let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
        let log = Identity::from_secret_bytes(&[2; 32]).log_id();
        let peer = Identity::from_secret_bytes(&[3; 32]).log_id().peer_id();
        health.peer_has(thread, log, peer, 40);
        health.accepted(thread, log, peer, 25);
        let row = health.report().remove(0);
        let status = SyncStatus::new(row.clone(), 25);
        assert_eq!(
            (status.local_counter, status.peer_counter, status.lag),
            (25, Some(40), 15)
        );
        assert_eq!(status.health.accepted, 25);
        assert_eq!(status.peer_lacks, 0);
        // Ahead of the peer: no lag, and the peer lacks what we have beyond its counter.
        let ahead = SyncStatus::new(row, 50);
        assert_eq!((ahead.lag, ahead.peer_lacks), (0, 10));
    }
}
