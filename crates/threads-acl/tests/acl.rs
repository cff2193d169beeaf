//! Enforcement of access-controlled threads: removed writers, unauthorized ACL edits,
//! back-dated events, raw threads, admission, and convergence under random delivery.

use std::sync::Arc;

use proptest::prelude::*;
use threads_acl::{ACL_VIEW, AclAdmission, AclOp, AclViews, Role, acl_key, new_thread};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_net::Admission;
use threads_store::{LogBook, MemoryStore, ThreadBook};
use threads_views::{Batch, Kv, Reducer, ViewConfig};

/// A thread and what its members wrote, log by log.
struct Scene {
    thread: ThreadId,
    key: ThreadKey,
    ids: Vec<Identity>,
    logs: Vec<Vec<Appended>>,
}

impl Scene {
    /// Identity 0 owns the thread (access-controlled unless `raw`).
    fn new(members: u8, raw: bool) -> (Scene, [u8; 16]) {
        let ids: Vec<Identity> = (0..members)
            .map(|i| Identity::from_secret_bytes(&[i + 1; 32]))
            .collect();
        let (thread, salt) = if raw {
            (ThreadId::from_parts(Variant::Raw, [9; 32]), [0; 16])
        } else {
            new_thread(&ids[0].log_id())
        };
        let scene = Scene {
            thread,
            key: ThreadKey::generate(),
            logs: vec![Vec::new(); ids.len()],
            ids,
        };
        (scene, salt)
    }

    fn id(&self, member: usize) -> LogId {
        self.ids[member].log_id()
    }

    /// Appends an event with `batch` at `time` to `member`'s log.
    fn write(&mut self, member: usize, time: u64, batch: Batch) {
        // ACL events are sealed with the ACL key, every other event with the read key.
        let acl = batch.ops().iter().any(|(view, _)| view == ACL_VIEW);
        self.write_sealed(member, time, batch, acl);
    }

    /// Appends an event with `batch` at `time` to `member`'s log, sealed with the ACL key
    /// if `acl` (what a follower can do: it holds the service key the ACL key derives
    /// from), else with the read key.
    fn write_sealed(&mut self, member: usize, time: u64, batch: Batch, acl: bool) {
        let key = if acl {
            acl_key(self.thread, &self.key)
        } else {
            self.key.clone()
        };
        let writer = Writer::new(self.ids[member].clone(), self.thread, &key).expect("writer");
        let log = &mut self.logs[member];
        let prev = log.last().map(|a| a.record.head());
        let counter = log.len() as u64 + 1;
        let skip = skip_target(counter).map(|t| *log[t as usize - 1].record.cid());
        let appended = writer
            .append(prev.as_ref(), skip, &batch.encode(), Hlc::new(time, 0))
            .expect("append");
        log.push(appended);
    }

    async fn replica(&self) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        store
            .put_thread(self.thread, &self.key)
            .await
            .expect("thread");
        store
    }

    /// Stores `member`'s log up to `upto` entries in `store`.
    async fn deliver(&self, store: &MemoryStore, member: usize, upto: usize) {
        let log = self.id(member);
        let head = store.head(self.thread, log).await.expect("head");
        let have = head.map_or(0, |h| h.counter as usize);
        if upto > have {
            store
                .append(self.thread, log, head, &self.logs[member][have..upto])
                .await
                .expect("deliver");
        }
    }

    async fn deliver_all(&self, store: &MemoryStore) {
        for member in 0..self.logs.len() {
            self.deliver(store, member, self.logs[member].len()).await;
        }
    }

    async fn open(&self, store: &Arc<MemoryStore>) -> AclViews<MemoryStore> {
        let kv: Arc<dyn Reducer> = Arc::new(Kv::new("kv"));
        AclViews::open(
            Arc::clone(store),
            self.thread,
            &self.ids[0],
            vec![kv],
            ViewConfig::new().with_commit_every(1).with_cache_bytes(0),
        )
        .await
        .expect("open")
    }
}

fn acl(ops: &[AclOp]) -> Batch {
    ops.iter()
        .fold(Batch::new(), |b, op| b.with(ACL_VIEW, op.encode()))
}

fn put(key: &str) -> Batch {
    Batch::new().with("kv", Kv::put(key.as_bytes(), b"1"))
}

fn del(key: &str) -> Batch {
    Batch::new().with("kv", Kv::del(key.as_bytes()))
}

