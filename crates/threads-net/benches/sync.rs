//! Benchmark of replication on loopback, side by side with local verification in one run:
//!
//! - catching up a 10,000- and a 100,000-entry log between two peers (SQLite stores) vs
//!   verifying the same entries locally (target: sync at least half the verification rate,
//!   0.6 of it at 100,000 entries);
//! - the receiving peer's peak memory at 100,000 vs 10,000 entries (target: at most 1.5x),
//!   measured in a child process that does nothing but receive;
//! - live push latency, append on one peer to stored on the other (median, 99th percentile;
//!   target median under 5 ms).
//!
//! Run with `cargo bench -p threads-net --bench sync`.
#![allow(clippy::print_stdout)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadAddr, ThreadId, Variant};
use threads_log::{Appended, Hlc, Verifier, Writer, skip_target};
use threads_net::{NetConfig, Node};
use threads_store::{LogBook, MemoryStore, Page, SqliteStore, ThreadBook};

fn thread_and_key() -> (ThreadId, ThreadKey) {
    let key = ThreadKey::new(
        threads_crypto::ServiceKey::from_bytes([2; 32]),
        threads_crypto::ReadKey::from_bytes([3; 32]),
    );
    (ThreadId::from_parts(Variant::Raw, [1; 32]), key)
}

fn writer() -> Writer {
    let (thread, key) = thread_and_key();
    Writer::new(Identity::from_secret_bytes(&[4; 32]), thread, &key).expect("writer")
}

