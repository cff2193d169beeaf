//! What the database's integration tests share: a configuration that syncs often, and a
//! wait with a timeout.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use threads_db::DbConfig;

/// The longest any wait of these tests takes before it fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A database configuration that syncs every 200 ms.
pub fn config() -> DbConfig {
    DbConfig::default().with_sync_interval(Duration::from_millis(200))
}

/// Waits until `check` holds, failing with `what` after [`LIMIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new peer (identity from `seed`) that joins `thread` by `inviter`'s invite with `role`.
pub async fn member(
    inviter: &threads_db::Db<threads_store::MemoryStore>,
    thread: threads_id::ThreadId,
    seed: u8,
    role: threads_acl::Role,
) -> threads_db::Db<threads_store::MemoryStore> {
    let me = threads_crypto::Identity::from_secret_bytes(&[seed; 32]);
    let db = threads_db::Db::open_memory(me.clone(), config())
        .await
        .expect("open");
    let invite = inviter
        .invite(thread, me.log_id(), role)
        .await
        .expect("invite");
    db.join(&invite).await.expect("join");
    db
}