async fn keys(views: &mut AclViews<MemoryStore>) -> Vec<String> {
    views
        .read("kv", |state| {
            Kv::list(state)
                .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                .collect()
        })
        .await
        .expect("kv")
}

async fn rejections(views: &mut AclViews<MemoryStore>) -> Vec<threads_views::Rejection> {
    views.rejections().await.expect("rejections")
}

/// Every way of delivering the scene checked here gives the same views: all at once,
/// the writer's log before the owner's, and entry by entry with a catch-up after each.
async fn replicas(scene: &Scene) -> Vec<AclViews<MemoryStore>> {
    let mut out = Vec::new();

    let store = scene.replica().await;
    scene.deliver_all(&store).await;
    let mut views = scene.open(&store).await;
    views.catch_up().await.expect("catch up");
    out.push(views);

    let store = scene.replica().await;
    let mut views = scene.open(&store).await;
    for member in (0..scene.logs.len()).rev() {
        scene
            .deliver(&store, member, scene.logs[member].len())
            .await;
        views.catch_up().await.expect("catch up");
    }
    out.push(views);

    let store = scene.replica().await;
    let mut views = scene.open(&store).await;
    let longest = scene.logs.iter().map(Vec::len).max().unwrap_or(0);
    for upto in 1..=longest {
        for member in (0..scene.logs.len()).rev() {
            scene
                .deliver(&store, member, upto.min(scene.logs[member].len()))
                .await;
            views.catch_up().await.expect("catch up");
        }
    }
    // And the same store reopened.
    drop(views);
    let mut views = scene.open(&store).await;
    views.catch_up().await.expect("catch up");
    out.push(views);
    out
}

#[tokio::test]
async fn a_removed_writer_is_ignored_by_every_peer() {
    let (mut scene, salt) = Scene::new(3, false);
    let (owner, writer, reader) = (0, 1, 2);
    scene.write(
        owner,
        1,
        acl(&[
            AclOp::Init { salt },
            AclOp::SetRole {
                member: scene.id(writer),
                role: Role::Write,
                from: 1,
            },
            AclOp::SetRole {
                member: scene.id(reader),
                role: Role::Read,
                from: 1,
            },
        ]),
    );
    scene.write(writer, 2, put("a"));
    scene.write(writer, 3, put("b"));
    // The owner has seen two of the writer's events and takes the write role away.
    scene.write(
        owner,
        10,
        acl(&[AclOp::SetRole {
            member: scene.id(writer),
            role: Role::Read,
            from: 3,
        }]),
    );
    // The writer keeps writing: once back-dated before the revocation, once after it.
    scene.write(writer, 4, put("backdated"));
    scene.write(writer, 12, put("late"));
    // A reader writes too.
    scene.write(reader, 13, put("reader"));

    let mut replicas = replicas(&scene).await;
    let first = replicas[0].digest().await.expect("digest");
    for views in &mut replicas {
        assert_eq!(keys(views).await, ["a", "b"]);
        assert_eq!(views.acl().role(&scene.id(writer)), Role::Read);
        let rejected: Vec<(LogId, u64)> = rejections(views)
            .await
            .iter()
            .map(|r| (r.author(), r.order.counter))
            .collect();
        assert_eq!(
            rejected,
            [
                (scene.id(writer), 3),
                (scene.id(writer), 4),
                (scene.id(reader), 1)
            ]
        );
        let refused = rejections(views).await;
        assert!(refused[0].reason.contains("write is needed"), "{refused:?}");
        assert_eq!(views.digest().await.expect("digest"), first);
    }
}

