//! Kernel tests of the forwarding module: real nftables over netlink, real TCP/UDP/SCTP.
//!
//! Each test builds its own pair of network namespaces, `node` and `client`, joined by a veth
//! (192.0.2.0/24 and 2001:db8::/64 on the link; VIPs in 198.51.100.0/24 and
//! 2001:db8:100::/64, routed by the client to the node). Nothing touches the root namespace;
//! a guard deletes the namespaces (and with them the links and the nft table) even when a test
//! fails. Every socket operation has a timeout and every loop a bound.
//!
//! They need root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2; without them they print why
//! and pass without checking anything. `nft` is used only to inspect what the kernel holds.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironlb_speaker::forwarding::ruleset::{
    Chain, ChainType, DNAT_CHAIN, Expr, Hook, Policy, Rule, SOURCE_CHAIN,
};
use ironlb_speaker::forwarding::{
    ForwardEntry, Forwarder, L4Protocol, NetlinkNft, NftBackend, NftError, Ruleset, SyncOutcome,
    TABLE_NAME, render,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const NODE_V4: &str = "192.0.2.1";
const CLIENT_V4: &str = "192.0.2.2";
const CLIENT_V4_B: &str = "192.0.2.3";
const CLIENT_V4_C: &str = "192.0.2.4";
const NODE_V6: &str = "2001:db8::1";
const CLIENT_V6: &str = "2001:db8::2";
const VIP_V4: &str = "198.51.100.10";
const VIP_V6: &str = "2001:db8:100::10";
const IO_TIMEOUT: Duration = Duration::from_secs(2);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Why this machine cannot run the kernel tests, if it cannot.
fn unsupported() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: creating network namespaces needs CAP_SYS_ADMIN".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("iproute2 `ip` not found".into()),
    }
}

macro_rules! require_kernel {
    () => {
        if let Some(reason) = unsupported() {
            eprintln!("SKIP {}: {reason}", module_path!());
            return;
        }
    };
}

