//! Throwaway network namespaces for the forwarding kernel tests and the throughput benchmark.
//!
//! A [`Lab`] is a `node` and a `client` namespace joined by a veth (192.0.2.0/24 and
//! 2001:db8::/64 on the link; VIPs in 198.51.100.0/24 and 2001:db8:100::/64, routed by the
//! client to the node), optionally with a `pod` namespace behind the node (203.0.113.0/24 and
//! 2001:db8:200::/64), reached by forwarding as a kube-proxy backend pod would be. Only
//! documentation addresses are used and nothing touches the root namespace; dropping the lab
//! deletes the namespaces and with them the links, nft tables and conntrack state, even when
//! a test fails. Every socket operation has a timeout and every loop a bound.
//!
//! Kernel tests need root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2; without them they
//! print why and pass without checking anything.

#![allow(dead_code)] // Each test crate that includes this module uses a different part of it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironlb_speaker::forwarding::{ForwardEntry, L4Protocol, NetlinkNft, Ruleset, TABLE_NAME};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub const NODE_V4: &str = "192.0.2.1";
pub const CLIENT_V4: &str = "192.0.2.2";
pub const CLIENT_V4_B: &str = "192.0.2.3";
pub const CLIENT_V4_C: &str = "192.0.2.4";
pub const NODE_V6: &str = "2001:db8::1";
pub const CLIENT_V6: &str = "2001:db8::2";
pub const CLIENT_V6_B: &str = "2001:db8::4";
pub const VIP_V4: &str = "198.51.100.10";
pub const VIP_V6: &str = "2001:db8:100::10";
/// The node's address on the pod network, which masquerading uses.
pub const NODE_POD_V4: &str = "203.0.113.1";
pub const POD_V4: &str = "203.0.113.2";
pub const NODE_POD_V6: &str = "2001:db8:200::1";
pub const POD_V6: &str = "2001:db8:200::2";
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn sa(ip_text: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(ip_text), port)
}

/// Why this machine cannot run the kernel tests, if it cannot.
pub fn unsupported() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: creating network namespaces needs CAP_SYS_ADMIN".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("iproute2 `ip` not found".into()),
    }
}

#[macro_export]
macro_rules! require_kernel {
    () => {
        if let Some(reason) = forwarding_lab::unsupported() {
            eprintln!("SKIP {}: {reason}", module_path!());
            return;
        }
    };
}

pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A node and a client namespace joined by a veth, and maybe a pod behind the node; deleted
/// on drop.
pub struct Lab {
    pub node: String,
    pub client: String,
    pub pod: Option<String>,
}

static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn add_addresses(ns: &str, dev: &str, addrs: &[String]) {
    for addr in addrs {
        // nodad: the address is usable at once instead of after duplicate detection.
        let mut args = vec!["ip", "-n", ns, "addr", "add", addr.as_str(), "dev", dev];
        if addr.contains(':') {
            args.push("nodad");
        }
        run(&args);
    }
}

impl Lab {
    /// Node and client only: whatever serves the NodePort listens on the node itself.
    pub fn new() -> Lab {
        Lab::build(false)
    }

    /// Node, client and a pod namespace behind the node, with forwarding on in the node.
    pub fn with_pod() -> Lab {
        Lab::build(true)
    }

