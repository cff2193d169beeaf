//! `ThreadAddr`: where a thread can be reached, `<multiaddr>/p2p/<peer>/thread/<id>`.
//!
//! The `multiaddr` crate has a closed set of protocols, so the `thread` component (code 406,
//! `0x0196`, a length-prefixed thread id) is handled here: the text and binary forms are the
//! peer's multiaddr followed by that one component, exactly as a multiaddr would carry it.

use std::fmt;
use std::str::FromStr;

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};

use crate::thread_id::{ThreadId, ThreadIdError};
use crate::varint::{self, VarintError};

/// The multicodec of the `thread` multiaddr protocol.
pub const THREAD_PROTOCOL_CODE: u64 = 406;

/// The name of the `thread` multiaddr protocol in text form.
pub const THREAD_PROTOCOL_NAME: &str = "thread";

/// Why text or bytes are not a thread address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadAddrError {
    /// There is no `/thread/<id>` component, or it is not the last one.
    #[error("address does not end in /thread/<id>")]
    MissingThread,
    /// The peer part is not a valid multiaddr.
    #[error("invalid multiaddr: {0}")]
    Multiaddr(String),
    /// The peer part does not end in `/p2p/<peer id>`.
    #[error("address has no /p2p/<peer> component before /thread")]
    MissingPeer,
    /// The thread id is invalid.
    #[error("invalid thread id in address: {0}")]
    ThreadId(#[from] ThreadIdError),
    /// A varint of the binary form is malformed.
    #[error("malformed varint in thread address: {0}")]
    Varint(#[from] VarintError),
    /// The binary form's thread component has a length that does not match its bytes.
    #[error("thread component length {declared} does not match the {actual} bytes present")]
    Length {
        /// The length the component declares.
        declared: u64,
        /// The bytes actually left.
        actual: usize,
    },
}

/// A peer's multiaddr (ending in `/p2p/<peer>`) and a thread that peer serves.
///
/// ```
/// use threads_id::ThreadAddr;
///
/// let text = "/ip4/127.0.0.1/tcp/4006/p2p/12D3KooWLeo7yRfWbfZ9BTZvMbq7hD39b4hp5xuvLNj2wWsQmtfr\
///             /thread/bafkzjg7rdddl73kg4cq7iszrnyajs22ipbamersunjqkav52ajs36qq";
/// let addr: ThreadAddr = text.parse()?;
/// assert_eq!(addr.to_string(), text);
/// assert_eq!(ThreadAddr::from_bytes(&addr.to_bytes())?, addr);
/// assert_eq!(addr.peer_id().to_string(), "12D3KooWLeo7yRfWbfZ9BTZvMbq7hD39b4hp5xuvLNj2wWsQmtfr");
/// # Ok::<(), threads_id::ThreadAddrError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ThreadAddr {
    peer_addr: Multiaddr,
    peer: PeerId,
    thread: ThreadId,
}

impl ThreadAddr {
    /// The address of `thread` at `peer_addr`, which must end in `/p2p/<peer>`.
    pub fn new(peer_addr: Multiaddr, thread: ThreadId) -> Result<ThreadAddr, ThreadAddrError> {
        let peer = match peer_addr.iter().last() {
            Some(Protocol::P2p(peer)) => peer,
            _ => return Err(ThreadAddrError::MissingPeer),
        };
        Ok(ThreadAddr {
            peer_addr,
            peer,
            thread,
        })
    }

    /// The peer's multiaddr, ending in `/p2p/<peer>`.
    pub fn peer_addr(&self) -> &Multiaddr {
        &self.peer_addr
    }

    /// The peer's multiaddr without its `/p2p/<peer>` component: what a transport dials.
    pub fn transport_addr(&self) -> Multiaddr {
        let mut addr = self.peer_addr.clone();
        addr.pop();
        addr
    }

    /// The peer that serves the thread.
    pub const fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The thread.
    pub const fn thread_id(&self) -> ThreadId {
        self.thread
    }

    /// The binary form: the multiaddr's bytes, then `uvarint(406) ‖ uvarint(34) ‖ id bytes`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.peer_addr.to_vec();
        varint::encode(THREAD_PROTOCOL_CODE, &mut out);
        varint::encode(ThreadId::LEN as u64, &mut out);
        out.extend_from_slice(&self.thread.to_bytes());
        out
    }

    /// Parses the binary form.
    pub fn from_bytes(bytes: &[u8]) -> Result<ThreadAddr, ThreadAddrError> {
        // Walk the components until the thread one; the multiaddr crate cannot parse it.
        let mut rest = bytes;
        loop {
            if rest.is_empty() {
                return Err(ThreadAddrError::MissingThread);
            }
            let (code, after_code) = varint::decode(rest)?;
            if code == THREAD_PROTOCOL_CODE {
                let (len, id_bytes) = varint::decode(after_code)?;
                if len != id_bytes.len() as u64 {
                    return Err(ThreadAddrError::Length {
                        declared: len,
                        actual: id_bytes.len(),
                    });
                }
                let thread = ThreadId::from_bytes(id_bytes)?;
                let head = &bytes[..bytes.len() - rest.len()];
                let peer_addr = Multiaddr::try_from(head.to_vec())
                    .map_err(|e| ThreadAddrError::Multiaddr(e.to_string()))?;
                return ThreadAddr::new(peer_addr, thread);
            }
            let (_, after) = Protocol::from_bytes(rest)
                .map_err(|e| ThreadAddrError::Multiaddr(e.to_string()))?;
            rest = after;
        }
    }
}

