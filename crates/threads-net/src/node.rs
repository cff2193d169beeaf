//! The libp2p host: a swarm (TCP + Noise + Yamux, identify, ping, the sync protocol over
//! request-response) run by one task, and [`Node`], a cheap handle that sends it commands.
//!
//! Inbound requests are answered by `serve` in tasks of a bounded set, so a slow store
//! never stalls the swarm; outbound requests get their responses through `oneshot`
//! channels. Every channel is bounded, and every task the node starts (the swarm, the
//! announcement listener, the periodic sync, one pusher per peer) is tracked and joined by
//! [`Node::shutdown`].
//!
//! Pulling and the periodic sync live in `sync.rs`, the push queue in `push.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, connection_limits, gossipsub, identify, ping};
#[cfg(any(feature = "tcp", feature = "relay", not(feature = "quic")))]
use libp2p::{noise, yamux};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, ThreadAddr, ThreadId};
use threads_log::{Appended, Hlc, Writer};
use threads_store::Store;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::addrs::Addrs;
use crate::admission::{Admission, AdmitAll};
use crate::faults::Faults;
use crate::gossip::{decode_announcement, encode_announcement, topic_name};
use crate::health::{Health, SyncStatus};
use crate::limits::{PeerLimitConfig, PeerLimits};
use crate::message::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Refusal, Request, Response};
use crate::peers::PeerBook;
use crate::push::PushQueues;
use crate::serve::{Responder, serve};

/// An announcement makes a node pull from its sender at most this often.
const ANNOUNCE_PULL_GAP: Duration = Duration::from_millis(200);

/// How long a peer that does not answer keeps its addresses (one day).
pub const DEFAULT_ADDR_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long one relayed connection may last on a relay (an hour).
#[cfg(feature = "relay")]
const RELAY_CIRCUIT_DURATION: Duration = Duration::from_secs(60 * 60);

/// How many bytes one relayed connection may carry on a relay (64 MiB).
#[cfg(feature = "relay")]
const RELAY_CIRCUIT_BYTES: u64 = 64 << 20;

/// The sync protocol's name on the wire.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/threads-rs/sync/1");

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The transport could not be set up, or an address could not be listened on.
    #[error("transport: {0}")]
    Transport(String),
    /// A request failed (peer unreachable, timeout, stream error).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The peer refused the request.
    #[error("{peer} refused: {refusal:?}")]
    Refused {
        /// The peer.
        peer: PeerId,
        /// Its reason.
        refusal: Refusal,
    },
    /// The peer answered with a response that does not fit the request.
    #[error("{0} sent an unexpected response")]
    Unexpected(PeerId),
    /// Received entries were rejected.
    #[error("entries from {peer} rejected: {rejection}")]
    Rejected {
        /// The peer.
        peer: PeerId,
        /// Why.
        rejection: crate::ingest::Rejection,
    },
    /// The invite cannot be opened.
    #[error("invite: {0}")]
    Invite(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] threads_store::StoreError),
    /// The node has shut down.
    #[error("the node has shut down")]
    Shutdown,
}

/// What happened on a node, for listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetEvent {
    /// New entries of a log were stored (pulled or pushed to us).
    Stored {
        /// The thread.
        thread: ThreadId,
        /// The log.
        log: LogId,
        /// The log's counter afterwards.
        counter: u64,
    },
    /// A proof that the author of a log forked it was found or learned
    /// ([`Node::fork_proofs`]): views stop the log at `counter`.
    Forked {
        /// The thread.
        thread: ThreadId,
        /// The log.
        log: LogId,
        /// The fork's counter.
        counter: u64,
    },
}

/// How a node runs.
#[derive(Clone)]
pub struct NetConfig {
    listen: Vec<Multiaddr>,
    announce: Vec<Multiaddr>,
    addr_ttl: Duration,
    log_quota: u64,
    #[cfg_attr(not(feature = "relay"), allow(dead_code))]
    relay: bool,
    request_timeout: Duration,
    max_inbound_tasks: usize,
    peer_limits: PeerLimitConfig,
    connection_limits: ConnectionLimitConfig,
    #[cfg_attr(not(feature = "mdns"), allow(dead_code))]
    mdns: bool,
    admission: Arc<dyn Admission>,
    faults: Faults,
}

/// Connection limits ([`NetConfig::with_connection_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectionLimitConfig {
    incoming: u32,
    pending_incoming: u32,
    per_peer: u32,
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("listen", &self.listen)
            .field("announce", &self.announce)
            .field("request_timeout", &self.request_timeout)
            .field("max_inbound_tasks", &self.max_inbound_tasks)
            .field("mdns", &self.mdns)
            .finish_non_exhaustive()
    }
}

impl NetConfig {
    /// Listen on `addrs` (e.g. `/ip4/127.0.0.1/tcp/0`).
    pub fn new(addrs: impl IntoIterator<Item = Multiaddr>) -> NetConfig {
        NetConfig {
            listen: addrs.into_iter().collect(),
            announce: Vec::new(),
            addr_ttl: DEFAULT_ADDR_TTL,
            log_quota: crate::quota::DEFAULT_LOG_QUOTA,
            relay: false,
            request_timeout: Duration::from_secs(30),
            max_inbound_tasks: 64,
            peer_limits: PeerLimitConfig::default(),
            connection_limits: ConnectionLimitConfig {
                incoming: 512,
                pending_incoming: 128,
                per_peer: 4,
            },
            mdns: false,
            admission: Arc::new(AdmitAll),
            faults: Faults::new(),
        }
    }