    fn build(with_pod: bool) -> Lab {
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("ironlb-fwd-{}-{n}", std::process::id());
        let lab = Lab {
            node: format!("{id}-node"),
            client: format!("{id}-client"),
            pod: with_pod.then(|| format!("{id}-pod")),
        };
        // The guard exists before the first namespace, so a failure below still cleans up.
        for ns in [Some(&lab.node), Some(&lab.client), lab.pod.as_ref()]
            .into_iter()
            .flatten()
        {
            run(&["ip", "netns", "add", ns]);
            // No duplicate address detection, for link-local addresses too: until it ends, the
            // first IPv6 packets wait for neighbour discovery and a 2 s probe times out.
            in_netns(ns, || {
                for path in [
                    "/proc/sys/net/ipv6/conf/default/accept_dad",
                    "/proc/sys/net/ipv6/conf/all/accept_dad",
                ] {
                    std::fs::write(path, "0").unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            });
        }
        let (node, client) = (lab.node.as_str(), lab.client.as_str());
        run(&[
            "ip", "-n", node, "link", "add", "n0", "type", "veth", "peer", "name", "c0", "netns",
            client,
        ]);
        add_addresses(
            node,
            "n0",
            &[format!("{NODE_V4}/24"), format!("{NODE_V6}/64")],
        );
        add_addresses(
            client,
            "c0",
            &[
                format!("{CLIENT_V4}/24"),
                format!("{CLIENT_V4_B}/24"),
                format!("{CLIENT_V4_C}/24"),
                format!("{CLIENT_V6}/64"),
                format!("{CLIENT_V6_B}/64"),
            ],
        );
        for (ns, dev) in [(node, "n0"), (client, "c0")] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        run(&[
            "ip",
            "-n",
            client,
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            NODE_V4,
        ]);
        run(&[
            "ip",
            "-n",
            client,
            "-6",
            "route",
            "add",
            "2001:db8:100::/64",
            "via",
            NODE_V6,
        ]);
        if let Some(pod) = lab.pod.as_deref() {
            run(&[
                "ip", "-n", node, "link", "add", "p0", "type", "veth", "peer", "name", "e0",
                "netns", pod,
            ]);
            add_addresses(
                node,
                "p0",
                &[format!("{NODE_POD_V4}/24"), format!("{NODE_POD_V6}/64")],
            );
            add_addresses(pod, "e0", &[format!("{POD_V4}/24"), format!("{POD_V6}/64")]);
            for (ns, dev) in [(node, "p0"), (pod, "e0")] {
                run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
                run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            }
            run(&[
                "ip",
                "-n",
                pod,
                "route",
                "add",
                "default",
                "via",
                NODE_POD_V4,
            ]);
            run(&[
                "ip",
                "-n",
                pod,
                "-6",
                "route",
                "add",
                "default",
                "via",
                NODE_POD_V6,
            ]);
            // Namespace-local: the node routes between the client segment and its pod.
            in_netns(node, || {
                for path in [
                    "/proc/sys/net/ipv4/ip_forward",
                    "/proc/sys/net/ipv6/conf/all/forwarding",
                ] {
                    std::fs::write(path, "1").unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            });
        }
        lab
    }

    pub fn pod(&self) -> &str {
        self.pod.as_deref().expect("a lab with a pod")
    }

    /// A netlink socket in the node namespace, as the speaker holds one.
    pub fn nft(&self) -> NetlinkNft {
        in_netns(&self.node, || {
            NetlinkNft::open().expect("open netlink socket")
        })
    }

    /// Loads nft text into namespace `ns` with the `nft` binary.
    pub fn nft_load(&self, ns: &str, text: &str) {
        let path = std::env::temp_dir().join(format!("{ns}-{}.nft", unique()));
        std::fs::write(&path, text).unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", path.to_str().unwrap()])
            .output();
        let _ = std::fs::remove_file(&path);
        let out = out.expect("run nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn unique() -> usize {
    LAB_COUNTER.fetch_add(1, Ordering::SeqCst)
}

impl Drop for Lab {
    fn drop(&mut self) {
        let names = [Some(&self.client), self.pod.as_ref(), Some(&self.node)];
        for ns in names.into_iter().flatten() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets made there stay in it.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

pub fn domain_of(addr: &SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

pub fn sctp_supported(ns: &str) -> Result<(), String> {
    in_netns(ns, || {
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::from(132)))
            .map(|_| ())
            .map_err(|e| {
                format!("the kernel has no SCTP sockets ({e}); the sctp module is not loaded")
            })
    })
}

fn socket_kind(proto: L4Protocol) -> (Type, Protocol) {
    match proto {
        L4Protocol::Tcp => (Type::STREAM, Protocol::TCP),
        L4Protocol::Udp => (Type::DGRAM, Protocol::UDP),
        L4Protocol::Sctp => (Type::STREAM, Protocol::from(132)),
    }
}

/// A server in namespace `ns` on `addr` that answers every connection or datagram with the
/// peer address it saw (`peer=ADDR:PORT`). Stops on drop, and by itself after 30 s at the
/// latest.
pub struct PeerEchoServer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PeerEchoServer {
    pub fn start(ns: &str, proto: L4Protocol, addr: SocketAddr) -> PeerEchoServer {
        let socket = in_netns(ns, move || {
            let (ty, protocol) = socket_kind(proto);
            let socket = Socket::new(domain_of(&addr), ty, Some(protocol)).expect("server socket");
            socket.set_reuse_address(true).unwrap();
            socket.bind(&addr.into()).expect("bind server");
            if proto != L4Protocol::Udp {
                socket.listen(16).unwrap();
            }
            socket
        });
        socket.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 512];
            while !stop_flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                if proto == L4Protocol::Udp {
                    if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                        let reply = format!("peer={}", peer.as_socket().unwrap());
                        let _ = socket.send_to(reply.as_bytes(), &peer);
                        continue;
                    }
                } else if let Ok((conn, peer)) = socket.accept() {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
                    let mut conn = conn;
                    let _ =
                        conn.write_all(format!("peer={}", peer.as_socket().unwrap()).as_bytes());
                    let _ = conn.shutdown(Shutdown::Write);
                    continue;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        PeerEchoServer {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for PeerEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// What a probe got back: the server's text, and the address the answer came from.
#[derive(Debug)]
pub struct Answer {
    pub text: String,
    pub from: SocketAddr,
}

impl Answer {
    /// The peer address the server reported.
    pub fn peer(&self) -> SocketAddr {
        self.text
            .strip_prefix("peer=")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {:?}", self.text))
    }
}

/// From namespace `ns`, bound to `source`, asks `target` who it is talking to. UDP uses an
/// unconnected socket so that the answer's real source address is seen.
pub fn probe(
    ns: &str,
    proto: L4Protocol,
    source: IpAddr,
    target: SocketAddr,
) -> Result<Answer, String> {
    in_netns(ns, move || {
        if proto == L4Protocol::Udp {
            let socket = UdpSocket::bind(SocketAddr::new(source, 0))
                .map_err(|e| format!("bind {source}: {e}"))?;
            socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            socket.send_to(b"who", target).map_err(|e| e.to_string())?;
            let mut buf = [0u8; 512];
            let (n, from) = socket
                .recv_from(&mut buf)
                .map_err(|e| format!("recv: {e}"))?;
            return Ok(Answer {
                text: String::from_utf8_lossy(&buf[..n]).into_owned(),
                from,
            });
        }
        let (ty, protocol) = socket_kind(proto);
        let socket =
            Socket::new(domain_of(&target), ty, Some(protocol)).map_err(|e| e.to_string())?;
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(|e| format!("bind {source}: {e}"))?;
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let target_addr: SockAddr = target.into();
        socket
            .connect_timeout(&target_addr, IO_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))?;
        let from = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or("no peer address")?;
        let mut socket = socket;
        let mut text = String::new();
        socket
            .read_to_string(&mut text)
            .map_err(|e| format!("read: {e}"))?;
        Ok(Answer { text, from })
    })
}

/// The probe was answered from `target` itself, and the backend saw `peer` as the source.
#[track_caller]
pub fn expect_answer(answer: Result<Answer, String>, target: SocketAddr, peer: &str) {
    let answer = answer.unwrap_or_else(|e| panic!("no answer from {target}: {e}"));
    assert_eq!(
        answer.from, target,
        "the answer comes from the address asked"
    );
    assert_eq!(answer.peer().ip(), ip(peer), "the backend saw {peer}");
}

pub fn entry(
    vip: &str,
    proto: L4Protocol,
    port: u16,
    node: &str,
    node_port: u16,
    ranges: &[&str],
) -> ForwardEntry {
    ForwardEntry::new(
        ip(vip),
        proto,
        port,
        ip(node),
        node_port,
        ranges.iter().map(|r| r.parse().unwrap()).collect(),
    )
    .unwrap()
}

/// `nft -j list table inet NAME` in `ns`, with handles and counter values removed and map
/// elements sorted, so that two listings of equal rulesets compare equal. `None` when the
/// table does not exist.
pub fn nft_listing_of(ns: &str, table: &str) -> Option<serde_json::Value> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "table", "inet", table,
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("nft -j output is JSON");
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("handle");
                map.remove("metainfo");
                if let Some(counter) = map.get_mut("counter") {
                    *counter = serde_json::Value::Null;
                }
                if let Some(serde_json::Value::Array(elements)) = map.get_mut("elem") {
                    elements.sort_by_key(|e| e.to_string());
                }
                map.values_mut().for_each(scrub);
            }
            serde_json::Value::Array(items) => {
                items.retain(|i| i.get("metainfo").is_none());
                items.iter_mut().for_each(scrub);
            }
            _ => {}
        }
    }
    scrub(&mut value);
    Some(value)
}

pub fn nft_listing(ns: &str) -> Option<serde_json::Value> {
    nft_listing_of(ns, TABLE_NAME)
}

/// What nft itself makes of the ruleset's Display text, loaded into a scratch namespace.
pub fn listing_of_text(ruleset: &Ruleset) -> serde_json::Value {
    let scratch = Lab::new();
    scratch.nft_load(&scratch.node, &ruleset.to_string());
    nft_listing(&scratch.node).expect("table loaded from text")
}

/// The `packets` value of every counter in `nft -j list table inet NAME`, by chain, in rule
/// order.
pub fn counters(ns: &str, table: &str) -> Vec<(String, u64)> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "table", "inet", table,
        ])
        .output()
        .expect("nft");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut found = Vec::new();
    for item in value["nftables"].as_array().into_iter().flatten() {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let chain = rule["chain"].as_str().unwrap_or_default().to_string();
        for expr in rule["expr"].as_array().into_iter().flatten() {
            if let Some(packets) = expr.get("counter").and_then(|c| c["packets"].as_u64()) {
                found.push((chain.clone(), packets));
            }
        }
    }
    found
}