fn run(args: &[&str]) {
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

/// A node and a client namespace joined by a veth; deleted on drop.
struct Lab {
    node: String,
    client: String,
}

static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    fn new() -> Lab {
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("ironlb-fwd-{}-{n}", std::process::id());
        let lab = Lab {
            node: format!("{id}-node"),
            client: format!("{id}-client"),
        };
        // The guard exists before the first namespace, so a failure below still cleans up.
        run(&["ip", "netns", "add", &lab.node]);
        run(&["ip", "netns", "add", &lab.client]);
        let (node, client) = (lab.node.as_str(), lab.client.as_str());
        run(&[
            "ip", "-n", node, "link", "add", "n0", "type", "veth", "peer", "name", "c0", "netns",
            client,
        ]);
        for (ns, dev, addrs) in [
            (
                node,
                "n0",
                vec![format!("{NODE_V4}/24"), format!("{NODE_V6}/64")],
            ),
            (
                client,
                "c0",
                vec![
                    format!("{CLIENT_V4}/24"),
                    format!("{CLIENT_V4_B}/24"),
                    format!("{CLIENT_V4_C}/24"),
                    format!("{CLIENT_V6}/64"),
                ],
            ),
        ] {
            for addr in addrs {
                // nodad: the address is usable at once instead of after duplicate detection.
                let mut args = vec!["ip", "-n", ns, "addr", "add", addr.as_str(), "dev", dev];
                if addr.contains(':') {
                    args.push("nodad");
                }
                run(&args);
            }
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
        lab
    }

    fn nft(&self) -> NetlinkNft {
        in_netns(&self.node, || {
            NetlinkNft::open().expect("open netlink socket")
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.client, &self.node] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets made there stay in it.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
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

fn domain_of(addr: &SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

fn sctp_supported(ns: &str) -> Result<(), String> {
    in_netns(ns, || {
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::from(132)))
            .map(|_| ())
            .map_err(|e| {
                format!("the kernel has no SCTP sockets ({e}); the sctp module is not loaded")
            })
    })
}

/// A server on `node_ip:port` in the node namespace that answers every connection or datagram
/// with the peer address it saw. Stops on drop, and by itself after 30 s at the latest.
struct PeerEchoServer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PeerEchoServer {
    fn start(ns: &str, proto: L4Protocol, addr: SocketAddr) -> PeerEchoServer {
        let socket = in_netns(ns, move || {
            let (ty, protocol) = match proto {
                L4Protocol::Tcp => (Type::STREAM, Protocol::TCP),
                L4Protocol::Udp => (Type::DGRAM, Protocol::UDP),
                L4Protocol::Sctp => (Type::STREAM, Protocol::from(132)),
            };
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

/// From the client namespace, bound to `source`, asks `target` who it is talking to. Returns
/// the reply (`peer=ADDR:PORT`) or the error that ended the attempt.
fn probe(
    ns: &str,
    proto: L4Protocol,
    source: IpAddr,
    target: SocketAddr,
) -> Result<String, String> {
    in_netns(ns, move || {
        let (ty, protocol) = match proto {
            L4Protocol::Tcp => (Type::STREAM, Protocol::TCP),
            L4Protocol::Udp => (Type::DGRAM, Protocol::UDP),
            L4Protocol::Sctp => (Type::STREAM, Protocol::from(132)),
        };
        let socket =
            Socket::new(domain_of(&target), ty, Some(protocol)).map_err(|e| e.to_string())?;
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(|e| format!("bind {source}: {e}"))?;
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let target_addr: SockAddr = target.into();
        if proto == L4Protocol::Udp {
            socket.connect(&target_addr).map_err(|e| e.to_string())?;
            socket.send(b"who").map_err(|e| e.to_string())?;
        } else {
            socket
                .connect_timeout(&target_addr, IO_TIMEOUT)
                .map_err(|e| format!("connect: {e}"))?;
        }
        let mut socket = socket;
        let mut reply = String::new();
        if proto == L4Protocol::Udp {
            let mut buf = [0u8; 512];
            let n = socket.read(&mut buf).map_err(|e| format!("recv: {e}"))?;
            reply.push_str(&String::from_utf8_lossy(&buf[..n]));
        } else {
            socket
                .read_to_string(&mut reply)
                .map_err(|e| format!("read: {e}"))?;
        }
        Ok(reply)
    })
}

#[track_caller]
fn expect_peer(reply: Result<String, String>, client: &str) {
    let reply = reply.unwrap_or_else(|e| panic!("no answer from {client}'s probe: {e}"));
    let peer: SocketAddr = reply
        .strip_prefix("peer=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected reply {reply:?}"));
    assert_eq!(
        peer.ip(),
        ip(client),
        "the backend sees the client's own address"
    );
}

fn entry(
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

fn sa(ip_text: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(ip_text), port)
}

/// `nft -j list table inet ironlb` in `ns`, with handles and counter values removed so that
/// two listings of equal rulesets compare equal. `None` when the table does not exist.
fn nft_listing(ns: &str) -> Option<serde_json::Value> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "table", "inet", TABLE_NAME,
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

fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What nft itself makes of the ruleset's Display text, loaded into a scratch namespace.
fn listing_of_text(ruleset: &Ruleset) -> serde_json::Value {
    let scratch = Lab::new();
    let path = std::env::temp_dir().join(format!("{}.nft", scratch.node));
    std::fs::write(&path, ruleset.to_string()).unwrap();
    run(&[
        "ip",
        "netns",
        "exec",
        &scratch.node,
        "nft",
        "-f",
        path.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&path);
    nft_listing(&scratch.node).expect("table loaded from text")
}

#[test]
fn forwarding_dnat_ipv4_tcp_udp_keeps_client_source_and_matches_nft() {
    require_kernel!();
    let lab = Lab::new();
    let entries = vec![
        entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, 30080, &[]),
        entry(VIP_V4, L4Protocol::Udp, 53, NODE_V4, 30053, &[]),
    ];
    let ruleset = render(&entries);
    let mut nft = lab.nft();
    nft.replace(&ruleset).expect("apply");

    if nft_available() {
        let kernel = nft_listing(&lab.node).expect("table exists");
        assert_eq!(
            kernel,
            listing_of_text(&ruleset),
            "kernel holds what nft makes of our text"
        );
        let text = serde_json::to_string(&kernel).unwrap();
        assert!(
            text.contains("\"prio\":-100") && text.contains("\"type\":\"nat\""),
            "{text}"
        );
    } else {
        eprintln!("nft not installed: skipping the listing comparison");
    }

    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    let _udp = PeerEchoServer::start(&lab.node, L4Protocol::Udp, sa(NODE_V4, 30053));
    expect_peer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80)),
        CLIENT_V4,
    );
    expect_peer(
        probe(&lab.client, L4Protocol::Udp, ip(CLIENT_V4), sa(VIP_V4, 53)),
        CLIENT_V4,
    );
    // A port that is not forwarded does not reach the node's listener.
    assert!(probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 81)).is_err());
}

#[test]
fn forwarding_dnat_ipv6_tcp_udp() {
    require_kernel!();
    let lab = Lab::new();
    let ruleset = render(&[
        entry(VIP_V6, L4Protocol::Tcp, 443, NODE_V6, 30443, &[]),
        entry(VIP_V6, L4Protocol::Udp, 53, NODE_V6, 30053, &[]),
    ]);
    lab.nft().replace(&ruleset).expect("apply");
    if nft_available() {
        assert_eq!(nft_listing(&lab.node).unwrap(), listing_of_text(&ruleset));
    }
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V6, 30443));
    let _udp = PeerEchoServer::start(&lab.node, L4Protocol::Udp, sa(NODE_V6, 30053));
    expect_peer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V6), sa(VIP_V6, 443)),
        CLIENT_V6,
    );
    expect_peer(
        probe(&lab.client, L4Protocol::Udp, ip(CLIENT_V6), sa(VIP_V6, 53)),
        CLIENT_V6,
    );
}

