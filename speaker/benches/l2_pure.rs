//! Throughput of the pure L2 core: the responder decision per frame and the election per IP.
//!
//! `cargo bench -p ironlb-speaker --bench l2_pure` prints a table. The design goal it informs is
//! "ARP reply p99 < 1 ms at 10k requests/s": the decision must be a small fraction of that
//! budget. Loops are bounded in count.

use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ironlb_speaker::election::{self, Candidate};
use ironlb_speaker::packet::build::{self, GratuitousForm};
use ironlb_speaker::packet::{Frame, MacAddr, NdpDatagram, Payload, arp, ipv6, ndp};
use ironlb_speaker::responder::{Decision, decide};

const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const CLIENT: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0c]);

/// Runs `f` `iterations` times in batches of 100 and returns the median and the 99th
/// percentile of the per-call time of each batch.
fn measure<T>(iterations: u32, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    const BATCH: u32 = 100;
    let mut batches = Vec::with_capacity((iterations / BATCH) as usize);
    for _ in 0..iterations / BATCH {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(f());
        }
        batches.push(start.elapsed() / BATCH);
    }
    batches.sort();
    (
        batches[batches.len() / 2],
        batches[batches.len() * 99 / 100],
    )
}

fn row(name: &str, (p50, p99): (Duration, Duration)) {
    println!(
        "{name:<48} {:>10} ns {:>10} ns {:>12.0}",
        p50.as_nanos(),
        p99.as_nanos(),
        1.0 / p50.as_secs_f64()
    );
}

fn main() {
    // 1,000 owned IPs of each family, as on a busy node.
    let owned: HashSet<IpAddr> = (0..1000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)))
        .chain((0..1000u128).map(|i| IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | i))))
        .collect();
    let target4 = Ipv4Addr::from(0xc633_6400 + 500);
    let target6 = Ipv6Addr::from((0x2001_0db8u128 << 96) | 500);

    let arp_request = Frame {
        dst: MacAddr::BROADCAST,
        src: CLIENT,
        vlan: None,
        payload: Payload::Arp(arp::Repr {
            operation: arp::Operation::Request,
            sender_mac: CLIENT,
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_mac: MacAddr::ZERO,
            target_ip: target4,
        }),
    }
    .to_bytes();
    let arp_other = {
        let mut f = Frame::parse(&arp_request).unwrap();
        if let Payload::Arp(a) = &mut f.payload {
            a.target_ip = Ipv4Addr::new(192, 0, 2, 77);
        }
        f.to_bytes()
    };
    let ns = Frame {
        dst: ipv6::solicited_node_mac(target6),
        src: CLIENT,
        vlan: None,
        payload: Payload::Ndp(NdpDatagram {
            src: "2001:db8::ffff:1".parse().unwrap(),
            dst: ipv6::solicited_node(target6),
            message: ndp::Repr::NeighborSolicit {
                target: target6,
                source_link_addr: Some(CLIENT),
            },
        }),
    }
    .to_bytes();
    let mut ipv4_frame = arp_request.clone();
    ipv4_frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let garp = build::gratuitous_arp(OURS, target4, GratuitousForm::Request);

    for (name, frame) in [("ARP request, owned", &arp_request), ("NS, owned", &ns)] {
        assert!(
            matches!(decide(frame, OURS, &owned), Decision::Reply(_)),
            "{name}"
        );
    }

    println!(
        "{:<48} {:>13} {:>13} {:>12}",
        "operation", "p50", "p99", "per second"
    );
    const N: u32 = 200_000;
    row(
        "decide: ARP request for an owned IP -> reply",
        measure(N, || decide(black_box(&arp_request), OURS, &owned)),
    );
    row(
        "decide: ARP request for another IP -> drop",
        measure(N, || decide(black_box(&arp_other), OURS, &owned)),
    );
    row(
        "decide: NS for an owned IP -> NA",
        measure(N, || decide(black_box(&ns), OURS, &owned)),
    );
    row(
        "decide: IPv4 frame -> drop (unsupported)",
        measure(N, || decide(black_box(&ipv4_frame), OURS, &owned)),
    );
    row(
        "build: gratuitous ARP to bytes",
        measure(N, || black_box(&garp).to_bytes()),
    );

    for nodes in [3usize, 10, 100] {
        let names: Vec<String> = (0..nodes).map(|i| format!("node-{i}")).collect();
        let labels = BTreeMap::new();
        let candidates: Vec<Candidate<'_>> = names
            .iter()
            .map(|name| Candidate {
                name,
                labels: &labels,
                network_unavailable: false,
                alive: true,
                healthy: true,
            })
            .collect();
        let mut i = 0u32;
        let stats = measure(20_000, || {
            i = i.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(0xc633_6400 + (i % 4096)));
            election::elect(ip, &[&[]], black_box(&candidates))
        });
        row(&format!("elect: one IP among {nodes} nodes"), stats);
        let per_10k = stats.0 * 10_000;
        // The runtime re-elects every IP when membership changes: this is that cost.
        println!(
            "{:<48} {:>10.1} ms",
            format!("  -> 10,000 IPs among {nodes} nodes"),
            per_10k.as_secs_f64() * 1e3
        );
    }
}
