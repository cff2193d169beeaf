//! The core property of views: every replica holding the same events ends with
//! byte-identical views, whatever order, batching and duplication the events arrived in,
//! with late events within and beyond the undo horizon and a cache small enough to be
//! evicted at every commit; a rebuild equals the incremental result; compaction changes
//! no view. On the memory store (most cases), SQLite files and PostgreSQL (a throwaway
//! server).

#[path = "../../threads-store/tests/support/pg_server.rs"]
mod pg_server;
mod support;

use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};
use threads_log::{Appended, Hlc};
use threads_store::{MemoryStore, PostgresStore, SqliteStore, Store};
use threads_views::{Batch, Kv, Reducer, ViewConfig, Views};

use support::{Chain, build, thread, writer};

/// One generated operation.
#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Del(u8),
    Chain(u8),
    BadKv,
    BadChain,
    /// Refused by the chain after an odd count: whether it applies depends on order.
    Flaky,
}

/// One generated event: how far its time moves on (0 = not increasing, refused), how
/// its logical part is set, and its operations (or a payload that is not a batch).
#[derive(Debug, Clone)]
struct Ev {
    step: u64,
    logical: u32,
    ops: Option<Vec<Op>>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..6).prop_map(Op::Del),
        4 => any::<u8>().prop_map(Op::Chain),
        1 => Just(Op::BadKv),
        1 => Just(Op::BadChain),
        3 => Just(Op::Flaky),
    ]
}

fn event() -> impl Strategy<Value = Ev> {
    (
        prop_oneof![1 => Just(0u64), 8 => 1u64..4],
        0u32..2,
        prop_oneof![1 => Just(None), 12 => prop::collection::vec(op(), 1..4).prop_map(Some)],
    )
        .prop_map(|(step, logical, ops)| Ev { step, logical, ops })
}

fn payload(ops: &Option<Vec<Op>>) -> Vec<u8> {
    let Some(ops) = ops else {
        return b"not a batch".to_vec();
    };
    let mut batch = Batch::new();
    for op in ops {
        match op {
            Op::Put(k, v) => batch.push("kv", Kv::put(&[*k], &[*v])),
            Op::Del(k) => batch.push("kv", Kv::del(&[*k])),
            Op::Chain(b) => batch.push("chain", vec![*b]),
            Op::BadKv => batch.push("kv", vec![0xFF, 0x00]),
            Op::BadChain => batch.push("chain", vec![0xFF]),
            Op::Flaky => batch.push("chain", vec![0xF0]),
        }
    }
    batch.encode()
}

fn reducers() -> Vec<Arc<dyn Reducer>> {
    vec![Arc::new(Kv::new("kv")), Arc::new(Chain)]
}

/// How a replica runs: its undo horizon (event times span about 100 ms here, so a short
/// horizon sends late events to a rebuild) and its cache budget (0: evicted at every
/// commit, so reads go to the store).
#[derive(Debug, Clone, Copy)]
struct Setup {
    horizon_ms: u64,
    cache_bytes: usize,
    /// Events whole or not at all across the views (the same for every replica of a case).
    atomic: bool,
    /// Every view in the thread's order with undo records (may differ between replicas:
    /// only the way there differs, not the rows).
    in_order: bool,
}

fn config(setup: Setup) -> ViewConfig {
    ViewConfig::new()
        .with_undo_horizon_ms(setup.horizon_ms)
        .with_cache_bytes(setup.cache_bytes)
        .with_commit_every(3)
        .with_atomic(setup.atomic)
        .with_in_order(setup.in_order)
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![Just(u64::MAX / 4), 1u64..40],
        prop_oneof![Just(0usize), Just(300), Just(64 << 20)],
        any::<bool>(),
    )
        .prop_map(|(horizon_ms, cache_bytes, in_order)| Setup {
            horizon_ms,
            cache_bytes,
            atomic: false,
            in_order,
        })
}

const DEFAULT: Setup = Setup {
    horizon_ms: u64::MAX / 4,
    cache_bytes: 64 << 20,
    atomic: false,
    in_order: false,
};

struct Case {
    thread: threads_id::ThreadId,
    key: threads_crypto::ThreadKey,
    logs: Vec<(threads_id::LogId, Vec<Appended>)>,
}

