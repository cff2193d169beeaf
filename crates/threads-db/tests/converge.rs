//! Documents and automerge collections converge: replicas that receive the same events in
//! random orders and batches, with catch-ups in between, end with byte-identical views
//! (equal to one that applied everything at once). Live queries report their result set's
//! changes.

use std::collections::BTreeSet;
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};
use proptest::prelude::*;
use serde_json::json;
use threads_crypto::{Identity, ThreadKey};
use threads_db::{Crdt, DocOp, Docs, Filter, IndexSpec, LiveQuery, Query, ResultChange, Source};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_store::{LogBook, MemoryStore, ThreadBook};
use threads_views::{Batch, Reducer, RowChanges, State, ViewConfig, Views};
use tokio::sync::broadcast::error::TryRecvError;

#[derive(Debug, Clone)]
enum Op {
    Create(u8, u8),
    Save(u8, u8),
    Delete(u8),
    Edit(u8, u8),
    /// A change whose actor is another writer's (forged): refused everywhere.
    Forge(u8, u8),
    /// A change with the same (actor, seq) as the writer's next one (equivocation).
    Dup(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 0u8..3).prop_map(|(id, v)| Op::Create(id, v)),
        (0u8..4, 0u8..3).prop_map(|(id, v)| Op::Save(id, v)),
        (0u8..4).prop_map(Op::Delete),
        (0u8..3, any::<u8>()).prop_map(|(id, v)| Op::Edit(id, v)),
        (0u8..3, any::<u8>()).prop_map(|(id, v)| Op::Forge(id, v)),
        (0u8..3, any::<u8>()).prop_map(|(id, v)| Op::Dup(id, v)),
    ]
}

fn doc(id: u8, v: u8) -> String {
    // "u" is under a unique index; "n" must be a number by the schema (v == 2 breaks it).
    let n = if v == 2 {
        json!("not a number")
    } else {
        json!(v)
    };
    json!({"u": format!("u{}", v), "n": n, "id": id}).to_string()
}

struct Log {
    writer: Writer,
    entries: Vec<Appended>,
    am: Vec<AutoCommit>,
}

impl Log {
    fn push(&mut self, time: u64, batch: &Batch) {
        let prev = self.entries.last().map(|a| a.record.head());
        let counter = self.entries.len() as u64 + 1;
        let skip = skip_target(counter).map(|t| *self.entries[t as usize - 1].record.cid());
        let appended = self
            .writer
            .append(prev.as_ref(), skip, &batch.encode(), Hlc::new(time, 0))
            .expect("append");
        self.entries.push(appended);
    }
}

/// A live query followed from the rows each commit changed, as `Db::live_query` follows it.
struct Followed {
    live: LiveQuery,
    rows: tokio::sync::broadcast::Receiver<Arc<RowChanges>>,
    /// Times the whole result set was read, and times only changed documents were.
    full: u32,
    incremental: u32,
}

impl Followed {
    fn new(views: &Views<MemoryStore>, source: Source, collection: &str, query: Query) -> Followed {
        Followed {
            live: LiveQuery::new(source, collection, query).expect("live"),
            rows: views.watch_rows(),
            full: 0,
            incremental: 0,
        }
    }

    /// Takes in every commit since the last call.
    async fn follow(&mut self, views: &mut Views<MemoryStore>) {
        let (mut full, mut ids) = (self.full == 0, BTreeSet::new());
        loop {
            match self.rows.try_recv() {
                Ok(commit) => match self.live.changed_ids(&commit) {
                    Some(changed) => ids.extend(changed),
                    None => full = true,
                },
                Err(TryRecvError::Lagged(_)) => full = true,
                Err(_) => break,
            }
        }
        let live = &mut self.live;
        if full {
            let now = views
                .read(live.view(), |s| live.result(s))
                .await
                .expect("read");
            // A collection that does not exist yet: read again when it is created.
            if let Ok(now) = now {
                live.update(now);
                self.full += 1;
            }
        } else if !ids.is_empty() {
            let now = views
                .read(live.view(), |s| live.result_for(s, &ids))
                .await
                .expect("read");
            live.update_some(now);
            self.incremental += 1;
        }
    }

    /// The result set as followed equals the query's result now.
    async fn check(&self, views: &mut Views<MemoryStore>) -> Result<(), TestCaseError> {
        let live = &self.live;
        let now = views
            .read(live.view(), |s| live.result(s))
            .await
            .expect("read");
        prop_assert_eq!(live.current(), &now.unwrap_or_default());
        Ok(())
    }
}

