//! A minimal canonical DAG-CBOR writer for the log's own node types.
//!
//! The record, event and header nodes have fixed schemas, so they are written directly,
//! without serde: this is on the append and verify hot paths (a record is encoded once
//! when written and re-encoded once when checked for canonical form on every receipt).
//! A property test checks that the output is byte for byte what `serde_ipld_dagcbor`
//! writes for the same values.

use cid::Cid;

/// Appends CBOR items to a buffer, always in their shortest (canonical) form.
pub(crate) struct Encoder(Vec<u8>);

impl Encoder {
    pub(crate) fn with_capacity(capacity: usize) -> Encoder {
        Encoder(Vec::with_capacity(capacity))
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }

    /// A major type with its argument, in the shortest encoding.
    fn head(&mut self, major: u8, value: u64) {
        let major = major << 5;
        if value < 24 {
            self.0.push(major | value as u8);
        } else if value <= u64::from(u8::MAX) {
            self.0.extend_from_slice(&[major | 24, value as u8]);
        } else if value <= u64::from(u16::MAX) {
            self.0.push(major | 25);
            self.0.extend_from_slice(&(value as u16).to_be_bytes());
        } else if value <= u64::from(u32::MAX) {
            self.0.push(major | 26);
            self.0.extend_from_slice(&(value as u32).to_be_bytes());
        } else {
            self.0.push(major | 27);
            self.0.extend_from_slice(&value.to_be_bytes());
        }
    }

    pub(crate) fn uint(&mut self, value: u64) {
        self.head(0, value);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.head(2, bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    /// A map key (a text string).
    pub(crate) fn key(&mut self, key: &str) {
        self.head(3, key.len() as u64);
        self.0.extend_from_slice(key.as_bytes());
    }

    pub(crate) fn array(&mut self, len: u64) {
        self.head(4, len);
    }

    pub(crate) fn map(&mut self, len: u64) {
        self.head(5, len);
    }

    pub(crate) fn null(&mut self) {
        self.0.push(0xf6);
    }

    /// A CID link: tag 42 over the byte string `0x00 ‖ CID bytes`.
    pub(crate) fn cid(&mut self, cid: &Cid) {
        self.0.extend_from_slice(&[0xd8, 42]);
        self.head(2, cid.encoded_len() as u64 + 1);
        self.0.push(0x00);
        cid.write_bytes(&mut self.0)
            .unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
    }

    pub(crate) fn optional_cid(&mut self, cid: Option<&Cid>) {
        match cid {
            Some(cid) => self.cid(cid),
            None => self.null(),
        }
    }
}
