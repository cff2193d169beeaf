//! The document store: typed errors, remote events that break the schema, unique indexes,
//! schema versions, and queries against a naive evaluator (the differential property test).

use std::cmp::Ordering;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use threads_crypto::{Identity, ThreadKey};
use threads_db::{DocError, DocOp, Docs, Filter, IndexSpec, Query, Scan};
use threads_id::{ThreadId, Variant};
use threads_log::Hlc;
use threads_store::{MemoryStore, ThreadBook, write_local};
use threads_views::{Batch, Reducer, State, ViewConfig, Views};

fn people_schema() -> String {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "email": {"type": "string"}
        },
        "required": ["name"]
    })
    .to_string()
}

fn create(collection: &str, id: &str, doc: Value) -> DocOp {
    DocOp::Create {
        collection: collection.into(),
        id: id.into(),
        doc: doc.to_string(),
    }
}

fn save(collection: &str, id: &str, doc: Value) -> DocOp {
    DocOp::Save {
        collection: collection.into(),
        id: id.into(),
        doc: doc.to_string(),
    }
}

fn setup() -> (Docs, State) {
    let docs = Docs::default();
    let mut state = State::new();
    docs.apply_local(
        &mut state,
        &DocOp::CreateCollection {
            name: "people".into(),
            schema: people_schema(),
        },
    )
    .expect("collection");
    let spec = IndexSpec {
        name: "by_email".into(),
        path: "email".into(),
        unique: true,
    };
    docs.apply_local(
        &mut state,
        &DocOp::AddIndex {
            collection: "people".into(),
            spec,
        },
    )
    .expect("index");
    (docs, state)
}

/// Adds an index to the collection `people`.
fn add_index(docs: &Docs, state: &mut State, name: &str, path: &str, unique: bool) {
    let spec = IndexSpec {
        name: name.into(),
        path: path.into(),
        unique,
    };
    docs.apply_local(
        state,
        &DocOp::AddIndex {
            collection: "people".into(),
            spec,
        },
    )
    .expect("index");
}

/// What an error must look like.
type Expect = fn(&DocError) -> bool;

#[test]
fn bad_writes_and_queries_are_typed_errors_and_change_nothing() {
    let (docs, mut state) = setup();
    docs.apply_local(
        &mut state,
        &create("people", "ann", json!({"name": "Ann", "email": "a@x"})),
    )
    .expect("create");
    let before = state.digest();

    let cases: Vec<(DocOp, Expect)> = vec![
        (create("people", "bob", json!({"age": 3})), |e| {
            matches!(e, DocError::SchemaViolation { version: 1, .. })
        }),
        (
            create("people", "bob", json!({"name": "Bob", "age": -1})),
            |e| matches!(e, DocError::SchemaViolation { .. }),
        ),
        (
            create("nobody", "x", json!({"name": "X"})),
            |e| matches!(e, DocError::UnknownCollection(c) if c == "nobody"),
        ),
        (create("people", "ann", json!({"name": "Ann"})), |e| {
            matches!(e, DocError::Exists { .. })
        }),
        (save("people", "zed", json!({"name": "Zed"})), |e| {
            matches!(e, DocError::NotFound { .. })
        }),
        (
            create("people", "cy", json!({"name": "Cy", "email": "a@x"})),
            |e| matches!(e, DocError::UniqueViolation { holder, .. } if holder == "ann"),
        ),
        (
            DocOp::Create {
                collection: "people".into(),
                id: "d".into(),
                doc: "{not json".into(),
            },
            |e| matches!(e, DocError::BadDocument(_)),
        ),
        (create("people", "", json!({"name": "E"})), |e| {
            matches!(e, DocError::BadName(_))
        }),
        (
            DocOp::SetSchema {
                name: "people".into(),
                schema: json!({"type": 12}).to_string(),
            },
            |e| matches!(e, DocError::BadSchema(_)),
        ),
    ];
    for (op, expected) in cases {
        let error = docs.check(&state, &op).expect_err("refused");
        assert!(expected(&error), "{op:?}: {error:?}");
        assert_eq!(docs.apply_local(&mut state, &op), Err(error));
        assert_eq!(state.digest(), before, "{op:?} changed nothing");
    }

    for bad in [
        Query::filter(Filter::Eq(String::new(), json!(1))),
        Query::filter(Filter::And(Vec::new())),
        Query::all().sort("a..b", false),
        Query::all().after("not a cursor"),
    ] {
        assert!(matches!(
            Docs::query(&state, "people", &bad),
            Err(DocError::BadQuery(_))
        ));
    }
    assert!(matches!(
        Docs::query(&state, "nobody", &Query::all()),
        Err(DocError::UnknownCollection(_))
    ));
    let unknown_field = serde_json::from_value::<Query>(json!({"filtr": {}}));
    assert!(unknown_field.is_err());
}

