//! Layer-2 observations for the speaker scenarios, made from inside a lab host's namespace:
//!
//! - the host's neighbour entry for an address (`ip -j neigh`), i.e. which MAC it sends to;
//! - who answers ARP (or NDP) for an address: broadcast requests (solicitations) on a packet
//!   socket, replies counted per sender MAC (so "exactly one node answers" is checked on the
//!   wire, not inferred);
//! - a capture of the ARP frames that announce an address (gratuitous ARP on takeover);
//! - sending hand-made Ethernet frames (malformed ones, to check the speaker drops them).
//!
//! ARP frames are built and read here with a few byte offsets, independently of the speaker's
//! codecs, so the scenarios do not trust the code they test; NDP (checksummed, with options)
//! uses the frames of [`crate::bench::neighbor_probe`]. The packet sockets are the
//! speaker's (filtered to incoming ARP frames, so our own requests do not echo), opened by a
//! thread that entered the namespace (`setns` changes only the calling thread); every loop is
//! bounded in count and time, and frames go out only on the lab's segment interface.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironlb_speaker::responder::socket::{self, Kind, Receiver, Sender};

use super::{Cluster, HarnessError};
use crate::bench::neighbor_probe::{self, Asker};
use crate::lab::plan::Mac;

const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
/// Ethernet header (14) plus an Ethernet/IPv4 ARP packet (28).
const ARP_FRAME_LEN: usize = 42;
/// Longest any capture may run, whatever the caller asks: a forgotten capture still ends.
const MAX_CAPTURE: Duration = Duration::from_secs(120);

/// Why a layer-2 observation failed.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    #[error("cannot enter network namespace {netns}: {message}")]
    Namespace { netns: String, message: String },
    #[error("no interface {interface} in {netns}")]
    NoInterface { netns: String, interface: String },
    #[error("interface {0} has no MAC or no IPv4 address to send ARP from")]
    NoAddress(String),
    #[error("packet socket on {interface}: {source}")]
    Socket {
        interface: String,
        source: io::Error,
    },
    #[error("the namespace thread panicked")]
    Panicked,
    #[error("`ip -j neigh` printed something that is not its JSON: {0}")]
    BadNeighJson(String),
}

impl From<L2Error> for HarnessError {
    fn from(e: L2Error) -> Self {
        HarnessError::Io(e.to_string())
    }
}

/// One ARP frame, as far as the scenarios care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpFrame {
    /// Ethernet source.
    pub src: Mac,
    pub operation: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// Reads an untagged Ethernet/IPv4 ARP frame; `None` for anything else.
    pub fn parse(frame: &[u8]) -> Option<ArpFrame> {
        if frame.len() < ARP_FRAME_LEN || frame[12..14] != ETHERTYPE_ARP {
            return None;
        }
        let arp = &frame[14..];
        // Ethernet (1), IPv4 (0x0800), 6-byte hardware and 4-byte protocol addresses.
        if arp[..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let mac = |at: usize| Mac(arp[at..at + 6].try_into().expect("6 bytes"));
        let ip = |at: usize| Ipv4Addr::new(arp[at], arp[at + 1], arp[at + 2], arp[at + 3]);
        Some(ArpFrame {
            src: Mac(frame[6..12].try_into().expect("6 bytes")),
            operation: u16::from_be_bytes([arp[6], arp[7]]),
            sender_mac: mac(8),
            sender_ip: ip(14),
            target_ip: ip(24),
        })
    }

    /// A gratuitous ARP: the sender announces its own address (request or reply form).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }

    pub fn is_reply(&self) -> bool {
        self.operation == ARP_REPLY
    }
}

/// A broadcast ARP request for `target` from `(mac, ip)`.
pub fn arp_request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(ARP_FRAME_LEN);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ETHERTYPE_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&ARP_REQUEST.to_be_bytes());
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Runs `work` on a thread that entered the network namespace `netns` (as `ip netns` names it).
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    work: impl FnOnce() -> Result<T, L2Error> + Send + 'static,
) -> Result<T, L2Error> {
    spawn_in_netns(netns, work)?
        .join()
        .map_err(|_| L2Error::Panicked)?
}

