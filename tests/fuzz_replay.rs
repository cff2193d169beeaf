//! Replays every saved fuzz input (the corpus and the regressions under `test_data/fuzz/`)
//! through the same checks the fuzz targets run, as ordinary tests.

use threads_tests::fuzz_inputs;

fn replay(target: &str, check: fn(&[u8])) {
    let inputs = fuzz_inputs(target);
    assert!(
        !inputs.is_empty(),
        "no saved inputs for fuzz target {target}"
    );
    for (path, bytes) in inputs {
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(
            outcome.is_ok(),
            "{target}: input {} breaks an invariant",
            path.display()
        );
    }
}

#[test]
fn thread_id_bytes() {
    replay("thread_id_bytes", threads_id::check::thread_id_bytes);
}

#[test]
fn thread_id_text() {
    replay("thread_id_text", threads_id::check::thread_id_text);
}

#[test]
fn thread_addr() {
    replay("thread_addr", threads_id::check::thread_addr);
}

#[test]
fn keyset_open() {
    replay("keyset_open", threads_crypto::check::keyset_open);
}

#[test]
fn record_decode() {
    replay("record_decode", threads_log::check::record_bytes);
}

#[test]
fn fork_proof() {
    replay("fork_proof", threads_log::check::fork_proof_bytes);
}

#[test]
fn log_append() {
    replay("log_append", threads_log::check::append_model);
}

#[test]
fn message_bytes() {
    replay("message_bytes", threads_net::check::message_bytes);
}

#[test]
fn announcement() {
    replay("announcement", threads_net::check::announcement);
}

#[test]
fn invite_bytes() {
    replay("invite_bytes", threads_net::check::invite_bytes);
}

#[test]
fn car_bytes() {
    replay("car_bytes", threads_net::check::car_bytes);
}

#[test]
fn acl_op() {
    replay("acl_op", threads_acl::check::acl_op_bytes);
}

#[test]
fn wire_entries() {
    replay("wire_entries", threads_net::check::wire_entries);
}