#[test]
fn schema_versions_apply_to_later_writes() {
    let (docs, mut state) = setup();
    docs.apply_local(&mut state, &create("people", "ann", json!({"name": "Ann"})))
        .expect("v1");
    let v2 = json!({"type": "object", "required": ["name", "age"]}).to_string();
    docs.apply_local(
        &mut state,
        &DocOp::SetSchema {
            name: "people".into(),
            schema: v2,
        },
    )
    .expect("v2");
    assert_eq!(
        Docs::collection(&state, "people").expect("meta").version(),
        2
    );
    // The stored document stays, under the version it was written with.
    assert_eq!(Docs::get(&state, "people", "ann").expect("kept").1, 1);
    assert!(matches!(
        docs.check(&state, &create("people", "bob", json!({"name": "Bob"}))),
        Err(DocError::SchemaViolation { version: 2, .. })
    ));
    docs.apply_local(
        &mut state,
        &create("people", "bob", json!({"name": "Bob", "age": 5})),
    )
    .expect("valid under v2");
    assert_eq!(Docs::get(&state, "people", "bob").expect("stored").1, 2);
}

/// Remote events go through the views: one that breaks the schema is refused with its
/// author and reason, and the rest of the log applies.
#[tokio::test]
async fn a_remote_schema_violation_is_rejected_visibly() {
    let thread = ThreadId::from_parts(Variant::Raw, [5; 32]);
    let key = ThreadKey::generate();
    let store = Arc::new(MemoryStore::new());
    store.put_thread(thread, &key).await.expect("thread");
    let author = Identity::from_secret_bytes(&[6; 32]);
    let writer = threads_log::Writer::new(author.clone(), thread, &key).expect("writer");
    let ops = [
        DocOp::CreateCollection {
            name: "people".into(),
            schema: people_schema(),
        },
        create("people", "ann", json!({"name": "Ann"})),
        create("people", "bad", json!({"age": "old"})),
        create("people", "cy", json!({"name": "Cy"})),
    ];
    for (i, op) in ops.iter().enumerate() {
        let payload = Batch::new().with("docs", op.encode()).encode();
        write_local(&*store, &writer, &payload, Hlc::new(i as u64 + 1, 0))
            .await
            .expect("write");
    }
    let reducers: Vec<Arc<dyn Reducer>> = vec![Arc::new(Docs::default())];
    let mut views = Views::open(store, thread, reducers, ViewConfig::new())
        .await
        .expect("open");
    views.catch_up().await.expect("catch up");
    let ids: Vec<String> = views
        .read("docs", |state| Docs::query(state, "people", &Query::all()))
        .await
        .expect("read")
        .expect("query")
        .docs
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["ann", "cy"]);
    let rejected = views.rejections().await.expect("rejections");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].author(), author.log_id());
    assert_eq!(rejected[0].order.counter, 3);
    assert!(
        rejected[0].reason.contains("violates the schema"),
        "{}",
        rejected[0].reason
    );
}

