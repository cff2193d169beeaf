//! Benchmark of the document store, with its rows in a SQLite store (views v2), side by
//! side with a plain SQLite table holding the same documents with the same indexes, in one
//! run. For each size:
//!
//! - ingest: documents written as events of 100 (signed, sealed, stored), then applied and
//!   committed by the engine into a new scope;
//! - open: opening the views and answering a first query (no row is read at open);
//! - queries, each with other parameters so that the cache does not answer them: an indexed
//!   equality (`email == X`, unique index), an indexed range (`a <= age < a + 2`, sorted by
//!   age, first 100), the same on the SQLite table (each document parsed as JSON, like
//!   ours); the first and the 100th page of a cursor walk (sorted by age, ascending and
//!   descending, pages of 100),
//!   each on freshly opened views;
//! - two writers: the cost of a catch-up after one in-order write, and after a write dated
//!   before the other writer's latest event (a late event: the engine undoes one event,
//!   applies the late one and applies the undone one again), alternating, medians;
//! - peak RSS of the process (`VmHWM`) after each size.
//!
//! Run with `cargo bench -p threads-db --bench docs`; `THREADS_BENCH_DOCS` sets the sizes
//! (comma-separated, default `100000,1000000`); `THREADS_BENCH_HUGE=1` adds 10,000,000.
#![allow(clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use threads_crypto::{Identity, ThreadKey};
use threads_db::{DocOp, Docs, Filter, IndexSpec, Query};
use threads_id::{ThreadId, Variant};
use threads_log::{Hlc, Writer};
use threads_store::{SqliteStore, ThreadBook, write_local};
use threads_views::{Batch, Reducer, State, ViewConfig, Views};

fn doc(i: u64) -> Value {
    json!({
        "name": format!("user{i}"),
        "age": i % 100,
        "age2": i % 100,
        "email": format!("user{i}@example.com"),
        "score": (i * 7919 % 1000) as f64 / 10.0,
    })
}

fn schema() -> String {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "email": {"type": "string"}
        },
        "required": ["name", "email"]
    })
    .to_string()
}

fn setup_ops() -> Vec<DocOp> {
    vec![
        DocOp::CreateCollection {
            name: "people".into(),
            schema: schema(),
        },
        DocOp::AddIndex {
            collection: "people".into(),
            spec: IndexSpec {
                name: "age".into(),
                path: "age".into(),
                unique: false,
            },
        },
        DocOp::AddIndex {
            collection: "people".into(),
            spec: IndexSpec {
                name: "email".into(),
                path: "email".into(),
                unique: true,
            },
        },
    ]
}

fn create(i: u64) -> DocOp {
    DocOp::Create {
        collection: "people".into(),
        id: format!("{i:08}"),
        doc: doc(i).to_string(),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn sqlite_table(path: &std::path::Path, n: u64) -> SqlitePool {
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
        "CREATE TABLE people (id TEXT PRIMARY KEY, age INTEGER, age2 INTEGER, email TEXT, doc TEXT);
         CREATE INDEX people_age ON people (age, id);
         CREATE UNIQUE INDEX people_email ON people (email);",
    )
    .execute(&pool)
    .await
    .expect("create");
    for start in (0..n).step_by(1_000) {
        let mut tx = pool.begin().await.expect("begin");
        for i in start..(start + 1_000).min(n) {
            let d = doc(i);
            sqlx::query("INSERT INTO people (id, age, age2, email, doc) VALUES (?, ?, ?, ?, ?)")
                .bind(format!("{i:08}"))
                .bind((i % 100) as i64)
                .bind((i % 100) as i64)
                .bind(d["email"].as_str().expect("email").to_owned())
                .bind(d.to_string())
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    pool
}

async fn sqlite_query(
    pool: &SqlitePool,
    sql: &'static str,
    bind: Vec<Value>,
) -> Vec<(String, Value)> {
    let mut q = sqlx::query(sql);
    for b in bind {
        q = match b {
            Value::String(s) => q.bind(s),
            Value::Number(n) => q.bind(n.as_i64().expect("int")),
            _ => q,
        };
    }
    q.fetch_all(pool)
        .await
        .expect("query")
        .into_iter()
        .map(|row| {
            let id: String = row.get(0);
            let doc: String = row.get(1);
            (id, serde_json::from_str(&doc).expect("json"))
        })
        .collect()
}

const DOCS_PER_EVENT: u64 = 100;

fn reducers() -> Vec<Arc<dyn Reducer>> {
    vec![Arc::new(Docs::default())]
}

/// The peak resident set of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Built {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    thread: ThreadId,
    a: Writer,
    b: Writer,
    /// The time of the latest event.
    time: u64,
    ingest_rate: f64,
}

/// `n` documents written as events and applied by the views of a new scope.
async fn build(n: u64) -> Built {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("docs.db"))
            .await
            .expect("open"),
    );
    let thread = ThreadId::from_parts(Variant::Raw, [4; 32]);
    let key = ThreadKey::generate();
    store.put_thread(thread, &key).await.expect("thread");
    let a = Writer::new(Identity::from_secret_bytes(&[4; 32]), thread, &key).expect("writer");
    let b = Writer::new(Identity::from_secret_bytes(&[5; 32]), thread, &key).expect("writer");
    let started = Instant::now();
    let mut setup = Batch::new();
    for op in setup_ops() {
        setup.push("docs", op.encode());
    }
    // Event times step by 10 so that a late event fits between two.
    let mut time = 10;
    write_local(&*store, &a, &setup.encode(), Hlc::new(time, 0))
        .await
        .expect("write");
    for start in (0..n).step_by(DOCS_PER_EVENT as usize) {
        let mut batch = Batch::new();
        for i in start..(start + DOCS_PER_EVENT).min(n) {
            batch.push("docs", create(i).encode());
        }
        time += 10;
        write_local(&*store, &a, &batch.encode(), Hlc::new(time, 0))
            .await
            .expect("write");
    }
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), ViewConfig::new())
        .await
        .expect("views");
    views.catch_up().await.expect("apply");
    assert!(views.rejections().await.expect("rejections").is_empty());
    let ingest_rate = n as f64 / started.elapsed().as_secs_f64();
    Built {
        _dir: dir,
        store,
        thread,
        a,
        b,
        time,
        ingest_rate,
    }
}

