//! Invariant checks over arbitrary input: the fuzz targets call these, and ordinary tests
//! replay the saved corpus and every input that once failed through them.
//!
//! Each check parses untrusted input and panics only if an invariant breaks: a parser that
//! accepts input must give back exactly that input when re-encoded (one byte form per value),
//! and the text and byte forms must agree.

use crate::{ThreadAddr, ThreadId};

/// `ThreadId::from_bytes` on arbitrary bytes: accepted input re-encodes to itself.
pub fn thread_id_bytes(data: &[u8]) {
    if let Ok(id) = ThreadId::from_bytes(data) {
        assert_eq!(
            &id.to_bytes()[..],
            data,
            "thread id bytes are not canonical"
        );
        assert_eq!(
            id.to_string().parse::<ThreadId>().ok(),
            Some(id),
            "text form disagrees"
        );
    }
}

/// `ThreadId::from_str` on arbitrary text: accepted text names an id whose forms round-trip.
pub fn thread_id_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<ThreadId>() {
        assert_eq!(
            ThreadId::from_bytes(&id.to_bytes()).ok(),
            Some(id),
            "bytes disagree"
        );
        assert_eq!(
            id.to_string().parse::<ThreadId>().ok(),
            Some(id),
            "canonical text disagrees"
        );
    }
}

/// `ThreadAddr` parsing of arbitrary bytes, and of them as text.
pub fn thread_addr(data: &[u8]) {
    if let Ok(addr) = ThreadAddr::from_bytes(data) {
        assert_eq!(
            addr.to_bytes(),
            data,
            "thread address bytes are not canonical"
        );
        assert_eq!(
            addr.to_string().parse::<ThreadAddr>().ok(),
            Some(addr),
            "text disagrees"
        );
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(addr) = text.parse::<ThreadAddr>()
    {
        assert_eq!(
            ThreadAddr::from_bytes(&addr.to_bytes()).ok(),
            Some(addr),
            "bytes disagree"
        );
    }
}