/// The seed inputs of the network decoders' fuzz targets: real messages, an announcement,
/// invites and a page of entries, written under `test_data/fuzz/<target>/corpus/` with
/// `THREADS_BLESS=1`; otherwise each must be saved.
#[test]
fn network_seeds_are_saved() {
    use threads_crypto::{Identity, KeySet};
    use threads_id::ThreadAddr;
    use threads_log::{Hlc, Writer, skip_target};
    use threads_net::message::{Request, Response, WireEntry};
    use threads_net::{AuthProof, Invite};

    let (thread, key, writer_id) = threads_log::check::fixture();
    let writer = Writer::new(writer_id.clone(), thread, &key).expect("writer");
    let mut log: Vec<threads_log::Appended> = Vec::new();
    for i in 0..3u64 {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i + 1).map(|t| *log[t as usize - 1].record.cid());
        let appended = writer
            .append(
                prev.as_ref(),
                skip,
                format!("entry {i}").as_bytes(),
                Hlc::new(10 + i, 0),
            )
            .expect("append");
        log.push(appended);
    }
    let wire: Vec<WireEntry> = log
        .iter()
        .map(|a| WireEntry::from_entry(&a.entry))
        .collect();
    let peer = Identity::from_secret_bytes(&[0x55; 32]).log_id().peer_id();
    let other = Identity::from_secret_bytes(&[0x66; 32]).log_id().peer_id();
    let proof = AuthProof::new(key.service(), &thread, &peer, &other);
    let addr: threads_id::Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
        .parse()
        .expect("addr");
    let requests = [
        Request::GetLogs { thread, proof },
        Request::GetRecords {
            thread,
            proof,
            log: writer.log_id(),
            after: 1,
            max_entries: 100,
            max_bytes: 1 << 20,
        },
        Request::PushRecords {
            thread,
            proof,
            log: writer.log_id(),
            entries: wire.clone(),
        },
        Request::ExchangePeers {
            thread,
            proof,
            addrs: vec![serde_bytes::ByteBuf::from(addr.to_vec())],
        },
        Request::GetForkProof {
            thread,
            proof,
            log: writer.log_id(),
        },
    ];
    // The author's other record 2: a fork at 2.
    let other = writer
        .append(
            Some(&log[0].record.head()),
            None,
            b"the other branch",
            Hlc::new(11, 0),
        )
        .expect("append");
    let verifier = threads_log::Verifier::new(thread, writer.log_id(), &key).expect("verifier");
    let fork =
        threads_log::ForkProof::new(&verifier, log[1].entry.record.clone(), other.entry.record)
            .expect("a fork")
            .to_bytes();
    let mut head = threads_net::message::LogHead::new(writer.log_id(), 3);
    head.head = Some(serde_bytes::ByteBuf::from(log[2].record.cid().to_bytes()));
    head.fork = Some(2);
    let responses = [
        Response::Records(wire.clone()),
        Response::Pushed { counter: 3 },
        Response::Peers(vec![serde_bytes::ByteBuf::from(addr.to_vec())]),
        Response::Logs(vec![head]),
        Response::ForkProof(Some(serde_bytes::ByteBuf::from(fork.clone()))),
    ];
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        seeds.push(("message_bytes", format!("request-{i}"), cbor(request)));
    }
    for (i, response) in responses.iter().enumerate() {
        seeds.push(("message_bytes", format!("response-{i}"), cbor(response)));
    }
    seeds.push((
        "announcement",
        "head-3".into(),
        threads_net::gossip::encode_announcement(&writer.log_id(), 3),
    ));
    let thread_addr = ThreadAddr::new(addr.clone(), thread).expect("thread addr");
    let keys = KeySet::new(thread, key.clone());
    let recipient = Identity::from_secret_bytes(&[0x77; 32]);
    seeds.push((
        "invite_bytes",
        "link".into(),
        Invite::link(&writer_id, vec![thread_addr.clone()], keys.clone())
            .to_bytes()
            .to_vec(),
    ));
    seeds.push((
        "invite_bytes",
        "sealed".into(),
        Invite::sealed(&writer_id, vec![thread_addr], &keys, &recipient.public())
            .with_terms(&writer_id, b"role", Some(u64::MAX))
            .expect("terms")
            .to_bytes()
            .to_vec(),
    ));
    seeds.push(("wire_entries", "chain-3".into(), cbor(&wire)));
    seeds.push(("fork_proof", "at-2".into(), fork));
    // A CAR archive of the fixture's thread: the three entries above.
    let store = threads_store::MemoryStore::new();
    {
        use threads_store::{LogBook, ThreadBook};
        futures::executor::block_on(async {
            store.put_thread(thread, &key).await.expect("key");
            store
                .append(thread, writer.log_id(), None, &log)
                .await
                .expect("append");
        });
    }
    let (car, _) =
        futures::executor::block_on(threads_net::car::export_car(&store, thread)).expect("export");
    seeds.push(("car_bytes", "three-entries".into(), car));
    let mut broken = wire;
    broken[1].record[10] ^= 1;
    seeds.push(("wire_entries", "broken-record".into(), cbor(&broken)));
    // ACL operations, one of each kind.
    {
        use threads_acl::{AclOp, Role};
        let member = recipient.log_id();
        let ops = [
            ("init", AclOp::Init { salt: [3; 16] }),
            (
                "role",
                AclOp::SetRole {
                    member,
                    role: Role::Write,
                    from: 4,
                },
            ),
            ("default", AclOp::SetDefault { role: Role::Read }),
            (
                "editor",
                AclOp::SetEditor {
                    member,
                    editor: true,
                    from: 1,
                },
            ),
            (
                "resource-role",
                AclOp::SetResourceRole {
                    view: "docs".into(),
                    resource: b"tasks\0t1".to_vec(),
                    member,
                    role: Role::Delete,
                    from: 2,
                },
            ),
            (
                "rotate",
                AclOp::Rotate {
                    sealed: vec![(member, vec![1; 120])],
                },
            ),
            (
                "share",
                AclOp::Share {
                    sealed: vec![(member, None, vec![2; 88])],
                },
            ),
            (
                "compact",
                AclOp::Compact {
                    log: member,
                    ranges: vec![(1, 3), (5, 5), (7, u64::MAX)],
                    proof: vec![1; 32],
                },
            ),
        ];
        for (name, op) in ops {
            seeds.push(("acl_op", name.into(), op.encode()));
        }
    }

    let bless = std::env::var_os("THREADS_BLESS").is_some();
    for (target, name, bytes) in seeds {
        let dir = threads_tests::test_data()
            .join("fuzz")
            .join(target)
            .join("corpus");
        let path = dir.join(&name);
        if bless {
            std::fs::create_dir_all(&dir).expect("corpus folder");
            std::fs::write(&path, &bytes).expect("write seed");
        } else {
            // Headers, bodies and sealed invites take fresh nonces: the bytes differ from
            // run to run, so only that the seed is saved is checked.
            let saved = std::fs::read(&path).unwrap_or_else(|_| {
                panic!("{} is saved (THREADS_BLESS=1 writes it)", path.display())
            });
            assert!(!saved.is_empty() && !bytes.is_empty(), "{}", path.display());
        }
    }
}

/// CBOR as the node's codec writes it.
fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), value).expect("encodes")
}
