//! Replication completes: `Db` peers on SQLite files and loopback, writing at once while
//! pushes are dropped and reordered, peers restart from their files and pairs are
//! partitioned, all end with every entry and identical views. Also each cause of an
//! incomplete replication on its own: an inviter restarted while its invitees wrote catches
//! up without being told their addresses, and invitees learn each other's addresses.
//!
//! `THREADS_SOAK_ROUNDS` sets the rounds of the convergence test (20 by default;
//! `cargo xtask soak --rounds N` runs more). Every wait has a timeout; none is a fixed
//! sleep standing in for an event.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use threads_acl::Role;
use threads_crypto::Identity;
use threads_db::{Db, DbConfig, Query};
use threads_id::{Multiaddr, ThreadId, Variant};
use threads_net::Faults;
use threads_store::{LogBook, SqliteStore};

const LIMIT: Duration = Duration::from_secs(60);
const COLLECTION: &str = "c";
const SHARED: usize = 5;

/// One peer: its identity, file, fixed address, faults and (while running) database.
struct Peer {
    name: &'static str,
    id: Identity,
    path: PathBuf,
    listen: Multiaddr,
    faults: Faults,
    db: Option<Db<SqliteStore>>,
}

impl Peer {
    async fn start(name: &'static str, seed: u8, dir: &std::path::Path) -> Peer {
        let mut peer = Peer {
            name,
            id: Identity::from_secret_bytes(&[seed; 32]),
            path: dir.join(format!("{name}.db")),
            listen: "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
            faults: Faults::new(),
            db: None,
        };
        peer.open().await;
        // Reopened later at the same address, as a restarted daemon would be.
        let mut addr = peer.db().node().listen_addrs().remove(0);
        addr.pop();
        peer.listen = addr;
        peer
    }

    async fn open(&mut self) {
        let config = DbConfig::default()
            .with_listen(vec![self.listen.clone()])
            .with_sync_interval(Duration::from_millis(150))
            .with_faults(self.faults.clone());
        let db = Db::open_sqlite(&self.path, self.id.clone(), config)
            .await
            .unwrap_or_else(|e| panic!("{} opens: {e}", self.name));
        self.db = Some(db);
    }

    async fn stop(&mut self) {
        if let Some(db) = self.db.take() {
            db.shutdown().await;
        }
    }

    async fn restart(&mut self) {
        self.stop().await;
        self.open().await;
    }

    fn db(&self) -> &Db<SqliteStore> {
        self.db.as_ref().expect("running")
    }
}

/// Waits until `check` holds, looking again every 50 ms, for at most [`LIMIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every log of `thread` on `db` with its counter.
async fn heads(db: &Db<SqliteStore>, thread: ThreadId) -> Vec<(String, u64)> {
    let store = db.node().store();
    let mut out = Vec::new();
    for log in store.logs(thread).await.expect("logs") {
        let counter = store
            .head(thread, log)
            .await
            .expect("head")
            .map_or(0, |h| h.counter);
        out.push((log.to_string(), counter));
    }
    out.sort();
    out
}

/// The documents and key-value pairs `db` shows for `thread`.
async fn view(db: &Db<SqliteStore>, thread: ThreadId) -> (Vec<(String, serde_json::Value)>, usize) {
    db.catch_up(thread).await.expect("catch up");
    let docs = db
        .query(thread, COLLECTION, &Query::all())
        .await
        .expect("query")
        .docs;
    let kv = db.list(thread, b"").await.expect("list").len();
    (docs, kv)
}

/// For each shared document, the save of greatest order that applied, as `db`'s change
/// feed tells (the one every peer must show), to explain a divergence.
async fn expected_shared(db: &Db<SqliteStore>, thread: ThreadId) -> Vec<(String, String)> {
    let mut feed = db
        .changes(thread, threads_views::Cursor::default())
        .await
        .expect("feed");
    let mut best: std::collections::BTreeMap<String, (threads_log::EventOrder, String)> =
        std::collections::BTreeMap::new();
    let total: u64 = heads(db, thread).await.iter().map(|(_, c)| c).sum();
    let mut seen = 0;
    while seen < total {
        let Ok(Ok(Some(event))) = tokio::time::timeout(Duration::from_secs(5), feed.next()).await
        else {
            break;
        };
        seen += 1;
        for change in &event.changes {
            if let threads_db::ChangeKind::Doc {
                id: Some(id),
                action: threads_db::DocAction::Save,
                doc: Some(doc),
                ..
            } = &change.kind
                && change.rejected.is_none()
                && best.get(id).is_none_or(|(o, _)| *o < event.order)
            {
                best.insert(id.clone(), (event.order, doc.to_string()));
            }
        }
    }
    best.into_iter()
        .map(|(id, (order, doc))| {
            (
                id,
                format!("{doc} at {}/{}/{}", order.time, order.log, order.counter),
            )
        })
        .collect()
}

