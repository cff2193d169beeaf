//! Unsigned LEB128 varints (the multiformats `uvarint`), with strict decoding.
//!
//! Decoding rejects non-minimal encodings (a trailing `0x00` continuation group), values that
//! do not fit in 63 bits (the multiformats limit is nine bytes) and truncated input, so every
//! value has exactly one byte form. Identifiers built from varints therefore compare equal
//! exactly when their bytes do.

/// The longest encoding accepted, in bytes (the multiformats limit: 63-bit values).
pub const MAX_VARINT_LEN: usize = 9;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VarintError {
    /// The input ended inside the varint.
    #[error("varint is truncated")]
    Truncated,
    /// The varint is longer than nine bytes, or its value needs more than 63 bits.
    #[error("varint overflows 63 bits")]
    Overflow,
    /// The varint has a redundant trailing zero group (its value has a shorter encoding).
    #[error("varint is not minimally encoded")]
    NotMinimal,
}

/// Appends the varint encoding of `value` to `out`.
///
/// ```
/// let mut out = Vec::new();
/// threads_id::varint::encode(406, &mut out);
/// assert_eq!(out, [0x96, 0x03]);
/// ```
pub fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The number of bytes `encode(value)` writes.
pub fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes one varint from the front of `input`, returning it and the rest of the input.
///
/// ```
/// let (value, rest) = threads_id::varint::decode(&[0x96, 0x03, 0xff]).unwrap();
/// assert_eq!((value, rest), (406, &[0xff][..]));
/// assert!(threads_id::varint::decode(&[0x80, 0x00]).is_err()); // not minimal
/// ```
pub fn decode(input: &[u8]) -> Result<(u64, &[u8]), VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        if i == MAX_VARINT_LEN {
            return Err(VarintError::Overflow);
        }
        let group = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 && byte & 0x80 != 0 {
            return Err(VarintError::Overflow);
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(VarintError::NotMinimal);
            }
            return Ok((value, &input[i + 1..]));
        }
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        for (value, bytes) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (0x55, &[0x55]),
            (0x7f, &[0x7f]),
            (0x80, &[0x80, 0x01]),
            (406, &[0x96, 0x03]),
            (
                (1 << 63) - 1,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            ),
        ] {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out, bytes, "encoding of {value}");
            assert_eq!(encoded_len(value), bytes.len());
            assert_eq!(decode(bytes), Ok((value, &[][..])));
        }
    }

    #[test]
    fn malformed() {
        assert_eq!(decode(&[]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x81, 0x00]), Err(VarintError::NotMinimal));
        assert_eq!(decode(&[0xff; 9]), Err(VarintError::Overflow));
        assert_eq!(decode(&[0xff; 12]), Err(VarintError::Overflow));
    }

    proptest! {
        #[test]
        fn round_trip(value in 0u64..(1 << 63), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode(value, &mut out);
            prop_assert_eq!(out.len(), encoded_len(value));
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode(&out), Ok((value, &tail[..])));
        }

        #[test]
        fn never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok((value, rest)) = decode(&bytes) {
                let mut out = Vec::new();
                encode(value, &mut out);
                prop_assert_eq!(&out[..], &bytes[..bytes.len() - rest.len()]);
            }
        }
    }
}
