//! The libp2p host: a swarm (TCP + Noise + Yamux, identify, ping, the sync protocol over
//! request-response) run by one task, and [`Node`], a cheap handle that sends it commands.
//!
//! Inbound requests are answered by [`serve`] in tasks of a bounded set, so a slow store
//! never stalls the swarm; outbound requests get their responses through `oneshot`
//! channels. Every channel is bounded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, gossipsub, identify, mdns, noise, ping, tcp, yamux,
};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, ThreadAddr, ThreadId};
use threads_log::{Appended, Entry, Hlc, Writer};
use threads_store::Store;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, AdmitAll};
use crate::auth::AuthProof;
use crate::gossip::{decode_announcement, encode_announcement, topic_name};
use crate::health::{Health, SyncStatus};
use crate::ingest::ingest;
use crate::invite::Invite;
use crate::message::{
    Edge, MAX_PAGE_BYTES, MAX_PAGE_ENTRIES, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Refusal,
    Request, Response, WireEntry,
};
use crate::serve::serve;

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
}

/// How a node runs.
#[derive(Clone)]
pub struct NetConfig {
    listen: Vec<Multiaddr>,
    request_timeout: Duration,
    max_inbound_tasks: usize,
    mdns: bool,
    admission: Arc<dyn Admission>,
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("listen", &self.listen)
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
            request_timeout: Duration::from_secs(30),
            max_inbound_tasks: 64,
            mdns: false,
            admission: Arc::new(AdmitAll),
        }
    }

    /// Which peers may receive a thread's records (default: every peer that proves the
    /// service key). Checked before serving a request and before pushing.
    pub fn with_admission(mut self, admission: impl Admission) -> NetConfig {
        self.admission = Arc::new(admission);
        self
    }

    /// Discover peers on the local network with mDNS (off by default: it announces this
    /// node to the whole network segment).
    pub fn with_mdns(mut self, on: bool) -> NetConfig {
        self.mdns = on;
        self
    }

    /// Whether mDNS is on.
    pub fn mdns(&self) -> bool {
        self.mdns
    }

    /// How long a request may take.
    pub fn with_request_timeout(mut self, timeout: Duration) -> NetConfig {
        self.request_timeout = timeout;
        self
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    sync: request_response::Behaviour<request_response::cbor::codec::Codec<Request, Response>>,
    gossip: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
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
    store: Arc<S>,
    peer: PeerId,
    addrs: Vec<Multiaddr>,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NetEvent>,
    health: Arc<Health>,
    peers: Arc<std::sync::Mutex<HashMap<ThreadId, Vec<ThreadAddr>>>>,
    topics: Arc<std::sync::Mutex<HashMap<gossipsub::TopicHash, ThreadId>>>,
    admission: Arc<dyn Admission>,
    cancel: CancellationToken,
}

/// A head announcement received over gossipsub.
struct Heard {
    topic: gossipsub::TopicHash,
    from: PeerId,
    data: Vec<u8>,
}

