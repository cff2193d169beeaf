//! Invites: how a peer learns a thread's keys and where to fetch it, signed by the inviter.
//!
//! Two forms, both printed as multibase (base32, prefix `b`), format 2:
//!
//! ```text
//! invite  = kind (0x11 sealed | 0x12 link) ‖ inviter's public key (32)
//!           ‖ expires (8, big-endian ms since the Unix epoch; 0 = never)
//!           ‖ uvarint(len) ‖ context (at most 64 bytes: what the invite grants, say a role)
//!           ‖ uvarint(n) ‖ n × (uvarint(len) ‖ ThreadAddr bytes)
//!           ‖ keys ‖ signature (64)
//! keys    = SealedKeySet                                          (sealed)
//!         | ThreadId (34) ‖ key length (1 byte: 32 or 64) ‖ ThreadKey   (link)
//!         | ThreadId (34) ‖ uvarint(len) ‖ ThreadKey ring form          (link, kind 0x22)
//! signature = Ed25519 by the inviter over "threads-rs/invite/v2" ‖ every byte before it
//! ```
//!
//! A sealed invite opens only with the recipient's identity; a link invite carries the keys
//! in the clear, for sharing the way one shares a link (whoever holds it joins). A
//! follower's invite carries the service key only. The signature covers the addresses,
//! the keys (sealed or not), the context and the expiry, so none of them can be changed
//! on the way, and the invitee learns who invited it; an invite past its expiry does not
//! open. The unsigned invites of format 1 (kinds 1 and 2) are refused. A link invite to a
//! thread whose key is a ring (service-key epochs) has kind 0x22: its key's length is a
//! uvarint (a ring is longer than a byte can count).

use std::fmt;
use std::str::FromStr;

use threads_crypto::{
    Identity, KeySet, KeySetError, PublicKey, SealedKeySet, Signature, ThreadKey,
};
use threads_id::{ThreadAddr, ThreadId, varint};
use zeroize::Zeroizing;

const SEALED: u8 = 0x11;
const LINK: u8 = 0x12;
/// A link invite whose key is a ring (its length a uvarint).
const LINK_RING: u8 = 0x22;
/// The kinds of format 1 (unsigned), refused.
const UNSIGNED: [u8; 2] = [1, 2];
/// What the inviter's signature is domain-separated with.
const DOMAIN: &[u8] = b"threads-rs/invite/v2";
/// The most addresses an invite may carry.
pub const MAX_INVITE_ADDRS: usize = 64;
/// The most bytes of context an invite may carry.
pub const MAX_INVITE_CONTEXT: usize = 64;

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
    /// An invite of format 1, which no inviter signed.
    #[error("an unsigned invite (format 1) is not accepted: ask for a new one")]
    Unsigned,
    /// The signature does not verify: the invite was changed, or not made by its inviter.
    #[error("the invite's signature does not verify")]
    BadSignature,
    /// The invite's expiry has passed.
    #[error("the invite expired at {expires_ms} ms")]
    Expired {
        /// When it expired, in milliseconds since the Unix epoch.
        expires_ms: u64,
    },
    /// The sealed key set does not open (another recipient, or tampered bytes).
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// An address's thread is not the invite's thread.
    #[error("an address names another thread")]
    ThreadMismatch,
}

/// Where an invite's thread is and its keys.
#[derive(Clone, PartialEq, Eq)]
enum Body {
    /// Keys sealed to one recipient.
    Sealed {
        addrs: Vec<ThreadAddr>,
        keys: SealedKeySet,
    },
    /// Keys in the clear, for anyone holding the invite.
    Link {
        addrs: Vec<ThreadAddr>,
        keys: KeySet,
    },
}

impl Body {
    fn addrs(&self) -> &[ThreadAddr] {
        match self {
            Body::Sealed { addrs, .. } | Body::Link { addrs, .. } => addrs,
        }
    }
}

/// An invite to a thread, signed by its inviter.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    body: Body,
    inviter: PublicKey,
    expires_ms: u64,
    context: Vec<u8>,
    signature: Signature,
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.body {
            Body::Sealed { .. } => "sealed".to_owned(),
            Body::Link { keys, .. } => format!("link to {}", keys.thread_id()),
        };
        write!(
            f,
            "Invite({kind}, {} addrs, by {})",
            self.body.addrs().len(),
            self.inviter.log_id()
        )
    }
}

