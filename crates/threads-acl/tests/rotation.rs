//! Revoking read rotates the read key: the revoked member keeps replicating the records
//! but cannot read what is written in the new epoch; readers who remain, and a member who
//! is given the read role again, read everything. Invites carry the role and only the keys
//! it needs.

use std::sync::Arc;

use threads_acl::{ACL_VIEW, AclInvite, AclOp, AclViews, Role, new_thread};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, ThreadAddr, ThreadId};
use threads_log::{Hlc, Writer};
use threads_net::ingest;
use threads_net::message::WireEntry;
use threads_store::{LogBook, MemoryStore, Page, ThreadBook, write_local};
use threads_views::{Batch, Kv, Reducer, ViewConfig};

struct Peer {
    id: Identity,
    store: Arc<MemoryStore>,
    views: AclViews<MemoryStore>,
}

impl Peer {
    async fn new(id: Identity, thread: ThreadId, key: &ThreadKey) -> Peer {
        let store = Arc::new(MemoryStore::new());
        store.put_thread(thread, key).await.expect("thread");
        let kv: Arc<dyn Reducer> = Arc::new(Kv::new("kv"));
        let views = AclViews::open(Arc::clone(&store), thread, &id, vec![kv], ViewConfig::new())
            .await
            .expect("open");
        Peer { id, store, views }
    }

    /// Writes `batch` with the key of the current epoch (the ACL key for ACL batches).
    async fn write(&self, batch: &Batch, time: u64) {
        let key = if batch.ops().iter().any(|(view, _)| view == ACL_VIEW) {
            self.views.acl_key()
        } else {
            self.views
                .write_key()
                .expect("a reader of the current epoch")
        };
        let writer = Writer::new(self.id.clone(), self.views.thread(), &key).expect("writer");
        write_local(&*self.store, &writer, &batch.encode(), Hlc::new(time, 0))
            .await
            .expect("write");
    }

    async fn keys(&mut self) -> Vec<String> {
        self.views
            .read("kv", |state| {
                Kv::list(state)
                    .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                    .collect()
            })
            .await
            .expect("kv")
    }
}

/// Replicates every log among the peers as threads-net does (follower-level verification
/// with the service key, then one transaction per batch), then lets every peer catch up.
async fn sync(peers: &mut [Peer], key: &ThreadKey) {
    let logs: Vec<LogId> = peers.iter().map(|p| p.id.log_id()).collect();
    let all: Vec<usize> = (0..peers.len()).collect();
    sync_some(peers, key, &logs, &all).await;
}

/// [`sync`] of `logs` only, to the peers `to` only (from every peer).
async fn sync_some(peers: &mut [Peer], key: &ThreadKey, logs: &[LogId], to: &[usize]) {
    let thread = peers[0].views.thread();
    for &log in logs {
        for source in peers.iter() {
            let entries = source
                .store
                .entries_after(thread, log, 0, Page::new(10_000, usize::MAX))
                .await
                .expect("read");
            for (i, target) in peers.iter().enumerate() {
                if !to.contains(&i) {
                    continue;
                }
                let head = target.store.head(thread, log).await.expect("head");
                let have = head.map_or(0, |h| h.counter) as usize;
                if have >= entries.len() {
                    continue;
                }
                let wire = entries[have..]
                    .iter()
                    .map(|e| WireEntry::from_entry(&e.entry))
                    .collect();
                ingest(&*target.store, thread, log, &key.to_follower(), wire)
                    .await
                    .expect("replicated");
            }
        }
    }
    for &i in to {
        peers[i].views.catch_up().await.expect("catch up");
    }
}

fn addrs(thread: ThreadId, host: &Identity) -> Vec<ThreadAddr> {
    vec![
        ThreadAddr::new(
            format!("/ip4/127.0.0.1/tcp/4006/p2p/{}", host.log_id())
                .parse()
                .expect("multiaddr"),
            thread,
        )
        .expect("address"),
    ]
}

