//! The document store: collections of JSON documents with a JSON Schema each, secondary
//! indexes, and queries. Everything (collections, schema changes, indexes, documents) is an
//! event in the thread, so a peer that joins needs no set-up of its own.
//!
//! The view is order-sensitive: a document is checked against its collection's schema at
//! its place in the order, and the first write in the order wins a unique value. Concurrent
//! writes to one document resolve **per document**: the later write in the thread's order
//! replaces the whole document. A schema validates whole documents; merging fields of two
//! concurrent saves could make a document neither writer validated. For field-level merges
//! use an automerge collection ([`crate::Crdt`]).
//!
//! Rows of the view (`\0` separates parts; names cannot hold it):
//!
//! ```text
//! c \0 collection                          -> collection meta (JSON: schema versions, indexes)
//! d \0 collection \0 id                    -> schema version (u32 BE) ‖ document (JSON)
//! i \0 collection \0 index \0 value ‖ id   -> empty (value: json::encode_scalar)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use threads_views::{Access, Event, Reducer, Reject, State, ViewKind};

use crate::error::DocError;
use crate::json::{
    MISSING, encode_scalar, encode_string_prefix, encode_value, get, tag, valid_path,
};
use crate::query::{Filter, Query, QueryPage};

/// The default name of the document view.
pub const DOCS_VIEW: &str = "docs";

/// A secondary index on one path of a collection's documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// The index's name.
    pub name: String,
    /// The JSON path it indexes (scalar values only: arrays and objects are not indexed).
    pub path: String,
    /// Whether two documents may not hold the same value.
    pub unique: bool,
}

/// A collection's definition: its schema versions (the last is current) and indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    /// The collection's name.
    pub name: String,
    /// Every schema it had, oldest first; version `n` is `schemas[n - 1]`.
    pub schemas: Vec<Value>,
    /// Its indexes.
    pub indexes: Vec<IndexSpec>,
}

impl Collection {
    /// The current schema version (1 for a new collection).
    pub fn version(&self) -> u32 {
        u32::try_from(self.schemas.len()).unwrap_or(u32::MAX)
    }
}

/// One document operation, as written in a batch entry for the document view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DocOp {
    /// Creates a collection with a schema (version 1).
    #[serde(rename = "collection")]
    CreateCollection {
        /// The collection.
        name: String,
        /// The JSON Schema, as JSON text.
        schema: String,
    },
    /// Replaces a collection's schema (the next version). Documents already stored are
    /// kept; later writes are checked against the new version.
    #[serde(rename = "schema")]
    SetSchema {
        /// The collection.
        name: String,
        /// The JSON Schema, as JSON text.
        schema: String,
    },
    /// Adds an index, built over the documents already stored.
    #[serde(rename = "index")]
    AddIndex {
        /// The collection.
        collection: String,
        /// The index.
        spec: IndexSpec,
    },
    /// Deletes a collection: its documents, its indexes and its schemas; refused if it does
    /// not exist. A collection of that name can be created again, empty.
    #[serde(rename = "drop")]
    DropCollection {
        /// The collection.
        name: String,
    },
    /// Creates a document; refused if it exists.
    #[serde(rename = "create")]
    Create {
        /// The collection.
        collection: String,
        /// The document's id.
        id: String,
        /// The document, as JSON text.
        doc: String,
    },
    /// Replaces a document; refused if it does not exist.
    #[serde(rename = "save")]
    Save {
        /// The collection.
        collection: String,
        /// The document's id.
        id: String,
        /// The document, as JSON text.
        doc: String,
    },
    /// Deletes a document; refused if it does not exist.
    #[serde(rename = "delete")]
    Delete {
        /// The collection.
        collection: String,
        /// The document's id.
        id: String,
    },
}

impl DocOp {
    /// The operation's bytes (DAG-CBOR) for a batch entry.
    pub fn encode(&self) -> Vec<u8> {
        serde_ipld_dagcbor::to_vec(self).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    /// Decodes [`DocOp::encode`]'s bytes.
    ///
    /// # Errors
    /// [`DocError::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<DocOp, DocError> {
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| DocError::Malformed(e.to_string()))
    }

    fn collection(&self) -> &str {
        match self {
            DocOp::CreateCollection { name, .. }
            | DocOp::SetSchema { name, .. }
            | DocOp::DropCollection { name } => name,
            DocOp::AddIndex { collection, .. }
            | DocOp::Create { collection, .. }
            | DocOp::Save { collection, .. }
            | DocOp::Delete { collection, .. } => collection,
        }
    }
}

