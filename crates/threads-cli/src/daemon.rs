//! `threads daemon`: a peer with an HTTP JSON API on 127.0.0.1 (see docs/openapi.json).
//!
//! Every request needs `Authorization: Bearer <token>` (the token is in `<data>/token`).
//! Errors are JSON `{"error": {"code": "...", "message": "..."}}` with a stable code and a
//! 4xx status for bad input; no request can stop the daemon.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query as UrlQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use threads_acl::Role;
use threads_crypto::Identity;
use threads_db::{Db, DbConfig, DbError, DocError, DocOp, Query};
use threads_id::{LogId, Multiaddr, ThreadId, Variant};
use threads_store::Store;
use threads_views::Cursor;

/// How long open requests (streams) may go on after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The largest request body accepted.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// The largest CAR archive `POST /v1/car` takes, in bytes.
pub(crate) const MAX_CAR_BODY: usize = 256 << 20;

/// The media type of CAR archives.
const CAR_MEDIA_TYPE: &str = "application/vnd.ipld.car";

/// How the daemon runs.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The data directory (store, identity, token).
    pub(crate) data: PathBuf,
    /// The libp2p listen addresses.
    pub(crate) listen: Vec<Multiaddr>,
    /// External addresses to give remote peers.
    pub(crate) announce: Vec<Multiaddr>,
    /// The HTTP address (127.0.0.1 only).
    pub(crate) http: SocketAddr,
    /// A PostgreSQL URL to keep the data in instead of SQLite.
    pub(crate) postgres: Option<String>,
    /// Origins a browser may call the API from.
    pub(crate) cors: Vec<String>,
    /// The most bytes of one log kept from peers.
    pub(crate) log_quota: u64,
    /// Serve as a circuit relay.
    pub(crate) relay: bool,
    /// Compact every thread this peer may compact this often (never if `None`).
    pub(crate) compact_every: Option<Duration>,
}

/// An API error: an HTTP status, a stable code and a message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// More about the error (the refused operations of a write).
    details: Option<Value>,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        let message = e.to_string();
        let (status, code) = match &e {
            DbError::UnknownThread(_) => (StatusCode::NOT_FOUND, "unknown_thread"),
            DbError::CannotWrite(_) => (StatusCode::FORBIDDEN, "cannot_write"),
            DbError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            DbError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            DbError::Rejected { .. } => (StatusCode::CONFLICT, "rejected"),
            DbError::Doc(d) => match d {
                DocError::UnknownCollection(_) => (StatusCode::NOT_FOUND, "unknown_collection"),
                DocError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
                DocError::Exists { .. }
                | DocError::CollectionExists(_)
                | DocError::IndexExists(_) => (StatusCode::CONFLICT, "exists"),
                DocError::UniqueViolation { .. } => (StatusCode::CONFLICT, "unique_violation"),
                DocError::SchemaViolation { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "schema_violation")
                }
                DocError::BadQuery(_) => (StatusCode::BAD_REQUEST, "bad_query"),
                _ => (StatusCode::BAD_REQUEST, "bad_document"),
            },
            DbError::Acl(_) | DbError::Key(_) => (StatusCode::BAD_REQUEST, "bad_invite"),
            DbError::Car(threads_net::car::CarError::UnknownThread(_)) => {
                (StatusCode::NOT_FOUND, "unknown_thread")
            }
            DbError::Car(threads_net::car::CarError::Store(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            DbError::Car(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_archive"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let details = match &e {
            // Each refused operation: its place in the write, its view, why, and whether
            // access control refused it.
            DbError::Rejected { refused, .. } => Some(json!({
                "refused": refused
                    .iter()
                    .map(|r| json!({"index": r.index, "view": r.view, "reason": r.reason, "forbidden": r.forbidden}))
                    .collect::<Vec<_>>()
            })),
            _ => None,
        };
        ApiError {
            status,
            code,
            message,
            details,
        }
    }
}

pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

pub(crate) type Api<S> = Arc<AppState<S>>;

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct AppState<S: Store + 'static> {
    pub(crate) db: Db<S>,
    token: String,
    /// Origins a browser may call the API from (`*` for any).
    cors: Vec<String>,
    /// Stream tokens: for `EventSource`, which cannot send a header.
    pub(crate) streams: crate::api::StreamTokens,
}

impl<S: Store + 'static> AppState<S> {
    /// Whether a browser page from `origin` may call the API.
    pub(crate) fn cors_allows(&self, origin: &str) -> bool {
        self.cors.iter().any(|o| o == "*" || o == origin)
    }
}

fn thread_id(text: &str) -> Result<ThreadId, ApiError> {
    text.parse().map_err(|e| bad("bad_thread", format!("{e}")))
}

/// Loads the identity from `<data>/identity` (created on first run, mode 0600).
pub(crate) fn identity(data: &Path) -> Result<Identity> {
    let path = data.join("identity");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let (_, bytes) = multibase::decode(text.trim()).context("identity file")?;
        return Identity::from_secret_slice(&bytes).map_err(|e| anyhow::anyhow!("identity: {e}"));
    }
    let identity = Identity::generate();
    write_secret(
        &path,
        &multibase::encode(multibase::Base::Base32Lower, *identity.secret_bytes()),
    )?;
    Ok(identity)
}