#[tokio::test]
async fn revoking_read_rotates_the_key() {
    let owner = Identity::from_secret_bytes(&[1; 32]);
    let writer = Identity::from_secret_bytes(&[2; 32]);
    let reader = Identity::from_secret_bytes(&[3; 32]);
    let (thread, salt) = new_thread(&owner.log_id());
    let key = ThreadKey::generate();
    let mut peers = vec![
        Peer::new(owner.clone(), thread, &key).await,
        Peer::new(writer.clone(), thread, &key).await,
        Peer::new(reader.clone(), thread, &key).await,
    ];
    let (o, w, r) = (0, 1, 2);

    let founding = Batch::new()
        .with(ACL_VIEW, AclOp::Init { salt }.encode())
        .with(
            ACL_VIEW,
            AclOp::SetRole {
                member: writer.log_id(),
                role: Role::Write,
                from: 1,
            }
            .encode(),
        )
        .with(
            ACL_VIEW,
            AclOp::SetRole {
                member: reader.log_id(),
                role: Role::Read,
                from: 1,
            }
            .encode(),
        );
    peers[o].write(&founding, 1).await;
    sync(&mut peers, &key).await;
    peers[w].write(&put("before"), 2).await;
    sync(&mut peers, &key).await;
    assert_eq!(peers[r].keys().await, ["before"]);

    // The owner takes the read role away: the batch starts a new key epoch.
    let revoke = peers[o]
        .views
        .set_role(reader.log_id(), Role::Follow)
        .await
        .expect("revoke");
    assert!(
        revoke
            .ops()
            .iter()
            .any(|(_, op)| matches!(AclOp::decode(op), Ok(AclOp::Rotate { .. })))
    );
    peers[o].write(&revoke, 3).await;
    sync(&mut peers, &key).await;
    let new_key = peers[w].views.write_key().expect("the writer reads on");
    assert_ne!(new_key, key);
    assert_eq!(peers[o].views.write_key(), Some(new_key.clone()));
    assert_eq!(peers[r].views.write_key(), None);
    assert_eq!(peers[r].views.acl().role(&reader.log_id()), Role::Follow);

    peers[w].write(&put("after"), 4).await;
    peers[o].write(&put("owner after"), 5).await;
    sync(&mut peers, &key).await;

    // The remaining members read the new epoch.
    assert_eq!(peers[o].keys().await, ["after", "before", "owner after"]);
    assert_eq!(peers[w].keys().await, peers[o].keys().await);
    // The revoked reader holds every record (it still follows the thread) ...
    for log in [owner.log_id(), writer.log_id()] {
        assert_eq!(
            peers[r].store.head(thread, log).await.expect("head"),
            peers[o].store.head(thread, log).await.expect("head"),
        );
    }
    // ... keeps what it read before, and cannot read the new events.
    assert_eq!(peers[r].keys().await, ["before"]);
    let blocked = peers[r].views.views().blocked().clone();
    assert_eq!(blocked.get(&writer.log_id()), Some(&2));
    assert_eq!(blocked.get(&owner.log_id()), Some(&3));
    let entries = peers[r]
        .store
        .entries_after(thread, writer.log_id(), 1, Page::new(1, usize::MAX))
        .await
        .expect("read");
    let verifier = threads_log::Verifier::new(thread, writer.log_id(), &key).expect("verifier");
    assert!(verifier.read_stored(&entries[0].entry).is_err());

    // Given the read role again, it is handed every key and reads everything.
    let readmit = peers[o]
        .views
        .set_role(reader.log_id(), Role::Read)
        .await
        .expect("readmit");
    peers[o].write(&readmit, 6).await;
    sync(&mut peers, &key).await;
    assert_eq!(peers[r].keys().await, peers[o].keys().await);
    assert!(peers[r].views.views().blocked().is_empty());
    assert_eq!(peers[r].views.write_key(), Some(new_key));
    assert_eq!(
        peers[r].views.digest().await.expect("digest"),
        peers[o].views.digest().await.expect("digest")
    );
}

