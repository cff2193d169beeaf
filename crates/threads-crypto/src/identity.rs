//! Identity keys: the ed25519 key pair that signs a log, and its public half.
//!
//! The same key is a libp2p identity: [`Identity::to_libp2p`] and [`Identity::from_libp2p`]
//! convert without changing a bit, so a log's [`LogId`] is the `PeerId` libp2p computes for
//! the key. Single signatures are verified strictly (`verify_strict`: no small-order keys or
//! `R` points, canonical `s`), so no signature can be malleated into a second valid one.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use threads_id::{LogId, LogIdError};
use zeroize::Zeroizing;

/// Why bytes or text are not a key, or a key pair cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The input has the wrong length for this kind of key.
    #[error("key is {actual} bytes, expected {expected}")]
    WrongLength {
        /// The length the key must have (or the first of the accepted lengths).
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// The bytes are not a valid ed25519 public key, or it is a weak (small-order) one.
    #[error("invalid ed25519 public key")]
    InvalidPublicKey,
    /// A libp2p key pair is not ed25519.
    #[error("libp2p key pair is not ed25519")]
    NotEd25519,
    /// The passphrase key derivation failed (parameters out of range).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The text is not a valid multibase string or peer id.
    #[error("invalid key text: {0}")]
    Text(String),
    /// The ring form of a thread key is malformed (unknown flags, a repeated key).
    #[error("malformed key ring: {0}")]
    Ring(String),
}

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct SignatureError;

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// The length of a signature in bytes.
    pub const LEN: usize = 64;

    /// The signature with these bytes (any 64 bytes; validity is checked on verify).
    pub const fn from_bytes(bytes: [u8; 64]) -> Signature {
        Signature(bytes)
    }

    /// The signature in a slice, which must be 64 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Signature, KeyError> {
        bytes
            .try_into()
            .map(Signature)
            .map_err(|_| KeyError::WrongLength {
                expected: 64,
                actual: bytes.len(),
            })
    }

    /// The signature's bytes.
    pub const fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// The signature's bytes, borrowed.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "..)")
    }
}

/// The public half of an identity: verifies signatures, names a log.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    // Kept as bytes for ordering and hashing; `key` is their decompressed point.
    bytes: [u8; 32],
    key: VerifyingKey,
}

impl PublicKey {
    /// The length of a public key in bytes.
    pub const LEN: usize = 32;

    /// Parses a 32-byte ed25519 public key; weak (small-order) keys are rejected.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(KeyError::InvalidPublicKey);
        }
        Ok(PublicKey { bytes: *bytes, key })
    }

    /// Parses a public key from a slice, which must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let array: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 32,
            actual: bytes.len(),
        })?;
        PublicKey::from_bytes(array)
    }

    /// The public key that verifies the records of `log`.
    pub fn from_log_id(log: &LogId) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(log.ed25519_bytes())
    }

    /// The key's 32 bytes.
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The key's 32 bytes, borrowed.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The id of the log this key signs.
    pub fn log_id(&self) -> LogId {
        LogId::from_ed25519_bytes(&self.bytes)
            .unwrap_or_else(|_| unreachable!("a validated ed25519 key is a valid log id"))
    }

    /// Checks `signature` over `message`, strictly.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(message, &signature)
            .map_err(|_| SignatureError)
    }

    /// The Montgomery form of the key, for x25519 agreement with its owner.
    pub(crate) fn to_x25519(self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(self.key.to_montgomery().to_bytes())
    }

    pub(crate) const fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &PublicKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &PublicKey) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl fmt::Display for PublicKey {
    /// A public key is written as the peer id of the log it signs (`12D3KooW...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.log_id(), f)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.log_id())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<PublicKey, KeyError> {
        let log: LogId = text
            .parse()
            .map_err(|e: LogIdError| KeyError::Text(e.to_string()))?;
        PublicKey::from_log_id(&log)
    }
}

impl TryFrom<&LogId> for PublicKey {
    type Error = KeyError;

    fn try_from(log: &LogId) -> Result<PublicKey, KeyError> {
        PublicKey::from_log_id(log)
    }
}

/// The y coordinates (sign bit cleared) of the eight points of small order, computed once
/// from a point of order 8.
static SMALL_ORDER_Y: std::sync::LazyLock<Vec<[u8; 32]>> = std::sync::LazyLock::new(|| {
    // A point of order 8 (the encoding listed by libsodium and others).
    let mut bytes = [0u8; 32];
    hex_into(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        &mut bytes,
    );
    let Some(t) = curve25519_dalek::edwards::CompressedEdwardsY(bytes).decompress() else {
        return Vec::new();
    };
    let mut point = curve25519_dalek::edwards::EdwardsPoint::default();
    let mut out = Vec::with_capacity(8);
    for _ in 0..8 {
        let mut y = point.compress().to_bytes();
        y[31] &= 0x7f;
        out.push(y);
        point += t;
    }
    out
});

