//! Sync health: per thread, log and peer, what was accepted and rejected and why, what the
//! peer has, and the last error. Silent sync failures are the most common complaint about
//! systems like this one, so every rejection is counted where an operator can read it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use threads_id::{LogId, PeerId, ThreadId};

use crate::ingest::Rejection;

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

/// The sync health of a node, shared by its tasks.
#[derive(Debug, Default)]
pub struct Health {
    rows: Mutex<BTreeMap<(ThreadId, LogId, PeerId), PeerLogHealth>>,
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
        f(rows.entry((thread, log, peer)).or_default());
    }

    /// Records entries accepted from `peer`.
    pub fn accepted(&self, thread: ThreadId, log: LogId, peer: PeerId, entries: usize) {
        self.update(thread, log, peer, |h| h.accepted += entries as u64);
    }

    /// Records a rejected batch from `peer`.
    pub fn rejected(&self, thread: ThreadId, log: LogId, peer: PeerId, rejection: &Rejection) {
        self.update(thread, log, peer, |h| {
            *h.rejections.entry(rejection.code()).or_default() += 1;
            h.last_error = Some(rejection.to_string());
        });
    }

    /// Records how far `peer` has the log.
    pub fn peer_has(&self, thread: ThreadId, log: LogId, peer: PeerId, counter: u64) {
        self.update(thread, log, peer, |h| h.peer_counter = Some(counter));
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