fn make_case(logs: &[Vec<Ev>]) -> Case {
    let (thread, key) = thread(7);
    let mut out = Vec::new();
    for (i, events) in logs.iter().enumerate() {
        let w = writer(thread, &key, 10 + i as u8);
        let mut time = 100u64;
        let timed: Vec<(Hlc, Vec<u8>)> = events
            .iter()
            .map(|e| {
                time += e.step;
                (Hlc::new(time, e.logical), payload(&e.ops))
            })
            .collect();
        out.push((w.log_id(), build(&w, &timed)));
    }
    Case {
        thread,
        key,
        logs: out,
    }
}

/// Delivers every log to a fresh replica in `store` in an order, batching and duplication
/// drawn from `seed`, catching up at random moments (and compacting, if asked).
async fn replica<S: Store + 'static>(
    store: Arc<S>,
    case: &Case,
    seed: u64,
    setup: Setup,
    compact: bool,
) -> Views<S> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    store.put_thread(case.thread, &case.key).await.expect("put");
    let mut views = Views::open(Arc::clone(&store), case.thread, reducers(), config(setup))
        .await
        .expect("open");
    let mut delivered = vec![0usize; case.logs.len()];
    loop {
        let open: Vec<usize> = (0..case.logs.len())
            .filter(|&i| delivered[i] < case.logs[i].1.len())
            .collect();
        if open.is_empty() {
            break;
        }
        let i = open[rng.random_range(0..open.len())];
        let (log, entries) = &case.logs[i];
        let from = delivered[i];
        let to = (from + rng.random_range(1..4usize)).min(entries.len());
        let expected = from.checked_sub(1).map(|j| entries[j].record.head());
        store
            .append(case.thread, *log, expected, &entries[from..to])
            .await
            .expect("append");
        if rng.random_bool(0.3) {
            // A duplicate delivery of what is already stored changes nothing.
            let back = rng.random_range(0..=from);
            let expected = back.checked_sub(1).map(|j| entries[j].record.head());
            store
                .append(case.thread, *log, expected, &entries[back..to])
                .await
                .expect("duplicate");
        }
        delivered[i] = to;
        if rng.random_bool(0.5) {
            views.catch_up().await.expect("catch up");
        }
    }
    views.catch_up().await.expect("catch up");
    if compact {
        let gate = support::Voids::default();
        views.set_gate(Arc::new(gate.clone()));
        support::compact(&mut views, &gate).await;
    }
    views
}

async fn rows<S: Store + 'static>(views: &mut Views<S>, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    views
        .read(name, |state| state.iter().collect())
        .await
        .expect("view")
}

fn logs() -> impl Strategy<Value = Vec<Vec<Ev>>> {
    prop::collection::vec(prop::collection::vec(event(), 1..14), 2..4)
}

