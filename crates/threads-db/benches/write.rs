//! Benchmark of the write path, side by side with its yardstick in one run:
//!
//! - one write awaited after another through `Db` (SQLite file store), KV and document,
//!   `THREADS_BENCH_WRITES` each (default 10,000);
//! - the yardstick: the same number of signed entries (built by `Writer::append` like the
//!   database's) inserted by bare sqlx into a table of the same shape (thread, log, counter,
//!   the four blocks), one transaction each (`BEGIN`, one `INSERT`, `COMMIT`), on a SQLite
//!   file with the same settings (WAL, synchronous NORMAL);
//! - 64 concurrent writers on one thread, KV and then documents, the rate of acknowledged
//!   writes.
//!
//! Before each phase the files of the phases before are synced to disk (`settle`), so that
//! the kernel's write-back of their pages does not run during it.
//!
//! Run with `cargo bench -p threads-db --bench write` (`THREADS_BENCH_ONLY=concurrent`
//! runs the concurrent KV writers alone, for a profiler; `concurrent-docs` the concurrent
//! document writers; `docs` the document writes one after another). Prints the median and 99th percentile of per-write
//! latency, rates, and the ratio of each to the yardstick.
#![allow(clippy::print_stdout, missing_docs)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use threads_crypto::{Identity, ThreadKey};
use threads_db::{Db, DbConfig};
use threads_id::{ThreadId, Variant};
use threads_log::{Hlc, Writer, skip_target};