    /// Which peers may receive a thread's records (default: every peer that proves the
    /// service key). Checked before serving a request and before pushing.
    pub fn with_admission(mut self, admission: impl Admission) -> NetConfig {
        self.admission = Arc::new(admission);
        self
    }

    /// Discover peers on the local network with mDNS (off by default: it announces this
    /// node to the whole network segment). Cargo feature `mdns`.
    #[cfg(feature = "mdns")]
    pub fn with_mdns(mut self, on: bool) -> NetConfig {
        self.mdns = on;
        self
    }

    /// Whether mDNS is on.
    #[cfg(feature = "mdns")]
    pub fn mdns(&self) -> bool {
        self.mdns
    }

    /// Injects `faults` (dropped or reordered pushes, partitions): for tests of
    /// replication. Keep the [`Faults`] handle to change them while the node runs.
    pub fn with_faults(mut self, faults: Faults) -> NetConfig {
        self.faults = faults;
        self
    }

    /// How many requests one peer may have answered at once (default 16), and how fast it
    /// may send them: `per_second` on average, `burst` at once after a quiet time (default
    /// 500 and 1,000). A request beyond a limit is refused `Unavailable` (the peer retries
    /// later) and counted ([`Node::refused_requests`]), so one peer cannot take the
    /// inbound slots every peer shares.
    pub fn with_peer_limits(mut self, in_flight: usize, per_second: u32, burst: u32) -> NetConfig {
        self.peer_limits = PeerLimitConfig {
            in_flight: in_flight.max(1),
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
        };
        self
    }

    /// How many connections this node accepts: established incoming ones (default 512),
    /// incoming ones still being set up (default 128), and established ones per peer, in
    /// either direction (default 4). Connections beyond them are closed at once.
    pub fn with_connection_limits(
        mut self,
        incoming: u32,
        pending_incoming: u32,
        per_peer: u32,
    ) -> NetConfig {
        self.connection_limits = ConnectionLimitConfig {
            incoming,
            pending_incoming,
            per_peer,
        };
        self
    }

    /// External addresses to announce (a public address in front of a NAT or a proxy, a
    /// DNS name): given to remote peers (in invites and address exchanges) before the
    /// listen addresses.
    pub fn with_announce(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> NetConfig {
        self.announce = addrs.into_iter().collect();
        self
    }

    /// How long a peer may fail to answer the periodic sync before its addresses are
    /// dropped from the thread's peers (default [`DEFAULT_ADDR_TTL`]). A peer that comes
    /// back tells us its addresses again when it next exchanges peers with us.
    pub fn with_addr_ttl(mut self, ttl: Duration) -> NetConfig {
        self.addr_ttl = ttl;
        self
    }

    /// The most bytes of one log (one identity's writes in one thread) this node stores
    /// from peers (default [`DEFAULT_LOG_QUOTA`](crate::DEFAULT_LOG_QUOTA), 1 GiB). A batch
    /// that would pass it is refused ([`Rejection::Quota`](crate::Rejection::Quota)) and
    /// counted in the sync health; this node's own log is not limited.
    pub fn with_log_quota(mut self, bytes: u64) -> NetConfig {
        self.log_quota = bytes;
        self
    }

    /// Serve as a circuit relay (v2) for other peers: peers behind NAT reserve a slot here
    /// and are reached through it (`<this node's address>/p2p/<this peer>/p2p-circuit`)
    /// until hole punching (DCUtR) gives a direct connection. Off by default. Every node
    /// can use relays: listen on a relay's circuit address to be reached through it.
    /// Cargo feature `relay`, as the relay client, hole punching and AutoNAT are.
    #[cfg(feature = "relay")]
    pub fn with_relay(mut self, on: bool) -> NetConfig {
        self.relay = on;
        self
    }

    /// How long a request may take.
    pub fn with_request_timeout(mut self, timeout: Duration) -> NetConfig {
        self.request_timeout = timeout;
        self
    }
}

/// The NAT traversal behaviours (cargo feature `relay`): circuit relay v2 client and
/// server, DCUtR hole punching, AutoNAT. Without the feature they are inert stand-ins.
#[cfg(feature = "relay")]
mod nat {
    pub(super) type RelayClient = libp2p::relay::client::Behaviour;
    pub(super) type Relay = libp2p::relay::Behaviour;
    pub(super) type Dcutr = libp2p::dcutr::Behaviour;
    pub(super) type Autonat = libp2p::autonat::Behaviour;
}
#[cfg(not(feature = "relay"))]
mod nat {
    pub(super) type RelayClient = libp2p::swarm::dummy::Behaviour;
    pub(super) type Relay = libp2p::swarm::dummy::Behaviour;
    pub(super) type Dcutr = libp2p::swarm::dummy::Behaviour;
    pub(super) type Autonat = libp2p::swarm::dummy::Behaviour;
}

/// Local peer discovery (cargo feature `mdns`); an inert stand-in without it.
#[cfg(feature = "mdns")]
type Mdns = libp2p::mdns::tokio::Behaviour;
#[cfg(not(feature = "mdns"))]
type Mdns = libp2p::swarm::dummy::Behaviour;

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    relay_client: nat::RelayClient,
    relay: Toggle<nat::Relay>,
    dcutr: nat::Dcutr,
    autonat: nat::Autonat,
    sync: request_response::Behaviour<request_response::cbor::codec::Codec<Request, Response>>,
    gossip: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    mdns: Toggle<Mdns>,
}

