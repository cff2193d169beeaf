//! The daemon's routes for automerge documents (JSON out; changes, or JSON edits, in) and
//! live queries as Server-Sent Events (see docs/openapi.json).

use std::convert::Infallible;

use automerge::ReadDoc as _;
use automerge::transaction::Transactable as _;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ScalarValue};
use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use threads_db::{CRDT_VIEW, Crdt, Query, Source};
use threads_store::Store;
use threads_views::Batch;

use crate::daemon::{Api, ApiError, Body, async_stream, bad, known_thread};

/// The most changes one request carries.
const MAX_CHANGES: usize = 256;

/// The routes of this module, to merge into the API's router (behind its authentication).
pub(crate) fn routes<S: Store + 'static>() -> Router<Api<S>> {
    Router::new()
        .route(
            "/v1/threads/{thread}/automerge/{collection}/{id}",
            get(get_doc::<S>).patch(edit_doc::<S>),
        )
        .route(
            "/v1/threads/{thread}/automerge/{collection}/{id}/changes",
            post(add_changes::<S>),
        )
        .route("/v1/threads/{thread}/live/{collection}", get(live::<S>))
}

/// An automerge document as JSON.
#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/automerge/{collection}/{id}",
    summary = "An automerge document as JSON",
    description = "An automerge document as JSON.",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
        ("id" = String, Path),
    ),
    responses(
        (status = 200, description = "{id, doc}", body = crate::openapi::DocBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn get_doc<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection, id)): UrlPath<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    match s.db.crdt(thread, &collection, &id).await? {
        Some(doc) => Ok(Json(json!({"id": id, "doc": doc}))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no automerge document {id:?}"),
        )),
    }
}

/// Sets keys of an automerge document from a JSON object (objects become maps, arrays
/// lists, the rest scalars); `null` deletes a key. One change, one event.
#[utoipa::path(
    patch,
    path = "/v1/threads/{thread}/automerge/{collection}/{id}",
    summary = "Sets keys of an automerge document from a JSON object (objects become maps, arrays lists, the rest scalars; null deletes the key), as one change and one event",
    description = "Sets keys of an automerge document from a JSON object (objects become maps, arrays lists, the rest scalars; null deletes the key), as one change and one event.",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
        ("id" = String, Path),
    ),
    request_body(content = Object, content_type = "application/json", description = "a JSON object"),
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn edit_doc<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection, id)): UrlPath<(String, String, String)>,
    Body(edit): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let Value::Object(fields) = edit else {
        return Err(bad(
            "bad_document",
            "an edit is a JSON object of keys to set",
        ));
    };
    let counter =
        s.db.change_crdt(thread, &collection, &id, |doc| {
            for (key, value) in &fields {
                if value.is_null() {
                    if doc.get(ROOT, key.as_str())?.is_some() {
                        doc.delete(ROOT, key.as_str())?;
                    }
                } else {
                    put(doc, &ROOT, key, value)?;
                }
            }
            Ok(())
        })
        .await?;
    Ok(Json(json!({"counter": counter})))
}

/// Puts `value` at `key` of the map `obj`.
fn put(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &Value,
) -> Result<(), automerge::AutomergeError> {
    match value {
        Value::Object(fields) => {
            let map = doc.put_object(obj, key, ObjType::Map)?;
            for (k, v) in fields {
                put(doc, &map, k, v)?;
            }
        }
        Value::Array(items) => {
            let list = doc.put_object(obj, key, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert(doc, &list, i, item)?;
            }
        }
        scalar => doc.put(obj, key, scalar_of(scalar))?,
    }
    Ok(())
}

/// Inserts `value` at `index` of the list `list`.
fn insert(
    doc: &mut AutoCommit,
    list: &ObjId,
    index: usize,
    value: &Value,
) -> Result<(), automerge::AutomergeError> {
    match value {
        Value::Object(fields) => {
            let map = doc.insert_object(list, index, ObjType::Map)?;
            for (k, v) in fields {
                put(doc, &map, k, v)?;
            }
        }
        Value::Array(items) => {
            let inner = doc.insert_object(list, index, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert(doc, &inner, i, item)?;
            }
        }
        scalar => doc.insert(list, index, scalar_of(scalar))?,
    }
    Ok(())
}

