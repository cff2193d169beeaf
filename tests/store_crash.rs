//! Crash safety of the SQLite store: a writer process is killed with SIGKILL at random
//! moments while it appends; after each kill the store must open, hold every append the
//! writer saw acknowledged, show no partial entry, and its head must point to a fully
//! stored record whose whole log verifies.
//!
//! Rounds: `THREADS_CRASH_ROUNDS` (default 6; `cargo xtask crash` runs more).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use threads_log::Verifier;
use threads_store::{LogBook, Page, SqliteStore};

/// Reads the writer's acknowledgements until `acks` of them arrived, then kills it.
fn run_and_kill(path: &std::path::Path, seed: u64, acks: usize, extra_delay_us: u64) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(path)
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    // Keep reading in the background so the writer never blocks or sees a closed pipe: it
    // must die by the signal, in the middle of whatever it was doing.
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let ack = line
                .strip_prefix("ack ")
                .and_then(|n| n.parse().ok())
                .expect("an ack line");
            if tx.send(ack).is_err() {
                break;
            }
        }
    });
    let mut last_ack = 0;
    for _ in 0..acks {
        last_ack = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer acknowledges appends");
    }
    std::thread::sleep(Duration::from_micros(extra_delay_us));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader thread");
    // The last acknowledgement the writer printed before it died.
    rx.try_iter().last().unwrap_or(last_ack)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    let rounds: usize = std::env::var("THREADS_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let (thread, key, identity) = threads_tests::crash_fixture();
    let log = identity.log_id();
    let verifier = Verifier::new(thread, log, &key).expect("verifier");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acknowledged = 0u64;
    for round in 0..rounds {
        let acks = rng.random_range(1..60usize);
        let delay = rng.random_range(0..3_000u64);
        let last_ack = run_and_kill(&path, seed.wrapping_add(round as u64), acks, delay);
        assert!(
            last_ack >= acknowledged,
            "round {round} (seed {seed}): the writer went backwards"
        );
        acknowledged = last_ack;

        let store = SqliteStore::open(&path)
            .await
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen failed: {e}"));
        let head = store
            .head(thread, log)
            .await
            .expect("head")
            .expect("a head");
        assert!(
            head.counter >= acknowledged,
            "round {round} (seed {seed}): acknowledged {acknowledged}, head {}",
            head.counter
        );
        // Every entry up to the head is there, whole, and the log verifies from genesis.
        let mut prev = None;
        let mut after = 0;
        loop {
            let page = store
                .entries_after(thread, log, after, Page::new(500, 1 << 20))
                .await
                .expect("read");
            if page.is_empty() {
                break;
            }
            for stored in page {
                let record = verifier
                    .verify_follower(prev.as_ref(), &stored.entry.record, &stored.entry.event)
                    .unwrap_or_else(|e| {
                        panic!("round {round} (seed {seed}): entry {}: {e}", stored.counter)
                    });
                verifier
                    .read(
                        &record,
                        &stored.entry.event,
                        &stored.entry.header,
                        &stored.entry.body,
                    )
                    .unwrap_or_else(|e| {
                        panic!("round {round} (seed {seed}): entry {}: {e}", stored.counter)
                    });
                assert_eq!(record.counter(), stored.counter);
                prev = Some(record.head());
                after = stored.counter;
            }
        }
        assert_eq!(
            prev,
            Some(head),
            "round {round} (seed {seed}): the head is not the last stored entry"
        );
        assert_eq!(
            store
                .record_cid(thread, log, head.counter)
                .await
                .expect("read"),
            Some(head.cid)
        );
        store.close().await;
    }
    assert!(acknowledged > 0, "the writer never acknowledged an append");
}