// Written by hand: a derive would ask `S: Clone`, but only the `Arc` is cloned.
impl<S> Clone for Node<S> {
    fn clone(&self) -> Node<S> {
        Node {
            store: Arc::clone(&self.store),
            peer: self.peer,
            addrs: self.addrs.clone(),
            commands: self.commands.clone(),
            events: self.events.clone(),
            health: Arc::clone(&self.health),
            peers: Arc::clone(&self.peers),
            topics: Arc::clone(&self.topics),
            admission: Arc::clone(&self.admission),
            cancel: self.cancel.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer", &self.peer)
            .field("addrs", &self.addrs)
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
        let codec = request_response::cbor::codec::Codec::<Request, Response>::default()
            .set_request_size_maximum(MAX_REQUEST_BYTES as u64)
            .set_response_size_maximum(MAX_RESPONSE_BYTES as u64);
        let sync_config = request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(config.max_inbound_tasks);
        let builder = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Transport(e.to_string()))?;
        // QUIC listens on `/udp/<port>/quic-v1` addresses when the feature is on.
        #[cfg(feature = "quic")]
        let builder = builder.with_quic();
        let mut swarm = builder
            .with_behaviour(|key| Behaviour {
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
                // mDNS failing to start (no multicast) leaves it off rather than failing.
                mdns: Toggle::from(
                    config
                        .mdns
                        .then(|| {
                            mdns::tokio::Behaviour::new(
                                mdns::Config::default(),
                                key.public().to_peer_id(),
                            )
                            .ok()
                        })
                        .flatten(),
                ),
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
            })
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Transport(e.to_string()))?;
        }
        let mut addrs = Vec::new();
        while addrs.len() < config.listen.len() {
            match swarm.next().await {
                Some(SwarmEvent::NewListenAddr { address, .. }) => addrs.push(address),
                Some(SwarmEvent::ListenerError { error, .. }) => {
                    return Err(NetError::Transport(error.to_string()));
                }
                Some(_) => {}
                None => return Err(NetError::Shutdown),
            }
        }
        let (commands, command_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let health = Arc::new(Health::new());
        let cancel = CancellationToken::new();
        let peer = *swarm.local_peer_id();
        let (heard_tx, mut heard_rx) = mpsc::channel::<Heard>(1024);
        tokio::spawn(run(
            swarm,
            command_rx,
            heard_tx,
            Arc::clone(&store),
            Arc::clone(&health),
            Arc::clone(&config.admission),
            config.max_inbound_tasks,
            events.clone(),
            cancel.clone(),
        ));
        let node = Node {
            store,
            peer,
            addrs,
            commands,
            events,
            health,
            peers: Arc::default(),
            topics: Arc::default(),
            admission: Arc::clone(&config.admission),
            cancel,
        };
        // Announcements are handled one at a time: each may start a pull.
        let listener = node.clone();
        tokio::spawn(async move {
            loop {
                let heard = tokio::select! {
                    () = listener.cancel.cancelled() => break,
                    heard = heard_rx.recv() => match heard {
                        Some(heard) => heard,
                        None => break,
                    },
                };
                listener.on_announcement(heard).await;
            }
        });
        Ok(node)
    }

    async fn on_announcement(&self, heard: Heard) {
        let thread = {
            let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
            topics.get(&heard.topic).copied()
        };
        let (Some(thread), Some((log, counter))) = (thread, decode_announcement(&heard.data))
        else {
            return;
        };
        self.health.peer_has(thread, log, heard.from, counter);
        let ours = self
            .store
            .head(thread, log)
            .await
            .ok()
            .flatten()
            .map_or(0, |h| h.counter);
        if ours < counter
            && let Err(e) = self.pull_peer(thread, heard.from, Vec::new()).await
        {
            self.health.error(thread, log, heard.from, e.to_string());
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
        self.store.put_thread(thread, &key).await?;
        self.watch(thread).await?;
        Ok((thread, key))
    }

    /// Subscribes to `thread`'s head announcements; peers that announce a head past ours
    /// are pulled from at once.
    pub async fn watch(&self, thread: ThreadId) -> Result<(), NetError> {
        let key = self.key(thread).await?;
        let topic = gossipsub::IdentTopic::new(topic_name(key.service(), &thread));
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.hash(), thread);
        self.commands
            .send(Command::Subscribe(topic))
            .await
            .map_err(|_| NetError::Shutdown)
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
        let topic = gossipsub::IdentTopic::new(topic_name(key.service(), &thread));
        let (reply, answer) = oneshot::channel();
        let data = encode_announcement(&log, counter);
        self.commands
            .send(Command::Publish { topic, data, reply })
            .await
            .map_err(|_| NetError::Shutdown)?;
        answer.await.map_err(|_| NetError::Shutdown)
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The addresses this node listens on (with `/p2p/<peer>`).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.addrs
            .iter()
            .map(|a| a.clone().with_p2p(self.peer).unwrap_or_else(|a| a))
            .collect()
    }

    /// The address of `thread` on this node, for invites.
    pub fn thread_addr(&self, thread: ThreadId) -> Option<ThreadAddr> {
        self.listen_addrs()
            .into_iter()
            .find_map(|a| ThreadAddr::new(a, thread).ok())
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The sync health.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The sync status of every (thread, log, peer) this node has dealt with: the health
    /// counters with this node's counter and its lag behind the peer.
    pub async fn sync_status(&self) -> Result<Vec<SyncStatus>, NetError> {
        let mut out = Vec::new();
        for row in self.health.report() {
            let local = self
                .store
                .head(row.thread, row.log)
                .await?
                .map_or(0, |h| h.counter);
            out.push(SyncStatus::new(row, local));
        }
        Ok(out)
    }

    /// Events of this node, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NetEvent> {
        self.events.subscribe()
    }

    /// Remembers `addr` as a peer of its thread: pushes go there, pulls come from there.
    pub fn add_peer(&self, addr: ThreadAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let list = peers.entry(addr.thread_id()).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
    }

    fn peers_of(&self, thread: ThreadId) -> Vec<ThreadAddr> {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&thread)
            .cloned()
            .unwrap_or_default()
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
        let (reply, answer) = oneshot::channel();
        self.commands
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

    async fn key(&self, thread: ThreadId) -> Result<ThreadKey, NetError> {
        self.store
            .thread_key(thread)
            .await?
            .ok_or(NetError::Refused {
                peer: self.peer,
                refusal: Refusal::UnknownThread,
            })
    }

    /// Pulls every log of `thread` from the peer at `addr`, page by page, verifying and
    /// storing each page before asking for the next, until the peer has nothing more.
    /// Returns the number of entries stored.
    ///
    /// # Cancel safety
    /// Each stored page is complete; dropping the future stops between pages.
    pub async fn pull(&self, addr: &ThreadAddr) -> Result<usize, NetError> {
        self.pull_peer(
            addr.thread_id(),
            addr.peer_id(),
            vec![addr.transport_addr()],
        )
        .await
    }

    /// [`Node::pull`] from `peer`, dialing `dial` if not connected.
    async fn pull_peer(
        &self,
        thread: ThreadId,
        peer: PeerId,
        dial: Vec<Multiaddr>,
    ) -> Result<usize, NetError> {
        let key = self.key(thread).await?;
        let proof = AuthProof::new(key.service(), &thread, &self.peer, &peer);
        let Response::Logs(logs) = self
            .request(peer, dial.clone(), Request::GetLogs { thread, proof })
            .await?
        else {
            return Err(NetError::Unexpected(peer));
        };
        let mut stored = 0;
        for remote in logs {
            self.health
                .peer_has(thread, remote.log, peer, remote.counter);
            let mut after = self
                .store
                .head(thread, remote.log)
                .await?
                .map_or(0, |h| h.counter);
            while after < remote.counter {
                let request = Request::GetRecords {
                    thread,
                    proof,
                    log: remote.log,
                    after,
                    max_entries: MAX_PAGE_ENTRIES,
                    max_bytes: MAX_PAGE_BYTES,
                };
                let Response::Records(page) = self.request(peer, dial.clone(), request).await?
                else {
                    return Err(NetError::Unexpected(peer));
                };
                if page.is_empty() {
                    break;
                }
                match ingest(&*self.store, thread, remote.log, &key, page).await {
                    Ok(done) => {
                        self.health.accepted(thread, remote.log, peer, done.stored);
                        stored += done.stored;
                        if done.counter <= after {
                            break;
                        }
                        after = done.counter;
                        let _ = self.events.send(NetEvent::Stored {
                            thread,
                            log: remote.log,
                            counter: after,
                        });
                    }
                    Err(rejection) => {
                        self.health.rejected(thread, remote.log, peer, &rejection);
                        return Err(NetError::Rejected { peer, rejection });
                    }
                }
            }
        }
        Ok(stored)
    }

    /// Joins a thread from an invite: stores its keys, remembers its addresses as peers, and
    /// pulls it from the first address that answers. Returns the thread and the number of
    /// entries stored.
    pub async fn join(
        &self,
        invite: &Invite,
        me: &Identity,
    ) -> Result<(ThreadId, usize), NetError> {
        let (addrs, keys) = invite
            .open(me)
            .map_err(|e| NetError::Invite(e.to_string()))?;
        let thread = keys.thread_id();
        self.store.put_thread(thread, keys.thread_key()).await?;
        self.watch(thread).await?;
        for addr in &addrs {
            self.add_peer(addr.clone());
        }
        let mut last = None;
        for addr in &addrs {
            match self.pull(addr).await {
                Ok(stored) => return Ok((thread, stored)),
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e),
            None => Ok((thread, 0)),
        }
    }

    /// Writes `payload` to `writer`'s log: appends after the stored head (with the skip
    /// link the counter needs), stores the entry, pushes it to the thread's known peers at
    /// once and announces the new head. Push failures are recorded in the health report;
    /// the entry is stored either way and peers pull it later.
    ///
    /// # Cancel safety
    /// The entry is stored or not (one transaction); if the future is dropped after that,
    /// the push may not have happened, and peers pull the entry later.
    pub async fn write(
        &self,
        writer: &Writer,
        payload: &[u8],
        time: Hlc,
    ) -> Result<Appended, NetError> {
        let (thread, log) = (writer.thread_id(), writer.log_id());
        let appended = threads_store::write_local(&*self.store, writer, payload, time).await?;
        self.push(thread, log, std::slice::from_ref(&appended.entry))
            .await?;
        let _ = self.announce(thread, log, appended.record.counter()).await;
        Ok(appended)
    }

    /// Pushes `entries` (new entries of `log`, oldest first) to every known peer of
    /// `thread`. Failures are recorded in the health report; returns how many peers took
    /// them.
    pub async fn push(
        &self,
        thread: ThreadId,
        log: LogId,
        entries: &[Entry],
    ) -> Result<usize, NetError> {
        let key = self.key(thread).await?;
        let wire: Vec<WireEntry> = entries.iter().map(WireEntry::from_entry).collect();
        let mut ok = 0;
        for addr in self.peers_of(thread) {
            let peer = addr.peer_id();
            if !self.admission.admits(thread, peer) {
                continue;
            }
            let proof = AuthProof::new(key.service(), &thread, &self.peer, &peer);
            let request = Request::PushRecords {
                thread,
                proof,
                log,
                entries: wire.clone(),
            };
            match self
                .request(peer, vec![addr.transport_addr()], request)
                .await
            {
                Ok(Response::Pushed { counter }) => {
                    self.health.peer_has(thread, log, peer, counter);
                    ok += 1;
                }
                Ok(_) => self
                    .health
                    .error(thread, log, peer, "unexpected response".to_owned()),
                Err(e) => self.health.error(thread, log, peer, e.to_string()),
            }
        }
        Ok(ok)
    }

    /// Starts pulling every known peer of every thread every `interval` (with ±25%
    /// jitter, so peers do not fall into step). A peer that fails is retried after a delay
    /// that doubles up to 64 intervals; errors go to the health report. Stops with the node.
    pub fn start_sync(&self, interval: Duration) {
        let node = self.clone();
        tokio::spawn(async move {
            let mut backoff: HashMap<PeerId, (u32, tokio::time::Instant)> = HashMap::new();
            loop {
                let jitter = 0.75 + rand::random::<f64>() * 0.5;
                tokio::select! {
                    () = node.cancel.cancelled() => break,
                    () = tokio::time::sleep(interval.mul_f64(jitter)) => {}
                }
                // Group the known addresses by peer: one ExchangeEdges per peer covers all
                // the threads shared with it, and only threads whose heads differ are pulled.
                let mut by_peer: HashMap<PeerId, Vec<ThreadAddr>> = HashMap::new();
                {
                    let peers = node.peers.lock().unwrap_or_else(|p| p.into_inner());
                    for addr in peers.values().flatten() {
                        by_peer
                            .entry(addr.peer_id())
                            .or_default()
                            .push(addr.clone());
                    }
                }
                for (peer, addrs) in by_peer {
                    let now = tokio::time::Instant::now();
                    if backoff.get(&peer).is_some_and(|(_, until)| *until > now) {
                        continue;
                    }
                    match node.sync_with(peer, &addrs).await {
                        Ok(()) => {
                            backoff.remove(&peer);
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "sync failed");
                            let failures = backoff.get(&peer).map_or(0, |(n, _)| *n) + 1;
                            let delay = interval * 2u32.saturating_pow(failures.min(6));
                            backoff.insert(peer, (failures, now + delay));
                        }
                    }
                }
            }
        });
    }

    /// Compares every thread shared with `peer` in one `ExchangeEdges` request and pulls
    /// the threads whose heads differ.
    async fn sync_with(&self, peer: PeerId, addrs: &[ThreadAddr]) -> Result<(), NetError> {
        let mut edges = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let thread = addr.thread_id();
            let key = self.key(thread).await?;
            let digest = self.store.heads_digest(thread).await?;
            edges.push(Edge {
                thread,
                proof: AuthProof::new(key.service(), &thread, &self.peer, &peer),
                digest: digest.0,
            });
        }
        let dial: Vec<Multiaddr> = addrs.iter().map(ThreadAddr::transport_addr).collect();
        let Response::Edges(answers) = self
            .request(
                peer,
                dial,
                Request::ExchangeEdges {
                    edges: edges.clone(),
                },
            )
            .await?
        else {
            return Err(NetError::Unexpected(peer));
        };
        if answers.len() != edges.len() {
            return Err(NetError::Unexpected(peer));
        }
        for ((addr, edge), answer) in addrs.iter().zip(&edges).zip(answers) {
            match answer {
                Some(theirs) if theirs.0 == edge.digest => {}
                Some(_) => {
                    self.pull(addr).await?;
                }
                None => {
                    tracing::debug!(%peer, thread = %edge.thread, "peer does not share the thread")
                }
            }
        }
        Ok(())
    }

    /// Stops the node's tasks.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// The swarm's task: drives the swarm, sends requests, answers inbound ones.
