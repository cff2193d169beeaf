//! `LogId`: the identifier of a single-writer log, the libp2p `PeerId` of its ed25519 key.
//!
//! A log is named by the public key that signs it, so a record's author and its log are one
//! thing: whoever can verify a log can name it, and a `LogId` always yields the key that
//! verifies its records. Only ed25519 keys are accepted; their `PeerId` inlines the key
//! (identity multihash), so no lookup is ever needed.

use std::fmt;
use std::str::FromStr;

use libp2p_identity::{PeerId, PublicKey, ed25519};

/// Why bytes, text or a key do not make a log id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogIdError {
    /// The bytes or text are not a libp2p peer id.
    #[error("not a peer id: {0}")]
    PeerId(String),
    /// The peer id does not inline its public key (it is a hash of a larger key).
    #[error("peer id does not inline its public key")]
    NotInline,
    /// The key is not an ed25519 public key, or its bytes are not a valid curve point.
    #[error("not an ed25519 public key: {0}")]
    NotEd25519(String),
}

/// The identifier of a log: the `PeerId` (`12D3KooW...`) of the log's ed25519 key.
///
/// ```
/// use threads_id::LogId;
///
/// let key = libp2p_identity::Keypair::generate_ed25519().public();
/// let log = LogId::from_public_key(&key)?;
/// assert_eq!(log.peer_id(), key.to_peer_id());
/// assert!(log.to_string().starts_with("12D3KooW"));
/// assert_eq!(log.to_string().parse::<LogId>()?, log);
/// # Ok::<(), threads_id::LogIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    // Ordering and equality follow the key bytes; the peer id is derived from them.
    key: [u8; 32],
    peer: PeerId,
}

impl LogId {
    /// The log id of a libp2p public key, which must be ed25519.
    pub fn from_public_key(key: &PublicKey) -> Result<LogId, LogIdError> {
        let ed = key
            .clone()
            .try_into_ed25519()
            .map_err(|e| LogIdError::NotEd25519(e.to_string()))?;
        Ok(LogId {
            key: ed.to_bytes(),
            peer: key.to_peer_id(),
        })
    }

    /// The log id of a raw 32-byte ed25519 public key.
    pub fn from_ed25519_bytes(bytes: &[u8; 32]) -> Result<LogId, LogIdError> {
        let ed = ed25519::PublicKey::try_from_bytes(bytes)
            .map_err(|e| LogIdError::NotEd25519(e.to_string()))?;
        Ok(LogId {
            key: *bytes,
            peer: PublicKey::from(ed).to_peer_id(),
        })
    }

    /// The log id of a peer id, which must inline an ed25519 key.
    pub fn from_peer_id(peer: PeerId) -> Result<LogId, LogIdError> {
        let hash = peer.as_ref();
        // Multihash code 0 is the identity hash: the digest is the protobuf-encoded key.
        if hash.code() != 0 {
            return Err(LogIdError::NotInline);
        }
        let key = PublicKey::try_decode_protobuf(hash.digest())
            .map_err(|e| LogIdError::NotEd25519(e.to_string()))?;
        let log = LogId::from_public_key(&key)?;
        debug_assert_eq!(log.peer, peer);
        Ok(log)
    }

    /// Parses the byte form (the peer id's multihash bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<LogId, LogIdError> {
        let peer = PeerId::from_bytes(bytes).map_err(|e| LogIdError::PeerId(e.to_string()))?;
        let log = LogId::from_peer_id(peer)?;
        // A peer id whose multihash parsed but left bytes over, or encoded the key in a
        // non-canonical way, would give different bytes back: reject it.
        if log.peer.to_bytes() != bytes {
            return Err(LogIdError::PeerId("non-canonical encoding".to_owned()));
        }
        Ok(log)
    }

    /// The byte form: the peer id's multihash (38 bytes for an ed25519 key).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.peer.to_bytes()
    }

    /// The libp2p peer id.
    pub const fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The raw ed25519 public key that verifies this log's records.
    pub const fn ed25519_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The libp2p public key.
    pub fn public_key(&self) -> PublicKey {
        // The bytes were validated when this id was made.
        ed25519::PublicKey::try_from_bytes(&self.key)
            .map(PublicKey::from)
            .unwrap_or_else(|_| unreachable!("LogId holds a validated ed25519 key"))
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.peer, f)
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId({})", self.peer)
    }
}