#[tokio::test]
async fn invites_carry_the_role_and_the_keys_it_needs() {
    let owner = Identity::from_secret_bytes(&[1; 32]);
    let guest = Identity::from_secret_bytes(&[4; 32]);
    let (thread, salt) = new_thread(&owner.log_id());
    let key = ThreadKey::generate();
    let peer = Peer::new(owner.clone(), thread, &key).await;
    peer.write(
        &Batch::new().with(ACL_VIEW, AclOp::Init { salt }.encode()),
        1,
    )
    .await;

    let follower = peer
        .views
        .invite(addrs(thread, &owner), &guest.log_id(), Role::Follow)
        .expect("invite");
    let text = follower.to_text();
    let parsed: AclInvite = text.parse().expect("parses");
    assert_eq!(parsed, follower);
    assert_eq!(parsed.role(), Role::Follow);
    let (_, keys) = parsed.open(&guest).expect("opens");
    assert_eq!(keys.thread_id(), thread);
    assert!(!keys.thread_key().can_read());
    assert_eq!(keys.thread_key().service(), key.service());
    assert!(parsed.open(&owner).is_err());

    let reader = peer
        .views
        .invite(addrs(thread, &owner), &guest.log_id(), Role::Write)
        .expect("invite");
    let (_, keys) = reader.open(&guest).expect("opens");
    assert_eq!(keys.thread_key(), &key);
    assert_eq!(
        AclInvite::from_bytes(&reader.to_bytes())
            .expect("bytes")
            .role(),
        Role::Write
    );
    assert!(AclInvite::from_bytes(&[9]).is_err());
    assert!("not an invite".parse::<AclInvite>().is_err());
}

fn put(key: &str) -> Batch {
    Batch::new().with("kv", Kv::put(key.as_bytes(), b"1"))
}

/// Revoking a member outright starts a new service-key epoch too: every member that keeps a
/// role gets the new service key (a follower alone, a reader with the read key, a reader by
/// the default role as well, found by its log), the revoked member does not; ACL events
/// written after are sealed with the new epoch's ACL key, which the revoked member cannot
/// open; a member invited later gets the whole key ring and reads every ACL event.
#[tokio::test]
async fn revoking_a_member_rotates_the_service_key() {
    let owner = Identity::from_secret_bytes(&[1; 32]);
    let revoked = Identity::from_secret_bytes(&[2; 32]);
    let follower = Identity::from_secret_bytes(&[3; 32]);
    let by_default = Identity::from_secret_bytes(&[4; 32]);
    let late = Identity::from_secret_bytes(&[5; 32]);
    let (thread, salt) = new_thread(&owner.log_id());
    let key = ThreadKey::generate();
    let mut peers = vec![
        Peer::new(owner.clone(), thread, &key).await,
        Peer::new(revoked.clone(), thread, &key).await,
        Peer::new(follower.clone(), thread, &key.to_follower()).await,
        Peer::new(by_default.clone(), thread, &key).await,
    ];
    let (o, x, f, d) = (0, 1, 2, 3);
    let role = |member: &Identity, role: Role| {
        AclOp::SetRole {
            member: member.log_id(),
            role,
            from: 1,
        }
        .encode()
    };
    let founding = Batch::new()
        .with(ACL_VIEW, AclOp::Init { salt }.encode())
        .with(ACL_VIEW, role(&revoked, Role::Write))
        .with(ACL_VIEW, role(&follower, Role::Follow))
        .with(ACL_VIEW, AclOp::SetDefault { role: Role::Write }.encode());
    peers[o].write(&founding, 1).await;
    sync(&mut peers, &key).await;
    peers[x].write(&put("revoked before"), 2).await;
    peers[d].write(&put("by default before"), 3).await;
    sync(&mut peers, &key).await;
    assert_eq!(
        peers[d].keys().await,
        ["by default before", "revoked before"]
    );
    for peer in &peers {
        assert!(!peer.views.ring().is_ring());
    }

    let revoke = peers[o]
        .views
        .set_role(revoked.log_id(), Role::NoAccess)
        .await
        .expect("revoke");
    peers[o].write(&revoke, 4).await;
    sync(&mut peers, &key).await;

    // Every member that keeps a role holds the new epoch's service key, stored with the
    // thread's key; the revoked member does not.
    let epoch = peers[o].views.ring().epoch_service().clone();
    assert_ne!(&epoch, key.service());
    for i in [o, f, d] {
        let ring = peers[i].views.ring();
        assert_eq!(ring.epoch_service(), &epoch, "peer {i}");
        assert_eq!(
            ring.service(),
            key.service(),
            "records stay with the first key"
        );
        let stored = peers[i]
            .store
            .thread_key(thread)
            .await
            .expect("key")
            .expect("known");
        assert_eq!(stored.epoch_service(), &epoch, "peer {i} stored the ring");
        assert_eq!(
            stored.can_read(),
            i != f,
            "peer {i} keeps what it read with"
        );
    }
    assert_eq!(peers[x].views.ring().epoch_service(), key.service());
    // The reader by default role writes and reads in the new epoch.
    assert!(peers[d].views.write_key().is_some());
    assert_eq!(peers[x].views.write_key(), None);

    // An ACL change after the rotation is sealed with the new epoch's ACL key.
    let editor = Batch::new().with(
        ACL_VIEW,
        AclOp::SetEditor {
            member: follower.log_id(),
            editor: true,
            from: 1,
        }
        .encode(),
    );
    peers[o].write(&editor, 5).await;
    peers[d].write(&put("by default after"), 6).await;
    sync(&mut peers, &key).await;
    for i in [o, f, d] {
        assert!(
            peers[i].views.acl().is_editor_now(&follower.log_id()),
            "peer {i} reads the new epoch's ACL events"
        );
    }
    assert!(!peers[x].views.acl().is_editor_now(&follower.log_id()));
    let entries = peers[x]
        .store
        .entries_after(thread, owner.log_id(), 2, Page::new(1, usize::MAX))
        .await
        .expect("read");
    let mut verifier =
        threads_log::Verifier::new(thread, owner.log_id(), &threads_acl::acl_key(thread, &key))
            .expect("verifier");
    verifier.add_read_key(key.read().expect("read key").clone());
    assert!(
        verifier.read_stored(&entries[0].entry).is_err(),
        "the revoked member cannot open the new ACL event"
    );
    assert_eq!(
        peers[o].keys().await,
        ["by default after", "by default before", "revoked before"]
    );
    assert_eq!(peers[d].keys().await, peers[o].keys().await);
    assert_eq!(
        peers[x].keys().await,
        ["by default before", "revoked before"]
    );

    // A member invited after the rotation gets the whole ring and reads every ACL event.
    let invite = peers[o]
        .views
        .invite(addrs(thread, &owner), &late.log_id(), Role::Follow)
        .expect("invite");
    let (_, keys) = invite.open(&late).expect("opens");
    assert_eq!(keys.thread_key().epoch_service(), &epoch);
    peers.push(Peer::new(late.clone(), thread, keys.thread_key()).await);
    sync(&mut peers, &key).await;
    let l = peers.len() - 1;
    assert!(peers[l].views.acl().is_editor_now(&follower.log_id()));
    assert_eq!(peers[l].views.acl().digest(), peers[o].views.acl().digest());
}