/// A row change: the key, and the new value (`None` deletes).
type RowChange = (Vec<u8>, Option<Vec<u8>>);

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && !id.contains('\0')
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part);
    }
    out
}

fn collection_key(name: &str) -> Vec<u8> {
    key(&[b"c", name.as_bytes()])
}

fn doc_prefix(collection: &str) -> Vec<u8> {
    let mut k = key(&[b"d", collection.as_bytes()]);
    k.push(0);
    k
}

/// The row holding the place (stamp) of the event that created a collection.
fn created_key(collection: &str) -> Vec<u8> {
    key(&[b"t", collection.as_bytes()])
}

/// The row holding the place (stamp) of the event that last created or saved a document.
fn writer_key(collection: &str, id: &str) -> Vec<u8> {
    key(&[b"w", collection.as_bytes(), id.as_bytes()])
}

fn writer_prefix(collection: &str) -> Vec<u8> {
    let mut k = key(&[b"w", collection.as_bytes()]);
    k.push(0);
    k
}

fn doc_key(collection: &str, id: &str) -> Vec<u8> {
    key(&[b"d", collection.as_bytes(), id.as_bytes()])
}

fn index_prefix(collection: &str, index: &str) -> Vec<u8> {
    let mut k = key(&[b"i", collection.as_bytes(), index.as_bytes()]);
    k.push(0);
    k
}

/// A document's value in an index: the encoding of the value at the index's path
/// ([`MISSING`] where the path holds nothing) and whether it is a scalar. Every document
/// has an entry in every index of its collection, so the index read in order is the
/// collection in the order of its path; only scalars are held to a unique index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Indexed {
    enc: Vec<u8>,
    scalar: bool,
}

impl Indexed {
    fn of(value: Option<&Value>) -> Indexed {
        match value {
            None => Indexed {
                enc: vec![MISSING],
                scalar: false,
            },
            Some(v) => match encode_scalar(v) {
                Some(enc) => Indexed { enc, scalar: true },
                None => Indexed {
                    enc: encode_value(v),
                    scalar: false,
                },
            },
        }
    }

    fn at(doc: &Value, path: &str) -> Indexed {
        Indexed::of(get(doc, path))
    }
}

/// The key of a document's entry in an index: the index's prefix, the encoded value, and
/// the document's id, except for a scalar in a unique index (which holds one entry per
/// value, so a uniqueness check is one point read).
fn entry_key(collection: &str, spec: &IndexSpec, value: &Indexed, id: &str) -> Vec<u8> {
    let mut k = index_prefix(collection, &spec.name);
    k.extend_from_slice(&value.enc);
    if !(spec.unique && value.scalar) {
        k.extend_from_slice(id.as_bytes());
    }
    k
}

/// An index entry's value: the document's id and its row (a covering index: a query
/// through an index reads no other row).
fn index_row(id: &str, doc_row: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + id.len() + doc_row.len());
    out.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(doc_row);
    out
}

/// The id and the document row of an index entry's value.
fn decode_index_row(value: &[u8]) -> Option<(String, &[u8])> {
    let len = usize::try_from(u32::from_be_bytes(value.get(..4)?.try_into().ok()?)).ok()?;
    let id = std::str::from_utf8(value.get(4..4 + len)?).ok()?.to_owned();
    Some((id, value.get(4 + len..)?))
}

/// A document's row: the schema version it was written under, then its JSON text.
fn doc_row(version: u32, doc: &Value) -> Vec<u8> {
    let mut row = version.to_be_bytes().to_vec();
    row.extend_from_slice(doc.to_string().as_bytes());
    row
}

fn parse_doc(text: &str) -> Result<Value, DocError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| DocError::BadDocument(e.to_string()))?;
    if doc.is_object() {
        Ok(doc)
    } else {
        Err(DocError::BadDocument(
            "a document is a JSON object".to_owned(),
        ))
    }
}

/// The document view: a [`Reducer`] over [`DocOp`]s, and the functions that read its state.
pub struct Docs {
    name: String,
    validators: Mutex<HashMap<[u8; 32], Arc<jsonschema::Validator>>>,
    /// Collections as parsed from their rows, with the validator of their newest schema,
    /// by the row's bytes: a write does not parse its collection's schemas again.
    writing: Mutex<HashMap<Vec<u8>, Arc<Parsed>>>,
}

