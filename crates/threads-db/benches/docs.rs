//! Benchmark of the document store, side by side with a plain SQLite table holding the same
//! documents with the same indexes, in one run:
//!
//! - insert rate: documents applied by the view (schema check + two index updates), and
//!   end to end (written as events of 100 documents to a SQLite store, then applied and
//!   committed by the views engine);
//! - an indexed equality (`email == X`, unique index) and an indexed range (`age in
//!   [40, 42)`, sorted by age, first 100), at 100,000 and 1,000,000 documents; the same
//!   queries on the SQLite table (`SELECT doc ... WHERE ...`, each document parsed as
//!   JSON, like ours), and the range as a full scan (on an unindexed copy of the field).
//!
//! Run with `cargo bench -p threads-db --bench docs`; `THREADS_BENCH_DOCS` sets the sizes
//! (comma-separated, default `100000,1000000`).
#![allow(clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use threads_crypto::{Identity, ThreadKey};
use threads_db::{DocOp, Docs, Filter, IndexSpec, Query};
use threads_id::{ThreadId, Variant};
use threads_log::Hlc;
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

fn time<T>(runs: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        std::hint::black_box(f(i));
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    median(samples)
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
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let mut tx = pool.begin().await.expect("begin");
        for &i in chunk {
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

async fn end_to_end(n: u64) -> f64 {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("docs.db"))
            .await
            .expect("open"),
    );
    let thread = ThreadId::from_parts(Variant::Raw, [4; 32]);
    let key = ThreadKey::generate();
    store.put_thread(thread, &key).await.expect("thread");
    let writer = threads_log::Writer::new(Identity::from_secret_bytes(&[4; 32]), thread, &key)
        .expect("writer");
    let started = Instant::now();
    let mut setup = Batch::new();
    for op in setup_ops() {
        setup.push("docs", op.encode());
    }
    write_local(&*store, &writer, &setup.encode(), Hlc::new(1, 0))
        .await
        .expect("write");
    for (time, chunk) in (2..).zip((0..n).collect::<Vec<_>>().chunks(100)) {
        let mut batch = Batch::new();
        for &i in chunk {
            batch.push("docs", create(i).encode());
        }
        write_local(&*store, &writer, &batch.encode(), Hlc::new(time, 0))
            .await
            .expect("write");
    }
    let reducers: Vec<Arc<dyn Reducer>> = vec![Arc::new(Docs::default())];
    let mut views = Views::open(store, thread, reducers, ViewConfig::new())
        .await
        .expect("views");
    views.catch_up().await.expect("apply");
    assert!(views.rejections().await.expect("rejections").is_empty());
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let sizes: Vec<u64> = std::env::var("THREADS_BENCH_DOCS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let rate = end_to_end(100_000).await;
        println!("end-to-end insert (events of 100 documents, SQLite store, applied and committed): {rate:.0} documents/s");
        for n in sizes {
            let docs = Docs::default();
            let mut state = State::new();
            for op in setup_ops() {
                docs.apply_local(&mut state, &op).expect("setup");
            }
            let started = Instant::now();
            for i in 0..n {
                docs.apply_local(&mut state, &create(i)).expect("create");
            }
            let took: Duration = started.elapsed();
            println!(
                "n = {n}: view insert {:.0} documents/s",
                n as f64 / took.as_secs_f64()
            );

            let dir = tempfile::tempdir().expect("dir");
            let pool = sqlite_table(&dir.path().join("plain.db"), n).await;

            let eq = |i: usize| {
                Query::filter(Filter::Eq(
                    "email".into(),
                    json!(format!("user{}@example.com", (i as u64 * 7919) % n)),
                ))
            };
            let range = Query::filter(Filter::And(vec![
                Filter::Ge("age".into(), json!(40)),
                Filter::Lt("age".into(), json!(42)),
            ]))
            .sort("age", false)
            .limit(100);
            let scan = Query::filter(Filter::And(vec![
                Filter::Ge("age2".into(), json!(40)),
                Filter::Lt("age2".into(), json!(42)),
            ]))
            .sort("age2", false)
            .limit(100);
            // Same answers on both sides.
            let ours = Docs::query(&state, "people", &range).expect("range");
            let theirs = sqlite_query(
                &pool,
                "SELECT id, doc FROM people WHERE age >= ? AND age < ? ORDER BY age, id LIMIT 100",
                vec![json!(40), json!(42)],
            )
            .await;
            assert_eq!(ours.docs, theirs);
            assert_eq!(Docs::query(&state, "people", &scan).expect("scan").docs, theirs);

            let ours_eq = time(2_000, |i| Docs::query(&state, "people", &eq(i)).expect("eq"));
            let ours_range = time(200, |_| Docs::query(&state, "people", &range).expect("range"));
            let ours_scan = time(5, |_| Docs::query(&state, "people", &scan).expect("scan"));
            let mut samples = Vec::new();
            for i in 0..2_000 {
                let email = format!("user{}@example.com", (i as u64 * 7919) % n);
                let started = Instant::now();
                let rows = sqlite_query(&pool, "SELECT id, doc FROM people WHERE email = ?", vec![json!(email)]).await;
                samples.push(started.elapsed().as_secs_f64() * 1e6);
                assert_eq!(rows.len(), 1);
            }
            let sql_eq = median(samples);
            let mut samples = Vec::new();
            for _ in 0..200 {
                let started = Instant::now();
                let rows = sqlite_query(
                    &pool,
                    "SELECT id, doc FROM people WHERE age >= ? AND age < ? ORDER BY age, id LIMIT 100",
                    vec![json!(40), json!(42)],
                )
                .await;
                samples.push(started.elapsed().as_secs_f64() * 1e6);
                assert_eq!(rows.len(), 100);
            }
            let sql_range = median(samples);
            let mut samples = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let rows = sqlite_query(
                    &pool,
                    "SELECT id, doc FROM people WHERE age2 >= ? AND age2 < ? ORDER BY age2, id LIMIT 100",
                    vec![json!(40), json!(42)],
                )
                .await;
                samples.push(started.elapsed().as_secs_f64() * 1e6);
                assert_eq!(rows.len(), 100);
            }
            let sql_scan = median(samples);
            println!(
                "n = {n}: eq {ours_eq:.1} us (SQLite {sql_eq:.1} us, {:.2}x); range {ours_range:.1} us (SQLite {sql_range:.1} us, {:.2}x); full scan {ours_scan:.0} us (SQLite {sql_scan:.0} us)",
                ours_eq / sql_eq,
                ours_range / sql_range
            );
            drop(state);
        }
    });
}
