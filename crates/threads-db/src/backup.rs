//! Backup and restore of a whole peer: its identity, every thread's keys and known peers,
//! and every log it holds (each thread as a CAR archive), in one file sealed with a key
//! derived from a passphrase (argon2id, as the store seals its secrets at rest).
//!
//! Format (docs/FORMAT.md, "Backups"), version 1:
//! `"threads-rs backup" ‖ 0x01 ‖ salt (16) ‖ KDF parameters (12) ‖ sealed`, where
//! `sealed` is the DAG-CBOR `{identity, threads: [{thread, key, peers, car}]}` sealed with
//! the derived key (associated data `"threads-rs/backup/v1"`). Views are not in it: they
//! are computed again from the logs on restore.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use threads_crypto::{Identity, KdfParams, StorageKey, ThreadKey};
use threads_id::ThreadId;
use threads_store::Store;

use crate::db::Db;
use crate::error::DbError;

const MAGIC: &[u8] = b"threads-rs backup";
const VERSION: u8 = 1;
const AD: &[u8] = b"threads-rs/backup/v1";
/// The meta key under which threads-net keeps a thread's peers.
const PEERS_META: &str = "threads-net.peers";

#[derive(Serialize, Deserialize)]
struct Contents {
    identity: ByteBuf,
    threads: Vec<ThreadBackup>,
}

#[derive(Serialize, Deserialize)]
struct ThreadBackup {
    thread: ByteBuf,
    key: ByteBuf,
    peers: Option<ByteBuf>,
    car: ByteBuf,
}

/// What a restore put back.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The peer's identity: open the database with it ([`Db::open`]).
    pub identity: Identity,
    /// The threads, with their entries stored.
    pub threads: Vec<(ThreadId, u64)>,
}

fn bad(what: impl Into<String>) -> DbError {
    DbError::Backup(what.into())
}

impl<S: Store + 'static> Db<S> {
    /// The backup of this peer: its identity, every thread's keys and peers, every log,
    /// sealed with `passphrase` (argon2id with [`KdfParams::DEFAULT`]). Restore it with
    /// [`restore`].
    ///
    /// # Errors
    /// A store error, or [`DbError::Backup`] if the key cannot be derived.
    pub async fn backup(&self, passphrase: &[u8]) -> Result<Vec<u8>, DbError> {
        self.backup_with(passphrase, KdfParams::DEFAULT).await
    }

    /// [`Db::backup`] with other argon2id parameters (stored in the backup).
    ///
    /// # Errors
    /// As [`Db::backup`].
    pub async fn backup_with(&self, passphrase: &[u8], kdf: KdfParams) -> Result<Vec<u8>, DbError> {
        let store = self.node().store();
        let mut threads = Vec::new();
        for thread in store.threads().await? {
            let key = store
                .thread_key(thread)
                .await?
                .ok_or(DbError::UnknownThread(thread))?;
            let peers = store.meta(thread, PEERS_META).await?;
            // A thread without entries yet has no archive.
            let (car, summary) = threads_net::car::export_car(&**store, thread).await?;
            let car = if summary.logs == 0 { Vec::new() } else { car };
            threads.push(ThreadBackup {
                thread: ByteBuf::from(thread.to_bytes().to_vec()),
                key: ByteBuf::from(key.to_bytes().to_vec()),
                peers: peers.map(ByteBuf::from),
                car: ByteBuf::from(car),
            });
        }
        let contents = Contents {
            identity: ByteBuf::from(self.identity().secret_bytes().to_vec()),
            threads,
        };
        let plain = zeroize::Zeroizing::new(
            serde_ipld_dagcbor::to_vec(&contents).map_err(|e| bad(e.to_string()))?,
        );
        let salt: [u8; 16] = rand::random();
        let key = StorageKey::from_passphrase(passphrase, &salt, kdf)
            .map_err(|e| bad(format!("key derivation: {e}")))?;
        let mut out = Vec::with_capacity(plain.len() + 64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&kdf.to_bytes());
        out.extend_from_slice(&key.seal(AD, &plain));
        Ok(out)
    }
}

/// Restores a backup made by [`Db::backup`] into `store` (a new, empty store: the keys, the
/// peers and every log are put into it, each log verified as sync verifies it). Returns the
/// identity to open the database with.
///
/// # Errors
/// [`DbError::Backup`] for a file that is not a backup or a wrong passphrase (the two
/// differ: a wrong passphrase does not open the sealed part); [`DbError::Car`] if a log
/// does not verify; a store error.
pub async fn restore<S: Store>(
    store: &S,
    bytes: &[u8],
    passphrase: &[u8],
) -> Result<Restored, DbError> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not a threads-rs backup"))?;
    let (&version, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
    if version != VERSION {
        return Err(bad(format!("backup version {version} is not known here")));
    }
    if rest.len() < 28 {
        return Err(bad("truncated"));
    }
    let (salt, rest) = rest.split_at(16);
    let (kdf, sealed) = rest.split_at(12);
    let salt: [u8; 16] = salt.try_into().map_err(|_| bad("truncated"))?;
    let kdf = KdfParams::from_bytes(kdf).map_err(|e| bad(e.to_string()))?;
    let key = StorageKey::from_passphrase(passphrase, &salt, kdf)
        .map_err(|e| bad(format!("key derivation: {e}")))?;
    let plain = zeroize::Zeroizing::new(
        key.open(AD, sealed)
            .map_err(|_| bad("wrong passphrase, or the backup was changed"))?,
    );
    let contents: Contents =
        serde_ipld_dagcbor::from_slice(&plain).map_err(|e| bad(format!("contents: {e}")))?;
    let identity = Identity::from_secret_slice(&contents.identity)
        .map_err(|e| bad(format!("identity: {e}")))?;
    let mut threads = Vec::new();
    for backup in contents.threads {
        let thread = ThreadId::from_bytes(&backup.thread).map_err(|e| bad(e.to_string()))?;
        let key = ThreadKey::from_bytes(&backup.key).map_err(|e| bad(e.to_string()))?;
        store.put_thread(thread, &key).await?;
        if let Some(peers) = &backup.peers {
            store.put_meta(thread, PEERS_META, peers).await?;
        }
        if backup.car.is_empty() {
            threads.push((thread, 0));
            continue;
        }
        let (imported, summary) = threads_net::car::import_car(store, &backup.car).await?;
        if imported != thread {
            return Err(bad(format!("the archive of {thread} holds {imported}")));
        }
        threads.push((thread, summary.entries));
    }
    Ok(Restored { identity, threads })
}