/// A collection and the validator of its newest schema.
type Parsed = (Collection, Arc<jsonschema::Validator>);

/// Collections kept parsed at most (the map starts over beyond).
const PARSED_COLLECTIONS: usize = 64;

impl fmt::Debug for Docs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Docs")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for Docs {
    fn default() -> Docs {
        Docs::new(DOCS_VIEW)
    }
}

/// How a query reads a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Every document.
    Full,
    /// The documents an index holds for some values or a range.
    Index {
        /// The index.
        index: String,
        /// The indexed path.
        path: String,
        /// What is looked up: `eq`, `in`, `prefix`, `range`, or `order` (the whole index,
        /// for its order).
        lookup: &'static str,
        /// Whether the index already gives the query's order (no sort needed, and reading
        /// stops once the page is full).
        ordered: bool,
    },
    /// An `or` whose every branch reads an index: the union of those reads (each document
    /// once), then filtered and sorted.
    Union(Vec<Scan>),
}

/// What [`Docs::explain`] says about a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The collection.
    pub collection: String,
    /// How it is read.
    pub scan: Scan,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scan(f, &self.scan, &self.collection)
    }
}

fn write_scan(f: &mut fmt::Formatter<'_>, scan: &Scan, collection: &str) -> fmt::Result {
    match scan {
        Scan::Full => write!(f, "full scan of {collection}"),
        Scan::Index {
            index,
            path,
            lookup,
            ordered,
        } => {
            write!(f, "index {index} of {collection} ({lookup} on {path})")?;
            if *ordered {
                write!(f, ", in sort order")?;
            }
            Ok(())
        }
        Scan::Union(parts) => {
            write!(f, "union of ")?;
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    write!(f, " and ")?;
                }
                write!(f, "[")?;
                write_scan(f, part, collection)?;
                write!(f, "]")?;
            }
            Ok(())
        }
    }
}

/// The key range(s) an index lookup reads.
struct Lookup {
    spec: IndexSpec,
    kind: &'static str,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Docs {
    /// A document view named `name` (usually [`DOCS_VIEW`]).
    pub fn new(name: impl Into<String>) -> Docs {
        Docs {
            name: name.into(),
            validators: Mutex::new(HashMap::new()),
            writing: Mutex::new(HashMap::new()),
        }
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A collection and the validator of its newest schema (parsed once per row value).
    fn for_writing(&self, state: &State, name: &str) -> Result<Arc<Parsed>, DocError> {
        let row = state
            .get(&collection_key(name))
            .ok_or_else(|| DocError::UnknownCollection(name.to_owned()))?;
        if let Some(parsed) = self
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&row)
        {
            return Ok(Arc::clone(parsed));
        }
        let meta: Collection =
            serde_json::from_slice(&row).map_err(|e| DocError::Malformed(e.to_string()))?;
        let schema = meta.schemas.last().cloned().unwrap_or(Value::Bool(true));
        let validator = self.validator(&schema)?;
        let parsed = Arc::new((meta, validator));
        let mut cache = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= PARSED_COLLECTIONS {
            cache.clear();
        }
        cache.insert(row, Arc::clone(&parsed));
        Ok(parsed)
    }

    fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, DocError> {
        let text = schema.to_string();
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let mut cache = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = cache.get(&digest) {
            return Ok(Arc::clone(v));
        }
        let validator = Arc::new(
            jsonschema::validator_for(schema).map_err(|e| DocError::BadSchema(e.to_string()))?,
        );
        cache.insert(digest, Arc::clone(&validator));
        Ok(validator)
    }

    /// A collection's definition.
    ///
    /// # Errors
    /// [`DocError::UnknownCollection`].
    pub fn collection(state: &State, name: &str) -> Result<Collection, DocError> {
        let bytes = state
            .get(&collection_key(name))
            .ok_or_else(|| DocError::UnknownCollection(name.to_owned()))?;
        serde_json::from_slice(&bytes).map_err(|e| DocError::Malformed(e.to_string()))
    }