impl Invite {
    /// An invite for `recipient` from `inviter`: `keys` (with the read key, or a
    /// follower's) sealed to it. No context, no expiry ([`Invite::with_terms`]).
    pub fn sealed(
        inviter: &Identity,
        addrs: Vec<ThreadAddr>,
        keys: &KeySet,
        recipient: &PublicKey,
    ) -> Invite {
        let body = Body::Sealed {
            addrs,
            keys: keys.seal(recipient),
        };
        Invite::signed(inviter, body, 0, Vec::new())
    }

    /// A shareable invite from `inviter`: whoever holds it can join.
    pub fn link(inviter: &Identity, addrs: Vec<ThreadAddr>, keys: KeySet) -> Invite {
        Invite::signed(inviter, Body::Link { addrs, keys }, 0, Vec::new())
    }

    /// This invite with `context` (what it grants, for the layer above: threads-acl puts
    /// the role here) and an expiry (milliseconds since the Unix epoch), signed again by
    /// `inviter`.
    ///
    /// # Errors
    /// [`InviteError::Malformed`] for a context longer than [`MAX_INVITE_CONTEXT`].
    pub fn with_terms(
        self,
        inviter: &Identity,
        context: &[u8],
        expires_ms: Option<u64>,
    ) -> Result<Invite, InviteError> {
        if context.len() > MAX_INVITE_CONTEXT {
            return Err(InviteError::Malformed("context too long".to_owned()));
        }
        Ok(Invite::signed(
            inviter,
            self.body,
            expires_ms.unwrap_or(0).max(u64::from(expires_ms.is_some())),
            context.to_vec(),
        ))
    }

    fn signed(inviter: &Identity, body: Body, expires_ms: u64, context: Vec<u8>) -> Invite {
        let public = inviter.public();
        let unsigned = unsigned_bytes(&body, &public, expires_ms, &context);
        let signature = inviter.sign(&signed_message(&unsigned));
        Invite {
            body,
            inviter: public,
            expires_ms,
            context,
            signature,
        }
    }

    /// Who made and signed the invite.
    pub const fn inviter(&self) -> &PublicKey {
        &self.inviter
    }

    /// What the invite grants, for the layer above (empty if nothing).
    pub fn context(&self) -> &[u8] {
        &self.context
    }

    /// When the invite expires (milliseconds since the Unix epoch), if it does.
    pub const fn expires_ms(&self) -> Option<u64> {
        if self.expires_ms == 0 {
            None
        } else {
            Some(self.expires_ms)
        }
    }

    /// The thread's addresses and keys; `me` opens a sealed invite. Checks the expiry
    /// against this machine's clock.
    ///
    /// # Errors
    /// [`InviteError::Expired`], [`InviteError::KeySet`] for a sealed invite that is not
    /// `me`'s, [`InviteError::ThreadMismatch`].
    pub fn open(&self, me: &Identity) -> Result<(Vec<ThreadAddr>, KeySet), InviteError> {
        self.open_at(me, crate::logaddrs::now_ms())
    }

    /// [`Invite::open`] at `now_ms` (milliseconds since the Unix epoch).
    ///
    /// # Errors
    /// As [`Invite::open`].
    pub fn open_at(
        &self,
        me: &Identity,
        now_ms: u64,
    ) -> Result<(Vec<ThreadAddr>, KeySet), InviteError> {
        if self.expires_ms != 0 && now_ms >= self.expires_ms {
            return Err(InviteError::Expired {
                expires_ms: self.expires_ms,
            });
        }
        let (addrs, keys) = match &self.body {
            Body::Sealed { addrs, keys } => (addrs.clone(), keys.open(me)?),
            Body::Link { addrs, keys } => (addrs.clone(), keys.clone()),
        };
        if addrs.iter().any(|a| a.thread_id() != keys.thread_id()) {
            return Err(InviteError::ThreadMismatch);
        }
        Ok((addrs, keys))
    }

