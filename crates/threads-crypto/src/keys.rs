//! The symmetric keys of a thread: service, read and content keys, and the thread key.
//!
//! - [`ServiceKey`] (the paper's Follow key) encrypts records: it lets a peer store, verify
//!   and serve a thread without reading it.
//! - [`ReadKey`] encrypts event headers, which carry each event's content key.
//! - [`ContentKey`] encrypts one event body; a fresh one is drawn for every event.
//! - [`ThreadKey`] is what a member holds: the service key and, for readers, the read key.
//!
//! Every key is 32 random bytes, compared in constant time, zeroized on drop and never
//! printed by `Debug`. None implements `Display`: a secret is written out only by asking for
//! it by name ([`ThreadKey::to_multibase`]), so it cannot slip into a log line.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead::{self, AeadError};
use crate::identity::KeyError;

macro_rules! symmetric_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The length of the key in bytes.
            pub const LEN: usize = 32;

            /// A new key from the operating system's randomness.
            pub fn generate() -> $name {
                $name::random(&mut rand::rng())
            }

            /// A new key from `rng` (deterministic in tests).
            pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> $name {
                let mut bytes = [0u8; 32];
                rng.fill_bytes(&mut bytes);
                $name(bytes)
            }

            /// The key with these bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> $name {
                $name(bytes)
            }

            /// The key in `bytes`, which must be 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Result<$name, KeyError> {
                bytes
                    .try_into()
                    .map($name)
                    .map_err(|_| KeyError::WrongLength { expected: 32, actual: bytes.len() })
            }

            /// The key's bytes. Handle with care: this is the secret.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Encrypts `plaintext`, binding `associated_data`: `nonce ‖ ciphertext ‖ tag`.
            pub fn seal(&self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
                self.seal_with(associated_data, plaintext, &mut rand::rng())
            }

            /// [`Self::seal`] with the nonce drawn from `rng` (deterministic in tests).
            pub fn seal_with<R: CryptoRng + ?Sized>(
                &self,
                associated_data: &[u8],
                plaintext: &[u8],
                rng: &mut R,
            ) -> Vec<u8> {
                aead::seal(&self.0, associated_data, plaintext, rng)
            }

            /// Decrypts bytes sealed under this key with the same associated data.
            pub fn open(&self, associated_data: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
                aead::open(&self.0, associated_data, sealed)
            }

            /// Encrypts `plaintext` with its synthetic nonce (derived from this key, the
            /// associated data and the plaintext): one plaintext has exactly one sealed form,
            /// so whoever holds the key cannot make a second one of the same content.
            pub fn seal_synthetic(&self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
                aead::seal_synthetic(&self.0, associated_data, plaintext)
            }

            /// Decrypts bytes made by [`Self::seal_synthetic`]; bytes that open but carry
            /// another nonce are refused ([`AeadError::Noncanonical`]).
            pub fn open_synthetic(
                &self,
                associated_data: &[u8],
                sealed: &[u8],
            ) -> Result<Vec<u8>, AeadError> {
                aead::open_synthetic(&self.0, associated_data, sealed)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &$name) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<secret>)"))
            }
        }
    };
}

symmetric_key! {
    /// The key that encrypts a thread's records (the paper's Follow key). Holding it lets a
    /// peer replicate, verify and serve the thread, but not read it.
    ServiceKey
}

symmetric_key! {
    /// The key that encrypts a thread's event headers, and so gives access to the content.
    ReadKey
}

symmetric_key! {
    /// The key that encrypts one event's body; drawn fresh for every event and carried in the
    /// event's header.
    ContentKey
}

symmetric_key! {
    /// The key that seals a store's secrets at rest (thread keys, log keys), derived from
    /// a passphrase with [`StorageKey::from_passphrase`].
    StorageKey
}