#[test]
fn unique_values_go_to_the_first_writer_and_indexes_follow_saves() {
    let (docs, mut state) = setup();
    docs.apply_local(
        &mut state,
        &create("people", "ann", json!({"name": "Ann", "email": "a@x"})),
    )
    .expect("ann");
    docs.apply_local(
        &mut state,
        &save("people", "ann", json!({"name": "Ann", "email": "b@x"})),
    )
    .expect("ann moves");
    // The old value is free again, the new one taken.
    docs.apply_local(
        &mut state,
        &create("people", "bob", json!({"name": "Bob", "email": "a@x"})),
    )
    .expect("bob takes a@x");
    assert!(matches!(
        docs.check(
            &state,
            &create("people", "cy", json!({"name": "Cy", "email": "b@x"}))
        ),
        Err(DocError::UniqueViolation { .. })
    ));
    let q = Query::filter(Filter::Eq("email".into(), json!("a@x")));
    let page = Docs::query(&state, "people", &q).expect("query");
    assert_eq!(page.docs.len(), 1);
    assert_eq!(page.docs[0].0, "bob");
    let plan = Docs::explain(&state, "people", &q).expect("plan");
    assert!(
        matches!(plan.scan, Scan::Index { lookup, .. } if lookup == "eq"),
        "{plan}"
    );
    docs.apply_local(
        &mut state,
        &DocOp::Delete {
            collection: "people".into(),
            id: "bob".into(),
        },
    )
    .expect("delete");
    assert!(
        Docs::query(&state, "people", &q)
            .expect("query")
            .docs
            .is_empty()
    );
}

/// The ids of every page of `query` in `people`, walked with cursors (each page seeks to
/// its cursor's entry).
fn walk(state: &State, mut query: Query) -> Vec<String> {
    let mut walked = Vec::new();
    loop {
        let page = Docs::query(state, "people", &query).expect("page");
        walked.extend(page.docs.into_iter().map(|(id, _)| id));
        match page.next {
            Some(next) => query = query.after(next),
            None => return walked,
        }
    }
}