fn hex_into(hex: &str, out: &mut [u8; 32]) {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
}

/// Whether `bytes` may be a signature's R: a canonical encoding (y below the field's
/// prime) of a point not of small order. Cheap: comparisons only, no decompression.
fn canonical_point(bytes: &[u8]) -> bool {
    let Ok(mut y) = <[u8; 32]>::try_from(bytes) else {
        return false;
    };
    y[31] &= 0x7f;
    // y >= p = 2^255 - 19: every byte 0xff but the first >= 0xed and the last 0x7f.
    let non_canonical = y[0] >= 0xed && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
    !non_canonical && !SMALL_ORDER_Y.contains(&y)
}

/// Verifies many signatures at once (ed25519 batch verification), all or nothing.
///
/// Returns `Ok` only if every signature is valid. On `Err`, verify one by one with
/// [`PublicKey::verify`] to find the bad ones. The inputs must have equal lengths.
pub fn verify_batch(
    messages: &[&[u8]],
    signatures: &[Signature],
    keys: &[PublicKey],
) -> Result<(), SignatureError> {
    if messages.len() != signatures.len() || messages.len() != keys.len() {
        return Err(SignatureError);
    }
    // Batch verification is cofactorless: a small-order or non-canonically encoded R, or
    // a weak key, could pass it where strict single verification refuses. Refused here
    // first, so the batch accepts only what single verification accepts.
    if !signatures.iter().all(|s| canonical_point(&s.0[..32])) {
        return Err(SignatureError);
    }
    if keys.iter().any(|k| k.verifying_key().is_weak()) {
        return Err(SignatureError);
    }
    let signatures: Vec<ed25519_dalek::Signature> = signatures
        .iter()
        .map(|s| ed25519_dalek::Signature::from_bytes(&s.0))
        .collect();
    let keys: Vec<VerifyingKey> = keys.iter().map(|k| *k.verifying_key()).collect();
    ed25519_dalek::verify_batch(messages, &signatures, &keys).map_err(|_| SignatureError)
}

/// An identity: an ed25519 key pair. Signs log records and opens key sets sealed to it.
///
/// The secret is zeroized on drop and never printed.
///
/// ```
/// use threads_crypto::Identity;
///
/// let me = Identity::generate();
/// let signature = me.sign(b"hello");
/// assert!(me.public().verify(b"hello", &signature).is_ok());
/// assert!(me.public().verify(b"hullo", &signature).is_err());
/// // The same key is a libp2p identity with the same peer id.
/// assert_eq!(me.to_libp2p().public().to_peer_id(), me.log_id().peer_id());
/// ```
pub struct Identity {
    key: SigningKey,
    // The signing scalar and nonce prefix, derived from the seed once rather than on every
    // signature (saves a SHA-512 and a scalar reduction per record).
    expanded: ExpandedSecretKey,
    // The same key in AWS-LC, which signs (the same bytes, in about half the time). Shared:
    // a clone does not derive it again.
    #[cfg(feature = "aws-lc")]
    signer: std::sync::Arc<aws_lc_rs::signature::Ed25519KeyPair>,
    public: PublicKey,
    // The log id, derived once: deriving it decompresses the public key's point, which
    // costs about as much as a third of a signature.
    log: LogId,
}

impl Clone for Identity {
    // Field by field: deriving the public key again from the secret would cost a scalar
    // multiplication (a group commit clones the identity for every group it writes).
    fn clone(&self) -> Identity {
        Identity {
            key: self.key.clone(),
            expanded: ExpandedSecretKey {
                scalar: self.expanded.scalar,
                hash_prefix: self.expanded.hash_prefix,
            },
            #[cfg(feature = "aws-lc")]
            signer: std::sync::Arc::clone(&self.signer),
            public: self.public,
            log: self.log,
        }
    }
}

impl Identity {
    /// The length of a secret key in bytes.
    pub const SECRET_LEN: usize = 32;

    /// A new identity from the operating system's randomness.
    pub fn generate() -> Identity {
        Identity::random(&mut rand::rng())
    }

    /// A new identity from `rng` (deterministic in tests).
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Identity {
        Identity::from_key(SigningKey::generate(rng))
    }

