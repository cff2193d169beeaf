//! The adversarial suite: two honest peers (an owner and a member, `Db`s syncing over
//! libp2p on loopback) and, for each attack, a real node that plays the attacker with the
//! keys and identity the attacker would have: a member signing two branches of its log, a
//! follower sealing a record again, a follower writing content, a revoked member pulling
//! and pushing, an entry dated far ahead, an oversized entry, a forged invite, an outsider
//! flooding requests. For each: the honest peers' views end identical to each other and
//! to what the honest writes alone make, the attack is counted where an operator looks
//! (health, fork proofs, refusals), and a thread the attack does not touch keeps syncing.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use threads_acl::Role;
use threads_crypto::{Identity, ThreadKey};
use threads_db::{Db, DbConfig, DbError};
use threads_id::{LogId, ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_net::message::{Refusal, Request, Response, WireEntry};
use threads_net::{AuthProof, NetConfig, NetError, Node};
use threads_store::{LogBook, MemoryStore, Page, ThreadBook};
use threads_views::{Batch, Kv};

const LIMIT: Duration = Duration::from_secs(60);

type Peer = Db<MemoryStore>;

/// Honest peers hold each peer to 200 requests a second (bursts of 200): far above what
/// their own sync sends, far below a flood, however slowly the machine runs it.
fn config() -> DbConfig {
    DbConfig::default()
        .with_sync_interval(Duration::from_millis(200))
        .with_peer_limits(16, 200, 200)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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

/// The honest side: an owner and a member of an access-controlled thread, and a raw
/// thread they share that no attack touches.
struct Honest {
    owner: Peer,
    member: Peer,
    thread: ThreadId,
    other: ThreadId,
    /// The keys and values the honest writes made, in the thread.
    expected: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Honest {
    async fn new(seed: u8) -> Honest {
        let owner = Db::open_memory(Identity::from_secret_bytes(&[seed; 32]), config())
            .await
            .expect("owner");
        let member = Db::open_memory(Identity::from_secret_bytes(&[seed + 1; 32]), config())
            .await
            .expect("member");
        let thread = owner
            .create_thread(Variant::AccessControlled)
            .await
            .expect("thread");
        let invite = owner
            .invite(thread, member.identity().log_id(), Role::Write)
            .await
            .expect("invite");
        member.join(&invite).await.expect("join");
        let other = owner.create_thread(Variant::Raw).await.expect("thread");
        let invite = owner
            .invite(other, member.identity().log_id(), Role::Write)
            .await
            .expect("invite");
        member.join(&invite).await.expect("join");
        let mut honest = Honest {
            owner,
            member,
            thread,
            other,
            expected: Vec::new(),
        };
        honest.put(true, "owner-1").await;
        honest.put(false, "member-1").await;
        honest.converge("the first honest writes").await;
        honest
    }

    /// An honest write of `key` by the owner or the member.
    async fn put(&mut self, by_owner: bool, key: &str) {
        let db = if by_owner { &self.owner } else { &self.member };
        db.transaction(self.thread)
            .put(key.as_bytes(), b"honest")
            .commit()
            .await
            .expect("honest write");
        self.expected
            .push((key.as_bytes().to_vec(), b"honest".to_vec()));
        self.expected.sort();
    }

    /// Waits until both honest peers' key-value views are exactly the honest writes.
    async fn converge(&self, what: &str) {
        eventually(what, || async {
            let mut same = true;
            for db in [&self.owner, &self.member] {
                let _ = db.catch_up(self.thread).await;
                same &= db.list(self.thread, b"").await.expect("list") == self.expected;
            }
            same
        })
        .await;
    }

    /// A write in the thread no attack touches reaches the other honest peer.
    async fn other_thread_syncs(&self, key: &str) {
        self.member
            .transaction(self.other)
            .put(key.as_bytes(), b"1")
            .commit()
            .await
            .expect("write");
        eventually("the untouched thread to sync", || async {
            self.owner
                .get(self.other, key.as_bytes())
                .await
                .expect("get")
                .is_some()
        })
        .await;
    }

    /// A third peer joins the access-controlled thread with `role`.
    async fn admit(&self, seed: u8, role: Role) -> Peer {
        let db = Db::open_memory(Identity::from_secret_bytes(&[seed; 32]), config())
            .await
            .expect("peer");
        let invite = self
            .owner
            .invite(self.thread, db.identity().log_id(), role)
            .await
            .expect("invite");
        db.join(&invite).await.expect("join");
        db
    }

    async fn shutdown(&self) {
        self.owner.shutdown().await;
        self.member.shutdown().await;
    }
}

/// A node of the attacker's, with `identity` (so the honest peers see the attacker's
/// peer id) and the thread's `key`.
async fn attacker(identity: &Identity, thread: ThreadId, key: &ThreadKey) -> Node<MemoryStore> {
    let node = Node::start(
        identity,
        std::sync::Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]),
    )
    .await
    .expect("attacker node");
    node.store().put_thread(thread, key).await.expect("key");
    node
}

/// Pushes `entries` of `log` from `from` to the peer `to`.
async fn push(
    from: &Node<MemoryStore>,
    to: &Peer,
    thread: ThreadId,
    key: &ThreadKey,
    log: LogId,
    entries: Vec<WireEntry>,
) -> Result<Response, NetError> {
    let target = to.node().peer_id();
    let request = Request::PushRecords {
        thread,
        proof: AuthProof::new(key.service(), &thread, &from.peer_id(), &target),
        log,
        entries,
    };
    tokio::time::timeout(
        LIMIT,
        from.request(target, vec![to.node().listen_addrs()[0].clone()], request),
    )
    .await
    .expect("in time")
}

/// The next entry of `writer`'s log after what `db` holds of it (with the skip link its
/// counter needs), carrying a put of `key`, dated `time`.
async fn next_entry(db: &Peer, writer: &Writer, key: &str, time: Hlc) -> Appended {
    let store = db.node().store();
    let (thread, log) = (writer.thread_id(), writer.log_id());
    let head = store.head(thread, log).await.expect("head");
    let counter = head.map_or(1, |h| h.counter + 1);
    let skip = match skip_target(counter) {
        Some(target) => store.record_cid(thread, log, target).await.expect("cid"),
        None => None,
    };
    let payload = Batch::new()
        .with("kv", Kv::put(key.as_bytes(), b"attacker"))
        .encode();
    writer
        .append(head.as_ref(), skip, &payload, time)
        .expect("append")
}

fn wire(entry: &Appended) -> Vec<WireEntry> {
    vec![WireEntry::from_entry(&entry.entry)]
}

async fn thread_key(db: &Peer, thread: ThreadId) -> ThreadKey {
    db.node()
        .store()
        .thread_key(thread)
        .await
        .expect("key")
        .expect("held")
}

/// A member (`seed`) who wrote once, honestly, and then, offline, signed two different
/// records at its next counter on a node of its own, and pushed the first (`x`) to the
/// owner.
struct Equivocation {
    node: Node<MemoryStore>,
    key: ThreadKey,
    log: LogId,
    x: Appended,
    y: Appended,
}

async fn equivocate(h: &mut Honest, seed: u8) -> Equivocation {
    let mallory = h.admit(seed, Role::Write).await;
    mallory
        .transaction(h.thread)
        .put(b"mallory-1", b"honest")
        .commit()
        .await
        .expect("write");
    h.expected.push((b"mallory-1".to_vec(), b"honest".to_vec()));
    h.expected.sort();
    h.converge("the member's honest write").await;
    let key = thread_key(&mallory, h.thread).await;
    mallory.shutdown().await;
    let identity = mallory.identity().clone();
    let writer = Writer::new(identity.clone(), h.thread, &key).expect("writer");
    let time = Hlc::new(now_ms(), 0);
    let x = next_entry(&mallory, &writer, "branch", time).await;
    let y = next_entry(&mallory, &writer, "other-branch", time).await;
    assert_eq!(x.record.counter(), y.record.counter());
    let node = attacker(&identity, h.thread, &key).await;
    let log = identity.log_id();
    let answer = push(&node, &h.owner, h.thread, &key, log, wire(&x)).await;
    assert!(matches!(answer, Ok(Response::Pushed { .. })), "{answer:?}");
    Equivocation {
        node,
        key,
        log,
        x,
        y,
    }
}

/// Whether a push was refused because its record forks one the peer holds.
fn refused_as_fork(answer: &Result<Response, NetError>) -> bool {
    matches!(answer, Err(NetError::Refused {
        refusal: Refusal::Rejected(code),
        ..
    }) if code == "fork")
}

/// Whether the owner and the member each hold exactly one fork proof: of `log`, at `fork`.
async fn both_hold_the_proof(h: &Honest, log: LogId, fork: u64) -> bool {
    let mut both = true;
    for db in [&h.owner, &h.member] {
        let forks = db.forks(h.thread).await.expect("forks");
        both &= forks.len() == 1 && forks[0].counter() == fork && forks[0].log() == log;
    }
    both
}

/// A member signs two different records at its next counter and gives one branch to each
/// honest peer. Both find the fork, hold the same proof, stop the log at that counter
/// (neither branch's write is visible anywhere; the member's earlier write stays), and
/// show it in health.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_who_equivocates_is_stopped_at_the_fork_on_every_honest_peer() {
    let mut h = Honest::new(10).await;
    let Equivocation {
        node,
        key,
        log,
        x,
        y,
    } = equivocate(&mut h, 12).await;
    // The member takes the other branch, unless the owner already passed it the first:
    // then the pushed record and the stored one prove the fork at once.
    let answer = push(&node, &h.member, h.thread, &key, log, wire(&y)).await;
    assert!(
        matches!(answer, Ok(Response::Pushed { .. })) || refused_as_fork(&answer),
        "the other branch was neither taken nor found a fork: {answer:?}"
    );
    node.shutdown().await;

    let fork = x.record.counter();
    eventually("both honest peers to hold the proof", || {
        both_hold_the_proof(&h, log, fork)
    })
    .await;
    let verifier = threads_log::Verifier::new(h.thread, log, &key).expect("verifier");
    let proof = h.owner.forks(h.thread).await.expect("forks").remove(0);
    proof.verify(&verifier).expect("the proof holds");
    assert_eq!(h.member.forks(h.thread).await.expect("forks"), [proof]);
    h.put(true, "owner-2").await;
    h.put(false, "member-2").await;
    h.converge("views without either branch").await;
    let status = h.owner.health().await.expect("health");
    assert!(
        status
            .iter()
            .any(|s| s.log == log && s.forked == Some(fork)),
        "health names the fork: {status:?}"
    );
    h.other_thread_syncs("after-fork").await;
    h.shutdown().await;
}