#[test]
fn forwarding_sctp() {
    require_kernel!();
    let lab = Lab::new();
    if let Err(reason) = sctp_supported(&lab.node) {
        eprintln!("SKIP forwarding_sctp: {reason}");
        return;
    }
    lab.nft()
        .replace(&render(&[entry(
            VIP_V4,
            L4Protocol::Sctp,
            9,
            NODE_V4,
            30009,
            &[],
        )]))
        .expect("apply");
    let _server = PeerEchoServer::start(&lab.node, L4Protocol::Sctp, sa(NODE_V4, 30009));
    expect_peer(
        probe(&lab.client, L4Protocol::Sctp, ip(CLIENT_V4), sa(VIP_V4, 9)),
        CLIENT_V4,
    );
}

#[test]
fn forwarding_source_ranges_drop_unlisted_sources() {
    require_kernel!();
    let lab = Lab::new();
    let ruleset = render(&[
        // Only 192.0.2.3 may use port 80; the IPv6 range does not apply to an IPv4 VIP.
        entry(
            VIP_V4,
            L4Protocol::Tcp,
            80,
            NODE_V4,
            30080,
            &["192.0.2.3/32", "2001:db8::/32"],
        ),
        entry(
            VIP_V4,
            L4Protocol::Udp,
            53,
            NODE_V4,
            30053,
            &["192.0.2.0/30"],
        ),
        entry(
            VIP_V6,
            L4Protocol::Tcp,
            80,
            NODE_V6,
            30080,
            &["2001:db8::2/128"],
        ),
        // Ranges of the other family only: nobody.
        entry(
            VIP_V4,
            L4Protocol::Tcp,
            8080,
            NODE_V4,
            30080,
            &["2001:db8::/32"],
        ),
    ]);
    lab.nft().replace(&ruleset).expect("apply");
    let _tcp4 = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    let _udp4 = PeerEchoServer::start(&lab.node, L4Protocol::Udp, sa(NODE_V4, 30053));
    let _tcp6 = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V6, 30080));

    expect_peer(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4_B),
            sa(VIP_V4, 80),
        ),
        CLIENT_V4_B,
    );
    let blocked = probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80));
    assert!(blocked.is_err(), "192.0.2.2 is not listed, got {blocked:?}");

    expect_peer(
        probe(&lab.client, L4Protocol::Udp, ip(CLIENT_V4), sa(VIP_V4, 53)),
        CLIENT_V4,
    );
    // A /30 is not byte-aligned: the kernel masks the source before comparing.
    expect_peer(
        probe(
            &lab.client,
            L4Protocol::Udp,
            ip(CLIENT_V4_B),
            sa(VIP_V4, 53),
        ),
        CLIENT_V4_B,
    );
    let blocked = probe(
        &lab.client,
        L4Protocol::Udp,
        ip(CLIENT_V4_C),
        sa(VIP_V4, 53),
    );
    assert!(
        blocked.is_err(),
        "192.0.2.4 is outside 192.0.2.0/30, got {blocked:?}"
    );

    expect_peer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V6), sa(VIP_V6, 80)),
        CLIENT_V6,
    );

    for source in [CLIENT_V4, CLIENT_V4_B] {
        let blocked = probe(&lab.client, L4Protocol::Tcp, ip(source), sa(VIP_V4, 8080));
        assert!(
            blocked.is_err(),
            "{source} got through an IPv6-only allow list: {blocked:?}"
        );
    }
    // The node's own address is not filtered: the rules match the VIP only.
    expect_peer(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4),
            sa(NODE_V4, 30080),
        ),
        CLIENT_V4,
    );
}

