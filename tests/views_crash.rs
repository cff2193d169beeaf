//! Crash safety of the views: a process that writes events and applies views (with
//! rewinds of an order-sensitive view) is killed with SIGKILL at random moments; after each
//! kill, the views it left, caught up, equal a fresh rebuild from the logs: no event was
//! lost or applied twice.
//!
//! On SQLite and on PostgreSQL (a throwaway server). Rounds: `THREADS_CRASH_ROUNDS`
//! (default 6).

#[path = "../crates/threads-store/tests/support/pg_server.rs"]
mod pg_server;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use threads_store::{PostgresStore, SqliteStore, Store};
use threads_views::{ViewConfig, Views};

fn run_and_kill(path: &std::ffi::OsStr, seed: u64, acks: usize, extra_delay_us: u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_views-crash-writer"))
        .arg(path)
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            assert!(line.starts_with("ack "), "unexpected output {line:?}");
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    for _ in 0..acks {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the writer makes progress");
    }
    std::thread::sleep(Duration::from_micros(extra_delay_us));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader thread");
}

fn rounds() -> usize {
    std::env::var("THREADS_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6)
}

/// Kills the writer `rounds` times at random moments; after each kill, the views it left
/// (opened with `open`), caught up, equal a fresh replay in a new scope.
async fn kill_and_check<S, F, Fut>(target: &std::ffi::OsStr, rounds: usize, open: F)
where
    S: Store + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<S>>,
{
    let (thread, _, _) = threads_tests::crash_fixture();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // As the writer: a 200 ms undo horizon and a 4 KiB cache.
    let config = ViewConfig::new()
        .with_commit_every(7)
        .with_undo_horizon_ms(200)
        .with_cache_bytes(4096);
    for round in 0..rounds {
        let acks = rng.random_range(1..40usize);
        let delay = rng.random_range(0..5_000u64);
        run_and_kill(target, seed.wrapping_add(round as u64), acks, delay);

        let store = open().await;
        let mut resumed = Views::open(
            Arc::clone(&store),
            thread,
            threads_tests::crash_views(),
            config,
        )
        .await
        .unwrap_or_else(|e| panic!("round {round} (seed {seed}): open failed: {e}"));
        resumed.catch_up().await.expect("catch up");
        let mut fresh = Views::open_scope(
            Arc::clone(&store),
            thread,
            &format!("check-{round}"),
            threads_tests::crash_views(),
            ViewConfig::new(),
        )
        .await
        .expect("open");
        let progress = fresh.catch_up().await.expect("catch up");
        assert!(progress.applied > 0);
        assert_eq!(
            resumed.digest().await.expect("digest"),
            fresh.digest().await.expect("digest"),
            "round {round} (seed {seed}): resumed views differ from a rebuild"
        );
        assert_eq!(resumed.cursor(), fresh.cursor());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("views.db");
    kill_and_check(path.as_os_str(), rounds(), || async {
        Arc::new(SqliteStore::open(&path).await.expect("reopen"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_survive_sigkill_on_postgres() {
    let server = pg_server::PgServer::start();
    let url = server.fresh_database().await;
    kill_and_check(std::ffi::OsStr::new(&url), rounds(), || async {
        Arc::new(PostgresStore::connect(&url).await.expect("connect"))
    })
    .await;
}