/// `writes` transactions by `db`, one event each: a new document, a save of a shared one,
/// and a key.
async fn write(
    db: Db<SqliteStore>,
    thread: ThreadId,
    name: &'static str,
    from: usize,
    writes: usize,
) {
    for i in from..from + writes {
        db.transaction(thread)
            .create(
                COLLECTION,
                &format!("{name}-{i}"),
                &json!({"by": name, "i": i}),
            )
            .save(
                COLLECTION,
                &format!("s{}", i % SHARED),
                &json!({"by": name, "i": i}),
            )
            .put(format!("{name}/{i}").as_bytes(), b"v")
            .commit()
            .await
            .unwrap_or_else(|e| panic!("{name} writes {i}: {e}"));
    }
}

/// The owner creates an access-controlled thread with a collection and its shared
/// documents, and invites two writers and a follower, who join.
async fn set_up(peers: &mut [Peer; 4]) -> ThreadId {
    let [owner, b, c, follower] = peers;
    let db = owner.db();
    let thread = db
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    let mut setup = db
        .transaction(thread)
        .create_collection(COLLECTION, &json!({"type": "object"}));
    for s in 0..SHARED {
        setup = setup.create(COLLECTION, &format!("s{s}"), &json!({"by": "owner"}));
    }
    setup.commit().await.expect("setup");
    for (peer, role) in [
        (&*b, Role::Write),
        (&*c, Role::Write),
        (&*follower, Role::Follow),
    ] {
        let invite = db
            .invite(thread, peer.id.log_id(), role)
            .await
            .expect("invite");
        peer.db().join(&invite).await.expect("join");
    }
    thread
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inviter_restarted_while_invitees_wrote_catches_up() {
    let dir = tempfile::tempdir().expect("dir");
    let mut peers = [
        Peer::start("owner", 1, dir.path()).await,
        Peer::start("b", 2, dir.path()).await,
        Peer::start("c", 3, dir.path()).await,
        Peer::start("f", 4, dir.path()).await,
    ];
    let thread = set_up(&mut peers).await;
    // Nobody tells the owner the invitees' addresses: it learns them from the invitees.
    write(peers[1].db().clone(), thread, "b", 0, 5).await;
    peers[0].stop().await;
    write(peers[1].db().clone(), thread, "b", 5, 25).await;
    write(peers[2].db().clone(), thread, "c", 0, 25).await;
    peers[0].open().await;
    // What each invitee wrote: its own log, as it holds it.
    let own = |peer: &Peer| {
        let db = peer.db().clone();
        async move {
            let log = db.identity().log_id();
            db.node()
                .store()
                .head(thread, log)
                .await
                .expect("head")
                .map(|h| (log.to_string(), h.counter))
        }
    };
    let want = [own(&peers[1]).await, own(&peers[2]).await];
    let owner = peers[0].db().clone();
    eventually(
        "the owner to get what the invitees wrote while it was down",
        || {
            let (owner, want) = (owner.clone(), want.clone());
            async move {
                let have = heads(&owner, thread).await;
                want.iter().flatten().all(|w| have.contains(w))
            }
        },
    )
    .await;
    let (docs, _) = view(&owner, thread).await;
    assert_eq!(docs.len(), SHARED + 30 + 25);
    // The owner learned where the invitees are, and its health shows b's log complete.
    let b_log = peers[1].id.log_id();
    let known = owner.node().peers_of(thread);
    assert!(
        known.iter().any(|a| a.peer_id() == b_log.peer_id()),
        "{known:?}"
    );
    let health = owner.health().await.expect("health");
    assert!(
        health
            .iter()
            .any(|row| row.log == b_log && row.peer_counter == Some(30) && row.lag == 0),
        "{health:?}"
    );
    for peer in &mut peers {
        peer.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitees_learn_each_others_addresses() {
    let dir = tempfile::tempdir().expect("dir");
    let mut peers = [
        Peer::start("owner", 11, dir.path()).await,
        Peer::start("b", 12, dir.path()).await,
        Peer::start("c", 13, dir.path()).await,
        Peer::start("f", 14, dir.path()).await,
    ];
    let thread = set_up(&mut peers).await;
    let (b, c) = (peers[1].db().clone(), peers[2].id.log_id().peer_id());
    eventually("b to learn c's address through the owner", || {
        let b = b.clone();
        async move { b.node().peers_of(thread).iter().any(|a| a.peer_id() == c) }
    })
    .await;
    // With the owner gone, b and c still reach each other directly.
    peers[0].stop().await;
    write(peers[2].db().clone(), thread, "c", 0, 3).await;
    let want = heads(peers[2].db(), thread).await;
    eventually("b to get c's entries without the owner", || {
        let (b, want) = (b.clone(), want.clone());
        async move { heads(&b, thread).await == want }
    })
    .await;
    for peer in &mut peers {
        peer.stop().await;
    }
}

/// One round: set up, then concurrent writes under dropped and reordered pushes, the
/// owner restarted while the others write, a partition between the two writers, the
/// follower restarted; at the end every peer holds every entry and the readers' views
/// are identical.
async fn round(number: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let mut peers = [
        Peer::start("owner", 21, dir.path()).await,
        Peer::start("b", 22, dir.path()).await,
        Peer::start("c", 23, dir.path()).await,
        Peer::start("f", 24, dir.path()).await,
    ];
    let thread = set_up(&mut peers).await;
    for peer in &peers {
        peer.faults.drop_pushes(0.25);
        peer.faults.reorder_pushes(0.5);
    }
    const N: usize = 8;
    // Everyone writes at once.
    tokio::join!(
        write(peers[0].db().clone(), thread, "owner", 0, N),
        write(peers[1].db().clone(), thread, "b", 0, N),
        write(peers[2].db().clone(), thread, "c", 0, N),
    );
    // The owner goes down; the writers are partitioned from each other and write on.
    peers[0].stop().await;
    let (b_id, c_id) = (
        peers[1].id.log_id().peer_id(),
        peers[2].id.log_id().peer_id(),
    );
    peers[1].faults.block(c_id);
    peers[2].faults.block(b_id);
    tokio::join!(
        write(peers[1].db().clone(), thread, "b", N, N),
        write(peers[2].db().clone(), thread, "c", N, N),
    );
    // The owner comes back from its file; the follower restarts; the partition heals
    // while everyone writes again (pushes are still dropped and reordered).
    peers[0].open().await;
    if number % 2 == 1 {
        peers[3].restart().await;
    }
    peers[1].faults.unblock(c_id);
    peers[2].faults.unblock(b_id);
    tokio::join!(
        write(peers[0].db().clone(), thread, "owner", N, N),
        write(peers[1].db().clone(), thread, "b", 2 * N, N),
        write(peers[2].db().clone(), thread, "c", 2 * N, N),
    );
    // Every peer ends with every entry of every log (the follower too, without reading).
    let want = heads(peers[0].db(), thread).await;
    let dbs: Vec<Db<SqliteStore>> = peers.iter().map(|p| p.db().clone()).collect();
    eventually(
        &format!("round {number}: every peer to hold every entry"),
        || {
            let dbs = dbs.clone();
            async move {
                let first = heads(&dbs[0], thread).await;
                for db in &dbs[1..] {
                    if heads(db, thread).await != first {
                        return false;
                    }
                }
                // Each writer's log is complete: setup/ACL events plus its writes.
                let writes: u64 = first.iter().map(|(_, c)| c).sum();
                writes >= (2 * N + 2 * N + 3 * N) as u64
            }
        },
    )
    .await;
    let owner = view(&dbs[0], thread).await;
    assert_eq!(
        owner.0.len(),
        SHARED + 3 * N + 3 * N + 2 * N,
        "round {number}"
    );
    assert_eq!(owner.1, 3 * N + 3 * N + 2 * N, "round {number}");
    for db in &dbs[1..3] {
        let shown = view(db, thread).await;
        if shown != owner {
            for (name, db) in ["owner", "b", "c"].iter().zip(&dbs) {
                let view = view(db, thread).await.0;
                let shared: Vec<_> = view.iter().filter(|(id, _)| id.starts_with('s')).collect();
                eprintln!("{name} shows {shared:?}");
                eprintln!("{name} expects {:?}", expected_shared(db, thread).await);
                let refused = db.rejections(thread).await.expect("rejections");
                eprintln!(
                    "{name} refused {:?}",
                    refused
                        .iter()
                        .map(|r| format!(
                            "{}/{}/{} {}: {}",
                            r.order.time, r.order.log, r.order.counter, r.view, r.reason
                        ))
                        .collect::<Vec<_>>()
                );
            }
        }
        assert_eq!(shown, owner, "round {number}: identical views");
    }
    assert!(!want.is_empty());
    for peer in &mut peers {
        peer.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_completes_under_faults_restarts_and_partitions() {
    let rounds: usize = std::env::var("THREADS_SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    for number in 0..rounds {
        let started = Instant::now();
        round(number).await;
        eprintln!("round {number} converged in {:?}", started.elapsed());
    }
}