/// The member already holds the first branch (from the owner) when the other branch is
/// pushed to it: it refuses it and makes the proof from the two records in hand. The owner,
/// whose heads are the member's, learns the proof too: a sync round compares the fork
/// proofs each holds along with the heads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fork_refused_by_a_peer_that_holds_the_first_branch_reaches_every_honest_peer() {
    let mut h = Honest::new(70).await;
    let Equivocation {
        node,
        key,
        log,
        x,
        y,
    } = equivocate(&mut h, 72).await;
    let fork = x.record.counter();
    eventually(
        "the member to take the first branch from the owner",
        || async {
            h.member
                .node()
                .store()
                .head(h.thread, log)
                .await
                .expect("head")
                .is_some_and(|head| head.counter >= fork)
        },
    )
    .await;
    let answer = push(&node, &h.member, h.thread, &key, log, wire(&y)).await;
    assert!(
        refused_as_fork(&answer),
        "the other branch was not refused as a fork: {answer:?}"
    );
    node.shutdown().await;
    assert_eq!(h.member.forks(h.thread).await.expect("forks").len(), 1);
    eventually("the owner to learn the member's proof", || {
        both_hold_the_proof(&h, log, fork)
    })
    .await;
    h.shutdown().await;
}

/// A follower (it holds the service key) seals a record of the owner's log again, to give
/// it a second identity, and pushes the copy: it is refused for what it is, counted
/// against the follower, and the owner's log goes on replicating.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_cannot_fork_a_log_by_sealing_a_record_again() {
    let mut h = Honest::new(20).await;
    let follower = h.admit(22, Role::Follow).await;
    let owner_log = h.owner.identity().log_id();
    h.put(true, "owner-2").await;
    let head = h
        .owner
        .node()
        .store()
        .head(h.thread, owner_log)
        .await
        .expect("head")
        .expect("some");
    eventually("the follower to replicate the owner's log", || async {
        follower
            .node()
            .store()
            .head(h.thread, owner_log)
            .await
            .expect("head")
            .is_some_and(|f| f.counter >= head.counter)
    })
    .await;
    let key = thread_key(&follower, h.thread).await;
    assert!(!key.can_read(), "a follower holds the service key only");
    let stored = follower
        .node()
        .store()
        .entries_after(
            h.thread,
            owner_log,
            head.counter - 1,
            threads_store::Page::new(1, usize::MAX),
        )
        .await
        .expect("read")
        .remove(0);
    let resealed =
        threads_log::check::reseal_record(&stored.entry.record, h.thread, owner_log, key.service())
            .expect("a record of the owner's log");
    assert_ne!(resealed.cid(), stored.entry.record.cid());
    let mut copy = WireEntry::from_entry(&stored.entry);
    copy.record = resealed.into_data();
    let identity = follower.identity().clone();
    follower.shutdown().await;
    let node = attacker(&identity, h.thread, &key).await;
    for to in [&h.owner, &h.member] {
        match push(&node, to, h.thread, &key, owner_log, vec![copy.clone()]).await {
            Err(NetError::Refused {
                refusal: Refusal::Rejected(code),
                ..
            }) => assert_eq!(code, "decrypt"),
            other => panic!("the copy was not refused: {other:?}"),
        }
        let counted = to.health().await.expect("health").into_iter().any(|s| {
            s.log == owner_log
                && s.peer == identity.log_id().peer_id()
                && s.health.rejections.get("decrypt") == Some(&1)
        });
        assert!(counted, "the refusal is counted against the follower");
        assert!(to.forks(h.thread).await.expect("forks").is_empty());
    }
    node.shutdown().await;
    h.put(true, "owner-3").await;
    h.converge("the owner's log to go on").await;
    h.other_thread_syncs("after-reseal").await;
    h.shutdown().await;
}

