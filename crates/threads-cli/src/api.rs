//! The daemon's routes for transactions, collections, explain and the change feed (see
//! docs/openapi.json). The server, authentication and errors are in `daemon.rs`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query as UrlQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use threads_db::{ChangeKind, DOCS_VIEW, DocAction, DocOp, Docs, IndexSpec, Query};
use threads_store::Store;
use threads_views::Cursor;

use crate::daemon::{Api, ApiError, Body, async_stream, bad, known_thread};

/// The routes of this module, to merge into the API's router (behind its authentication).
pub(crate) fn routes<S: Store + 'static>() -> Router<Api<S>> {
    Router::new()
        .route("/v1/threads/{thread}/transactions", post(transaction::<S>))
        .route(
            "/v1/threads/{thread}/collections",
            get(list_collections::<S>),
        )
        .route(
            "/v1/threads/{thread}/collections/{name}",
            get(get_collection::<S>).delete(drop_collection::<S>),
        )
        .route(
            "/v1/threads/{thread}/collections/{name}/schema",
            put(set_schema::<S>),
        )
        .route(
            "/v1/threads/{thread}/collections/{name}/indexes",
            post(add_index::<S>),
        )
        .route(
            "/v1/threads/{thread}/docs/{collection}",
            post(create_doc::<S>),
        )
        .route(
            "/v1/threads/{thread}/explain/{collection}",
            post(explain::<S>),
        )
        .route("/v1/threads/{thread}/changes", get(changes::<S>))
        .route("/v1/stream-tokens", post(stream_token::<S>))
        .route(
            "/v1/threads/{thread}",
            get(thread_info::<S>).delete(leave_thread::<S>),
        )
}

/// Leaves a thread: stops syncing it and deletes everything of it on this peer.
#[utoipa::path(
    delete,
    path = "/v1/threads/{thread}",
    summary = "Leaves the thread - stops syncing it and deletes everything of it on this peer (keys, logs, views, peers)",
    description = "Leaves the thread - stops syncing it and deletes everything of it on this peer (keys, logs, views, peers). Other members are not told.",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "{thread, left: true}", body = crate::openapi::LeftBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn leave_thread<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    s.db.leave(thread).await?;
    Ok(Json(json!({"thread": thread.to_string(), "left": true})))
}

/// What this peer knows of a thread: its kind, its logs and their heads, its members and
/// roles (access-controlled threads), its peers and this peer's addresses of it.
#[utoipa::path(
    get,
    path = "/v1/threads/{thread}",
    summary = "What this peer knows of a thread - its variant, its logs and their counters, its members and roles (access-controlled threads), its peers and this peer's addresses of it",
    description = "What this peer knows of a thread - its variant, its logs and their counters, its members and roles (access-controlled threads), its peers and this peer's addresses of it.",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "{thread, variant, logs: [{log, counter, addrs}], members: [{member, role}], peers, addrs}", body = crate::openapi::ThreadInfo),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn thread_info<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let store = s.db.node().store();
    let served: std::collections::HashMap<_, _> =
        s.db.node()
            .log_addrs(thread)
            .await
            .map_err(threads_db::DbError::Net)?
            .into_iter()
            .collect();
    let mut logs = Vec::new();
    for log in store
        .logs(thread)
        .await
        .map_err(threads_db::DbError::Store)?
    {
        let counter = store
            .head(thread, log)
            .await
            .map_err(threads_db::DbError::Store)?
            .map_or(0, |h| h.counter);
        let addrs: Vec<String> = served
            .get(&log)
            .map(|addrs| addrs.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        logs.push(json!({"log": log.to_string(), "counter": counter, "addrs": addrs}));
    }
    let members: Vec<Value> =
        s.db.members(thread)
            .await?
            .into_iter()
            .map(|(member, role)| json!({"member": member.to_string(), "role": role.to_string()}))
            .collect();
    let peers: Vec<String> =
        s.db.node()
            .peers_of(thread)
            .iter()
            .map(ToString::to_string)
            .collect();
    let addrs: Vec<String> =
        s.db.node()
            .thread_addrs(thread)
            .iter()
            .map(ToString::to_string)
            .collect();
    let variant = match thread.variant() {
        threads_id::Variant::AccessControlled => "access_controlled",
        _ => "raw",
    };
    Ok(Json(json!({
        "thread": thread.to_string(),
        "variant": variant,
        "logs": logs,
        "members": members,
        "peers": peers,
        "addrs": addrs,
    })))
}

