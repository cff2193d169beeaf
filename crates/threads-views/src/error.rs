//! The errors of the view layer.

use threads_id::LogId;
use threads_log::VerifyError;
use threads_store::StoreError;

/// Why a view operation failed. Nothing is half-applied: a failed catch-up leaves the views
/// and their cursor as they were at the last commit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The thread is not in the store.
    #[error("unknown thread")]
    UnknownThread,
    /// This peer holds only the service key: it follows the thread and cannot read it.
    #[error("this peer cannot read the thread (it holds no read key)")]
    NoReadKey,
    /// Two views were registered under one name.
    #[error("two views are named {0:?}")]
    DuplicateView(String),
    /// A stored entry did not decrypt or did not match its links: the store is damaged.
    #[error("stored entry {counter} of log {log} is unreadable: {source}")]
    Unreadable {
        /// The log.
        log: LogId,
        /// The entry's counter.
        counter: u64,
        /// What failed.
        source: VerifyError,
    },
    /// Persisted view data did not decode: the store is damaged or was written by a newer
    /// version.
    #[error("view data is corrupt: {0}")]
    Corrupt(String),
    /// No view has this name.
    #[error("no view is named {0:?}")]
    UnknownView(String),
}

/// A result of the view layer.
pub type Result<T> = std::result::Result<T, ViewError>;