async fn open(built: &Built) -> Views<SqliteStore> {
    Views::open(
        Arc::clone(&built.store),
        built.thread,
        reducers(),
        ViewConfig::new(),
    )
    .await
    .expect("open")
}

fn eq_query(i: u64, n: u64) -> Query {
    Query::filter(Filter::Eq(
        "email".into(),
        json!(format!("user{}@example.com", (i * 7919) % n)),
    ))
}

fn range_query(a: u64) -> Query {
    Query::filter(Filter::And(vec![
        Filter::Ge("age".into(), json!(a)),
        Filter::Lt("age".into(), json!(a + 2)),
    ]))
    .sort("age", false)
    .limit(100)
}

async fn query(views: &mut Views<SqliteStore>, q: &Query) -> threads_db::QueryPage {
    views
        .read("docs", |s| Docs::query(s, "people", q))
        .await
        .expect("read")
        .expect("query")
}

/// One document written by `writer` at `time`, applied by a catch-up: how long the
/// catch-up took, in microseconds.
async fn write_and_apply(
    built: &Built,
    views: &mut Views<SqliteStore>,
    second: bool,
    time: Hlc,
    id: u64,
) -> f64 {
    let writer = if second { &built.b } else { &built.a };
    let op = DocOp::Save {
        collection: "people".into(),
        id: format!("{:08}", id),
        doc: doc(id + 1).to_string(),
    };
    let payload = Batch::new().with("docs", op.encode()).encode();
    write_local(&*built.store, writer, &payload, time)
        .await
        .expect("write");
    let started = Instant::now();
    let progress = views.catch_up().await.expect("catch up");
    let took = started.elapsed().as_secs_f64() * 1e6;
    assert_eq!(progress.applied, 1);
    took
}