/// Every document has an entry in every index (a missing path, null, an array or an object
/// too), so a sort on an indexed path always reads the index in order, and the order is
/// the query's: missing first, then values in the total order, ties by id. A cursor walk
/// seeks through every kind of entry; a unique index holds only scalars to uniqueness.
#[test]
fn a_sort_on_an_indexed_path_reads_the_index_whatever_the_documents_hold() {
    let (docs, mut state) = setup();
    add_index(&docs, &mut state, "by_rank", "rank", false);
    add_index(&docs, &mut state, "by_code", "code", true);
    let values = [
        ("a", json!(3)),
        ("b", json!([2, "x"])),
        ("c", json!({"k": 1})),
        ("d", json!(null)),
        ("e", json!("s")),
        ("f", json!([2])),
        ("g", json!(1.5)),
        ("h", json!([2, "x"])),
        ("i", json!({"a": [true]})),
        ("j", json!([])),
    ];
    for (id, rank) in &values {
        // `code` is missing in half of the documents and an array in the others: no
        // unique conflict either way.
        let doc = if id.as_bytes()[0] % 2 == 0 {
            json!({"name": id, "rank": rank, "code": [1]})
        } else {
            json!({"name": id, "rank": rank})
        };
        docs.apply_local(&mut state, &create("people", id, doc))
            .expect("create");
    }
    for id in ["m1", "m2"] {
        docs.apply_local(&mut state, &create("people", id, json!({"name": id})))
            .expect("without the path");
    }
    let by_rank = Query::all().sort("rank", false);
    let plan = Docs::explain(&state, "people", &by_rank).expect("plan");
    assert!(
        matches!(&plan.scan, Scan::Index { lookup, ordered: true, .. } if *lookup == "order"),
        "{plan}"
    );
    let ids = |state: &State, q: &Query| -> Vec<String> {
        Docs::query(state, "people", q)
            .expect("query")
            .docs
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    // The order a full scan and sort gives (a second sort key, equal to the id here, makes
    // it one).
    let scanned = Query::all().sort("rank", false).sort("name", false);
    assert_eq!(
        Docs::explain(&state, "people", &scanned)
            .expect("plan")
            .scan,
        Scan::Full
    );
    let expected = ids(&state, &scanned);
    assert_eq!(
        expected,
        ["m1", "m2", "d", "g", "a", "e", "j", "f", "b", "h", "i", "c"]
    );
    assert_eq!(ids(&state, &by_rank), expected);
    // Page by page with cursors: each page seeks to its cursor's entry.
    assert_eq!(
        walk(&state, Query::all().sort("rank", false).limit(2)),
        expected
    );
    // Descending: the ascending order reversed, ties (m1, m2; b, h) included, read from
    // the index's end.
    let desc = Query::all().sort("rank", true);
    assert!(matches!(
        Docs::explain(&state, "people", &desc).expect("plan").scan,
        Scan::Index { ordered: true, .. }
    ));
    let expected_desc = ids(&state, &Query::all().sort("rank", true).sort("name", true));
    assert_eq!(
        expected_desc,
        ["c", "i", "h", "b", "f", "j", "e", "a", "g", "d", "m2", "m1"]
    );
    assert_eq!(ids(&state, &desc), expected_desc);
    assert_eq!(
        walk(&state, Query::all().sort("rank", true).limit(1)),
        expected_desc
    );
    // An equality with an array reads the index and finds both holders.
    let eq = Query::filter(Filter::Eq("rank".into(), json!([2, "x"])));
    assert!(matches!(
        Docs::explain(&state, "people", &eq).expect("plan").scan,
        Scan::Index { .. }
    ));
    assert_eq!(ids(&state, &eq), ["b", "h"]);
    // Changes move entries: a save to another kind of value, a delete.
    let doc = json!({"name": "m1", "rank": 2});
    docs.apply_local(&mut state, &save("people", "m1", doc))
        .expect("save");
    docs.apply_local(
        &mut state,
        &DocOp::Delete {
            collection: "people".into(),
            id: "b".into(),
        },
    )
    .expect("delete");
    let expected = ids(&state, &scanned);
    assert_eq!(
        expected,
        ["m2", "d", "g", "m1", "a", "e", "j", "f", "h", "i", "c"]
    );
    assert_eq!(ids(&state, &by_rank), expected);
    // Exactly one entry per document in each index.
    for index in ["by_rank", "by_code"] {
        let prefix = [b"i\0people\0".as_slice(), index.as_bytes(), b"\0"].concat();
        assert_eq!(state.prefix(&prefix).count(), expected.len(), "{index}");
    }
    // Scalars stay unique.
    docs.apply_local(
        &mut state,
        &create("people", "u1", json!({"name": "u1", "code": "x"})),
    )
    .expect("first");
    let taken = create("people", "u2", json!({"name": "u2", "code": "x"}));
    assert!(matches!(
        docs.apply_local(&mut state, &taken),
        Err(DocError::UniqueViolation { .. })
    ));
}

/// An `or` whose branches each read an index is their union; integers beyond 2^53 in a
/// unique index are distinct values.
#[test]
fn or_reads_indexes_and_big_integers_are_distinct() {
    let (docs, mut state) = setup();
    add_index(&docs, &mut state, "by_n", "n", true);
    let big = 1u64 << 53;
    for (id, n) in [("a", big), ("b", big + 1), ("c", big + 2)] {
        let doc = json!({"name": id, "email": format!("{id}@x"), "n": n});
        docs.apply_local(&mut state, &create("people", id, doc))
            .expect("distinct values, no conflict");
    }
    let taken = create(
        "people",
        "d",
        json!({"name": "d", "email": "d@x", "n": big + 1}),
    );
    assert!(matches!(
        docs.check(&state, &taken),
        Err(DocError::UniqueViolation { holder, .. }) if holder == "b"
    ));
    let q = Query::filter(Filter::Or(vec![
        Filter::Eq("email".into(), json!("a@x")),
        Filter::Eq("n".into(), json!(big + 2)),
        Filter::Eq("email".into(), json!("c@x")),
    ]));
    let plan = Docs::explain(&state, "people", &q).expect("plan");
    assert!(
        matches!(&plan.scan, Scan::Union(parts) if parts.len() == 3),
        "{plan}"
    );
    let ids: Vec<String> = Docs::query(&state, "people", &q)
        .expect("query")
        .docs
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["a", "c"]);
    // A branch no index serves makes it a full scan.
    let q = Query::filter(Filter::Or(vec![
        Filter::Eq("email".into(), json!("a@x")),
        Filter::Eq("name".into(), json!("b")),
    ]));
    assert_eq!(
        Docs::explain(&state, "people", &q).expect("plan").scan,
        Scan::Full
    );
    assert_eq!(
        Docs::query(&state, "people", &q).expect("query").docs.len(),
        2
    );
}

