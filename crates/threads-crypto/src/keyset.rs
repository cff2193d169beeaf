//! Key sets sealed to one recipient: how a thread's keys reach an invitee.
//!
//! A [`KeySet`] (a thread id and its [`ThreadKey`]) is encrypted to the recipient's identity
//! key. The recipient's ed25519 public key is mapped to its x25519 (Montgomery) form, the
//! sender draws an ephemeral x25519 key, and the shared secret goes through HKDF-SHA256 to
//! an XChaCha20-Poly1305 key. Only the holder of the matching ed25519 secret opens it.
//! docs/FORMAT.md gives the layout byte by byte:
//!
//! ```text
//! sealed    = version (0x01, or 0x02 for a key ring) ‖ ephemeral x25519 public (32)
//!             ‖ nonce (24) ‖ ciphertext ‖ tag (16)
//! plaintext = thread id (34) ‖ ThreadKey bytes (version 1: service key (32) ‖ [read key (32)];
//!             version 2: the key ring form)
//! key       = HKDF-SHA256(salt = "threads-rs/keyset/v1", ikm = X25519(eph, recipient),
//!                         info = ephemeral public ‖ recipient ed25519 public)
//! ad        = version ‖ ephemeral public ‖ recipient ed25519 public
//! ```

use std::fmt;
use std::str::FromStr;

use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use threads_id::{ThreadId, ThreadIdError};
use zeroize::Zeroizing;

use crate::aead::{self, AeadError};
use crate::identity::{Identity, KeyError, PublicKey};
use crate::keys::ThreadKey;

/// The version byte at the front of a sealed key set whose key is a plain [`ThreadKey`]
/// (no service-key epochs).
pub const KEYSET_VERSION: u8 = 1;
/// The version byte of a sealed key set whose key is a key ring (service-key epochs): its
/// plaintext holds the ring form of the [`ThreadKey`].
pub const KEYSET_RING_VERSION: u8 = 2;
const SALT: &[u8] = b"threads-rs/keyset/v1";
const HEADER_LEN: usize = 1 + 32;
/// The shortest sealed key set: a follower's (service key only).
const MIN_SEALED_LEN: usize = HEADER_LEN + aead::OVERHEAD + ThreadId::LEN + 32;
/// The length of a sealed key set holding a plain follower's key (the service key alone);
/// one holding a plain reader's key is 32 bytes longer.
pub const SEALED_FOLLOWER_KEYSET_LEN: usize = MIN_SEALED_LEN;

/// Why a sealed key set cannot be read or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The sealed bytes are too short to hold any key set.
    #[error("sealed key set is {0} bytes, too short")]
    TooShort(usize),
    /// The version byte is not one we know.
    #[error("unsupported sealed key set version {0}")]
    UnsupportedVersion(u8),
    /// The ephemeral key is a low-order point: the agreement would not be secret.
    #[error("sealed key set uses a low-order ephemeral key")]
    WeakKey,
    /// Decryption failed: sealed to another recipient, or changed on the way.
    #[error("cannot open key set (another recipient, or tampered bytes): {0}")]
    Open(#[from] AeadError),
    /// The decrypted thread id is invalid.
    #[error("key set holds an invalid thread id: {0}")]
    ThreadId(#[from] ThreadIdError),
    /// The decrypted keys are invalid.
    #[error("key set holds invalid keys: {0}")]
    Key(#[from] KeyError),
    /// The text is not valid multibase.
    #[error("sealed key set is not valid multibase: {0}")]
    Multibase(String),
}

/// A thread and the keys to it: what an invite delivers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeySet {
    thread: ThreadId,
    key: ThreadKey,
}

impl KeySet {
    /// The key set for `thread` with `key` (a follower's key carries no read key).
    pub const fn new(thread: ThreadId, key: ThreadKey) -> KeySet {
        KeySet { thread, key }
    }

    /// The thread.
    pub const fn thread_id(&self) -> ThreadId {
        self.thread
    }

    /// The thread's keys.
    pub const fn thread_key(&self) -> &ThreadKey {
        &self.key
    }

    /// Encrypts this key set so that only `recipient` can open it.
    ///
    /// ```
    /// use threads_crypto::{Identity, KeySet, ThreadKey};
    /// use threads_id::{ThreadId, Variant};
    ///
    /// let alice = Identity::generate();
    /// let set = KeySet::new(ThreadId::new(Variant::Raw), ThreadKey::generate());
    /// let sealed = set.seal(&alice.public());
    /// assert_eq!(sealed.open(&alice)?, set);
    /// assert!(sealed.open(&Identity::generate()).is_err());
    /// # Ok::<(), threads_crypto::KeySetError>(())
    /// ```
    pub fn seal(&self, recipient: &PublicKey) -> SealedKeySet {
        self.seal_with(recipient, &mut rand::rng())
    }

    /// [`KeySet::seal`] with randomness from `rng` (deterministic in tests).
    pub fn seal_with<R: CryptoRng + ?Sized>(
        &self,
        recipient: &PublicKey,
        rng: &mut R,
    ) -> SealedKeySet {
        let ephemeral = x25519_dalek::StaticSecret::random_from_rng(rng);
        let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral);
        let shared = ephemeral.diffie_hellman(&recipient.to_x25519());
        // The recipient key is a validated, non-weak ed25519 key, so its Montgomery form has
        // no small-order component and the agreement is contributory.
        let key = derive(shared.as_bytes(), ephemeral_public.as_bytes(), recipient);
        let mut header = [0u8; HEADER_LEN];
        header[0] = if self.key.is_ring() {
            KEYSET_RING_VERSION
        } else {
            KEYSET_VERSION
        };
        header[1..].copy_from_slice(ephemeral_public.as_bytes());
        let mut plaintext = Zeroizing::new(Vec::with_capacity(ThreadId::LEN + 64));
        plaintext.extend_from_slice(&self.thread.to_bytes());
        plaintext.extend_from_slice(&self.key.to_bytes());
        let ad = associated_data(&header, recipient);
        let body = aead::seal(&key, &ad, &plaintext, rng);
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        SealedKeySet(out)
    }
}