    /// The identity with this 32-byte secret key (the ed25519 seed).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Identity {
        Identity::from_key(SigningKey::from_bytes(secret))
    }

    /// The identity with the secret key in `secret`, which must be 32 bytes long.
    pub fn from_secret_slice(secret: &[u8]) -> Result<Identity, KeyError> {
        let array: &[u8; 32] = secret.try_into().map_err(|_| KeyError::WrongLength {
            expected: 32,
            actual: secret.len(),
        })?;
        Ok(Identity::from_secret_bytes(array))
    }

    fn from_key(key: SigningKey) -> Identity {
        let bytes = key.verifying_key().to_bytes();
        let public = PublicKey {
            bytes,
            key: key.verifying_key(),
        };
        let expanded = ExpandedSecretKey::from(key.as_bytes());
        #[cfg(feature = "aws-lc")]
        let signer = std::sync::Arc::new(
            aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(key.as_bytes())
                .unwrap_or_else(|_| unreachable!("any 32 bytes are an ed25519 seed")),
        );
        Identity {
            key,
            expanded,
            #[cfg(feature = "aws-lc")]
            signer,
            log: public.log_id(),
            public,
        }
    }

    /// The 32-byte secret key (the ed25519 seed), zeroized when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public key.
    pub const fn public(&self) -> PublicKey {
        self.public
    }

    /// The id of the log this identity signs.
    pub const fn log_id(&self) -> LogId {
        self.log
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        #[cfg(feature = "aws-lc")]
        {
            let signature = self.signer.sign(message);
            if let Ok(bytes) = <[u8; 64]>::try_from(signature.as_ref()) {
                return Signature(bytes);
            }
        }
        self.sign_in_rust(message)
    }

    /// [`Identity::sign`] by the pure-Rust signer (the one without the `aws-lc` feature).
    fn sign_in_rust(&self, message: &[u8]) -> Signature {
        Signature(raw_sign::<sha2::Sha512>(&self.expanded, message, &self.public.key).to_bytes())
    }

    /// The same key as a libp2p key pair.
    pub fn to_libp2p(&self) -> libp2p_identity::Keypair {
        let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes(self.key.to_bytes())
            .unwrap_or_else(|_| unreachable!("any 32 bytes are an ed25519 secret"));
        libp2p_identity::Keypair::from(libp2p_identity::ed25519::Keypair::from(secret))
    }

    /// The identity of a libp2p key pair, which must be ed25519.
    pub fn from_libp2p(keypair: &libp2p_identity::Keypair) -> Result<Identity, KeyError> {
        let ed = keypair
            .clone()
            .try_into_ed25519()
            .map_err(|_| KeyError::NotEd25519)?;
        let secret = Zeroizing::new(ed.secret().as_ref().to_vec());
        Identity::from_secret_slice(&secret)
    }

    /// The x25519 secret that matches [`PublicKey::to_x25519`] of this identity.
    pub(crate) fn to_x25519(&self) -> x25519_dalek::StaticSecret {
        let scalar = Zeroizing::new(self.key.to_scalar_bytes());
        x25519_dalek::StaticSecret::from(*scalar)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc8032_vector() {
        // RFC 8032, section 7.1, test 2 (one-byte message 0x72).
        let secret: [u8; 32] =
            hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
                .expect("hex")
                .try_into()
                .expect("32");
        let me = Identity::from_secret_bytes(&secret);
        assert_eq!(
            hex::encode(me.public().to_bytes()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        assert_eq!(
            hex::encode(me.sign(&[0x72]).to_bytes()),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
    }

    #[test]
    fn libp2p_interop() {
        let me = Identity::from_secret_bytes(&[9; 32]);
        let p2p = me.to_libp2p();
        assert_eq!(p2p.public().to_peer_id(), me.log_id().peer_id());
        // A signature made by libp2p verifies with our key, and the other way round.
        let theirs = p2p.sign(b"msg").expect("ed25519 signs");
        let theirs = Signature::from_slice(&theirs).expect("64 bytes");
        assert_eq!(theirs, me.sign(b"msg"));
        assert!(me.public().verify(b"msg", &theirs).is_ok());
        assert!(p2p.public().verify(b"msg", me.sign(b"msg").as_bytes()));
        let back = Identity::from_libp2p(&p2p).expect("ed25519");
        assert_eq!(*back.secret_bytes(), [9; 32]);
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let me = Identity::from_secret_bytes(&[0xab; 32]);
        let text = format!("{me:?}");
        assert!(!text.contains("abab"), "{text}");
        assert!(text.contains("12D3KooW"));
    }

    #[test]
    fn malformed_keys() {
        assert_eq!(
            PublicKey::from_slice(&[0; 31]),
            Err(KeyError::WrongLength {
                expected: 32,
                actual: 31
            })
        );
        // The identity point is a small-order (weak) key.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert_eq!(
            PublicKey::from_bytes(&identity_point),
            Err(KeyError::InvalidPublicKey)
        );
        assert!(Identity::from_secret_slice(&[0; 33]).is_err());
        assert!(Signature::from_slice(&[0; 63]).is_err());
        assert!(matches!(
            "not a key".parse::<PublicKey>(),
            Err(KeyError::Text(_))
        ));
    }

    #[test]
    fn batch_verification() {
        let ids: Vec<Identity> = (0..8u8)
            .map(|i| Identity::from_secret_bytes(&[i; 32]))
            .collect();
        let messages: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let mut sigs: Vec<Signature> = ids.iter().zip(&refs).map(|(id, m)| id.sign(m)).collect();
        let keys: Vec<PublicKey> = ids.iter().map(Identity::public).collect();
        assert_eq!(verify_batch(&refs, &sigs, &keys), Ok(()));
        assert_eq!(verify_batch(&refs[..7], &sigs, &keys), Err(SignatureError));
        sigs[3].0[5] ^= 1;
        assert_eq!(verify_batch(&refs, &sigs, &keys), Err(SignatureError));
    }

    #[test]
    fn small_order_and_non_canonical_r_are_refused_before_the_batch() {
        // The identity (y = 1), the point of order 2 (y = -1), and y = p + 1 (a
        // non-canonical encoding of the identity).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        for r in [identity, order_two, non_canonical] {
            assert!(!canonical_point(&r), "{r:?}");
        }
        // The table holds the eight points of small order, each one's y once.
        assert_eq!(SMALL_ORDER_Y.len(), 8);
        for y in SMALL_ORDER_Y.iter() {
            let point = curve25519_dalek::edwards::CompressedEdwardsY(*y)
                .decompress()
                .expect("a point");
            assert!(point.is_small_order());
            assert!(!canonical_point(y));
        }
        let id = Identity::from_secret_bytes(&[3; 32]);
        let good = id.sign(b"m");
        assert!(canonical_point(&good.0[..32]));
        // A batch holding a signature with such an R is refused, whatever else it holds.
        for r in [identity, order_two, non_canonical] {
            let mut bad = good;
            bad.0[..32].copy_from_slice(&r);
            let messages: [&[u8]; 2] = [b"m", b"m"];
            assert_eq!(
                verify_batch(&messages, &[good, bad], &[id.public(), id.public()]),
                Err(SignatureError)
            );
            assert!(
                id.public().verify(b"m", &bad).is_err(),
                "strict refuses it too"
            );
        }
    }

    proptest! {
        #[test]
        fn sign_verify(secret in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..256), flip in any::<prop::sample::Index>()) {
            let me = Identity::from_secret_bytes(&secret);
            let sig = me.sign(&message);
            prop_assert!(me.public().verify(&message, &sig).is_ok());
            let mut bad = sig.to_bytes();
            let i = flip.index(64);
            bad[i] ^= 1;
            prop_assert_eq!(me.public().verify(&message, &Signature::from_bytes(bad)), Err(SignatureError));
            let other = Identity::from_secret_bytes(&[secret[0].wrapping_add(1); 32]);
            prop_assert!(other.public().verify(&message, &sig).is_err() || other.public() == me.public());
        }

        #[test]
        fn public_key_round_trips(secret in any::<[u8; 32]>()) {
            let public = Identity::from_secret_bytes(&secret).public();
            prop_assert_eq!(PublicKey::from_bytes(&public.to_bytes()), Ok(public));
            prop_assert_eq!(public.to_string().parse::<PublicKey>(), Ok(public));
            prop_assert_eq!(PublicKey::from_log_id(&public.log_id()), Ok(public));
        }

        /// A clone (copied field by field, not derived again) is the same identity: the
        /// same public key and log id, and the same signatures.
        #[test]
        fn a_clone_is_the_same_identity(secret in any::<[u8; 32]>(), message in any::<Vec<u8>>()) {
            let identity = Identity::from_secret_bytes(&secret);
            let clone = identity.clone();
            prop_assert_eq!(clone.public(), identity.public());
            prop_assert_eq!(clone.log_id(), identity.public().log_id());
            prop_assert_eq!(clone.log_id(), identity.log_id());
            prop_assert_eq!(clone.sign(&message), identity.sign(&message));
            prop_assert_eq!(clone.sign(&message), Identity::from_secret_bytes(&secret).sign(&message));
            prop_assert!(identity.public().verify(&message, &clone.sign(&message)).is_ok());
        }

        /// Both signers (AWS-LC's, with the default `aws-lc` feature, and the pure-Rust
        /// one) give the same bytes: Ed25519 signatures are deterministic, so which one a
        /// peer was built with changes nothing in its logs.
        #[test]
        fn both_signers_give_the_same_signature(secret in any::<[u8; 32]>(), message in any::<Vec<u8>>()) {
            let identity = Identity::from_secret_bytes(&secret);
            let signature = identity.sign(&message);
            prop_assert_eq!(signature, identity.sign_in_rust(&message));
            let dalek = ed25519_dalek::Signer::sign(&SigningKey::from_bytes(&secret), &message);
            prop_assert_eq!(signature.to_bytes(), dalek.to_bytes());
            prop_assert!(identity.public().verify(&message, &signature).is_ok());
        }
    }
}