// ---- The differential property test ----

/// A naive, independent evaluation: the documents, filtered one by one, sorted with a
/// plain comparison, then cut.
mod naive {
    use super::*;

    pub(super) fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(doc, |v, s| v.get(s))
    }

    fn kind(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }

    pub(super) fn cmp(a: &Value, b: &Value) -> Ordering {
        match (a, b) {
            // Integers exactly (beyond 2^53 too), anything else by its double.
            (Value::Number(x), Value::Number(y)) => {
                let int = |n: &serde_json::Number| {
                    n.as_i64()
                        .map(i128::from)
                        .or_else(|| n.as_u64().map(i128::from))
                };
                match (int(x), int(y)) {
                    (Some(a), Some(b)) => a.cmp(&b),
                    _ => x
                        .as_f64()
                        .unwrap_or(0.0)
                        .total_cmp(&y.as_f64().unwrap_or(0.0)),
                }
            }
            (Value::String(x), Value::String(y)) => x.cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            // Arrays item by item, then the shorter first; objects by their JSON text.
            (Value::Array(x), Value::Array(y)) => x
                .iter()
                .zip(y)
                .map(|(p, q)| cmp(p, q))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| x.len().cmp(&y.len())),
            (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
            _ => kind(a).cmp(&kind(b)),
        }
    }

    pub(super) fn matches(f: &Filter, doc: &Value) -> bool {
        let same = |p: &str, v: &Value, want: &[Ordering]| {
            at(doc, p).is_some_and(|x| kind(x) == kind(v) && want.contains(&cmp(x, v)))
        };
        match f {
            Filter::Eq(p, v) => same(p, v, &[Ordering::Equal]),
            Filter::Ne(p, v) => !same(p, v, &[Ordering::Equal]),
            Filter::Gt(p, v) => same(p, v, &[Ordering::Greater]),
            Filter::Ge(p, v) => same(p, v, &[Ordering::Greater, Ordering::Equal]),
            Filter::Lt(p, v) => same(p, v, &[Ordering::Less]),
            Filter::Le(p, v) => same(p, v, &[Ordering::Less, Ordering::Equal]),
            Filter::In(p, vs) => vs.iter().any(|v| same(p, v, &[Ordering::Equal])),
            Filter::Exists(p, e) => at(doc, p).is_some() == *e,
            Filter::Prefix(p, s) => at(doc, p)
                .and_then(Value::as_str)
                .is_some_and(|x| x.starts_with(s.as_str())),
            Filter::And(fs) => fs.iter().all(|f| matches(f, doc)),
            Filter::Or(fs) => fs.iter().any(|f| matches(f, doc)),
        }
    }

    pub(super) fn run(docs: &[(String, Value)], q: &Query) -> Vec<String> {
        let mut hits: Vec<&(String, Value)> = docs
            .iter()
            .filter(|(_, d)| q.filter.as_ref().is_none_or(|f| matches(f, d)))
            .collect();
        hits.sort_by(|(ia, a), (ib, b)| {
            for s in &q.sort {
                let o = match (at(a, &s.path), at(b, &s.path)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => cmp(x, y),
                };
                let o = if s.desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            // Ties by id, descending when the last sort key is.
            match q.sort.last() {
                Some(s) if s.desc => ib.cmp(ia),
                _ => ia.cmp(ib),
            }
        });
        hits.into_iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0i64..6).prop_map(|n| json!(n)),
        1 => (0i64..6).prop_map(|n| json!(n as f64 + 0.5)),
        // Integers that share one double: indexed and compared exactly.
        1 => (0u64..3).prop_map(|n| json!((1u64 << 53) + n)),
        3 => "[ab]{0,2}".prop_map(Value::String),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        // Arrays and objects have index entries too (in the order queries sort them).
        1 => prop::collection::vec((0i64..3).prop_map(|n| json!(n)), 0..3).prop_map(Value::Array),
        1 => (0i64..3).prop_map(|n| json!({"x": n})),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    (
        prop::option::of(field_value()),
        prop::option::of(field_value()),
        prop::option::of(field_value()),
    )
        .prop_map(|(a, b, c)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [("a", a), ("b", b), ("c", c)] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            Value::Object(m)
        })
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c".to_owned())
    ]
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (path(), field_value()).prop_map(|(p, v)| Filter::Eq(p, v)),
        (path(), field_value()).prop_map(|(p, v)| Filter::Ne(p, v)),
        (path(), field_value()).prop_map(|(p, v)| Filter::Gt(p, v)),
        (path(), field_value()).prop_map(|(p, v)| Filter::Ge(p, v)),
        (path(), field_value()).prop_map(|(p, v)| Filter::Lt(p, v)),
        (path(), field_value()).prop_map(|(p, v)| Filter::Le(p, v)),
        (path(), prop::collection::vec(field_value(), 1..3)).prop_map(|(p, v)| Filter::In(p, v)),
        (path(), any::<bool>()).prop_map(|(p, e)| Filter::Exists(p, e)),
        (path(), "[ab]{0,1}").prop_map(|(p, s)| Filter::Prefix(p, s)),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::And),
            prop::collection::vec(inner, 1..3).prop_map(Filter::Or),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    (
        prop::option::of(filter()),
        prop::collection::vec((path(), any::<bool>()), 0..3),
        prop::option::of(0usize..8),
        0usize..4,
    )
        .prop_map(|(filter, sort, limit, offset)| {
            let mut q = Query {
                filter,
                limit,
                offset,
                ..Query::default()
            };
            for (p, desc) in sort {
                q = q.sort(p, desc);
            }
            q
        })
}