/// The cost of deriving a [`StorageKey`] from a passphrase with argon2id. Stored beside
/// the salt, so a store opens with the parameters it was sealed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane (OWASP's argon2id guidance; about 0.1 s here).
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Parameters with `memory_kib` KiB of memory, `iterations` passes and `parallelism`
    /// lanes. Checked when a key is derived.
    pub const fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> KdfParams {
        KdfParams {
            memory_kib,
            iterations,
            parallelism,
        }
    }

    /// The 12-byte form: memory, iterations, parallelism, each a big-endian `u32`.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&self.memory_kib.to_be_bytes());
        out[4..8].copy_from_slice(&self.iterations.to_be_bytes());
        out[8..].copy_from_slice(&self.parallelism.to_be_bytes());
        out
    }

    /// Parses the 12-byte form.
    pub fn from_bytes(bytes: &[u8]) -> Result<KdfParams, KeyError> {
        let bytes: &[u8; 12] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 12,
            actual: bytes.len(),
        })?;
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Ok(KdfParams {
            memory_kib: word(0),
            iterations: word(4),
            parallelism: word(8),
        })
    }
}

impl Default for KdfParams {
    fn default() -> KdfParams {
        KdfParams::DEFAULT
    }
}

impl StorageKey {
    /// Derives the key from `passphrase` and a 16-byte random `salt` with argon2id.
    ///
    /// ```
    /// use threads_crypto::{KdfParams, StorageKey};
    /// let params = KdfParams::new(1024, 1, 1); // small, for the example
    /// let a = StorageKey::from_passphrase(b"correct horse", &[7; 16], params)?;
    /// let b = StorageKey::from_passphrase(b"correct horse", &[7; 16], params)?;
    /// assert_eq!(a, b);
    /// assert_ne!(a, StorageKey::from_passphrase(b"wrong horse", &[7; 16], params)?);
    /// # Ok::<(), threads_crypto::KeyError>(())
    /// ```
    pub fn from_passphrase(
        passphrase: &[u8],
        salt: &[u8; 16],
        params: KdfParams,
    ) -> Result<StorageKey, KeyError> {
        let argon_params = argon2::Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon_params,
        );
        let mut key = [0u8; 32];
        argon
            .hash_password_into(passphrase, salt, &mut key)
            .map_err(|e| KeyError::Kdf(e.to_string()))?;
        let derived = StorageKey(key);
        key.zeroize();
        Ok(derived)
    }
}

/// The keys a member holds for a thread: the service key, and the read key if it may read.
///
/// The byte form is `service (32) ‖ read (32)`, or the service key alone for a follower;
/// the text form is that in multibase (base32, prefix `b`), as in go-threads.
///
/// ```
/// use threads_crypto::ThreadKey;
///
/// let key = ThreadKey::generate();
/// assert!(key.can_read());
/// let text = key.to_multibase();
/// assert_eq!(text.parse::<ThreadKey>()?, key);
///
/// let follower = key.to_follower();
/// assert!(!follower.can_read());
/// assert_eq!(follower.service(), key.service());
/// # Ok::<(), threads_crypto::KeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ThreadKey {
    service: ServiceKey,
    /// The service keys of later epochs, oldest first (a key ring; empty until the thread's
    /// first service-key rotation).
    epochs: Vec<ServiceKey>,
    read: Option<ReadKey>,
}

/// The most service-key epochs a [`ThreadKey`] holds (each revocation of a member starts
/// one).
pub const MAX_EPOCHS: usize = 4096;

/// The first byte of a [`ThreadKey`]'s ring form.
const RING_TAG: u8 = 0x02;

impl ThreadKey {
    /// A new key with fresh service and read keys.
    pub fn generate() -> ThreadKey {
        ThreadKey::random(&mut rand::rng())
    }

