//! The API's OpenAPI 3.1 document, generated from the handlers' annotations
//! (`#[utoipa::path]`) and the request and response types below. `threads openapi` prints
//! it; docs/openapi.json is that output (a test fails when the two differ), and the
//! end-to-end tests check every answer of the daemon against it.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An error: a stable code, a message, and for a refused write the operations refused.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable code (the table in the API's description).
    pub(crate) code: String,
    pub(crate) message: String,
    /// For a refused write (code `rejected` or `forbidden`): every refused operation.
    #[schema(value_type = Option<Object>)]
    pub(crate) details: Option<Value>,
}

/// One operation a write refused.
#[derive(Serialize, ToSchema)]
pub(crate) struct RefusedOp {
    /// The operation's place in the write.
    pub(crate) index: u32,
    pub(crate) view: String,
    pub(crate) reason: String,
    /// Refused by access control.
    pub(crate) forbidden: bool,
}

/// A write is stored: one event of this peer's log, in one transaction.
#[derive(Serialize, ToSchema)]
pub(crate) struct Written {
    /// The event's counter in this peer's log.
    pub(crate) counter: u64,
}

/// This peer.
#[derive(Serialize, ToSchema)]
pub(crate) struct IdentityBody {
    /// The peer's id (`12D3KooW...`), also its member id.
    pub(crate) id: String,
    /// Its listen addresses.
    pub(crate) addrs: Vec<String>,
}

/// The threads of this peer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadsBody {
    pub(crate) threads: Vec<String>,
}

/// A thread.
#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadBody {
    pub(crate) thread: String,
}

/// A thread this peer left.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeftBody {
    pub(crate) thread: String,
    pub(crate) left: bool,
}

/// A log of a thread and its counter here.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogCounter {
    pub(crate) log: String,
    pub(crate) counter: u64,
    /// The log address book: addresses of the peers that served this log (answered a
    /// sync request listing it) within the address TTL, the writer's and its followers'.
    pub(crate) addrs: Vec<String>,
}

/// A member and its role.
#[derive(Serialize, ToSchema)]
pub(crate) struct MemberRole {
    pub(crate) member: String,
    pub(crate) role: String,
}

/// What a compaction did.
#[derive(Serialize, ToSchema)]
pub(crate) struct CompactedBody {
    /// How many events it named (they apply nothing on any peer now).
    pub(crate) events: u64,
    /// The bytes of the bodies it dropped here.
    pub(crate) freed_bytes: u64,
}

/// A role.
#[derive(Serialize, ToSchema)]
pub(crate) struct RoleBody {
    pub(crate) role: String,
}

/// What this peer knows of a thread.
#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadInfo {
    pub(crate) thread: String,
    /// `raw` or `access_controlled`.
    pub(crate) variant: String,
    pub(crate) logs: Vec<LogCounter>,
    /// Access-controlled threads: the members with a role of their own, and the owner.
    pub(crate) members: Vec<MemberRole>,
    pub(crate) peers: Vec<String>,
    pub(crate) addrs: Vec<String>,
}

/// An invite (text).
#[derive(Serialize, ToSchema)]
pub(crate) struct InviteBody {
    pub(crate) invite: String,
}

/// Addresses.
#[derive(Serialize, ToSchema)]
pub(crate) struct AddrsBody {
    pub(crate) addrs: Vec<String>,
}

/// The peers of a thread.
#[derive(Serialize, ToSchema)]
pub(crate) struct PeersBody {
    pub(crate) peers: Vec<String>,
}

/// A peer added: the thread address.
#[derive(Serialize, ToSchema)]
pub(crate) struct PeerBody {
    pub(crate) peer: String,
}

/// What an imported archive held.
#[derive(Serialize, ToSchema)]
pub(crate) struct Imported {
    pub(crate) thread: String,
    pub(crate) logs: u64,
    pub(crate) entries: u64,
    /// Entries this peer did not hold before.
    pub(crate) stored: u64,
}

/// Sync health: per thread, log and peer; the fork proofs held; refused requests.
#[derive(Serialize, ToSchema)]
pub(crate) struct HealthBody {
    pub(crate) health: Vec<HealthRowBody>,
    pub(crate) forks: Vec<ForkBody>,
    pub(crate) denied: Vec<DeniedBody>,
}

/// One log of one thread as one peer sees it.
#[derive(Serialize, ToSchema)]
pub(crate) struct HealthRowBody {
    pub(crate) thread: String,
    pub(crate) log: String,
    pub(crate) peer: String,
    pub(crate) local_counter: u64,
    pub(crate) peer_counter: Option<u64>,
    pub(crate) lag: u64,
    pub(crate) peer_lacks: u64,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) quarantined: Option<String>,
    pub(crate) forked: Option<u64>,
}

/// A proof that a log's author forked it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ForkBody {
    pub(crate) thread: String,
    pub(crate) log: String,
    pub(crate) counter: u64,
    /// The proof's bytes, base64 (docs/FORMAT.md "Fork proofs").
    pub(crate) proof: String,
}

/// Requests of a peer that proved the key but is not admitted (a revoked member).
#[derive(Serialize, ToSchema)]
pub(crate) struct DeniedBody {
    pub(crate) thread: String,
    pub(crate) peer: String,
    pub(crate) count: u64,
}

