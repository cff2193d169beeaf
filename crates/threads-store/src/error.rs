//! The store's errors.

use threads_id::{LogId, ThreadId};
use threads_log::Head;

/// Why a store operation failed. Nothing was changed when an error is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
// The `Conflict` variant carries two heads (CIDs of 96 bytes); the successful results of
// the same calls carry heads too, so boxing would not shrink the `Result`s.
#[allow(clippy::large_enum_variant)]
pub enum StoreError {
    /// The batch does not extend the log's current head (another writer got there first,
    /// or the caller's view of the head is stale).
    #[error("append to {log} does not extend its head: expected {expected:?}, current {current:?}")]
    Conflict {
        /// The log.
        log: LogId,
        /// The head the caller expected.
        expected: Option<Head>,
        /// The head the store has.
        current: Option<Head>,
    },
    /// The batch is not a chain: a record does not link to the one before it, or a record
    /// does not match its entry's blocks.
    #[error("append batch is not a chain: {0}")]
    NotAChain(String),
    /// The thread is not in the store.
    #[error("unknown thread {0}")]
    UnknownThread(ThreadId),
    /// The database file is not a threads-rs store, or its contents are damaged.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// The store was written by a newer version of threads-rs.
    #[error("store schema version {found} is newer than the {supported} this version reads")]
    SchemaTooNew {
        /// The version in the store.
        found: i64,
        /// The newest version this build understands.
        supported: i64,
    },
    /// The store's secrets are sealed with a passphrase, and none was given.
    #[error("the store is sealed with a passphrase; give it to open the store")]
    PassphraseRequired,
    /// The passphrase does not open the store's secrets.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A passphrase was given for a store whose secrets are stored without one.
    #[error("the store's secrets are not sealed with a passphrase")]
    NotSealed,
    /// The writer could not build the entry (a read-only key, a counter overflow).
    #[error("cannot append: {0}")]
    Append(#[from] threads_log::AppendError),
    /// The database failed.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The SQLite store's writing connection failed (SQLite's message and extended code).
    #[error("database error: {message} (SQLite code {code})")]
    Sqlite {
        /// SQLite's extended result code.
        code: i32,
        /// SQLite's message.
        message: String,
    },
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        match error {
            rusqlite::Error::SqliteFailure(e, message) => {
                let message = message.unwrap_or_else(|| e.to_string());
                match e.code {
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
                        StoreError::Corrupt(message)
                    }
                    _ => StoreError::Sqlite {
                        code: e.extended_code,
                        message,
                    },
                }
            }
            other => StoreError::Sqlite {
                code: -1,
                message: other.to_string(),
            },
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match error {
            // SQLite reports a file that is not a database, or a damaged one, this way.
            sqlx::Error::Database(ref db)
                if matches!(db.code().as_deref(), Some("26") | Some("11")) =>
            {
                StoreError::Corrupt(db.message().to_owned())
            }
            other => StoreError::Database(other),
        }
    }
}
