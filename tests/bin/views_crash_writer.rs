//! A writer that appends events to two logs of a SQLite store and applies the views after
//! each write, until it is killed: the subject of `views_crash.rs`. The second log's events
//! are always late (they sort before the first log's latest), so the order-sensitive view
//! rewinds often. Prints `ack <n>` after each catch-up.
//!
//! Usage: `views-crash-writer <SQLite store path | postgres:// URL> <seed>`

use std::io::Write;
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use threads_log::{Hlc, Writer};
use threads_store::{PostgresStore, SqliteStore, Store, write_local};
use threads_views::{Batch, Kv, ViewConfig, Views};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: views-crash-writer <path> <seed>"))?;
    let seed: u64 = args.next().unwrap_or_default().parse().unwrap_or(0);
    if path.starts_with("postgres://") {
        run(Arc::new(PostgresStore::connect(&path).await?), seed).await
    } else {
        run(Arc::new(SqliteStore::open(&path).await?), seed).await
    }
}

async fn run<S: Store + 'static>(store: Arc<S>, seed: u64) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (thread, key, identity) = threads_tests::crash_fixture();
    store.put_thread(thread, &key).await?;
    let a = Writer::new(identity, thread, &key)?;
    let b = Writer::new(threads_tests::crash_fixture_second(), thread, &key)?;
    // Event times step by 10 ms: a 200 ms undo horizon keeps about 20 events, so late
    // events both undo (within it) and rebuild (beyond it); a 4 KiB cache is evicted often,
    // so reads go to the store.
    let config = ViewConfig::new()
        .with_commit_every(7)
        .with_undo_horizon_ms(200)
        .with_cache_bytes(4096);
    let mut views = Views::open(
        Arc::clone(&store),
        thread,
        threads_tests::crash_views(),
        config,
    )
    .await?;
    let mut stdout = std::io::stdout().lock();
    let mut n = 0u64;
    loop {
        let a_counter = store
            .head(thread, a.log_id())
            .await?
            .map_or(0, |h| h.counter);
        if rng.random_bool(0.7) || a_counter == 0 {
            for _ in 0..rng.random_range(1..6) {
                let c = store
                    .head(thread, a.log_id())
                    .await?
                    .map_or(0, |h| h.counter)
                    + 1;
                let payload = Batch::new()
                    .with(
                        "kv",
                        Kv::put(&[rng.random_range(0..20u8)], &c.to_be_bytes()),
                    )
                    .with("chain", c.to_be_bytes().to_vec())
                    .encode();
                write_local(&*store, &a, &payload, Hlc::new(10 * c, 0)).await?;
            }
        } else {
            // Late: just before the first log's latest event.
            let c = store
                .head(thread, b.log_id())
                .await?
                .map_or(0, |h| h.counter)
                + 1;
            let logical = u32::try_from(c).unwrap_or(u32::MAX);
            let payload = Batch::new()
                .with("kv", Kv::del(&[rng.random_range(0..20u8)]))
                .with("chain", vec![0xB0, logical as u8])
                .encode();
            write_local(&*store, &b, &payload, Hlc::new(10 * a_counter - 5, logical)).await?;
        }
        let progress = views.catch_up().await?;
        n += progress.applied;
        writeln!(stdout, "ack {n}")?;
        stdout.flush()?;
    }
}
