//! `threads demo`: three peers on loopback in one process, one of them a follower.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use threads_acl::Role;
use threads_crypto::Identity;
use threads_db::{Db, DbConfig, Filter, Query};
use threads_id::Variant;
use threads_store::{LogBook, SqliteStore};

fn say(started: Instant, text: &str) {
    println!("[{:>7.3} s] {text}", started.elapsed().as_secs_f64());
}

async fn peer(dir: &std::path::Path, name: &str, seed: u8) -> Result<Db<SqliteStore>> {
    let config = DbConfig::default().with_sync_interval(Duration::from_millis(300));
    Db::open_sqlite(
        dir.join(format!("{name}.db")),
        Identity::from_secret_bytes(&[seed; 32]),
        config,
    )
    .await
    .with_context(|| format!("open {name}"))
}

/// Waits until `check` holds, polling.
async fn until<F, Fut>(limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > limit {
            bail!("timed out after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs the demo, printing what happens with timings.
pub(crate) async fn run() -> Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    println!(
        "threads demo: three peers on 127.0.0.1 (alice and bob write, a follower replicates without reading)"
    );
    println!("data in {}\n", dir.path().display());

    let alice = peer(dir.path(), "alice", 1).await?;
    let bob = peer(dir.path(), "bob", 2).await?;
    let follower = peer(dir.path(), "follower", 3).await?;
    say(
        started,
        &format!("alice    is {}", alice.identity().log_id()),
    );
    say(started, &format!("bob      is {}", bob.identity().log_id()));
    say(
        started,
        &format!("follower is {}", follower.identity().log_id()),
    );

    let thread = alice.create_thread(Variant::AccessControlled).await?;
    say(
        started,
        &format!("alice created the access-controlled thread {thread}"),
    );
    alice
        .transaction(thread)
        .create_collection(
            "tasks",
            &json!({
                "type": "object",
                "properties": {"title": {"type": "string"}, "by": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["title", "by"]
            }),
        )
        .commit()
        .await?;
    say(
        started,
        "alice created the collection `tasks` with a JSON Schema",
    );

    let to_follower = alice
        .invite(thread, follower.identity().log_id(), Role::Follow)
        .await?;
    let t = Instant::now();
    follower.join(&to_follower).await?;
    say(
        started,
        &format!(
            "the follower joined with a follow-only invite (no read key) in {:?}",
            t.elapsed()
        ),
    );

    let to_bob = alice
        .invite(thread, bob.identity().log_id(), Role::Write)
        .await?;
    let t = Instant::now();
    bob.join(&to_bob).await?;
    say(
        started,
        &format!("bob joined as a writer in {:?}", t.elapsed()),
    );
    // Everyone learns the follower's address, so it can serve them.
    if let Some(addr) = follower.node().thread_addr(thread) {
        alice.add_peer(addr.clone()).await?;
        bob.add_peer(addr).await?;
    }
    if let Some(addr) = bob.node().thread_addr(thread) {
        alice.add_peer(addr).await?;
    }

    // Concurrent writes from two peers.
    let t = Instant::now();
    let write = |db: &Db<SqliteStore>, who: &'static str| {
        let db = db.clone();
        async move {
            for n in 0..25 {
                db.transaction(thread)
                    .create(
                        "tasks",
                        &format!("{who}-{n:02}"),
                        &json!({"title": format!("task {n} of {who}"), "by": who, "n": n}),
                    )
                    .commit()
                    .await?;
            }
            anyhow::Ok(())
        }
    };
    let (a, b) = tokio::join!(write(&alice, "alice"), write(&bob, "bob"));
    a?;
    b?;
    say(
        started,
        &format!(
            "alice and bob wrote 25 documents each, concurrently, in {:?}",
            t.elapsed()
        ),
    );
    // The write path: one write awaited after another, then many tasks at once (their
    // writes share store transactions).
    let t = Instant::now();
    const AWAITED: usize = 500;
    for n in 0..AWAITED {
        alice
            .transaction(thread)
            .put(format!("counter/{n}").as_bytes(), b"1")
            .commit()
            .await?;
    }
    let awaited = AWAITED as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    const TASKS: usize = 64;
    const EACH: usize = 20;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let alice = alice.clone();
        tasks.spawn(async move {
            for n in 0..EACH {
                alice
                    .transaction(thread)
                    .put(format!("task/{task}/{n}").as_bytes(), b"1")
                    .commit()
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let grouped = (TASKS * EACH) as f64 / t.elapsed().as_secs_f64();
    say(
        started,
        &format!(
            "alice wrote {AWAITED} keys one after another at {awaited:.0} writes/s, then {} from {TASKS} tasks at once at {grouped:.0} writes/s (group commit)",
            TASKS * EACH
        ),
    );
    let all = Query::all();
    let t = Instant::now();
    until(Duration::from_secs(30), || async {
        let a = alice
            .query(thread, "tasks", &all)
            .await
            .map(|p| p.docs.len())
            .unwrap_or(0);
        let b = bob
            .query(thread, "tasks", &all)
            .await
            .map(|p| p.docs.len())
            .unwrap_or(0);
        a == 50 && b == 50
    })
    .await?;
    say(
        started,
        &format!("both see all 50 documents (converged in {:?})", t.elapsed()),
    );
    let logs = [alice.identity().log_id(), bob.identity().log_id()];
    let heads = (
        alice.node().store().head(thread, logs[0]).await?,
        bob.node().store().head(thread, logs[1]).await?,
    );
    until(Duration::from_secs(30), || async {
        let f = follower.node().store();
        (
            f.head(thread, logs[0]).await.ok().flatten(),
            f.head(thread, logs[1]).await.ok().flatten(),
        ) == heads
    })
    .await?;
    let mut held = 0;
    for peer in logs {
        held += follower
            .node()
            .store()
            .head(thread, peer)
            .await?
            .map_or(0, |h| h.counter);
    }
    let readable = follower
        .query(thread, "tasks", &all)
        .await
        .map_or(0, |p| p.docs.len());
    say(
        started,
        &format!(
            "the follower holds all {held} entries of alice's and bob's logs and can read {readable} documents"
        ),
    );

    // Bob goes offline; alice writes more; then alice goes offline too.
    bob.shutdown().await;
    drop(bob);
    say(started, "bob went offline");
    for n in 25..35 {
        alice
            .transaction(thread)
            .create(
                "tasks",
                &format!("alice-{n:02}"),
                &json!({"title": format!("late task {n}"), "by": "alice", "n": n}),
            )
            .commit()
            .await?;
    }
    say(started, "alice wrote 10 more documents while bob was away");
    let alice_head = alice
        .node()
        .store()
        .head(thread, alice.identity().log_id())
        .await?;
    until(Duration::from_secs(30), || async {
        follower
            .node()
            .store()
            .head(thread, alice.identity().log_id())
            .await
            .ok()
            .flatten()
            == alice_head
    })
    .await?;
    say(started, "the follower has replicated them");
    alice.shutdown().await;
    drop(alice);
    say(started, "alice (the writer) went offline");

    // Bob comes back: only the follower is online.
    let t = Instant::now();
    let bob = peer(dir.path(), "bob", 2).await?;
    until(Duration::from_secs(30), || async {
        bob.query(thread, "tasks", &all)
            .await
            .map(|p| p.docs.len())
            .unwrap_or(0)
            == 60
    })
    .await?;
    say(
        started,
        &format!(
            "bob restarted and caught up through the follower in {:?}: 60 documents",
            t.elapsed()
        ),
    );
    let late = bob
        .query(
            thread,
            "tasks",
            &Query::filter(Filter::Ge("n".into(), json!(25))).sort("n", false),
        )
        .await?;
    say(
        started,
        &format!(
            "query n >= 25 on bob: {} documents, first {}",
            late.docs.len(),
            late.docs.first().map(|(id, _)| id.as_str()).unwrap_or("-")
        ),
    );
    if late.docs.len() != 10 {
        bail!("expected alice's 10 late documents on bob");
    }
    bob.shutdown().await;
    follower.shutdown().await;
    println!("\ndone in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
