//! Invariant checks over arbitrary input: the fuzz targets call these, and ordinary tests
//! replay the saved corpus and every input that once failed through them.

use crate::{Identity, SealedKeySet, ThreadKey, open_sealed_bytes};

/// The identity the `keyset_open` check opens with. Seeds in the corpus are sealed to it.
pub fn fuzz_recipient() -> Identity {
    Identity::from_secret_bytes(&[0x42; 32])
}

/// Opening arbitrary bytes, and arbitrary text, as a key set sealed to [`fuzz_recipient`].
///
/// Garbage must fail with a typed error; a key set that does open must survive sealing
/// again and opening. The bytes are also read as a [`ThreadKey`] (plain or ring form): a
/// key that parses has exactly these bytes as its form.
pub fn keyset_open(data: &[u8]) {
    if let Ok(key) = ThreadKey::from_bytes(data) {
        assert_eq!(
            &**key.to_bytes(),
            data,
            "a thread key's form is not canonical"
        );
    }
    let recipient = fuzz_recipient();
    if let Ok(set) = open_sealed_bytes(data, &recipient) {
        let again = set.seal(&recipient.public()).open(&recipient);
        assert_eq!(
            again.as_ref(),
            Ok(&set),
            "a re-sealed key set does not open to itself"
        );
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(sealed) = text.parse::<SealedKeySet>()
    {
        assert_eq!(
            sealed.to_string().parse::<SealedKeySet>().ok(),
            Some(sealed.clone())
        );
        let _ = sealed.open(&recipient);
    }
}