    /// Every collection, by name.
    pub fn collections(state: &State) -> Vec<Collection> {
        state
            .prefix(b"c\0")
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// A document, and the schema version it was written under.
    pub fn get(state: &State, collection: &str, id: &str) -> Option<(Value, u32)> {
        let row = state.get(&doc_key(collection, id))?;
        decode_doc(&row)
    }

    /// Checks an operation against the state, as the view would apply it, without changing
    /// anything: the typed error it would be refused with.
    ///
    /// # Errors
    /// Every [`DocError`] an operation can meet.
    pub fn check(&self, state: &State, op: &DocOp) -> Result<(), DocError> {
        self.plan(state, op).map(|_| ())
    }

    fn plan(&self, state: &State, op: &DocOp) -> Result<Vec<RowChange>, DocError> {
        let name = op.collection();
        if !valid_name(name) {
            return Err(DocError::BadName(name.to_owned()));
        }
        match op {
            DocOp::CreateCollection { name, schema } => {
                if state.get(&collection_key(name)).is_some() {
                    return Err(DocError::CollectionExists(name.clone()));
                }
                let schema: Value =
                    serde_json::from_str(schema).map_err(|e| DocError::BadSchema(e.to_string()))?;
                self.validator(&schema)?;
                let meta = Collection {
                    name: name.clone(),
                    schemas: vec![schema],
                    indexes: Vec::new(),
                };
                Ok(vec![(collection_key(name), Some(encode_meta(&meta)))])
            }
            DocOp::SetSchema { name, schema } => {
                let mut meta = Docs::collection(state, name)?;
                let schema: Value =
                    serde_json::from_str(schema).map_err(|e| DocError::BadSchema(e.to_string()))?;
                self.validator(&schema)?;
                meta.schemas.push(schema);
                Ok(vec![(collection_key(name), Some(encode_meta(&meta)))])
            }
            DocOp::AddIndex { collection, spec } => {
                let mut meta = Docs::collection(state, collection)?;
                if !valid_name(&spec.name) {
                    return Err(DocError::BadName(spec.name.clone()));
                }
                if !valid_path(&spec.path) {
                    return Err(DocError::BadQuery(format!(
                        "bad index path {:?}",
                        spec.path
                    )));
                }
                if meta.indexes.iter().any(|i| i.name == spec.name) {
                    return Err(DocError::IndexExists(spec.name.clone()));
                }
                let mut changes = Vec::new();
                let mut seen: HashMap<Vec<u8>, String> = HashMap::new();
                let prefix = doc_prefix(collection);
                for (key, row) in state.prefix(&prefix) {
                    let Ok(id) = String::from_utf8(key[prefix.len()..].to_vec()) else {
                        continue;
                    };
                    let Some((doc, _)) = decode_doc(&row) else {
                        continue;
                    };
                    let value = Indexed::at(&doc, &spec.path);
                    if spec.unique
                        && value.scalar
                        && let Some(holder) = seen.insert(value.enc.clone(), id.clone())
                    {
                        return Err(DocError::UniqueViolation {
                            collection: collection.clone(),
                            index: spec.name.clone(),
                            id,
                            holder,
                        });
                    }
                    changes.push((
                        entry_key(collection, spec, &value, &id),
                        Some(index_row(&id, &row)),
                    ));
                }
                meta.indexes.push(spec.clone());
                changes.push((collection_key(collection), Some(encode_meta(&meta))));
                Ok(changes)
            }
            DocOp::Create {
                collection,
                id,
                doc,
            }
            | DocOp::Save {
                collection,
                id,
                doc,
            } => {
                let parsed = self.for_writing(state, collection)?;
                let (meta, validator) = (&parsed.0, &parsed.1);
                if !valid_id(id) {
                    return Err(DocError::BadName(id.clone()));
                }
                let doc = parse_doc(doc)?;
                let old = Docs::get(state, collection, id).map(|(d, _)| d);
                match (op, &old) {
                    (DocOp::Create { .. }, Some(_)) => {
                        return Err(DocError::Exists {
                            collection: collection.clone(),
                            id: id.clone(),
                        });
                    }
                    (DocOp::Save { .. }, None) => {
                        return Err(DocError::NotFound {
                            collection: collection.clone(),
                            id: id.clone(),
                        });
                    }
                    _ => {}
                }
                let version = meta.version();
                if let Err(error) = validator.validate(&doc) {
                    return Err(DocError::SchemaViolation {
                        collection: collection.clone(),
                        id: id.clone(),
                        version,
                        reason: error.to_string(),
                    });
                }
                let row = doc_row(version, &doc);
                let mut changes = Vec::new();
                for spec in &meta.indexes {
                    let before = old.as_ref().map(|d| Indexed::at(d, &spec.path));
                    let after = Indexed::at(&doc, &spec.path);
                    if let Some(before) = &before
                        && *before != after
                    {
                        changes.push((entry_key(collection, spec, before, id), None));
                    }
                    let key = entry_key(collection, spec, &after, id);
                    if spec.unique
                        && after.scalar
                        && before.as_ref() != Some(&after)
                        && let Some(entry) = state.get(&key)
                    {
                        let holder = decode_index_row(&entry).map(|(h, _)| h).unwrap_or_default();
                        if holder != *id {
                            return Err(DocError::UniqueViolation {
                                collection: collection.clone(),
                                index: spec.name.clone(),
                                id: id.clone(),
                                holder,
                            });
                        }
                    }
                    // The entry covers the document: it is rewritten with it.
                    changes.push((key, Some(index_row(id, &row))));
                }
                changes.push((doc_key(collection, id), Some(row)));
                Ok(changes)
            }
            DocOp::DropCollection { name } => {
                let meta = Docs::collection(state, name)?;
                let mut changes: Vec<RowChange> = vec![(collection_key(name), None)];
                // Every row of the collection: its documents and each index's entries.
                let mut prefixes = vec![doc_prefix(name), writer_prefix(name)];
                for spec in &meta.indexes {
                    prefixes.push(index_prefix(name, &spec.name));
                }
                for prefix in prefixes {
                    changes.extend(state.prefix(&prefix).map(|(k, _)| (k.to_vec(), None)));
                }
                Ok(changes)
            }
            DocOp::Delete { collection, id } => {
                let meta = Docs::collection(state, collection)?;
                let Some((old, _)) = Docs::get(state, collection, id) else {
                    return Err(DocError::NotFound {
                        collection: collection.clone(),
                        id: id.clone(),
                    });
                };
                let mut changes = Vec::new();
                for spec in &meta.indexes {
                    let value = Indexed::at(&old, &spec.path);
                    changes.push((entry_key(collection, spec, &value, id), None));
                }
                changes.push((doc_key(collection, id), None));
                Ok(changes)
            }
        }
    }

    /// How [`Docs::query`] would read the collection.
    ///
    /// # Errors
    /// [`DocError::UnknownCollection`] or [`DocError::BadQuery`].
    pub fn explain(state: &State, collection: &str, query: &Query) -> Result<Plan, DocError> {
        query.check()?;
        let meta = Docs::collection(state, collection)?;
        let index_scan = |lookup: &Lookup, ordered: bool| Scan::Index {
            index: lookup.spec.name.clone(),
            path: lookup.spec.path.clone(),
            lookup: lookup.kind,
            ordered,
        };
        let scan = match (choose_or_order(&meta, query), union(&meta, query)) {
            (Some(lookup), _) => index_scan(&lookup, in_index_order(&lookup, query)),
            (None, Some(lookups)) => {
                Scan::Union(lookups.iter().map(|l| index_scan(l, false)).collect())
            }
            (None, None) => Scan::Full,
        };
        Ok(Plan {
            collection: collection.to_owned(),
            scan,
        })
    }

    /// Runs a query: filter (through an index where one serves), sort, then page.
    ///
    /// ```
    /// use serde_json::json;
    /// use threads_db::{DocOp, Docs, Filter, IndexSpec, Query};
    /// use threads_views::State;
    /// # use threads_views::Reducer;
    ///
    /// // A state as the view builds it (here by hand, through `Docs::apply_local`).
    /// let docs = Docs::default();
    /// let mut state = State::new();
    /// let schema = json!({"type": "object", "required": ["age"]}).to_string();
    /// docs.apply_local(&mut state, &DocOp::CreateCollection { name: "people".into(), schema })?;
    /// let spec = IndexSpec { name: "by_age".into(), path: "age".into(), unique: false };
    /// docs.apply_local(&mut state, &DocOp::AddIndex { collection: "people".into(), spec })?;
    /// for (id, age) in [("ann", 31), ("bob", 25), ("cy", 40)] {
    ///     let doc = json!({"age": age}).to_string();
    ///     docs.apply_local(&mut state, &DocOp::Create { collection: "people".into(), id: id.into(), doc })?;
    /// }
    /// let query = Query::filter(Filter::Ge("age".into(), json!(30))).sort("age", false);
    /// let page = Docs::query(&state, "people", &query)?;
    /// let ids: Vec<&str> = page.docs.iter().map(|(id, _)| id.as_str()).collect();
    /// assert_eq!(ids, ["ann", "cy"]);
    /// assert_eq!(Docs::explain(&state, "people", &query)?.to_string(),
    ///            "index by_age of people (range on age), in sort order");
    /// # Ok::<(), threads_db::DocError>(())
    /// ```
    ///
    /// # Errors
    /// [`DocError::UnknownCollection`] or [`DocError::BadQuery`].
    pub fn query(state: &State, collection: &str, query: &Query) -> Result<QueryPage, DocError> {
        query.check()?;
        let meta = Docs::collection(state, collection)?;
        let matches = |doc: &Value| query.filter.as_ref().is_none_or(|f| f.matches(doc));
        let Some(lookup) = choose_or_order(&meta, query) else {
            if let Some(lookups) = union(&meta, query) {
                // Each branch through its index; a document several branches hold, once.
                let mut docs: BTreeMap<String, Value> = BTreeMap::new();
                for lookup in &lookups {
                    for (from, to) in &lookup.ranges {
                        for (_, entry) in state.range(from, to) {
                            let Some((id, row)) = decode_index_row(&entry) else {
                                continue;
                            };
                            if docs.contains_key(&id) {
                                continue;
                            }
                            if let Some((doc, _)) = decode_doc(row)
                                && matches(&doc)
                            {
                                docs.insert(id, doc);
                            }
                        }
                    }
                }
                return query.page(docs.into_iter().collect());
            }
            let docs = docs_of(state, collection)
                .filter(|(_, d)| matches(d))
                .collect();
            return query.page(docs);
        };
        let ordered = in_index_order(&lookup, query);
        let desc = ordered && query.sort.first().is_some_and(|s| s.desc);
        // When the index gives the order (read from its end for a descending sort, which
        // is the ascending order reversed, ties included), a cursor seeks to its
        // document's entry (a page deep in the result costs what the first costs), and
        // only what the page needs is read: up to the page's end, plus the cursor's own
        // entry, which `page` drops.
        let seek = match (&query.after, ordered) {
            (Some(cursor), true) => query.cursor_entry(cursor).map(|(value, id)| {
                let mut at = entry_key(collection, &lookup.spec, &Indexed::of(value.as_ref()), &id);
                if desc {
                    // The end of a backward read, excluded: the cursor's entry is read.
                    at.push(0);
                }
                at
            }),
            _ => None,
        };
        let need = if ordered && (query.after.is_none() || seek.is_some()) {
            query
                .limit
                .map(|l| l.saturating_add(query.offset).saturating_add(2))
        } else {
            None
        };
        let mut docs = Vec::new();
        let ranges: Vec<&(Vec<u8>, Vec<u8>)> = if desc {
            lookup.ranges.iter().rev().collect()
        } else {
            lookup.ranges.iter().collect()
        };
        'ranges: for (from, to) in ranges {
            let (from, to) = match &seek {
                Some(at) if desc && at < to => (from, at),
                Some(at) if !desc && at > from => (at, to),
                _ => (from, to),
            };
            if from >= to {
                continue;
            }
            let rows = if desc {
                state.range_rev(from, to)
            } else {
                state.range(from, to)
            };
            for (_, entry) in rows {
                let Some((id, row)) = decode_index_row(&entry) else {
                    continue;
                };
                let Some((doc, _)) = decode_doc(row) else {
                    continue;
                };
                if matches(&doc) {
                    docs.push((id, doc));
                    if need.is_some_and(|n| docs.len() >= n) {
                        break 'ranges;
                    }
                }
            }
        }
        query.page(docs)
    }