/// Restores a backup into the data directory `data` (which must hold no peer yet): its
/// store (`threads.db`) and identity file. Returns `{id, threads}`.
pub(crate) async fn restore(data: &Path, file: &Path, passphrase: &[u8]) -> Result<Value> {
    std::fs::create_dir_all(data)?;
    if data.join("identity").exists() || data.join("threads.db").exists() {
        anyhow::bail!(
            "{} already holds a peer: restore into a new data directory",
            data.display()
        );
    }
    let backup = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let store = threads_store::SqliteStore::open(data.join("threads.db")).await?;
    let restored = threads_db::restore(&store, &backup, passphrase).await?;
    store.close().await;
    write_secret(
        &data.join("identity"),
        &multibase::encode(
            multibase::Base::Base32Lower,
            *restored.identity.secret_bytes(),
        ),
    )?;
    let threads: Vec<Value> = restored
        .threads
        .iter()
        .map(|(t, entries)| json!({"thread": t.to_string(), "entries": entries}))
        .collect();
    Ok(json!({"id": restored.identity.log_id().to_string(), "threads": threads}))
}

/// Writes `bytes` to `path`, readable by its owner only.
pub(crate) fn write_secret_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn write_secret(path: &Path, text: &str) -> Result<()> {
    write_secret_bytes(path, text.as_bytes())
}

/// Loads or creates the API token (`<data>/token`, mode 0600).
pub(crate) fn token(data: &Path) -> Result<String> {
    let path = data.join("token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_owned());
    }
    let bytes: [u8; 24] = rand::random();
    let token = multibase::encode(multibase::Base::Base32Lower, bytes);
    write_secret(&path, &token)?;
    Ok(token)
}

/// Runs the daemon until Ctrl-C (or SIGTERM): on SQLite in the data directory, or on
/// PostgreSQL when `options.postgres` is set.
pub(crate) async fn run(options: Options) -> Result<()> {
    std::fs::create_dir_all(&options.data)?;
    let me = identity(&options.data)?;
    let config = DbConfig::default()
        .with_listen(options.listen.clone())
        .with_announce(options.announce.clone())
        .with_log_quota(options.log_quota)
        .with_relay(options.relay)
        .with_sync_interval(Duration::from_secs(1));
    let config = match options.compact_every {
        Some(every) => config.with_compaction(every),
        None => config,
    };
    match &options.postgres {
        Some(url) => serve(Db::open_postgres(url, me, config).await?, &options).await,
        None => {
            serve(
                Db::open_sqlite(options.data.join("threads.db"), me, config).await?,
                &options,
            )
            .await
        }
    }
}

async fn serve<S: Store + 'static>(db: Db<S>, options: &Options) -> Result<()> {
    let token = token(&options.data)?;
    let state = Arc::new(AppState {
        db: db.clone(),
        token,
        cors: options.cors.clone(),
        streams: crate::api::StreamTokens::default(),
    });
    let listener = tokio::net::TcpListener::bind(options.http).await?;
    let local = listener.local_addr()?;
    println!(
        "threads daemon: peer {} , API on http://{local}",
        db.identity().log_id()
    );
    for addr in db.node().listen_addrs() {
        println!("listening on {addr}");
    }
    let mut app = router(state);
    // An access log, one line per request (`METHOD /route/{template} STATUS`), when
    // `THREADS_ACCESS_LOG` names a file: the daemon's tests check every line against the
    // API's spec.
    if let Some(path) = std::env::var_os("THREADS_ACCESS_LOG") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open the access log {}", PathBuf::from(&path).display()))?;
        let file = Arc::new(std::sync::Mutex::new(file));
        app = app.layer(middleware::from_fn(move |request: Request, next: Next| {
            let file = Arc::clone(&file);
            access_log(file, request, next)
        }));
    }
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            // No SIGTERM handler: Ctrl-C still stops the daemon cleanly.
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        let _ = stopping_tx.send(true);
    };
    // The address file is written last: once it exists, the API answers.
    std::fs::write(options.data.join("api"), format!("http://{local}"))?;
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    // Requests in progress finish; streams (SSE) never do on their own, so they get a
    // moment after the signal and are then closed with the process (clients resume from
    // their last event id).
    let streams_closed = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result?,
        () = streams_closed => tracing::info!("streams still open at shutdown were closed"),
    }
    db.shutdown().await;
    println!("threads daemon stopped");
    Ok(())
}

