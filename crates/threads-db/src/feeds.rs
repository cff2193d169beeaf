//! What follows a thread as it changes: live queries, event subscriptions, the change
//! feed.

use threads_id::ThreadId;
use threads_store::Store;
use threads_views::{Cursor, Subscription};

use crate::changes::Changes;
use crate::db::Db;
use crate::error::DbError;
use crate::live::{LiveQuery, ResultChange, Source};
use crate::query::Query;

impl<S: Store + 'static> Db<S> {
    /// A live query: the changes to the result set of `query` over `collection`, sent
    /// after every change of the thread's views (the first message holds the whole result
    /// set as added). Dropping the receiver ends it.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], or [`DocError::BadQuery`](crate::DocError::BadQuery).
    pub async fn live_query(
        &self,
        thread: ThreadId,
        source: Source,
        collection: &str,
        query: Query,
    ) -> Result<tokio::sync::mpsc::Receiver<Vec<ResultChange>>, DbError> {
        let views = self.views(thread).await?;
        let mut live = LiveQuery::new(source, collection, query)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let view = live.view();
        // Followed from the rows each commit changes: subscribed before the first read,
        // so no commit falls between them.
        let mut rows = views.lock().await.views().watch_rows();
        let task = async move {
            // Whether the whole result set must be read (at first, after a rebuild, a lag,
            // a change of the collection, or for a query with a limit).
            let mut full = true;
            let mut ids = std::collections::BTreeSet::new();
            loop {
                let changes = {
                    let mut views = views.lock().await;
                    if full {
                        match views.read(view, |state| live.result(state)).await {
                            Ok(now) => now.map(|now| live.update(now)),
                            Err(_) => return,
                        }
                    } else {
                        match views.read(view, |state| live.result_for(state, &ids)).await {
                            Ok(now) => Ok(live.update_some(now)),
                            Err(_) => return,
                        }
                    }
                };
                // A collection that does not exist yet is read again at its creation.
                full = changes.is_err();
                ids.clear();
                if let Ok(changes) = changes
                    && !changes.is_empty()
                    && tx.send(changes).await.is_err()
                {
                    return;
                }
                // Wait for a commit that touches the result set, then take every commit
                // already queued with it.
                let mut waiting = true;
                loop {
                    let next = if waiting {
                        rows.recv().await
                    } else {
                        match rows.try_recv() {
                            Ok(next) => Ok(next),
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(n))
                            }
                            Err(_) => break,
                        }
                    };
                    match next {
                        Ok(commit) => match live.changed_ids(&commit) {
                            Some(changed) => ids.extend(changed),
                            None => full = true,
                        },
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => full = true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                    waiting = !full && ids.is_empty();
                }
                if tx.is_closed() {
                    return;
                }
            }
        };
        // Tracked, so that shutdown stops it.
        self.inner.spawn(task);
        Ok(rx)
    }

    /// A lossless subscription to the thread's events in its order, from `from`.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn subscribe(
        &self,
        thread: ThreadId,
        from: Cursor,
    ) -> Result<Subscription<S>, DbError> {
        let views = self.views(thread).await?;
        let views = views.lock().await;
        Ok(views.views().subscribe(from))
    }

    /// The thread's change feed from `from` ([`Cursor::default`] for the beginning): each
    /// applied event once, with what each of its operations does (collection, document,
    /// action, the document written; key and value) and whether it was refused, and the
    /// cursor to resume after it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use serde_json::json;
    /// use threads_crypto::Identity;
    /// use threads_db::{ChangeKind, Db, DbConfig, DocAction};
    /// use threads_id::Variant;
    /// use threads_views::Cursor;
    ///
    /// let db = Db::open_memory(Identity::generate(), DbConfig::default()).await?;
    /// let thread = db.create_thread(Variant::Raw).await?;
    /// db.transaction(thread)
    ///     .create_collection("notes", &json!({"type": "object"}))
    ///     .create("notes", "n1", &json!({"text": "hi"}))
    ///     .commit()
    ///     .await?;
    /// let mut feed = db.changes(thread, Cursor::default()).await?;
    /// let event = feed.next().await?.expect("an event");
    /// assert!(matches!(
    ///     &event.changes[1].kind,
    ///     ChangeKind::Doc { id: Some(id), action: DocAction::Create, .. } if id == "n1"
    /// ));
    /// assert_eq!(event.changes[1].rejected, None);
    /// // Resume later from `event.cursor`: the next event is the one after it.
    /// db.shutdown().await;
    /// # Ok::<(), threads_db::DbError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn changes(&self, thread: ThreadId, from: Cursor) -> Result<Changes<S>, DbError> {
        let views = self.views(thread).await?;
        let events = views.lock().await.views().subscribe(from);
        Ok(Changes::new(events, views))
    }
}