    /// Applies an operation to a state directly (no event): for tests, tools and examples.
    ///
    /// # Errors
    /// As [`Docs::check`].
    pub fn apply_local(&self, state: &mut State, op: &DocOp) -> Result<(), DocError> {
        for (k, v) in self.plan(state, op)? {
            match v {
                Some(v) => state.put(k, v),
                None => state.delete(&k),
            }
        }
        Ok(())
    }
}

fn decode_doc(row: &[u8]) -> Option<(Value, u32)> {
    let version = u32::from_be_bytes(row.get(..4)?.try_into().ok()?);
    Some((serde_json::from_slice(&row[4..]).ok()?, version))
}

fn encode_meta(meta: &Collection) -> Vec<u8> {
    serde_json::to_vec(meta).unwrap_or_else(|_| unreachable!("plain data encodes"))
}

fn docs_of<'a>(state: &'a State, collection: &str) -> impl Iterator<Item = (String, Value)> + 'a {
    let prefix = doc_prefix(collection);
    let skip = prefix.len();
    state.prefix(&prefix).filter_map(move |(k, v)| {
        let id = String::from_utf8(k[skip..].to_vec()).ok()?;
        Some((id, decode_doc(&v)?.0))
    })
}

/// Whether the index lookup returns documents in the query's order (read from its end
/// for a descending sort).
fn in_index_order(lookup: &Lookup, query: &Query) -> bool {
    lookup.kind != "in" && matches!(query.sort.as_slice(), [s] if s.path == lookup.spec.path)
}