/// A follower seals a content write with the ACL key it can derive: every honest peer
/// stores the event (it is a valid entry) and applies none of its content, recording why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_cannot_write_content() {
    let mut h = Honest::new(30).await;
    let follower = h.admit(32, Role::Follow).await;
    let key = thread_key(&follower, h.thread).await;
    let identity = follower.identity().clone();
    let acl_key = threads_acl::acl_key(h.thread, &key);
    let writer = Writer::new(identity.clone(), h.thread, &acl_key).expect("writer");
    let forged = next_entry(&follower, &writer, "forged", Hlc::new(now_ms(), 0)).await;
    follower.shutdown().await;
    let node = attacker(&identity, h.thread, &key).await;
    let answer = push(
        &node,
        &h.owner,
        h.thread,
        &key,
        identity.log_id(),
        wire(&forged),
    )
    .await;
    assert!(matches!(answer, Ok(Response::Pushed { .. })), "{answer:?}");
    node.shutdown().await;
    h.put(false, "member-2").await;
    h.converge("views without the forged write").await;
    eventually("both peers to record the refusal", || async {
        let mut both = true;
        for db in [&h.owner, &h.member] {
            let _ = db.catch_up(h.thread).await;
            both &= db
                .rejections(h.thread)
                .await
                .expect("rejections")
                .iter()
                .any(|r| r.author() == identity.log_id() && r.reason == threads_views::PASSED_OVER);
        }
        both
    })
    .await;
    h.other_thread_syncs("after-forgery").await;
    h.shutdown().await;
}