#[tokio::test]
async fn an_acl_edit_without_the_right_changes_nothing() {
    let (mut scene, salt) = Scene::new(3, false);
    let (owner, member, stranger) = (0, 1, 2);
    scene.write(
        owner,
        1,
        acl(&[
            AclOp::Init { salt },
            AclOp::SetRole {
                member: scene.id(member),
                role: Role::Write,
                from: 1,
            },
        ]),
    );
    scene.write(owner, 2, put("k"));
    // The member tries to raise itself, open the thread to everyone, become an editor,
    // and found the ACL again.
    scene.write(
        member,
        3,
        acl(&[
            AclOp::SetRole {
                member: scene.id(member),
                role: Role::Delete,
                from: 1,
            },
            AclOp::SetDefault { role: Role::Write },
            AclOp::SetEditor {
                member: scene.id(member),
                editor: true,
                from: 1,
            },
            AclOp::Init { salt },
        ]),
    );
    scene.write(member, 4, del("k"));
    scene.write(stranger, 5, put("stranger"));
    scene.write(member, 6, put("m"));

    let mut replicas = replicas(&scene).await;
    let first = replicas[0].digest().await.expect("digest");
    for views in &mut replicas {
        let acl = views.acl();
        assert_eq!(acl.role(&scene.id(member)), Role::Write);
        assert_eq!(acl.default_role(), Role::NoAccess);
        assert!(!acl.is_editor_now(&scene.id(member)));
        assert_eq!(acl.owner(), Some(scene.id(owner)));
        let refused: Vec<(LogId, String)> = acl
            .rejections()
            .iter()
            .map(|r| (r.author(), r.reason.clone()))
            .collect();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(
            refused
                .iter()
                .all(|(author, _)| *author == scene.id(member))
        );
        assert!(refused[0].1.contains("may not change the ACL"));
        assert!(refused[3].1.contains("already has an owner"));
        // The delete needs the delete role; the stranger has no role at all.
        assert_eq!(keys(views).await, ["k", "m"]);
        let rejected: Vec<(LogId, u64)> = rejections(views)
            .await
            .iter()
            .map(|r| (r.author(), r.order.counter))
            .collect();
        assert_eq!(rejected, [(scene.id(member), 2), (scene.id(stranger), 1)]);
        assert_eq!(views.digest().await.expect("digest"), first);
    }
}

#[tokio::test]
async fn a_revoked_editor_cannot_backdate_acl_changes() {
    let (mut scene, salt) = Scene::new(4, false);
    let (owner, editor, early, late) = (0, 1, 2, 3);
    scene.write(
        owner,
        1,
        acl(&[
            AclOp::Init { salt },
            AclOp::SetEditor {
                member: scene.id(editor),
                editor: true,
                from: 1,
            },
        ]),
    );
    scene.write(
        editor,
        2,
        acl(&[AclOp::SetRole {
            member: scene.id(early),
            role: Role::Write,
            from: 1,
        }]),
    );
    // The owner has seen one of the editor's events and revokes its right.
    scene.write(
        owner,
        10,
        acl(&[AclOp::SetEditor {
            member: scene.id(editor),
            editor: false,
            from: 2,
        }]),
    );
    // The editor back-dates a grant before the revocation.
    scene.write(
        editor,
        3,
        acl(&[AclOp::SetRole {
            member: scene.id(late),
            role: Role::Write,
            from: 1,
        }]),
    );
    scene.write(early, 20, put("early"));
    scene.write(late, 21, put("late"));

    for views in &mut replicas(&scene).await {
        let acl = views.acl();
        assert_eq!(acl.role(&scene.id(early)), Role::Write);
        assert_eq!(acl.role(&scene.id(late)), Role::NoAccess);
        assert_eq!(acl.rejections().len(), 1);
        assert_eq!(acl.rejections()[0].author(), scene.id(editor));
        assert_eq!(keys(views).await, ["early"]);
    }
}

#[tokio::test]
async fn roles_on_one_resource_refine_the_thread_role() {
    let (mut scene, salt) = Scene::new(3, false);
    let (owner, member, guest) = (0, 1, 2);
    let on = |resource: &str, who: LogId, role: Role| AclOp::SetResourceRole {
        view: "kv".to_owned(),
        resource: resource.as_bytes().to_vec(),
        member: who,
        role,
        from: 1,
    };
    scene.write(
        owner,
        1,
        acl(&[
            AclOp::Init { salt },
            AclOp::SetRole {
                member: scene.id(member),
                role: Role::Write,
                from: 1,
            },
            // The member may not touch "locked"; the guest, with no role in the thread,
            // may write "shared" and delete it.
            on("locked", scene.id(member), Role::Read),
            on("shared", scene.id(guest), Role::Delete),
        ]),
    );
    scene.write(owner, 2, put("locked"));
    scene.write(member, 3, put("locked"));
    scene.write(member, 4, put("mine"));
    scene.write(guest, 5, put("shared"));
    scene.write(guest, 6, put("elsewhere"));
    scene.write(guest, 7, del("shared"));
    scene.write(guest, 8, put("shared"));
    // A resource role set by a member who is not an editor counts for nothing.
    scene.write(
        member,
        9,
        acl(&[on("locked", scene.id(member), Role::Write)]),
    );
    scene.write(member, 10, del("mine"));

    for views in &mut replicas(&scene).await {
        assert_eq!(keys(views).await, ["locked", "mine", "shared"]);
        let stamp = views
            .read("kv", |state| Kv::stamp(state, b"locked"))
            .await
            .expect("kv")
            .expect("stamp");
        assert_eq!(stamp.order.log, scene.id(owner));
        let rejected: Vec<(LogId, u64)> = rejections(views)
            .await
            .iter()
            .map(|r| (r.author(), r.order.counter))
            .collect();
        assert_eq!(
            rejected,
            [
                (scene.id(member), 1),
                (scene.id(guest), 2),
                (scene.id(member), 4)
            ]
        );
        assert_eq!(views.acl().rejections().len(), 1);
    }
}

