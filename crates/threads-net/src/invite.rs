//! Invites: how a peer learns a thread's keys and where to fetch it.
//!
//! Two forms, both printed as multibase (base32, prefix `b`):
//!
//! ```text
//! sealed invite = 01 ‖ uvarint(n) ‖ n × (uvarint(len) ‖ ThreadAddr bytes) ‖ SealedKeySet
//! link invite   = 02 ‖ uvarint(n) ‖ n × (uvarint(len) ‖ ThreadAddr bytes)
//!                    ‖ ThreadId (34) ‖ key length (1 byte: 32 or 64) ‖ ThreadKey
//! ```
//!
//! A sealed invite opens only with the recipient's identity; a link invite carries the keys
//! in the clear, for sharing the way one shares a link (whoever holds it joins). A
//! follower's invite carries the service key only.

use std::fmt;
use std::str::FromStr;

use threads_crypto::{Identity, KeySet, KeySetError, PublicKey, SealedKeySet, ThreadKey};
use threads_id::{ThreadAddr, ThreadId, varint};
use zeroize::Zeroizing;

const SEALED: u8 = 1;
const LINK: u8 = 2;
/// The most addresses an invite may carry.
pub const MAX_INVITE_ADDRS: usize = 64;

/// Why an invite cannot be read or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// The text is not multibase.
    #[error("invite is not valid multibase: {0}")]
    Multibase(String),
    /// The bytes are not an invite.
    #[error("malformed invite: {0}")]
    Malformed(String),
    /// The sealed key set does not open (another recipient, or tampered bytes).
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// An address's thread is not the invite's thread.
    #[error("an address names another thread")]
    ThreadMismatch,
}

/// An invite to a thread.
#[derive(Clone, PartialEq, Eq)]
pub enum Invite {
    /// Keys sealed to one recipient.
    Sealed {
        /// Where the thread can be fetched.
        addrs: Vec<ThreadAddr>,
        /// The keys, sealed.
        keys: SealedKeySet,
    },
    /// Keys in the clear, for anyone holding the invite.
    Link {
        /// Where the thread can be fetched.
        addrs: Vec<ThreadAddr>,
        /// The thread and its keys.
        keys: KeySet,
    },
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invite::Sealed { addrs, .. } => write!(f, "Invite::Sealed({} addrs)", addrs.len()),
            Invite::Link { addrs, keys } => {
                write!(
                    f,
                    "Invite::Link({}, {} addrs)",
                    keys.thread_id(),
                    addrs.len()
                )
            }
        }
    }
}

impl Invite {
    /// An invite for `recipient`: `keys` (with the read key, or a follower's) sealed to it.
    pub fn sealed(addrs: Vec<ThreadAddr>, keys: &KeySet, recipient: &PublicKey) -> Invite {
        Invite::Sealed {
            addrs,
            keys: keys.seal(recipient),
        }
    }

    /// A shareable invite: whoever holds it can join.
    pub fn link(addrs: Vec<ThreadAddr>, keys: KeySet) -> Invite {
        Invite::Link { addrs, keys }
    }

    /// The thread's addresses and keys; `me` opens a sealed invite.
    pub fn open(&self, me: &Identity) -> Result<(Vec<ThreadAddr>, KeySet), InviteError> {
        let (addrs, keys) = match self {
            Invite::Sealed { addrs, keys } => (addrs.clone(), keys.open(me)?),
            Invite::Link { addrs, keys } => (addrs.clone(), keys.clone()),
        };
        if addrs.iter().any(|a| a.thread_id() != keys.thread_id()) {
            return Err(InviteError::ThreadMismatch);
        }
        Ok((addrs, keys))
    }