/// A [`KeySet`] encrypted to one recipient. Its text form is multibase (base32, prefix `b`).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKeySet(Vec<u8>);

impl SealedKeySet {
    /// Takes sealed bytes, checking their length and version (not yet their contents).
    pub fn from_bytes(bytes: &[u8]) -> Result<SealedKeySet, KeySetError> {
        if bytes.len() < MIN_SEALED_LEN {
            return Err(KeySetError::TooShort(bytes.len()));
        }
        if bytes[0] != KEYSET_VERSION && bytes[0] != KEYSET_RING_VERSION {
            return Err(KeySetError::UnsupportedVersion(bytes[0]));
        }
        Ok(SealedKeySet(bytes.to_vec()))
    }

    /// The sealed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Opens the key set with the recipient's identity.
    pub fn open(&self, recipient: &Identity) -> Result<KeySet, KeySetError> {
        let (header, body) = self.0.split_at(HEADER_LEN);
        let ephemeral: [u8; 32] = header[1..]
            .try_into()
            .unwrap_or_else(|_| unreachable!("header is 33 bytes"));
        let shared = recipient.to_x25519().diffie_hellman(&ephemeral.into());
        if !shared.was_contributory() {
            return Err(KeySetError::WeakKey);
        }
        let public = recipient.public();
        let key = derive(shared.as_bytes(), &ephemeral, &public);
        let plaintext = Zeroizing::new(aead::open(&key, &associated_data(header, &public), body)?);
        let (thread, keys) = plaintext.split_at(ThreadId::LEN.min(plaintext.len()));
        let key = ThreadKey::from_bytes(keys)?;
        // The version (bound as associated data) names the key's form: a ring under
        // version 1, or a plain key under version 2, is not a key set this code wrote.
        if key.is_ring() != (header[0] == KEYSET_RING_VERSION) {
            return Err(KeySetError::UnsupportedVersion(header[0]));
        }
        Ok(KeySet {
            thread: ThreadId::from_bytes(thread)?,
            key,
        })
    }
}

fn derive(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &PublicKey) -> Zeroizing<[u8; 32]> {
    let mut info = [0u8; 64];
    info[..32].copy_from_slice(ephemeral);
    info[32..].copy_from_slice(recipient.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(SALT), shared)
        .expand(&info, &mut *key)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
    key
}

fn associated_data(header: &[u8], recipient: &PublicKey) -> Vec<u8> {
    let mut ad = Vec::with_capacity(header.len() + 32);
    ad.extend_from_slice(header);
    ad.extend_from_slice(recipient.as_bytes());
    ad
}

impl fmt::Display for SealedKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase::encode(multibase::Base::Base32Lower, &self.0))
    }
}

impl fmt::Debug for SealedKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedKeySet({} bytes)", self.0.len())
    }
}

impl FromStr for SealedKeySet {
    type Err = KeySetError;

    fn from_str(text: &str) -> Result<SealedKeySet, KeySetError> {
        let (_, bytes) =
            multibase::decode(text).map_err(|e| KeySetError::Multibase(e.to_string()))?;
        SealedKeySet::from_bytes(&bytes)
    }
}

