//! Benchmark of the view engine on a SQLite store, side by side with its limit in one run:
//!
//! - rebuilding a key-value view from a stored thread of 1,000,000 events (4 logs, puts
//!   over 100,000 keys), as events per second, vs reading, decrypting and decoding the
//!   same events without applying them (target: the rebuild reaches a third of it);
//! - the latency of applying one new event to that view (write excluded), median of 200.
//!
//! Run with `cargo bench -p threads-views --bench views`; `THREADS_BENCH_EVENTS` changes
//! the number of events.
#![allow(clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{LogId, ThreadId, Variant};
use threads_log::{Appended, Cid, Head, Hlc, Verifier, Writer, skip_target};
use threads_store::{LogBook, Page, SqliteStore, ThreadBook, write_local};
use threads_views::{Batch, Kv, ViewConfig, Views};

const LOGS: usize = 4;
const KEYS: u64 = 100_000;
const CHUNK: usize = 5_000;

fn payload(log: usize, counter: u64) -> Vec<u8> {
    let key = (counter.wrapping_mul(2_654_435_761) ^ log as u64) % KEYS;
    let key = format!("key-{key:010}");
    Batch::new()
        .with("kv", Kv::put(key.as_bytes(), &[counter as u8; 32]))
        .encode()
}

/// Appends `n` more entries to a log whose record CIDs so far are `cids`.
fn chunk(writer: &Writer, log: usize, cids: &mut Vec<Cid>, n: usize) -> Vec<Appended> {
    let mut out: Vec<Appended> = Vec::with_capacity(n);
    for _ in 0..n {
        let counter = cids.len() as u64 + 1;
        let prev = cids.last().map(|cid| Head {
            cid: *cid,
            counter: counter - 1,
        });
        let skip = skip_target(counter).map(|t| cids[t as usize - 1]);
        let appended = writer
            .append(
                prev.as_ref(),
                skip,
                &payload(log, counter),
                Hlc::new(counter * 4 + log as u64, 0),
            )
            .expect("append");
        cids.push(*appended.record.cid());
        out.push(appended);
    }
    out
}