fn spawn_in_netns<T: Send + 'static>(
    netns: &str,
    work: impl FnOnce() -> Result<T, L2Error> + Send + 'static,
) -> Result<JoinHandle<Result<T, L2Error>>, L2Error> {
    let path = format!("/var/run/netns/{netns}");
    let name = netns.to_string();
    let enter = move || -> Result<(), L2Error> {
        let handle = File::open(&path).map_err(|e| L2Error::Namespace {
            netns: name.clone(),
            message: e.to_string(),
        })?;
        rustix::thread::move_into_link_name_space(
            handle.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| L2Error::Namespace {
            netns: name.clone(),
            message: e.to_string(),
        })
    };
    Ok(std::thread::spawn(move || {
        enter()?;
        work()
    }))
}

/// An ARP (or NDP) packet socket on one interface of the current thread's namespace.
struct RawSocket {
    tx: Sender,
    rx: Receiver,
    mac: Mac,
    ipv4: Option<Ipv4Addr>,
    /// The first global IPv6 address.
    ipv6: Option<Ipv6Addr>,
    name: String,
}

impl RawSocket {
    fn open(netns: &str, interface: &str) -> Result<RawSocket, L2Error> {
        Self::open_kind(netns, interface, Kind::Arp)
    }

    fn open_kind(netns: &str, interface: &str, kind: Kind) -> Result<RawSocket, L2Error> {
        let iface = socket::find_interface(interface).ok_or_else(|| L2Error::NoInterface {
            netns: netns.to_string(),
            interface: interface.to_string(),
        })?;
        let (tx, rx) = socket::open(&iface, kind).map_err(|source| L2Error::Socket {
            interface: interface.to_string(),
            source,
        })?;
        let mac = iface
            .mac
            .map(|m| Mac(m.octets()))
            .ok_or_else(|| L2Error::NoAddress(interface.to_string()))?;
        let ipv4 = iface.ips.iter().find_map(|n| match n.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        });
        let ipv6 = iface.ips.iter().find_map(|n| match n.ip() {
            // Not link-local (fe80::/10): NDP for a VIP is asked from the segment address.
            IpAddr::V6(ip) if ip.segments()[0] & 0xffc0 != 0xfe80 => Some(ip),
            _ => None,
        });
        Ok(RawSocket {
            tx,
            rx,
            mac,
            ipv4,
            ipv6,
            name: interface.to_string(),
        })
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), L2Error> {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(source)) => Err(L2Error::Socket {
                interface: self.name.clone(),
                source,
            }),
            None => Err(L2Error::Socket {
                interface: self.name.clone(),
                source: io::Error::other("frame not sent"),
            }),
        }
    }

    /// The next frame, or `None` after the socket's read timeout (100 ms).
    fn next(&mut self) -> Option<Vec<u8>> {
        self.rx.next().ok().map(<[u8]>::to_vec)
    }
}

/// Asks `target` by ARP from `interface` in `netns`: `requests` broadcast requests spread over
/// `window`, and returns how many replies each MAC (as `02:1b:...`) sent for it in the window.
pub fn arp_responders(
    netns: &str,
    interface: &str,
    target: Ipv4Addr,
    requests: u32,
    window: Duration,
) -> Result<BTreeMap<String, u32>, L2Error> {
    let window = window.min(MAX_CAPTURE);
    let (netns_name, interface) = (netns.to_string(), interface.to_string());
    in_netns(netns, move || {
        let mut socket = RawSocket::open(&netns_name, &interface)?;
        let ip = socket
            .ipv4
            .ok_or_else(|| L2Error::NoAddress(interface.clone()))?;
        let request = arp_request(socket.mac, ip, target);
        let spacing = window / (requests.max(1) + 1);
        let started = Instant::now();
        let mut sent = 0;
        let mut next_send = started;
        let mut replies = BTreeMap::new();
        while started.elapsed() < window {
            if sent < requests && Instant::now() >= next_send {
                socket.send(&request)?;
                sent += 1;
                next_send += spacing;
            }
            if let Some(arp) = socket.next().as_deref().and_then(ArpFrame::parse)
                && arp.is_reply()
                && arp.sender_ip == target
                && arp.src != socket.mac
            {
                *replies.entry(arp.sender_mac.to_string()).or_insert(0) += 1;
            }
        }
        Ok(replies)
    })
}