fn writes() -> usize {
    std::env::var("THREADS_BENCH_WRITES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The 99th percentile of `samples` (sorted by [`median`]).
fn p99(samples: &[Duration]) -> Duration {
    samples[samples.len() * 99 / 100]
}

/// Bare sqlx: BEGIN, one INSERT of a signed entry's blocks, COMMIT, per entry.
async fn yardstick(dir: &std::path::Path, n: usize) -> (f64, Duration) {
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("yardstick.db").display()))
            .expect("options")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
    // The pool as the store sets it up: no test of the connection on acquire.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .expect("pool");
    sqlx::query::<sqlx::Sqlite>(
        "CREATE TABLE entries (thread BLOB NOT NULL, log BLOB NOT NULL, counter INTEGER NOT NULL,
         record BLOB NOT NULL, event BLOB NOT NULL, header BLOB NOT NULL, body BLOB NOT NULL,
         PRIMARY KEY (thread, log, counter))",
    )
    .execute(&pool)
    .await
    .expect("table");
    let thread = ThreadId::new(Variant::Raw);
    let key = ThreadKey::generate();
    let writer = Writer::new(Identity::generate(), thread, &key).expect("writer");
    let payload = b"a key-value put of about this size".to_vec();
    let mut head = None;
    let mut cids = Vec::with_capacity(n);
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n as u64 {
        let t = Instant::now();
        let skip = skip_target(i + 1).map(|t| cids[t as usize - 1]);
        let appended = writer
            .append(head.as_ref(), skip, &payload, Hlc::new(i + 1, 0))
            .expect("append");
        cids.push(*appended.record.cid());
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query::<sqlx::Sqlite>("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(thread.to_bytes().to_vec())
            .bind(writer.log_id().to_bytes())
            .bind(i as i64 + 1)
            .bind(appended.entry.record.data())
            .bind(appended.entry.event.data())
            .bind(appended.entry.header.data())
            .bind(appended.entry.body.data())
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        head = Some(appended.record.head());
        samples.push(t.elapsed());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    (rate, median(&mut samples))
}

async fn open(dir: &std::path::Path, name: &str) -> Db<threads_store::SqliteStore> {
    Db::open_sqlite(
        dir.join(format!("{name}.db")),
        Identity::generate(),
        DbConfig::default(),
    )
    .await
    .expect("db")
}

/// One write awaited after another.
async fn sequential(dir: &std::path::Path, n: usize, docs: bool) -> (f64, Duration, Duration) {
    let db = open(dir, if docs { "docs" } else { "kv" }).await;
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    if docs {
        db.transaction(thread)
            .create_collection("notes", &json!({"type": "object"}))
            .commit()
            .await
            .expect("collection");
    }
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let tx = db.transaction(thread);
        let tx = if docs {
            tx.create(
                "notes",
                &format!("n{i}"),
                &json!({"text": "a note", "i": i}),
            )
        } else {
            tx.put(format!("key{i}").as_bytes(), b"a value")
        };
        tx.commit().await.expect("write");
        samples.push(t.elapsed());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    db.shutdown().await;
    let median = median(&mut samples);
    (rate, median, p99(&samples))
}

/// `writers` tasks writing at once, `n` writes in all (documents, or KV puts).
async fn concurrent(dir: &std::path::Path, n: usize, writers: usize, docs: bool) -> f64 {
    let db = open(
        dir,
        if docs {
            "concurrent-docs"
        } else {
            "concurrent"
        },
    )
    .await;
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    if docs {
        db.transaction(thread)
            .create_collection("notes", &json!({"type": "object"}))
            .commit()
            .await
            .expect("collection");
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let db = db.clone();
        tasks.spawn(async move {
            for i in 0..n / writers {
                let tx = db.transaction(thread);
                let tx = if docs {
                    tx.create(
                        "notes",
                        &format!("w{w}/{i}"),
                        &json!({"text": "a note", "i": i}),
                    )
                } else {
                    tx.put(format!("w{w}/{i}").as_bytes(), b"a value")
                };
                tx.commit().await.expect("write");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer");
    }
    let rate = (n / writers * writers) as f64 / started.elapsed().as_secs_f64();
    db.shutdown().await;
    rate
}

/// Writes the files of the phases before to disk, so that the next phase does not share
/// the machine with the kernel writing back their pages (each phase writes tens of
/// megabytes, which the kernel otherwise flushes a few seconds later, in the middle of the
/// next phase).
fn settle(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        // A store's side files come and go as it closes.
        match std::fs::File::open(&path).and_then(|f| f.sync_all()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound && path.is_file() => {
                panic!("sync {}: {e}", path.display())
            }
            _ => {}
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let n = writes();
        let dir = tempfile::tempdir().expect("dir");
        if std::env::var("THREADS_BENCH_ONLY").as_deref() == Ok("concurrent") {
            // For a profiler: the concurrent writers alone.
            let rate = concurrent(dir.path(), n.max(64), 64, false).await;
            println!("Db KV writes, 64 concurrent writers: {rate:.0} writes/s");
            return;
        }
        if std::env::var("THREADS_BENCH_ONLY").as_deref() == Ok("concurrent-docs") {
            let rate = concurrent(dir.path(), n.max(64), 64, true).await;
            println!("Db document writes, 64 concurrent writers: {rate:.0} writes/s");
            return;
        }
        if std::env::var("THREADS_BENCH_ONLY").as_deref() == Ok("docs") {
            // For a profiler: the document writes alone.
            let (rate, median, p99) = sequential(dir.path(), n, true).await;
            println!(
                "Db document write, awaited one after another: {rate:.0} writes/s, median {median:?}, p99 {p99:?}"
            );
            return;
        }
        let (yard_rate, yard_median) = yardstick(dir.path(), n).await;
        println!(
            "yardstick (sign + bare sqlx BEGIN/INSERT/COMMIT): {yard_rate:.0} writes/s, median {yard_median:?}"
        );
        settle(dir.path());
        let (kv_rate, kv_median, kv_p99) = sequential(dir.path(), n, false).await;
        println!(
            "Db KV write, awaited one after another: {kv_rate:.0} writes/s, median {kv_median:?}, p99 {kv_p99:?}, {:.2} of the yardstick",
            kv_rate / yard_rate
        );
        settle(dir.path());
        let (doc_rate, doc_median, doc_p99) = sequential(dir.path(), n, true).await;
        println!(
            "Db document write, awaited one after another: {doc_rate:.0} writes/s, median {doc_median:?}, p99 {doc_p99:?}, {:.2} of the yardstick",
            doc_rate / yard_rate
        );
        settle(dir.path());
        let rate = concurrent(dir.path(), n.max(64), 64, false).await;
        println!(
            "Db KV writes, 64 concurrent writers: {rate:.0} writes/s, {:.2} of the yardstick",
            rate / yard_rate
        );
        settle(dir.path());
        let rate = concurrent(dir.path(), n.max(64), 64, true).await;
        println!(
            "Db document writes, 64 concurrent writers: {rate:.0} writes/s, {:.2} of the yardstick",
            rate / yard_rate
        );
    });
}