    /// A new key with fresh service and read keys from `rng`.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> ThreadKey {
        let service = ServiceKey::random(rng);
        let read = ReadKey::random(rng);
        ThreadKey {
            service,
            epochs: Vec::new(),
            read: Some(read),
        }
    }

    /// The key of a member that reads: both keys.
    pub const fn new(service: ServiceKey, read: ReadKey) -> ThreadKey {
        ThreadKey {
            service,
            epochs: Vec::new(),
            read: Some(read),
        }
    }

    /// The key of a follower: the service key only.
    pub const fn follower(service: ServiceKey) -> ThreadKey {
        ThreadKey {
            service,
            epochs: Vec::new(),
            read: None,
        }
    }

    /// The same thread's key without the read key (the ring of service keys kept).
    pub fn to_follower(&self) -> ThreadKey {
        ThreadKey {
            service: self.service.clone(),
            epochs: self.epochs.clone(),
            read: None,
        }
    }

    /// The thread's first service key: the key that seals every record of the thread, for
    /// good (a record's identity is its sealed bytes).
    pub const fn service(&self) -> &ServiceKey {
        &self.service
    }

    /// The service key of the newest epoch this key knows (the first one until a rotation):
    /// the key sync proofs, the announcement topic and the ACL key are made with.
    pub fn epoch_service(&self) -> &ServiceKey {
        self.epochs.last().unwrap_or(&self.service)
    }

    /// Every service key of the ring, the first one first, then each epoch's, oldest first.
    pub fn services(&self) -> impl DoubleEndedIterator<Item = &ServiceKey> {
        std::iter::once(&self.service).chain(&self.epochs)
    }

    /// The service keys of the epochs after the first, oldest first.
    pub fn epochs(&self) -> &[ServiceKey] {
        &self.epochs
    }

    /// Adds `service` as the newest epoch's service key. Returns whether it was new (a key
    /// the ring holds already, and a ring at [`MAX_EPOCHS`], are left as they are).
    pub fn add_epoch(&mut self, service: ServiceKey) -> bool {
        if self.services().any(|known| *known == service) || self.epochs.len() >= MAX_EPOCHS {
            return false;
        }
        self.epochs.push(service);
        true
    }

    /// The key with the same first service key and read key, and `epochs` as its ring
    /// (oldest first; the first service key and repeats left out, at most
    /// [`MAX_EPOCHS`]).
    #[must_use]
    pub fn with_epochs<'a>(&self, epochs: impl IntoIterator<Item = &'a ServiceKey>) -> ThreadKey {
        let mut out = ThreadKey {
            service: self.service.clone(),
            epochs: Vec::new(),
            read: self.read.clone(),
        };
        for service in epochs {
            out.add_epoch(service.clone());
        }
        out
    }

    /// This key with what `other` adds to it: epochs it lacks (appended in `other`'s
    /// order) and the read key if it has none. `None` if `other` is a key of another
    /// thread (another first service key): a thread's key is never replaced.
    #[must_use]
    pub fn merged(&self, other: &ThreadKey) -> Option<ThreadKey> {
        if self.service != other.service {
            return None;
        }
        let mut out = self.clone();
        for service in &other.epochs {
            out.add_epoch(service.clone());
        }
        if out.read.is_none() {
            out.read.clone_from(&other.read);
        }
        Some(out)
    }

    /// The key with the first service key and `read` (the epochs kept).
    #[must_use]
    pub fn with_read(&self, read: ReadKey) -> ThreadKey {
        ThreadKey {
            service: self.service.clone(),
            epochs: self.epochs.clone(),
            read: Some(read),
        }
    }

    /// The read key, if this member may read.
    pub const fn read(&self) -> Option<&ReadKey> {
        self.read.as_ref()
    }

    /// Whether this key includes the read key.
    pub const fn can_read(&self) -> bool {
        self.read.is_some()
    }

    /// The byte form: 64 bytes, or 32 for a follower; a key with epochs takes the ring form
    /// `02 ‖ flags (bit 0: read key) ‖ epochs (u16 big-endian) ‖ service (32) ‖ epochs × 32
    /// ‖ [read (32)]` (docs/FORMAT.md). Zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64 + 3 + 32 * self.epochs.len()));
        if !self.epochs.is_empty() {
            out.push(RING_TAG);
            out.push(u8::from(self.read.is_some()));
            let count = u16::try_from(self.epochs.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(self.service.as_bytes());
        for service in &self.epochs {
            out.extend_from_slice(service.as_bytes());
        }
        if let Some(read) = &self.read {
            out.extend_from_slice(read.as_bytes());
        }
        out
    }

    /// Whether the byte form is the ring form (the key has epochs).
    pub fn is_ring(&self) -> bool {
        !self.epochs.is_empty()
    }

    /// Parses the byte form (32 or 64 bytes, or the ring form).
    pub fn from_bytes(bytes: &[u8]) -> Result<ThreadKey, KeyError> {
        match bytes.len() {
            32 => Ok(ThreadKey::follower(ServiceKey::from_slice(bytes)?)),
            64 => Ok(ThreadKey::new(
                ServiceKey::from_slice(&bytes[..32])?,
                ReadKey::from_slice(&bytes[32..])?,
            )),
            _ if bytes.first() == Some(&RING_TAG) && bytes.len() >= 4 => {
                let read = match bytes[1] {
                    0 => false,
                    1 => true,
                    flags => return Err(KeyError::Ring(format!("unknown flags {flags}"))),
                };
                let count = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
                let expected = 4 + 32 * (1 + count) + if read { 32 } else { 0 };
                if count == 0 || count > MAX_EPOCHS || bytes.len() != expected {
                    return Err(KeyError::WrongLength {
                        expected,
                        actual: bytes.len(),
                    });
                }
                let mut keys = bytes[4..].chunks_exact(32);
                let mut next = || keys.next().unwrap_or(&[]);
                let service = ServiceKey::from_slice(next())?;
                let mut ring = ThreadKey::follower(service);
                for _ in 0..count {
                    if !ring.add_epoch(ServiceKey::from_slice(next())?) {
                        return Err(KeyError::Ring("a service key repeats".into()));
                    }
                }
                if read {
                    ring.read = Some(ReadKey::from_slice(next())?);
                }
                Ok(ring)
            }
            actual => Err(KeyError::WrongLength {
                expected: 64,
                actual,
            }),
        }
    }

    /// The text form: the bytes in multibase (base32 lower-case, prefix `b`).
    pub fn to_multibase(&self) -> Zeroizing<String> {
        Zeroizing::new(multibase::encode(
            multibase::Base::Base32Lower,
            &*self.to_bytes(),
        ))
    }
}

