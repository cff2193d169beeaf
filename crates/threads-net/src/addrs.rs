//! This node's addresses: where it listens (every interface of a `0.0.0.0` or `::`
//! listener, as the transport reports them), the external addresses it was told to announce
//! or that peers confirmed, and which of them it gives to a remote peer.
//!
//! A remote peer is never handed a loopback address unless this node has nothing else (it
//! listens on loopback only, as tests and the default daemon do), nor an unspecified one
//! (`0.0.0.0`, `::`), which no one can dial.

use std::net::IpAddr;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// The addresses of a node, kept up to date by the swarm's task.
#[derive(Debug, Default, Clone)]
pub(crate) struct Addrs {
    /// Where the transports listen (one per interface for a wildcard listener).
    pub(crate) listen: Vec<Multiaddr>,
    /// Announced (configured) and confirmed external addresses.
    pub(crate) external: Vec<Multiaddr>,
}

impl Addrs {
    /// Adds a listen address (once).
    pub(crate) fn listening(&mut self, addr: Multiaddr) {
        if !self.listen.contains(&addr) {
            tracing::info!(%addr, "listening");
            self.listen.push(addr);
        }
    }

    /// Removes a listen address that expired (an interface went away).
    pub(crate) fn expired(&mut self, addr: &Multiaddr) {
        if let Some(at) = self.listen.iter().position(|a| a == addr) {
            tracing::info!(%addr, "no longer listening");
            self.listen.remove(at);
        }
    }

    /// Adds an external address (once).
    pub(crate) fn external(&mut self, addr: Multiaddr) {
        if !self.external.contains(&addr) {
            tracing::info!(%addr, "external address");
            self.external.push(addr);
        }
    }

    /// Removes an external address that expired.
    pub(crate) fn external_expired(&mut self, addr: &Multiaddr) {
        if let Some(at) = self.external.iter().position(|a| a == addr) {
            tracing::info!(%addr, "external address expired");
            self.external.remove(at);
        }
    }

    /// The addresses to give a remote peer, best first: external ones, then listen
    /// addresses that are not loopback; loopback ones only when there is nothing else.
    /// Unspecified addresses are never given.
    pub(crate) fn advertised(&self) -> Vec<Multiaddr> {
        advertised(&self.listen, &self.external)
    }
}

/// See [`Addrs::advertised`].
pub(crate) fn advertised(listen: &[Multiaddr], external: &[Multiaddr]) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    for addr in external.iter().chain(listen) {
        if !unspecified(addr) && !is_loopback(addr) && !out.contains(addr) {
            out.push(addr.clone());
        }
    }
    if out.is_empty() {
        out = listen.iter().filter(|a| !unspecified(a)).cloned().collect();
    }
    out
}

/// The IP address a multiaddr starts with, if it does.
fn ip(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// Whether `addr` is on the loopback interface (`127.0.0.0/8`, `::1`, `/dns/localhost`).
pub fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Dns(host) | Protocol::Dns4(host) | Protocol::Dns6(host)) => {
            host == "localhost"
        }
        _ => ip(addr).is_some_and(|ip| ip.is_loopback()),
    }
}

/// Whether `addr` is a wildcard (`0.0.0.0`, `::`) that nobody can dial.
fn unspecified(addr: &Multiaddr) -> bool {
    ip(addr).is_some_and(|ip| ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("multiaddr")
    }

    #[test]
    fn remote_peers_get_no_loopback_when_there_is_anything_else() {
        let listen = vec![
            addr("/ip4/127.0.0.1/tcp/4001"),
            addr("/ip4/192.0.2.7/tcp/4001"),
            addr("/ip6/::1/tcp/4001"),
            addr("/ip6/fd00::7/tcp/4001"),
        ];
        let external = vec![addr("/dns4/example.org/tcp/4001")];
        assert_eq!(
            advertised(&listen, &external),
            vec![
                addr("/dns4/example.org/tcp/4001"),
                addr("/ip4/192.0.2.7/tcp/4001"),
                addr("/ip6/fd00::7/tcp/4001"),
            ]
        );
    }

    #[test]
    fn a_loopback_only_node_gives_its_loopback_addresses_and_never_a_wildcard() {
        let listen = vec![
            addr("/ip4/127.0.0.1/tcp/4001"),
            addr("/ip4/0.0.0.0/tcp/4002"),
        ];
        assert_eq!(
            advertised(&listen, &[]),
            vec![addr("/ip4/127.0.0.1/tcp/4001")]
        );
        assert!(advertised(&[addr("/ip6/::/tcp/1")], &[]).is_empty());
    }

    #[test]
    fn addresses_come_and_go_once() {
        let mut addrs = Addrs::default();
        let a = addr("/ip4/192.0.2.7/tcp/4001");
        addrs.listening(a.clone());
        addrs.listening(a.clone());
        addrs.external(addr("/ip4/198.51.100.1/tcp/4001"));
        addrs.external(addr("/ip4/198.51.100.1/tcp/4001"));
        assert_eq!(addrs.listen.len(), 1);
        assert_eq!(addrs.external.len(), 1);
        addrs.expired(&a);
        addrs.external_expired(&addr("/ip4/198.51.100.1/tcp/4001"));
        assert!(addrs.listen.is_empty() && addrs.external.is_empty());
        assert!(is_loopback(&addr("/dns/localhost/tcp/1")));
    }
}