/// A key and its value, each named with its encoding (`utf8` or `base64`).
#[derive(Serialize, ToSchema)]
pub(crate) struct KvItem {
    pub(crate) key: String,
    pub(crate) key_encoding: String,
    pub(crate) value: String,
    pub(crate) encoding: String,
}

/// Keys and values.
#[derive(Serialize, ToSchema)]
pub(crate) struct KvItems {
    pub(crate) items: Vec<KvItem>,
}

/// A document.
#[derive(Serialize, ToSchema)]
pub(crate) struct DocBody {
    pub(crate) id: String,
    #[schema(value_type = Object)]
    pub(crate) doc: Value,
}

/// A document created, with the id the daemon made.
#[derive(Serialize, ToSchema)]
pub(crate) struct Created {
    pub(crate) id: String,
    pub(crate) counter: u64,
}

/// A page of query results; `next` is the cursor of the next page.
#[derive(Serialize, ToSchema)]
pub(crate) struct PageBody {
    pub(crate) docs: Vec<DocBody>,
    pub(crate) next: Option<String>,
}

/// How a query reads a collection.
#[derive(Serialize, ToSchema)]
pub(crate) struct PlanBody {
    pub(crate) plan: String,
}

/// A collection: its schema version, its JSON Schema and its indexes.
#[derive(Serialize, ToSchema)]
pub(crate) struct CollectionBody {
    pub(crate) name: String,
    pub(crate) version: u64,
    #[schema(value_type = Object)]
    pub(crate) schema: Value,
    #[schema(value_type = Vec<Object>)]
    pub(crate) indexes: Value,
}

/// The collections of a thread.
#[derive(Serialize, ToSchema)]
pub(crate) struct CollectionsBody {
    pub(crate) collections: Vec<CollectionBody>,
}

/// An operation the views refused.
#[derive(Serialize, ToSchema)]
pub(crate) struct RejectionBody {
    pub(crate) author: String,
    pub(crate) counter: u64,
    pub(crate) view: String,
    pub(crate) reason: String,
}

/// Every operation the views refused.
#[derive(Serialize, ToSchema)]
pub(crate) struct RejectionsBody {
    pub(crate) rejections: Vec<RejectionBody>,
}

/// A token that opens one thread's streams for a minute.
#[derive(Serialize, ToSchema)]
pub(crate) struct StreamTokenBody {
    pub(crate) token: String,
    pub(crate) expires_in_s: u64,
}

/// A document query (the body of `query` and `explain`).
#[derive(Serialize, ToSchema)]
#[schema(as = Query)]
pub(crate) struct QueryBody {
    /// A filter: `{"eq": [path, value]}` (also `ne`, `gt`, `ge`, `lt`, `le`, `prefix`),
    /// `{"in": [path, [values]]}`, `{"exists": [path, bool]}`, `{"and": [filters]}`,
    /// `{"or": [filters]}`; paths are dotted (`address.city`).
    #[schema(value_type = Option<Object>)]
    pub(crate) filter: Option<Value>,
    pub(crate) sort: Option<Vec<SortBody>>,
    pub(crate) limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub(crate) after: Option<String>,
}

/// A sort key.
#[derive(Serialize, ToSchema)]
pub(crate) struct SortBody {
    pub(crate) path: String,
    pub(crate) desc: Option<bool>,
}

/// Bearer authentication, for every operation that does not say otherwise.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "threads daemon API",
        version = "1",
        description = include_str!("openapi.md"),
    ),
    security(("bearer" = [])),
    modifiers(&Security),
    paths(
        crate::daemon::console_page,
        crate::daemon::console_client,
        crate::daemon::get_identity,
        crate::daemon::list_threads,
        crate::daemon::create_thread,
        crate::daemon::invite,
        crate::daemon::set_role,
        crate::daemon::set_default_role,
        crate::daemon::compact,
        crate::daemon::thread_addrs,
        crate::daemon::list_peers,
        crate::daemon::add_peer,
        crate::daemon::join,
        crate::daemon::health,
        crate::daemon::kv_list,
        crate::daemon::kv_put,
        crate::daemon::kv_get,
        crate::daemon::kv_del,
        crate::daemon::create_collection,
        crate::daemon::doc_put,
        crate::daemon::doc_get,
        crate::daemon::doc_delete,
        crate::daemon::doc_query,
        crate::daemon::events,
        crate::daemon::rejections,
        crate::daemon::export_car,
        crate::daemon::backup,
        crate::daemon::import_car,
        crate::api::transaction,
        crate::api::list_collections,
        crate::api::get_collection,
        crate::api::drop_collection,
        crate::api::set_schema,
        crate::api::add_index,
        crate::api::create_doc,
        crate::api::explain,
        crate::api::changes,
        crate::api::stream_token,
        crate::api::thread_info,
        crate::api::leave_thread,
        crate::live_routes::get_doc,
        crate::live_routes::edit_doc,
        crate::live_routes::add_changes,
        crate::live_routes::live,
    ),
    components(schemas(RefusedOp))
)]
pub(crate) struct ApiDoc;

/// The document, as pretty JSON with a final newline (what docs/openapi.json holds).
pub(crate) fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
