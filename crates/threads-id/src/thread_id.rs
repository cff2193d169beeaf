//! `ThreadId`: the identifier of a thread (DESIGN section 3, docs/FORMAT.md).
//!
//! Bytes: `uvarint(version = 1) ‖ uvarint(variant) ‖ 32 random bytes`. Text: multibase,
//! written as base32 lower-case (prefix `b`), read in any multibase. This is the layout of
//! go-threads, so its ids parse here and ours parse there.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;

use crate::varint::{self, VarintError};

/// The only version of the thread id layout.
pub const THREAD_ID_VERSION: u64 = 1;

/// What kind of thread an id names. The variant is part of the id: it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Variant {
    /// A thread without access control: every holder of the read key reads, every member
    /// writes (code `0x55`).
    Raw,
    /// A thread whose members and roles are governed by an access-control list (code `0x70`).
    AccessControlled,
}

impl Variant {
    /// The variant's code in the id bytes.
    pub const fn code(self) -> u64 {
        match self {
            Variant::Raw => 0x55,
            Variant::AccessControlled => 0x70,
        }
    }

    /// The variant with this code, if it is one we know.
    pub const fn from_code(code: u64) -> Option<Variant> {
        match code {
            0x55 => Some(Variant::Raw),
            0x70 => Some(Variant::AccessControlled),
            _ => None,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Raw => "raw",
            Variant::AccessControlled => "access-controlled",
        })
    }
}

/// Why bytes or text are not a valid thread id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadIdError {
    /// The version or variant varint is malformed.
    #[error("malformed varint in thread id: {0}")]
    Varint(#[from] VarintError),
    /// The version is not 1.
    #[error("unsupported thread id version {0}")]
    UnsupportedVersion(u64),
    /// The variant code is not one we know.
    #[error("unknown thread id variant {0:#x}")]
    UnknownVariant(u64),
    /// The random part is not 32 bytes long.
    #[error("thread id random part is {0} bytes, expected 32")]
    WrongLength(usize),
    /// The text is not valid multibase.
    #[error("thread id is not valid multibase: {0}")]
    Multibase(String),
}

/// The identifier of a thread: a version, a [`Variant`] and 32 random bytes.
///
/// ```
/// use threads_id::{ThreadId, Variant};
///
/// let id: ThreadId = "bafkzjg7rdddl73kg4cq7iszrnyajs22ipbamersunjqkav52ajs36qq".parse()?;
/// assert_eq!(id.variant(), Variant::Raw);
/// assert_eq!(id.to_string(), "bafkzjg7rdddl73kg4cq7iszrnyajs22ipbamersunjqkav52ajs36qq");
///
/// let fresh = ThreadId::new(Variant::AccessControlled);
/// assert_eq!(ThreadId::from_bytes(&fresh.to_bytes())?, fresh);
/// # Ok::<(), threads_id::ThreadIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThreadId {
    variant: Variant,
    random: [u8; 32],
}

impl ThreadId {
    /// The length of the byte form of every id this crate produces or accepts.
    pub const LEN: usize = 34;

    /// A new id of `variant` with random bytes from the operating system.
    pub fn new(variant: Variant) -> ThreadId {
        ThreadId::random(variant, &mut rand::rng())
    }

    /// A new id of `variant` with random bytes from `rng` (deterministic in tests).
    pub fn random<R: CryptoRng + ?Sized>(variant: Variant, rng: &mut R) -> ThreadId {
        let mut random = [0u8; 32];
        rng.fill_bytes(&mut random);
        ThreadId { variant, random }
    }

    /// The id with the given variant and random part.
    pub const fn from_parts(variant: Variant, random: [u8; 32]) -> ThreadId {
        ThreadId { variant, random }
    }

    /// The layout version (always 1).
    pub const fn version(&self) -> u64 {
        THREAD_ID_VERSION
    }

    /// The thread's variant.
    pub const fn variant(&self) -> Variant {
        self.variant
    }

    /// The 32 random bytes.
    pub const fn random_bytes(&self) -> &[u8; 32] {
        &self.random
    }

    /// The byte form: `uvarint(1) ‖ uvarint(variant) ‖ random`.
    pub fn to_bytes(&self) -> [u8; ThreadId::LEN] {
        let mut out = [0u8; ThreadId::LEN];
        // Both known variant codes are below 0x80, so each varint is a single byte.
        out[0] = THREAD_ID_VERSION as u8;
        out[1] = self.variant.code() as u8;
        out[2..].copy_from_slice(&self.random);
        out
    }

    /// Parses the byte form, strictly: no bytes may be missing or left over.
    pub fn from_bytes(bytes: &[u8]) -> Result<ThreadId, ThreadIdError> {
        let (version, rest) = varint::decode(bytes)?;
        if version != THREAD_ID_VERSION {
            return Err(ThreadIdError::UnsupportedVersion(version));
        }
        let (code, rest) = varint::decode(rest)?;
        let variant = Variant::from_code(code).ok_or(ThreadIdError::UnknownVariant(code))?;
        let random: [u8; 32] = rest
            .try_into()
            .map_err(|_| ThreadIdError::WrongLength(rest.len()))?;
        Ok(ThreadId { variant, random })
    }

    /// Parses text in any multibase (the canonical form is base32 lower-case, prefix `b`).
    pub fn from_multibase(text: &str) -> Result<ThreadId, ThreadIdError> {
        let (_, bytes) =
            multibase::decode(text).map_err(|e| ThreadIdError::Multibase(e.to_string()))?;
        ThreadId::from_bytes(&bytes)
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase::encode(
            multibase::Base::Base32Lower,
            self.to_bytes(),
        ))
    }
}

