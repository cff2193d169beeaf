//! CAR export and import: a thread with two writers goes out as a CARv1 archive and comes
//! back into a third peer equal (the same views, the same archive byte for byte); an
//! independent implementation (the `iroh-car` crate) reads the archive's roots and blocks;
//! a tampered archive is refused with the reason, whether its CIDs were left as they were
//! or made to match.

use std::time::{Duration, Instant};

use threads_acl::Role;
use threads_crypto::Identity;
use threads_db::{Db, DbConfig, DbError};
use threads_id::{ThreadId, Variant, varint};
use threads_log::{Cid, DAG_CBOR, cid_of};
use threads_net::car::CarError;
use threads_store::{LogBook, MemoryStore, ThreadBook};

const LIMIT: Duration = Duration::from_secs(60);

fn config() -> DbConfig {
    DbConfig::default().with_sync_interval(Duration::from_millis(200))
}

async fn peer(seed: u8) -> Db<MemoryStore> {
    Db::open_memory(Identity::from_secret_bytes(&[seed; 32]), config())
        .await
        .expect("peer")
}

/// The archive's sections after the header: (CID, bytes).
fn sections(archive: &[u8]) -> (Vec<u8>, Vec<(Cid, Vec<u8>)>) {
    let (len, rest) = varint::decode(archive).expect("header length");
    let header_end = archive.len() - rest.len() + len as usize;
    let mut input = &archive[header_end..];
    let mut out = Vec::new();
    while !input.is_empty() {
        let (len, rest) = varint::decode(input).expect("section length");
        let (body, rest) = rest.split_at(len as usize);
        let mut cursor = std::io::Cursor::new(body);
        let cid = Cid::read_bytes(&mut cursor).expect("cid");
        out.push((cid, body[cursor.position() as usize..].to_vec()));
        input = rest;
    }
    (archive[..header_end].to_vec(), out)
}

fn assemble(header: &[u8], sections: &[(Cid, Vec<u8>)]) -> Vec<u8> {
    let mut out = header.to_vec();
    for (cid, data) in sections {
        let cid = cid.to_bytes();
        varint::encode((cid.len() + data.len()) as u64, &mut out);
        out.extend_from_slice(&cid);
        out.extend_from_slice(data);
    }
    out
}