#[tokio::test]
async fn raw_threads_check_nothing() {
    let (mut scene, _) = Scene::new(2, true);
    scene.write(0, 1, put("owner"));
    scene.write(1, 2, put("anyone"));
    scene.write(1, 3, del("owner"));
    scene.write(
        1,
        4,
        acl(&[AclOp::SetDefault {
            role: Role::NoAccess,
        }]),
    );
    scene.write(1, 5, put("after"));
    for views in &mut replicas(&scene).await {
        assert_eq!(keys(views).await, ["after", "anyone"]);
        assert!(rejections(views).await.is_empty());
        assert_eq!(views.acl().counted().len(), 0);
        assert!(
            views.acl().rejections()[0]
                .reason
                .contains("not access-controlled")
        );
    }
    let admission = AclAdmission::new();
    assert!(admission.admits(scene.thread, scene.id(1).peer_id()));
}

#[tokio::test]
async fn admission_follows_the_acl() {
    let (mut scene, salt) = Scene::new(4, false);
    let roles = [Role::Follow, Role::Read, Role::NoAccess];
    let mut ops = vec![AclOp::Init { salt }];
    for (i, role) in roles.iter().enumerate() {
        ops.push(AclOp::SetRole {
            member: scene.id(i + 1),
            role: *role,
            from: 1,
        });
    }
    scene.write(0, 1, acl(&ops));
    let store = scene.replica().await;
    let admission = AclAdmission::new();
    // Before the ACL is known, nobody is served.
    assert!(!admission.admits(scene.thread, scene.id(1).peer_id()));
    scene.deliver_all(&store).await;
    let mut views = scene.open(&store).await;
    views.catch_up().await.expect("catch up");
    admission.register(views.shared_acl());
    let admitted: Vec<bool> = (0..4)
        .map(|i| admission.admits(scene.thread, scene.id(i).peer_id()))
        .collect();
    assert_eq!(admitted, [true, true, true, false]);
    let stranger = Identity::from_secret_bytes(&[99; 32]).log_id();
    assert!(!admission.admits(scene.thread, stranger.peer_id()));

    // A revocation reaches the network as soon as the views apply it.
    scene.write(
        0,
        2,
        acl(&[AclOp::SetRole {
            member: scene.id(2),
            role: Role::NoAccess,
            from: 1,
        }]),
    );
    scene.deliver_all(&store).await;
    views.catch_up().await.expect("catch up");
    assert!(!admission.admits(scene.thread, scene.id(2).peer_id()));
}