/// How long a stream token opens streams.
pub(crate) const STREAM_TOKEN_TTL: Duration = Duration::from_secs(60);

/// The most stream tokens alive at once (older ones are dropped first).
const MAX_STREAM_TOKENS: usize = 1_024;

/// Short-lived tokens that open one thread's streams (`/changes`, `/events`) with
/// `?token=`, for browsers' `EventSource`, which cannot send an `Authorization` header.
/// A token opens nothing else, and nothing after [`STREAM_TOKEN_TTL`].
#[derive(Debug, Default)]
pub(crate) struct StreamTokens {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl StreamTokens {
    fn issue(&self, thread: &str) -> String {
        let bytes: [u8; 24] = rand::random();
        let token = multibase::encode(multibase::Base::Base32Lower, bytes);
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|_, (_, until)| *until > now);
        if tokens.len() >= MAX_STREAM_TOKENS
            && let Some(oldest) = tokens
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(t, _)| t.clone())
        {
            tokens.remove(&oldest);
        }
        tokens.insert(token.clone(), (thread.to_owned(), now + STREAM_TOKEN_TTL));
        token
    }

    /// Whether `uri` is a stream of a thread whose live token it carries.
    pub(crate) fn admits(&self, uri: &Uri) -> bool {
        let path = uri.path();
        let Some(rest) = path.strip_prefix("/v1/threads/") else {
            return false;
        };
        let Some((thread, stream)) = rest.split_once('/') else {
            return false;
        };
        if stream != "changes" && stream != "events" {
            return false;
        }
        let Some(token) = uri.query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(str::to_owned)
        }) else {
            return false;
        };
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(&token)
            .is_some_and(|(t, until)| t == thread && *until > Instant::now())
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewStreamToken {
    thread: String,
}

/// A token that opens the thread's streams for a minute (`?token=` on `/changes` and
/// `/events`).
#[utoipa::path(
    post,
    path = "/v1/stream-tokens",
    summary = "A token that opens one thread's streams (`/changes`, `/events`) for 60 seconds as `?token=`, for browsers' EventSource, which cannot send a header",
    description = "A token that opens one thread's streams (`/changes`, `/events`) for 60 seconds as `?token=`, for browsers' EventSource, which cannot send a header. It opens nothing else.",
    request_body = NewStreamToken,
    responses(
        (status = 200, description = "{token, expires_in_s}", body = crate::openapi::StreamTokenBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn stream_token<S: Store + 'static>(
    State(s): State<Api<S>>,
    Body(body): Body<NewStreamToken>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &body.thread).await?;
    let token = s.streams.issue(&thread.to_string());
    Ok(Json(
        json!({"token": token, "expires_in_s": STREAM_TOKEN_TTL.as_secs()}),
    ))
}

/// Cross-origin access for the origins the daemon was given (`--cors-origin`): a
/// preflight from one of them is answered here (it carries no token); other answers get
/// `Access-Control-Allow-Origin`. Requests from other origins get no CORS header, so
/// browsers keep their pages out.
pub(crate) async fn cors<S: Store + 'static>(
    State(s): State<Api<S>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = origin
        .filter(|o| s.cors_allows(o))
        .and_then(|o| HeaderValue::from_str(&o).ok());
    let Some(allowed) = allowed else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, last-event-id"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// Bytes in JSON: UTF-8 text, or base64 when `encoding` is `"base64"`.
/// Which base64 alphabet bytes are written in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Alphabet {
    /// In a JSON body: the standard alphabet, padded.
    Json,
    /// In a URL: the URL-safe alphabet, no padding.
    Url,
}