    /// The byte form (secret for a link invite: it holds the keys).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let (kind, addrs) = match self {
            Invite::Sealed { addrs, .. } => (SEALED, addrs),
            Invite::Link { addrs, .. } => (LINK, addrs),
        };
        let mut out = Zeroizing::new(vec![kind]);
        varint::encode(addrs.len() as u64, &mut out);
        for addr in addrs {
            let bytes = addr.to_bytes();
            varint::encode(bytes.len() as u64, &mut out);
            out.extend_from_slice(&bytes);
        }
        match self {
            Invite::Sealed { keys, .. } => out.extend_from_slice(keys.as_bytes()),
            Invite::Link { keys, .. } => {
                out.extend_from_slice(&keys.thread_id().to_bytes());
                let key = keys.thread_key().to_bytes();
                out.push(key.len() as u8);
                out.extend_from_slice(&key);
            }
        }
        out
    }

    /// Parses the byte form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Invite, InviteError> {
        let malformed = |what: &str| InviteError::Malformed(what.to_owned());
        let (&kind, rest) = bytes.split_first().ok_or_else(|| malformed("empty"))?;
        let (count, mut rest) =
            varint::decode(rest).map_err(|e| InviteError::Malformed(e.to_string()))?;
        if count as usize > MAX_INVITE_ADDRS {
            return Err(malformed("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (len, after) =
                varint::decode(rest).map_err(|e| InviteError::Malformed(e.to_string()))?;
            let len = usize::try_from(len).map_err(|_| malformed("address length"))?;
            if after.len() < len {
                return Err(malformed("truncated address"));
            }
            let (addr, after) = after.split_at(len);
            addrs.push(
                ThreadAddr::from_bytes(addr).map_err(|e| InviteError::Malformed(e.to_string()))?,
            );
            rest = after;
        }
        match kind {
            SEALED => Ok(Invite::Sealed {
                addrs,
                keys: SealedKeySet::from_bytes(rest)?,
            }),
            LINK => {
                if rest.len() < ThreadId::LEN {
                    return Err(malformed("truncated keys"));
                }
                let (thread, rest) = rest.split_at(ThreadId::LEN);
                let thread = ThreadId::from_bytes(thread)
                    .map_err(|e| InviteError::Malformed(e.to_string()))?;
                // The explicit length tells a truncated reader's key from a follower's.
                let (&len, key) = rest
                    .split_first()
                    .ok_or_else(|| malformed("truncated keys"))?;
                if key.len() != usize::from(len) {
                    return Err(malformed("key length does not match"));
                }
                let key = ThreadKey::from_bytes(key)
                    .map_err(|e| InviteError::Malformed(e.to_string()))?;
                Ok(Invite::Link {
                    addrs,
                    keys: KeySet::new(thread, key),
                })
            }
            other => Err(InviteError::Malformed(format!(
                "unknown invite kind {other}"
            ))),
        }
    }

    /// The text form: the bytes in multibase (base32, prefix `b`).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(multibase::encode(
            multibase::Base::Base32Lower,
            &*self.to_bytes(),
        ))
    }
}

impl FromStr for Invite {
    type Err = InviteError;

    fn from_str(text: &str) -> Result<Invite, InviteError> {
        let (_, bytes) =
            multibase::decode(text.trim()).map_err(|e| InviteError::Multibase(e.to_string()))?;
        Invite::from_bytes(&Zeroizing::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_id::Variant;

    fn addrs(thread: ThreadId) -> Vec<ThreadAddr> {
        let peer = Identity::from_secret_bytes(&[1; 32]).log_id();
        vec![
            ThreadAddr::new(
                format!("/ip4/127.0.0.1/tcp/4006/p2p/{peer}")
                    .parse()
                    .expect("addr"),
                thread,
            )
            .expect("addr"),
        ]
    }

    #[test]
    fn both_forms_round_trip_through_text() {
        let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
        let keys = KeySet::new(thread, ThreadKey::generate());
        let bob = Identity::from_secret_bytes(&[3; 32]);
        for invite in [
            Invite::sealed(addrs(thread), &keys, &bob.public()),
            Invite::link(addrs(thread), keys.clone()),
        ] {
            let parsed: Invite = invite.to_text().parse().expect("parses");
            assert_eq!(parsed, invite);
            let (got_addrs, got_keys) = parsed.open(&bob).expect("opens");
            assert_eq!(got_addrs, addrs(thread));
            assert_eq!(got_keys, keys);
        }
        // A sealed invite does not open for anyone else.
        let sealed = Invite::sealed(addrs(thread), &keys, &bob.public());
        assert!(matches!(
            sealed.open(&Identity::from_secret_bytes(&[4; 32])),
            Err(InviteError::KeySet(_))
        ));
    }

    #[test]
    fn malformed_invites_are_typed_errors() {
        let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
        let link = Invite::link(addrs(thread), KeySet::new(thread, ThreadKey::generate()));
        let bytes = link.to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                Invite::from_bytes(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut kind = bytes.to_vec();
        kind[0] = 9;
        assert!(matches!(
            Invite::from_bytes(&kind),
            Err(InviteError::Malformed(_))
        ));
        assert!(matches!(
            "not an invite!".parse::<Invite>(),
            Err(InviteError::Multibase(_))
        ));
        // An address of another thread is refused when opened.
        let other = ThreadId::from_parts(Variant::Raw, [5; 32]);
        let mixed = Invite::link(addrs(other), KeySet::new(thread, ThreadKey::generate()));
        assert!(matches!(
            mixed.open(&Identity::from_secret_bytes(&[3; 32])),
            Err(InviteError::ThreadMismatch)
        ));
    }
}
