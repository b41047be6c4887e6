//! [`Responders`]: one responder per interface that announces something, each with an ARP
//! socket and an NDP socket on their own threads, the interface's owned set, and its IPv6
//! multicast memberships.
//!
//! [`Responders::publish`] makes the owned sets equal to the state's: a removed IP is not
//! answered from the next frame on. A responder is started the first time its interface has
//! something to announce and kept (with an empty set) until shutdown, so a takeover never
//! waits for sockets. An interface that does not exist, or whose sockets fail, is retried on
//! the next [`Responders::publish`].
//!
//! For IPv6 the node joins the solicited-node multicast group of every owned address on the
//! interface (through a UDP socket, as the kernel offers it), so that the NIC accepts the
//! solicitations sent to that group.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::gratuitous::GratuitousSender;
use super::owned::OwnedCell;
use super::serve::Loop;
use super::socket::{self, Kind};
use crate::metrics::Metrics;
use crate::packet::{MacAddr, ipv6};

/// Why an interface cannot be announced on.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    #[error("no interface {0} on this node")]
    Missing(String),
    #[error("interface {0} has no MAC address")]
    NoMac(String),
    #[error("cannot open a {kind:?} socket on {interface}: {source}")]
    Socket {
        interface: String,
        kind: Kind,
        source: std::io::Error,
    },
    #[error("cannot start a responder thread for {interface}: {source}")]
    Thread {
        interface: String,
        source: std::io::Error,
    },
}

/// The solicited-node groups of an interface's IPv6 addresses.
struct Groups {
    index: u32,
    socket: Option<UdpSocket>,
    joined: BTreeSet<Ipv6Addr>,
}

impl Groups {
    fn sync(&mut self, interface: &str, owned: &BTreeSet<IpAddr>) {
        let wanted: BTreeSet<Ipv6Addr> = owned
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(ipv6::solicited_node(*v6)),
                IpAddr::V4(_) => None,
            })
            .collect();
        if wanted == self.joined {
            return;
        }
        if self.socket.is_none() && !wanted.is_empty() {
            match UdpSocket::bind("[::]:0") {
                Ok(s) => self.socket = Some(s),
                Err(err) => {
                    tracing::warn!(%interface, error = %err, "cannot open a socket to join IPv6 multicast groups; solicitations to them may not arrive");
                    return;
                }
            }
        }
        let Some(socket) = &self.socket else {
            return;
        };
        for group in self.joined.difference(&wanted) {
            if let Err(err) = socket.leave_multicast_v6(group, self.index) {
                tracing::debug!(%interface, %group, error = %err, "cannot leave a multicast group");
            }
        }
        for group in wanted.difference(&self.joined) {
            if let Err(err) = socket.join_multicast_v6(group, self.index) {
                tracing::warn!(%interface, %group, error = %err, "cannot join a solicited-node group");
            }
        }
        self.joined = wanted;
    }
}

struct Responder {
    owned: Arc<OwnedCell>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    sender: GratuitousSender,
    groups: Groups,
}

