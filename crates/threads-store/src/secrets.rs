//! Secrets at rest: thread keys and log keys, stored plain (in a file only its owner can
//! read) or sealed with a key derived from a passphrase (argon2id).
//!
//! A sealed store keeps one setting, `secrets`:
//! `01 ‖ salt (16) ‖ KDF parameters (12) ‖ check`, where `check` is a fixed text sealed
//! with the derived key; opening the check tells a wrong passphrase from a right one before
//! anything else is read. Each secret is sealed with associated data naming its row, so a
//! sealed secret cannot be moved to another row.
// Without a SQL backend only `StoreOptions` is used (the memory store keeps no secrets).
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use threads_crypto::{KdfParams, StorageKey};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::traits::Result;

const VERSION: u8 = 1;
const CHECK: &[u8] = b"threads-rs store secrets";
const CHECK_AD: &[u8] = b"threads-rs/store/check";

/// How a store is opened: with or without a passphrase, and the KDF cost for a new one.
#[derive(Clone, Default)]
pub struct StoreOptions {
    passphrase: Option<Zeroizing<Vec<u8>>>,
    kdf: KdfParams,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<secret>"))
            .field("kdf", &self.kdf)
            .finish()
    }
}

impl StoreOptions {
    /// Plain secrets, protected by the file's permissions only.
    pub fn new() -> StoreOptions {
        StoreOptions::default()
    }

    /// Seal secrets with a key derived from `passphrase`. A new store is sealed; an
    /// existing sealed store opens only with the same passphrase.
    pub fn with_passphrase(mut self, passphrase: impl AsRef<[u8]>) -> StoreOptions {
        self.passphrase = Some(Zeroizing::new(passphrase.as_ref().to_vec()));
        self
    }

    /// The argon2id cost used when a new sealed store is created.
    pub fn with_kdf(mut self, kdf: KdfParams) -> StoreOptions {
        self.kdf = kdf;
        self
    }
}

/// The secrets policy of an open store.
#[derive(Debug)]
pub(crate) enum Secrets {
    Plain,
    Sealed(StorageKey),
}

impl Secrets {
    /// Decides the policy from the options and the store's `secrets` setting. Returns the
    /// policy and, for a store being sealed now, the setting to write.
    pub(crate) fn resolve(
        options: &StoreOptions,
        setting: Option<&[u8]>,
        has_secrets: bool,
    ) -> Result<(Secrets, Option<Vec<u8>>)> {
        match (setting, options.passphrase.as_ref()) {
            (None, None) => Ok((Secrets::Plain, None)),
            (Some(_), None) => Err(StoreError::PassphraseRequired),
            (None, Some(_)) if has_secrets => Err(StoreError::NotSealed),
            (None, Some(passphrase)) => {
                let mut salt = [0u8; 16];
                rand::fill(&mut salt);
                let key = StorageKey::from_passphrase(passphrase, &salt, options.kdf)
                    .map_err(|e| StoreError::Corrupt(format!("key derivation: {e}")))?;
                let mut setting = vec![VERSION];
                setting.extend_from_slice(&salt);
                setting.extend_from_slice(&options.kdf.to_bytes());
                setting.extend_from_slice(&key.seal(CHECK_AD, CHECK));
                Ok((Secrets::Sealed(key), Some(setting)))
            }
            (Some(setting), Some(passphrase)) => {
                if setting.len() < 1 + 16 + 12 || setting[0] != VERSION {
                    return Err(StoreError::Corrupt("unreadable secrets setting".to_owned()));
                }
                let salt: [u8; 16] = setting[1..17]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("unreadable secrets setting".to_owned()))?;
                let kdf = KdfParams::from_bytes(&setting[17..29])
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let key = StorageKey::from_passphrase(passphrase, &salt, kdf)
                    .map_err(|e| StoreError::Corrupt(format!("key derivation: {e}")))?;
                match key.open(CHECK_AD, &setting[29..]) {
                    Ok(check) if check == CHECK => Ok((Secrets::Sealed(key), None)),
                    _ => Err(StoreError::WrongPassphrase),
                }
            }
        }
    }

    /// The bytes to store for `secret` in the row named by `row`.
    pub(crate) fn seal(&self, row: &[u8], secret: &[u8]) -> Vec<u8> {
        match self {
            Secrets::Plain => secret.to_vec(),
            Secrets::Sealed(key) => key.seal(row, secret),
        }
    }

    /// The secret stored as `stored` in the row named by `row`.
    pub(crate) fn open(&self, row: &[u8], stored: Vec<u8>) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Secrets::Plain => Ok(Zeroizing::new(stored)),
            Secrets::Sealed(key) => key
                .open(row, &stored)
                .map(Zeroizing::new)
                .map_err(|_| StoreError::Corrupt("a sealed secret does not open".to_owned())),
        }
    }
}

/// The row name of a thread's key.
pub(crate) fn thread_key_row(thread: &threads_id::ThreadId) -> Vec<u8> {
    let mut row = b"threads-rs/store/thread-key/".to_vec();
    row.extend_from_slice(&thread.to_bytes());
    row
}

/// The row name of a log's private key.
pub(crate) fn log_key_row(thread: &threads_id::ThreadId, log: &threads_id::LogId) -> Vec<u8> {
    let mut row = b"threads-rs/store/log-key/".to_vec();
    row.extend_from_slice(&thread.to_bytes());
    row.extend_from_slice(&log.to_bytes());
    row
}