fn config() -> NetConfig {
    NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")])
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The child: start a node on a fresh store, pull everything from `addr`, print the time
/// and the peak memory.
async fn receive(addr: &str, db: &str) {
    let (thread, key) = thread_and_key();
    let store = Arc::new(SqliteStore::open(db).await.expect("open"));
    store.put_thread(thread, &key).await.expect("thread");
    let node = Node::start(&Identity::from_secret_bytes(&[9; 32]), store, config())
        .await
        .expect("start");
    let addr: ThreadAddr = addr.parse().expect("thread address");
    let started = Instant::now();
    let stored = node.pull(&addr).await.expect("pull");
    let elapsed = started.elapsed();
    println!(
        "received {stored} {} {}",
        elapsed.as_secs_f64(),
        peak_rss_kib()
    );
}

/// Fills a SQLite store with `n` entries of one log.
async fn sender_store(path: &std::path::Path, n: usize) -> Arc<SqliteStore> {
    let (thread, key) = thread_and_key();
    let writer = writer();
    let store = Arc::new(SqliteStore::open(path).await.expect("open"));
    store.put_thread(thread, &key).await.expect("thread");
    let mut batch: Vec<Appended> = Vec::with_capacity(1_000);
    let mut head = None;
    let mut recent = std::collections::HashMap::new();
    for i in 0..n {
        let counter = i as u64 + 1;
        let prev = batch.last().map(|a| a.record.head()).or(head);
        let skip = match skip_target(counter) {
            None => None,
            Some(t) => match recent.get(&t) {
                Some(cid) => Some(*cid),
                None => store
                    .record_cid(thread, writer.log_id(), t)
                    .await
                    .expect("cid"),
            },
        };
        let a = writer
            .append(prev.as_ref(), skip, &[7u8; 256], Hlc::new(counter, 0))
            .expect("append");
        recent.insert(counter, *a.record.cid());
        batch.push(a);
        if batch.len() == 1_000 || i + 1 == n {
            head = Some(
                store
                    .append(thread, writer.log_id(), head, &batch)
                    .await
                    .expect("store")
                    .head(),
            );
            batch.clear();
            recent.retain(|c, _| *c + 2_000 > counter);
        }
    }
    store
}

/// Verifies the stored log locally, entry by entry as a follower would, and returns
/// entries per second (time spent verifying only).
async fn local_verify_rate(store: &SqliteStore, n: usize) -> f64 {
    let (thread, key) = thread_and_key();
    let log = writer().log_id();
    let verifier = Verifier::new(thread, log, &key.to_follower()).expect("verifier");
    let mut prev = None;
    let mut after = 0;
    let mut spent = Duration::ZERO;
    loop {
        let page = store
            .entries_after(thread, log, after, Page::new(1_000, 8 << 20))
            .await
            .expect("read");
        let Some(last) = page.last() else { break };
        after = last.counter;
        let started = Instant::now();
        for stored in &page {
            let record = verifier
                .verify_follower_entry(prev.as_ref(), &stored.entry)
                .expect("valid");
            prev = Some(record.head());
        }
        spent += started.elapsed();
    }
    n as f64 / spent.as_secs_f64()
}

async fn catch_up(n: usize, dir: &std::path::Path) -> (f64, f64, u64) {
    let (thread, _) = thread_and_key();
    let store = sender_store(&dir.join(format!("sender-{n}.db")), n).await;
    let verify = local_verify_rate(&store, n).await;
    let sender = Node::start(&Identity::from_secret_bytes(&[8; 32]), store, config())
        .await
        .expect("start");
    let addr = sender.thread_addr(thread).expect("addr").to_string();
    let db = dir.join(format!("receiver-{n}.db"));
    let output = Command::new(std::env::current_exe().expect("exe"))
        .args(["receive", &addr, &db.to_string_lossy()])
        .output()
        .expect("run the receiver");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("received "))
        .unwrap_or_else(|| {
            panic!(
                "receiver failed: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[1].parse::<usize>().expect("count"), n);
    let seconds: f64 = parts[2].parse().expect("seconds");
    let rss: u64 = parts[3].parse().expect("rss");
    sender.shutdown().await;
    (n as f64 / seconds, verify, rss)
}

async fn push_latency() -> (f64, f64) {
    let (thread, key) = thread_and_key();
    let a = Node::start(
        &Identity::from_secret_bytes(&[10; 32]),
        Arc::new(MemoryStore::new()),
        config(),
    )
    .await
    .expect("start");
    let b = Node::start(
        &Identity::from_secret_bytes(&[11; 32]),
        Arc::new(MemoryStore::new()),
        config(),
    )
    .await
    .expect("start");
    for n in [&a, &b] {
        n.store().put_thread(thread, &key).await.expect("thread");
    }
    a.add_peer(b.thread_addr(thread).expect("addr"));
    let writer = writer();
    let log = writer.log_id();
    let mut head = None;
    let mut samples = Vec::new();
    for i in 0..1_100u64 {
        let counter = i + 1;
        let skip = match skip_target(counter) {
            Some(t) => a.store().record_cid(thread, log, t).await.expect("cid"),
            None => None,
        };
        let started = Instant::now();
        let entry = writer
            .append(head.as_ref(), skip, &[7u8; 256], Hlc::new(counter, 0))
            .expect("append");
        a.store()
            .append(thread, log, head, std::slice::from_ref(&entry))
            .await
            .expect("store");
        let pushed = a
            .push(thread, log, std::slice::from_ref(&entry.entry))
            .await
            .expect("push");
        let elapsed = started.elapsed();
        assert_eq!(pushed, 1);
        head = Some(entry.record.head());
        if i >= 100 {
            samples.push(elapsed.as_secs_f64() * 1e3);
        }
    }
    assert_eq!(b.store().head(thread, log).await.expect("head"), head);
    samples.sort_by(f64::total_cmp);
    a.shutdown().await;
    b.shutdown().await;
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("receive") {
        receive(&args[2], &args[3]).await;
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    println!("entries of a 256-byte payload, one log, SQLite stores on both peers\n");
    let mut rss = Vec::new();
    for n in [10_000usize, 100_000] {
        let (sync, verify, peak) = catch_up(n, dir.path()).await;
        println!(
            "catch up {n:>7} entries: sync {sync:>8.0}/s, local follower verification {verify:>8.0}/s, ratio {:.2} (target >= {}); receiver peak RSS {} MiB",
            sync / verify,
            if n >= 100_000 { "0.6" } else { "0.5" },
            peak / 1024
        );
        rss.push(peak);
    }
    println!(
        "receiver peak memory 100k / 10k: {:.2} (target <= 1.5)",
        rss[1] as f64 / rss[0] as f64
    );
    let (median, p99) = push_latency().await;
    println!(
        "push latency (append on A to stored on B), 1,000 samples: median {median:.2} ms, p99 {p99:.2} ms (target median < 5 ms)"
    );
}