/// Sends one UDP datagram whose checksum field is 0 ("no checksum", legal in IPv4) from
/// `source` to `target` through a raw socket, and returns the answer a normal socket bound to
/// the same source port receives.
pub fn probe_udp_without_checksum(
    ns: &str,
    source: SocketAddr,
    target: SocketAddr,
) -> Result<Answer, String> {
    in_netns(ns, move || {
        let receiver = UdpSocket::bind(source).map_err(|e| format!("bind {source}: {e}"))?;
        receiver.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        send_udp_without_checksum(source, target, b"who")?;
        let mut buf = [0u8; 512];
        let (n, from) = receiver
            .recv_from(&mut buf)
            .map_err(|e| format!("recv: {e}"))?;
        Ok(Answer {
            text: String::from_utf8_lossy(&buf[..n]).into_owned(),
            from,
        })
    })
}

/// The UDP header (RFC 768) with checksum 0, then the payload, through a raw IPv4 socket; the
/// kernel adds the IP header. Call from inside the namespace.
fn send_udp_without_checksum(
    source: SocketAddr,
    target: SocketAddr,
    payload: &[u8],
) -> Result<(), String> {
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))
        .map_err(|e| format!("raw socket: {e}"))?;
    raw.bind(&SocketAddr::new(source.ip(), 0).into())
        .map_err(|e| format!("bind raw: {e}"))?;
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend_from_slice(&source.port().to_be_bytes());
    datagram.extend_from_slice(&target.port().to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    raw.send_to(&datagram, &SocketAddr::new(target.ip(), 0).into())
        .map_err(|e| format!("send raw: {e}"))?;
    Ok(())
}