impl FromStr for LogId {
    type Err = LogIdError;

    fn from_str(text: &str) -> Result<LogId, LogIdError> {
        let peer = PeerId::from_str(text).map_err(|e| LogIdError::PeerId(e.to_string()))?;
        LogId::from_peer_id(peer)
    }
}

impl TryFrom<PeerId> for LogId {
    type Error = LogIdError;

    fn try_from(peer: PeerId) -> Result<LogId, LogIdError> {
        LogId::from_peer_id(peer)
    }
}

impl From<LogId> for PeerId {
    fn from(log: LogId) -> PeerId {
        log.peer
    }
}

crate::serde_impl::string_or_bytes!(LogId, "a log id");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn log_from_seed(seed: [u8; 32]) -> LogId {
        let secret = ed25519::SecretKey::try_from_bytes(seed).expect("32 bytes");
        let key = PublicKey::from(ed25519::Keypair::from(secret).public());
        LogId::from_public_key(&key).expect("ed25519")
    }

    #[test]
    fn fixed_key_vector() {
        // RFC 8032 test 1: secret 9d61b1..., public d75a98....
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .expect("hex");
        let log = log_from_seed(seed.try_into().expect("32"));
        assert_eq!(
            hex::encode(log.ed25519_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(log.to_bytes()),
            "002408011220d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(log.to_string(), log.peer_id().to_base58());
        assert!(log.to_string().starts_with("12D3KooW"));
    }

    #[test]
    fn rejects_hashed_and_malformed_peer_ids() {
        // A sha2-256 peer id does not inline its key.
        let mut sha256 = vec![0x12, 0x20];
        sha256.extend_from_slice(&[1; 32]);
        let hashed = PeerId::from_bytes(&sha256).expect("a sha2-256 peer id");
        assert_eq!(LogId::from_peer_id(hashed), Err(LogIdError::NotInline));
        assert!(matches!("".parse::<LogId>(), Err(LogIdError::PeerId(_))));
        assert!(matches!(
            "12D3KooW".parse::<LogId>(),
            Err(LogIdError::PeerId(_))
        ));
        assert!(matches!(
            LogId::from_bytes(&[0x00, 0x24, 0x08]),
            Err(LogIdError::PeerId(_))
        ));
        let good = log_from_seed([3; 32]).to_bytes();
        let mut extra = good.clone();
        extra.push(0);
        assert!(LogId::from_bytes(&extra).is_err());
        let mut wrong_type = good;
        wrong_type[3] = 0x02; // secp256k1 key type in the protobuf
        assert!(LogId::from_bytes(&wrong_type).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(seed in any::<[u8; 32]>()) {
            let log = log_from_seed(seed);
            prop_assert_eq!(LogId::from_bytes(&log.to_bytes()), Ok(log));
            prop_assert_eq!(log.to_string().parse::<LogId>(), Ok(log));
            prop_assert_eq!(LogId::from_ed25519_bytes(log.ed25519_bytes()), Ok(log));
            prop_assert_eq!(LogId::from_public_key(&log.public_key()), Ok(log));
            let json = serde_json::to_string(&log).expect("serialize");
            prop_assert_eq!(serde_json::from_str::<LogId>(&json).expect("deserialize"), log);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(log) = LogId::from_bytes(&bytes) {
                prop_assert_eq!(log.to_bytes(), bytes);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[1-9A-HJ-NP-Za-km-z]{0,60}") {
            if let Ok(log) = text.parse::<LogId>() {
                prop_assert_eq!(log.to_string(), text);
            }
        }
    }
}