/// One step of a random history: who writes what, and when.
#[derive(Debug, Clone)]
enum Step {
    /// An editor (owner or member 1) sets a member's role.
    Role { by: usize, member: usize, role: u8 },
    /// The owner makes member 1 an editor or not.
    Editor { on: bool },
    /// The owner sets the default role.
    Default { role: u8 },
    /// A member writes or deletes a key.
    Data { by: usize, key: u8, delete: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..2usize, 1..4usize, 0..5u8).prop_map(|(by, member, role)| Step::Role {
            by,
            member,
            role
        }),
        any::<bool>().prop_map(|on| Step::Editor { on }),
        (0..5u8).prop_map(|role| Step::Default { role }),
        (0..4usize, 0..4u8, any::<bool>()).prop_map(|(by, key, delete)| Step::Data {
            by,
            key,
            delete
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random grants, revocations and writes from several members, delivered to replicas
    /// in random orders with catch-ups in between: every replica ends with the same ACL and
    /// the same views as one that applied everything at once.
    #[test]
    fn replicas_agree_on_acl_and_views(
        steps in prop::collection::vec((step(), 0..3u64), 1..30),
        schedules in prop::collection::vec(prop::collection::vec(0..4usize, 0..60), 3),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let (mut scene, salt) = Scene::new(4, false);
            scene.write(0, 1, acl(&[AclOp::Init { salt }]));
            let mut clocks = [1u64; 4];
            for (step, jitter) in steps {
                let (by, batch) = match step {
                    Step::Role { by, member, role } => {
                        let from = scene.logs[member].len() as u64 + 1;
                        let op = AclOp::SetRole {
                            member: scene.id(member),
                            role: Role::from_code(role).expect("role"),
                            from,
                        };
                        (by, acl(&[op]))
                    }
                    Step::Editor { on } => {
                        let from = scene.logs[1].len() as u64 + 1;
                        (0, acl(&[AclOp::SetEditor { member: scene.id(1), editor: on, from }]))
                    }
                    Step::Default { role } => (
                        0,
                        acl(&[AclOp::SetDefault { role: Role::from_code(role).expect("role") }]),
                    ),
                    Step::Data { by, key, delete } => {
                        let key = format!("k{key}");
                        (by, if delete { del(&key) } else { put(&key) })
                    }
                };
                // Clocks move forward per member, with jitter so logs interleave.
                let time = clocks.iter().max().copied().unwrap_or(1) + 1 - jitter.min(1);
                let time = time.max(clocks[by] + 1);
                clocks[by] = time;
                scene.write(by, time, batch);
            }

            let reference_store = scene.replica().await;
            scene.deliver_all(&reference_store).await;
            let mut reference = scene.open(&reference_store).await;
            reference.catch_up().await.expect("catch up");

            for schedule in schedules {
                let store = scene.replica().await;
                let mut views = scene.open(&store).await;
                let mut have = [0usize; 4];
                for member in schedule {
                    if have[member] < scene.logs[member].len() {
                        have[member] += 1;
                        scene.deliver(&store, member, have[member]).await;
                    }
                    views.catch_up().await.expect("catch up");
                }
                scene.deliver_all(&store).await;
                views.catch_up().await.expect("catch up");
                prop_assert_eq!(views.acl(), reference.acl());
                prop_assert_eq!(keys(&mut views).await, keys(&mut reference).await);
                prop_assert_eq!(rejections(&mut views).await, rejections(&mut reference).await);
                prop_assert_eq!(
                    views.digest().await.expect("digest"),
                    reference.digest().await.expect("digest")
                );
            }
            Ok(())
        })?;
    }
}

/// A follower holds the service key, so it can seal events with the ACL key; whatever
/// such an event holds besides ACL operations, no content view applies it, in a raw
/// thread as in an access-controlled one, and the log goes on.
#[tokio::test]
async fn content_sealed_with_the_acl_key_is_not_applied() {
    for raw in [true, false] {
        let (mut scene, salt) = Scene::new(2, raw);
        if !raw {
            scene.write(
                0,
                1,
                acl(&[
                    AclOp::Init { salt },
                    AclOp::SetDefault { role: Role::Write },
                ]),
            );
        }
        scene.write(0, 2, put("honest"));
        // The follower's forgeries: content alone, and content beside an ACL operation.
        scene.write_sealed(1, 3, put("forged"), true);
        let mixed =
            acl(&[AclOp::SetDefault { role: Role::Delete }]).with("kv", Kv::put(b"mixed", b"1"));
        scene.write_sealed(1, 4, mixed, true);
        scene.write(0, 5, put("later"));
        for views in &mut replicas(&scene).await {
            assert_eq!(keys(views).await, ["honest", "later"], "raw: {raw}");
            assert!(
                views.views().blocked().is_empty(),
                "the follower's log goes on"
            );
            // Both forgeries are recorded as refused, with why: the follower's events 1 and 2.
            let refused: Vec<_> = views
                .rejections()
                .await
                .expect("rejections")
                .into_iter()
                .filter(|r| r.reason == threads_views::PASSED_OVER)
                .map(|r| r.order.counter)
                .collect();
            assert_eq!(refused, [1, 2], "raw: {raw}");
        }
    }
}

