//! threads-store on its own: the same log appended to a store in memory and to a SQLite
//! file, read back in pages, compared by heads digest, and found again after the file is
//! reopened. An append only extends the head it was verified against (compare-and-set), so
//! a stale writer gets a conflict, not a forked log, and a replayed batch changes nothing.
//!
//! Run with `cargo run -p threads-examples --example store_alone`.
#![allow(clippy::print_stdout)]

use anyhow::{Result, bail};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_store::{AppendOutcome, LogBook, MemoryStore, Page, SqliteStore, Store, StoreError};

/// `n` entries of `writer`'s log, with their skip links.
fn entries(writer: &Writer, n: u64) -> Result<Vec<Appended>> {
    let mut log: Vec<Appended> = Vec::new();
    for i in 0..n {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i + 1).map(|t| *log[t as usize - 1].record.cid());
        log.push(writer.append(prev.as_ref(), skip, b"payload", Hlc::new(1 + i, 0))?);
    }
    Ok(log)
}

/// Stores the log in two batches, the second after the head the first made.
async fn fill<S: Store>(
    store: &S,
    writer: &Writer,
    key: &ThreadKey,
    log: &[Appended],
) -> Result<()> {
    let (thread, id) = (writer.thread_id(), writer.log_id());
    store.put_thread(thread, key).await?;
    store.append(thread, id, None, &log[..60]).await?;
    store
        .append(thread, id, Some(log[59].record.head()), &log[60..])
        .await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let thread = ThreadId::new(Variant::Raw);
    let key = ThreadKey::generate();
    let writer = Writer::new(Identity::generate(), thread, &key)?;
    let log = entries(&writer, 100)?;

    let memory = MemoryStore::new();
    fill(&memory, &writer, &key, &log).await?;
    let dir = std::env::temp_dir().join(format!("threads-store-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("store.db");
    let sqlite = SqliteStore::open(&path).await?;
    fill(&sqlite, &writer, &key, &log).await?;

    // Read back in pages: at most 40 entries (or a byte budget) at a time.
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = sqlite
            .entries_after(thread, writer.log_id(), after, Page::new(40, 1 << 20))
            .await?;
        let Some(last) = page.last() else { break };
        after = last.counter;
        pages += 1;
    }
    println!("read {after} entries back in {pages} pages");

    // Two stores holding the same logs have the same heads digest.
    let same = memory.heads_digest(thread).await? == sqlite.heads_digest(thread).await?;
    println!("memory and SQLite agree on the heads: {same}");
    if !same {
        bail!("the stores disagree");
    }

    // A replay changes nothing; a batch built on a stale head is a conflict.
    let replay = sqlite
        .append(
            thread,
            writer.log_id(),
            Some(log[59].record.head()),
            &log[60..],
        )
        .await?;
    println!(
        "replaying the second batch: {}",
        matches!(replay, AppendOutcome::AlreadyStored { .. })
    );
    let stale = writer.append(
        Some(&log[98].record.head()),
        skip_target(100).map(|t| *log[t as usize - 1].record.cid()),
        b"written on a stale head",
        Hlc::new(1_000, 0),
    )?;
    let stale_head = Some(log[98].record.head());
    match sqlite
        .append(thread, writer.log_id(), stale_head, &[stale])
        .await
    {
        Err(StoreError::Conflict { .. }) => println!("a batch on a stale head: a conflict"),
        other => bail!("a stale batch was not refused: {other:?}"),
    }

    // The file keeps it all.
    sqlite.close().await;
    let reopened = SqliteStore::open(&path).await?;
    let head = reopened.head(thread, writer.log_id()).await?;
    println!(
        "after reopening: head at counter {:?}",
        head.map(|h| h.counter)
    );
    if head.map(|h| h.counter) != Some(100) {
        bail!("the file lost entries");
    }
    reopened.close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