/// A member whose role is taken away keeps its keys, but honest peers no longer serve it
/// nor take its pushes (counted in health), it gets nothing written after, and what it
/// writes does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_member_can_neither_pull_nor_push() {
    let mut h = Honest::new(40).await;
    let revoked = h.admit(42, Role::Write).await;
    revoked
        .transaction(h.thread)
        .put(b"revoked-1", b"honest")
        .commit()
        .await
        .expect("write");
    h.expected.push((b"revoked-1".to_vec(), b"honest".to_vec()));
    h.expected.sort();
    h.converge("the member's write before revocation").await;
    let member_log = revoked.identity().log_id();
    h.owner
        .set_role(h.thread, member_log, Role::NoAccess)
        .await
        .expect("revoke");
    eventually("the member peer to apply the revocation", || async {
        let _ = h.member.catch_up(h.thread).await;
        h.member
            .members(h.thread)
            .await
            .expect("members")
            .get(&member_log)
            .is_some_and(|role| *role == Role::NoAccess)
    })
    .await;
    let key = thread_key(&revoked, h.thread).await;
    // The revocation started a new service-key epoch: both honest peers hold its key
    // (stored with the thread's key: sync proofs and announcements use it), the revoked
    // member does not.
    eventually("the member peer to hold the new epoch's key", || async {
        thread_key(&h.member, h.thread).await.epoch_service()
            == thread_key(&h.owner, h.thread).await.epoch_service()
    })
    .await;
    let ring = thread_key(&h.owner, h.thread).await;
    assert_eq!(ring.epochs().len(), 1);
    assert_eq!(
        ring.service(),
        key.service(),
        "records stay with the first key"
    );
    assert!(
        key.services().all(|old| old != ring.epoch_service()),
        "the revoked member holds no key of the new epoch"
    );
    assert_ne!(
        threads_net::gossip::topic_name(ring.epoch_service(), &h.thread),
        threads_net::gossip::topic_name(key.epoch_service(), &h.thread),
        "announcements go where the revoked member does not listen"
    );
    let owner_log = h.owner.identity().log_id();
    let thread = h.thread;
    let owner_head = |db: &Peer| {
        let store = std::sync::Arc::clone(db.node().store());
        async move {
            store
                .head(thread, owner_log)
                .await
                .expect("head")
                .map_or(0, |head| head.counter)
        }
    };
    let before = owner_head(&revoked).await;
    h.put(true, "owner-after").await;
    let writer = Writer::new(revoked.identity().clone(), h.thread, &key).expect("writer");
    let late = next_entry(&revoked, &writer, "revoked-2", Hlc::new(now_ms(), 0)).await;
    let identity = revoked.identity().clone();
    revoked.shutdown().await;
    let node = attacker(&identity, h.thread, &key).await;
    for to in [&h.owner, &h.member] {
        // Pulling: the peer answers as if it did not hold the thread.
        let addr = to.node().thread_addr(h.thread).expect("addr");
        match node.pull(&addr).await {
            Err(NetError::Refused {
                refusal: Refusal::UnknownThread,
                ..
            }) => {}
            other => panic!("a revoked member was served: {other:?}"),
        }
        // Pushing its own new write.
        match push(&node, to, h.thread, &key, member_log, wire(&late)).await {
            Err(NetError::Refused {
                refusal: Refusal::UnknownThread,
                ..
            }) => {}
            other => panic!("a revoked member's push was taken: {other:?}"),
        }
        let denials = to.node().health().denials();
        let counted = denials
            .get(&(h.thread, identity.log_id().peer_id()))
            .copied()
            .unwrap_or(0);
        assert!(counted >= 2, "both refusals are counted: {denials:?}");
    }
    assert_eq!(
        node.store()
            .head(h.thread, owner_log)
            .await
            .expect("head")
            .map_or(0, |head| head.counter),
        0,
        "nothing was served to the revoked member's node"
    );
    assert!(
        owner_head(&revoked).await == before,
        "nothing new reached the member"
    );
    node.shutdown().await;
    h.converge("views without the revoked member's late write")
        .await;
    // An ACL change after the revocation is sealed with the new epoch's ACL key: a record
    // leaked to the revoked member (by a peer that has not applied the revocation) tells
    // it nothing; the honest member reads it.
    h.owner
        .set_role(h.thread, identity.log_id(), Role::Follow)
        .await
        .expect("a later ACL change");
    let head = owner_head(&h.owner).await;
    let acl_entry = h
        .owner
        .node()
        .store()
        .entries_after(h.thread, owner_log, head - 1, Page::new(1, usize::MAX))
        .await
        .expect("read")
        .remove(0);
    let open_with = |key: &ThreadKey| {
        let mut verifier =
            threads_log::Verifier::new(h.thread, owner_log, &threads_acl::acl_key(h.thread, key))
                .expect("verifier");
        if let Some(read) = key.read() {
            verifier.add_read_key(read.clone());
        }
        verifier.read_stored(&acl_entry.entry).is_ok()
    };
    assert!(
        !open_with(&key),
        "the revoked member reads the new ACL event"
    );
    assert!(open_with(&thread_key(&h.member, h.thread).await));
    h.other_thread_syncs("after-revocation").await;
    h.shutdown().await;
}

