#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod aead;
pub mod check;
mod identity;
mod keys;
mod keyset;

pub use aead::{AeadError, NONCE_LEN, OVERHEAD, TAG_LEN};
pub use identity::{Identity, KeyError, PublicKey, Signature, SignatureError, verify_batch};
pub use keys::{ContentKey, KdfParams, MAX_EPOCHS, ReadKey, ServiceKey, StorageKey, ThreadKey};
pub use keyset::{
    KEYSET_RING_VERSION, KEYSET_VERSION, KeySet, KeySetError, SEALED_FOLLOWER_KEYSET_LEN,
    SealedKeySet, open_sealed_bytes,
};