/// Compaction is an ACL operation: the owner's voids the events it names on every replica
/// whatever the delivery order, and stays whatever the ACL does later (peers drop the
/// bodies); an editor's or a writer's does not count (an editor's right could be revoked
/// back to before it). In a raw thread a member's counts with its proof of the read key
/// (anyone holding the service key, followers included, can write ACL events there).
#[tokio::test]
async fn compaction_by_the_owner_voids_events_for_good() {
    let (mut scene, salt) = Scene::new(3, false);
    let (owner, editor, writer) = (0, 1, 2);
    scene.write(
        owner,
        1,
        acl(&[
            AclOp::Init { salt },
            AclOp::SetEditor {
                member: scene.id(editor),
                editor: true,
                from: 1,
            },
            AclOp::SetRole {
                member: scene.id(writer),
                role: Role::Write,
                from: 1,
            },
        ]),
    );
    scene.write(writer, 2, put("a"));
    scene.write(writer, 3, put("b"));
    scene.write(writer, 4, put("c"));
    let log = scene.id(writer);
    let compact = |first| {
        acl(&[AclOp::Compact {
            log,
            ranges: vec![(first, first)],
            proof: Vec::new(),
        }])
    };
    scene.write(owner, 5, compact(1));
    scene.write(editor, 6, compact(2));
    scene.write(writer, 7, compact(3));
    for views in &mut replicas(&scene).await {
        let acl = views.acl();
        assert!(acl.voids(&log, 1));
        assert!(!acl.voids(&log, 2));
        assert!(!acl.voids(&log, 3));
        assert_eq!(acl.rejections().len(), 2);
        assert_eq!(keys(views).await, ["b", "c"]);
        // A voided event is not a rejection.
        assert!(rejections(views).await.iter().all(|r| r.order.log != log));
    }
    // The writer's role is taken away back to its first event: its events no longer
    // apply, and the compaction still counts.
    scene.write(
        owner,
        8,
        acl(&[AclOp::SetRole {
            member: log,
            role: Role::NoAccess,
            from: 1,
        }]),
    );
    for views in &mut replicas(&scene).await {
        assert!(views.acl().voids(&log, 1));
        assert!(keys(views).await.is_empty());
        assert!(views.views().blocked().is_empty());
    }

    // A raw thread: a compaction counts with the proof that its author holds the read key;
    // one without it (a follower's), or with a proof made for another author, does not.
    let (mut raw, _) = Scene::new(3, true);
    raw.write(0, 1, put("x"));
    raw.write(0, 2, put("y"));
    raw.write(0, 3, put("z"));
    let first = raw.id(0);
    let read = raw.key.read().expect("a read key").clone();
    let proved = |author: LogId, counter: u64| AclOp::Compact {
        log: first,
        ranges: vec![(counter, counter)],
        proof: threads_acl::compact_proof(
            raw.thread,
            &read,
            &author,
            &first,
            &[(counter, counter)],
        )
        .to_vec(),
    };
    let member = proved(raw.id(1), 2);
    let copied = proved(raw.id(1), 3);
    raw.write(1, 4, acl(&[member]));
    raw.write(
        2,
        5,
        acl(&[
            copied,
            AclOp::Compact {
                log: first,
                ranges: vec![(1, 1)],
                proof: Vec::new(),
            },
        ]),
    );
    for views in &mut replicas(&raw).await {
        assert!(views.acl().voids(&first, 2));
        assert!(!views.acl().voids(&first, 1));
        assert!(!views.acl().voids(&first, 3));
        assert_eq!(keys(views).await, ["x", "z"]);
    }
}

#[test]
fn a_compaction_names_ranges_that_are_not_empty_and_increase() {
    let log = Identity::from_secret_bytes(&[1; 32]).log_id();
    let op = AclOp::Compact {
        log,
        ranges: vec![(1, 3), (5, 5), (9, 20)],
        proof: vec![7; 32],
    };
    assert_eq!(AclOp::decode(&op.encode()).expect("decode"), op);
    for ranges in [
        vec![],
        vec![(0, 2)],
        vec![(3, 2)],
        vec![(1, 3), (3, 4)],
        vec![(5, 6), (1, 2)],
        vec![(1, 1); threads_acl::MAX_COMPACT_RANGES + 1],
    ] {
        let bad = AclOp::Compact {
            log,
            ranges: ranges.clone(),
            proof: Vec::new(),
        };
        assert!(AclOp::decode(&bad.encode()).is_err(), "{ranges:?}");
    }
}