/// The property, on stores made by `store` (a fresh one for each replica).
async fn converge<S, F, Fut>(
    store: F,
    logs: &[Vec<Ev>],
    seeds: &[u64],
    setups: Vec<Setup>,
    atomic: bool,
) -> Result<(), TestCaseError>
where
    S: Store + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let setups: Vec<Setup> = setups.into_iter().map(|s| Setup { atomic, ..s }).collect();
    let case = make_case(logs);
    // The reference: everything stored first, applied once.
    let mut reference = replica(store().await, &case, 0, Setup { atomic, ..DEFAULT }, false).await;
    let expected_kv = rows(&mut reference, "kv").await;
    let expected_chain = rows(&mut reference, "chain").await;
    let expected_rejections = reference.rejections().await.expect("rejections");
    let before = reference.digest().await.expect("digest");
    if atomic {
        // An event refused by one view is refused by every view it addressed.
        for (log, events) in logs.iter().enumerate() {
            for (at, event) in events.iter().enumerate() {
                let Some(ops) = &event.ops else { continue };
                let author = case.logs[log].0;
                let counter = at as u64 + 1;
                let addressed: std::collections::BTreeSet<&str> = ops
                    .iter()
                    .map(|op| match op {
                        Op::Put(..) | Op::Del(_) | Op::BadKv => "kv",
                        _ => "chain",
                    })
                    .collect();
                let refused: std::collections::BTreeSet<&str> = expected_rejections
                    .iter()
                    .filter(|r| {
                        r.author() == author
                            && r.order.counter == counter
                            && r.view != threads_views::EVENT_LEVEL
                    })
                    .map(|r| r.view.as_str())
                    .collect();
                // Nothing of a refused event shows: the chain keeps no row of it.
                for r in expected_rejections
                    .iter()
                    .filter(|r| r.author() == author && r.order.counter == counter)
                {
                    let mut row = b"op/".to_vec();
                    row.extend_from_slice(&threads_views::encode_order(&r.order));
                    prop_assert!(
                        expected_chain.iter().all(|(k, _)| *k != row),
                        "event {}/{} was refused ({}) but the chain applied it",
                        log,
                        counter,
                        r.reason
                    );
                }
                prop_assert!(
                    refused.is_empty() || refused == addressed,
                    "event {}/{}: addressed {:?}, refused by {:?}",
                    log,
                    counter,
                    addressed,
                    refused
                );
            }
        }
    }
    let mut all = Vec::new();
    for (i, (seed, setup)) in seeds.iter().zip(&setups).enumerate() {
        let mut views = replica(store().await, &case, *seed, *setup, i == 0).await;
        prop_assert_eq!(rows(&mut views, "kv").await, expected_kv.clone());
        prop_assert_eq!(rows(&mut views, "chain").await, expected_chain.clone());
        prop_assert_eq!(
            views.rejections().await.expect("rejections"),
            expected_rejections.clone()
        );
        prop_assert_eq!(views.digest().await.expect("digest"), before);
        all.push(views);
    }
    // A full rebuild equals the incremental result; so does one after compaction.
    let mut views = all.remove(1);
    views.rebuild().await.expect("full rebuild");
    prop_assert_eq!(views.digest().await.expect("digest"), before);
    let gate = support::Voids::default();
    views.set_gate(Arc::new(gate.clone()));
    let dropped = support::compact(&mut views, &gate).await;
    views.rebuild().await.expect("rebuild after compaction");
    prop_assert_eq!(
        views.digest().await.expect("digest"),
        before,
        "compaction dropped {} bodies",
        dropped
    );
    let mut compacted = all.remove(0);
    compacted.rebuild().await.expect("rebuild");
    prop_assert_eq!(compacted.digest().await.expect("digest"), before);
    Ok(())
}

fn memory() -> impl Future<Output = Arc<MemoryStore>> {
    std::future::ready(Arc::new(MemoryStore::new()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replicas_converge_byte_for_byte(
        logs in logs(),
        seeds in prop::collection::vec(any::<u64>(), 3),
        setups in prop::collection::vec(setup(), 3),
        atomic in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(converge(memory, &logs, &seeds, setups, atomic))?;
    }
}

/// The property's strategy, for the runs on SQLite and PostgreSQL.
fn cases() -> impl Strategy<Value = (Vec<Vec<Ev>>, Vec<u64>, Vec<Setup>, bool)> {
    (
        logs(),
        prop::collection::vec(any::<u64>(), 3),
        prop::collection::vec(setup(), 3),
        any::<bool>(),
    )
}

/// Runs the property `cases` times on stores made by `store`, on a runtime of two
/// workers.
fn converge_on<S, F, Fut>(store: F, cases_run: u32, backend: &str)
where
    S: Store + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases_run));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = runner.run(&cases(), |(logs, seeds, setups, atomic)| {
        rt.block_on(converge(&store, &logs, &seeds, setups, atomic))
    }) {
        panic!("replicas do not converge on {backend}: {e}");
    }
}

/// The property on SQLite files (the store's writing connection, its scripts and its
/// ranges read back through a cache evicted at every commit).
#[test]
fn replicas_converge_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let made = std::sync::atomic::AtomicUsize::new(0);
    let store = || {
        let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("replica-{n}.db"));
        async move { Arc::new(SqliteStore::open(path).await.expect("open")) }
    };
    converge_on(store, 32, "SQLite");
}

/// The property on PostgreSQL: a database of a throwaway server for each replica.
#[test]
fn replicas_converge_on_postgres() {
    let server = pg_server::PgServer::start();
    let store = || async {
        let url = server.fresh_database().await;
        Arc::new(PostgresStore::connect(&url).await.expect("connect"))
    };
    converge_on(store, 12, "PostgreSQL");
}