/// The node's behaviours, for the identity `key` (`relay_client` comes from the transport
/// when the `relay` feature is on).
fn behaviour(
    key: &libp2p::identity::Keypair,
    relay_client: nat::RelayClient,
    config: &NetConfig,
    codec: request_response::cbor::codec::Codec<Request, Response>,
    sync_config: request_response::Config,
) -> Behaviour {
    #[cfg(any(feature = "relay", feature = "mdns"))]
    let peer = key.public().to_peer_id();
    #[cfg(feature = "relay")]
    let (relay, dcutr, autonat) = (
        config.relay.then(|| {
            libp2p::relay::Behaviour::new(
                peer,
                libp2p::relay::Config {
                    // A relayed connection is a way in until hole punching makes a direct
                    // one, or the way when it cannot: long enough for a sync, bounded so one
                    // pair cannot hold the relay.
                    max_circuit_duration: RELAY_CIRCUIT_DURATION,
                    max_circuit_bytes: RELAY_CIRCUIT_BYTES,
                    ..libp2p::relay::Config::default()
                },
            )
        }),
        libp2p::dcutr::Behaviour::new(peer),
        libp2p::autonat::Behaviour::new(peer, libp2p::autonat::Config::default()),
    );
    #[cfg(not(feature = "relay"))]
    let (relay, dcutr, autonat) = (
        None,
        libp2p::swarm::dummy::Behaviour,
        libp2p::swarm::dummy::Behaviour,
    );
    // mDNS failing to start (no multicast) leaves it off rather than failing.
    #[cfg(feature = "mdns")]
    let mdns = config
        .mdns
        .then(|| libp2p::mdns::tokio::Behaviour::new(libp2p::mdns::Config::default(), peer).ok())
        .flatten();
    #[cfg(not(feature = "mdns"))]
    let mdns = None;
    Behaviour {
        relay_client,
        relay: Toggle::from(relay),
        dcutr,
        autonat,
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(config.connection_limits.incoming))
                .with_max_pending_incoming(Some(config.connection_limits.pending_incoming))
                .with_max_established_per_peer(Some(config.connection_limits.per_peer)),
        ),
        sync: request_response::Behaviour::with_codec(
            codec,
            [(SYNC_PROTOCOL, ProtocolSupport::Full)],
            sync_config,
        ),
        identify: identify::Behaviour::new(identify::Config::new(
            "/threads-rs/1.0.0".to_owned(),
            key.public(),
        )),
        ping: ping::Behaviour::default(),
        mdns: Toggle::from(mdns),
        gossip: gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(gossipsub::ValidationMode::Strict)
                .max_transmit_size(1024)
                .build()
                .unwrap_or_else(|_| unreachable!("a valid gossipsub configuration")),
        )
        .unwrap_or_else(|_| unreachable!("signed gossipsub with a key")),
    }
}

enum Command {
    Subscribe(gossipsub::IdentTopic),
    Publish {
        topic: gossipsub::IdentTopic,
        data: Vec<u8>,
        reply: oneshot::Sender<bool>,
    },
    Request {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        // Boxed: a request is much larger than the other commands.
        request: Box<Request>,
        reply: oneshot::Sender<Result<Response, NetError>>,
    },
}

/// A running node. Cloning is cheap; the node stops when [`Node::shutdown`] is called.
pub struct Node<S> {
    pub(crate) inner: Arc<Shared<S>>,
}

/// A forked log of a thread whose records before the fork were compared with a peer's.
pub(crate) type ForkChecked = (ThreadId, LogId, PeerId);

/// What a node's handles and tasks share.
pub(crate) struct Shared<S> {
    pub(crate) store: Arc<S>,
    pub(crate) peer: PeerId,
    pub(crate) addrs: std::sync::RwLock<Addrs>,
    /// How long a peer that does not answer keeps its addresses.
    pub(crate) addr_ttl: Duration,
    /// The storage quota of each log received from peers.
    pub(crate) quota: crate::quota::Quota,
    commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<NetEvent>,
    pub(crate) health: Arc<Health>,
    pub(crate) peers: Arc<PeerBook>,
    /// When each log's addresses were last written to the store's address book.
    pub(crate) log_addrs: crate::logaddrs::LogAddrs,
    topics: Mutex<HashMap<gossipsub::TopicHash, ThreadId>>,
    pub(crate) admission: Arc<dyn Admission>,
    pub(crate) faults: Faults,
    pub(crate) pushes: PushQueues,
    /// Peers the periodic sync waits for after failures: (failures, until when). An inbound
    /// request from a peer clears its entry (it is back).
    pub(crate) backoff: Arc<Mutex<HashMap<PeerId, (u32, tokio::time::Instant)>>>,
    /// Each peer's inbound requests in flight and rate.
    limits: Arc<Mutex<PeerLimits>>,
    pub(crate) cancel: CancellationToken,
    /// When each (peer, thread) last made us pull by an announcement.
    announced: Mutex<HashMap<(PeerId, ThreadId), tokio::time::Instant>>,
    /// How many times entries received from peers were stored (see [`Node::arrivals`]).
    pub(crate) arrivals: std::sync::atomic::AtomicU64,
    /// Held while a fork proof is kept (the thread's proofs are read, then written).
    pub(crate) forks: tokio::sync::Mutex<()>,
    /// (thread, log, peer) of forked logs whose records before the fork were found equal
    /// to ours, with (the peer's counter, the counter compared) then.
    pub(crate) fork_checked: Mutex<HashMap<ForkChecked, (u64, u64)>>,
    /// Set once [`Node::shutdown`] has joined every task.
    stopped: tokio::sync::watch::Sender<bool>,
    /// Every task the node started, the swarm's connection tasks included; taken and
    /// joined by [`Node::shutdown`].
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
}

