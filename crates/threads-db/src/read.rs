//! Reads: keys, documents, queries, automerge documents, custom views, rejections.

use serde_json::Value;
use threads_id::ThreadId;
use threads_store::Store;
use threads_views::Kv;

use crate::crdt::{CRDT_VIEW, Crdt};
use crate::db::{Db, KV_VIEW};
use crate::docs::{DOCS_VIEW, Docs};
use crate::error::DbError;
use crate::query::{Query, QueryPage};

impl<S: Store + 'static> Db<S> {
    /// The value of `key` in the thread's key-value view.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn get(&self, thread: ThreadId, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views.read(KV_VIEW, |state| Kv::get(state, key)).await?)
    }

    /// The live keys starting with `prefix` and their values.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn list(
        &self,
        thread: ThreadId,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(KV_VIEW, |state| Kv::scan(state, prefix).collect())
            .await?)
    }

    /// A document.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn doc(
        &self,
        thread: ThreadId,
        collection: &str,
        id: &str,
    ) -> Result<Option<Value>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(DOCS_VIEW, |state| {
                Docs::get(state, collection, id).map(|(d, _)| d)
            })
            .await?)
    }

    /// Runs a query over a document collection.
    ///
    /// # Errors
    /// [`DocError::UnknownCollection`](crate::DocError::UnknownCollection),
    /// [`DocError::BadQuery`](crate::DocError::BadQuery).
    pub async fn query(
        &self,
        thread: ThreadId,
        collection: &str,
        query: &Query,
    ) -> Result<QueryPage, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(DOCS_VIEW, |state| Docs::query(state, collection, query))
            .await??)
    }

    /// Reads a view of the thread (a custom one added with
    /// [`DbConfig::with_view`](crate::DbConfig::with_view), or a built-in one) with
    /// `read`, under the thread's views lock: the state is the one
    /// of the latest applied event, consistent across the view's rows. `read` may run more
    /// than once (see [`threads_views::Views::read`]): it must depend only on the state.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], or a view error if no view has that name.
    pub async fn read_view<T>(
        &self,
        thread: ThreadId,
        view: &str,
        read: impl Fn(&threads_views::State) -> T,
    ) -> Result<T, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views.read(view, read).await?)
    }

    /// An automerge document as JSON.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn crdt(
        &self,
        thread: ThreadId,
        collection: &str,
        id: &str,
    ) -> Result<Option<Value>, DbError> {
        let views = self.views(thread).await?;
        let mut views = views.lock().await;
        Ok(views
            .read(CRDT_VIEW, |state| Crdt::get(state, collection, id))
            .await?)
    }

    /// The members of an access-controlled thread and their roles, as this peer's ACL has
    /// them now (empty for a raw thread, which has no roles).
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn members(
        &self,
        thread: ThreadId,
    ) -> Result<std::collections::BTreeMap<threads_id::LogId, threads_acl::Role>, DbError> {
        let views = self.views(thread).await?;
        let views = views.lock().await;
        Ok(views.acl().members())
    }

    /// Every operation refused in the thread, with author and reason.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`].
    pub async fn rejections(
        &self,
        thread: ThreadId,
    ) -> Result<Vec<threads_views::Rejection>, DbError> {
        Ok(self.views(thread).await?.lock().await.rejections().await?)
    }
}