    /// The byte form (secret for a link invite: it holds the keys).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = unsigned_bytes(&self.body, &self.inviter, self.expires_ms, &self.context);
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Parses the byte form and checks the inviter's signature.
    ///
    /// # Errors
    /// [`InviteError::Malformed`], [`InviteError::Unsigned`] for format 1,
    /// [`InviteError::BadSignature`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Invite, InviteError> {
        let malformed = |what: &str| InviteError::Malformed(what.to_owned());
        let (&kind, _) = bytes.split_first().ok_or_else(|| malformed("empty"))?;
        if UNSIGNED.contains(&kind) {
            return Err(InviteError::Unsigned);
        }
        if kind != SEALED && kind != LINK && kind != LINK_RING {
            return Err(InviteError::Malformed(format!(
                "unknown invite kind {kind}"
            )));
        }
        if bytes.len() < 1 + 32 + 8 + Signature::LEN {
            return Err(malformed("truncated"));
        }
        let (unsigned, signature) = bytes.split_at(bytes.len() - Signature::LEN);
        let signature =
            Signature::from_slice(signature).map_err(|e| InviteError::Malformed(e.to_string()))?;
        let rest = &unsigned[1..];
        let (inviter, rest) = rest.split_at(32);
        let inviter =
            PublicKey::from_slice(inviter).map_err(|e| InviteError::Malformed(e.to_string()))?;
        let (expires, rest) = rest.split_at(8);
        let expires_ms = u64::from_be_bytes(expires.try_into().map_err(|_| malformed("expiry"))?);
        let (len, rest) =
            varint::decode(rest).map_err(|e| InviteError::Malformed(e.to_string()))?;
        let len = usize::try_from(len).map_err(|_| malformed("context length"))?;
        if len > MAX_INVITE_CONTEXT || rest.len() < len {
            return Err(malformed("context"));
        }
        let (context, rest) = rest.split_at(len);
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
        let body = if kind == SEALED {
            Body::Sealed {
                addrs,
                keys: SealedKeySet::from_bytes(rest)?,
            }
        } else {
            if rest.len() < ThreadId::LEN {
                return Err(malformed("truncated keys"));
            }
            let (thread, rest) = rest.split_at(ThreadId::LEN);
            let thread =
                ThreadId::from_bytes(thread).map_err(|e| InviteError::Malformed(e.to_string()))?;
            // The explicit length tells a truncated reader's key from a follower's.
            let (len, key) = if kind == LINK_RING {
                let (len, key) =
                    varint::decode(rest).map_err(|e| InviteError::Malformed(e.to_string()))?;
                (usize::try_from(len).unwrap_or(usize::MAX), key)
            } else {
                let (&len, key) = rest
                    .split_first()
                    .ok_or_else(|| malformed("truncated keys"))?;
                (usize::from(len), key)
            };
            if key.len() != len {
                return Err(malformed("key length does not match"));
            }
            let key =
                ThreadKey::from_bytes(key).map_err(|e| InviteError::Malformed(e.to_string()))?;
            if key.is_ring() != (kind == LINK_RING) {
                return Err(malformed("the kind does not match the key's form"));
            }
            Body::Link {
                addrs,
                keys: KeySet::new(thread, key),
            }
        };
        inviter
            .verify(&signed_message(unsigned), &signature)
            .map_err(|_| InviteError::BadSignature)?;
        Ok(Invite {
            body,
            inviter,
            expires_ms,
            context: context.to_vec(),
            signature,
        })
    }

    /// The text form: the bytes in multibase (base32, prefix `b`).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(multibase::encode(
            multibase::Base::Base32Lower,
            &*self.to_bytes(),
        ))
    }
}

/// The invite's bytes before the signature.
fn unsigned_bytes(
    body: &Body,
    inviter: &PublicKey,
    expires_ms: u64,
    context: &[u8],
) -> Zeroizing<Vec<u8>> {
    let kind = match body {
        Body::Sealed { .. } => SEALED,
        Body::Link { keys, .. } if keys.thread_key().is_ring() => LINK_RING,
        Body::Link { .. } => LINK,
    };
    let mut out = Zeroizing::new(vec![kind]);
    out.extend_from_slice(&inviter.to_bytes());
    out.extend_from_slice(&expires_ms.to_be_bytes());
    varint::encode(context.len() as u64, &mut out);
    out.extend_from_slice(context);
    let addrs = body.addrs();
    varint::encode(addrs.len() as u64, &mut out);
    for addr in addrs {
        let bytes = addr.to_bytes();
        varint::encode(bytes.len() as u64, &mut out);
        out.extend_from_slice(&bytes);
    }
    match body {
        Body::Sealed { keys, .. } => out.extend_from_slice(keys.as_bytes()),
        Body::Link { keys, .. } => {
            out.extend_from_slice(&keys.thread_id().to_bytes());
            let key = keys.thread_key().to_bytes();
            if keys.thread_key().is_ring() {
                varint::encode(key.len() as u64, &mut out);
            } else {
                out.push(key.len() as u8);
            }
            out.extend_from_slice(&key);
        }
    }
    out
}