async fn heads(db: &Db<MemoryStore>, thread: ThreadId) -> Vec<(String, u64)> {
    let store = db.node().store();
    let mut out = Vec::new();
    for log in store.logs(thread).await.expect("logs") {
        if let Some(head) = store.head(thread, log).await.expect("head") {
            out.push((head.cid.to_string(), head.counter));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_round_trips_through_a_car_archive_and_a_tampered_one_is_refused() {
    let alice = peer(110).await;
    let bob = peer(111).await;
    let thread = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    let invite = alice
        .invite(thread, bob.identity().log_id(), Role::Write)
        .await
        .expect("invite");
    bob.join(&invite).await.expect("join");
    for i in 0..30u32 {
        let db = if i % 3 == 0 { &bob } else { &alice };
        db.transaction(thread)
            .put(
                format!("k{}", i % 11).as_bytes(),
                format!("v{i}").as_bytes(),
            )
            .commit()
            .await
            .expect("write");
    }
    let started = Instant::now();
    while heads(&alice, thread)
        .await
        .iter()
        .map(|(_, c)| c)
        .sum::<u64>()
        < 32
    {
        assert!(started.elapsed() < LIMIT, "bob's writes reach alice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice.catch_up(thread).await.expect("catch up");
    let (archive, summary) = alice.export_car(thread).await.expect("export");
    // The 30 writes, and the ACL's init and the writer's role.
    assert_eq!((summary.logs, summary.entries), (2, 32));

    // An independent reader: the roots are the logs' heads, and every block is named by
    // its bytes (one marker per log, four blocks per entry).
    let mut reader = iroh_car::CarReader::new(&archive[..])
        .await
        .expect("a CARv1 archive");
    let mut roots: Vec<String> = reader
        .header()
        .roots()
        .iter()
        .map(ToString::to_string)
        .collect();
    roots.sort();
    let mut expected_roots: Vec<String> = heads(&alice, thread)
        .await
        .into_iter()
        .map(|(cid, _)| cid)
        .collect();
    expected_roots.sort();
    assert_eq!(roots, expected_roots);
    let mut blocks = 0;
    while let Some((cid, data)) = reader.next_block().await.expect("a block") {
        assert_eq!(cid.to_string(), cid_of(cid.codec(), &data).to_string());
        blocks += 1;
    }
    assert_eq!(blocks, 2 + 4 * 32);

    // Into a peer that holds the keys and nothing else.
    let carol = peer(112).await;
    let key = alice
        .node()
        .store()
        .thread_key(thread)
        .await
        .expect("key")
        .expect("held");
    carol
        .node()
        .store()
        .put_thread(thread, &key)
        .await
        .expect("key");
    let (imported, summary) = carol.import_car(&archive).await.expect("import");
    assert_eq!(imported, thread);
    assert_eq!((summary.logs, summary.entries, summary.stored), (2, 32, 32));
    assert_eq!(
        carol.list(thread, b"").await.expect("list"),
        alice.list(thread, b"").await.expect("list")
    );
    assert_eq!(carol.export_car(thread).await.expect("export").0, archive);
    // Again: nothing new.
    let (_, again) = carol.import_car(&archive).await.expect("import");
    assert_eq!(again.stored, 0);

    // Tampered: a body's byte changed, its CID left as it was.
    let (header, mut parts) = sections(&archive);
    let body = parts
        .iter()
        .position(|(cid, data)| cid.codec() != DAG_CBOR && data.len() > 40)
        .expect("a raw block");
    let dave = peer(113).await;
    dave.node()
        .store()
        .put_thread(thread, &key)
        .await
        .expect("key");
    let mut flipped = parts.clone();
    flipped[body].1[20] ^= 1;
    match dave.import_car(&assemble(&header, &flipped)).await {
        Err(DbError::Car(CarError::Cid { index })) => assert_eq!(index, body),
        other => panic!("a changed block was not refused: {other:?}"),
    }
    // Tampered with the CID made to match: the entry no longer verifies.
    let last = parts.len() - 1;
    parts[last].1[20] ^= 1;
    parts[last].0 = cid_of(parts[last].0.codec(), &parts[last].1);
    match dave.import_car(&assemble(&header, &parts)).await {
        Err(DbError::Car(CarError::Rejected { .. })) => {}
        other => panic!("a forged entry was not refused: {other:?}"),
    }
    // What was stored before the forged entry is a valid prefix; the forged one is not.
    let stored: u64 = heads(&dave, thread).await.iter().map(|(_, c)| c).sum();
    assert!(stored < 32, "the forged entry was not stored ({stored})");
    // A peer without the thread's keys cannot import it.
    let erin = peer(114).await;
    assert!(matches!(
        erin.import_car(&archive).await,
        Err(DbError::Car(CarError::UnknownThread(t))) if t == thread
    ));

    // After compaction the archive carries the compacted entries with the empty body
    // block: still a CARv1 archive the independent reader takes, and a peer importing it
    // computes the same views from it.
    let compacted = alice.compact(thread).await.expect("compact");
    assert!(compacted.events >= 15, "{compacted:?}");
    let (archive, summary) = alice.export_car(thread).await.expect("export");
    // One compaction operation per log with superseded events: both.
    assert_eq!(summary.entries, 34);
    let mut reader = iroh_car::CarReader::new(&archive[..])
        .await
        .expect("a CARv1 archive");
    let mut empty = 0;
    while let Some((cid, data)) = reader.next_block().await.expect("a block") {
        assert_eq!(cid.to_string(), cid_of(cid.codec(), &data).to_string());
        empty += usize::from(data.is_empty());
    }
    assert_eq!(empty as u64, compacted.events);
    let frank = peer(115).await;
    frank
        .node()
        .store()
        .put_thread(thread, &key)
        .await
        .expect("key");
    frank.import_car(&archive).await.expect("import");
    frank.catch_up(thread).await.expect("catch up");
    assert_eq!(
        frank.list(thread, b"").await.expect("list"),
        alice.list(thread, b"").await.expect("list")
    );
    for db in [&alice, &bob, &carol, &dave, &erin, &frank] {
        db.shutdown().await;
    }
}