#[test]
fn forwarding_failed_replace_leaves_the_old_table() {
    require_kernel!();
    let lab = Lab::new();
    let good = render(&[entry(
        VIP_V4,
        L4Protocol::Tcp,
        80,
        NODE_V4,
        30080,
        &["192.0.2.2/32"],
    )]);
    let mut nft = lab.nft();
    nft.replace(&good).expect("apply");
    let before = nft_available().then(|| nft_listing(&lab.node).unwrap());

    // The next ruleset adds a port, then carries a DNAT in a filter chain, which the kernel
    // refuses (NAT is only valid in nat chains). The first rules of the batch are valid.
    let mut bad = render(&[
        entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, 30080, &[]),
        entry(VIP_V4, L4Protocol::Tcp, 81, NODE_V4, 30080, &[]),
    ]);
    bad.chains.insert(
        0,
        Chain {
            name: "bad".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: -110,
            policy: Policy::Accept,
            rules: vec![Rule {
                exprs: vec![
                    Expr::DestAddr(ip(VIP_V4)),
                    Expr::L4Proto(L4Protocol::Tcp),
                    Expr::DestPort(82),
                    Expr::Dnat {
                        addr: ip(NODE_V4),
                        port: 30080,
                    },
                ],
            }],
        },
    );
    let err = nft
        .replace(&bad)
        .expect_err("the kernel refuses a DNAT in a filter chain");
    let NftError::Rejected { failures } = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert!(!err.is_outcome_unknown());
    assert!(
        failures
            .iter()
            .any(|f| f.what.starts_with("rule 1 of chain bad: ")),
        "the error names the refused rule: {err}"
    );

    if let Some(before) = before {
        assert_eq!(
            nft_listing(&lab.node).unwrap(),
            before,
            "the old table is intact"
        );
    }
    // And it still behaves as before: port 81 is not forwarded, port 80 only for 192.0.2.2.
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    assert!(probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 81)).is_err());
    assert!(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4_B),
            sa(VIP_V4, 80)
        )
        .is_err()
    );
    expect_peer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80)),
        CLIENT_V4,
    );

    // An impossible value fails the same way: a nat chain before conntrack.
    let mut impossible = good.clone();
    impossible
        .chains
        .iter_mut()
        .find(|c| c.name == DNAT_CHAIN)
        .unwrap()
        .priority = -300;
    let err = nft
        .replace(&impossible)
        .expect_err("nat below conntrack priority");
    assert!(err.to_string().contains("add chain to_nodeports"), "{err}");
    if let Some(before) = nft_available().then(|| nft_listing(&lab.node).unwrap()) {
        assert!(
            serde_json::to_string(&before)
                .unwrap()
                .contains(SOURCE_CHAIN)
        );
    }
}

#[test]
fn forwarding_remove_leaves_no_table() {
    require_kernel!();
    let lab = Lab::new();
    let mut forwarder = Forwarder::new(lab.nft());
    let entries = [entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, 30080, &[])];
    assert_eq!(
        forwarder.sync(&entries).unwrap(),
        SyncOutcome::Applied { rules: 1 }
    );
    assert_eq!(forwarder.sync(&entries).unwrap(), SyncOutcome::Unchanged);
    if nft_available() {
        assert!(nft_listing(&lab.node).is_some());
    }
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    expect_peer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80)),
        CLIENT_V4,
    );

    // Owning nothing removes the table; traffic to the VIP stops.
    assert_eq!(forwarder.sync(&[]).unwrap(), SyncOutcome::Removed);
    if nft_available() {
        assert!(nft_listing(&lab.node).is_none(), "table gone");
    }
    assert!(probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80)).is_err());

    // Shutdown removal is idempotent.
    forwarder
        .remove()
        .expect("removing an absent table succeeds");
    forwarder
        .backend_mut()
        .remove(TABLE_NAME)
        .expect("and again");
}

#[test]
fn forwarding_large_ruleset_applies_in_one_batch() {
    require_kernel!();
    let lab = Lab::new();
    // 2,000 ports with a source range each: 6,000 rules, a batch of several MiB, far beyond
    // the default socket buffers.
    let entries: Vec<ForwardEntry> = (1..=2000u16)
        .map(|port| {
            entry(
                VIP_V4,
                L4Protocol::Tcp,
                port,
                NODE_V4,
                30000 + (port % 2000),
                &["192.0.2.2/32"],
            )
        })
        .collect();
    let ruleset = render(&entries);
    assert_eq!(ruleset.rule_count(), 6000);
    let mut nft = lab.nft();
    let started = Instant::now();
    nft.replace(&ruleset).expect("apply 6,000 rules");
    eprintln!(
        "applied {} rules in {:?}",
        ruleset.rule_count(),
        started.elapsed()
    );
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 31999));
    expect_peer(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4),
            sa(VIP_V4, 1999),
        ),
        CLIENT_V4,
    );
}