fn reducers() -> Vec<Arc<dyn Reducer>> {
    vec![Arc::new(Docs::default()), Arc::new(Crdt::default())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn documents_and_automerge_converge(
        events in prop::collection::vec((0usize..3, prop::collection::vec(op(), 1..3), 0u64..3), 1..24),
        schedules in prop::collection::vec(prop::collection::vec(0usize..3, 0..40), 2),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let thread = ThreadId::from_parts(Variant::Raw, [3; 32]);
            let key = ThreadKey::generate();
            let mut logs: Vec<Log> = (0..3u8)
                .map(|i| Log {
                    writer: Writer::new(Identity::from_secret_bytes(&[i + 10; 32]), thread, &key)
                        .expect("writer"),
                    entries: Vec::new(),
                    am: (0..3u8)
                        .map(|_| {
                            let me = Identity::from_secret_bytes(&[i + 10; 32]).log_id();
                            AutoCommit::new().with_actor(ActorId::from(me.to_bytes()))
                        })
                        .collect(),
                })
                .collect();
            // The first writer sets the collection up at time 2: events of others ordered
            // before it are refused the same way everywhere.
            let setup = Batch::new()
                .with("docs", DocOp::CreateCollection {
                    name: "c".into(),
                    schema: json!({"type": "object", "properties": {"n": {"type": "number"}}}).to_string(),
                }.encode())
                .with("docs", DocOp::AddIndex {
                    collection: "c".into(),
                    spec: IndexSpec { name: "u".into(), path: "u".into(), unique: true },
                }.encode());
            logs[0].push(2, &setup);
            let mut clocks = [2u64; 3];
            let mut forged_any = false;
            for (who, ops, lag) in events {
                let mut batch = Batch::new();
                for op in ops {
                    match op {
                        Op::Create(id, v) => batch.push("docs", DocOp::Create {
                            collection: "c".into(), id: format!("d{id}"), doc: doc(id, v),
                        }.encode()),
                        Op::Save(id, v) => batch.push("docs", DocOp::Save {
                            collection: "c".into(), id: format!("d{id}"), doc: doc(id, v),
                        }.encode()),
                        Op::Delete(id) => batch.push("docs", DocOp::Delete {
                            collection: "c".into(), id: format!("d{id}"),
                        }.encode()),
                        Op::Edit(id, v) => {
                            let am = &mut logs[who].am[id as usize];
                            am.put(ROOT, "shared", i64::from(v)).expect("put");
                            am.put(ROOT, format!("by{who}"), i64::from(v)).expect("put");
                            am.commit();
                            let change = am.get_last_local_change().expect("a change").clone();
                            batch.push("crdt", Crdt::change("notes", &format!("n{id}"), &change));
                        }
                        Op::Forge(id, v) => {
                            let victim = (who + 1) % 3;
                            let actor = logs[victim].writer.log_id().to_bytes();
                            let mut forged = AutoCommit::new().with_actor(ActorId::from(actor));
                            forged.put(ROOT, "forged", i64::from(v)).expect("put");
                            forged.commit();
                            let change = forged.get_last_local_change().expect("a change").clone();
                            batch.push("crdt", Crdt::change("notes", &format!("n{id}"), &change));
                            forged_any = true;
                        }
                        Op::Dup(id, v) => {
                            // A twin of the writer's document makes the change its next edit
                            // will also number.
                            let mut twin = logs[who].am[id as usize].clone();
                            twin.put(ROOT, "twin", i64::from(v)).expect("put");
                            twin.commit();
                            let change = twin.get_last_local_change().expect("a change").clone();
                            batch.push("crdt", Crdt::change("notes", &format!("n{id}"), &change));
                        }
                    }
                }
                let time = (clocks.iter().max().copied().unwrap_or(0) + 1).saturating_sub(lag).max(clocks[who] + 1);
                clocks[who] = time;
                logs[who].push(time, &batch);
            }

            let replica = |order: Option<&Vec<usize>>| {
                let logs = &logs;
                let key = key.clone();
                let order = order.cloned();
                async move {
                    let store = Arc::new(MemoryStore::new());
                    store.put_thread(thread, &key).await.expect("thread");
                    let mut views = Views::open(Arc::clone(&store), thread, reducers(), ViewConfig::new().with_commit_every(3).with_cache_bytes(if order.is_some() { 0 } else { 64 << 20 }))
                        .await
                        .expect("open");
                    let mut followed = [
                        Followed::new(&views, Source::Documents, "c", Query::filter(Filter::Ge("n".into(), json!(1)))),
                        Followed::new(&views, Source::Automerge, "notes", Query::all()),
                    ];
                    let mut have = [0usize; 3];
                    for who in order.unwrap_or_default() {
                        if have[who] < logs[who].entries.len() {
                            let log = logs[who].writer.log_id();
                            let head = store.head(thread, log).await.expect("head");
                            store.append(thread, log, head, &logs[who].entries[have[who]..=have[who]]).await.expect("deliver");
                            have[who] += 1;
                            views.catch_up().await.expect("catch up");
                            for f in &mut followed {
                                f.follow(&mut views).await;
                                f.check(&mut views).await.expect("followed");
                            }
                        }
                    }
                    for (who, log) in logs.iter().enumerate() {
                        if have[who] < log.entries.len() {
                            let id = log.writer.log_id();
                            let head = store.head(thread, id).await.expect("head");
                            store.append(thread, id, head, &log.entries[have[who]..]).await.expect("deliver");
                        }
                    }
                    views.catch_up().await.expect("catch up");
                    views
                }
            };
            let mut reference = replica(None).await;
            let digest = reference.digest().await.expect("digest");
            let rejections = reference.rejections().await.expect("rejections");
            for schedule in &schedules {
                let mut views = replica(Some(schedule)).await;
                prop_assert_eq!(views.digest().await.expect("digest"), digest);
                prop_assert_eq!(views.rejections().await.expect("rejections"), rejections.clone());
            }
            // Forged changes are refused (the same way on every replica, checked above).
            if forged_any {
                prop_assert!(rejections.iter().any(|r| r.reason.contains("actor")));
            }
            // The automerge documents are the merge of every writer's changes.
            let merged = reference
                .read("crdt", |state| {
                    let docs = Crdt::query(state, "notes", &Query::all()).expect("query").docs;
                    docs.into_iter()
                        .map(|(id, value)| {
                            let merged = Crdt::document(state, "notes", &id).expect("document");
                            (value, serde_json::to_value(automerge::AutoSerde::from(&merged)).expect("json"))
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .expect("read");
            for (value, json) in merged {
                prop_assert_eq!(value, json);
            }
            Ok(())
        })?;
    }
}

#[test]
fn live_queries_report_changes_to_their_result_set() {
    let docs = Docs::default();
    let mut state = State::new();
    let op = |s: &mut State, op: DocOp| docs.apply_local(s, &op).expect("applies");
    op(
        &mut state,
        DocOp::CreateCollection {
            name: "t".into(),
            schema: json!({"type": "object"}).to_string(),
        },
    );
    let mut live = LiveQuery::new(
        Source::Documents,
        "t",
        Query::filter(Filter::Ge("n".into(), json!(5))),
    )
    .expect("live");
    assert_eq!(live.refresh(&state).expect("refresh"), []);
    for (id, n) in [("a", 1), ("b", 7)] {
        op(
            &mut state,
            DocOp::Create {
                collection: "t".into(),
                id: id.into(),
                doc: json!({"n": n}).to_string(),
            },
        );
    }
    assert_eq!(
        live.refresh(&state).expect("refresh"),
        [ResultChange::Added {
            id: "b".into(),
            doc: json!({"n": 7})
        }]
    );
    op(
        &mut state,
        DocOp::Save {
            collection: "t".into(),
            id: "a".into(),
            doc: json!({"n": 9}).to_string(),
        },
    );
    op(
        &mut state,
        DocOp::Save {
            collection: "t".into(),
            id: "b".into(),
            doc: json!({"n": 8}).to_string(),
        },
    );
    assert_eq!(
        live.refresh(&state).expect("refresh"),
        [
            ResultChange::Added {
                id: "a".into(),
                doc: json!({"n": 9})
            },
            ResultChange::Updated {
                id: "b".into(),
                doc: json!({"n": 8})
            }
        ]
    );
    op(
        &mut state,
        DocOp::Save {
            collection: "t".into(),
            id: "a".into(),
            doc: json!({"n": 2}).to_string(),
        },
    );
    op(
        &mut state,
        DocOp::Delete {
            collection: "t".into(),
            id: "b".into(),
        },
    );
    assert_eq!(
        live.refresh(&state).expect("refresh"),
        [
            ResultChange::Removed { id: "a".into() },
            ResultChange::Removed { id: "b".into() }
        ]
    );
    assert!(live.current().is_empty());
    assert_eq!(live.refresh(&state).expect("refresh"), []);
}

/// Writes in order are followed document by document: after the first read (when the
/// collection is created), a live query never reads its whole result set again.
#[test]
fn a_live_query_follows_in_order_writes_without_running_again() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let thread = ThreadId::from_parts(Variant::Raw, [4; 32]);
        let key = ThreadKey::generate();
        let store = Arc::new(MemoryStore::new());
        store.put_thread(thread, &key).await.expect("thread");
        let mut views = Views::open(Arc::clone(&store), thread, reducers(), ViewConfig::new())
            .await
            .expect("open");
        let mut log = Log {
            writer: Writer::new(Identity::from_secret_bytes(&[9; 32]), thread, &key)
                .expect("writer"),
            entries: Vec::new(),
            am: Vec::new(),
        };
        let query = Query::filter(Filter::Ge("n".into(), json!(1)));
        let mut followed = Followed::new(&views, Source::Documents, "c", query);
        let collection = DocOp::CreateCollection {
            name: "c".into(),
            schema: json!({"type": "object"}).to_string(),
        };
        let mut ops = vec![collection];
        for i in 0..40u8 {
            let id = format!("d{}", i % 10);
            let doc = json!({"n": i % 3}).to_string();
            ops.push(if i < 10 {
                DocOp::Create {
                    collection: "c".into(),
                    id,
                    doc,
                }
            } else if i % 7 == 0 {
                DocOp::Delete {
                    collection: "c".into(),
                    id,
                }
            } else {
                DocOp::Save {
                    collection: "c".into(),
                    id,
                    doc,
                }
            });
        }
        for (i, op) in ops.into_iter().enumerate() {
            log.push(10 + i as u64, &Batch::new().with("docs", op.encode()));
            let log_id = log.writer.log_id();
            let head = store.head(thread, log_id).await.expect("head");
            store
                .append(thread, log_id, head, &log.entries[i..])
                .await
                .expect("append");
            views.catch_up().await.expect("catch up");
            followed.follow(&mut views).await;
            followed.check(&mut views).await.expect("followed");
        }
        assert_eq!(followed.full, 1);
        assert!(followed.incremental >= 30, "{}", followed.incremental);
    });
}