/// Asks for the IPv6 `target` by Neighbor Solicitation from `interface` in `netns`:
/// `requests` solicitations spread over `window`; returns how many solicited advertisements
/// each MAC sent back for it in the window.
pub fn ndp_responders(
    netns: &str,
    interface: &str,
    target: Ipv6Addr,
    requests: u32,
    window: Duration,
) -> Result<BTreeMap<String, u32>, L2Error> {
    let window = window.min(MAX_CAPTURE);
    let (netns_name, interface) = (netns.to_string(), interface.to_string());
    in_netns(netns, move || {
        let mut socket = RawSocket::open_kind(&netns_name, &interface, Kind::Ndp)?;
        let asker = Asker {
            mac: ironlb_speaker::packet::MacAddr(socket.mac.0),
            ipv4: socket.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED),
            ipv6: socket.ipv6,
        };
        let solicit = neighbor_probe::neighbor_solicit(&asker, target)
            .ok_or_else(|| L2Error::NoAddress(interface.clone()))?;
        let spacing = window / (requests.max(1) + 1);
        let started = Instant::now();
        let mut sent = 0;
        let mut next_send = started;
        let mut replies = BTreeMap::new();
        while started.elapsed() < window {
            if sent < requests && Instant::now() >= next_send {
                socket.send(&solicit)?;
                sent += 1;
                next_send += spacing;
            }
            if let Some(neighbor_probe::Answer::Reply(mac)) = socket
                .next()
                .and_then(|f| neighbor_probe::ndp_answer(&f, &asker, target))
            {
                *replies.entry(Mac(mac.0).to_string()).or_insert(0) += 1;
            }
        }
        Ok(replies)
    })
}

/// Sends `frames` as they are from `interface` in `netns`.
pub fn send_frames(netns: &str, interface: &str, frames: Vec<Vec<u8>>) -> Result<(), L2Error> {
    let (netns_name, interface) = (netns.to_string(), interface.to_string());
    in_netns(netns, move || {
        let mut socket = RawSocket::open(&netns_name, &interface)?;
        frames.iter().try_for_each(|f| socket.send(f))
    })
}

/// The MAC and IPv4 address of `interface` in `netns`.
pub fn interface_addresses(
    netns: &str,
    interface: &str,
) -> Result<(Mac, Option<Ipv4Addr>), L2Error> {
    let (netns_name, interface) = (netns.to_string(), interface.to_string());
    in_netns(netns, move || {
        let socket = RawSocket::open(&netns_name, &interface)?;
        Ok((socket.mac, socket.ipv4))
    })
}

/// An ARP frame heard by an [`ArpCapture`], with when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    pub at: Instant,
    pub frame: ArpFrame,
}

/// Records, in the background, every ARP frame received on an interface whose sender address
/// is one IP (replies and gratuitous announcements for a VIP), until stopped or
/// [`MAX_CAPTURE`] has passed.
pub struct ArpCapture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<Heard>, L2Error>>>,
}

impl ArpCapture {
    /// Starts capturing; returns once the socket is open, so nothing sent afterwards is missed.
    pub fn start(netns: &str, interface: &str, sender_ip: Ipv4Addr) -> Result<Self, L2Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (netns_name, interface, flag) =
            (netns.to_string(), interface.to_string(), stop.clone());
        let thread = spawn_in_netns(netns, move || {
            let opened = RawSocket::open(&netns_name, &interface);
            let mut socket = match opened {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let started = Instant::now();
            let mut heard = Vec::new();
            while !flag.load(Ordering::Relaxed) && started.elapsed() < MAX_CAPTURE {
                if let Some(frame) = socket.next().as_deref().and_then(ArpFrame::parse)
                    && frame.sender_ip == sender_ip
                    && frame.src != socket.mac
                {
                    heard.push(Heard {
                        at: Instant::now(),
                        frame,
                    });
                }
            }
            Ok(heard)
        })?;
        let mut capture = ArpCapture {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(capture),
            Ok(Err(_)) | Err(_) => Err(capture.finish().err().unwrap_or(L2Error::Panicked)),
        }
    }

    /// Stops and returns what was heard.
    pub fn finish(&mut self) -> Result<Vec<Heard>, L2Error> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| L2Error::Panicked)?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for ArpCapture {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A neighbour-table entry, as `ip -j neigh` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// `None` while the entry is INCOMPLETE or FAILED.
    pub mac: Option<Mac>,
    pub state: Vec<String>,
}

/// Reads the entry for `ip` out of `ip -j neigh` output.
pub fn parse_neigh_json(json: &str, ip: IpAddr) -> Result<Option<Neighbour>, L2Error> {
    let bad = |why: &str| L2Error::BadNeighJson(format!("{why}: {}", json.trim()));
    let trimmed = json.trim();
    if trimmed.is_empty() {
        // Older iproute2 prints nothing at all for an empty table.
        return Ok(None);
    }
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(trimmed).map_err(|e| bad(&e.to_string()))?;
    for entry in entries {
        let dst = entry
            .get("dst")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad("an entry has no dst"))?;
        let dst: IpAddr = dst.parse().map_err(|_| bad("dst is not an IP"))?;
        if dst != ip {
            continue;
        }
        let mac = match entry.get("lladdr").and_then(|m| m.as_str()) {
            Some(m) => Some(m.parse::<Mac>().map_err(|_| bad("lladdr is not a MAC"))?),
            None => None,
        };
        let state = entry
            .get("state")
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Some(Neighbour { mac, state }));
    }
    Ok(None)
}