/// Parses `bytes` as a sealed key set and tries to open it with `recipient`: the check that
/// the fuzz target drives. Never panics.
pub fn open_sealed_bytes(bytes: &[u8], recipient: &Identity) -> Result<KeySet, KeySetError> {
    SealedKeySet::from_bytes(bytes)?.open(recipient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{ReadKey, ServiceKey};
    use proptest::prelude::*;
    use threads_id::Variant;

    fn sample(read: bool) -> KeySet {
        let service = ServiceKey::from_bytes([1; 32]);
        let key = if read {
            ThreadKey::new(service, ReadKey::from_bytes([2; 32]))
        } else {
            ThreadKey::follower(service)
        };
        KeySet::new(ThreadId::from_parts(Variant::Raw, [3; 32]), key)
    }

    #[test]
    fn layout_and_lengths() {
        let bob = Identity::from_secret_bytes(&[4; 32]);
        let full = sample(true).seal(&bob.public());
        let follower = sample(false).seal(&bob.public());
        assert_eq!(full.as_bytes()[0], KEYSET_VERSION);
        assert_eq!(full.as_bytes().len(), 1 + 32 + 24 + 34 + 64 + 16);
        assert_eq!(follower.as_bytes().len(), MIN_SEALED_LEN);
        assert_eq!(follower.open(&bob), Ok(sample(false)));
        assert!(!follower.open(&bob).expect("opens").thread_key().can_read());
    }

    #[test]
    fn every_failure_is_typed() {
        let bob = Identity::from_secret_bytes(&[4; 32]);
        let eve = Identity::from_secret_bytes(&[5; 32]);
        let sealed = sample(true).seal(&bob.public());
        let bytes = sealed.as_bytes();
        assert!(matches!(
            sealed.open(&eve),
            Err(KeySetError::Open(AeadError::Authentication))
        ));
        for len in 0..MIN_SEALED_LEN {
            assert_eq!(
                open_sealed_bytes(&bytes[..len], &bob),
                Err(KeySetError::TooShort(len))
            );
        }
        let mut version = bytes.to_vec();
        version[0] = 3;
        assert_eq!(
            open_sealed_bytes(&version, &bob),
            Err(KeySetError::UnsupportedVersion(3))
        );
        // The version is bound: a plain key set relabelled as a ring does not open.
        version[0] = KEYSET_RING_VERSION;
        assert!(matches!(
            open_sealed_bytes(&version, &bob),
            Err(KeySetError::Open(AeadError::Authentication))
        ));
        for i in 1..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x01;
            assert!(
                open_sealed_bytes(&bad, &bob).is_err(),
                "flipped byte {i} still opens"
            );
        }
        // A low-order ephemeral key (the point 0) is refused before decryption.
        let mut zero = bytes.to_vec();
        zero[1..33].fill(0);
        assert_eq!(open_sealed_bytes(&zero, &bob), Err(KeySetError::WeakKey));
        assert!(matches!(
            "b!!".parse::<SealedKeySet>(),
            Err(KeySetError::Multibase(_))
        ));
    }

    #[test]
    fn a_key_ring_is_sealed_as_version_2() {
        let bob = Identity::from_secret_bytes(&[4; 32]);
        let mut ring = sample(true);
        let mut key = ring.thread_key().clone();
        assert!(key.add_epoch(ServiceKey::from_bytes([7; 32])));
        assert!(key.add_epoch(ServiceKey::from_bytes([8; 32])));
        ring = KeySet::new(ring.thread_id(), key);
        let sealed = ring.seal(&bob.public());
        assert_eq!(sealed.as_bytes()[0], KEYSET_RING_VERSION);
        assert_eq!(
            sealed.as_bytes().len(),
            1 + 32 + 24 + 34 + 4 + 32 * 3 + 32 + 16
        );
        let opened = sealed.open(&bob).expect("opens");
        assert_eq!(opened, ring);
        assert_eq!(
            opened.thread_key().epoch_service(),
            &ServiceKey::from_bytes([8; 32])
        );
        let follower = KeySet::new(ring.thread_id(), ring.thread_key().to_follower());
        assert_eq!(follower.seal(&bob.public()).open(&bob), Ok(follower));
    }

    #[test]
    fn text_form_round_trips() {
        let bob = Identity::from_secret_bytes(&[4; 32]);
        let sealed = sample(true).seal(&bob.public());
        let text = sealed.to_string();
        assert!(text.starts_with('b'));
        assert_eq!(text.parse::<SealedKeySet>(), Ok(sealed));
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(recipient in any::<[u8; 32]>(), service in any::<[u8; 32]>(), read in any::<Option<[u8; 32]>>(), random in any::<[u8; 32]>()) {
            let bob = Identity::from_secret_bytes(&recipient);
            let service = ServiceKey::from_bytes(service);
            let key = match read {
                Some(read) => ThreadKey::new(service, ReadKey::from_bytes(read)),
                None => ThreadKey::follower(service),
            };
            let set = KeySet::new(ThreadId::from_parts(Variant::AccessControlled, random), key);
            prop_assert_eq!(set.seal(&bob.public()).open(&bob), Ok(set));
        }

        #[test]
        fn arbitrary_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let bob = Identity::from_secret_bytes(&[4; 32]);
            prop_assert!(open_sealed_bytes(&bytes, &bob).is_err());
        }
    }
}
