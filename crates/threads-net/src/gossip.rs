//! Head announcements over gossipsub: one topic per thread, named so that it reveals
//! nothing to those without the thread's service key.
//!
//! ```text
//! topic        = "/threads-rs/heads/1/" ‖ hex(HKDF-SHA256(service key,
//!                  info = "threads-rs/net/topic/v1" ‖ ThreadId)[..16])
//! announcement = uvarint(len) ‖ LogId bytes ‖ counter (u64 big-endian)
//! ```
//!
//! An announcement only tells a peer that it may be behind; it then pulls, and the pull is
//! authenticated and verified like any other, so a false announcement costs one request.

use hkdf::Hkdf;
use sha2::Sha256;
use threads_crypto::ServiceKey;
use threads_id::{LogId, ThreadId, varint};

/// The gossipsub topic of `thread`'s head announcements.
pub fn topic_name(service: &ServiceKey, thread: &ThreadId) -> String {
    let mut info = b"threads-rs/net/topic/v1".to_vec();
    info.extend_from_slice(&thread.to_bytes());
    let mut tag = [0u8; 16];
    Hkdf::<Sha256>::new(None, service.as_bytes())
        .expand(&info, &mut tag)
        .unwrap_or_else(|_| unreachable!("16 bytes is a valid HKDF-SHA256 length"));
    let mut name = String::from("/threads-rs/heads/1/");
    for byte in tag {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// Encodes an announcement that `log` has `counter` entries.
pub fn encode_announcement(log: &LogId, counter: u64) -> Vec<u8> {
    let log = log.to_bytes();
    let mut out = Vec::with_capacity(log.len() + 10);
    varint::encode(log.len() as u64, &mut out);
    out.extend_from_slice(&log);
    out.extend_from_slice(&counter.to_be_bytes());
    out
}

/// Decodes an announcement; `None` if malformed.
pub fn decode_announcement(data: &[u8]) -> Option<(LogId, u64)> {
    let (len, rest) = varint::decode(data).ok()?;
    let len = usize::try_from(len).ok()?;
    if rest.len() != len + 8 {
        return None;
    }
    let (log, counter) = rest.split_at(len);
    let log = LogId::from_bytes(log).ok()?;
    Some((log, u64::from_be_bytes(counter.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_crypto::Identity;
    use threads_id::Variant;

    #[test]
    fn topics_hide_the_thread_and_announcements_round_trip() {
        let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
        let key = ServiceKey::from_bytes([2; 32]);
        let topic = topic_name(&key, &thread);
        assert!(!topic.contains(&thread.to_string()));
        assert_ne!(topic, topic_name(&ServiceKey::from_bytes([3; 32]), &thread));
        assert_ne!(
            topic,
            topic_name(&key, &ThreadId::from_parts(Variant::Raw, [4; 32]))
        );
        let log = Identity::from_secret_bytes(&[5; 32]).log_id();
        let data = encode_announcement(&log, 42);
        assert_eq!(decode_announcement(&data), Some((log, 42)));
        for cut in 0..data.len() {
            assert_eq!(decode_announcement(&data[..cut]), None);
        }
        assert_eq!(decode_announcement(&[data.clone(), vec![0]].concat()), None);
    }
}