/// The API's routes.
pub(crate) fn router<S: Store + 'static>(state: Api<S>) -> Router {
    let api = Router::new()
        .route("/v1/identity", get(get_identity::<S>))
        .route(
            "/v1/threads",
            get(list_threads::<S>).post(create_thread::<S>),
        )
        .route("/v1/threads/{thread}/invites", post(invite::<S>))
        .route("/v1/threads/{thread}/members/{member}", put(set_role::<S>))
        .route(
            "/v1/threads/{thread}/default-role",
            put(set_default_role::<S>),
        )
        .route("/v1/threads/{thread}/addrs", get(thread_addrs::<S>))
        .route(
            "/v1/threads/{thread}/peers",
            get(list_peers::<S>).post(add_peer::<S>),
        )
        .route("/v1/join", post(join::<S>))
        .route("/v1/health", get(health::<S>))
        .route("/v1/threads/{thread}/kv", get(kv_list::<S>))
        .route(
            "/v1/threads/{thread}/kv/{key}",
            put(kv_put::<S>).get(kv_get::<S>).delete(kv_del::<S>),
        )
        .route(
            "/v1/threads/{thread}/collections",
            post(create_collection::<S>),
        )
        .route(
            "/v1/threads/{thread}/docs/{collection}/{id}",
            put(doc_put::<S>).get(doc_get::<S>).delete(doc_delete::<S>),
        )
        .route(
            "/v1/threads/{thread}/query/{collection}",
            post(doc_query::<S>),
        )
        .route("/v1/threads/{thread}/events", get(events::<S>))
        .route("/v1/threads/{thread}/rejections", get(rejections::<S>))
        .route("/v1/threads/{thread}/car", get(export_car::<S>))
        .route("/v1/threads/{thread}/compact", post(compact::<S>))
        .route("/v1/backup", post(backup::<S>))
        .route(
            "/v1/car",
            post(import_car::<S>).layer(DefaultBodyLimit::max(MAX_CAR_BODY)),
        )
        .merge(crate::api::routes::<S>())
        .merge(crate::live_routes::routes::<S>())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::<S>,
        ))
        // Outside the authentication: a browser's preflight carries no token.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::api::cors::<S>,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    // The console: a page and the JavaScript client it runs on, outside the token check
    // (they hold nothing; the page asks for the token and sends it with each call).
    let api = api
        .route("/console", get(console_page))
        .route("/console/client.js", get(console_client));
    api.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .layer(middleware::map_response(json_method_not_allowed))
        .with_state(state)
}

/// Writes `METHOD /route/{template} STATUS` for the request (`-` for a request that matched
/// no route).
async fn access_log(
    file: Arc<std::sync::Mutex<std::fs::File>>,
    request: Request,
    next: Next,
) -> Response {
    use std::io::Write;
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "-".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let line = format!("{method} {route} {}\n", response.status().as_u16());
    if let Ok(mut file) = file.lock() {
        let _ = file.write_all(line.as_bytes());
    }
    response
}

/// The web console: one page over the HTTP API, with the JavaScript client of
/// `clients/js`. Open `http://<api>/console#token=<token>`.
#[utoipa::path(
    get,
    path = "/console",
    summary = "The web console (HTML, embedded in the binary), served without a token; open it as `/console#token=<token>`",
    description = "The web console (HTML, embedded in the binary), served without a token; open it as `/console#token=<token>`.",
    security(),
    responses(
        (status = 200, description = "the page", content_type = "text/html", body = String),
    ),
)]
pub(crate) async fn console_page() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("console.html"),
    )
        .into_response()
}

/// The JavaScript client, as the console imports it.
#[utoipa::path(
    get,
    path = "/console/client.js",
    summary = "The JavaScript client (clients/js) the console runs on, served without a token",
    description = "The JavaScript client (clients/js) the console runs on, served without a token.",
    security(),
    responses(
        (status = 200, description = "the module", content_type = "text/javascript", body = String),
    ),
)]
pub(crate) async fn console_client() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        include_str!("../../../clients/js/dist/index.js"),
    )
        .into_response()
}

/// A wrong method gets the JSON error shape too, keeping the `Allow` header axum sets.
async fn json_method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut out = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "this route takes {}",
            allow
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .unwrap_or("other methods")
        ),
    )
    .into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    out
}

async fn auth<S: Store + 'static>(
    State(state): State<Api<S>>,
    request: Request,
    next: Next,
) -> Response {
    let ok = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes()))
        || state.streams.admits(request.uri());
    if !ok {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is needed",
        )
        .into_response();
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON body, with JSON errors for bad JSON.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("bodies are limited to {MAX_BODY} bytes"),
            )),
            Err(e) if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            )),
            Err(e) => Err(bad("bad_json", e.body_text())),
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/identity",
    summary = "This peer's id and listen addresses",
    description = "This peer's id and listen addresses.",
    responses(
        (status = 200, description = "{id, addrs}", body = crate::openapi::IdentityBody),
    ),
)]
pub(crate) async fn get_identity<S: Store + 'static>(State(s): State<Api<S>>) -> Json<Value> {
    let addrs: Vec<String> =
        s.db.node()
            .listen_addrs()
            .iter()
            .map(ToString::to_string)
            .collect();
    Json(json!({"id": s.db.identity().log_id().to_string(), "addrs": addrs}))
}

