//! Errors of the access-control layer.

use threads_views::ViewError;

/// What can go wrong in threads-acl.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AclError {
    /// Bytes that are not an ACL operation, or an unknown role.
    #[error("malformed ACL data: {0}")]
    Malformed(String),
    /// The views failed (store, unreadable entry).
    #[error(transparent)]
    Views(#[from] ViewError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] threads_store::StoreError),
    /// This member holds no read key of the current epoch (a rotation left it out).
    #[error("no read key of the current epoch")]
    NoReadKey,
    /// An invite that cannot be read or opened.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Invite(#[from] threads_net::InviteError),
    /// The thread is not of the access-controlled variant.
    #[error("thread {0} is not access-controlled")]
    NotAccessControlled(threads_id::ThreadId),
}

/// The result of threads-acl operations.
pub type Result<T, E = AclError> = std::result::Result<T, E>;
