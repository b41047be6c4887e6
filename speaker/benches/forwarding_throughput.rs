//! TCP throughput through a VIP versus straight to its NodePort, behind a NAT-based kube-proxy.
//!
//! `cargo bench -p ironlb-speaker --bench forwarding_throughput` (as root, with iperf3 and nft)
//! builds the kernel tests' lab (client, node and pod namespaces; see
//! `tests/forwarding_lab`), has the node DNAT its NodePort to an iperf3 server in the pod as
//! kube-proxy does, applies ironlb's ruleset and runs iperf3 from the client, alternately
//! through the VIP and to the NodePort, 2 s per run. It prints the median of each and their
//! ratio (the design goal is ≥ 95 %), once with the VIP as the only entry and once among 2,000
//! others, which shows that a packet's cost does not grow with the number of entries. It
//! also prints how long the kernel took to apply each ruleset. Nothing is asserted: figures
//! on a shared 2-core machine are noisy.

#[path = "../tests/forwarding_lab/mod.rs"]
mod forwarding_lab;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use forwarding_lab::*;
use ironlb_speaker::forwarding::{ForwardEntry, L4Protocol, MarkBit, NftBackend, render};

const NODE_PORT: u16 = 30080;
const IPERF_PORT: u16 = 5201;
const ROUNDS: usize = 5;
const SECONDS_PER_RUN: &str = "2";

fn iperf3_available() -> bool {
    Command::new("iperf3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Waits until something listens on TCP `port` in `ns` (reads /proc/thread-self/net/tcp there: /proc/net is the main thread's namespace).
fn wait_listening(ns: &str, port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let needle = needle.clone();
        let listening = in_netns(ns, move || {
            std::fs::read_to_string("/proc/thread-self/net/tcp")
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains(&needle) && l.split_whitespace().nth(3) == Some("0A"))
        });
        if listening {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// One bounded iperf3 run from `ns` to `host:port`; bits per second received.
fn iperf(ns: &str, host: &str, port: u16) -> Result<f64, String> {
    let port = port.to_string();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "-J", "-c", host, "-p", &port])
        .args(["-t", SECONDS_PER_RUN, "--connect-timeout", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("iperf3 ran past its deadline".into());
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("iperf3 output: {e}"))?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| format!("iperf3: {}", report["error"]))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `count` entries on other VIPs and ports, with NodePorts of their own.
fn filler(count: usize) -> Vec<ForwardEntry> {
    (0..count)
        .map(|i| {
            ForwardEntry::new(
                Ipv4Addr::new(198, 51, 100, 11 + (i % 240) as u8).into(),
                L4Protocol::Tcp,
                1000 + (i / 240) as u16,
                ip(NODE_V4),
                31000 + i as u16,
                vec![],
            )
            .unwrap()
        })
        .collect()
}

fn measure(others: usize) -> Result<(), String> {
    let lab = Lab::with_pod();
    lab.nft_load(
        &lab.node,
        &format!(
            "table inet kube-proxy-sim {{
\tchain nat-prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tip daddr {NODE_V4} tcp dport {NODE_PORT} dnat ip to {POD_V4}:{IPERF_PORT}
\t}}
}}
"
        ),
    );
    let port = IPERF_PORT.to_string();
    let _server = NetnsProcess::spawn(lab.pod(), &["iperf3", "-s", "-B", POD_V4, "-p", &port])
        .map_err(|e| e.to_string())?;
    if !wait_listening(lab.pod(), IPERF_PORT) {
        return Err("iperf3 server did not start".into());
    }
    let mut entries = filler(others);
    entries.push(entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, NODE_PORT, &[]));
    let ruleset = render(&entries, MarkBit::DEFAULT);
    let started = Instant::now();
    lab.nft().replace(&ruleset).map_err(|e| e.to_string())?;
    let applied = started.elapsed();

    let (mut vip, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        vip.push(iperf(&lab.client, VIP_V4, 80)?);
        direct.push(iperf(&lab.client, NODE_V4, NODE_PORT)?);
    }
    let (vip, direct) = (median(vip), median(direct));
    println!(
        "{:>8} {:>12.2?} {:>14.2} {:>14.2} {:>7.1} %",
        entries.len(),
        applied,
        vip / 1e9,
        direct / 1e9,
        100.0 * vip / direct
    );
    Ok(())
}

fn main() {
    if let Some(reason) = unsupported() {
        println!("skipped: {reason}");
        return;
    }
    if !nft_available() || !iperf3_available() {
        println!("skipped: needs the nft and iperf3 binaries");
        return;
    }
    println!(
        "TCP, client -> node (ironlb rewrite, kube-proxy DNAT) -> pod; median of {ROUNDS} runs of {SECONDS_PER_RUN} s"
    );
    println!(
        "{:>8} {:>12} {:>14} {:>14} {:>9}",
        "entries", "apply", "VIP Gbit/s", "NodePort Gbit/s", "VIP/NP"
    );
    for others in [0, 2000] {
        if let Err(e) = measure(others) {
            println!("{:>8} failed: {e}", others + 1);
        }
    }
}