/// Picks the index a query reads: an equality on a unique index, then an equality, an
/// `in`, a prefix, a range; `None` for a full scan.
fn choose(meta: &Collection, query: &Query) -> Option<Lookup> {
    choose_filter(meta, query.filter.as_ref()?)
}

/// The index a filter reads ([`choose`]); failing that, for a sort on one indexed path,
/// the whole index in order (it holds every document).
fn choose_or_order(meta: &Collection, query: &Query) -> Option<Lookup> {
    if let Some(lookup) = choose(meta, query) {
        return Some(lookup);
    }
    if matches!(query.filter, Some(Filter::Or(_))) {
        return None;
    }
    let [sort] = query.sort.as_slice() else {
        return None;
    };
    let spec = meta.indexes.iter().find(|i| i.path == sort.path)?;
    let from = index_prefix(&meta.name, &spec.name);
    let to = successor(&from);
    Some(Lookup {
        spec: spec.clone(),
        kind: "order",
        ranges: vec![(from, to)],
    })
}

/// For a filter that is an `or`, one index lookup per branch, if every branch has one.
fn union(meta: &Collection, query: &Query) -> Option<Vec<Lookup>> {
    match query.filter.as_ref()? {
        Filter::Or(branches) if !branches.is_empty() => branches
            .iter()
            .map(|branch| choose_filter(meta, branch))
            .collect(),
        _ => None,
    }
}

