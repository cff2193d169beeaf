//! Changing a thread's stored key: read, change, write, one change at a time per thread.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use threads_crypto::ThreadKey;
use threads_id::ThreadId;

use crate::traits::{Result, ThreadBook};

/// One lock per thread, for the whole process: every store of the process shares them (a
/// thread's key changes rarely, so two stores holding the same thread only wait for each
/// other now and then).
static LOCKS: LazyLock<Mutex<HashMap<ThreadId, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// Reads `thread`'s stored key, lets `change` compute the new one from it, and stores the
/// result if it differs, while holding a lock that every other call for the thread waits
/// for: two changes made at once (a join adding a read key, views adding a service-key
/// epoch) cannot overwrite each other. Returns the key stored at the end.
///
/// # Errors
/// A store error.
pub async fn update_thread_key<S: ThreadBook + ?Sized>(
    store: &S,
    thread: ThreadId,
    change: impl FnOnce(Option<&ThreadKey>) -> Option<ThreadKey> + Send,
) -> Result<Option<ThreadKey>> {
    let lock = Arc::clone(
        LOCKS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(thread)
            .or_default(),
    );
    let _held = lock.lock().await;
    let stored = store.thread_key(thread).await?;
    match change(stored.as_ref()) {
        Some(new) if stored.as_ref() != Some(&new) => {
            store.put_thread(thread, &new).await?;
            Ok(Some(new))
        }
        _ => Ok(stored),
    }
}