impl FromStr for ThreadKey {
    type Err = KeyError;

    /// Parses the text form in any multibase.
    fn from_str(text: &str) -> Result<ThreadKey, KeyError> {
        let (_, bytes) = multibase::decode(text).map_err(|e| KeyError::Text(e.to_string()))?;
        let bytes = Zeroizing::new(bytes);
        ThreadKey::from_bytes(&bytes)
    }
}

impl fmt::Debug for ThreadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadKey")
            .field("service", &"<secret>")
            .field("epochs", &self.epochs.len())
            .field("read", &self.read.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_hides_secrets() {
        let key = ThreadKey::new(
            ServiceKey::from_bytes([0xaa; 32]),
            ReadKey::from_bytes([0xbb; 32]),
        );
        let text = format!(
            "{key:?} {:?} {:?}",
            key.service(),
            ContentKey::from_bytes([0xcc; 32])
        );
        assert!(
            !text.contains("aa") && !text.contains("bb") && !text.contains("cc"),
            "{text}"
        );
        assert!(!text.contains("170"), "{text}");
    }

    /// The ring form, byte by byte (docs/FORMAT.md "ThreadKey").
    #[test]
    fn golden_ring_form() {
        let mut key = ThreadKey::new(
            ServiceKey::from_bytes([0x11; 32]),
            ReadKey::from_bytes([0x22; 32]),
        );
        assert!(key.add_epoch(ServiceKey::from_bytes([0x33; 32])));
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let expected = format!(
            "02010001{}{}{}",
            "11".repeat(32),
            "33".repeat(32),
            "22".repeat(32)
        );
        assert_eq!(hex(&key.to_bytes()), expected);
        let follower = format!("02000001{}{}", "11".repeat(32), "33".repeat(32));
        assert_eq!(hex(&key.to_follower().to_bytes()), follower);
        assert_eq!(
            &*key.to_multibase(),
            &multibase::encode(multibase::Base::Base32Lower, &*key.to_bytes())
        );
    }

    #[test]
    fn key_rings() {
        let first = ServiceKey::from_bytes([1; 32]);
        let mut key = ThreadKey::new(first.clone(), ReadKey::from_bytes([2; 32]));
        assert_eq!(key.epoch_service(), &first);
        assert!(!key.is_ring());
        assert!(
            !key.add_epoch(first.clone()),
            "the first key is no new epoch"
        );
        assert!(key.add_epoch(ServiceKey::from_bytes([3; 32])));
        assert!(key.add_epoch(ServiceKey::from_bytes([4; 32])));
        assert!(!key.add_epoch(ServiceKey::from_bytes([3; 32])));
        assert_eq!(key.service(), &first);
        assert_eq!(key.epoch_service(), &ServiceKey::from_bytes([4; 32]));
        assert_eq!(key.services().count(), 3);
        let bytes = key.to_bytes();
        assert_eq!(bytes.len(), 4 + 32 * 3 + 32);
        assert_eq!(&bytes[..4], &[0x02, 1, 0, 2]);
        assert_eq!(ThreadKey::from_bytes(&bytes), Ok(key.clone()));
        let follower = key.to_follower();
        assert_eq!(follower.epochs().len(), 2);
        assert_eq!(
            ThreadKey::from_bytes(&follower.to_bytes()),
            Ok(follower.clone())
        );
        assert_eq!(key.to_multibase().parse::<ThreadKey>(), Ok(key.clone()));
        // Merging adds epochs and the read key, and never takes another thread's key.
        let plain = ThreadKey::follower(first.clone());
        assert_eq!(
            plain.merged(&key),
            Some(
                key.clone()
                    .to_follower()
                    .with_read(ReadKey::from_bytes([2; 32]))
            )
        );
        assert_eq!(key.merged(&plain), Some(key.clone()));
        assert_eq!(key.merged(&ThreadKey::generate()), None);
        // A ring in another order: the first key and repeats are left out.
        let reordered = key.with_epochs([
            &ServiceKey::from_bytes([4; 32]),
            &first,
            &ServiceKey::from_bytes([3; 32]),
            &ServiceKey::from_bytes([4; 32]),
        ]);
        assert_eq!(reordered.epoch_service(), &ServiceKey::from_bytes([3; 32]));
        assert_eq!(reordered.epochs().len(), 2);
        assert_eq!(reordered.read(), key.read());
        // Malformed rings: unknown flags, a count that does not match, a repeated key, no
        // epoch at all.
        let mut flags = bytes.to_vec();
        flags[1] = 2;
        assert!(matches!(
            ThreadKey::from_bytes(&flags),
            Err(KeyError::Ring(_))
        ));
        assert!(matches!(
            ThreadKey::from_bytes(&bytes[..bytes.len() - 1]),
            Err(KeyError::WrongLength { .. })
        ));
        let mut repeated = bytes.to_vec();
        repeated[4 + 64..4 + 96].copy_from_slice(&[3; 32]);
        assert!(matches!(
            ThreadKey::from_bytes(&repeated),
            Err(KeyError::Ring(_))
        ));
        let mut empty = vec![0x02, 0, 0, 0];
        empty.extend_from_slice(&[1; 32]);
        assert!(matches!(
            ThreadKey::from_bytes(&empty),
            Err(KeyError::WrongLength { .. })
        ));
    }

    #[test]
    fn malformed_thread_keys() {
        for len in [0, 31, 33, 63, 65, 96] {
            assert!(matches!(
                ThreadKey::from_bytes(&vec![1; len]),
                Err(KeyError::WrongLength { actual, .. }) if actual == len
            ));
        }
        assert!(matches!("".parse::<ThreadKey>(), Err(KeyError::Text(_))));
        assert!(matches!("b!!".parse::<ThreadKey>(), Err(KeyError::Text(_))));
        assert!(ServiceKey::from_slice(&[0; 16]).is_err());
    }

    #[test]
    fn aead_rejects_every_change() {
        let key = ReadKey::from_bytes([5; 32]);
        let sealed = key.seal(b"thread/log/header", b"the content key");
        assert_eq!(sealed.len(), 15 + aead::OVERHEAD);
        assert_eq!(
            key.open(b"thread/log/header", &sealed).as_deref(),
            Ok(&b"the content key"[..])
        );
        assert_eq!(
            key.open(b"thread/log/body", &sealed),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            ReadKey::from_bytes([6; 32]).open(b"thread/log/header", &sealed),
            Err(AeadError::Authentication)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert_eq!(
                key.open(b"thread/log/header", &bad),
                Err(AeadError::Authentication),
                "byte {i}"
            );
        }
        for len in 0..aead::OVERHEAD {
            assert_eq!(key.open(b"", &sealed[..len]), Err(AeadError::TooShort(len)));
        }
        assert_eq!(
            key.open(b"thread/log/header", &sealed[..sealed.len() - 1]),
            Err(AeadError::Authentication)
        );
    }

    #[test]
    fn kdf_params_round_trip_and_bad_params_are_typed() {
        let params = KdfParams::new(2048, 2, 1);
        assert_eq!(KdfParams::from_bytes(&params.to_bytes()), Ok(params));
        assert!(KdfParams::from_bytes(&[0; 11]).is_err());
        // Too little memory for argon2 is an error, not a panic.
        assert!(matches!(
            StorageKey::from_passphrase(b"p", &[0; 16], KdfParams::new(1, 1, 1)),
            Err(KeyError::Kdf(_))
        ));
        assert!(matches!(
            StorageKey::from_passphrase(b"p", &[0; 16], KdfParams::new(1024, 0, 1)),
            Err(KeyError::Kdf(_))
        ));
        // The salt matters.
        let a = StorageKey::from_passphrase(b"p", &[0; 16], KdfParams::new(1024, 1, 1))
            .expect("derive");
        let b = StorageKey::from_passphrase(b"p", &[1; 16], KdfParams::new(1024, 1, 1))
            .expect("derive");
        assert_ne!(a, b);
    }

    #[test]
    fn nonces_are_fresh() {
        let key = ContentKey::generate();
        assert_ne!(key.seal(b"", b"same"), key.seal(b"", b"same"));
    }

    proptest! {
        #[test]
        fn thread_key_round_trips(service in any::<[u8; 32]>(), read in any::<Option<[u8; 32]>>()) {
            let key = match read {
                Some(read) => ThreadKey::new(ServiceKey::from_bytes(service), ReadKey::from_bytes(read)),
                None => ThreadKey::follower(ServiceKey::from_bytes(service)),
            };
            prop_assert_eq!(ThreadKey::from_bytes(&key.to_bytes()), Ok(key.clone()));
            let text = key.to_multibase();
            prop_assert!(text.starts_with('b'));
            prop_assert_eq!(text.parse::<ThreadKey>(), Ok(key));
        }

        #[test]
        fn aead_round_trips(key in any::<[u8; 32]>(), ad in proptest::collection::vec(any::<u8>(), 0..64), plaintext in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let key = ServiceKey::from_bytes(key);
            let sealed = key.seal(&ad, &plaintext);
            prop_assert_eq!(sealed.len(), plaintext.len() + aead::OVERHEAD);
            prop_assert_eq!(key.open(&ad, &sealed), Ok(plaintext));
        }

        #[test]
        fn aead_open_never_panics(key in any::<[u8; 32]>(), bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            prop_assert!(ServiceKey::from_bytes(key).open(b"", &bytes).is_err());
        }
    }
}
