//! bench-l2: the real `ironlb-speaker`s in a fresh lab (DESIGN.md "Performance goals", issue 4
//! acceptance 8).
//!
//! 1. **Abrupt failover**: from the client, a UDP probe to the VIP every 10 ms (answered by
//!    the kube-proxy stand-in of the node that owns the VIP, which names itself) while
//!    `lab fail <owner>` takes the owner's link down and SIGKILLs its processes. The gap is the
//!    longest silence between two answers from the last answer before the failure on
//!    ([`e2e::bench::probe_gap`]). Each run is followed by `lab restore` and a wait until the
//!    original owner answers ARP again.
//! 2. **Graceful handover**: the same, with `lab stop speaker-<owner>` (SIGTERM). In further
//!    runs a watcher on the client asks who-has for the VIP every 10 ms on a packet socket and
//!    records every reply: the most distinct MACs that answered one request must be 1
//!    ([`e2e::bench::arp_watch`]). Those runs are separate from the UDP ones so the watcher's
//!    requests cannot speed up the client's own neighbour entry.
//! 3. **Steady state**, 60 s with nothing changing in the cluster: the API requests from the
//!    nodes' addresses, counted by the API-server stand-in, before and after. Inside that
//!    window run the data-path measurements, which touch no API object:
//!    - ARP reply latency: N who-has requests, one at a time, timed in user space around the
//!      send and the receive on a packet socket (so the figures include the client's own
//!      scheduling), then 10,000 requests in one second to count losses; NDP likewise on the
//!      IPv6 VIP of a second Service;
//!    - throughput: iperf3 through the VIP against iperf3 straight to `ownerIP:nodePort`, in
//!      alternating rounds, to one `iperf3 -s` on the owner's NodePort (a Service the
//!      stand-in ignores).
//! 4. **Speaker RSS** (VmRSS) of every speaker after the steady state and at the end.
//!
//! `cargo run --release -p e2e --bin bench-l2`, as root. It first builds the lab and ironlb
//! binaries with the same profile (`--no-build` skips that), brings a 3-node dual-stack lab up,
//! prints a table ending with one JSON line, and takes the lab down whatever happens (Ctrl-C
//! included). Every loop is bounded in count and time; traffic goes only to the lab's VIPs and
//! node addresses, inside its namespaces, on the documentation ranges.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use e2e::bench::api_requests::RequestCounts;
use e2e::bench::arp_watch::{self, Heard, Watch};
use e2e::bench::iperf::{self, Ratio};
use e2e::bench::l2_client::{self, Exchanges, Load, NeighborSocket, ProbeCounts, UdpProber};
use e2e::bench::latency::Summary;
use e2e::bench::neighbor_probe::{self, Asker};
use e2e::bench::probe_gap::{self, Answer, Outage};
use e2e::bench::proc_usage::{self, Memory};
use e2e::bench::prom_text::{self, Sample};
use e2e::bench::runner;
use e2e::harness::{Cluster, LabOptions, wait_for};
use e2e::lab::components::IRONLB_NAMESPACE;
use e2e::lab::plan::HostPlan;
use e2e::lab::topology::{self, Topology};
use ironlb_speaker::packet::MacAddr;
use ironlb_speaker::responder::socket::Kind;
use serde_json::json;
use tokio::runtime::Runtime;

const BENCH_NAMESPACE: &str = "bench-l2";
const POOL: &str = "bench-l2";
/// On-link for every lab host, so the client ARPs/NDPs for them as on a LAN.
const POOL_V4: &str = "198.51.100.10-198.51.100.29";
const POOL_V6: &str = "2001:db8:0:100::10-2001:db8:0:100::29";
const PROBE_PORT: u16 = 7000;
const IPERF_PORT: u16 = 5201;

/// One probe (UDP, or ARP who-has in the watcher) every 10 ms, as the goal is stated.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Probing before the failure, so the timeline has answers from the owner.
const BASELINE: Duration = Duration::from_millis(500);
/// The new owner must answer alone this long before a run ends.
const HOLD: Duration = Duration::from_millis(500);
/// A run gives up waiting for another node to answer after this.
const MOVE_TIMEOUT: Duration = Duration::from_secs(15);
/// Hard bound on a prober or watcher (baseline + action + move + hold, with margin).
const PROBER_LIMIT: Duration = Duration::from_secs(30);
const SETUP_TIMEOUT: Duration = Duration::from_secs(90);
/// After a restore, the original owner ranks first again and takes the VIP back.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(45);
/// Quiet time after the VIP is back, so the next run starts from a settled membership.
const SETTLE: Duration = Duration::from_secs(2);
const ARP_TIMEOUT: Duration = Duration::from_millis(50);
const ARP_PAUSE: Duration = Duration::from_micros(500);
const ARP_LIMIT: Duration = Duration::from_secs(20);
/// 10 frames a millisecond for a second: the design's "10k requests/s without loss".
const LOAD_PER_MS: usize = 10;
const LOAD_DURATION: Duration = Duration::from_secs(1);
const LOAD_MAX: usize = 10_000;
const LOAD_GRACE: Duration = Duration::from_millis(300);

/// What the kube-proxy stand-in on the same node address reads (it writes nothing); the
/// speaker reads these too, so they are reported apart.
const SHARED_RESOURCES: [&str; 2] = ["services", "endpointslices"];

/// The speakers' lab benchmark: failover gaps, ARP/NDP latency, throughput, API requests, RSS.
#[derive(Parser, Debug)]
#[command(name = "bench-l2", version, about, long_about)]
struct Args {
    /// Failovers of each kind (abrupt, graceful) to take the median of.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Graceful handovers watched by ARP for two MACs answering at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    watch_runs: u32,
    /// Sequential ARP (and NDP) requests timed for the latency figures.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    arp_requests: u32,
    /// iperf3 rounds (each: one run through the VIP, one straight to the NodePort).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10))]
    iperf_rounds: u32,
    /// Length of each iperf3 run, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=30))]
    iperf_seconds: u32,
    /// The steady-state window over which API requests are counted, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(10..=600))]
    steady_seconds: u32,
    /// Worker nodes in the lab.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=8))]
    nodes: u16,
    /// Do not build the lab and ironlb binaries first.
    #[arg(long)]
    no_build: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    runner::main("bench-l2", || run(&args))
}

fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        std::env::var_os("E2E_KUBECONFIG").is_none(),
        "bench-l2 needs the lab (it fails hosts and captures frames on the client); unset E2E_KUBECONFIG"
    );
    if !args.no_build {
        runner::build("bench-l2")?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let cancel = Arc::new(AtomicBool::new(false));
    let on_signal = cancel.clone();
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("bench-l2: interrupted; stopping and taking the lab down");
            on_signal.store(true, Ordering::Relaxed);
        }
    });

    let mut report = Report {
        load_start: runner::load_average(),
        args: format!(
            "{} nodes, {} runs of each failover, {} ARP-watched handovers, {} ARP/NDP requests, {}×{} s iperf3 rounds, {} s steady state",
            args.nodes,
            args.runs,
            args.watch_runs,
            args.arp_requests,
            args.iperf_rounds,
            args.iperf_seconds,
            args.steady_seconds
        ),
        ..Report::default()
    };
    let bins = runner::dir()?;
    println!(
        "bench-l2: bringing a lab up ({} nodes, --ipv6, binaries from {})",
        args.nodes,
        bins.display()
    );
    let up = Instant::now();
    // Dropping the cluster takes the lab down, also when a phase fails.
    let cluster = Cluster::lab(LabOptions {
        nodes: args.nodes,
        ipv6: true,
        extra_args: vec![
            "--speaker".into(),
            "yes".into(),
            "--bin-dir".into(),
            bins.display().to_string(),
        ],
    })
    .context("bringing the lab up")?;
    println!("lab up in {:.1} s", up.elapsed().as_secs_f64());
    let result = bench(&rt, &cluster, args, &cancel, &mut report);
    report.load_end = runner::load_average();
    let down = cluster.down();
    if let Err(e) = &result {
        eprintln!("bench-l2: stopped early: {e:#}; printing what was measured");
    }
    report.print();
    result?;
    down.context("taking the lab down")?;
    Ok(())
}

fn interrupted(cancel: &AtomicBool) -> anyhow::Result<()> {
    ensure!(!cancel.load(Ordering::Relaxed), "interrupted");
    Ok(())
}

/// Sleeps `d` in short steps, returning early (with an error) on Ctrl-C.
fn sleep_checked(d: Duration, cancel: &AtomicBool) -> anyhow::Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        interrupted(cancel)?;
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        );
    }
    Ok(())
}

fn setup_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {BENCH_NAMESPACE}
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: {POOL}
  namespace: {IRONLB_NAMESPACE}
spec:
  addresses:
  - {POOL_V4}
  - {POOL_V6}
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata:
  name: {POOL}
  namespace: {IRONLB_NAMESPACE}
spec:
  ipAddressPools:
  - {POOL}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {BENCH_NAMESPACE}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - {{name: web, image: registry.k8s.io/e2e-test-images/agnhost:2.53}}
---
apiVersion: v1
kind: Service
metadata:
  name: probe
  namespace: {BENCH_NAMESPACE}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Cluster
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv4]
  selector: {{app: web}}
  ports:
  - {{name: udp, port: {PROBE_PORT}, targetPort: 8081, protocol: UDP}}
---
apiVersion: v1
kind: Service
metadata:
  name: probe6
  namespace: {BENCH_NAMESPACE}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Cluster
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  selector: {{app: web}}
  ports:
  - {{name: udp, port: {PROBE_PORT}, targetPort: 8081, protocol: UDP}}
---
apiVersion: v1
kind: Service
metadata:
  name: iperf
  namespace: {BENCH_NAMESPACE}
  annotations:
    lab.ironlb.io/kube-proxy: ignore
spec:
  type: LoadBalancer
  externalTrafficPolicy: Cluster
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv4]
  selector: {{app: web}}
  ports:
  - {{name: iperf, port: {IPERF_PORT}, targetPort: {IPERF_PORT}, protocol: TCP}}
"#
    )
}

/// The lab as the benchmark uses it: the client's end, the hosts by MAC, the services.
struct Lab<'a> {
    cluster: &'a Cluster,
    dir: PathBuf,
    client: HostPlan,
    hosts: Vec<HostPlan>,
    asker: Asker,
    vip: Ipv4Addr,
    vip6: Option<Ipv6Addr>,
    iperf_vip: Ipv4Addr,
    iperf_node_port: u16,
}