/// A member dates an event a year ahead: honest peers store it and apply nothing of it
/// (nor of its log after it) until their clocks reach it, and say which log waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_dated_far_ahead_waits_and_changes_nothing() {
    let mut h = Honest::new(50).await;
    let mallory = h.admit(52, Role::Write).await;
    let key = thread_key(&mallory, h.thread).await;
    let identity = mallory.identity().clone();
    let writer = Writer::new(identity.clone(), h.thread, &key).expect("writer");
    let year = 365 * 24 * 3_600 * 1_000;
    let ahead = next_entry(
        &mallory,
        &writer,
        "from-the-future",
        Hlc::new(now_ms() + year, 0),
    )
    .await;
    mallory.shutdown().await;
    let node = attacker(&identity, h.thread, &key).await;
    let answer = push(
        &node,
        &h.owner,
        h.thread,
        &key,
        identity.log_id(),
        wire(&ahead),
    )
    .await;
    assert!(matches!(answer, Ok(Response::Pushed { .. })), "{answer:?}");
    node.shutdown().await;
    h.put(false, "member-2").await;
    h.converge("views without the future event").await;
    eventually("both peers to hold the event and wait at it", || async {
        let mut both = true;
        for db in [&h.owner, &h.member] {
            let _ = db.catch_up(h.thread).await;
            let waiting = db.waiting(h.thread).await.expect("waiting");
            both &= waiting.get(&identity.log_id()) == Some(&1);
        }
        both
    })
    .await;
    h.other_thread_syncs("after-future").await;
    h.shutdown().await;
}

