//! Prints, from the deterministic simulator, how membership scales: failure detection time as
//! seen by every other member, graceful-leave time, and the steady-state load per member, for
//! growing clusters at the default settings. Simulated time, so the figures do not depend on
//! this machine's speed.
//!
//! `cargo run --release -p ironlb-speaker --example membership_sim`

use std::time::Duration;

use ironlb_speaker::membership::Config;
use ironlb_speaker::membership::sim::{Cluster, LinkModel};

const RUNS: u64 = 10;

struct Row {
    n: usize,
    loss: f64,
    first: Vec<Duration>,
    all: Vec<Duration>,
    leave: Duration,
    datagrams_per_s: f64,
    bytes_per_s: f64,
    false_downs: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

fn measure(n: usize, loss: f64) -> Row {
    let link = LinkModel::lossy(loss);
    let mut first = Vec::new();
    let mut all = Vec::new();
    let mut leave = Duration::ZERO;
    let mut false_downs = 0;
    let (mut datagrams, mut bytes, mut seconds) = (0u64, 0u64, 0.0);
    for run in 0..RUNS {
        let mut c = Cluster::new(n, Config::default(), link, run * 1000 + n as u64)
            .expect("valid simulation");
        c.run_for(Duration::from_secs(1));

        // Steady state load.
        let (d0, b0) = (c.datagrams_sent(), c.bytes_sent());
        c.run_for(Duration::from_secs(5));
        datagrams += c.datagrams_sent() - d0;
        bytes += c.bytes_sent() - b0;
        seconds += 5.0 * n as f64;

        // Abrupt failure at an arbitrary phase of the probe cycle.
        c.run_for(Duration::from_micros(run * 9_700));
        let victim = (run as usize * 13) % n;
        let name = c.name(victim).to_owned();
        let at = c.now();
        c.kill(victim);
        c.run_for(Duration::from_secs(2));
        let mut seen: Vec<Duration> = (0..n)
            .filter(|&i| i != victim)
            .filter_map(|i| c.time_declared_down(i, &name, at))
            .map(|t| t - at)
            .collect();
        seen.sort();
        if let Some(f) = seen.first() {
            first.push(*f);
        }
        all.extend(seen);
        for i in (0..n).filter(|&i| i != victim) {
            false_downs += c
                .downs_seen(i, at)
                .iter()
                .filter(|(_, m)| *m != name)
                .count();
        }

        // Graceful leave of another member.
        if n > 2 {
            let leaver = (victim + 1) % n;
            let name = c.name(leaver).to_owned();
            let at = c.now();
            c.leave(leaver);
            c.run_for(Duration::from_secs(1));
            let worst = (0..n)
                .filter(|&i| i != victim && i != leaver)
                .filter_map(|i| c.time_declared_down(i, &name, at))
                .map(|t| t - at)
                .max()
                .unwrap_or_default();
            leave = leave.max(worst);
        }
    }
    Row {
        n,
        loss,
        first,
        all,
        leave,
        datagrams_per_s: datagrams as f64 / seconds,
        bytes_per_s: bytes as f64 / seconds,
        false_downs,
    }
}

fn main() {
    let config = Config::default();
    println!(
        "membership simulation: probe {:?}, ack timeout {:?}, indirect {:?}, suspicion {:?}, {} monitors; detection bound {:?} + jitter",
        config.probe_interval,
        config.ack_timeout,
        config.indirect_timeout,
        config.suspicion_timeout,
        config.monitors,
        config.detection_bound()
    );
    println!("LAN model: one-way delay 100-300 us; {RUNS} kills and leaves per row\n");
    println!(
        "{:>5} {:>6} | {:>14} {:>12} {:>12} {:>12} | {:>10} | {:>14} {:>12} | {:>11}",
        "N",
        "loss",
        "first det. p50",
        "all p50",
        "all p99",
        "all max",
        "leave max",
        "datagrams/s/mb",
        "bytes/s/mb",
        "false downs"
    );
    for (n, loss) in [
        (3, 0.0),
        (10, 0.0),
        (50, 0.0),
        (100, 0.0),
        (10, 0.03),
        (100, 0.03),
    ] {
        let mut r = measure(n, loss);
        println!(
            "{:>5} {:>5.0}% | {:>11.1} ms {:>9.1} ms {:>9.1} ms {:>9.1} ms | {:>7.2} ms | {:>14.1} {:>12.0} | {:>11}",
            r.n,
            r.loss * 100.0,
            ms(percentile(&mut r.first, 0.5)),
            ms(percentile(&mut r.all, 0.5)),
            ms(percentile(&mut r.all, 0.99)),
            ms(percentile(&mut r.all, 1.0)),
            ms(r.leave),
            r.datagrams_per_s,
            r.bytes_per_s,
            r.false_downs,
        );
    }
}
