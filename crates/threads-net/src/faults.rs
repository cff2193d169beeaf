//! Fault injection for tests of replication: dropped and reordered pushes, partitions.
//!
//! A node started with [`NetConfig::with_faults`](crate::NetConfig::with_faults) consults
//! its [`Faults`] before every push and request. Nothing is injected unless a test turns it
//! on; a node without faults configured never pays more than one atomic load per push.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use threads_id::PeerId;

/// Faults a node injects into its own pushes and requests. Cloning gives another handle to
/// the same settings, so a test can change them while the node runs.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// Per million pushes: dropped while the pusher believes them delivered.
    drop_pushes: AtomicU32,
    /// Per million pushes of two or more entries: the later half is sent first.
    reorder_pushes: AtomicU32,
    /// Peers every request to which fails, as if unreachable.
    blocked: Mutex<HashSet<PeerId>>,
}

fn per_million(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 1_000_000.0) as u32
}

fn happens(rate: &AtomicU32) -> bool {
    let rate = rate.load(Ordering::Relaxed);
    rate > 0 && rand::random_range(0..1_000_000) < rate
}

impl Faults {
    /// No faults.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Drops `fraction` (0 to 1) of pushes without sending them, while the pusher takes
    /// them as delivered: only the periodic sync can then repair what the peer lacks.
    pub fn drop_pushes(&self, fraction: f64) {
        self.inner
            .drop_pushes
            .store(per_million(fraction), Ordering::Relaxed);
    }

    /// Reorders `fraction` (0 to 1) of pushes of two or more entries: their later half is
    /// sent before the earlier half, so the receiver sees a gap first.
    pub fn reorder_pushes(&self, fraction: f64) {
        self.inner
            .reorder_pushes
            .store(per_million(fraction), Ordering::Relaxed);
    }

    /// Makes every request to `peer` fail, as if it were unreachable (a partition; block
    /// both sides for a symmetric one).
    pub fn block(&self, peer: PeerId) {
        self.blocked().insert(peer);
    }

    /// Ends [`Faults::block`] for `peer`.
    pub fn unblock(&self, peer: PeerId) {
        self.blocked().remove(&peer);
    }

    /// Ends every block and stops dropping and reordering.
    pub fn heal(&self) {
        self.blocked().clear();
        self.drop_pushes(0.0);
        self.reorder_pushes(0.0);
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, HashSet<PeerId>> {
        self.inner.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_blocked(&self, peer: &PeerId) -> bool {
        self.blocked().contains(peer)
    }

    pub(crate) fn drop_push(&self) -> bool {
        happens(&self.inner.drop_pushes)
    }

    pub(crate) fn reorder_push(&self) -> bool {
        happens(&self.inner.reorder_pushes)
    }
}