#[utoipa::path(
    get,
    path = "/v1/threads",
    summary = "The threads this peer holds",
    description = "The threads this peer holds.",
    responses(
        (status = 200, description = "{threads: [id]}", body = crate::openapi::ThreadsBody),
    ),
)]
pub(crate) async fn list_threads<S: Store + 'static>(State(s): State<Api<S>>) -> Json<Value> {
    let threads: Vec<String> =
        s.db.threads()
            .await
            .iter()
            .map(ToString::to_string)
            .collect();
    Json(json!({"threads": threads}))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewThread {
    #[serde(default)]
    access_controlled: bool,
}

#[utoipa::path(
    post,
    path = "/v1/threads",
    summary = "Creates a thread",
    description = "Creates a thread.",
    request_body = NewThread,
    responses(
        (status = 200, description = "{thread}", body = crate::openapi::ThreadBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn create_thread<S: Store + 'static>(
    State(s): State<Api<S>>,
    Body(body): Body<NewThread>,
) -> Result<Json<Value>, ApiError> {
    let variant = if body.access_controlled {
        Variant::AccessControlled
    } else {
        Variant::Raw
    };
    let thread = s.db.create_thread(variant).await?;
    Ok(Json(json!({"thread": thread.to_string()})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewInvite {
    /// The member the invite is sealed to; absent for a link invite.
    #[serde(default)]
    member: Option<String>,
    /// A link invite: whoever holds it can join (no member).
    #[serde(default)]
    link: bool,
    role: String,
    /// Seconds the invite can be opened for (none: no expiry).
    #[serde(default)]
    expires_in_s: Option<u64>,
}

/// A role named in a request body (`bad_role` if it names none).
fn role_of(name: &str) -> Result<Role, ApiError> {
    name.parse().map_err(|e| bad("bad_role", format!("{e}")))
}

#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/invites",
    summary = "An invite for a member with a role (no-access, follow, read, write, delete)",
    description = "An invite for a member with a role (no-access, follow, read, write, delete).",
    params(
        ("thread" = String, Path),
    ),
    request_body = NewInvite,
    responses(
        (status = 200, description = "{invite}", body = crate::openapi::InviteBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn invite<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    Body(body): Body<NewInvite>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let role = role_of(&body.role)?;
    let expires_ms = match body.expires_in_s {
        Some(seconds) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            Some(now.saturating_add(seconds.saturating_mul(1_000)))
        }
        None => None,
    };
    let invite = match (body.link, &body.member) {
        (true, None) => s.db.invite_link(thread, role, expires_ms).await?,
        (false, Some(member)) => {
            let member: LogId = member
                .parse()
                .map_err(|e| bad("bad_member", format!("{e}")))?;
            s.db.invite_until(thread, member, role, expires_ms).await?
        }
        (true, Some(_)) => {
            return Err(bad("bad_member", "a link invite names no member"));
        }
        (false, None) => {
            return Err(bad(
                "bad_member",
                "an invite names its member (or is a link)",
            ));
        }
    };
    Ok(Json(json!({"invite": invite})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewRole {
    role: String,
}

/// Gives a member a role in an access-controlled thread; `no-access` revokes it.
#[utoipa::path(
    put,
    path = "/v1/threads/{thread}/members/{member}",
    summary = "Gives a member a role in an access-controlled thread (no-access revokes it; taking the read role or every role away starts a new key epoch - read key and service key - sealed to every member that keeps a role)",
    description = "Gives a member a role in an access-controlled thread (no-access revokes it; taking the read role or every role away starts a new key epoch - read key and service key - sealed to every member that keeps a role).",
    params(
        ("thread" = String, Path),
        ("member" = String, Path, description = "the member's id (12D3KooW...)"),
    ),
    request_body = NewRole,
    responses(
        (status = 200, description = "{member, role}", body = crate::openapi::MemberRole),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn set_role<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, member)): UrlPath<(String, String)>,
    Body(body): Body<NewRole>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let member: LogId = member
        .parse()
        .map_err(|e| bad("bad_member", format!("{e}")))?;
    let role = role_of(&body.role)?;
    s.db.set_role(thread, member, role).await?;
    Ok(Json(
        json!({"member": member.to_string(), "role": role.to_string()}),
    ))
}

/// Sets the default role of an access-controlled thread (the role of members without one
/// of their own).
#[utoipa::path(
    put,
    path = "/v1/threads/{thread}/default-role",
    summary = "Sets the role of members without one of their own in an access-controlled thread (what a link invite grants); lowering it below read starts a new key epoch (read key and service key)",
    description = "Sets the role of members without one of their own in an access-controlled thread (what a link invite grants); lowering it below read starts a new key epoch (read key and service key).",
    params(
        ("thread" = String, Path),
    ),
    request_body = NewRole,
    responses(
        (status = 200, description = "{role}", body = crate::openapi::RoleBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn set_default_role<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    Body(body): Body<NewRole>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let role = role_of(&body.role)?;
    s.db.set_default_role(thread, role).await?;
    Ok(Json(json!({"role": role.to_string()})))
}

/// Compacts a thread: the events no view needs any more are named in an operation every
/// peer applies (they apply nothing, and every peer drops their bodies).
#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/compact",
    summary = "Compacts the thread - names the events no view needs any more (superseded key-value puts and document saves) in an operation of the thread, so every peer applies nothing of them and drops their bodies; the views stay as they are (the owner of an access-controlled thread, a member of a raw one)",
    description = "Compacts the thread - names the events no view needs any more (superseded key-value puts and document saves) in an operation of the thread, so every peer applies nothing of them and drops their bodies; the views stay as they are (the owner of an access-controlled thread, a member of a raw one).",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "{events, freed_bytes}", body = crate::openapi::CompactedBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn compact<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let done = s.db.compact(thread).await?;
    Ok(Json(
        json!({"events": done.events, "freed_bytes": done.freed_bytes}),
    ))
}

/// This peer's addresses of a thread, as invites carry them (never loopback when the
/// daemon listens on anything else).
#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/addrs",
    summary = "This peer's addresses of the thread, as invites carry them (external addresses first; never loopback when the daemon listens on anything else; never 0.0.0.0 or ::)",
    description = "This peer's addresses of the thread, as invites carry them (external addresses first; never loopback when the daemon listens on anything else; never 0.0.0.0 or ::).",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "The addresses.", body = crate::openapi::AddrsBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn thread_addrs<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let addrs: Vec<String> =
        s.db.node()
            .thread_addrs(thread)
            .iter()
            .map(ToString::to_string)
            .collect();
    Ok(Json(json!({"addrs": addrs})))
}

/// The peers of a thread this daemon pushes to and pulls from.
#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/peers",
    summary = "The peers of the thread this daemon pushes to and pulls from",
    description = "The peers of the thread this daemon pushes to and pulls from.",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "The peers.", body = crate::openapi::PeersBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn list_peers<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let peers: Vec<String> =
        s.db.node()
            .peers_of(thread)
            .iter()
            .map(ToString::to_string)
            .collect();
    Ok(Json(json!({"peers": peers})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewPeer {
    /// A multiaddr ending in `/p2p/<peer>`, or a thread address (`.../thread/<id>`).
    addr: String,
}

/// Adds a peer of a thread (remembered across restarts).
#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/peers",
    summary = "Adds a peer of the thread, remembered across restarts",
    description = "Adds a peer of the thread, remembered across restarts.",
    params(
        ("thread" = String, Path),
    ),
    request_body = NewPeer,
    responses(
        (status = 200, description = "{peer}: the thread address added", body = crate::openapi::PeerBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn add_peer<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    Body(body): Body<NewPeer>,
) -> Result<Json<Value>, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let addr = peer_addr(&body.addr, thread)?;
    s.db.add_peer(addr.clone()).await?;
    Ok(Json(json!({"peer": addr.to_string()})))
}

/// A thread address from a multiaddr with `/p2p/<peer>` or a thread address of `thread`.
fn peer_addr(text: &str, thread: ThreadId) -> Result<threads_id::ThreadAddr, ApiError> {
    let addr = match text.parse::<threads_id::ThreadAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let multiaddr: Multiaddr = text
                .parse()
                .map_err(|e| bad("bad_addr", format!("not a multiaddr: {e}")))?;
            threads_id::ThreadAddr::new(multiaddr, thread)
                .map_err(|e| bad("bad_addr", format!("{e}")))?
        }
    };
    if addr.thread_id() != thread {
        return Err(bad("bad_addr", "the address is of another thread"));
    }
    Ok(addr)
}

/// The thread's CARv1 archive: every log this peer holds, encrypted as stored.
#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/car",
    summary = "The thread's CARv1 archive - every log this peer holds, encrypted as stored (docs/FORMAT.md, \"CAR archives\")",
    description = "The thread's CARv1 archive - every log this peer holds, encrypted as stored (docs/FORMAT.md, \"CAR archives\").",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "the archive", content_type = "application/vnd.ipld.car", body = String),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn export_car<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Response, ApiError> {
    let thread = known_thread(&s, &thread).await?;
    let (archive, _) = s.db.export_car(thread).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, CAR_MEDIA_TYPE)],
        archive,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct BackupRequest {
    passphrase: String,
}

/// A backup of this peer sealed with the passphrase (docs/FORMAT.md, "Backups").
#[utoipa::path(
    post,
    path = "/v1/backup",
    summary = "A backup of this peer (identity, thread keys, peers, every log) sealed with the passphrase (docs/FORMAT.md, \"Backups\")",
    description = "A backup of this peer (identity, thread keys, peers, every log) sealed with the passphrase (docs/FORMAT.md, \"Backups\"). Restore it offline with `threads restore`.",
    request_body = BackupRequest,
    responses(
        (status = 200, description = "the backup", content_type = "application/octet-stream", body = String),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn backup<S: Store + 'static>(
    State(s): State<Api<S>>,
    Body(body): Body<BackupRequest>,
) -> Result<Response, ApiError> {
    if body.passphrase.is_empty() {
        return Err(bad("bad_passphrase", "a backup needs a passphrase"));
    }
    let backup = s.db.backup(body.passphrase.as_bytes()).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        backup,
    )
        .into_response())
}