fn scalar_of(value: &Value) -> ScalarValue {
    match value {
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => ScalarValue::Int(i),
            (None, Some(u), _) => ScalarValue::Uint(u),
            (_, _, Some(f)) => ScalarValue::F64(f),
            _ => ScalarValue::Null,
        },
        Value::String(text) => ScalarValue::Str(text.as_str().into()),
        _ => ScalarValue::Null,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewChanges {
    /// Automerge changes (their binary form, standard base64), made by an actor whose id
    /// is this daemon's peer id bytes (`GET /v1/identity`): a change is its author's.
    changes: Vec<String>,
}

/// Automerge changes made elsewhere (a JavaScript automerge), written as one event.
#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/automerge/{collection}/{id}/changes",
    summary = "Automerge changes made elsewhere (binary form, base64), written as one event",
    description = "Automerge changes made elsewhere (binary form, base64), written as one event. A change's actor must be this daemon's peer id bytes (a change is its author's); others are refused (409, details name the change).",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
        ("id" = String, Path),
    ),
    request_body = NewChanges,
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn add_changes<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection, id)): UrlPath<(String, String, String)>,
    Body(body): Body<NewChanges>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    if body.changes.is_empty() || body.changes.len() > MAX_CHANGES {
        return Err(bad(
            "bad_changes",
            format!("between 1 and {MAX_CHANGES} changes, please"),
        ));
    }
    let mut batch = Batch::new();
    for (i, text) in body.changes.iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| bad("bad_changes", format!("change {i} is not base64: {e}")))?;
        let change = automerge::Change::from_bytes(bytes).map_err(|e| {
            bad(
                "bad_changes",
                format!("change {i} is not an automerge change: {e}"),
            )
        })?;
        batch.push(CRDT_VIEW, Crdt::change(&collection, &id, &change));
    }
    let counter = s.db.write(thread, batch).await?;
    Ok(Json(json!({"counter": counter})))
}

#[derive(Deserialize)]
pub(crate) struct LiveParams {
    /// The query, as JSON text (`{"filter": ...}`); every document when absent.
    #[serde(default)]
    query: Option<String>,
    /// `automerge` to follow an automerge collection; documents by default.
    #[serde(default)]
    source: Option<String>,
}

/// A live query as Server-Sent Events: first every document of the result set
/// (`added`), then each change to it (`added`, `updated`, `removed`) as the thread's views
/// change.
#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/live/{collection}",
    summary = "A live query as Server-Sent Events, each {\"change\": \"added\"|\"updated\"|\"removed\", \"id\", \"doc\"?}; first the whole result set as added, then its changes as the thread's views change",
    description = "A live query as Server-Sent Events, each {\"change\": \"added\"|\"updated\"|\"removed\", \"id\", \"doc\"?}; first the whole result set as added, then its changes as the thread's views change.",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
        ("query" = Option<String>, Query, description = "the query's JSON text"),
        ("source" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn live<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection)): UrlPath<(String, String)>,
    UrlQuery(params): UrlQuery<LiveParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let query: Query = match params.query.as_deref() {
        Some(text) => serde_json::from_str(text).map_err(|e| bad("bad_query", e.to_string()))?,
        None => Query::all(),
    };
    let source = match params.source.as_deref() {
        None | Some("documents") => Source::Documents,
        Some("automerge") => Source::Automerge,
        Some(other) => {
            return Err(bad(
                "bad_query",
                format!("source {other:?} is not documents or automerge"),
            ));
        }
    };
    let mut changes = s.db.live_query(thread, source, &collection, query).await?;
    let stream = async_stream(move |tx| async move {
        while let Some(batch) = changes.recv().await {
            for change in batch {
                let Ok(data) = serde_json::to_string(&change) else {
                    continue;
                };
                if tx.send(Ok(Event::default().data(data))).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