/// A UDP server on `addr` (IPv4) that answers `peer=ADDR:PORT` in a datagram without checksum,
/// as a peer that does not checksum UDP would. Stops on drop or after 30 s.
pub struct ZeroChecksumEchoServer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ZeroChecksumEchoServer {
    pub fn start(ns: &str, addr: SocketAddr) -> ZeroChecksumEchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/run/netns/{ns}");
        let handle = std::thread::spawn(move || {
            let file = File::open(&path).expect("netns");
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            let socket = UdpSocket::bind(addr).expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let _ = ready_tx.send(());
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut buf = [0u8; 512];
            while !stop_flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                    let reply = format!("peer={peer}");
                    let _ = send_udp_without_checksum(addr, peer, reply.as_bytes());
                }
            }
        });
        ready_rx
            .recv_timeout(IO_TIMEOUT)
            .expect("zero-checksum server started");
        ZeroChecksumEchoServer {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for ZeroChecksumEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// A process started in a namespace, killed (by its own pid) and reaped on drop.
pub struct NetnsProcess {
    child: Child,
}

impl NetnsProcess {
    pub fn spawn(ns: &str, args: &[&str]) -> std::io::Result<NetnsProcess> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(NetnsProcess { child })
    }
}

impl Drop for NetnsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CRC32c (Castagnoli, reflected, as SCTP uses it), bit by bit: slow and obviously right.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An SCTP packet (common header + chunks) with its CRC32c filled in; the checksum goes on
/// the wire least significant byte first (RFC 9260 appendix A).
pub fn sctp_packet(sport: u16, dport: u16, vtag: u32, chunks: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + chunks.len());
    packet.extend_from_slice(&sport.to_be_bytes());
    packet.extend_from_slice(&dport.to_be_bytes());
    packet.extend_from_slice(&vtag.to_be_bytes());
    packet.extend_from_slice(&[0; 4]);
    packet.extend_from_slice(chunks);
    let crc = crc32c(&packet);
    packet[8..12].copy_from_slice(&crc.to_le_bytes());
    packet
}