/// Imports a CARv1 archive of a thread whose keys this peer holds.
#[utoipa::path(
    post,
    path = "/v1/car",
    summary = "Imports a CARv1 archive of a thread this peer holds the keys of; every block's CID is checked and every entry verified as sync verifies it (at most 256 MiB)",
    description = "Imports a CARv1 archive of a thread this peer holds the keys of; every block's CID is checked and every entry verified as sync verifies it (at most 256 MiB).",
    request_body(content = Vec<u8>, content_type = "application/vnd.ipld.car", description = "the archive"),
    responses(
        (status = 200, description = "{thread, logs, entries, stored}", body = crate::openapi::Imported),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 413, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 415, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 422, description = "bad_archive: the archive is malformed or an entry does not verify", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn import_car<S: Store + 'static>(
    State(s): State<Api<S>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let media = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if media != CAR_MEDIA_TYPE {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a CAR archive is sent as {CAR_MEDIA_TYPE}"),
        ));
    }
    let (thread, summary) = s.db.import_car(&body).await?;
    Ok(Json(json!({
        "thread": thread.to_string(),
        "logs": summary.logs,
        "entries": summary.entries,
        "stored": summary.stored,
    })))
}

pub(crate) async fn known_thread<S: Store + 'static>(
    s: &AppState<S>,
    text: &str,
) -> Result<ThreadId, ApiError> {
    let thread = thread_id(text)?;
    if !s.db.threads().await.contains(&thread) {
        return Err(DbError::UnknownThread(thread).into());
    }
    Ok(thread)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Join {
    invite: String,
}

#[utoipa::path(
    post,
    path = "/v1/join",
    summary = "Joins a thread from an invite (pulls it from the inviter)",
    description = "Joins a thread from an invite (pulls it from the inviter).",
    request_body = Join,
    responses(
        (status = 200, description = "{thread}", body = crate::openapi::ThreadBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn join<S: Store + 'static>(
    State(s): State<Api<S>>,
    Body(body): Body<Join>,
) -> Result<Json<Value>, ApiError> {
    let thread = s.db.join(&body.invite).await?;
    Ok(Json(json!({"thread": thread.to_string()})))
}

#[utoipa::path(
    get,
    path = "/v1/health",
    summary = "Sync health per thread, log and peer (counters, lag = what this peer lacks, peer_lacks = what the peer lacks from this one, accepted, rejected, last error, quarantined, forked = the counter where the log's author forked it), the fork proofs held, and requests refused from peers that proved a thread's key but are not admitted (revoked members)",
    description = "Sync health per thread, log and peer (counters, lag = what this peer lacks, peer_lacks = what the peer lacks from this one, accepted, rejected, last error, quarantined, forked = the counter where the log's author forked it), the fork proofs held, and requests refused from peers that proved a thread's key but are not admitted (revoked members).",
    responses(
        (status = 200, description = "{health: [...], forks: [{thread, log, counter, proof (standard base64)}], denied: [{thread, peer, count}]}", body = crate::openapi::HealthBody),
    ),
)]
pub(crate) async fn health<S: Store + 'static>(
    State(s): State<Api<S>>,
) -> Result<Json<Value>, ApiError> {
    let mut forks = Vec::new();
    for thread in s.db.threads().await {
        for proof in s.db.forks(thread).await? {
            forks.push(json!({
                "thread": thread.to_string(),
                "log": proof.log().to_string(),
                "counter": proof.counter(),
                "proof": base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    proof.to_bytes(),
                ),
            }));
        }
    }
    let denied: Vec<Value> = s
        .db
        .node()
        .health()
        .denials()
        .into_iter()
        .map(|((thread, peer), count)| {
            json!({"thread": thread.to_string(), "peer": peer.to_string(), "count": count})
        })
        .collect();
    let rows: Vec<Value> =
        s.db.health()
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "thread": r.thread.to_string(),
                    "log": r.log.to_string(),
                    "peer": r.peer.to_string(),
                    "local_counter": r.local_counter,
                    "peer_counter": r.peer_counter,
                    "lag": r.lag,
                    "peer_lacks": r.peer_lacks,
                    "accepted": r.health.accepted,
                    "rejected": r.health.rejected(),
                    "last_error": r.health.last_error,
                    "quarantined": r.health.quarantined,
                    "forked": r.forked,
                })
            })
            .collect();
    Ok(Json(
        json!({"health": rows, "forks": forks, "denied": denied}),
    ))
}