/// An entry larger than an entry may be is refused before it is verified, and counted;
/// a forged invite does not open; an outsider flooding requests and edges is held to its
/// limits.
/// The honest peers go on as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_entries_forged_invites_and_floods_change_nothing() {
    let h = Honest::new(60).await;
    let mallory = h.admit(62, Role::Write).await;
    let key = thread_key(&mallory, h.thread).await;
    let identity = mallory.identity().clone();
    mallory.shutdown().await;
    let node = attacker(&identity, h.thread, &key).await;
    let huge = WireEntry {
        record: vec![1; 200],
        event: vec![2; 100],
        header: vec![3; 100],
        body: vec![4; threads_log::MAX_ENTRY_BYTES],
    };
    match push(
        &node,
        &h.owner,
        h.thread,
        &key,
        identity.log_id(),
        vec![huge],
    )
    .await
    {
        Err(NetError::Refused {
            refusal: Refusal::Rejected(code),
            ..
        }) => assert_eq!(code, "entry-too-large"),
        other => panic!("an oversized entry was not refused: {other:?}"),
    }
    let counted = h
        .owner
        .health()
        .await
        .expect("health")
        .into_iter()
        .any(|s| {
            s.peer == identity.log_id().peer_id()
                && s.health.rejections.get("entry-too-large") == Some(&1)
        });
    assert!(counted, "the oversized entry is counted");
    node.shutdown().await;

    // A forged invite: a role raised in the text.
    let guest = Db::open_memory(Identity::from_secret_bytes(&[63; 32]), config())
        .await
        .expect("guest");
    let invite = h
        .owner
        .invite(h.thread, guest.identity().log_id(), Role::Read)
        .await
        .expect("invite");
    let mut forged = invite.clone().into_bytes();
    let middle = forged.len() / 2;
    forged[middle] = if forged[middle] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).expect("text");
    assert!(matches!(
        guest.join(&forged).await,
        Err(DbError::Acl(_) | DbError::Net(_))
    ));
    assert!(guest.threads().await.is_empty(), "nothing was joined");
    guest.shutdown().await;

    // An outsider (no key) floods requests: held to its limits, counted, and the honest
    // peers keep syncing meanwhile.
    let outsider = Node::start(
        &Identity::from_secret_bytes(&[64; 32]),
        std::sync::Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]),
    )
    .await
    .expect("outsider");
    let target = h.owner.node().peer_id();
    let addrs = vec![h.owner.node().listen_addrs()[0].clone()];
    let bogus = AuthProof::new(
        ThreadKey::generate().service(),
        &h.thread,
        &outsider.peer_id(),
        &target,
    );
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..3_000 {
        let outsider = outsider.clone();
        let addrs = addrs.clone();
        flood.spawn(async move {
            outsider
                .request(
                    target,
                    addrs,
                    Request::GetLogs {
                        thread: h.thread,
                        proof: bogus,
                    },
                )
                .await
        });
    }
    h.other_thread_syncs("during the flood").await;
    let mut served = 0;
    while let Some(answer) = flood.join_next().await {
        if let Ok(Response::Logs(_)) = answer.expect("task") {
            served += 1;
        }
    }
    assert_eq!(served, 0, "an outsider learns nothing of the thread");
    // ... and edges: the most a request may carry are each answered with nothing, one
    // more is refused whole.
    let edge = threads_net::message::Edge {
        thread: h.thread,
        proof: bogus,
        digest: [0; 32],
    };
    let mut edges = tokio::task::JoinSet::new();
    for size in [10_000, 10_000, 10_001] {
        let outsider = outsider.clone();
        let addrs = addrs.clone();
        let request = Request::ExchangeEdges {
            edges: vec![edge.clone(); size],
        };
        edges.spawn(async move { (size, outsider.request(target, addrs, request).await) });
    }
    h.other_thread_syncs("during the edge flood").await;
    while let Some(answer) = edges.join_next().await {
        match answer.expect("task") {
            (10_000, Ok(Response::Edges(digests))) => {
                assert_eq!(digests.len(), 10_000);
                assert!(digests.iter().all(Option::is_none), "an edge was answered");
            }
            (10_001, Err(NetError::Refused { refusal, .. })) => {
                assert_eq!(refusal, Refusal::TooLarge);
            }
            // Held back by the per-peer limits (or the connection closed under them).
            (_, Err(_)) => {}
            (size, other) => panic!("{size} edges answered with {other:?}"),
        }
    }
    assert!(
        h.owner.node().refused_requests(&outsider.peer_id()) > 0,
        "the flood is held to the per-peer limits and counted"
    );
    outsider.shutdown().await;
    h.converge("views as the honest writes made them").await;
    h.shutdown().await;
}