impl fmt::Display for ThreadAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{THREAD_PROTOCOL_NAME}/{}",
            self.peer_addr, self.thread
        )
    }
}

impl fmt::Debug for ThreadAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThreadAddr({self})")
    }
}

impl FromStr for ThreadAddr {
    type Err = ThreadAddrError;

    fn from_str(text: &str) -> Result<ThreadAddr, ThreadAddrError> {
        let marker = concat!("/", "thread", "/");
        let at = text.rfind(marker).ok_or(ThreadAddrError::MissingThread)?;
        let id_text = &text[at + marker.len()..];
        if id_text.is_empty() || id_text.contains('/') {
            return Err(ThreadAddrError::MissingThread);
        }
        let thread = ThreadId::from_str(id_text)?;
        let peer_addr = Multiaddr::from_str(&text[..at])
            .map_err(|e| ThreadAddrError::Multiaddr(e.to_string()))?;
        ThreadAddr::new(peer_addr, thread)
    }
}

crate::serde_impl::string_or_bytes!(ThreadAddr, "a thread address");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread_id::Variant;
    use proptest::prelude::*;

    const PEER: &str = "12D3KooWLeo7yRfWbfZ9BTZvMbq7hD39b4hp5xuvLNj2wWsQmtfr";
    const THREAD: &str = "bafkzjg7rdddl73kg4cq7iszrnyajs22ipbamersunjqkav52ajs36qq";

    fn sample() -> ThreadAddr {
        format!("/ip4/127.0.0.1/tcp/4006/p2p/{PEER}/thread/{THREAD}")
            .parse()
            .expect("parses")
    }

    #[test]
    fn binary_layout() {
        let addr = sample();
        let bytes = addr.to_bytes();
        let peer_bytes = addr.peer_addr().to_vec();
        assert_eq!(&bytes[..peer_bytes.len()], &peer_bytes[..]);
        let tail = &bytes[peer_bytes.len()..];
        assert_eq!(&tail[..3], &[0x96, 0x03, 34]);
        assert_eq!(
            &tail[3..],
            &THREAD.parse::<ThreadId>().expect("id").to_bytes()[..]
        );
        assert_eq!(addr.transport_addr().to_string(), "/ip4/127.0.0.1/tcp/4006");
    }

    #[test]
    fn malformed() {
        let text = |s: &str| s.parse::<ThreadAddr>();
        assert_eq!(text(""), Err(ThreadAddrError::MissingThread));
        assert_eq!(
            text(&format!("/p2p/{PEER}")),
            Err(ThreadAddrError::MissingThread)
        );
        assert_eq!(
            text(&format!("/p2p/{PEER}/thread/")),
            Err(ThreadAddrError::MissingThread)
        );
        assert_eq!(
            text(&format!("/p2p/{PEER}/thread/{THREAD}/tcp/1")),
            Err(ThreadAddrError::MissingThread)
        );
        assert_eq!(
            text(&format!("/ip4/127.0.0.1/tcp/1/thread/{THREAD}")),
            Err(ThreadAddrError::MissingPeer)
        );
        assert!(matches!(
            text(&format!("/ip9/1/p2p/{PEER}/thread/{THREAD}")),
            Err(ThreadAddrError::Multiaddr(_))
        ));
        assert!(matches!(
            text(&format!("/p2p/{PEER}/thread/bafk")),
            Err(ThreadAddrError::ThreadId(_))
        ));

        let good = sample().to_bytes();
        assert_eq!(
            ThreadAddr::from_bytes(&[]),
            Err(ThreadAddrError::MissingThread)
        );
        for cut in 1..good.len() {
            assert!(
                ThreadAddr::from_bytes(&good[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut extra = good.clone();
        extra.push(1);
        assert!(matches!(
            ThreadAddr::from_bytes(&extra),
            Err(ThreadAddrError::Length { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trips(a in any::<[u8; 4]>(), port in any::<u16>(), random in any::<[u8; 32]>(), access in any::<bool>()) {
            let variant = if access { Variant::AccessControlled } else { Variant::Raw };
            let thread = ThreadId::from_parts(variant, random);
            let peer_addr: Multiaddr = format!("/ip4/{}.{}.{}.{}/tcp/{port}/p2p/{PEER}", a[0], a[1], a[2], a[3])
                .parse().expect("multiaddr");
            let addr = ThreadAddr::new(peer_addr, thread).expect("ends in p2p");
            prop_assert_eq!(ThreadAddr::from_bytes(&addr.to_bytes()), Ok(addr.clone()));
            prop_assert_eq!(addr.to_string().parse::<ThreadAddr>(), Ok(addr));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Ok(addr) = ThreadAddr::from_bytes(&bytes) {
                prop_assert_eq!(addr.to_bytes(), bytes);
            }
        }
    }
}