/// Whether an SCTP packet's CRC32c matches its contents.
pub fn sctp_checksum_ok(packet: &[u8]) -> bool {
    if packet.len() < 12 {
        return false;
    }
    let mut zeroed = packet.to_vec();
    zeroed[8..12].fill(0);
    crc32c(&zeroed).to_le_bytes() == packet[8..12]
}

/// An INIT (`ack` false) or INIT ACK chunk; an INIT ACK carries a small state cookie.
pub fn sctp_init_chunk(ack: bool, initiate_tag: u32) -> Vec<u8> {
    let cookie: &[u8] = if ack { &[0, 7, 0, 8, 1, 2, 3, 4] } else { &[] };
    let mut chunk = vec![if ack { 2 } else { 1 }, 0];
    chunk.extend_from_slice(&((20 + cookie.len()) as u16).to_be_bytes());
    chunk.extend_from_slice(&initiate_tag.to_be_bytes());
    chunk.extend_from_slice(&65535u32.to_be_bytes()); // a_rwnd
    chunk.extend_from_slice(&1u16.to_be_bytes()); // outbound streams
    chunk.extend_from_slice(&1u16.to_be_bytes()); // inbound streams
    chunk.extend_from_slice(&1u32.to_be_bytes()); // initial TSN
    chunk.extend_from_slice(cookie);
    chunk
}

/// A raw IPv4 socket for SCTP packets, bound to `addr`, made in namespace `ns`. It works
/// without the kernel's SCTP module: it receives the IP packets of protocol 132 delivered
/// locally and sends SCTP packets the kernel wraps in an IP header.
pub fn raw_sctp_socket(ns: &str, addr: &str) -> Socket {
    let addr = ip(addr);
    in_netns(ns, move || {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(132)))
            .expect("raw SCTP socket");
        socket.bind(&SocketAddr::new(addr, 0).into()).expect("bind");
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket
    })
}

/// The next IPv4 packet on a raw socket from `from`, as (source, destination, SCTP bytes).
pub fn recv_sctp_from(socket: &Socket, from: IpAddr) -> Result<(IpAddr, IpAddr, Vec<u8>), String> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let n = (&*socket)
            .read(&mut buf)
            .map_err(|e| format!("recv: {e}"))?;
        let packet = &buf[..n];
        let header_len = usize::from(packet.first().ok_or("empty packet")? & 0x0f) * 4;
        if n < header_len + 12 {
            continue;
        }
        let source = IpAddr::from(<[u8; 4]>::try_from(&packet[12..16]).unwrap());
        let destination = IpAddr::from(<[u8; 4]>::try_from(&packet[16..20]).unwrap());
        if source == from {
            return Ok((source, destination, packet[header_len..].to_vec()));
        }
    }
    Err(format!("nothing from {from}"))
}
