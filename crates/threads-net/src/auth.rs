//! Proof that a requester holds a thread's service key, without sending the key.
//!
//! `proof = HMAC-SHA256(K, "threads-rs/net/auth/v1" ‖ thread ‖ requester ‖ responder)`
//! with `K = HKDF-SHA256(ikm = service key, info = "threads-rs/net/auth-key/v1")`. The proof
//! names both peers, whose identities the transport (Noise) authenticates, so a proof
//! overheard or handed on is worthless to any other peer.

use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use threads_crypto::ServiceKey;
use threads_id::{PeerId, ThreadId};

/// A proof of holding a thread's service key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct AuthProof(#[serde(with = "serde_bytes")] pub [u8; 32]);

fn mac(
    service: &ServiceKey,
    thread: &ThreadId,
    requester: &PeerId,
    responder: &PeerId,
) -> hmac::Hmac<Sha256> {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, service.as_bytes())
        .expand(b"threads-rs/net/auth-key/v1", &mut key)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"threads-rs/net/auth/v1");
    mac.update(&thread.to_bytes());
    for peer in [requester, responder] {
        let bytes = peer.to_bytes();
        mac.update(&[bytes.len() as u8]);
        mac.update(&bytes);
    }
    mac
}

impl AuthProof {
    /// The proof `requester` sends `responder` for `thread`.
    pub fn new(
        service: &ServiceKey,
        thread: &ThreadId,
        requester: &PeerId,
        responder: &PeerId,
    ) -> AuthProof {
        AuthProof(
            mac(service, thread, requester, responder)
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    /// Whether this proof, received by `responder` from `requester`, shows the service key.
    /// The comparison takes constant time.
    pub fn verify(
        &self,
        service: &ServiceKey,
        thread: &ThreadId,
        requester: &PeerId,
        responder: &PeerId,
    ) -> bool {
        mac(service, thread, requester, responder)
            .verify_slice(&self.0)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_crypto::Identity;
    use threads_id::Variant;

    #[test]
    fn proofs_bind_key_thread_and_both_peers() {
        let key = ServiceKey::from_bytes([1; 32]);
        let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
        let a = Identity::from_secret_bytes(&[3; 32]).log_id().peer_id();
        let b = Identity::from_secret_bytes(&[4; 32]).log_id().peer_id();
        let c = Identity::from_secret_bytes(&[5; 32]).log_id().peer_id();
        let proof = AuthProof::new(&key, &thread, &a, &b);
        assert!(proof.verify(&key, &thread, &a, &b));
        assert!(!proof.verify(&ServiceKey::from_bytes([9; 32]), &thread, &a, &b));
        assert!(!proof.verify(&key, &ThreadId::from_parts(Variant::Raw, [7; 32]), &a, &b));
        // Replayed by another requester, or to another responder, it fails.
        assert!(!proof.verify(&key, &thread, &c, &b));
        assert!(!proof.verify(&key, &thread, &a, &c));
        assert!(!proof.verify(&key, &thread, &b, &a));
        let mut tampered = proof;
        tampered.0[0] ^= 1;
        assert!(!tampered.verify(&key, &thread, &a, &b));
        // The proof is not the key, nor derived from it alone.
        assert_ne!(&proof.0, key.as_bytes());
    }
}
