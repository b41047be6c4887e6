//! Cost of turning forward entries into the bytes of one nftables transaction.
//!
//! `cargo bench -p ironlb-speaker --bench forwarding_render` prints, for growing numbers of
//! Service ports on one node, the time to render the ruleset and to encode the netlink batch,
//! the numbers of chains, rules and map elements, and the batch size. Applying the batch in
//! the kernel is measured by the `forwarding_throughput` benchmark and the
//! `forwarding_large_ruleset_applies_in_one_batch` kernel test, which print their durations.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ironlb_speaker::forwarding::netlink_msg::encode_replace;
use ironlb_speaker::forwarding::{
    ForwardEntry, L4Protocol, MarkBit, SourceRange, conflicts, render,
};

fn entries(count: usize, with_ranges: bool) -> Vec<ForwardEntry> {
    let node = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let range: SourceRange = "203.0.113.0/24".parse().unwrap();
    (0..count)
        .map(|i| {
            // 198.51.100.0/24 holds 256 VIPs; ports spread the rest.
            let vip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % 256) as u8));
            let port = 80 + (i / 256) as u16;
            let proto = if i % 2 == 0 {
                L4Protocol::Tcp
            } else {
                L4Protocol::Udp
            };
            let ranges = if with_ranges { vec![range] } else { vec![] };
            // Every Service port has its own NodePort (per protocol), as Kubernetes assigns them;
            // the range is wider than the default 30000-32767 so that 10,000 ports fit.
            let node_port = 20000 + (i / 2) as u16;
            ForwardEntry::new(vip, proto, port, node, node_port, ranges).unwrap()
        })
        .collect()
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    println!(
        "{:>8} {:>7} {:>7} {:>7} {:>9} {:>12} {:>12} {:>11}",
        "ports", "ranges", "chains", "rules", "elements", "render", "encode", "batch"
    );
    for count in [100usize, 1_000, 10_000] {
        for with_ranges in [false, true] {
            let input = entries(count, with_ranges);
            let runs = if count >= 10_000 { 5 } else { 21 };
            let render_time = median(runs, || {
                black_box(render(black_box(&input), MarkBit::DEFAULT));
            });
            let ruleset = render(&input, MarkBit::DEFAULT);
            let encode_time = median(runs, || {
                black_box(encode_replace(black_box(&ruleset), 1));
            });
            let batch = encode_replace(&ruleset, 1);
            assert!(conflicts(&input).is_empty(), "the input has no conflicts");
            println!(
                "{:>8} {:>7} {:>7} {:>7} {:>9} {:>12.3?} {:>12.3?} {:>8} KiB",
                count,
                if with_ranges { "1" } else { "0" },
                ruleset.chains.len(),
                ruleset.rule_count(),
                ruleset.element_count(),
                render_time,
                encode_time,
                batch.bytes.len() / 1024
            );
        }
    }
}