/// Something the swarm's task hands to the node's listener: a head announcement heard over
/// gossipsub, or a push refused for a gap (the pusher has entries we lack: pull them).
pub(crate) enum Wake {
    Heard {
        topic: gossipsub::TopicHash,
        from: PeerId,
        data: Vec<u8>,
    },
    Gap {
        thread: ThreadId,
        from: PeerId,
    },
}

// Written by hand: a derive would ask `S: Clone`, but only the `Arc` is cloned.
impl<S> Clone for Node<S> {
    fn clone(&self) -> Node<S> {
        Node {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer", &self.inner.peer)
            .field("addrs", &self.inner.addrs)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> Node<S> {
    /// Starts a node with `identity` over `store`, listening as `config` says; returns once
    /// it listens.
    pub async fn start(
        identity: &Identity,
        store: Arc<S>,
        config: NetConfig,
    ) -> Result<Node<S>, NetError> {
        let keypair = identity.to_libp2p();
        let tasks: Arc<Mutex<Option<JoinSet<()>>>> = Arc::new(Mutex::new(Some(JoinSet::new())));
        let codec = request_response::cbor::codec::Codec::<Request, Response>::default()
            .set_request_size_maximum(MAX_REQUEST_BYTES as u64)
            .set_response_size_maximum(MAX_RESPONSE_BYTES as u64);
        let sync_config = request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(config.max_inbound_tasks);
        let builder = libp2p::SwarmBuilder::with_existing_identity(keypair).with_tokio();
        // TCP (cargo feature `tcp`, on by default) and QUIC (`quic`: `/udp/<port>/quic-v1`).
        #[cfg(feature = "tcp")]
        let builder = builder
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Transport(e.to_string()))?;
        #[cfg(feature = "quic")]
        let builder = builder.with_quic();
        // Neither: in-process memory addresses only (`/memory/<port>`), for tests and
        // embedding (with `relay`, relayed connections need a transport to the relay).
        #[cfg(not(any(feature = "tcp", feature = "quic")))]
        let builder = builder
            .with_other_transport(|key| {
                use libp2p::Transport;
                let noise = noise::Config::new(key)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
                Ok(libp2p::core::transport::MemoryTransport::default()
                    .upgrade(libp2p::core::upgrade::Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default()))
            })
            .map_err(|e| NetError::Transport(e.to_string()))?;
        // Circuit relay v2, client side (feature `relay`): `/p2p/<relay>/p2p-circuit`
        // addresses can be listened on (a reservation on the relay) and dialed.
        #[cfg(feature = "relay")]
        let builder = builder
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_behaviour(|key, relay_client| {
                behaviour(key, relay_client, &config, codec, sync_config)
            });
        #[cfg(not(feature = "relay"))]
        let builder = builder.with_behaviour(|key| {
            behaviour(
                key,
                libp2p::swarm::dummy::Behaviour,
                &config,
                codec,
                sync_config,
            )
        });
        let mut swarm = builder
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_swarm_config(|_| {
                // Connection tasks go into the node's task set, so shutdown joins them.
                let tasks = Arc::clone(&tasks);
                libp2p::swarm::Config::with_executor(
                    move |task: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
                        let mut tasks = tasks.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(tasks) = tasks.as_mut() {
                            while tasks.try_join_next().is_some() {}
                            tasks.spawn(task);
                        }
                    },
                )
                .with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build();
        // A node asked to relay relays, whether or not libp2p has confirmed an external
        // address of it yet (it would stay silent until then).
        #[cfg(feature = "relay")]
        if let Some(relay) = swarm.behaviour_mut().relay.as_mut() {
            relay.set_status(Some(libp2p::relay::Status::Enable));
        }
        let mut listeners = std::collections::HashSet::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Transport(e.to_string()))?;
            // A relay's circuit address is listened on once the relay accepts a
            // reservation, which may take a while (or the relay may be down): the node
            // starts without waiting for it.
            let circuit = addr
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit));
            if !circuit {
                listeners.insert(id);
            }
        }
        for addr in &config.announce {
            swarm.add_external_address(addr.clone());
        }
        let mut addrs = Addrs::default();
        for addr in &config.announce {
            addrs.external(addr.clone());
        }
        // Every listener reports at least one address before the node is returned; a
        // wildcard listener reports one per interface, all at once, so the events ready
        // right after are taken too.
        let mut heard = std::collections::HashSet::new();
        loop {
            let next = if heard.len() < listeners.len() {
                swarm.next().await
            } else {
                match tokio::time::timeout(Duration::from_millis(50), swarm.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            };
            match next {
                Some(SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                }) => {
                    heard.insert(listener_id);
                    addrs.listening(address);
                }
                Some(SwarmEvent::ListenerError { error, .. }) => {
                    return Err(NetError::Transport(format!("{error:?}")));
                }
                Some(SwarmEvent::ListenerClosed { reason: Err(e), .. }) => {
                    return Err(NetError::Transport(format!("{e:?}")));
                }
                Some(_) => {}
                None => return Err(NetError::Shutdown),
            }
        }
        // A relay's reservations carry its external addresses (peers behind NAT give them
        // out as `<relay address>/p2p-circuit`): with none announced, its listen addresses
        // are taken as external.
        #[cfg(feature = "relay")]
        if config.relay && config.announce.is_empty() {
            for addr in addrs.listen.clone() {
                swarm.add_external_address(addr.clone());
                addrs.external(addr);
            }
        }
        let (commands, command_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let peer = *swarm.local_peer_id();
        let (wake_tx, mut wake_rx) = mpsc::channel::<Wake>(1024);
        let node = Node {
            inner: Arc::new(Shared {
                store,
                peer,
                addrs: std::sync::RwLock::new(addrs),
                addr_ttl: config.addr_ttl,
                quota: crate::quota::Quota::new(config.log_quota, peer),
                commands,
                events,
                health: Arc::new(Health::new()),
                peers: Arc::default(),
                log_addrs: crate::logaddrs::LogAddrs::default(),
                topics: Mutex::default(),
                admission: Arc::clone(&config.admission),
                faults: config.faults.clone(),
                pushes: PushQueues::default(),
                backoff: Arc::default(),
                limits: Arc::new(Mutex::new(PeerLimits::new(config.peer_limits))),
                cancel: CancellationToken::new(),
                arrivals: std::sync::atomic::AtomicU64::new(0),
                forks: tokio::sync::Mutex::default(),
                fork_checked: Mutex::default(),
                announced: Mutex::default(),
                stopped: tokio::sync::watch::Sender::new(false),
                tasks,
            }),
        };
        node.spawn(run(node.clone(), swarm, command_rx, wake_tx, config));
        // Announcements and gaps are handled one at a time: each may start a pull.
        let listener = node.clone();
        node.spawn(async move {
            loop {
                let wake = tokio::select! {
                    () = listener.inner.cancel.cancelled() => break,
                    wake = wake_rx.recv() => match wake {
                        Some(wake) => wake,
                        None => break,
                    },
                };
                listener.on_wake(wake).await;
            }
        });
        node.start_pushing();
        Ok(node)
    }