#[derive(Deserialize)]
pub(crate) struct Prefix {
    #[serde(default)]
    prefix: String,
    /// `base64` when the prefix is base64 (URL-safe alphabet, no padding).
    #[serde(default)]
    prefix_encoding: Option<String>,
}

/// How a key in a URL is written: `?key_encoding=base64` for a key in URL-safe base64
/// without padding (any bytes), else the key's UTF-8 text.
#[derive(Deserialize)]
pub(crate) struct KeyEncoding {
    #[serde(default)]
    key_encoding: Option<String>,
}

fn url_bytes(text: &str, encoding: Option<&str>, what: &str) -> Result<Vec<u8>, ApiError> {
    crate::api::decode_bytes(text, encoding, crate::api::Alphabet::Url, what)
}

/// A key and value as JSON: text when UTF-8, else base64 (each with its encoding).
fn kv_json(key: &[u8], value: &[u8]) -> Value {
    let (key, key_encoding) = crate::api::bytes_json(key);
    let (value, encoding) = crate::api::bytes_json(value);
    json!({"key": key, "key_encoding": key_encoding, "value": value, "encoding": encoding})
}

#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/kv",
    summary = "Live keys with a prefix, in key order",
    description = "Live keys with a prefix, in key order. Keys and values are UTF-8 text, or standard base64 where they are not (`key_encoding`, `encoding` say which).",
    params(
        ("thread" = String, Path),
        ("prefix" = Option<String>, Query),
        ("prefix_encoding" = Option<String>, Query, description = "base64: the prefix is URL-safe base64 without padding"),
    ),
    responses(
        (status = 200, description = "{items: [{key, key_encoding, value, encoding}]}", body = crate::openapi::KvItems),
    ),
)]
pub(crate) async fn kv_list<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    UrlQuery(q): UrlQuery<Prefix>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let prefix = url_bytes(&q.prefix, q.prefix_encoding.as_deref(), "prefix")?;
    let items: Vec<Value> =
        s.db.list(thread, &prefix)
            .await?
            .into_iter()
            .map(|(k, v)| kv_json(&k, &v))
            .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct KvValue {
    value: String,
    /// `base64` when `value` is base64 (standard alphabet), else UTF-8 text.
    #[serde(default)]
    encoding: Option<String>,
}

