//! The tokio driver: one UDP socket on the node IP, the protocol's timers, the peer list from the
//! API, and shutdown with a leave announcement. All decisions are in [`super::protocol`].

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::Config;
use super::key::Key;
use super::protocol::{Counters, Event, Identity, Peer, Protocol};
use super::state::MemberState;
use super::{Error, Result};

/// Everything the driver needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name, as peers list it.
    pub node_name: String,
    /// The node IP and membership port to bind.
    pub bind: SocketAddr,
    pub key: Key,
    pub config: Config,
}

/// The alive member set handed to the election.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliveView {
    /// Names of the members counted as alive, this node included.
    pub members: BTreeSet<String>,
    /// False until the peer list has arrived and every peer has answered or been found
    /// unreachable. Before that, `members` may lack live nodes: don't claim IPs on it.
    pub settled: bool,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub counters: Counters,
    /// Datagrams the kernel refused to send (unreachable network and the like).
    pub send_errors: u64,
    /// Size of the alive set, this node included.
    pub members: usize,
}

/// A bound membership endpoint, ready to [`run`](Membership::run).
pub struct Membership {
    socket: UdpSocket,
    protocol: Protocol,
    origin: Instant,
    view: watch::Sender<AliveView>,
    stats: watch::Sender<Stats>,
    send_errors: u64,
}

impl Membership {
    /// Binds the socket. Fails early on a bad configuration or an address that cannot be bound.
    pub async fn bind(settings: Settings) -> Result<Self> {
        let origin = Instant::now();
        let identity = Identity {
            name: settings.node_name,
            epoch: random_u64(1),
            seed: random_u64(2),
        };
        let protocol = Protocol::new(settings.config, settings.key, identity, Duration::ZERO)?;
        let socket = UdpSocket::bind(settings.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.bind,
                source,
            })?;
        let view = watch::Sender::new(AliveView {
            members: protocol.alive_members(),
            settled: false,
        });
        Ok(Self {
            socket,
            protocol,
            origin,
            view,
            stats: watch::Sender::new(Stats::default()),
            send_errors: 0,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The alive set; receivers are woken on every change.
    pub fn subscribe(&self) -> watch::Receiver<AliveView> {
        self.view.subscribe()
    }

    /// Counters, refreshed after every datagram and timer; read with `borrow()`.
    pub fn stats(&self) -> watch::Receiver<Stats> {
        self.stats.subscribe()
    }

    /// Runs until `shutdown` is cancelled, then announces the leave and returns.
    ///
    /// `peers` is the current list of speakers from the API (this node may be in it). If its
    /// sender is dropped, the last list is kept.
    pub async fn run(
        mut self,
        mut peers: watch::Receiver<Vec<Peer>>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let mut buf = vec![0u8; 65_536];
        let mut peers_open = true;
        let initial = peers.borrow_and_update().clone();
        if !initial.is_empty() {
            self.protocol.set_peers(self.now(), initial);
        }
        self.flush().await;
        loop {
            let wake = self
                .protocol
                .next_deadline()
                .map(|d| self.origin + d)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    self.protocol.leave();
                    self.flush().await;
                    info!(node = self.protocol.name(), "membership: left the cluster");
                    return Ok(());
                }
                changed = peers.changed(), if peers_open => match changed {
                    Ok(()) => {
                        let list = peers.borrow_and_update().clone();
                        self.protocol.set_peers(self.now(), list);
                    }
                    Err(_) => {
                        warn!("membership: peer list source closed; keeping the last list");
                        peers_open = false;
                    }
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, _from)) => self.protocol.handle_datagram(self.now(), &buf[..len]),
                    Err(e) => {
                        // Transient socket errors (ICMP feedback) must not end membership.
                        debug!(error = %e, "membership: receive failed");
                    }
                },
                () = tokio::time::sleep_until(wake) => self.protocol.handle_timeout(self.now()),
            }
            self.flush().await;
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn flush(&mut self) {
        for out in self.protocol.drain_outgoing() {
            if let Err(e) = self.socket.send_to(&out.bytes, out.to).await {
                self.send_errors += 1;
                debug!(to = %out.to, error = %e, "membership: send failed");
            }
        }
        for event in self.protocol.drain_events() {
            log_event(&event);
        }
        let members = self.protocol.alive_members();
        let settled = self.protocol.is_settled();
        self.view.send_if_modified(|v| {
            let changed = v.members != members || v.settled != settled;
            if changed {
                v.members = members.clone();
                v.settled = settled;
            }
            changed
        });
        let stats = Stats {
            counters: self.protocol.counters(),
            send_errors: self.send_errors,
            members: members.len(),
        };
        self.stats.send_replace(stats);
    }
}

fn log_event(event: &Event) {
    match event {
        Event::StateChanged { member, status } => match status.state {
            MemberState::Suspect => {
                debug!(%member, incarnation = status.incarnation, "membership: suspect")
            }
            state => {
                info!(%member, %state, incarnation = status.incarnation, "membership: state changed")
            }
        },
        Event::Removed { member } => info!(%member, "membership: removed from the peer list"),
    }
}

/// A per-process random number: `RandomState` is keyed from the OS's random source; the time is
/// mixed in as well so two starts never share an epoch.
fn random_u64(salt: u64) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(salt);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_differ() {
        let a: BTreeSet<u64> = (0..100).map(random_u64).collect();
        assert_eq!(a.len(), 100);
        assert_ne!(random_u64(1), random_u64(1));
    }
}