/// `host`'s neighbour entry for `ip` (from `ip -j neigh show to IP`).
pub fn neighbour(
    cluster: &Cluster,
    host: &str,
    ip: IpAddr,
) -> Result<Option<Neighbour>, HarnessError> {
    let ip_text = ip.to_string();
    let out = cluster.exec(host, &["ip", "-j", "neigh", "show", "to", &ip_text])?;
    if !out.status.success() {
        return Err(HarnessError::Command {
            command: format!("ip -j neigh show to {ip}"),
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(parse_neigh_json(&String::from_utf8_lossy(&out.stdout), ip)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([2, 0x1b, 0, 0, 0, 0x64]);

    #[test]
    fn arp_request_layout_and_parse_agree() {
        let target = Ipv4Addr::new(198, 51, 100, 240);
        let f = arp_request(MAC, Ipv4Addr::new(192, 0, 2, 100), target);
        assert_eq!(f.len(), ARP_FRAME_LEN);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[8, 6]);
        let parsed = ArpFrame::parse(&f).unwrap();
        assert_eq!(parsed.src, MAC);
        assert_eq!(parsed.operation, ARP_REQUEST);
        assert_eq!(parsed.sender_mac, MAC);
        assert_eq!(parsed.sender_ip, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(parsed.target_ip, target);
        assert!(!parsed.is_gratuitous() && !parsed.is_reply());
    }

    #[test]
    fn non_arp_and_malformed_frames_are_not_read() {
        let good = arp_request(
            MAC,
            Ipv4Addr::new(192, 0, 2, 100),
            Ipv4Addr::new(1, 2, 3, 4),
        );
        for len in 0..ARP_FRAME_LEN {
            assert_eq!(ArpFrame::parse(&good[..len]), None, "cut at {len}");
        }
        let mut ipv4 = good.clone();
        ipv4[12..14].copy_from_slice(&[8, 0]);
        assert_eq!(ArpFrame::parse(&ipv4), None);
        let mut token_ring = good.clone();
        token_ring[15] = 6;
        assert_eq!(ArpFrame::parse(&token_ring), None);
        let mut long_hw = good;
        long_hw[18] = 8;
        assert_eq!(ArpFrame::parse(&long_hw), None);
    }

    #[test]
    fn neighbour_entries_are_found_by_address() {
        let json = r#"[{"dst":"198.51.100.240","dev":"eth0","lladdr":"02:1b:00:00:00:0c","state":["REACHABLE"]},
                       {"dst":"2001:db8:0:100::1","dev":"eth0","state":["INCOMPLETE"]}]"#;
        let v4 = parse_neigh_json(json, "198.51.100.240".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(v4.mac, Some(Mac([2, 0x1b, 0, 0, 0, 0x0c])));
        assert_eq!(v4.state, ["REACHABLE"]);
        let v6 = parse_neigh_json(json, "2001:db8:0:100::1".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(v6.mac, None);
        assert_eq!(
            parse_neigh_json(json, "192.0.2.1".parse().unwrap()).unwrap(),
            None
        );
        assert_eq!(
            parse_neigh_json("", "192.0.2.1".parse().unwrap()).unwrap(),
            None
        );
        assert_eq!(
            parse_neigh_json("[]\n", "192.0.2.1".parse().unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn malformed_neighbour_json_is_an_error() {
        let ip: IpAddr = "198.51.100.240".parse().unwrap();
        for bad in [
            "198.51.100.240 dev eth0 lladdr 02:1b:00:00:00:0c REACHABLE",
            r#"{"dst":"198.51.100.240"}"#,
            r#"[{"dev":"eth0"}]"#,
            r#"[{"dst":"not-an-ip"}]"#,
            r#"[{"dst":"198.51.100.240","lladdr":"02:1b:00"}]"#,
        ] {
            assert!(
                matches!(parse_neigh_json(bad, ip), Err(L2Error::BadNeighJson(_))),
                "{bad}"
            );
        }
    }
}
