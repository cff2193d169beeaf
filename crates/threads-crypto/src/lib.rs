//! Keys, signatures, authenticated encryption and sealed key sets of the Threads protocol.
//!
//! - [`Identity`] / [`PublicKey`] / [`Signature`]: ed25519 identity keys, the same keys as
//!   libp2p's (one key, one `PeerId`, one [`LogId`](threads_id::LogId)).
//! - [`ServiceKey`], [`ReadKey`], [`ContentKey`]: the three symmetric keys of the protocol's
//!   three encryption layers; [`ThreadKey`] is what a member holds (service key plus, for a
//!   reader, the read key).
//! - Every symmetric key seals with XChaCha20-Poly1305 and a random 24-byte nonce; the
//!   caller's associated data binds a ciphertext to its place.
//! - [`KeySet`] / [`SealedKeySet`]: a thread's keys sealed to one recipient's identity
//!   (x25519 + HKDF-SHA256 + XChaCha20-Poly1305), how invites carry keys.
//!
//! [`check`] holds the invariant checks that the fuzz targets and the replay tests share.
//!
//! Pure code: no I/O, no async. Randomness comes from the operating system by default, or
//! from a caller's RNG through the `*_with` / `random` constructors, so tests are
//! deterministic. Secrets are zeroized on drop and never printed by `Debug`.
//!
//! ```
//! use threads_crypto::{Identity, KeySet, ThreadKey};
//! use threads_id::{ThreadId, Variant};
//!
//! let alice = Identity::generate();
//! let bob = Identity::generate();
//! let thread = ThreadId::new(Variant::Raw);
//! let key = ThreadKey::generate();
//!
//! // Alice invites Bob: only Bob can open the sealed key set.
//! let invite = KeySet::new(thread, key.clone()).seal(&bob.public());
//! let opened = invite.open(&bob)?;
//! assert_eq!(opened.thread_key(), &key);
//!
//! // The read key encrypts with associated data binding the ciphertext to its place.
//! let read = key.read().expect("a full key has a read key");
//! let sealed = read.seal(b"header", b"secret");
//! assert_eq!(read.open(b"header", &sealed)?, b"secret");
//! assert!(read.open(b"body", &sealed).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod aead;
pub mod check;
mod identity;
mod keys;
mod keyset;

pub use aead::{AeadError, NONCE_LEN, OVERHEAD, TAG_LEN};
pub use identity::{Identity, KeyError, PublicKey, Signature, SignatureError, verify_batch};
pub use keys::{ContentKey, KdfParams, ReadKey, ServiceKey, StorageKey, ThreadKey};
pub use keyset::{KEYSET_VERSION, KeySet, KeySetError, SealedKeySet, open_sealed_bytes};