impl fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThreadId({self})")
    }
}

impl FromStr for ThreadId {
    type Err = ThreadIdError;

    fn from_str(text: &str) -> Result<ThreadId, ThreadIdError> {
        ThreadId::from_multibase(text)
    }
}

impl TryFrom<&[u8]> for ThreadId {
    type Error = ThreadIdError;

    fn try_from(bytes: &[u8]) -> Result<ThreadId, ThreadIdError> {
        ThreadId::from_bytes(bytes)
    }
}

crate::serde_impl::string_or_bytes!(ThreadId, "a thread id");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Real ids made by go-threads, with their bytes (DESIGN section 3).
    const VECTORS: [(&str, &str); 2] = [
        (
            "bafkzjg7rdddl73kg4cq7iszrnyajs22ipbamersunjqkav52ajs36qq",
            "0155949bf118c6bfed46e0a1f44b316e00996b487840c246546a60a057ba0265bf42",
        ),
        (
            "bafk3kpkxv647wsmwu6k3nbutoigufkemhac2c2cbjzwhexfxxbn7lni",
            "0155b53d57afb9fb4996a795b68693720d42a88c3805a168414e6c725cb7b85bf5b5",
        ),
    ];

    #[test]
    fn go_threads_vectors() {
        for (text, hex_bytes) in VECTORS {
            let id: ThreadId = text.parse().expect("vector parses");
            assert_eq!(hex::encode(id.to_bytes()), hex_bytes);
            assert_eq!(id.to_string(), text);
            assert_eq!(id.version(), 1);
            assert_eq!(id.variant(), Variant::Raw);
            let bytes = hex::decode(hex_bytes).expect("hex");
            assert_eq!(ThreadId::from_bytes(&bytes), Ok(id));
        }
    }

    #[test]
    fn other_multibases_are_read() {
        let id: ThreadId = VECTORS[0].0.parse().expect("vector parses");
        for base in [
            multibase::Base::Base58Btc,
            multibase::Base::Base16Lower,
            multibase::Base::Base64,
        ] {
            let text = multibase::encode(base, id.to_bytes());
            assert_eq!(text.parse::<ThreadId>(), Ok(id));
        }
    }

    #[test]
    fn malformed_bytes() {
        let good = ThreadId::from_parts(Variant::Raw, [7; 32]).to_bytes();
        assert_eq!(
            ThreadId::from_bytes(&[]),
            Err(ThreadIdError::Varint(VarintError::Truncated))
        );
        assert_eq!(
            ThreadId::from_bytes(&good[..1]),
            Err(ThreadIdError::Varint(VarintError::Truncated))
        );
        assert_eq!(
            ThreadId::from_bytes(&good[..33]),
            Err(ThreadIdError::WrongLength(31))
        );
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(
            ThreadId::from_bytes(&long),
            Err(ThreadIdError::WrongLength(33))
        );
        let mut bad_version = good;
        bad_version[0] = 2;
        assert_eq!(
            ThreadId::from_bytes(&bad_version),
            Err(ThreadIdError::UnsupportedVersion(2))
        );
        let mut bad_variant = good;
        bad_variant[1] = 0x56;
        assert_eq!(
            ThreadId::from_bytes(&bad_variant),
            Err(ThreadIdError::UnknownVariant(0x56))
        );
        let mut not_minimal = vec![0x81, 0x00];
        not_minimal.extend_from_slice(&good[1..]);
        assert_eq!(
            ThreadId::from_bytes(&not_minimal),
            Err(ThreadIdError::Varint(VarintError::NotMinimal))
        );
    }

    #[test]
    fn malformed_text() {
        assert!(matches!(
            "".parse::<ThreadId>(),
            Err(ThreadIdError::Multibase(_))
        ));
        assert!(matches!(
            "zzz!".parse::<ThreadId>(),
            Err(ThreadIdError::Multibase(_))
        ));
        assert!(matches!(
            "b0000".parse::<ThreadId>(),
            Err(ThreadIdError::Multibase(_))
        ));
        // Valid multibase, but too short to be an id.
        let short = multibase::encode(multibase::Base::Base32Lower, [1, 0x55, 9]);
        assert_eq!(
            short.parse::<ThreadId>(),
            Err(ThreadIdError::WrongLength(1))
        );
    }

    #[test]
    fn serde_uses_the_text_form_for_humans() {
        let id: ThreadId = VECTORS[1].0.parse().expect("vector parses");
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, format!("\"{}\"", VECTORS[1].0));
        assert_eq!(
            serde_json::from_str::<ThreadId>(&json).expect("deserialize"),
            id
        );
        assert!(serde_json::from_str::<ThreadId>("\"bafyfoo\"").is_err());
    }

    fn any_variant() -> impl Strategy<Value = Variant> {
        prop_oneof![Just(Variant::Raw), Just(Variant::AccessControlled)]
    }

    proptest! {
        #[test]
        fn bytes_and_text_round_trip(variant in any_variant(), random in any::<[u8; 32]>()) {
            let id = ThreadId::from_parts(variant, random);
            prop_assert_eq!(ThreadId::from_bytes(&id.to_bytes()), Ok(id));
            let text = id.to_string();
            prop_assert!(text.starts_with('b'));
            prop_assert_eq!(text.parse::<ThreadId>(), Ok(id));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(id) = ThreadId::from_bytes(&bytes) {
                prop_assert_eq!(&id.to_bytes()[..], &bytes[..]);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            if let Ok(id) = text.parse::<ThreadId>() {
                prop_assert_eq!(ThreadId::from_bytes(&id.to_bytes()), Ok(id));
            }
        }
    }
}