/// What the inviter signs: the domain, then the invite's bytes before the signature.
fn signed_message(unsigned: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut message = Zeroizing::new(Vec::with_capacity(DOMAIN.len() + unsigned.len()));
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(unsigned);
    message
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

    fn alice() -> Identity {
        Identity::from_secret_bytes(&[9; 32])
    }

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
            Invite::sealed(&alice(), addrs(thread), &keys, &bob.public()),
            Invite::link(&alice(), addrs(thread), keys.clone()),
        ] {
            let parsed: Invite = invite.to_text().parse().expect("parses");
            assert_eq!(parsed, invite);
            let (got_addrs, got_keys) = parsed.open(&bob).expect("opens");
            assert_eq!(got_addrs, addrs(thread));
            assert_eq!(got_keys, keys);
        }
        // A sealed invite does not open for anyone else.
        let sealed = Invite::sealed(&alice(), addrs(thread), &keys, &bob.public());
        assert!(matches!(
            sealed.open(&Identity::from_secret_bytes(&[4; 32])),
            Err(InviteError::KeySet(_))
        ));
    }

    #[test]
    fn invites_carry_a_key_ring_whole() {
        let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
        let mut ring = ThreadKey::generate();
        // Enough epochs that the ring's length needs a two-byte uvarint.
        for _ in 0..5 {
            assert!(ring.add_epoch(threads_crypto::ServiceKey::generate()));
        }
        let bob = Identity::from_secret_bytes(&[3; 32]);
        for key in [ring.clone(), ring.to_follower()] {
            let keys = KeySet::new(thread, key);
            let link = Invite::link(&alice(), addrs(thread), keys.clone());
            let bytes = link.to_bytes();
            assert_eq!(bytes[0], LINK_RING);
            let sealed = Invite::sealed(&alice(), addrs(thread), &keys, &bob.public());
            for invite in [link, sealed] {
                let parsed: Invite = invite.to_text().parse().expect("parses");
                assert_eq!(parsed.open(&bob).expect("opens").1, keys);
            }
            // The kind names the key's form: a ring relabelled as a plain link is refused.
            let mut relabelled = bytes.to_vec();
            relabelled[0] = LINK;
            assert!(matches!(
                Invite::from_bytes(&relabelled),
                Err(InviteError::Malformed(_))
            ));
        }
    }

    #[test]
    fn malformed_invites_are_typed_errors() {
        let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
        let link = Invite::link(
            &alice(),
            addrs(thread),
            KeySet::new(thread, ThreadKey::generate()),
        );
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
        let mixed = Invite::link(
            &alice(),
            addrs(other),
            KeySet::new(thread, ThreadKey::generate()),
        );
        assert!(matches!(
            mixed.open(&Identity::from_secret_bytes(&[3; 32])),
            Err(InviteError::ThreadMismatch)
        ));
    }

    #[test]
    fn the_signature_covers_every_byte_and_the_terms() {
        let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
        let keys = KeySet::new(thread, ThreadKey::generate());
        let bob = Identity::from_secret_bytes(&[3; 32]);
        let invite = Invite::sealed(&alice(), addrs(thread), &keys, &bob.public())
            .with_terms(&alice(), b"role", Some(1_000))
            .expect("terms");
        assert_eq!(invite.inviter(), &alice().public());
        assert_eq!(invite.context(), b"role");
        assert_eq!(invite.expires_ms(), Some(1_000));
        let bytes = invite.to_bytes();
        assert_eq!(Invite::from_bytes(&bytes).expect("parses"), invite);
        // Any byte changed (kind aside): refused, as malformed or for the signature.
        for i in 1..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] ^= 0x01;
            assert!(Invite::from_bytes(&changed).is_err(), "byte {i} changed");
        }
        // Signed by someone else than the key it names.
        let mut forged = bytes.to_vec();
        let mallory = Identity::from_secret_bytes(&[8; 32]);
        let resigned = Invite::sealed(&mallory, addrs(thread), &keys, &bob.public())
            .with_terms(&mallory, b"role", Some(1_000))
            .expect("terms")
            .to_bytes();
        let sig = resigned.len() - 64;
        forged[sig..].copy_from_slice(&resigned[sig..]);
        assert!(matches!(
            Invite::from_bytes(&forged),
            Err(InviteError::BadSignature)
        ));
        // Expired at 1,000 ms: opens before, not after.
        assert!(invite.open_at(&bob, 999).is_ok());
        assert!(matches!(
            invite.open_at(&bob, 1_000),
            Err(InviteError::Expired { expires_ms: 1_000 })
        ));
        assert!(
            invite
                .clone()
                .with_terms(&alice(), &[0; MAX_INVITE_CONTEXT + 1], None)
                .is_err()
        );
    }

    #[test]
    fn unsigned_invites_of_format_1_are_refused() {
        for kind in UNSIGNED {
            let mut bytes = vec![kind, 0];
            bytes.extend_from_slice(&[0; 80]);
            assert!(matches!(
                Invite::from_bytes(&bytes),
                Err(InviteError::Unsigned)
            ));
        }
    }
}