/// `documents` written as events to a memory store (the collection, indexes `ia` on `a`
/// and `ic` on `c`, and the unique `ub` on `b` if `unique_b`), applied by a document view
/// with no cache, then reopened.
async fn stored_views(documents: &[(String, Value)], unique_b: bool) -> Views<MemoryStore> {
    let thread = ThreadId::from_parts(Variant::Raw, [8; 32]);
    let key = ThreadKey::generate();
    let store = Arc::new(MemoryStore::new());
    store.put_thread(thread, &key).await.expect("thread");
    let writer = threads_log::Writer::new(Identity::from_secret_bytes(&[9; 32]), thread, &key)
        .expect("writer");
    let mut ops = vec![DocOp::CreateCollection {
        name: "t".into(),
        schema: json!({"type": "object"}).to_string(),
    }];
    for (name, path) in [("ia", "a"), ("ic", "c")] {
        let spec = IndexSpec {
            name: name.into(),
            path: path.into(),
            unique: false,
        };
        ops.push(DocOp::AddIndex {
            collection: "t".into(),
            spec,
        });
    }
    ops.extend(
        documents
            .iter()
            .map(|(id, doc)| create("t", id, doc.clone())),
    );
    if unique_b {
        let spec = IndexSpec {
            name: "ub".into(),
            path: "b".into(),
            unique: true,
        };
        ops.push(DocOp::AddIndex {
            collection: "t".into(),
            spec,
        });
    }
    for (i, op) in ops.iter().enumerate() {
        let payload = Batch::new().with("docs", op.encode()).encode();
        write_local(&*store, &writer, &payload, Hlc::new(i as u64 + 1, 0))
            .await
            .expect("write");
    }
    let config = ViewConfig::new().with_cache_bytes(0).with_commit_every(2);
    let reducers = || -> Vec<Arc<dyn Reducer>> { vec![Arc::new(Docs::default())] };
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("open");
    views.catch_up().await.expect("catch up");
    drop(views);
    Views::open(store, thread, reducers(), config)
        .await
        .expect("reopen")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// On random documents and queries, the store (through whatever index it picks) returns
    /// exactly what a naive evaluator returns, in the same order; walking the pages with
    /// cursors gives the same documents as one unlimited query.
    #[test]
    fn queries_equal_a_naive_evaluator(
        documents in prop::collection::vec(document(), 0..25),
        queries in prop::collection::vec(query(), 1..6),
        unique_b in any::<bool>(),
    ) {
        let docs = Docs::default();
        let mut state = State::new();
        docs.apply_local(&mut state, &DocOp::CreateCollection {
            name: "t".into(),
            schema: json!({"type": "object"}).to_string(),
        }).expect("collection");
        for (name, path) in [("ia", "a"), ("ic", "c")] {
            let spec = IndexSpec { name: name.into(), path: path.into(), unique: false };
            docs.apply_local(&mut state, &DocOp::AddIndex { collection: "t".into(), spec }).expect("index");
        }
        let mut stored = Vec::new();
        for (i, doc) in documents.into_iter().enumerate() {
            let id = format!("d{i:02}");
            if docs.apply_local(&mut state, &create("t", &id, doc.clone())).is_ok() {
                stored.push((id, doc));
            }
        }
        // A unique index added afterwards is refused when values repeat, and used otherwise.
        if unique_b {
            let spec = IndexSpec { name: "ub".into(), path: "b".into(), unique: true };
            let op = DocOp::AddIndex { collection: "t".into(), spec };
            let mut values: Vec<Vec<u8>> = stored
                .iter()
                .filter_map(|(_, d)| naive::at(d, "b").and_then(threads_db::json::encode_scalar))
                .collect();
            let n = values.len();
            values.sort();
            values.dedup();
            prop_assert_eq!(docs.apply_local(&mut state, &op).is_ok(), values.len() == n);
        }
        // The same documents in a store, read through a cache evicted at every commit and
        // reopened empty: every index range, cursor seek and document comes from the
        // store's rows, and gives the same pages.
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let mut views = rt.block_on(stored_views(&stored, unique_b));
        for q in &queries {
            let mut all = Query { limit: Some(3), offset: 0, ..q.clone() };
            loop {
                let ours = Docs::query(&state, "t", &all).expect("query");
                let theirs = rt
                    .block_on(views.read("docs", |s| Docs::query(s, "t", &all)))
                    .expect("read")
                    .expect("query");
                prop_assert_eq!(&theirs, &ours);
                match ours.next {
                    Some(cursor) => all.after = Some(cursor),
                    None => break,
                }
            }
        }
        for q in queries {
            let expected = naive::run(&stored, &q);
            let page = Docs::query(&state, "t", &q).expect("query");
            let got: Vec<String> = page.docs.iter().map(|(id, _)| id.clone()).collect();
            prop_assert_eq!(&got, &expected, "query {:?} via {}", &q, Docs::explain(&state, "t", &q).expect("plan"));

            // Pages of two, walked with cursors, cover the unlimited result.
            let mut all = Query { limit: None, offset: 0, ..q.clone() };
            let whole = naive::run(&stored, &all);
            all.limit = Some(2);
            let mut walked = Vec::new();
            loop {
                let page = Docs::query(&state, "t", &all).expect("page");
                walked.extend(page.docs.iter().map(|(id, _)| id.clone()));
                match page.next {
                    Some(cursor) => all.after = Some(cursor),
                    None => break,
                }
                prop_assert!(walked.len() <= whole.len());
            }
            prop_assert_eq!(walked, whole);
        }
    }
}

