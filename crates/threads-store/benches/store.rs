//! Benchmark of the SQLite store, side by side with its physical limit in one run:
//!
//! - appending entries in batches of 1,000 vs bare sqlx inserts of the same bytes into one
//!   table, 1,000 rows per transaction (target: at least half the bare rate);
//! - one-entry appends (one transaction each);
//! - reading a 100,000-entry log back oldest first (target: at least 100,000 entries/s).
//!
//! Run with `cargo bench -p threads-store --bench store`. Prints medians of several runs.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_store::{LogBook, Page, SqliteStore, ThreadBook};

const BATCH: usize = 1_000;
const BATCHES: usize = 20;
const READ_LOG: usize = 100_000;
const RUNS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn entries(writer: &Writer, n: usize) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::with_capacity(n);
    for i in 0..n {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        log.push(
            writer
                .append(prev.as_ref(), skip, &[7u8; 256], Hlc::new(i as u64, 0))
                .expect("append"),
        );
    }
    log
}

async fn bare_inserts(path: &std::path::Path, log: &[Appended]) -> Duration {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open");
    sqlx::raw_sql(
        "CREATE TABLE bare (id INTEGER PRIMARY KEY, log INTEGER, counter INTEGER, record_cid BLOB, \
         record BLOB, event BLOB, header BLOB, body BLOB)",
    )
    .execute(&pool)
    .await
    .expect("create");
    let started = Instant::now();
    for chunk in log.chunks(BATCH) {
        let mut tx = pool.begin().await.expect("begin");
        for a in chunk {
            sqlx::query("INSERT INTO bare (log, counter, record_cid, record, event, header, body) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(1i64)
                .bind(a.record.counter() as i64)
                .bind(a.record.cid().to_bytes())
                .bind(a.entry.record.data())
                .bind(a.entry.event.data())
                .bind(a.entry.header.data())
                .bind(a.entry.body.data())
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    let elapsed = started.elapsed();
    pool.close().await;
    elapsed
}

async fn store_appends(
    path: &std::path::Path,
    thread: ThreadId,
    key: &ThreadKey,
    writer: &Writer,
    log: &[Appended],
    batch: usize,
) -> Duration {
    let store = SqliteStore::open(path).await.expect("open");
    store.put_thread(thread, key).await.expect("thread");
    let started = Instant::now();
    let mut head = None;
    for chunk in log.chunks(batch) {
        head = Some(
            store
                .append(thread, writer.log_id(), head, chunk)
                .await
                .expect("append")
                .head(),
        );
    }
    let elapsed = started.elapsed();
    store.close().await;
    elapsed
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. a filter) is ignored.
    let dir = tempfile::tempdir().expect("tempdir");
    let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
    let key = ThreadKey::new(
        ServiceKey::from_bytes([2; 32]),
        ReadKey::from_bytes([3; 32]),
    );
    let writer = Writer::new(Identity::from_secret_bytes(&[4; 32]), thread, &key).expect("writer");
    let log = entries(&writer, READ_LOG);
    let batch_log = &log[..BATCH * BATCHES];
    let bytes_per_entry = log[0]
        .entry
        .blocks()
        .iter()
        .map(|b| b.data().len())
        .sum::<usize>();
    println!("entries of {bytes_per_entry} bytes (256-byte payload); {RUNS} runs each, medians\n");

    let mut bare = Vec::new();
    let mut ours = Vec::new();
    for run in 0..RUNS {
        // Alternate, so drift in the machine affects both alike.
        let t = bare_inserts(&dir.path().join(format!("bare-{run}.db")), batch_log).await;
        bare.push(batch_log.len() as f64 / t.as_secs_f64());
        let t = store_appends(
            &dir.path().join(format!("batch-{run}.db")),
            thread,
            &key,
            &writer,
            batch_log,
            BATCH,
        )
        .await;
        ours.push(batch_log.len() as f64 / t.as_secs_f64());
    }
    let (bare, ours) = (median(bare), median(ours));
    println!("bare sqlx inserts, 1,000 rows per transaction : {bare:>10.0} rows/s");
    println!(
        "store append, batches of 1,000               : {ours:>10.0} entries/s  ({:.2}x of bare; target >= 0.5)",
        ours / bare
    );

    let mut single = Vec::new();
    for run in 0..RUNS {
        let n = 2_000;
        let t = store_appends(
            &dir.path().join(format!("single-{run}.db")),
            thread,
            &key,
            &writer,
            &log[..n],
            1,
        )
        .await;
        single.push(t.as_secs_f64() * 1e6 / n as f64);
    }
    println!(
        "store append, one entry per transaction       : {:>10.1} us per append",
        median(single)
    );

    let path = dir.path().join("read.db");
    store_appends(&path, thread, &key, &writer, &log, BATCH).await;
    let store = SqliteStore::open(&path).await.expect("open");
    let mut reads = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut after = 0;
        let mut count = 0usize;
        loop {
            let page = store
                .entries_after(thread, writer.log_id(), after, Page::new(1_000, 4 << 20))
                .await
                .expect("read");
            let Some(last) = page.last() else { break };
            after = last.counter;
            count += page.len();
        }
        assert_eq!(count, READ_LOG);
        reads.push(count as f64 / started.elapsed().as_secs_f64());
    }
    println!(
        "read a {READ_LOG}-entry log, oldest first     : {:>10.0} entries/s (target >= 100,000)",
        median(reads)
    );
}