async fn fill(store: &SqliteStore, thread: ThreadId, key: &ThreadKey, events: usize) -> Vec<LogId> {
    let writers: Vec<Arc<Writer>> = (0..LOGS)
        .map(|i| {
            Arc::new(
                Writer::new(
                    Identity::from_secret_bytes(&[40 + i as u8; 32]),
                    thread,
                    key,
                )
                .expect("writer"),
            )
        })
        .collect();
    let mut cids: Vec<Vec<Cid>> = vec![Vec::new(); LOGS];
    let per_log = events / LOGS;
    let mut written = 0;
    while written < per_log {
        let n = CHUNK.min(per_log - written);
        // Build the next chunk of every log in parallel, then store them.
        let handles: Vec<_> = (0..LOGS)
            .map(|i| {
                let writer = Arc::clone(&writers[i]);
                let mut mine = std::mem::take(&mut cids[i]);
                std::thread::spawn(move || {
                    let out = chunk(&writer, i, &mut mine, n);
                    (mine, out)
                })
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            let (mine, out) = handle.join().expect("builder");
            let expected = out[0].record.prev().map(|cid| Head {
                cid: *cid,
                counter: out[0].record.counter() - 1,
            });
            for batch in out.chunks(1_000) {
                let expected = if batch[0].record.counter() == out[0].record.counter() {
                    expected
                } else {
                    Some(Head {
                        cid: *batch[0].record.prev().expect("prev"),
                        counter: batch[0].record.counter() - 1,
                    })
                };
                store
                    .append(thread, writers[i].log_id(), expected, batch)
                    .await
                    .expect("store");
            }
            cids[i] = mine;
        }
        written += n;
    }
    writers.iter().map(|w| w.log_id()).collect()
}

/// Reads, decrypts and decodes every event (batch and operation) without applying it.
async fn raw_rate(
    store: &SqliteStore,
    thread: ThreadId,
    key: &ThreadKey,
    logs: &[LogId],
) -> (u64, Duration) {
    let started = Instant::now();
    let mut n = 0u64;
    for &log in logs {
        let verifier = Verifier::new(thread, log, key).expect("verifier");
        let mut after = 0;
        loop {
            let page = store
                .entries_after(thread, log, after, Page::new(512, 16 << 20))
                .await
                .expect("read");
            let Some(last) = page.last() else { break };
            after = last.counter;
            for stored in &page {
                let read = verifier.read_stored(&stored.entry).expect("read");
                let batch = Batch::decode(&read.payload.expect("body")).expect("batch");
                for (_, op) in batch.ops() {
                    std::hint::black_box(Kv::decode(op).expect("op"));
                }
                n += 1;
            }
        }
    }
    (n, started.elapsed())
}

fn main() {
    let events: usize = std::env::var("THREADS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(SqliteStore::open(dir.path().join("views.db")).await.expect("open"));
        let thread = ThreadId::from_parts(Variant::Raw, [9; 32]);
        let key = ThreadKey::new(ServiceKey::from_bytes([1; 32]), ReadKey::from_bytes([2; 32]));
        store.put_thread(thread, &key).await.expect("thread");
        let started = Instant::now();
        let logs = fill(&store, thread, &key, events).await;
        println!("stored {events} events in {:.1} s", started.elapsed().as_secs_f64());

        let mut raw = Vec::new();
        let mut rebuild = Vec::new();
        for run in 0..3 {
            let (n, took) = raw_rate(&store, thread, &key, &logs).await;
            raw.push(n as f64 / took.as_secs_f64());
            let mut views = Views::open_scope(
                Arc::clone(&store),
                thread,
                &format!("bench-{run}"),
                vec![Arc::new(Kv::new("kv"))],
                ViewConfig::new(),
            )
            .await
            .expect("open");
            let started = Instant::now();
            let progress = views.catch_up().await.expect("rebuild");
            let took = started.elapsed();
            assert_eq!(progress.applied as usize, events / LOGS * LOGS);
            rebuild.push(progress.applied as f64 / took.as_secs_f64());
            let keys = views
                .read("kv", |state| Kv::list(state).count())
                .await
                .expect("read");
            println!(
                "run {run}: raw read+decrypt+decode {:.0} events/s, KV rebuild {:.0} events/s ({keys} keys)",
                raw[run],
                rebuild[run],
            );
            if run == 2 {
                // Incremental apply of one event on top of the full view.
                let writer = Writer::new(Identity::from_secret_bytes(&[40; 32]), thread, &key)
                    .expect("writer");
                let mut latencies = Vec::new();
                let base = (events as u64) * 8;
                for i in 0..200u64 {
                    let payload = Batch::new().with("kv", Kv::put(b"hot", &i.to_be_bytes())).encode();
                    write_local(&*store, &writer, &payload, Hlc::new(base + i, 0))
                        .await
                        .expect("write");
                    let started = Instant::now();
                    let progress = views.catch_up().await.expect("apply");
                    latencies.push(started.elapsed().as_secs_f64() * 1e6);
                    assert_eq!(progress.applied, 1);
                }
                latencies.sort_by(f64::total_cmp);
                println!(
                    "incremental apply of one event: median {:.0} us, p99 {:.0} us",
                    latencies[latencies.len() / 2],
                    latencies[latencies.len() * 99 / 100]
                );
            }
        }
        raw.sort_by(f64::total_cmp);
        rebuild.sort_by(f64::total_cmp);
        println!(
            "median: raw {:.0} events/s, rebuild {:.0} events/s, ratio {:.2} (target >= 0.33)",
            raw[1],
            rebuild[1],
            rebuild[1] / raw[1]
        );
    });
}