fn main() {
    let mut sizes: Vec<u64> = std::env::var("THREADS_BENCH_DOCS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    if std::env::var("THREADS_BENCH_HUGE").is_ok_and(|v| v == "1") {
        sizes.push(10_000_000);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut opens = Vec::new();
        for n in sizes {
            let built = build(n).await;
            println!(
                "n = {n}: ingest (events of {DOCS_PER_EVENT} documents written, applied and committed) {:.0} documents/s; peak RSS so far {:.0} MiB",
                built.ingest_rate,
                peak_rss_mib()
            );

            // Open: the views alone (the mark is all they read), and with a first query
            // (which reads index pages of a file that may not be in the page cache).
            let mut alone = Vec::new();
            let mut first = Vec::new();
            for i in 0..21 {
                let started = Instant::now();
                let mut views = open(&built).await;
                alone.push(started.elapsed().as_secs_f64() * 1e3);
                let page = query(&mut views, &eq_query(i, n)).await;
                first.push(started.elapsed().as_secs_f64() * 1e3);
                assert_eq!(page.docs.len(), 1);
            }
            opens.push((n, median(alone), median(first)));

            // Queries, against the plain SQLite table.
            let dir = tempfile::tempdir().expect("dir");
            let pool = sqlite_table(&dir.path().join("plain.db"), n).await;
            let mut views = open(&built).await;
            let ours = query(&mut views, &range_query(40)).await;
            let theirs = sqlite_query(
                &pool,
                "SELECT id, doc FROM people WHERE age >= ? AND age < ? ORDER BY age, id LIMIT 100",
                vec![json!(40), json!(42)],
            )
            .await;
            assert_eq!(ours.docs, theirs, "the same answers on both sides");
            let mut ours_eq = Vec::new();
            let mut sql_eq = Vec::new();
            for i in 0..2_000u64 {
                let q = eq_query(i + 100, n);
                let started = Instant::now();
                let page = query(&mut views, &q).await;
                ours_eq.push(started.elapsed().as_secs_f64() * 1e6);
                assert_eq!(page.docs.len(), 1);
                let email = format!("user{}@example.com", ((i + 100) * 7919) % n);
                let started = Instant::now();
                let rows = sqlite_query(&pool, "SELECT id, doc FROM people WHERE email = ?", vec![json!(email)]).await;
                sql_eq.push(started.elapsed().as_secs_f64() * 1e6);
                assert_eq!(rows.len(), 1);
            }
            let mut ours_range = Vec::new();
            let mut sql_range = Vec::new();
            for a in 0..98u64 {
                let started = Instant::now();
                let page = query(&mut views, &range_query(a)).await;
                ours_range.push(started.elapsed().as_secs_f64() * 1e6);
                assert_eq!(page.docs.len(), 100);
                let started = Instant::now();
                let rows = sqlite_query(
                    &pool,
                    "SELECT id, doc FROM people WHERE age >= ? AND age < ? ORDER BY age, id LIMIT 100",
                    vec![json!(a), json!(a + 2)],
                )
                .await;
                sql_range.push(started.elapsed().as_secs_f64() * 1e6);
                assert_eq!(rows.len(), 100);
            }
            let (ours_eq, sql_eq) = (median(ours_eq), median(sql_eq));
            let (ours_range, sql_range) = (median(ours_range), median(sql_range));
            println!(
                "n = {n}: eq {ours_eq:.1} us (SQLite {sql_eq:.1} us, {:.2}x); range {ours_range:.1} us (SQLite {sql_range:.1} us, {:.2}x)",
                ours_eq / sql_eq,
                ours_range / sql_range
            );
            drop(pool);

            // A cursor walk, ascending and descending: the cursors of pages 1 and 100,
            // then each page timed on freshly opened views.
            for desc in [false, true] {
                let walk = Query::all().sort("age", desc).limit(100);
                let walk = Query { filter: Some(Filter::Ge("age".into(), json!(0))), ..walk };
                let mut cursor = None;
                let mut at_99 = None;
                for page in 1..100 {
                    let q = Query { after: cursor.clone(), ..walk.clone() };
                    let got = query(&mut views, &q).await;
                    cursor = got.next;
                    if page == 99 {
                        at_99.clone_from(&cursor);
                    }
                }
                let mut first = Vec::new();
                let mut hundredth = Vec::new();
                for _ in 0..11 {
                    let mut fresh = open(&built).await;
                    let started = Instant::now();
                    let page = query(&mut fresh, &walk).await;
                    first.push(started.elapsed().as_secs_f64() * 1e6);
                    assert_eq!(page.docs.len(), 100);
                    let mut fresh = open(&built).await;
                    let q = Query { after: at_99.clone(), ..walk.clone() };
                    let started = Instant::now();
                    let page = query(&mut fresh, &q).await;
                    hundredth.push(started.elapsed().as_secs_f64() * 1e6);
                    assert_eq!(page.docs.len(), 100);
                }
                let (first, hundredth) = (median(first), median(hundredth));
                let direction = if desc { "descending" } else { "ascending" };
                println!(
                    "n = {n}: cursor walk ({direction}) page 1 {first:.0} us, page 100 {hundredth:.0} us ({:.2}x)",
                    hundredth / first
                );
            }

            // Two writers: in order, and late by one event.
            let mut in_order = Vec::new();
            let mut late = Vec::new();
            let mut time = built.time;
            for round in 0..21u64 {
                time += 10;
                in_order.push(write_and_apply(&built, &mut views, false, Hlc::new(time, 0), round).await);
                time += 10;
                write_and_apply(&built, &mut views, false, Hlc::new(time, 0), round + 100).await;
                // The other writer, dated before the first writer's latest event.
                late.push(write_and_apply(&built, &mut views, true, Hlc::new(time - 5, 0), round + 200).await);
            }
            let (in_order, late) = (median(in_order), median(late));
            println!(
                "n = {n}: one write in order {in_order:.0} us; a concurrent (late) write {late:.0} us ({:.2}x); peak RSS {:.0} MiB",
                late / in_order,
                peak_rss_mib()
            );
        }
        // Last (it holds its rows in memory): the view's own speed, on a state with no store behind it.
        let docs = Docs::default();
        let mut state = State::new();
        for op in setup_ops() {
            docs.apply_local(&mut state, &op).expect("setup");
        }
        let started = Instant::now();
        for i in 0..20_000 {
            docs.apply_local(&mut state, &create(i)).expect("create");
        }
        let took: Duration = started.elapsed();
        println!(
            "view insert (in memory, 20,000 documents): {:.0} documents/s",
            20_000.0 / took.as_secs_f64()
        );
        drop(state);

        if let (Some((n0, o0, f0)), Some((n1, o1, f1))) = (opens.first(), opens.last()) {
            println!(
                "open: {o0:.2} ms at {n0}, {o1:.2} ms at {n1} ({:.2}x); open + first query: {f0:.1} ms, {f1:.1} ms ({:.2}x)",
                o1 / o0,
                f1 / f0
            );
        }
    });
}
