//! Two peers share a thread with a view of the application's own: a todo list whose items
//! only their author may close. The view is a reducer: a pure fold over the thread's
//! events that every peer computes the same way. `Db` persists it, catches it up as
//! entries arrive, and checks a write against it before storing it, so a write the view
//! would refuse is refused at once.
//!
//! Run with `cargo run -p threads-examples --example custom_view`.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use threads_acl::Role;
use threads_crypto::Identity;
use threads_db::{Db, DbConfig, DbError};
use threads_id::{ThreadId, Variant};
use threads_store::MemoryStore;
use threads_views::{Batch, Event, Reducer, Reject, State, ViewKind};

/// The todo list: `{"add": id, "text": ...}` adds an item, `{"close": id}` closes it.
/// Rows: item id -> `{"text", "author", "open"}`.
struct Todos;

impl Reducer for Todos {
    fn name(&self) -> &str {
        "todos"
    }

    fn kind(&self) -> ViewKind {
        // Whether a close is allowed depends on what came before it.
        ViewKind::Ordered
    }

    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
        let op: Value =
            serde_json::from_slice(event.data).map_err(|e| Reject::new(e.to_string()))?;
        let author = event.author().to_string();
        if let Some(id) = op["add"].as_str() {
            if state.get(id.as_bytes()).is_some() {
                return Err(Reject::new(format!("item {id} exists")));
            }
            let row = json!({"text": op["text"], "author": author, "open": true});
            state.put(id.as_bytes(), row.to_string());
            return Ok(());
        }
        if let Some(id) = op["close"].as_str() {
            let Some(row) = state.get(id.as_bytes()) else {
                return Err(Reject::new(format!("no item {id}")));
            };
            let mut row: Value =
                serde_json::from_slice(&row).map_err(|e| Reject::new(e.to_string()))?;
            if row["author"] != author {
                return Err(Reject::new(format!("only its author may close {id}")));
            }
            row["open"] = json!(false);
            state.put(id.as_bytes(), row.to_string());
            return Ok(());
        }
        Err(Reject::new("unknown operation"))
    }
}

fn op(value: Value) -> Batch {
    Batch::new().with("todos", value.to_string().into_bytes())
}

/// The list as (id, text, open), in id order.
async fn list(db: &Db<MemoryStore>, thread: ThreadId) -> Result<Vec<(String, String, bool)>> {
    Ok(db
        .read_view(thread, "todos", |state| {
            state
                .iter()
                .map(|(id, row)| {
                    let row: Value = serde_json::from_slice(&row).unwrap_or_default();
                    (
                        String::from_utf8_lossy(&id).into_owned(),
                        row["text"].as_str().unwrap_or_default().to_owned(),
                        row["open"].as_bool().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .await?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let config = || DbConfig::default().with_view(Todos);
    let alice = Db::open_memory(Identity::generate(), config()).await?;
    let bob = Db::open_memory(Identity::generate(), config()).await?;
    let thread = alice.create_thread(Variant::Raw).await?;
    let invite = alice
        .invite(thread, bob.identity().log_id(), Role::Write)
        .await?;
    bob.join(&invite).await?;

    alice
        .write(thread, op(json!({"add": "milk", "text": "buy milk"})))
        .await?;
    bob.write(thread, op(json!({"add": "bread", "text": "buy bread"})))
        .await?;
    // Once Alice has Bob's item, she still may not close it: refused before anything is
    // stored.
    let started = Instant::now();
    while !list(&alice, thread)
        .await?
        .iter()
        .any(|(id, ..)| id == "bread")
    {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("bob's item did not reach alice");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match alice.write(thread, op(json!({"close": "bread"}))).await {
        Err(DbError::Rejected { refused, .. }) => {
            println!("alice closing bob's item: refused ({})", refused[0].reason);
        }
        other => bail!("expected a refusal, got {other:?}"),
    }
    bob.write(thread, op(json!({"close": "bread"}))).await?;

    // Both peers end with the same list.
    let want = vec![
        ("bread".to_owned(), "buy bread".to_owned(), false),
        ("milk".to_owned(), "buy milk".to_owned(), true),
    ];
    let started = Instant::now();
    loop {
        let (a, b) = (list(&alice, thread).await?, list(&bob, thread).await?);
        if a == want && b == want {
            println!("alice and bob both see: {a:?}");
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the peers did not converge: alice {a:?}, bob {b:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.shutdown().await;
    bob.shutdown().await;
    Ok(())
}
