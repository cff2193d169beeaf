//! A stateful property test: random operations on a store, compared after each step with a
//! simple model (how many entries of each log's one true chain are stored).

use proptest::prelude::*;
use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_store::{AppendOutcome, MemoryStore, Page, SqliteStore, Store, StoreError};

const LOGS: usize = 3;
const CHAIN: usize = 24;

#[derive(Debug, Clone)]
enum Op {
    /// Append the next `n` entries of a log's chain after its head.
    Append { log: usize, n: usize },
    /// Append `n` entries starting after counter `from`, as if the head were still there.
    Stale { log: usize, from: usize, n: usize },
    /// Append `n` entries of a forked chain after its counter `from`.
    Fork { log: usize, from: usize, n: usize },
    /// Read a page.
    Read {
        log: usize,
        after: usize,
        max: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..LOGS, 1usize..6).prop_map(|(log, n)| Op::Append { log, n }),
        1 => (0..LOGS, 0usize..CHAIN, 1usize..6).prop_map(|(log, from, n)| Op::Stale { log, from, n }),
        1 => (0..LOGS, 0usize..CHAIN, 1usize..4).prop_map(|(log, from, n)| Op::Fork { log, from, n }),
        2 => (0..LOGS, 0usize..CHAIN, 1usize..10).prop_map(|(log, after, max)| Op::Read { log, after, max }),
    ]
}

fn chain(writer: &Writer, tag: u8) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::new();
    for i in 0..CHAIN {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        log.push(
            writer
                .append(prev.as_ref(), skip, &[tag, i as u8], Hlc::new(i as u64, 0))
                .expect("append"),
        );
    }
    log
}

struct World {
    thread: ThreadId,
    key: ThreadKey,
    writers: Vec<Writer>,
    main: Vec<Vec<Appended>>,
    forks: Vec<Vec<Appended>>,
}

fn world() -> World {
    let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
    let key = ThreadKey::new(
        ServiceKey::from_bytes([2; 32]),
        ReadKey::from_bytes([3; 32]),
    );
    let writers: Vec<Writer> = (0..LOGS)
        .map(|i| {
            Writer::new(
                Identity::from_secret_bytes(&[10 + i as u8; 32]),
                thread,
                &key,
            )
            .expect("writer")
        })
        .collect();
    let main = writers.iter().map(|w| chain(w, 1)).collect();
    let forks = writers.iter().map(|w| chain(w, 2)).collect();
    World {
        thread,
        key,
        writers,
        main,
        forks,
    }
}

async fn check<S: Store>(store: &S, world: &World, ops: &[Op]) -> Result<(), TestCaseError> {
    store
        .put_thread(world.thread, &world.key)
        .await
        .expect("put");
    let mut stored = [0usize; LOGS];
    let head = |chain: &[Appended], n: usize| (n > 0).then(|| chain[n - 1].record.head());
    for op in ops {
        match *op {
            Op::Append { log, n } => {
                let have = stored[log];
                let end = (have + n).min(CHAIN);
                if end == have {
                    continue;
                }
                let out = store
                    .append(
                        world.thread,
                        world.writers[log].log_id(),
                        head(&world.main[log], have),
                        &world.main[log][have..end],
                    )
                    .await;
                prop_assert_eq!(
                    out.expect("append"),
                    AppendOutcome::Appended {
                        head: world.main[log][end - 1].record.head()
                    }
                );
                stored[log] = end;
            }
            Op::Stale { log, from, n } => {
                let end = (from + n).min(CHAIN);
                if from >= stored[log] || end == from {
                    continue;
                }
                let out = store
                    .append(
                        world.thread,
                        world.writers[log].log_id(),
                        head(&world.main[log], from),
                        &world.main[log][from..end],
                    )
                    .await;
                if end <= stored[log] {
                    prop_assert_eq!(
                        out.expect("no-op"),
                        AppendOutcome::AlreadyStored {
                            head: world.main[log][stored[log] - 1].record.head()
                        }
                    );
                } else {
                    prop_assert!(matches!(out, Err(StoreError::Conflict { .. })), "{:?}", out);
                }
            }
            Op::Fork { log, from, n } => {
                let end = (from + n).min(CHAIN);
                if stored[log] == 0 || end == from || from > stored[log] {
                    continue;
                }
                let out = store
                    .append(
                        world.thread,
                        world.writers[log].log_id(),
                        head(&world.forks[log], from),
                        &world.forks[log][from..end],
                    )
                    .await;
                prop_assert!(matches!(out, Err(StoreError::Conflict { .. })), "{:?}", out);
            }
            Op::Read { log, after, max } => {
                let page = store
                    .entries_after(
                        world.thread,
                        world.writers[log].log_id(),
                        after as u64,
                        Page::new(max, usize::MAX),
                    )
                    .await
                    .expect("read");
                let expected: Vec<_> = world.main[log]
                    .iter()
                    .take(stored[log])
                    .skip(after)
                    .take(max)
                    .map(|a| &a.entry)
                    .collect();
                prop_assert_eq!(page.iter().map(|s| &s.entry).collect::<Vec<_>>(), expected);
            }
        }
        for ((writer, chain), &count) in world.writers.iter().zip(&world.main).zip(&stored) {
            let got = store
                .head(world.thread, writer.log_id())
                .await
                .expect("head");
            prop_assert_eq!(got, head(chain, count));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn stores_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let world = world();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            check(&MemoryStore::new(), &world, &ops).await?;
            check(&SqliteStore::in_memory().await.expect("open"), &world, &ops).await
        })?;
    }
}