    /// Starts `task` in the node's task set (not at all once the node is shut down).
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tasks) = tasks.as_mut()
            && !self.inner.cancel.is_cancelled()
        {
            // Finished tasks are reaped here, so the set holds only live ones.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(task);
        }
    }

    async fn on_wake(&self, wake: Wake) {
        match wake {
            Wake::Heard { topic, from, data } => {
                let thread = {
                    let topics = self.inner.topics.lock().unwrap_or_else(|p| p.into_inner());
                    topics.get(&topic).copied()
                };
                let (Some(thread), Some((log, counter))) = (thread, decode_announcement(&data))
                else {
                    return;
                };
                // Only from a known peer of the thread that the admission rule admits (the
                // topic name is no secret from a revoked member), and at most one pull per
                // peer and thread every `ANNOUNCE_PULL_GAP`: the periodic sync covers the rest.
                if self.inner.peers.dial(thread, from).is_empty()
                    || !self.inner.admission.admits(thread, from)
                {
                    tracing::debug!(%from, %thread, "announcement from an unknown peer ignored");
                    return;
                }
                {
                    let now = tokio::time::Instant::now();
                    let mut recent = self
                        .inner
                        .announced
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if recent
                        .get(&(from, thread))
                        .is_some_and(|at| now.duration_since(*at) < ANNOUNCE_PULL_GAP)
                    {
                        return;
                    }
                    if recent.len() >= 10_000 {
                        recent.retain(|_, at| now.duration_since(*at) < ANNOUNCE_PULL_GAP);
                    }
                    recent.insert((from, thread), now);
                }
                self.inner.health.peer_has(thread, log, from, counter);
                let ours = self
                    .inner
                    .store
                    .head(thread, log)
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |h| h.counter);
                if ours < counter
                    && let Err(e) = self.pull_peer(thread, from, Vec::new()).await
                {
                    self.inner.health.error(thread, log, from, e.to_string());
                }
            }
            Wake::Gap { thread, from } => {
                let dial = self.inner.peers.dial(thread, from);
                if let Err(error) = self.pull_peer(thread, from, dial).await {
                    tracing::debug!(%from, %thread, %error, "pull after a gap failed");
                }
            }
        }
    }

    /// Creates a thread of `variant` with fresh keys, stores them and watches its
    /// announcements. Returns the thread and its key (to put in invites).
    pub async fn create_thread(
        &self,
        variant: threads_id::Variant,
    ) -> Result<(ThreadId, ThreadKey), NetError> {
        let thread = ThreadId::new(variant);
        let key = ThreadKey::generate();
        self.inner.store.put_thread(thread, &key).await?;
        self.watch(thread).await?;
        Ok((thread, key))
    }

    /// Subscribes to `thread`'s head announcements (peers that announce a head past ours
    /// are pulled from at once) and loads the thread's persisted peers. Announcements are
    /// heard on the topic of every service-key epoch of the thread's key ring (a peer that
    /// has not learned the newest epoch still announces on an older one); call it again
    /// when the ring grows.
    pub async fn watch(&self, thread: ThreadId) -> Result<(), NetError> {
        let key = self.key(thread).await?;
        self.inner
            .peers
            .load(&*self.inner.store, thread, self.inner.peer)
            .await?;
        // Every peer that served a log of the thread within the address TTL is a peer to
        // sync with, whatever the peer list kept.
        for (_, addrs) in crate::logaddrs::of_thread(&*self.inner.store, thread).await? {
            for addr in addrs {
                self.inner.peers.add(addr, self.inner.peer);
            }
        }
        for service in key.services() {
            let topic = gossipsub::IdentTopic::new(topic_name(service, &thread));
            let new = self
                .inner
                .topics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(topic.hash(), thread)
                .is_none();
            if new {
                self.inner
                    .commands
                    .send(Command::Subscribe(topic))
                    .await
                    .map_err(|_| NetError::Shutdown)?;
            }
        }
        Ok(())
    }

    /// Stops syncing `thread`: forgets its peers and ignores its announcements. Delete its
    /// data from the store too ([`ThreadBook::delete_thread`](threads_store::ThreadBook))
    /// to leave it: the node then answers requests about it as about an unknown thread.
    pub fn forget(&self, thread: ThreadId) {
        self.inner.peers.forget(thread);
        self.inner.log_addrs.forget(thread);
        self.inner
            .topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| *t != thread);
    }

    /// Announces that `log` of `thread` has `counter` entries to the thread's subscribers.
    /// Returns whether any peer was there to hear it.
    pub async fn announce(
        &self,
        thread: ThreadId,
        log: LogId,
        counter: u64,
    ) -> Result<bool, NetError> {
        let key = self.key(thread).await?;
        // Only on the newest epoch's topic: a member revoked before it does not hear it.
        let topic = gossipsub::IdentTopic::new(topic_name(key.epoch_service(), &thread));
        let (reply, answer) = oneshot::channel();
        let data = encode_announcement(&log, counter);
        self.inner
            .commands
            .send(Command::Publish { topic, data, reply })
            .await
            .map_err(|_| NetError::Shutdown)?;
        answer.await.map_err(|_| NetError::Shutdown)
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer
    }

    /// The addresses this node listens on now (with `/p2p/<peer>`): every interface of a
    /// wildcard (`0.0.0.0`, `::`) listener.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        let addrs = self.addrs().listen;
        self.with_peer(addrs)
    }

    /// The external addresses: announced ([`NetConfig::with_announce`]) and confirmed by
    /// peers (with `/p2p/<peer>`).
    pub fn external_addrs(&self) -> Vec<Multiaddr> {
        let addrs = self.addrs().external;
        self.with_peer(addrs)
    }

    /// The addresses this node gives remote peers (invites, address exchanges), best first:
    /// external ones, then listen addresses that are not loopback, and loopback ones only
    /// when there is nothing else; never a wildcard.
    pub fn advertised_addrs(&self) -> Vec<Multiaddr> {
        let addrs = self.addrs().advertised();
        self.with_peer(addrs)
    }

    fn addrs(&self) -> Addrs {
        self.inner
            .addrs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn with_peer(&self, addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
        addrs
            .into_iter()
            .map(|a| a.with_p2p(self.inner.peer).unwrap_or_else(|a| a))
            .collect()
    }

    /// The best address of `thread` on this node (the first of [`Node::thread_addrs`]).
    pub fn thread_addr(&self, thread: ThreadId) -> Option<ThreadAddr> {
        self.thread_addrs(thread).into_iter().next()
    }

    /// Every address of `thread` on this node that a remote peer may dial, best first
    /// ([`Node::advertised_addrs`]), for invites.
    pub fn thread_addrs(&self, thread: ThreadId) -> Vec<ThreadAddr> {
        self.advertised_addrs()
            .into_iter()
            .filter_map(|a| ThreadAddr::new(a, thread).ok())
            .take(crate::invite::MAX_INVITE_ADDRS)
            .collect()
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.inner.store
    }

    /// The sync health.
    pub fn health(&self) -> &Arc<Health> {
        &self.inner.health
    }

    /// The faults this node injects (none unless configured with
    /// [`NetConfig::with_faults`]).
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The sync status of every (thread, log, peer) this node has dealt with: the health
    /// counters with this node's counter, its lag behind the peer, and how far the peer
    /// lags behind it.
    pub async fn sync_status(&self) -> Result<Vec<SyncStatus>, NetError> {
        let mut out = Vec::new();
        let mut stops: HashMap<ThreadId, std::collections::BTreeMap<LogId, u64>> = HashMap::new();
        for row in self.inner.health.report() {
            let local = self
                .inner
                .store
                .head(row.thread, row.log)
                .await?
                .map_or(0, |h| h.counter);
            if let std::collections::hash_map::Entry::Vacant(entry) = stops.entry(row.thread) {
                entry.insert(threads_store::fork_stops(&*self.inner.store, row.thread).await?);
            }
            let forked = stops
                .get(&row.thread)
                .and_then(|s| s.get(&row.log))
                .copied();
            let mut status = SyncStatus::new(row, local);
            status.forked = forked;
            out.push(status);
        }
        Ok(out)
    }

    /// How many times entries received from peers (pulled or pushed) were stored since the
    /// node started. It is counted before the [`NetEvent::Stored`] event is sent, so a
    /// reader that saw the same count before and after its own work knows no entry arrived
    /// meanwhile.
    pub fn arrivals(&self) -> u64 {
        self.inner
            .arrivals
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Events of this node, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NetEvent> {
        self.inner.events.subscribe()
    }

    /// Remembers `addr` as a peer of its thread: pushes go there, pulls come from there.
    /// The thread's peers are persisted at the next sync round (or at once with
    /// [`Node::remember_peer`]). Returns whether the address was new.
    pub fn add_peer(&self, addr: ThreadAddr) -> bool {
        self.inner.peers.add(addr, self.inner.peer)
    }

    /// [`Node::add_peer`], persisted before it returns.
    pub async fn remember_peer(&self, addr: ThreadAddr) -> Result<bool, NetError> {
        let thread = addr.thread_id();
        let added = self.add_peer(addr);
        self.inner.peers.save(&*self.inner.store, thread).await?;
        Ok(added)
    }

    /// The known peers of `thread` (from invites, [`Node::add_peer`] and peer exchange).
    pub fn peers_of(&self, thread: ThreadId) -> Vec<ThreadAddr> {
        self.inner.peers.of(thread)
    }

    /// The log address book of `thread`: for each log, the addresses of the peers that
    /// served it (answered a sync request listing it) within the node's address TTL
    /// ([`NetConfig::with_addr_ttl`]), the writer's own and its followers'. Addresses that
    /// stopped answering are not listed.
    ///
    /// # Errors
    /// The store's.
    pub async fn log_addrs(
        &self,
        thread: ThreadId,
    ) -> Result<Vec<(threads_id::LogId, Vec<ThreadAddr>)>, NetError> {
        Ok(crate::logaddrs::of_thread(&*self.inner.store, thread).await?)
    }

    /// Sends `request` to `peer` (dialing `addrs` if not connected) and waits for the answer.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the answer; the request may still reach the peer.
    pub async fn request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Response, NetError> {
        if self.inner.faults.is_blocked(&peer) {
            return Err(NetError::Request {
                peer,
                reason: "unreachable (partitioned by fault injection)".to_owned(),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Request {
                peer,
                addrs,
                request: Box::new(request),
                reply,
            })
            .await
            .map_err(|_| NetError::Shutdown)?;
        let response = answer.await.map_err(|_| NetError::Shutdown)??;
        match response {
            Response::Refused(refusal) => Err(NetError::Refused { peer, refusal }),
            other => Ok(other),
        }
    }

    pub(crate) async fn key(&self, thread: ThreadId) -> Result<ThreadKey, NetError> {
        self.inner
            .store
            .thread_key(thread)
            .await?
            .ok_or(NetError::Refused {
                peer: self.inner.peer,
                refusal: Refusal::UnknownThread,
            })
    }

    /// Writes `payload` to `writer`'s log: appends after the stored head (with the skip
    /// link the counter needs), stores the entry, and queues it for every known peer of
    /// the thread and for a head announcement ([`Node::publish`]). This is the write of
    /// logs replicated without views; a database (threads-db) writes through its own path
    /// (`Db::write`), which checks a write against the views and stores it with the rows
    /// that apply it. Returns once the entry
    /// is stored; the push goes out in the background, in log order, retried until the
    /// peer has it.
    ///
    /// # Cancel safety
    /// The entry is stored or not (one transaction); once stored, it is published whether
    /// or not the future is dropped (the periodic sync covers a drop in between).
    pub async fn write(
        &self,
        writer: &Writer,
        payload: &[u8],
        time: Hlc,
    ) -> Result<Appended, NetError> {
        let appended =
            threads_store::write_local(&*self.inner.store, writer, payload, time).await?;
        self.publish(writer.thread_id(), writer.log_id());
        Ok(appended)
    }

    /// Stops the node and waits until every task it started has ended (the swarm, which
    /// closes its listeners; the sync; the pushers), also when called from several handles
    /// at once. Entries queued for pushing and not yet sent stay in the store, and peers
    /// pull them later.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match tasks {
            Some(mut tasks) => {
                while tasks.join_next().await.is_some() {}
                self.inner.stopped.send_replace(true);
            }
            // Another call is joining the tasks: wait until it is done.
            None => {
                let mut stopped = self.inner.stopped.subscribe();
                let _ = stopped.wait_for(|done| *done).await;
            }
        }
    }

    /// How many requests of `peer` were refused for going over its limits
    /// ([`NetConfig::with_peer_limits`]).
    pub fn refused_requests(&self, peer: &PeerId) -> u64 {
        self.inner
            .limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused(peer)
    }

    fn change_addrs(&self, change: impl FnOnce(&mut Addrs)) {
        change(
            &mut self
                .inner
                .addrs
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// Whether [`Node::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }
}

/// An inbound request counted in flight for its peer until dropped.
struct InFlight {
    limits: Arc<Mutex<PeerLimits>>,
    peer: PeerId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .done(self.peer);
    }
}

/// The swarm's task: drives the swarm, sends requests, answers inbound ones.
async fn run<S: Store + 'static>(
    node: Node<S>,
    mut swarm: libp2p::Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    wake: mpsc::Sender<Wake>,
    config: NetConfig,
) {
    let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, NetError>>> =
        HashMap::new();
    let mut inbound: JoinSet<(ResponseChannel<Response>, Response)> = JoinSet::new();
    let cancel = node.inner.cancel.clone();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            command = commands.recv() => {
                match command {
                    None => break,
                    Some(Command::Request { peer, addrs, request, reply }) => {
                        let id = swarm.behaviour_mut().sync.send_request_with_addresses(&peer, *request, addrs);
                        pending.insert(id, reply);
                    }
                    Some(Command::Subscribe(topic)) => {
                        if let Err(e) = swarm.behaviour_mut().gossip.subscribe(&topic) {
                            tracing::warn!(error = %e, "gossipsub subscribe failed");
                        }
                    }
                    Some(Command::Publish { topic, data, reply }) => {
                        let _ = reply.send(swarm.behaviour_mut().gossip.publish(topic, data).is_ok());
                    }
                }
            }
            Some(done) = inbound.join_next(), if !inbound.is_empty() => {
                if let Ok((channel, response)) = done {
                    let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. })) => match message {
                    request_response::Message::Request { request, channel, .. } => {
                        if inbound.len() >= config.max_inbound_tasks || node.inner.faults.is_blocked(&peer) {
                            let _ = swarm.behaviour_mut().sync.send_response(channel, Response::Refused(Refusal::Unavailable));
                            continue;
                        }
                        // Within the peer's own limits, or refused before it is read further.
                        let admitted = node.inner.limits.lock().unwrap_or_else(|p| p.into_inner()).admit(peer, std::time::Instant::now());
                        if !admitted {
                            tracing::debug!(%peer, "request over the peer's limits refused");
                            let _ = swarm.behaviour_mut().sync.send_response(channel, Response::Refused(Refusal::Unavailable));
                            continue;
                        }
                        let in_flight = InFlight { limits: Arc::clone(&node.inner.limits), peer };
                        // The peer is back: the periodic sync stops waiting for it.
                        node.inner.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(&peer);
                        node.inner.peers.answered(peer);
                        let node = node.clone();
                        let wake = wake.clone();
                        inbound.spawn(async move {
                            // Answered (or dropped): no longer in flight for the peer.
                            let _in_flight = in_flight;
                            let pushed = match &request {
                                Request::PushRecords { thread, log, .. } => Some((*thread, *log)),
                                _ => None,
                            };
                            let addrs = node.advertised_addrs();
                            let responder = Responder {
                                store: &*node.inner.store,
                                health: &node.inner.health,
                                admission: &*node.inner.admission,
                                peers: &node.inner.peers,
                                local: node.inner.peer,
                                addrs: &addrs,
                                quota: &node.inner.quota,
                                forks: &node.inner.forks,
                                events: &node.inner.events,
                            };
                            let response = serve(&responder, peer, request).await;
                            match (pushed, &response) {
                                (Some((thread, log)), Response::Pushed { counter }) => {
                                    node.inner.arrivals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    let _ = node.inner.events.send(NetEvent::Stored { thread, log, counter: *counter });
                                }
                                // The pusher has entries we lack before its batch: pull them
                                // (a full queue drops the wake; the periodic sync catches up).
                                // Also when it holds another branch of the log: the pull
                                // locates the fork.
                                (Some((thread, _)), Response::Refused(Refusal::Rejected(code))) if code == "gap" || code == "fork" => {
                                    let _ = wake.try_send(Wake::Gap { thread, from: peer });
                                }
                                _ => {}
                            }
                            (channel, response)
                        });
                    }
                    request_response::Message::Response { request_id, response } => {
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                },
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure { peer, request_id, error, .. })) => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _ = reply.send(Err(NetError::Request { peer, reason: error.to_string() }));
                    }
                }
                SwarmEvent::NewListenAddr { address, .. } => node.change_addrs(|a| a.listening(address)),
                SwarmEvent::ExpiredListenAddr { address, .. } => node.change_addrs(|a| a.expired(&address)),
                SwarmEvent::ExternalAddrConfirmed { address } => node.change_addrs(|a| a.external(address)),
                SwarmEvent::ExternalAddrExpired { address } => node.change_addrs(|a| a.external_expired(&address)),
                SwarmEvent::ListenerClosed { addresses, reason, .. } => {
                    if let Err(error) = reason {
                        tracing::warn!(%error, "a listener closed");
                    }
                    node.change_addrs(|a| for addr in &addresses { a.expired(addr); });
                }
                SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                    tracing::info!(?event, "relay client");
                }
                SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => {
                    tracing::debug!(?event, "relay");
                }
                SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => {
                    tracing::info!(?event, "hole punching");
                }
                #[cfg(feature = "relay")]
                SwarmEvent::Behaviour(BehaviourEvent::Autonat(libp2p::autonat::Event::StatusChanged { old, new })) => {
                    tracing::info!(?old, ?new, "NAT status");
                }
                #[cfg(feature = "mdns")]
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found))) => {
                    for (peer, addr) in found {
                        swarm.add_peer_address(peer, addr);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message { propagation_source, message, .. })) => {
                    let from = message.source.unwrap_or(propagation_source);
                    // A full queue drops the announcement: the periodic pull catches up.
                    let _ = wake.try_send(Wake::Heard { topic: message.topic, from, data: message.data });
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::InboundFailure { peer, error, .. })) => {
                    tracing::debug!(%peer, %error, "inbound sync request failed");
                }
                _ => {}
            },
        }
    }
    inbound.shutdown().await;
    // Close every connection and wait (at most a second) until their tasks report closed,
    // so that no connection task of this node outlives the shutdown.
    let connected: Vec<PeerId> = swarm.connected_peers().copied().collect();
    for peer in connected {
        let _ = swarm.disconnect_peer_id(peer);
    }
    let deadline = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(deadline);
    while swarm.connected_peers().next().is_some() {
        tokio::select! {
            () = &mut deadline => break,
            _ = swarm.select_next_some() => {}
        }
    }
}