impl Lab<'_> {
    fn topology(&self) -> anyhow::Result<Topology> {
        topology::read(&self.dir)?.context("the lab's topology.json is gone")
    }

    fn host_of(&self, mac: MacAddr) -> Option<&HostPlan> {
        self.hosts.iter().find(|h| h.mac.0 == mac.0)
    }

    fn arp_socket(&self) -> anyhow::Result<NeighborSocket> {
        NeighborSocket::open(&self.client.netns, &self.client.interface, Kind::Arp)
            .context("opening an ARP packet socket in the client namespace")
    }

    /// The MAC that answers ARP for `vip` now, if any (one request, 200 ms).
    fn who_has(&self, vip: Ipv4Addr) -> anyhow::Result<Option<MacAddr>> {
        let mut socket = self.arp_socket()?;
        let asker = self.asker;
        let matches = move |f: &[u8]| neighbor_probe::arp_answer(f, &asker, vip);
        for _ in 0..4 {
            socket.send(&neighbor_probe::arp_request(&self.asker, vip))?;
            if let Some((_, answer)) = socket.wait_reply(Duration::from_millis(50), &matches) {
                return Ok(Some(answer.mac()));
            }
        }
        Ok(None)
    }

    /// Waits until some node answers ARP for `vip` (and, with `want`, that node) and returns it.
    fn wait_owner(
        &self,
        vip: Ipv4Addr,
        want: Option<&str>,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> anyhow::Result<String> {
        let started = Instant::now();
        let mut last = String::from("no answer");
        while started.elapsed() < timeout {
            interrupted(cancel)?;
            if let Some(mac) = self.who_has(vip)? {
                match self.host_of(mac) {
                    Some(h) if want.is_none_or(|w| w == h.name) => return Ok(h.name.clone()),
                    Some(h) => last = format!("{} answers", h.name),
                    None => last = format!("unknown MAC {mac} answers"),
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "after {timeout:?} {} does not answer ARP for {vip} ({last})",
            want.unwrap_or("any node")
        )
    }
}

fn jsonpath(cluster: &Cluster, what: &str, path: &str) -> anyhow::Result<String> {
    Ok(cluster
        .kubectl(&[
            "get",
            "-n",
            BENCH_NAMESPACE,
            what,
            "-o",
            &format!("jsonpath={path}"),
        ])?
        .trim()
        .to_string())
}

fn wait_ingress(cluster: &Cluster, service: &str) -> anyhow::Result<IpAddr> {
    let ip = wait_for(
        &format!("service {service} to get an external IP"),
        SETUP_TIMEOUT,
        || {
            let ip = jsonpath(
                cluster,
                &format!("service/{service}"),
                "{.status.loadBalancer.ingress[0].ip}",
            )
            .map_err(|e| e.to_string())?;
            ip.parse::<IpAddr>().map_err(|_| format!("ingress {ip:?}"))
        },
    )?;
    Ok(ip)
}

fn bench(
    rt: &Runtime,
    cluster: &Cluster,
    args: &Args,
    cancel: &AtomicBool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let t = cluster.topology().context("not a lab")?.clone();
    ensure!(
        t.processes.iter().any(|p| p.name.starts_with("speaker-")),
        "the lab runs no ironlb-speaker (binary missing or a placeholder); see `lab up` output"
    );
    let client = t.plan.host("client")?.clone();
    cluster.apply(&setup_yaml())?;
    let vip = match wait_ingress(cluster, "probe")? {
        IpAddr::V4(v) => v,
        other => bail!("service probe got {other}, not an IPv4 address"),
    };
    let iperf_vip = match wait_ingress(cluster, "iperf")? {
        IpAddr::V4(v) => v,
        other => bail!("service iperf got {other}, not an IPv4 address"),
    };
    let vip6 = match wait_ingress(cluster, "probe6") {
        Ok(IpAddr::V6(v)) => Some(v),
        Ok(other) => bail!("service probe6 got {other}, not an IPv6 address"),
        Err(e) => {
            report.note(format!("no IPv6 VIP, NDP skipped: {e:#}"));
            None
        }
    };
    let iperf_node_port: u16 = jsonpath(cluster, "service/iperf", "{.spec.ports[0].nodePort}")?
        .parse()
        .context("the iperf Service's nodePort")?;
    let lab = Lab {
        cluster,
        dir: t.dir.clone(),
        asker: Asker {
            mac: MacAddr(client.mac.0),
            ipv4: client.ipv4,
            ipv6: client.ipv6,
        },
        client,
        hosts: t.plan.hosts.clone(),
        vip,
        vip6,
        iperf_vip,
        iperf_node_port,
    };
    let owner = lab.wait_owner(vip, None, SETUP_TIMEOUT, cancel)?;
    println!(
        "VIP {vip} (UDP {PROBE_PORT}) is answered by {owner}; iperf VIP {iperf_vip} NodePort {iperf_node_port}; IPv6 VIP {}",
        vip6.map_or("none".to_string(), |v| v.to_string())
    );
    // The UDP path works end to end before anything is measured.
    wait_for("the probe VIP to answer over UDP", SETUP_TIMEOUT, || {
        let answers = probe_for(&lab, Duration::from_millis(300)).map_err(|e| e.to_string())?;
        if answers.is_empty() {
            Err("no UDP answer".to_string())
        } else {
            Ok(())
        }
    })?;

    // 1. Steady state, with the data-path measurements inside the window.
    steady_state(rt, &lab, args, cancel, report)?;
    report.rss_steady = speaker_memory(&lab)?;

    // 2. Abrupt failovers.
    for i in 0..args.runs {
        interrupted(cancel)?;
        let outcome = failover(&lab, Failure::Abrupt, cancel)?;
        println!("abrupt failover {}: {}", i + 1, outcome.describe());
        report.abrupt.push(outcome);
    }
    // 3. Graceful handovers, then the ARP-watched ones.
    for i in 0..args.runs {
        interrupted(cancel)?;
        let outcome = failover(&lab, Failure::Graceful, cancel)?;
        println!("graceful handover {}: {}", i + 1, outcome.describe());
        report.graceful.push(outcome);
    }
    for i in 0..args.watch_runs {
        interrupted(cancel)?;
        let outcome = watched_handover(&lab, cancel)?;
        println!("ARP-watched handover {}: {}", i + 1, outcome.describe());
        report.watches.push(outcome);
    }
    report.rss_end = speaker_memory(&lab)?;
    Ok(())
}

/// Probes the VIP over UDP for `period` and returns the answers.
fn probe_for(lab: &Lab<'_>, period: Duration) -> anyhow::Result<Vec<Answer>> {
    let prober = UdpProber::open(
        &lab.client.netns,
        SocketAddr::new(lab.vip.into(), PROBE_PORT),
    )?;
    let answers = Mutex::new(Vec::new());
    prober.run(
        Instant::now(),
        PROBE_INTERVAL,
        period,
        &answers,
        &AtomicBool::new(false),
    )?;
    Ok(answers.into_inner().unwrap_or_default())
}

fn speaker_memory(lab: &Lab<'_>) -> anyhow::Result<Vec<(String, Memory)>> {
    let t = lab.topology()?;
    let mut out = Vec::new();
    for p in t
        .processes
        .iter()
        .filter(|p| p.name.starts_with("speaker-"))
    {
        let pid = p
            .pid
            .with_context(|| format!("the lab records no pid for {}", p.name))?;
        out.push((p.name.clone(), proc_usage::read_memory(pid)?));
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// `lab fail <host>`: link down and SIGKILL of everything on the owner.
    Abrupt,
    /// `lab stop speaker-<host>`: SIGTERM to the owner's speaker only.
    Graceful,
}

impl Failure {
    fn target(self, owner: &str) -> String {
        match self {
            Failure::Abrupt => owner.to_string(),
            Failure::Graceful => format!("speaker-{owner}"),
        }
    }
}

struct RunOutcome {
    owner: String,
    /// `fail` or `stop`, for the log line.
    kind_label: &'static str,
    /// When the benchmark asked for the failure, on the prober's clock.
    event: Duration,
    /// How long `lab fail`/`lab stop` took to return.
    action: Duration,
    probes: ProbeCounts,
    outage: Result<Outage, String>,
    /// When the original owner answered ARP again after the restore.
    rejoined: Option<Duration>,
}

impl RunOutcome {
    fn describe(&self) -> String {
        let rejoin = self
            .rejoined
            .map_or("did not take the VIP back".to_string(), |d| {
                format!("took it back {:.1} s after restore", d.as_secs_f64())
            });
        match &self.outage {
            Ok(o) => format!(
                "{} -> {} (first answer {} ms after the {}): gap {:.0} ms (silence from {:.0} to {:.0} ms; baseline {:.0} ms); {} sent, {} answered; the action took {:.0} ms; {} {rejoin}",
                o.responder_before,
                o.responder_after,
                o.moved_at.map_or("never".to_string(), |m| format!(
                    "{:.0}",
                    ms(m.saturating_sub(self.event))
                )),
                self.kind_label,
                ms(o.gap),
                ms(o.last_before),
                ms(o.first_after),
                ms(o.baseline),
                self.probes.sent,
                self.probes.answered,
                ms(self.action),
                self.owner,
            ),
            Err(e) => format!(
                "{}: no gap measured: {e}; {} {rejoin}",
                self.owner, self.owner
            ),
        }
    }

    /// A gap only counts when the VIP really moved to another node.
    fn gap(&self) -> Option<Duration> {
        self.outage
            .as_ref()
            .ok()
            .filter(|o| o.moved())
            .map(|o| o.gap)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One failover with the UDP prober running, then the restore.
fn failover(lab: &Lab<'_>, kind: Failure, cancel: &AtomicBool) -> anyhow::Result<RunOutcome> {
    let owner = lab.wait_owner(lab.vip, None, REJOIN_TIMEOUT, cancel)?;
    let prober = UdpProber::open(
        &lab.client.netns,
        SocketAddr::new(lab.vip.into(), PROBE_PORT),
    )?;
    let answers = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let target = kind.target(&owner);
    let (probes, event, action) = std::thread::scope(|s| -> anyhow::Result<_> {
        let probing = s.spawn(|| prober.run(start, PROBE_INTERVAL, PROBER_LIMIT, &answers, &stop));
        std::thread::sleep(BASELINE);
        let event = start.elapsed();
        let acted = match kind {
            Failure::Abrupt => lab.cluster.fail(&target),
            Failure::Graceful => lab.cluster.stop(&target),
        };
        let action = start.elapsed() - event;
        if acted.is_ok() {
            while start.elapsed() - event < MOVE_TIMEOUT && !cancel.load(Ordering::Relaxed) {
                let done = {
                    let a = answers.lock().unwrap_or_else(|p| p.into_inner());
                    probe_gap::moved_and_held(&a, event, HOLD)
                };
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        stop.store(true, Ordering::Relaxed);
        let probes = probing
            .join()
            .map_err(|_| anyhow::anyhow!("the prober panicked"))??;
        acted.with_context(|| format!("lab {target} failure"))?;
        Ok((probes, event, action))
    })?;
    let answers = answers.into_inner().unwrap_or_default();
    let outage = probe_gap::outage(&answers, event).map_err(|e| e.to_string());
    let rejoined = restore(lab, &target, &owner, cancel)?;
    Ok(RunOutcome {
        owner,
        kind_label: match kind {
            Failure::Abrupt => "fail",
            Failure::Graceful => "stop",
        },
        event,
        action,
        probes,
        outage,
        rejoined,
    })
}

/// `lab restore`, then waits until `owner` answers for the VIP again and lets things settle.
fn restore(
    lab: &Lab<'_>,
    target: &str,
    owner: &str,
    cancel: &AtomicBool,
) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    lab.cluster
        .restore(target)
        .with_context(|| format!("lab restore {target}"))?;
    let back = match lab.wait_owner(lab.vip, Some(owner), REJOIN_TIMEOUT, cancel) {
        Ok(_) => Some(started.elapsed()),
        Err(e) => {
            interrupted(cancel)?;
            eprintln!("bench-l2: {e:#}; continuing with whichever node owns the VIP");
            None
        }
    };
    sleep_checked(SETTLE, cancel)?;
    Ok(back)
}

struct WatchOutcome {
    owner: String,
    watch: Result<Watch, String>,
    /// The first gratuitous ARP from another MAC than the owner's, after the stop.
    first_announcement: Option<Duration>,
    new_owner: Option<String>,
}

impl WatchOutcome {
    fn describe(&self) -> String {
        match &self.watch {
            Ok(w) => format!(
                "{} -> {}: {} requests, {} answered, at most {} MAC(s) per request, {} overlaps, longest unanswered {:.0} ms, first gratuitous ARP from the new owner {}",
                self.owner,
                self.new_owner.as_deref().unwrap_or("?"),
                w.requests,
                w.answered,
                w.max_macs,
                w.overlaps,
                ms(w.longest_silence),
                self.first_announcement
                    .map_or("none".to_string(), |d| format!(
                        "{:.0} ms after the stop",
                        ms(d)
                    ))
            ),
            Err(e) => format!("{}: {e}", self.owner),
        }
    }
}

/// A graceful handover watched by ARP: who-has every 10 ms, every reply recorded.
fn watched_handover(lab: &Lab<'_>, cancel: &AtomicBool) -> anyhow::Result<WatchOutcome> {
    let owner = lab.wait_owner(lab.vip, None, REJOIN_TIMEOUT, cancel)?;
    let owner_mac = lab
        .hosts
        .iter()
        .find(|h| h.name == owner)
        .map(|h| MacAddr(h.mac.0))
        .context("owner not in the plan")?;
    let socket = lab.arp_socket()?;
    let request = neighbor_probe::arp_request(&lab.asker, lab.vip);
    let asker = lab.asker;
    let vip = lab.vip;
    let live: Mutex<Vec<Heard>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let target = Failure::Graceful.target(&owner);
    let (capture, event) = std::thread::scope(|s| -> anyhow::Result<_> {
        let watching = s.spawn(|| {
            l2_client::capture(
                socket,
                &request,
                move |f: &[u8]| neighbor_probe::arp_answer(f, &asker, vip),
                start,
                PROBE_INTERVAL,
                PROBER_LIMIT,
                &stop,
                &live,
            )
        });
        std::thread::sleep(BASELINE);
        let event = start.elapsed();
        let acted = lab.cluster.stop(&target);
        if acted.is_ok() {
            while start.elapsed() - event < MOVE_TIMEOUT && !cancel.load(Ordering::Relaxed) {
                let done = {
                    let heard = live.lock().unwrap_or_else(|p| p.into_inner());
                    let as_answers: Vec<Answer> = heard
                        .iter()
                        .map(|h| Answer {
                            at: h.at,
                            responder: h.mac.to_string(),
                        })
                        .collect();
                    probe_gap::moved_and_held(&as_answers, event, HOLD)
                };
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        stop.store(true, Ordering::Relaxed);
        let capture = watching
            .join()
            .map_err(|_| anyhow::anyhow!("the ARP watcher panicked"))?;
        acted.with_context(|| format!("lab stop {target}"))?;
        Ok((capture, event))
    })?;
    let watch = arp_watch::judge(&capture.sent, &capture.replies, PROBE_INTERVAL)
        .map_err(|e| e.to_string());
    let first_announcement = capture
        .announcements
        .iter()
        .find(|h| h.at >= event && h.mac != owner_mac)
        .map(|h| h.at - event);
    let new_owner = capture
        .replies
        .last()
        .filter(|h| h.mac != owner_mac)
        .and_then(|h| lab.host_of(h.mac))
        .map(|h| h.name.clone());
    restore(lab, &target, &owner, cancel)?;
    Ok(WatchOutcome {
        owner,
        watch,
        first_announcement,
        new_owner,
    })
}

struct SteadyState {
    window: Duration,
    requests: RequestCounts,
}

fn api_metrics(rt: &Runtime, client: &kube::Client) -> anyhow::Result<Vec<Sample>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = rt
        .block_on(client.request_text(request))
        .context("GET /metrics from the API server")?;
    Ok(prom_text::parse(&text)?)
}

fn steady_state(
    rt: &Runtime,
    lab: &Lab<'_>,
    args: &Args,
    cancel: &AtomicBool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let client = rt.block_on(lab.cluster.client())?;
    let t = lab.topology()?;
    let node_ips: Vec<String> = t
        .plan
        .nodes()
        .flat_map(|h| h.ips())
        .map(|ip| ip.to_string())
        .collect();
    let node_ips: Vec<&str> = node_ips.iter().map(String::as_str).collect();
    // Let the set-up's writes (ServiceL2Status, events) land first.
    sleep_checked(Duration::from_secs(5), cancel)?;
    let window = Duration::from_secs(args.steady_seconds.into());
    println!(
        "steady state: counting the nodes' API requests for {} s; ARP, NDP and iperf3 run meanwhile",
        window.as_secs()
    );
    let before = RequestCounts::of_clients(&api_metrics(rt, &client)?, &node_ips);
    let began = Instant::now();

    let arp = arp_latency(lab, args.arp_requests as usize, cancel)?;
    report.arp = Some(arp);
    interrupted(cancel)?;
    report.arp_load = Some(arp_load(lab)?);
    if let Some(vip6) = lab.vip6 {
        interrupted(cancel)?;
        report.ndp = Some(ndp_latency(lab, vip6, args.arp_requests as usize, cancel)?);
    }
    interrupted(cancel)?;
    if args.iperf_rounds > 0 {
        match throughput(lab, args, cancel) {
            Ok(t) => report.throughput = Some(t),
            Err(e) => report.note(format!("throughput not measured: {e:#}")),
        }
    }
    let used = began.elapsed();
    if used > window {
        report.note(format!(
            "the data-path measurements took {:.0} s, longer than the {} s window; requests are counted over {:.0} s",
            used.as_secs_f64(),
            window.as_secs(),
            used.as_secs_f64()
        ));
    }
    sleep_checked(window.saturating_sub(used), cancel)?;
    let after = RequestCounts::of_clients(&api_metrics(rt, &client)?, &node_ips);
    report.steady = Some(SteadyState {
        window: began.elapsed(),
        requests: after.since(&before),
    });
    Ok(())
}

fn arp_latency(lab: &Lab<'_>, count: usize, cancel: &AtomicBool) -> anyhow::Result<Exchanges> {
    let mut socket = lab.arp_socket()?;
    let request = neighbor_probe::arp_request(&lab.asker, lab.vip);
    let (asker, vip) = (lab.asker, lab.vip);
    let matches = move |f: &[u8]| neighbor_probe::arp_answer(f, &asker, vip);
    println!("ARP: {count} sequential requests for {vip}");
    Ok(l2_client::exchange(
        &mut socket,
        &request,
        &matches,
        count,
        ARP_TIMEOUT,
        ARP_PAUSE,
        ARP_LIMIT,
        cancel,
    ))
}

fn arp_load(lab: &Lab<'_>) -> anyhow::Result<Load> {
    let socket = lab.arp_socket()?;
    let request = neighbor_probe::arp_request(&lab.asker, lab.vip);
    let (asker, vip) = (lab.asker, lab.vip);
    println!("ARP: {LOAD_MAX} requests in {LOAD_DURATION:?} for {vip}");
    Ok(l2_client::load(
        socket,
        &request,
        move |f: &[u8]| neighbor_probe::arp_answer(f, &asker, vip),
        LOAD_PER_MS,
        LOAD_DURATION,
        LOAD_MAX,
        LOAD_GRACE,
    ))
}

fn ndp_latency(
    lab: &Lab<'_>,
    vip6: Ipv6Addr,
    count: usize,
    cancel: &AtomicBool,
) -> anyhow::Result<Exchanges> {
    let mut socket = NeighborSocket::open(&lab.client.netns, &lab.client.interface, Kind::Ndp)
        .context("opening an NDP packet socket in the client namespace")?;
    let request = neighbor_probe::neighbor_solicit(&lab.asker, vip6)
        .context("the client has no IPv6 address")?;
    let asker = lab.asker;
    let matches = move |f: &[u8]| neighbor_probe::ndp_answer(f, &asker, vip6);
    println!("NDP: {count} sequential solicitations for {vip6}");
    Ok(l2_client::exchange(
        &mut socket,
        &request,
        &matches,
        count,
        ARP_TIMEOUT,
        ARP_PAUSE,
        ARP_LIMIT,
        cancel,
    ))
}

/// A child process that is killed when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `program args` in `netns`, killed after `limit`; returns stdout and the exit status.
fn run_in_netns(
    netns: &str,
    program: &str,
    args: &[String],
    limit: Duration,
) -> anyhow::Result<(String, String, std::process::ExitStatus)> {
    let child = Command::new("ip")
        .args(["netns", "exec", netns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program} in {netns}"))?;
    let mut guard = ChildGuard(child);
    let mut stdout = guard.0.stdout.take().context("no stdout pipe")?;
    let mut stderr = guard.0.stderr.take().context("no stderr pipe")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = guard.0.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            drop(guard);
            bail!("{program} in {netns} did not finish within {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    Ok((out, err, status))
}

fn iperf_client(
    lab: &Lab<'_>,
    target: IpAddr,
    port: u16,
    seconds: u32,
) -> anyhow::Result<iperf::Run> {
    let args: Vec<String> = [
        "-c",
        &target.to_string(),
        "-p",
        &port.to_string(),
        "-t",
        &seconds.to_string(),
        "-J",
        "--connect-timeout",
        "3000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let limit = Duration::from_secs(u64::from(seconds) + 15);
    let (out, err, status) = run_in_netns(&lab.client.netns, "iperf3", &args, limit)?;
    iperf::parse(&out)
        .with_context(|| format!("iperf3 -c {target} -p {port} ({status}): {}", err.trim()))
}

fn throughput(lab: &Lab<'_>, args: &Args, cancel: &AtomicBool) -> anyhow::Result<Ratio> {
    let owner_name = lab.wait_owner(lab.iperf_vip, None, SETUP_TIMEOUT, cancel)?;
    let owner = lab
        .hosts
        .iter()
        .find(|h| h.name == owner_name)
        .context("owner not in the plan")?;
    let port = lab.iperf_node_port;
    println!(
        "iperf3: server on {}:{port} ({}); {} rounds of {} s through {}:{IPERF_PORT} and straight to the NodePort",
        owner.ipv4, owner.name, args.iperf_rounds, args.iperf_seconds, lab.iperf_vip
    );
    // The server exits by itself after a minute without clients, and is killed when done.
    let server = Command::new("ip")
        .args(["netns", "exec", &owner.netns, "iperf3", "-s", "-p"])
        .arg(port.to_string())
        .args(["--idle-timeout", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 -s on the owner")?;
    let _server = ChildGuard(server);
    std::thread::sleep(Duration::from_millis(500));
    let mut via_vip = Vec::new();
    let mut direct = Vec::new();
    for round in 0..args.iperf_rounds {
        interrupted(cancel)?;
        // Alternate which path goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for through_vip in order {
            let (target, p) = if through_vip {
                (IpAddr::V4(lab.iperf_vip), IPERF_PORT)
            } else {
                (IpAddr::V4(owner.ipv4), port)
            };
            let run = iperf_client(lab, target, p, args.iperf_seconds)?;
            println!(
                "  round {} {}: {:.2} Gbit/s",
                round + 1,
                if through_vip { "via VIP " } else { "direct  " },
                run.received_bps / 1e9
            );
            if through_vip {
                via_vip.push(run);
            } else {
                direct.push(run);
            }
        }
    }
    iperf::ratio(&via_vip, &direct).context("no iperf3 round completed")
}

#[derive(Default)]
struct Report {
    args: String,
    load_start: String,
    load_end: String,
    abrupt: Vec<RunOutcome>,
    graceful: Vec<RunOutcome>,
    watches: Vec<WatchOutcome>,
    throughput: Option<Ratio>,
    arp: Option<Exchanges>,
    arp_load: Option<Load>,
    ndp: Option<Exchanges>,
    steady: Option<SteadyState>,
    rss_steady: Vec<(String, Memory)>,
    rss_end: Vec<(String, Memory)>,
    notes: Vec<String>,
}

/// Median, min and max of the runs whose VIP moved, and how many did not.
struct Gaps {
    median: Option<Duration>,
    min: Option<Duration>,
    max: Option<Duration>,
    measured: usize,
    failed: usize,
    /// Probes sent and never answered, median over the runs.
    lost_median: Option<u64>,
    /// The longest interval between answers before any run's failure: what "no probe lost"
    /// looks like on this machine (the probe interval plus the client's scheduling delays).
    baseline: Option<Duration>,
}

fn gaps(runs: &[RunOutcome]) -> Gaps {
    let values: Vec<Duration> = runs.iter().filter_map(RunOutcome::gap).collect();
    Gaps {
        median: probe_gap::median(&values),
        min: values.iter().min().copied(),
        max: values.iter().max().copied(),
        measured: values.len(),
        failed: runs.len() - values.len(),
        lost_median: {
            let mut lost: Vec<u64> = runs
                .iter()
                .map(|r| r.probes.sent.saturating_sub(r.probes.answered))
                .collect();
            lost.sort_unstable();
            lost.get(lost.len().saturating_sub(1) / 2).copied()
        },
        baseline: runs
            .iter()
            .filter_map(|r| r.outage.as_ref().ok().map(|o| o.baseline))
            .max(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "",
    }
}

fn row(what: &str, value: &str, goal: &str, ok: Option<bool>) {
    println!("{what:<48} {value:>16}   {goal:<16} {}", verdict(ok));
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("n/a".into(), |d| format!("{:.0} ms", ms(d)))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mean_max_mib(m: &[(String, Memory)]) -> Option<(f64, f64)> {
    if m.is_empty() {
        return None;
    }
    let values: Vec<f64> = m.iter().map(|(_, m)| m.rss_mib()).collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    Some((values.iter().sum::<f64>() / values.len() as f64, max))
}

impl Report {
    fn note(&mut self, text: String) {
        eprintln!("bench-l2: {text}");
        self.notes.push(text);
    }

    fn print(&self) {
        let abrupt = gaps(&self.abrupt);
        let graceful = gaps(&self.graceful);
        println!();
        println!("bench-l2: ironlb-speaker in the lab; {}", self.args);
        println!(
            "load average at start {}, at end {} (2 cores; other work on the machine shows here)",
            self.load_start, self.load_end
        );
        println!();
        println!("{:<48} {:>16}   {:<16} met?", "figure", "value", "goal");
        let gap_rows = |label: &str, g: &Gaps, goal: Duration, goal_text: &str| {
            row(
                &format!("{label} gap, median of {}", g.measured),
                &opt_ms(g.median),
                goal_text,
                g.median.map(|m| m < goal && g.failed == 0),
            );
            row(&format!("{label} gap, min"), &opt_ms(g.min), "", None);
            row(&format!("{label} gap, max"), &opt_ms(g.max), "", None);
            row(
                &format!("{label}: UDP probes lost, median per run"),
                &g.lost_median.map_or("n/a".into(), |n| n.to_string()),
                "",
                None,
            );
            row(
                &format!("{label}: prober resolution (worst baseline)"),
                &opt_ms(g.baseline),
                "",
                None,
            );
            if g.failed > 0 {
                row(
                    &format!("{label}: runs where the VIP did not move"),
                    &g.failed.to_string(),
                    "0",
                    Some(false),
                );
            }
        };
        gap_rows("abrupt failover", &abrupt, Duration::from_secs(1), "< 1 s");
        gap_rows(
            "graceful handover",
            &graceful,
            Duration::from_millis(200),
            "< 200 ms",
        );
        let watched: Vec<&Watch> = self
            .watches
            .iter()
            .filter_map(|w| w.watch.as_ref().ok())
            .collect();
        let max_macs = watched.iter().map(|w| w.max_macs).max();
        let overlaps: usize = watched.iter().map(|w| w.overlaps).sum();
        row(
            &format!(
                "handover: most MACs answering one ARP ({} runs)",
                watched.len()
            ),
            &max_macs.map_or("n/a".into(), |m| m.to_string()),
            "1",
            max_macs.map(|m| m == 1),
        );
        row(
            "handover: requests answered by 2+ MACs",
            &if watched.is_empty() {
                "n/a".into()
            } else {
                overlaps.to_string()
            },
            "0",
            (!watched.is_empty()).then_some(overlaps == 0),
        );
        let silence = watched.iter().map(|w| w.longest_silence).max();
        row("handover: longest ARP silence", &opt_ms(silence), "", None);
        match &self.throughput {
            Some(t) => {
                row(
                    "throughput via VIP / direct to NodePort",
                    &format!("{:.1} %", t.ratio * 100.0),
                    ">= 95 %",
                    Some(t.ratio >= 0.95),
                );
                row(
                    "throughput via VIP (mean)",
                    &format!("{:.2} Gbit/s", t.tested_bps / 1e9),
                    "",
                    None,
                );
                row(
                    "throughput direct (mean)",
                    &format!("{:.2} Gbit/s", t.reference_bps / 1e9),
                    "",
                    None,
                );
                let rounds: Vec<String> = t
                    .per_round
                    .iter()
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .collect();
                row("throughput ratio per round", &rounds.join(" "), "", None);
            }
            None => row(
                "throughput via VIP / direct to NodePort",
                "n/a",
                ">= 95 %",
                None,
            ),
        }
        let latency_rows = |label: &str, e: &Option<Exchanges>| {
            let s = e.as_ref().and_then(|e| Summary::of(&e.latencies));
            let f = |d: Option<Duration>| d.map_or("n/a".into(), |d| format!("{:.0} µs", us(d)));
            row(
                &format!("{label} reply latency p50"),
                &f(s.map(|s| s.p50)),
                "",
                None,
            );
            row(
                &format!("{label} reply latency p99"),
                &f(s.map(|s| s.p99)),
                "< 1 ms",
                s.map(|s| s.p99 < Duration::from_millis(1)),
            );
            row(
                &format!("{label} reply latency max"),
                &f(s.map(|s| s.max)),
                "",
                None,
            );
            if let Some(e) = e {
                row(
                    &format!("{label} requests lost"),
                    &format!("{} of {}", e.lost, e.sent),
                    "0",
                    Some(e.lost == 0 && e.send_errors == 0),
                );
            }
        };
        latency_rows("ARP", &self.arp);
        if let Some(l) = &self.arp_load {
            let rate = l.sent as f64 / l.elapsed.as_secs_f64().max(1e-3);
            row(
                &format!("ARP at {rate:.0} requests/s: replies"),
                &format!("{} of {}", l.replies, l.sent),
                "all",
                Some(l.replies >= l.sent && l.send_errors == 0),
            );
        }
        latency_rows("NDP", &self.ndp);
        match &self.steady {
            Some(s) => {
                let writes = s.requests.writes();
                let reads = s.requests.reads();
                let secs = s.window.as_secs_f64();
                row(
                    &format!("speakers' API writes in {secs:.0} s"),
                    &writes.total().to_string(),
                    "0",
                    Some(writes.total() == 0),
                );
                let own = reads.only(|r| !SHARED_RESOURCES.contains(&r));
                let shared = reads.only(|r| SHARED_RESOURCES.contains(&r));
                row(
                    &format!("speakers' API reads in {secs:.0} s"),
                    &own.total().to_string(),
                    "",
                    None,
                );
                row(
                    "  + services/endpointslices reads (with kube-proxy)",
                    &shared.total().to_string(),
                    "",
                    None,
                );
                if writes.total() > 0 {
                    println!("    writes: {}", writes.describe());
                }
                if reads.total() > 0 {
                    println!("    reads: {}", reads.describe());
                }
            }
            None => row("speakers' API writes at steady state", "n/a", "0", None),
        }
        for (label, m) in [
            ("after the steady state", &self.rss_steady),
            ("at the end", &self.rss_end),
        ] {
            if let Some((mean, max)) = mean_max_mib(m) {
                row(
                    &format!("speaker RSS {label}, max"),
                    &format!("{max:.1} MiB"),
                    "< 48 MiB",
                    Some(max < 48.0),
                );
                row(
                    &format!("speaker RSS {label}, mean"),
                    &format!("{mean:.1} MiB"),
                    "",
                    None,
                );
            }
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        println!();
        println!("{}", self.json(&abrupt, &graceful));
    }

    fn json(&self, abrupt: &Gaps, graceful: &Gaps) -> String {
        let round = |v: f64, places: i32| {
            let f = 10f64.powi(places);
            (v * f).round() / f
        };
        let ms_of = |d: Option<Duration>| d.map(|d| round(ms(d), 1));
        let us_of = |e: &Option<Exchanges>, pick: fn(&Summary) -> Duration| {
            e.as_ref()
                .and_then(|e| Summary::of(&e.latencies))
                .map(|s| round(us(pick(&s)), 1))
        };
        let watched: Vec<&Watch> = self
            .watches
            .iter()
            .filter_map(|w| w.watch.as_ref().ok())
            .collect();
        let rss = mean_max_mib(&self.rss_steady);
        let rss_end = mean_max_mib(&self.rss_end);
        let steady = self.steady.as_ref();
        let per_speaker: BTreeMap<String, f64> = self
            .rss_steady
            .iter()
            .map(|(n, m)| (n.clone(), round(m.rss_mib(), 1)))
            .collect();
        json!({
            "bench": "bench-l2",
            "failover_abrupt_ms": ms_of(abrupt.median),
            "failover_abrupt_min_ms": ms_of(abrupt.min),
            "failover_abrupt_max_ms": ms_of(abrupt.max),
            "failover_abrupt_runs": abrupt.measured,
            "failover_abrupt_failed_runs": abrupt.failed,
            "failover_abrupt_lost_probes": abrupt.lost_median,
            "failover_graceful_ms": ms_of(graceful.median),
            "failover_graceful_min_ms": ms_of(graceful.min),
            "failover_graceful_max_ms": ms_of(graceful.max),
            "failover_graceful_runs": graceful.measured,
            "failover_graceful_failed_runs": graceful.failed,
            "failover_graceful_lost_probes": graceful.lost_median,
            "prober_baseline_ms": ms_of(abrupt.baseline.max(graceful.baseline)),
            "handover_max_macs": watched.iter().map(|w| w.max_macs).max(),
            "handover_overlaps": (!watched.is_empty()).then(|| watched.iter().map(|w| w.overlaps).sum::<usize>()),
            "handover_watched_runs": watched.len(),
            "throughput_ratio": self.throughput.as_ref().map(|t| round(t.ratio, 4)),
            "throughput_vip_gbps": self.throughput.as_ref().map(|t| round(t.tested_bps / 1e9, 3)),
            "throughput_direct_gbps": self.throughput.as_ref().map(|t| round(t.reference_bps / 1e9, 3)),
            "arp_p50_us": us_of(&self.arp, |s| s.p50),
            "arp_p99_us": us_of(&self.arp, |s| s.p99),
            "arp_max_us": us_of(&self.arp, |s| s.max),
            "arp_lost": self.arp.as_ref().map(|e| e.lost),
            "arp_load_sent": self.arp_load.map(|l| l.sent),
            "arp_load_replies": self.arp_load.map(|l| l.replies),
            "ndp_p50_us": us_of(&self.ndp, |s| s.p50),
            "ndp_p99_us": us_of(&self.ndp, |s| s.p99),
            "ndp_lost": self.ndp.as_ref().map(|e| e.lost),
            "steady_state_seconds": steady.map(|s| round(s.window.as_secs_f64(), 1)),
            "steady_state_api_writes": steady.map(|s| s.requests.writes().total()),
            "steady_state_api_reads": steady.map(|s| s.requests.reads().only(|r| !SHARED_RESOURCES.contains(&r)).total()),
            "steady_state_shared_reads": steady.map(|s| s.requests.reads().only(|r| SHARED_RESOURCES.contains(&r)).total()),
            "speaker_rss_mib": rss.map(|(_, max)| round(max, 1)),
            "speaker_rss_mean_mib": rss.map(|(mean, _)| round(mean, 1)),
            "speaker_rss_end_max_mib": rss_end.map(|(_, max)| round(max, 1)),
            "speaker_rss_by_process_mib": per_speaker,
            "load_avg_start": self.load_start,
            "load_avg_end": self.load_end,
        })
        .to_string()
    }
}