#[utoipa::path(
    put,
    path = "/v1/threads/{thread}/kv/{key}",
    summary = "Sets a key (last writer wins by HLC, then log id)",
    description = "Sets a key (last writer wins by HLC, then log id).",
    params(
        ("thread" = String, Path),
        ("key" = String, Path, description = "the key's UTF-8 text (percent-encoded)"),
        ("key_encoding" = Option<String>, Query),
    ),
    request_body = KvValue,
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn kv_put<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, key)): UrlPath<(String, String)>,
    UrlQuery(k): UrlQuery<KeyEncoding>,
    Body(body): Body<KvValue>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let key = url_bytes(&key, k.key_encoding.as_deref(), "key")?;
    let value = crate::api::decode_bytes(
        &body.value,
        body.encoding.as_deref(),
        crate::api::Alphabet::Json,
        "value",
    )?;
    let counter = s.db.transaction(thread).put(&key, &value).commit().await?;
    Ok(Json(json!({"counter": counter})))
}

#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/kv/{key}",
    summary = "A key's value",
    description = "A key's value.",
    params(
        ("thread" = String, Path),
        ("key" = String, Path, description = "the key's UTF-8 text (percent-encoded)"),
        ("key_encoding" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "{key, key_encoding, value, encoding}: text, or standard base64 where the bytes are not UTF-8", body = crate::openapi::KvItem),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn kv_get<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, key)): UrlPath<(String, String)>,
    UrlQuery(k): UrlQuery<KeyEncoding>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let bytes = url_bytes(&key, k.key_encoding.as_deref(), "key")?;
    match s.db.get(thread, &bytes).await? {
        Some(v) => Ok(Json(kv_json(&bytes, &v))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no key {key:?}"),
        )),
    }
}

#[utoipa::path(
    delete,
    path = "/v1/threads/{thread}/kv/{key}",
    summary = "Deletes a key (a tombstone)",
    description = "Deletes a key (a tombstone).",
    params(
        ("thread" = String, Path),
        ("key" = String, Path, description = "the key's UTF-8 text (percent-encoded)"),
        ("key_encoding" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
    ),
)]
pub(crate) async fn kv_del<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, key)): UrlPath<(String, String)>,
    UrlQuery(k): UrlQuery<KeyEncoding>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let key = url_bytes(&key, k.key_encoding.as_deref(), "key")?;
    let counter = s.db.transaction(thread).del(&key).commit().await?;
    Ok(Json(json!({"counter": counter})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewCollection {
    name: String,
    schema: Value,
}

#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/collections",
    summary = "Creates a document collection with a JSON Schema (an event in the thread)",
    description = "Creates a document collection with a JSON Schema (an event in the thread).",
    params(
        ("thread" = String, Path),
    ),
    request_body = NewCollection,
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn create_collection<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    Body(body): Body<NewCollection>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let counter =
        s.db.transaction(thread)
            .create_collection(&body.name, &body.schema)
            .commit()
            .await?;
    Ok(Json(json!({"counter": counter})))
}

#[utoipa::path(
    put,
    path = "/v1/threads/{thread}/docs/{collection}/{id}",
    summary = "Creates or replaces a document (checked against the collection's schema)",
    description = "Creates or replaces a document (checked against the collection's schema).",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
        ("id" = String, Path),
    ),
    request_body(content = Object, content_type = "application/json", description = "a JSON object"),
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 409, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 422, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn doc_put<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection, id)): UrlPath<(String, String, String)>,
    Body(doc): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let exists = s.db.doc(thread, &collection, &id).await?.is_some();
    let op = if exists {
        DocOp::Save {
            collection,
            id,
            doc: doc.to_string(),
        }
    } else {
        DocOp::Create {
            collection,
            id,
            doc: doc.to_string(),
        }
    };
    let counter = s.db.transaction(thread).doc(op).commit().await?;
    Ok(Json(json!({"counter": counter})))
}