/// Bytes written as `encoding` says: UTF-8 text (no encoding, or `utf8`) or base64 in
/// `alphabet` (`base64`); `what` names them in errors.
pub(crate) fn decode_bytes(
    text: &str,
    encoding: Option<&str>,
    alphabet: Alphabet,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    let engine = match alphabet {
        Alphabet::Json => &base64::engine::general_purpose::STANDARD,
        Alphabet::Url => &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    };
    match encoding {
        None | Some("utf8") => Ok(text.as_bytes().to_vec()),
        Some("base64") => engine.decode(text).map_err(|e| {
            bad(
                "bad_base64",
                format!("{what} is not base64 ({alphabet:?} alphabet): {e}"),
            )
        }),
        Some(other) => Err(bad(
            "bad_encoding",
            format!("encoding {other:?} is not utf8 or base64"),
        )),
    }
}

/// Bytes for JSON: text when they are UTF-8, else base64 (`encoding` says which).
pub(crate) fn bytes_json(bytes: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), "utf8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            "base64",
        ),
    }
}

/// One operation of a transaction.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum TxOp {
    Put {
        key: String,
        value: String,
        #[serde(default)]
        encoding: Option<String>,
    },
    Del {
        key: String,
        #[serde(default)]
        encoding: Option<String>,
    },
    Create {
        collection: String,
        id: String,
        doc: Value,
    },
    Save {
        collection: String,
        id: String,
        doc: Value,
    },
    Delete {
        collection: String,
        id: String,
    },
    CreateCollection {
        name: String,
        schema: Value,
    },
    SetSchema {
        name: String,
        schema: Value,
    },
    AddIndex {
        collection: String,
        name: String,
        path: String,
        #[serde(default)]
        unique: bool,
    },
    DropCollection {
        name: String,
    },
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTransaction {
    ops: Vec<TxOp>,
}

/// The most operations one transaction takes.
const MAX_TX_OPS: usize = 1_000;

/// Several operations as one event: every one applies, or none (a refused one is named
/// in the error with why, and nothing of the transaction is written).
#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/transactions",
    summary = "Several operations as one event, applied whole or not at all; each operation sees the changes of those before it",
    description = "Several operations as one event, applied whole or not at all; each operation sees the changes of those before it.",
    params(
        ("thread" = String, Path),
    ),
    request_body = NewTransaction,
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 401, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 415, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 422, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn transaction<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    Body(body): Body<NewTransaction>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    if body.ops.is_empty() {
        return Err(bad("empty_transaction", "a transaction needs an operation"));
    }
    if body.ops.len() > MAX_TX_OPS {
        return Err(bad(
            "too_many_operations",
            format!("a transaction takes at most {MAX_TX_OPS} operations"),
        ));
    }
    let mut tx = s.db.transaction(thread);
    for op in body.ops {
        tx = match op {
            TxOp::Put {
                key,
                value,
                encoding,
            } => {
                let encoding = encoding.as_deref();
                tx.put(
                    &decode_bytes(&key, encoding, Alphabet::Json, "key")?,
                    &decode_bytes(&value, encoding, Alphabet::Json, "value")?,
                )
            }
            TxOp::Del { key, encoding } => tx.del(&decode_bytes(
                &key,
                encoding.as_deref(),
                Alphabet::Json,
                "key",
            )?),
            TxOp::Create {
                collection,
                id,
                doc,
            } => tx.create(&collection, &id, &doc),
            TxOp::Save {
                collection,
                id,
                doc,
            } => tx.save(&collection, &id, &doc),
            TxOp::Delete { collection, id } => tx.delete(&collection, &id),
            TxOp::CreateCollection { name, schema } => tx.create_collection(&name, &schema),
            TxOp::SetSchema { name, schema } => tx.doc(DocOp::SetSchema {
                name,
                schema: schema.to_string(),
            }),
            TxOp::AddIndex {
                collection,
                name,
                path,
                unique,
            } => tx.doc(DocOp::AddIndex {
                collection,
                spec: IndexSpec { name, path, unique },
            }),
            TxOp::DropCollection { name } => tx.drop_collection(&name),
        };
    }
    let counter = tx.commit().await?;
    Ok(Json(json!({"counter": counter})))
}