#[allow(clippy::too_many_arguments)]
async fn run<S: Store + 'static>(
    mut swarm: libp2p::Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    heard: mpsc::Sender<Heard>,
    store: Arc<S>,
    health: Arc<Health>,
    admission: Arc<dyn Admission>,
    max_inbound: usize,
    events: broadcast::Sender<NetEvent>,
    cancel: CancellationToken,
) {
    let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, NetError>>> =
        HashMap::new();
    let mut inbound: JoinSet<(ResponseChannel<Response>, Response)> = JoinSet::new();
    let local = *swarm.local_peer_id();
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
                        if inbound.len() >= max_inbound {
                            let _ = swarm.behaviour_mut().sync.send_response(channel, Response::Refused(Refusal::Unavailable));
                            continue;
                        }
                        let store = Arc::clone(&store);
                        let health = Arc::clone(&health);
                        let admission = Arc::clone(&admission);
                        let events = events.clone();
                        inbound.spawn(async move {
                            let pushed = match &request {
                                Request::PushRecords { thread, log, .. } => Some((*thread, *log)),
                                _ => None,
                            };
                            let response = serve(&*store, &health, &*admission, local, peer, request).await;
                            if let (Some((thread, log)), Response::Pushed { counter }) = (pushed, &response) {
                                let _ = events.send(NetEvent::Stored { thread, log, counter: *counter });
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
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                    for (peer, addr) in found {
                        swarm.add_peer_address(peer, addr);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message { propagation_source, message, .. })) => {
                    let from = message.source.unwrap_or(propagation_source);
                    // A full queue drops the announcement: the periodic pull catches up.
                    let _ = heard.try_send(Heard { topic: message.topic, from, data: message.data });
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::InboundFailure { peer, error, .. })) => {
                    tracing::debug!(%peer, %error, "inbound sync request failed");
                }
                _ => {}
            },
        }
    }
    inbound.shutdown().await;
}