impl Responder {
    fn start(name: &str, metrics: &Metrics) -> Result<Responder, InterfaceError> {
        let interface =
            socket::find_interface(name).ok_or_else(|| InterfaceError::Missing(name.into()))?;
        let mac = interface
            .mac
            .map(|m| MacAddr(m.octets()))
            .filter(|m| *m != MacAddr::ZERO)
            .ok_or_else(|| InterfaceError::NoMac(name.into()))?;
        let open = |kind| {
            socket::open(&interface, kind).map_err(|source| InterfaceError::Socket {
                interface: name.into(),
                kind,
                source,
            })
        };
        let (arp_tx, arp_rx) = open(Kind::Arp)?;
        let (ndp_tx, ndp_rx) = open(Kind::Ndp)?;
        let owned = Arc::new(OwnedCell::default());
        let stop = Arc::new(AtomicBool::new(false));
        let arp_tx = Arc::new(Mutex::new(arp_tx));
        let ndp_tx = Arc::new(Mutex::new(ndp_tx));
        let mut threads = Vec::new();
        for (kind, rx, tx) in [
            ("arp", arp_rx, arp_tx.clone()),
            ("ndp", ndp_rx, ndp_tx.clone()),
        ] {
            let serve = Loop {
                interface: name.to_string(),
                mac,
                rx,
                tx,
                owned: owned.clone(),
                metrics: metrics.clone(),
                stop: stop.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("{kind}-{name}"))
                .spawn(move || serve.run())
                .map_err(|source| {
                    stop.store(true, Ordering::Relaxed);
                    InterfaceError::Thread {
                        interface: name.into(),
                        source,
                    }
                })?;
            threads.push(handle);
        }
        Ok(Responder {
            sender: GratuitousSender {
                interface: name.to_string(),
                mac,
                arp_tx,
                ndp_tx,
                owned: owned.clone(),
                metrics: metrics.clone(),
            },
            owned,
            stop,
            threads,
            groups: Groups {
                index: interface.index,
                socket: None,
                joined: BTreeSet::new(),
            },
        })
    }

    fn is_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    fn stop(mut self) {
        self.owned.store(&BTreeSet::new());
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// See the module docs.
pub struct Responders {
    metrics: Metrics,
    active: BTreeMap<String, Responder>,
    /// Interfaces that could not be started, with the last error, to log each error once.
    failed: BTreeMap<String, String>,
}

impl Responders {
    pub fn new(metrics: Metrics) -> Responders {
        Responders {
            metrics,
            active: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Makes every interface answer for exactly the IPs `owned` lists for it (nothing for
    /// interfaces not listed). Removals take effect before any interface is started.
    pub fn publish(&mut self, owned: &BTreeMap<String, BTreeSet<IpAddr>>) {
        let empty = BTreeSet::new();
        for (name, responder) in &mut self.active {
            let ips = owned.get(name).unwrap_or(&empty);
            responder.owned.store(ips);
            responder.groups.sync(name, ips);
        }
        // A responder whose threads died (its interface vanished) is started again.
        let dead: Vec<String> = self
            .active
            .iter()
            .filter(|(_, r)| !r.is_running())
            .map(|(n, _)| n.clone())
            .collect();
        for name in dead {
            if let Some(r) = self.active.remove(&name) {
                r.stop();
            }
        }
        for (name, ips) in owned {
            if ips.is_empty() || self.active.contains_key(name) {
                continue;
            }
            match Responder::start(name, &self.metrics) {
                Ok(mut responder) => {
                    if self.failed.remove(name).is_some() {
                        tracing::info!(interface = %name, "announcing on the interface now");
                    }
                    responder.owned.store(ips);
                    responder.groups.sync(name, ips);
                    self.active.insert(name.clone(), responder);
                }
                Err(err) => {
                    let text = err.to_string();
                    if self.failed.get(name) != Some(&text) {
                        tracing::error!(interface = %name, error = %text, "cannot announce on this interface; retrying");
                        self.failed.insert(name.clone(), text);
                    }
                }
            }
        }
    }

    /// True when some interface that should announce could not be started.
    pub fn has_failures(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The sender for takeover announcements on `interface`, when it runs.
    pub fn gratuitous(&self, interface: &str) -> Option<&GratuitousSender> {
        self.active.get(interface).map(|r| &r.sender)
    }

    /// Stops answering for everything at once (threads keep running until [`Self::stop`]).
    pub fn silence(&mut self) {
        self.publish(&BTreeMap::new());
    }

    /// Stops every thread and leaves every multicast group.
    pub fn stop(&mut self) {
        for (name, mut responder) in std::mem::take(&mut self.active) {
            responder.groups.sync(&name, &BTreeSet::new());
            responder.stop();
        }
    }
}