fn choose_filter(meta: &Collection, filter: &Filter) -> Option<Lookup> {
    let conjuncts: Vec<&Filter> = match filter {
        Filter::And(all) => all.iter().collect(),
        other => vec![other],
    };
    let mut best: Option<(u8, Lookup)> = None;
    let mut consider = |rank: u8, lookup: Lookup| {
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, lookup));
        }
    };
    for spec in &meta.indexes {
        let base = index_prefix(&meta.name, &spec.name);
        let with = |value: &[u8]| {
            let mut k = base.clone();
            k.extend_from_slice(value);
            k
        };
        // Bounds of a range on this path, merged over the conjuncts.
        let mut lower: Option<(Vec<u8>, bool, u8)> = None;
        let mut upper: Option<(Vec<u8>, bool, u8)> = None;
        for conjunct in &conjuncts {
            match conjunct {
                // Arrays and objects are indexed too: an equality with one reads its
                // entries (every entry of that value, whatever the index).
                Filter::Eq(path, v) if *path == spec.path => {
                    let from = with(&encode_value(v));
                    let to = successor(&from);
                    let unique = spec.unique && encode_scalar(v).is_some();
                    consider(
                        if unique { 0 } else { 1 },
                        Lookup {
                            spec: spec.clone(),
                            kind: "eq",
                            ranges: vec![(from, to)],
                        },
                    );
                }
                Filter::In(path, vs) if *path == spec.path => {
                    let mut encs: Vec<Vec<u8>> = vs.iter().map(encode_value).collect();
                    encs.sort();
                    encs.dedup();
                    let ranges = encs
                        .iter()
                        .map(|e| {
                            let from = with(e);
                            let to = successor(&from);
                            (from, to)
                        })
                        .collect();
                    consider(
                        2,
                        Lookup {
                            spec: spec.clone(),
                            kind: "in",
                            ranges,
                        },
                    );
                }
                Filter::Prefix(path, p) if *path == spec.path => {
                    let from = with(&encode_string_prefix(p));
                    let to = successor(&from);
                    consider(
                        3,
                        Lookup {
                            spec: spec.clone(),
                            kind: "prefix",
                            ranges: vec![(from, to)],
                        },
                    );
                }
                Filter::Gt(path, v) | Filter::Ge(path, v) if *path == spec.path => {
                    if let Some(enc) = encode_scalar(v) {
                        let inclusive = matches!(conjunct, Filter::Ge(..));
                        lower = Some((enc, inclusive, tag(v)));
                    }
                }
                Filter::Lt(path, v) | Filter::Le(path, v) if *path == spec.path => {
                    if let Some(enc) = encode_scalar(v) {
                        let inclusive = matches!(conjunct, Filter::Le(..));
                        upper = Some((enc, inclusive, tag(v)));
                    }
                }
                _ => {}
            }
        }
        if lower.is_some() || upper.is_some() {
            // A comparison matches values of its operand's type only: the range stays
            // within that type's encodings.
            let type_tag = lower.as_ref().or(upper.as_ref()).map_or(0, |b| b.2);
            let from = match &lower {
                Some((enc, true, _)) => with(enc),
                Some((enc, false, _)) => successor(&with(enc)),
                None => with(&[type_tag]),
            };
            let to = match &upper {
                Some((enc, true, _)) => successor(&with(enc)),
                Some((enc, false, _)) => with(enc),
                None => with(&[type_tag + 1]),
            };
            let mixed = matches!((&lower, &upper), (Some(l), Some(u)) if l.2 != u.2);
            let ranges = if mixed || from >= to {
                Vec::new()
            } else {
                vec![(from, to)]
            };
            consider(
                4,
                Lookup {
                    spec: spec.clone(),
                    kind: "range",
                    ranges,
                },
            );
        }
    }
    best.map(|(_, lookup)| lookup)
}