#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/collections",
    summary = "Every collection of the thread (name, version, current schema, indexes)",
    description = "Every collection of the thread (name, version, current schema, indexes).",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "{collections: [...]}", body = crate::openapi::CollectionsBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn list_collections<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let collections = s.db.read_view(thread, DOCS_VIEW, Docs::collections).await?;
    let out: Vec<Value> = collections.iter().map(collection_json).collect();
    Ok(Json(json!({"collections": out})))
}

fn collection_json(c: &threads_db::Collection) -> Value {
    json!({
        "name": c.name,
        "version": c.version(),
        "schema": c.schemas.last(),
        "indexes": c.indexes,
    })
}

#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/collections/{name}",
    summary = "A collection's current schema, its version and its indexes",
    description = "A collection's current schema, its version and its indexes.",
    params(
        ("thread" = String, Path),
        ("name" = String, Path),
    ),
    responses(
        (status = 200, description = "The collection.", body = crate::openapi::CollectionBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn get_collection<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, name)): UrlPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let collection =
        s.db.read_view(thread, DOCS_VIEW, |state| Docs::collection(state, &name))
            .await?
            .map_err(threads_db::DbError::Doc)?;
    Ok(Json(collection_json(&collection)))
}

/// Deletes a collection with its documents and indexes (the delete role).
#[utoipa::path(
    delete,
    path = "/v1/threads/{thread}/collections/{name}",
    summary = "Deletes a collection with its documents and indexes",
    description = "Deletes a collection with its documents and indexes, as one event (the delete role in an access-controlled thread); a collection of that name can be created again.",
    params(
        ("thread" = String, Path),
        ("name" = String, Path),
    ),
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn drop_collection<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, name)): UrlPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let counter =
        s.db.transaction(thread)
            .drop_collection(&name)
            .commit()
            .await?;
    Ok(Json(json!({"counter": counter})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSchema {
    schema: Value,
}

/// Replaces a collection's schema (its next version).
#[utoipa::path(
    put,
    path = "/v1/threads/{thread}/collections/{name}/schema",
    summary = "Replaces a collection's schema (its next version; stored documents are kept)",
    description = "Replaces a collection's schema (its next version; stored documents are kept).",
    params(
        ("thread" = String, Path),
        ("name" = String, Path),
    ),
    request_body = NewSchema,
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn set_schema<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, name)): UrlPath<(String, String)>,
    Body(body): Body<NewSchema>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let counter =
        s.db.transaction(thread)
            .doc(DocOp::SetSchema {
                name,
                schema: body.schema.to_string(),
            })
            .commit()
            .await?;
    Ok(Json(json!({"counter": counter})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewIndex {
    name: String,
    path: String,
    #[serde(default)]
    unique: bool,
}

#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/collections/{name}/indexes",
    summary = "Adds an index (built over the documents already stored)",
    description = "Adds an index (built over the documents already stored).",
    params(
        ("thread" = String, Path),
        ("name" = String, Path),
    ),
    request_body = NewIndex,
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn add_index<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection)): UrlPath<(String, String)>,
    Body(body): Body<NewIndex>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let counter =
        s.db.transaction(thread)
            .doc(DocOp::AddIndex {
                collection,
                spec: IndexSpec {
                    name: body.name,
                    path: body.path,
                    unique: body.unique,
                },
            })
            .commit()
            .await?;
    Ok(Json(json!({"counter": counter})))
}

/// Creates a document with an id made here (random, 128 bits, base32).
#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/docs/{collection}",
    summary = "Creates a document with an id made by the daemon (128 random bits, base32)",
    description = "Creates a document with an id made by the daemon (128 random bits, base32).",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
    ),
    request_body(content = Object, content_type = "application/json", description = "a JSON object"),
    responses(
        (status = 201, description = "{id, counter}", body = crate::openapi::Created),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 422, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn create_doc<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection)): UrlPath<(String, String)>,
    Body(doc): Body<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let random: [u8; 16] = rand::random();
    let id = multibase::encode(multibase::Base::Base32Lower, random);
    let counter =
        s.db.transaction(thread)
            .create(&collection, &id, &doc)
            .commit()
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "counter": counter})),
    ))
}