#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/docs/{collection}/{id}",
    summary = "A document",
    description = "A document.",
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
pub(crate) async fn doc_get<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection, id)): UrlPath<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    match s.db.doc(thread, &collection, &id).await? {
        Some(doc) => Ok(Json(json!({"id": id, "doc": doc}))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no document {id:?}"),
        )),
    }
}

#[utoipa::path(
    delete,
    path = "/v1/threads/{thread}/docs/{collection}/{id}",
    summary = "Deletes a document",
    description = "Deletes a document.",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
        ("id" = String, Path),
    ),
    responses(
        (status = 200, description = "written", body = crate::openapi::Written),
        (status = 403, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn doc_delete<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection, id)): UrlPath<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let counter =
        s.db.transaction(thread)
            .doc(DocOp::Delete { collection, id })
            .commit()
            .await?;
    Ok(Json(json!({"counter": counter})))
}

#[utoipa::path(
    post,
    path = "/v1/threads/{thread}/query/{collection}",
    summary = "Runs a query; sorting happens before the page is cut",
    description = "Runs a query; sorting happens before the page is cut.",
    params(
        ("thread" = String, Path),
        ("collection" = String, Path),
    ),
    request_body = crate::openapi::QueryBody,
    responses(
        (status = 200, description = "{docs: [{id, doc}], next: cursor or null}", body = crate::openapi::PageBody),
        (status = 400, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "refused: see the error codes", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn doc_query<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath((thread, collection)): UrlPath<(String, String)>,
    Body(query): Body<Query>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let page = s.db.query(thread, &collection, &query).await?;
    let docs: Vec<Value> = page
        .docs
        .into_iter()
        .map(|(id, doc)| json!({"id": id, "doc": doc}))
        .collect();
    Ok(Json(json!({"docs": docs, "next": page.next})))
}

#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/rejections",
    summary = "Every refused operation with author, counter, view and reason",
    description = "Every refused operation with author, counter, view and reason.",
    params(
        ("thread" = String, Path),
    ),
    responses(
        (status = 200, description = "{rejections: [...]}", body = crate::openapi::RejectionsBody),
    ),
)]
pub(crate) async fn rejections<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let thread = thread_id(&thread)?;
    let rows: Vec<Value> = s
        .db
        .rejections(thread)
        .await?
        .into_iter()
        .map(|r| json!({"author": r.author().to_string(), "counter": r.order.counter, "view": r.view, "reason": r.reason}))
        .collect();
    Ok(Json(json!({"rejections": rows})))
}

#[derive(Deserialize)]
pub(crate) struct Since {
    #[serde(default)]
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/threads/{thread}/events",
    summary = "Applied events as Server-Sent Events, in the thread's order, lossless and resumable",
    description = "Applied events as Server-Sent Events, in the thread's order, lossless and resumable.",
    params(
        ("thread" = String, Path),
        ("cursor" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
    ),
)]
pub(crate) async fn events<S: Store + 'static>(
    State(s): State<Api<S>>,
    UrlPath(thread): UrlPath<String>,
    UrlQuery(from): UrlQuery<Since>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let thread = thread_id(&thread)?;
    let cursor = match from.cursor {
        Some(text) => crate::api::parse_cursor(&text)?,
        None => Cursor::default(),
    };
    let mut subscription = s.db.subscribe(thread, cursor).await?;
    let stream = async_stream(move |tx| async move {
        while let Ok(Some(delivered)) = subscription.next().await {
            let payload = delivered
                .payload
                .as_deref()
                .and_then(threads_views::Batch::decode);
            let ops: Vec<Value> = payload
                .map(|b| {
                    b.ops()
                        .iter()
                        .map(|(view, op)| json!({"view": view, "bytes": op.len()}))
                        .collect()
                })
                .unwrap_or_default();
            let data = json!({
                "author": delivered.order.log.to_string(),
                "counter": delivered.order.counter,
                "time": delivered.order.time.physical_ms(),
                "ops": ops,
                "cursor": multibase::encode(multibase::Base::Base32Lower, delivered.cursor.to_bytes()),
            });
            if tx
                .send(Ok(Event::default().data(data.to_string())))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A stream fed by a task through a bounded channel (backpressure: a slow client slows the
/// task, which reads from the store).
pub(crate) fn async_stream<T, F, Fut>(f: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
