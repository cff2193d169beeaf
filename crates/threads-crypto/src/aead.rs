//! Authenticated encryption: XChaCha20-Poly1305 with a random 24-byte nonce.
//!
//! Sealed bytes are `nonce (24) ‖ ciphertext ‖ tag (16)`. The caller supplies associated
//! data that binds the ciphertext to its place (thread, log, layer); opening with any other
//! associated data fails, as does any change to nonce, ciphertext or tag.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;

/// Bytes of the nonce at the front of sealed bytes.
pub const NONCE_LEN: usize = 24;
/// Bytes of the authentication tag at the end of sealed bytes.
pub const TAG_LEN: usize = 16;
/// Bytes that sealing adds to a plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Why sealed bytes do not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AeadError {
    /// The input is shorter than a nonce and a tag.
    #[error("sealed bytes are {0} long, shorter than the {OVERHEAD}-byte overhead")]
    TooShort(usize),
    /// Authentication failed: wrong key, wrong associated data, or the bytes were changed.
    #[error("authentication failed (wrong key, wrong associated data or tampered bytes)")]
    Authentication,
    /// The bytes open, but their nonce is not the synthetic nonce of what they hold: a
    /// second ciphertext of the same plaintext (see `ServiceKey::open_synthetic`).
    #[error("the nonce is not the synthetic nonce of the plaintext")]
    Noncanonical,
}

/// Encrypts `plaintext` under `key`, binding `associated_data`.
pub(crate) fn seal<R: CryptoRng + ?Sized>(
    key: &[u8; 32],
    associated_data: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    seal_with_nonce(key, associated_data, plaintext, nonce)
}

/// The synthetic nonce of `plaintext` under `key` and `associated_data`:
/// `HKDF-SHA256(salt = "threads-rs/synthetic-nonce/v1", ikm = key, info = len(ad) (u64 BE)
/// ‖ ad ‖ plaintext)`, 24 bytes. Without the key it is unpredictable; with it, the same
/// inputs give the same nonce.
fn synthetic_nonce(key: &[u8; 32], associated_data: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"threads-rs/synthetic-nonce/v1"), key);
    let len = (associated_data.len() as u64).to_be_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    hk.expand_multi_info(&[&len, associated_data, plaintext], &mut nonce)
        .unwrap_or_else(|_| unreachable!("24 bytes is a valid HKDF-SHA256 output length"));
    nonce
}

/// Encrypts `plaintext` deterministically, with its synthetic nonce: the same key,
/// associated data and plaintext always give the same bytes, and [`open_synthetic`] accepts
/// no others. For blocks whose identity (their CID) must not depend on who sealed them.
pub(crate) fn seal_synthetic(key: &[u8; 32], associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = synthetic_nonce(key, associated_data, plaintext);
    seal_with_nonce(key, associated_data, plaintext, nonce)
}

/// Decrypts bytes made by [`seal_synthetic`], and refuses bytes that open but whose nonce
/// is not the synthetic nonce of their plaintext.
pub(crate) fn open_synthetic(
    key: &[u8; 32],
    associated_data: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, AeadError> {
    let mut plaintext = open(key, associated_data, sealed)?;
    if sealed[..NONCE_LEN] != synthetic_nonce(key, associated_data, &plaintext) {
        plaintext.fill(0);
        return Err(AeadError::Noncanonical);
    }
    Ok(plaintext)
}

fn seal_with_nonce(
    key: &[u8; 32],
    associated_data: &[u8],
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    // One buffer, encrypted in place: nonce ‖ ciphertext ‖ tag.
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let tag = cipher
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            associated_data,
            (&mut out[NONCE_LEN..]).into(),
        )
        .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 encrypts any length that fits"));
    out.extend_from_slice(&tag);
    out
}

/// Decrypts bytes made by [`seal`] with the same key and associated data.
pub(crate) fn open(
    key: &[u8; 32],
    associated_data: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, AeadError> {
    if sealed.len() < OVERHEAD {
        return Err(AeadError::TooShort(sealed.len()));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .unwrap_or_else(|_| unreachable!("split at NONCE_LEN"));
    let tag: [u8; TAG_LEN] = tag
        .try_into()
        .unwrap_or_else(|_| unreachable!("split at TAG_LEN"));
    let mut plaintext = ciphertext.to_vec();
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    match cipher.decrypt_inout_detached(
        &XNonce::from(nonce),
        associated_data,
        plaintext.as_mut_slice().into(),
        &tag.into(),
    ) {
        Ok(()) => Ok(plaintext),
        Err(_) => {
            // Do not hand back (or leave around) unauthenticated plaintext.
            plaintext.fill(0);
            Err(AeadError::Authentication)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_seal_has_one_form_and_refuses_others() {
        let key = [7u8; 32];
        let a = seal_synthetic(&key, b"ad", b"record");
        assert_eq!(a, seal_synthetic(&key, b"ad", b"record"), "deterministic");
        assert_ne!(a, seal_synthetic(&key, b"ad", b"other"));
        assert_ne!(
            a[..NONCE_LEN],
            seal_synthetic(&key, b"ae", b"record")[..NONCE_LEN]
        );
        assert_eq!(open_synthetic(&key, b"ad", &a), Ok(b"record".to_vec()));
        // The same plaintext sealed again with another nonce opens as AEAD, but not here.
        let again = seal(&key, b"ad", b"record", &mut rand::rng());
        assert_eq!(open(&key, b"ad", &again), Ok(b"record".to_vec()));
        assert_eq!(
            open_synthetic(&key, b"ad", &again),
            Err(AeadError::Noncanonical)
        );
        assert_eq!(
            open_synthetic(&[8u8; 32], b"ad", &a),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            open_synthetic(&key, b"ad", &a[..10]),
            Err(AeadError::TooShort(10))
        );
    }
}