/// Two editors revoke two members at once, each rotation sealed to the members its editor
/// knew of: a peer takes the epochs in the ACL's order whatever order they arrive in; each
/// rotation reached the member the other revoked, so an editor sees the keys must rotate
/// again, and after it neither revoked member holds the newest epoch. A rotation that stops
/// counting (its editor's right revoked back to before it) is no longer the epoch anyone
/// writes with. A follower promoted to reader is handed every epoch with its read key.
#[tokio::test]
async fn concurrent_and_withdrawn_rotations_leave_every_peer_on_one_epoch() {
    let owner = Identity::from_secret_bytes(&[1; 32]);
    let editor = Identity::from_secret_bytes(&[2; 32]);
    let x = Identity::from_secret_bytes(&[3; 32]);
    let y = Identity::from_secret_bytes(&[4; 32]);
    let follower = Identity::from_secret_bytes(&[5; 32]);
    let (thread, salt) = new_thread(&owner.log_id());
    let key = ThreadKey::generate();
    let mut peers = vec![
        Peer::new(owner.clone(), thread, &key).await,
        Peer::new(editor.clone(), thread, &key).await,
        Peer::new(x.clone(), thread, &key).await,
        Peer::new(y.clone(), thread, &key).await,
        Peer::new(follower.clone(), thread, &key.to_follower()).await,
    ];
    let (o, e, px, py, f) = (0, 1, 2, 3, 4);
    let role = |member: &Identity, role: Role| {
        AclOp::SetRole {
            member: member.log_id(),
            role,
            from: 1,
        }
        .encode()
    };
    let founding = Batch::new()
        .with(ACL_VIEW, AclOp::Init { salt }.encode())
        .with(ACL_VIEW, role(&editor, Role::Write))
        .with(
            ACL_VIEW,
            AclOp::SetEditor {
                member: editor.log_id(),
                editor: true,
                from: 1,
            }
            .encode(),
        )
        .with(ACL_VIEW, role(&x, Role::Write))
        .with(ACL_VIEW, role(&y, Role::Write))
        .with(ACL_VIEW, role(&follower, Role::Follow));
    peers[o].write(&founding, 1).await;
    sync(&mut peers, &key).await;

    // At once: the owner revokes X, the editor revokes Y.
    let by_owner = peers[o]
        .views
        .set_role(x.log_id(), Role::NoAccess)
        .await
        .expect("revoke x");
    let by_editor = peers[e]
        .views
        .set_role(y.log_id(), Role::NoAccess)
        .await
        .expect("revoke y");
    peers[o].write(&by_owner, 10).await;
    peers[e].write(&by_editor, 20).await;
    // The follower gets the editor's (later) rotation first, then the owner's.
    sync_some(&mut peers, &key, &[editor.log_id()], &[f]).await;
    let later = peers[f].views.ring().epoch_service().clone();
    sync(&mut peers, &key).await;
    for i in [o, e, f] {
        assert_eq!(
            peers[i].views.ring().epoch_service(),
            &later,
            "peer {i} writes with the epoch of the latest rotation"
        );
        assert_eq!(peers[i].views.ring().epochs().len(), 2, "peer {i}");
    }
    // The editor's rotation was sealed to X, which the owner revoked meanwhile.
    assert!(peers[o].views.needs_rotation());
    assert!(peers[e].views.needs_rotation());
    let again = peers[o].views.rotate(None).await.expect("rotate again");
    peers[o]
        .write(&Batch::new().with(ACL_VIEW, again.encode()), 30)
        .await;
    sync(&mut peers, &key).await;
    let newest = peers[o].views.ring().epoch_service().clone();
    for i in [o, e, f] {
        assert_eq!(peers[i].views.ring().epoch_service(), &newest, "peer {i}");
        assert!(!peers[i].views.needs_rotation(), "peer {i}");
    }
    for i in [px, py] {
        assert!(
            peers[i].views.ring().services().all(|s| *s != newest),
            "revoked peer {i} holds the newest epoch"
        );
    }

    // The owner takes the editor's right away from before its next ACL event, which the
    // owner has not seen: the editor's rotation written then stops counting, everywhere.
    let withdrawn_from = peers[o]
        .views
        .next_counter(editor.log_id())
        .await
        .expect("counter");
    let withdrawal = Batch::new().with(
        ACL_VIEW,
        AclOp::SetEditor {
            member: editor.log_id(),
            editor: false,
            from: withdrawn_from,
        }
        .encode(),
    );
    let stale = peers[e].views.rotate(None).await.expect("rotate");
    peers[e]
        .write(&Batch::new().with(ACL_VIEW, stale.encode()), 40)
        .await;
    sync_some(&mut peers, &key, &[editor.log_id()], &[f]).await;
    assert_ne!(
        peers[f].views.ring().epoch_service(),
        &newest,
        "the follower took the editor's rotation while it counted"
    );
    peers[o].write(&withdrawal, 50).await;
    sync(&mut peers, &key).await;
    for i in [o, e, f] {
        assert_eq!(
            peers[i].views.ring().epoch_service(),
            &newest,
            "peer {i} left the withdrawn rotation's epoch"
        );
        let stored = peers[i]
            .store
            .thread_key(thread)
            .await
            .expect("key")
            .expect("held");
        assert_eq!(stored.epoch_service(), &newest, "peer {i} stored it");
    }

    // The follower, promoted to reader, is handed every epoch it holds with its read key.
    let promote = peers[o]
        .views
        .set_role(follower.log_id(), Role::Read)
        .await
        .expect("promote");
    peers[o].write(&promote, 60).await;
    peers[o].write(&put("for readers"), 70).await;
    sync(&mut peers, &key).await;
    assert_eq!(peers[f].keys().await, ["for readers"]);
    assert_eq!(peers[f].views.ring().epoch_service(), &newest);
    assert_eq!(peers[f].views.acl().digest(), peers[o].views.acl().digest());
}
