//! Authenticated encryption: XChaCha20-Poly1305 with a random 24-byte nonce.
//!
//! Sealed bytes are `nonce (24) ‖ ciphertext ‖ tag (16)`. The caller supplies associated
//! data that binds the ciphertext to its place (thread, log, layer); opening with any other
//! associated data fails, as does any change to nonce, ciphertext or tag.

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
    let tag = backend::seal_in_place(key, &nonce, associated_data, &mut out[NONCE_LEN..]);
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
    if backend::open_in_place(key, &nonce, associated_data, &mut plaintext, &tag) {
        Ok(plaintext)
    } else {
        // Do not hand back (or leave around) unauthenticated plaintext.
        plaintext.fill(0);
        Err(AeadError::Authentication)
    }
}

/// XChaCha20-Poly1305 over a buffer, in place, by RustCrypto's `chacha20poly1305`.
#[cfg_attr(feature = "aws-lc", allow(dead_code))]
mod rust_crypto {
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};

    use super::{NONCE_LEN, TAG_LEN};

    /// Encrypts `buffer` in place; the tag.
    pub(super) fn seal_in_place(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> [u8; TAG_LEN] {
        XChaCha20Poly1305::new(&(*key).into())
            .encrypt_inout_detached(&XNonce::from(*nonce), associated_data, buffer.into())
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 encrypts any length that fits"))
            .into()
    }

    /// Decrypts `buffer` in place; whether it was authentic (if not, `buffer` holds
    /// garbage the caller clears).
    pub(super) fn open_in_place(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        XChaCha20Poly1305::new(&(*key).into())
            .decrypt_inout_detached(
                &XNonce::from(*nonce),
                associated_data,
                buffer.into(),
                &(*tag).into(),
            )
            .is_ok()
    }
}

/// XChaCha20-Poly1305 by AWS-LC's ChaCha20-Poly1305, which has no extended nonce: by its
/// definition, XChaCha20-Poly1305 under `key` and a 24-byte nonce is ChaCha20-Poly1305 under
/// the subkey `HChaCha20(key, nonce[..16])` with the 12-byte nonce `0⁴ ‖ nonce[16..]`. The
/// same bytes as RustCrypto's (checked by a property test), about four times faster on the
/// short blocks of a log (AVX2 Poly1305 in RustCrypto prepares four powers of its key for
/// every message).
#[cfg(feature = "aws-lc")]
mod aws_lc {
    use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    use zeroize::Zeroize;

    use super::{NONCE_LEN, TAG_LEN};

    /// The ChaCha20-Poly1305 key and nonce that XChaCha20-Poly1305 under `key` and `nonce`
    /// is.
    fn key_and_nonce(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&nonce[..16]);
        let mut subkey = chacha20::hchacha::<chacha20::R20>(&(*key).into(), &prefix.into());
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, subkey.as_slice())
            .unwrap_or_else(|_| unreachable!("a ChaCha20-Poly1305 key is 32 bytes"));
        subkey.as_mut_slice().zeroize();
        let mut short = [0u8; 12];
        short[4..].copy_from_slice(&nonce[16..]);
        (
            LessSafeKey::new(unbound),
            Nonce::assume_unique_for_key(short),
        )
    }

    pub(super) fn seal_in_place(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let (key, nonce) = key_and_nonce(key, nonce);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(associated_data), buffer)
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 seals any length that fits"));
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub(super) fn open_in_place(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let (key, nonce) = key_and_nonce(key, nonce);
        key.open_in_place_separate_tag(nonce, Aad::from(associated_data), tag, buffer)
            .is_ok()
    }
}

#[cfg(feature = "aws-lc")]
use aws_lc as backend;
#[cfg(not(feature = "aws-lc"))]
use rust_crypto as backend;

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

    /// The XChaCha20-Poly1305 test vector of draft-irtf-cfrg-xchacha-03, A.3.1, through
    /// the backend this build uses.
    #[test]
    fn the_backend_gives_the_published_test_vector() {
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| 0x40 + i as u8);
        let ad = hex::decode("50515253c0c1c2c3c4c5c6c7").expect("hex");
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";
        let expected = hex::decode(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
             21f9664c97637da9768812f615c68b13b52e\
             c0875924c1c7987947deafd8780acf49",
        )
        .expect("hex");
        let sealed = seal_with_nonce(&key, &ad, plaintext, nonce);
        assert_eq!(sealed[..NONCE_LEN], nonce);
        assert_eq!(hex::encode(&sealed[NONCE_LEN..]), hex::encode(&expected));
        assert_eq!(open(&key, &ad, &sealed), Ok(plaintext.to_vec()));
    }

    #[cfg(feature = "aws-lc")]
    mod backends {
        use proptest::prelude::*;

        use super::super::{NONCE_LEN, aws_lc, rust_crypto};

        proptest! {
            /// AWS-LC and RustCrypto give the same bytes, open each other's, and refuse
            /// the same changed bytes.
            #[test]
            fn both_backends_seal_and_open_alike(
                key in any::<[u8; 32]>(),
                nonce in any::<[u8; NONCE_LEN]>(),
                ad in proptest::collection::vec(any::<u8>(), 0..100),
                plaintext in proptest::collection::vec(any::<u8>(), 0..1500),
                flip in any::<prop::sample::Index>(),
            ) {
                let mut a = plaintext.clone();
                let tag_a = aws_lc::seal_in_place(&key, &nonce, &ad, &mut a);
                let mut b = plaintext.clone();
                let tag_b = rust_crypto::seal_in_place(&key, &nonce, &ad, &mut b);
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(tag_a, tag_b);
                let mut opened = a.clone();
                prop_assert!(rust_crypto::open_in_place(&key, &nonce, &ad, &mut opened, &tag_a));
                prop_assert_eq!(&opened, &plaintext);
                let mut opened = b.clone();
                prop_assert!(aws_lc::open_in_place(&key, &nonce, &ad, &mut opened, &tag_b));
                prop_assert_eq!(&opened, &plaintext);
                // One bit changed, in the ciphertext or the tag: both refuse.
                let mut changed = a.clone();
                let mut tag = tag_a;
                let at = flip.index(changed.len() + tag.len());
                if at < changed.len() { changed[at] ^= 1 } else { tag[at - changed.len()] ^= 1 }
                prop_assert!(!aws_lc::open_in_place(&key, &nonce, &ad, &mut changed.clone(), &tag));
                prop_assert!(!rust_crypto::open_in_place(&key, &nonce, &ad, &mut changed, &tag));
            }
        }
    }
}
