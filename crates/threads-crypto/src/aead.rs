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