/// The smallest key greater than every key starting with `prefix`.
fn successor(prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return out;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

impl Reducer for Docs {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ViewKind {
        ViewKind::Ordered
    }

    /// 2: covering index entries (id and document in the value, one entry per value in a
    /// unique index) and exact number keys. 3: the `drop` operation (a collection deleted);
    /// a version 2 view refused it, so scopes computed by version 2 are computed again.
    /// 4: a row per document with the place of its last `create` or `save`, and one per
    /// collection with the place of its creation (what [`Reducer::superseded`] reads).
    /// 5: every document has an entry in every index (a missing path, an array or an
    /// object too), and no count of the documents an index did not hold.
    fn version(&self) -> u32 {
        5
    }

    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
        let op = DocOp::decode(event.data).map_err(|e| Reject::new(e.to_string()))?;
        self.apply_local(state, &op)
            .map_err(|e| Reject::new(e.to_string()))?;
        match &op {
            DocOp::Create { collection, id, .. } | DocOp::Save { collection, id, .. } => {
                state.put(
                    writer_key(collection, id),
                    threads_views::encode_stamp(&event.stamp()).to_vec(),
                );
            }
            DocOp::Delete { collection, id } => state.delete(&writer_key(collection, id)),
            DocOp::CreateCollection { name, .. } => state.put(
                created_key(name),
                threads_views::encode_stamp(&event.stamp()).to_vec(),
            ),
            DocOp::DropCollection { name } => state.delete(&created_key(name)),
            _ => {}
        }
        Ok(())
    }

    /// A `save` that a later `save` of the same document replaced, in a collection without
    /// a unique index: no other operation read the value it wrote (a unique index would
    /// have: it refuses other documents' values), and the document's existence comes from
    /// its `create`. Creates, deletes and changes of collections are never superseded (later
    /// operations depend on them).
    fn superseded(&self, state: &State, event: &Event<'_>) -> bool {
        let Ok(DocOp::Save { collection, id, .. }) = DocOp::decode(event.data) else {
            return false;
        };
        let Ok(meta) = Docs::collection(state, &collection) else {
            return false;
        };
        if meta.indexes.iter().any(|spec| spec.unique) {
            return false;
        }
        let stamp = threads_views::encode_stamp(&event.stamp());
        // A save in a collection of the same name dropped since (whose indexes are gone)
        // is not judged by the collection there is now.
        let current = state
            .get(&created_key(&collection))
            .is_some_and(|created| created.as_slice() < stamp.as_slice());
        current
            && state
                .get(&writer_key(&collection, &id))
                .is_some_and(|last| last.as_slice() > stamp.as_slice())
    }

    fn access(&self, event: &Event<'_>) -> Access {
        match DocOp::decode(event.data) {
            Ok(DocOp::Delete { .. } | DocOp::DropCollection { .. }) => Access::Delete,
            _ => Access::Write,
        }
    }

    fn resource(&self, event: &Event<'_>) -> Option<Vec<u8>> {
        match DocOp::decode(event.data).ok()? {
            DocOp::Create { collection, id, .. }
            | DocOp::Save { collection, id, .. }
            | DocOp::Delete { collection, id } => {
                Some(key(&[collection.as_bytes(), id.as_bytes()]))
            }
            _ => None,
        }
    }
}