/// A document's automerge state stays in memory: each change applies to it, also after a
/// check of the same change (a local write), instead of loading every stored change again.
#[test]
fn automerge_changes_apply_to_the_document_kept_in_memory() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let thread = ThreadId::from_parts(Variant::Raw, [5; 32]);
        let key = ThreadKey::generate();
        let store = Arc::new(MemoryStore::new());
        store.put_thread(thread, &key).await.expect("thread");
        let crdt = Crdt::default();
        let reducers: Vec<Arc<dyn Reducer>> = vec![Arc::new(crdt.clone())];
        let mut views = Views::open(Arc::clone(&store), thread, reducers, ViewConfig::new())
            .await
            .expect("open");
        let me = Identity::from_secret_bytes(&[6; 32]);
        let mut log = Log {
            writer: Writer::new(me.clone(), thread, &key).expect("writer"),
            entries: Vec::new(),
            am: Vec::new(),
        };
        let mut doc = AutoCommit::new().with_actor(ActorId::from(me.log_id().to_bytes()));
        for i in 0..100i64 {
            doc.put(ROOT, "n", i).expect("put");
            doc.put(ROOT, format!("k{}", i % 5), i).expect("put");
            doc.commit();
            let change = doc.get_last_local_change().expect("a change").clone();
            let batch = Batch::new().with("crdt", Crdt::change("notes", "n1", &change));
            let time = Hlc::new(10 + i as u64, 0);
            let order = threads_log::EventOrder {
                time,
                log: me.log_id(),
                counter: i as u64 + 1,
            };
            assert_eq!(views.check(order, &batch).await.expect("check"), vec![]);
            log.push(10 + i as u64, &batch);
            let head = store.head(thread, me.log_id()).await.expect("head");
            store
                .append(thread, me.log_id(), head, &log.entries[i as usize..])
                .await
                .expect("append");
            views.catch_up().await.expect("catch up");
        }
        assert_eq!(crdt.loads(), 1);
        let json = views
            .read("crdt", |state| Crdt::get(state, "notes", "n1"))
            .await
            .expect("read");
        assert_eq!(json.expect("the document")["n"], json!(99));
    });
}