/// Dropping a collection removes every row of it (documents, index entries, counts) and
/// nothing else; the name can be used again, empty, with its unique values free.
#[test]
fn a_dropped_collection_leaves_no_row_and_can_be_created_again() {
    let (docs, mut state) = setup();
    add_index(&docs, &mut state, "by_age", "age", false);
    docs.apply_local(
        &mut state,
        &DocOp::CreateCollection {
            name: "other".into(),
            schema: people_schema(),
        },
    )
    .expect("other");
    for (id, email) in [("ann", "a@x"), ("bob", "b@x")] {
        docs.apply_local(
            &mut state,
            &create("people", id, json!({"name": id, "email": email, "age": 30})),
        )
        .expect("doc");
    }
    // One without the indexed path: it has an index entry too.
    docs.apply_local(&mut state, &create("people", "cy", json!({"name": "Cy"})))
        .expect("cy");
    docs.apply_local(
        &mut state,
        &create("other", "keep", json!({"name": "Keep"})),
    )
    .expect("other doc");
    let before_other: Vec<(Vec<u8>, Vec<u8>)> = state
        .prefix(b"")
        .filter(|(k, _)| k.windows(5).any(|w| w == b"other"))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let people_rows = state
        .prefix(b"")
        .filter(|(k, _)| k.windows(6).any(|w| w == b"people"))
        .count();
    assert!(
        people_rows >= 7,
        "the collection, 3 documents and their entries: {people_rows}"
    );
    assert!(!before_other.is_empty());
    let dropped = DocOp::DropCollection {
        name: "people".into(),
    };
    assert_eq!(DocOp::decode(&dropped.encode()).expect("decodes"), dropped);
    docs.apply_local(&mut state, &dropped).expect("drop");
    let left: Vec<Vec<u8>> = state
        .prefix(b"")
        .map(|(k, _)| k.to_vec())
        .filter(|k| k.windows(6).any(|w| w == b"people"))
        .collect();
    assert!(
        left.is_empty(),
        "rows of the dropped collection remain: {left:?}"
    );
    let after_other: Vec<(Vec<u8>, Vec<u8>)> = state
        .prefix(b"")
        .filter(|(k, _)| k.windows(5).any(|w| w == b"other"))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(after_other, before_other, "another collection changed");
    assert!(matches!(
        docs.check(&state, &dropped),
        Err(DocError::UnknownCollection(_))
    ));
    assert!(matches!(
        docs.check(&state, &create("people", "ann", json!({"name": "Ann"}))),
        Err(DocError::UnknownCollection(_))
    ));
    // Created again: empty, and a@x is free.
    let mut again = state;
    docs.apply_local(
        &mut again,
        &DocOp::CreateCollection {
            name: "people".into(),
            schema: people_schema(),
        },
    )
    .expect("created again");
    assert!(
        Docs::query(&again, "people", &Query::default())
            .expect("query")
            .docs
            .is_empty()
    );
    docs.apply_local(
        &mut again,
        &create("people", "dan", json!({"name": "Dan", "email": "a@x"})),
    )
    .expect("a@x is free again");
}
