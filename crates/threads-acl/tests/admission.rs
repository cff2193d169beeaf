//! Network admission over real libp2p nodes: a node serves an access-controlled thread only
//! to peers whose identity has at least the follow role, and follows ACL changes.

use std::sync::Arc;
use std::time::Duration;

use threads_acl::{ACL_VIEW, AclAdmission, AclOp, AclViews, Role, new_thread};
use threads_crypto::{Identity, ThreadKey};
use threads_log::{Hlc, Writer};
use threads_net::message::Refusal;
use threads_net::{NetConfig, NetError, Node};
use threads_store::{LogBook, MemoryStore, ThreadBook, write_local};
use threads_views::{Batch, Kv, Reducer, ViewConfig};

const LIMIT: Duration = Duration::from_secs(30);

async fn node(id: &Identity, admission: AclAdmission) -> Node<MemoryStore> {
    let config =
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]).with_admission(admission);
    Node::start(id, Arc::new(MemoryStore::new()), config)
        .await
        .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_with_follow_are_served() {
    let owner = Identity::from_secret_bytes(&[1; 32]);
    let follower = Identity::from_secret_bytes(&[2; 32]);
    let stranger = Identity::from_secret_bytes(&[3; 32]);
    let (thread, salt) = new_thread(&owner.log_id());
    let key = ThreadKey::generate();

    let admission = AclAdmission::new();
    let host = node(&owner, admission.clone()).await;
    let follower_node = node(&follower, AclAdmission::new()).await;
    let stranger_node = node(&stranger, AclAdmission::new()).await;
    host.store().put_thread(thread, &key).await.expect("thread");
    for n in [&follower_node, &stranger_node] {
        n.store()
            .put_thread(thread, &key.to_follower())
            .await
            .expect("thread");
    }

    let mut views = AclViews::open(
        Arc::clone(host.store()),
        thread,
        &owner,
        vec![Arc::new(Kv::new("kv")) as Arc<dyn Reducer>],
        ViewConfig::new(),
    )
    .await
    .expect("views");
    admission.register(views.shared_acl());
    let acl_writer = Writer::new(owner.clone(), thread, &views.acl_key()).expect("writer");
    let founding = Batch::new()
        .with(ACL_VIEW, AclOp::Init { salt }.encode())
        .with(
            ACL_VIEW,
            AclOp::SetRole {
                member: follower.log_id(),
                role: Role::Follow,
                from: 1,
            }
            .encode(),
        );
    write_local(
        &**host.store(),
        &acl_writer,
        &founding.encode(),
        Hlc::new(1, 0),
    )
    .await
    .expect("write");
    let data = Writer::new(owner.clone(), thread, &key).expect("writer");
    let put = Batch::new().with("kv", Kv::put(b"k", b"v")).encode();
    write_local(&**host.store(), &data, &put, Hlc::new(2, 0))
        .await
        .expect("write");
    views.catch_up().await.expect("catch up");

    let addr = host.thread_addr(thread).expect("address");
    let pulled = tokio::time::timeout(LIMIT, follower_node.pull(&addr))
        .await
        .expect("in time")
        .expect("the follower is served");
    assert_eq!(pulled, 2);
    let refused = tokio::time::timeout(LIMIT, stranger_node.pull(&addr))
        .await
        .expect("in time")
        .expect_err("the stranger is not served");
    assert!(
        matches!(
            refused,
            NetError::Refused {
                refusal: Refusal::UnknownThread,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(
        stranger_node
            .store()
            .head(thread, owner.log_id())
            .await
            .expect("head"),
        None
    );

    // The owner lets the stranger follow and takes the follower's role away.
    let change = Batch::new()
        .with(
            ACL_VIEW,
            AclOp::SetRole {
                member: stranger.log_id(),
                role: Role::Follow,
                from: 1,
            }
            .encode(),
        )
        .with(
            ACL_VIEW,
            AclOp::SetRole {
                member: follower.log_id(),
                role: Role::NoAccess,
                from: 1,
            }
            .encode(),
        );
    let head = host
        .store()
        .head(thread, owner.log_id())
        .await
        .expect("head");
    assert_eq!(head.map(|h| h.counter), Some(2));
    write_local(
        &**host.store(),
        &acl_writer,
        &change.encode(),
        Hlc::new(3, 0),
    )
    .await
    .expect("write");
    views.catch_up().await.expect("catch up");
    let pulled = tokio::time::timeout(LIMIT, stranger_node.pull(&addr))
        .await
        .expect("in time")
        .expect("now served");
    assert_eq!(pulled, 3);
    assert!(
        tokio::time::timeout(LIMIT, follower_node.pull(&addr))
            .await
            .expect("in time")
            .is_err(),
        "the former follower is no longer served"
    );
}
