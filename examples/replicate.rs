//! threads-net and threads-views without the database: two nodes on loopback replicate a
//! thread, and each computes a view of its own kind, a word tally, from the events it holds.
//! The tally is a reducer (a pure fold), so both nodes end with byte-identical views
//! whatever order the events arrived in.
//!
//! Run with `cargo run -p threads-examples --example replicate`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use threads_crypto::{Identity, KeySet};
use threads_id::Variant;
use threads_log::{Hlc, Writer};
use threads_net::{Invite, NetConfig, Node};
use threads_store::MemoryStore;
use threads_views::{Batch, Event, Reducer, Reject, State, ViewConfig, ViewKind, Views};

/// Counts words: an operation is one word; the row of a word is its count (8 bytes).
struct Tally;

impl Reducer for Tally {
    fn name(&self) -> &str {
        "tally"
    }

    fn kind(&self) -> ViewKind {
        // Adding is commutative: the order of events does not change the counts.
        ViewKind::Commutative
    }

    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
        if event.data.is_empty() || event.data.len() > 64 {
            return Err(Reject::new("a word is 1 to 64 bytes"));
        }
        let count = state
            .get(event.data)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        state.put(event.data, (count + 1).to_be_bytes());
        Ok(())
    }
}

fn words(text: &str) -> Vec<u8> {
    let mut batch = Batch::new();
    for word in text.split_whitespace() {
        batch.push("tally", word.as_bytes().to_vec());
    }
    batch.encode()
}

async fn tally(
    node: &Node<MemoryStore>,
    thread: threads_id::ThreadId,
) -> Result<Vec<(String, u64)>> {
    let mut views = Views::open(
        Arc::clone(node.store()),
        thread,
        vec![Arc::new(Tally)],
        ViewConfig::new(),
    )
    .await?;
    views.catch_up().await?;
    Ok(views
        .read("tally", |state| {
            state
                .iter()
                .map(|(k, v)| {
                    let count = <[u8; 8]>::try_from(v.as_slice()).map_or(0, u64::from_be_bytes);
                    (String::from_utf8_lossy(&k).into_owned(), count)
                })
                .collect()
        })
        .await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let loopback = || NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("an address")]);
    let alice_id = Identity::generate();
    let bob_id = Identity::generate();
    let alice = Node::start(&alice_id, Arc::new(MemoryStore::new()), loopback()).await?;
    let bob = Node::start(&bob_id, Arc::new(MemoryStore::new()), loopback()).await?;

    let (thread, key) = alice.create_thread(Variant::Raw).await?;
    let invite = Invite::sealed(
        &alice_id,
        vec![alice.thread_addr(thread).expect("an address")],
        &KeySet::new(thread, key.clone()),
        &bob_id.public(),
    );
    bob.join(&invite, &bob_id).await?;
    alice.add_peer(bob.thread_addr(thread).expect("an address"));
    bob.start_sync(Duration::from_millis(200));
    alice.start_sync(Duration::from_millis(200));

    // Both write; each node pushes its entries to the other and pulls what it lacks.
    let alice_writer = Writer::new(alice_id, thread, &key)?;
    let bob_writer = Writer::new(bob_id, thread, &key)?;
    alice
        .write(&alice_writer, &words("the quick brown fox"), Hlc::new(1, 0))
        .await?;
    bob.write(&bob_writer, &words("the lazy dog"), Hlc::new(2, 0))
        .await?;
    alice
        .write(&alice_writer, &words("jumps over the dog"), Hlc::new(3, 0))
        .await?;

    let started = Instant::now();
    loop {
        let (a, b) = (tally(&alice, thread).await?, tally(&bob, thread).await?);
        if a == b && a.iter().map(|(_, n)| n).sum::<u64>() == 11 {
            println!("both nodes tally the same words:");
            for (word, count) in a {
                println!("  {word}: {count}");
            }
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the nodes did not converge: {a:?} / {b:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.shutdown().await;
    bob.shutdown().await;
    Ok(())
}