/// How a query would read the collection (which index, which range), without running it.
#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/explain/{collection}",
    summary = "How a query would read the collection (an index and its lookup, a union of index reads, or a full scan), without running it",
    description = "How a query would read the collection (an index and its lookup, a union of index reads, or a full scan), without running it.",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
    ),
    request_body = crate::openapi::QueryBody,
    responses(
        (status = 200, description = "{plan}: the plan, as text", body = crate::openapi::PlanBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn explain<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection)): UrlPath<(String, String)>,
    Body(query): Body<Query>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let plan =
        s.db.read_view(thread, DOCS_VIEW, |state| {
            Docs::explain(state, &collection, &query)
        })
        .await?
        .map_err(threads_db::DbError::Doc)?;
    Ok(Json(json!({"plan": plan.to_string()})))
}

#[derive(Deserialize)]
pub(crate) struct From {
    #[serde(default)]
    cursor: Option<String>,
}

/// A cursor in its text form (multibase), as the feeds hand it out.
pub(crate) fn parse_cursor(text: &str) -> Result<Cursor, ApiError> {
    let (_, bytes) = multibase::decode(text).map_err(|_| bad("bad_cursor", "not multibase"))?;
    Cursor::from_bytes(&bytes).map_err(|e| bad("bad_cursor", e.to_string()))
}

/// The change feed as Server-Sent Events: one event per applied event of the thread, each
/// operation with what it did and whether it was refused. Every SSE event's `id:` is the
/// feed's cursor after it, so a client that reconnects with `Last-Event-ID` (or `?cursor=`)
/// resumes with the next one, losing and repeating nothing.
#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/changes",
    summary = "The change feed as Server-Sent Events, one per applied event with each operation (kv key and value, utf8 or base64; document collection, id, action and document) and whether it was refused",
    description = "The change feed as Server-Sent Events, one per applied event with each operation (kv key and value, utf8 or base64; document collection, id, action and document) and whether it was refused.",
    params(
        ("thread" = String, Path),
        ("cursor" = Option<String>, Query),
        ("Last-Event-ID" = Option<String>, Header),
    ),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn changes<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    UrlQuery(from): UrlQuery<From>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(from.cursor);
    let cursor = match resume {
        Some(text) => parse_cursor(&text)?,
        None => Cursor::default(),
    };
    let mut feed = s.db.changes(thread, cursor).await?;
    let stream = async_stream(move |tx| async move {
        while let Ok(Some(event)) = feed.next().await {
            let id = multibase::encode(multibase::Base::Base32Lower, event.cursor.to_bytes());
            let changes: Vec<Value> = event.changes.iter().map(change_json).collect();
            let data = json!({
                "author": event.order.log.to_string(),
                "counter": event.order.counter,
                "time": event.order.time.physical_ms(),
                "changes": changes,
                "rejected": event.rejected,
                "cursor": id,
            });
            if tx
                .send(Ok(Event::default().id(id).data(data.to_string())))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn change_json(change: &threads_db::Change) -> Value {
    let mut out = match &change.kind {
        ChangeKind::Kv { key, value } => {
            let (key, key_encoding) = bytes_json(key);
            let value = value.as_deref().map(bytes_json);
            json!({
                "kind": "kv",
                "key": key,
                "key_encoding": key_encoding,
                "value": value.as_ref().map(|(v, _)| v),
                "value_encoding": value.as_ref().map(|(_, e)| e),
            })
        }
        ChangeKind::Doc {
            collection,
            id,
            action,
            doc,
        } => json!({
            "kind": "doc",
            "collection": collection,
            "id": id,
            "action": action_name(action),
            "doc": doc,
        }),
        ChangeKind::Automerge { collection, id, .. } => {
            json!({"kind": "automerge", "collection": collection, "id": id})
        }
        _ => json!({"kind": "other"}),
    };
    out["view"] = json!(change.view);
    out["index"] = json!(change.index);
    out["rejected"] = json!(change.rejected);
    out
}

fn action_name(action: &DocAction) -> &'static str {
    match action {
        DocAction::Create => "create",
        DocAction::Save => "save",
        DocAction::Delete => "delete",
        DocAction::CreateCollection => "create_collection",
        DocAction::SetSchema => "set_schema",
        DocAction::AddIndex => "add_index",
        DocAction::DropCollection => "drop_collection",
    }
}
