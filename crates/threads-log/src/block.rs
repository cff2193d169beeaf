//! Content-addressed blocks: bytes and the CID (v1, sha2-256) that names them.
//!
//! Encrypted blocks (records, headers, bodies) use the `raw` codec over their ciphertext;
//! plain event blocks use `dag-cbor`. A [`Block`] can only be built with a CID that matches
//! its bytes, so holding one means the bytes were checked.

use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};

use crate::record::Node;

/// The multicodec of raw bytes (encrypted blocks).
pub const RAW: u64 = 0x55;
/// The multicodec of DAG-CBOR (event blocks).
pub const DAG_CBOR: u64 = 0x71;
/// The multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Why bytes and a CID do not make a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The CID is not v1 with sha2-256 and a raw or dag-cbor codec.
    #[error("unsupported CID {0}: expected CIDv1, sha2-256, raw or dag-cbor")]
    UnsupportedCid(Cid),
    /// The bytes hash to another CID.
    #[error("block bytes do not match CID {expected} (they hash to {actual})")]
    Mismatch {
        /// The CID the block was named by.
        expected: Cid,
        /// The CID of the bytes actually received.
        actual: Cid,
    },
}

/// The CID of `data` with `codec` (CIDv1, sha2-256).
pub fn cid_of(codec: u64, data: &[u8]) -> Cid {
    Cid::new_v1(codec, Code::Sha2_256.digest(data))
}

/// Bytes and the CID that names them; the CID always matches.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Block {
    cid: Cid,
    data: Vec<u8>,
}

impl Block {
    /// A raw-codec block of `data`.
    pub fn raw(data: Vec<u8>) -> Block {
        Block {
            cid: cid_of(RAW, &data),
            data,
        }
    }

    /// A dag-cbor block of `data` (which the caller encoded).
    pub fn dag_cbor(data: Vec<u8>) -> Block {
        Block {
            cid: cid_of(DAG_CBOR, &data),
            data,
        }
    }

    /// The block named `cid` with `data`, if the bytes match the CID.
    pub fn new(cid: Cid, data: Vec<u8>) -> Result<Block, BlockError> {
        let hash = cid.hash();
        if cid.version() != cid::Version::V1
            || hash.code() != SHA2_256
            || !matches!(cid.codec(), RAW | DAG_CBOR)
        {
            return Err(BlockError::UnsupportedCid(cid));
        }
        let actual = cid_of(cid.codec(), &data);
        if actual != cid {
            return Err(BlockError::Mismatch {
                expected: cid,
                actual,
            });
        }
        Ok(Block { cid, data })
    }

    /// The block's CID.
    pub const fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The block's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The block's bytes, owned.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({}, {} bytes)", self.cid, self.data.len())
    }
}

/// Decodes DAG-CBOR strictly: the bytes must be exactly the canonical encoding of the
/// value they decode to, so one value has one byte form.
pub(crate) fn decode_canonical<T: Node>(data: &[u8]) -> Result<T, String> {
    let value: T = serde_ipld_dagcbor::from_slice(data).map_err(|e| e.to_string())?;
    if value.to_cbor() != data {
        return Err("not canonical DAG-CBOR".to_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_check_their_cid() {
        let block = Block::raw(b"hello".to_vec());
        assert_eq!(block.cid().codec(), RAW);
        assert_eq!(
            Block::new(*block.cid(), b"hello".to_vec()),
            Ok(block.clone())
        );
        assert!(matches!(
            Block::new(*block.cid(), b"hellO".to_vec()),
            Err(BlockError::Mismatch { .. })
        ));
        let v0 = Cid::new_v0(Code::Sha2_256.digest(b"hello")).expect("v0");
        assert_eq!(
            Block::new(v0, b"hello".to_vec()),
            Err(BlockError::UnsupportedCid(v0))
        );
        let other_codec = Cid::new_v1(0x70, Code::Sha2_256.digest(b"hello"));
        assert_eq!(
            Block::new(other_codec, b"hello".to_vec()),
            Err(BlockError::UnsupportedCid(other_codec))
        );
        // The CID string of the well-known raw block "hello".
        assert_eq!(
            block.cid().to_string(),
            "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        );
    }
}
