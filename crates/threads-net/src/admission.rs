//! Network admission: which peers may receive a thread's records. threads-net asks, the
//! access-control layer above it answers; by default every peer that proves the service key
//! is admitted.

use threads_id::{PeerId, ThreadId};

/// Decides whether `peer` may be served or pushed `thread`'s records.
pub trait Admission: Send + Sync + 'static {
    /// Whether `peer` may receive `thread`'s records.
    fn admits(&self, thread: ThreadId, peer: PeerId) -> bool;
}

/// Admits every peer that proves the thread's service key (a `Raw` thread's rule).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admits(&self, _thread: ThreadId, _peer: PeerId) -> bool {
        true
    }
}

impl<F> Admission for F
where
    F: Fn(ThreadId, PeerId) -> bool + Send + Sync + 'static,
{
    fn admits(&self, thread: ThreadId, peer: PeerId) -> bool {
        self(thread, peer)
    }
}
