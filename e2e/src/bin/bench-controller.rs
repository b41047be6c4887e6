//! bench-controller: the real `ironlb-controller` in a fresh lab (DESIGN.md "Performance goals").
//!
//! 1. **Burst**: 1,000 LoadBalancer Services created by a few concurrent creators; for each,
//!    the time from its ADDED event (seen by this benchmark's own watcher) and from its create
//!    call's return to the first watch event that shows `status.loadBalancer.ingress`.
//! 2. **Memory**: the controller's VmRSS idle, at 1,000 and at 10,000 Services (and each
//!    speaker's at 10,000 when the lab runs speakers).
//! 3. **Restart** at 10,000 Services, abrupt (SIGKILL) and graceful (SIGTERM): time until the
//!    new process leads with its allocation state rebuilt, the API writes it made (from the
//!    API-server stand-in's per-client request counts) and how many IPs moved.
//!
//! Services are single-stack IPv6 (`ipFamilies: [IPv6]`) from the pool `2001:db8:0:100::/64`:
//! the IPv4 documentation ranges hold fewer than 1,000 addresses. So the lab is brought up with
//! `--ipv6` (IPv6 ClusterIPs). The burst's Services get NodePorts (ipMode Proxy, the default
//! path); the other 9,000 set `allocateLoadBalancerNodePorts: false` (ipMode VIP), since the
//! NodePort range holds 2,768 ports. None has a selector, and all carry the annotation that
//! makes the lab's kube-proxy stand-in ignore them, so the load falls on the controller and the
//! API server only.
//!
//! `cargo run --release -p e2e --bin bench-controller`, as root. It first builds the lab and
//! ironlb binaries with the same profile (`--no-build` skips that), brings a lab up with them
//! (3 nodes, `--ipv6`), runs the phases with every wait bounded, prints a table ending with one
//! JSON line, and takes the lab down whatever happens (Ctrl-C included). With `E2E_KUBECONFIG`
//! it runs the burst against that cluster instead (ironlb installed there); memory and restart
//! need the lab and are reported as n/a. No traffic is sent anywhere: the addresses are only
//! written into Service status.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use e2e::bench::api_requests::RequestCounts;
use e2e::bench::latency::{Summary, ms};
use e2e::bench::proc_usage::{self, Memory};
use e2e::bench::prom_text::{self, Sample};
use e2e::bench::runner;
use e2e::bench::service_load::{self, Created, ServiceWatch};
use e2e::bench::timeline;
use e2e::harness::{Cluster, LabOptions, wait_for};
use e2e::lab::components::{CONTROLLER_ADMIN_PORT, IRONLB_NAMESPACE};
use e2e::lab::probe;
use e2e::lab::topology::{self, Topology};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const BENCH_NAMESPACE: &str = "bench";
const POOL: &str = "bench-controller";
/// 2^64 addresses, never materialised by the allocator; on-link for the lab's hosts.
const POOL_RANGE: &str = "2001:db8:0:100::/64";

const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_READY_TIMEOUT: Duration = Duration::from_secs(30);
const BURST_TIMEOUT: Duration = Duration::from_secs(60);
const FILL_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the controller's write counts must stay still to call it idle, and the bound.
const QUIET_FOR: Duration = Duration::from_secs(3);
const QUIET_TIMEOUT: Duration = Duration::from_secs(120);
/// Kill → leading with state rebuilt; a killed leader's Lease (15 s by default) must expire.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// After the restarted controller is ready, how long to keep counting its writes.
const AFTER_RESTART_WINDOW: Duration = Duration::from_secs(5);
/// Lets allocator and caches settle before a memory reading.
const SETTLE: Duration = Duration::from_secs(2);
const METRICS_POLL: Duration = Duration::from_millis(20);

/// Resources the controller writes. The node agent shares its address in the lab but writes
/// none of these (Nodes, Pods, EndpointSlices, Deployments).
const CONTROLLER_RESOURCES: [&str; 6] = [
    "services",
    "services/status",
    "ipaddresspools",
    "ipaddresspools/status",
    "events",
    "leases",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Want {
    Auto,
    Yes,
    No,
}

/// The controller's lab benchmark: burst latency, memory and restart at 10,000 Services.
#[derive(Parser, Debug)]
#[command(name = "bench-controller", version, about, long_about)]
struct Args {
    /// Services created in the burst (they get NodePorts, so at most 2,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=2000))]
    burst: u32,
    /// Services in total for the memory and restart phases.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    total: u32,
    /// Concurrent creators in the burst.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    creators: u32,
    /// Concurrent creators filling up to --total.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    fill_creators: u32,
    /// Worker nodes in the lab.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=8))]
    nodes: u16,
    /// Run the speakers in the lab: `auto` when their binary is more than a placeholder.
    #[arg(long, value_enum, default_value = "auto")]
    speaker: Want,
    /// The namespace ironlb is installed in (where the benchmark's pool goes).
    #[arg(long, default_value = IRONLB_NAMESPACE)]
    namespace: String,
    /// Do not build the lab and ironlb binaries first.
    #[arg(long)]
    no_build: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    runner::main("bench-controller", || run(&args))
}

fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.total >= args.burst,
        "--total ({}) must be at least --burst ({})",
        args.total,
        args.burst
    );
    let on_lab = std::env::var_os("E2E_KUBECONFIG").is_none();
    if on_lab && !args.no_build {
        runner::build("bench-controller")?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("bench-controller: interrupted; stopping and taking the lab down");
            on_signal.cancel();
        }
    });

    let load_start = runner::load_average();
    let mut extra_args = Vec::new();
    if on_lab {
        extra_args.extend(["--speaker".to_string(), want_arg(args.speaker).to_string()]);
        extra_args.extend([
            "--bin-dir".to_string(),
            runner::dir()?.display().to_string(),
        ]);
        println!(
            "bench-controller: bringing a lab up ({} nodes, --ipv6, binaries from {})",
            args.nodes,
            runner::dir()?.display()
        );
    } else {
        println!("bench-controller: using the cluster of E2E_KUBECONFIG");
    }
    let up = Instant::now();
    // Dropping the cluster takes the lab down, also when a phase fails.
    let cluster = Cluster::start_with(LabOptions {
        nodes: args.nodes,
        ipv6: true,
        extra_args,
    })
    .context("bringing the cluster up")?;
    if cluster.is_lab() {
        println!("lab up in {:.1} s", up.elapsed().as_secs_f64());
    }
    let mut report = Report {
        load_start,
        ..Report::default()
    };
    let result = bench(&rt, &cluster, args, &cancel, &mut report);
    report.load_end = runner::load_average();
    let down = cluster.down();
    if let Err(e) = &result {
        eprintln!("bench-controller: stopped early: {e:#}; printing what was measured");
    }
    report.print();
    result?;
    down.context("taking the lab down")?;
    Ok(())
}

fn want_arg(w: Want) -> &'static str {
    match w {
        Want::Auto => "auto",
        Want::Yes => "yes",
        Want::No => "no",
    }
}

/// The lab's view of its processes, re-read after restarts (pids change).
struct LabView {
    dir: PathBuf,
    controller_metrics_url: String,
    /// The address the controller's requests come from (`cp` on the segment).
    controller_client: String,
}

impl LabView {
    fn new(t: &Topology) -> Self {
        LabView {
            dir: t.dir.clone(),
            controller_metrics_url: format!(
                "http://{}:{CONTROLLER_ADMIN_PORT}/metrics",
                t.plan.mgmt.cp_ip
            ),
            controller_client: t.plan.control_plane().ipv4.to_string(),
        }
    }

    fn topology(&self) -> anyhow::Result<Topology> {
        topology::read(&self.dir)?.context("the lab's topology.json is gone")
    }

    fn pid(&self, process: &str) -> anyhow::Result<u32> {
        self.topology()?
            .process(process)
            .and_then(|p| p.pid)
            .with_context(|| format!("the lab records no running {process}"))
    }

    fn memory(&self, process: &str) -> anyhow::Result<Memory> {
        Ok(proc_usage::read_memory(self.pid(process)?)?)
    }

    fn cpu(&self, process: &str) -> anyhow::Result<Duration> {
        Ok(proc_usage::read_cpu(self.pid(process)?)?)
    }

    fn speakers(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .topology()?
            .processes
            .iter()
            .filter(|p| p.name.starts_with("speaker-"))
            .map(|p| p.name.clone())
            .collect())
    }

    fn controller_metrics(&self) -> Option<Vec<Sample>> {
        match probe::get(&self.controller_metrics_url, Duration::from_millis(500)) {
            Ok((200, body)) => prom_text::parse(&body).ok(),
            _ => None,
        }
    }
}

fn api_metrics(rt: &Runtime, client: &kube::Client) -> anyhow::Result<Vec<Sample>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = rt
        .block_on(client.request_text(request))
        .context("GET /metrics from the API server")?;
    Ok(prom_text::parse(&text)?)
}

fn controller_writes(
    rt: &Runtime,
    client: &kube::Client,
    lab: &LabView,
) -> anyhow::Result<RequestCounts> {
    Ok(
        RequestCounts::of_clients(&api_metrics(rt, client)?, &[lab.controller_client.as_str()])
            .writes()
            .only(|r| CONTROLLER_RESOURCES.contains(&r)),
    )
}

fn pool_yaml(namespace: &str) -> String {
    format!(
        "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {POOL}\n  namespace: {namespace}\n\
         spec:\n  addresses:\n  - {POOL_RANGE}\n---\n\
         apiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: {POOL}\n  namespace: {namespace}\n\
         spec:\n  ipAddressPools:\n  - {POOL}\n"
    )
}

fn service_names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("svc-{i:05}")).collect()
}

fn keys(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| service_load::key(BENCH_NAMESPACE, n))
        .collect()
}

fn bench(
    rt: &Runtime,
    cluster: &Cluster,
    args: &Args,
    cancel: &CancellationToken,
    report: &mut Report,
) -> anyhow::Result<()> {
    let client = rt.block_on(cluster.client())?;
    let lab = cluster.topology().map(LabView::new);
    if let Some(lab) = &lab {
        if lab.topology()?.process("controller").is_none() {
            bail!(
                "the lab runs no ironlb-controller (binary missing or a placeholder); see `lab up` output"
            );
        }
        report.speakers = lab.speakers()?;
    }

    // Set-up: a namespace, the pool, and the benchmark's watcher.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BENCH_NAMESPACE}}),
    )?;
    match rt.block_on(namespaces.create(&PostParams::default(), &ns)) {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating the benchmark namespace"),
    }
    cluster.apply(&pool_yaml(&args.namespace))?;
    wait_for("the benchmark pool to be Ready", POOL_READY_TIMEOUT, || {
        let ready = cluster
            .kubectl(&[
                "get",
                "ipaddresspools.ironlb.io",
                "-n",
                &args.namespace,
                POOL,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ])
            .map_err(|e| e.to_string())?;
        if ready.trim() == "True" {
            Ok(())
        } else {
            Err(format!("Ready={ready:?}"))
        }
    })?;
    let services: Api<Service> = Api::namespaced(client.clone(), BENCH_NAMESPACE);
    let mut watch = rt.block_on(async { ServiceWatch::spawn(services.clone()) });
    rt.block_on(watch.wait_synced(SYNC_TIMEOUT))?;

    if let Some(lab) = &lab {
        std::thread::sleep(SETTLE);
        report.rss_idle = Some(lab.memory("controller")?);
    }

    // 1. The burst.
    let burst_names = service_names(0..args.burst);
    let burst_keys = keys(&burst_names);
    let cpu_before = lab.as_ref().map(usage_cpu).transpose()?;
    println!(
        "burst: creating {} Services, {} creators",
        args.burst, args.creators
    );
    let created = rt.block_on(service_load::create_all(
        &services,
        make_services(&burst_names, true),
        args.creators as usize,
        cancel,
    ))?;
    let burst_start = Instant::now() - created.elapsed;
    let all_in = rt.block_on(watch.wait_all_ingress(&burst_keys, BURST_TIMEOUT, cancel))?;
    if let (Some(lab), Some(before)) = (&lab, cpu_before) {
        let after = usage_cpu(lab)?;
        report.burst_cpu = Some((after.0 - before.0, after.1 - before.1));
    }
    report.burst = Some(burst_figures(
        &watch,
        &burst_keys,
        &created,
        all_in - burst_start,
    ));
    report.burst_services = args.burst;
    report.creators = args.creators;
    if let Some(lab) = &lab {
        std::thread::sleep(SETTLE);
        report.rss_1k = Some(lab.memory("controller")?);
    }

    // 2. Fill up to the total.
    let fill_names = service_names(args.burst..args.total);
    let fill_keys = keys(&fill_names);
    if !fill_names.is_empty() {
        println!(
            "fill: creating {} more Services, {} creators",
            fill_names.len(),
            args.fill_creators
        );
        let created = rt.block_on(service_load::create_all(
            &services,
            make_services(&fill_names, false),
            args.fill_creators as usize,
            cancel,
        ))?;
        let fill_start = Instant::now() - created.elapsed;
        let all_in = rt.block_on(watch.wait_all_ingress(&fill_keys, FILL_TIMEOUT, cancel))?;
        let seen = watch.timeline().seen_to_ingress(&fill_keys);
        report.fill = Some(FillFigures {
            services: fill_names.len(),
            latency: Summary::of(&seen),
            create_seconds: created.elapsed.as_secs_f64(),
            all_ingress_seconds: (all_in - fill_start).as_secs_f64(),
            drain_seconds: None,
        });
    }
    report.total_services = args.total;
    let all_keys: Vec<String> = burst_keys.iter().chain(&fill_keys).cloned().collect();

    let Some(lab) = &lab else {
        println!("memory and restart phases need the lab; skipped on this cluster");
        return Ok(());
    };
    println!("waiting for the controller's background writes (annotations, events) to drain");
    let drained_at = wait_quiet(rt, &client, lab, cancel)?;
    if let Some(fill) = &mut report.fill {
        fill.drain_seconds = Some(drained_at.as_secs_f64());
    }
    std::thread::sleep(SETTLE);
    report.rss_total = Some(lab.memory("controller")?);
    for speaker in &report.speakers {
        report
            .speaker_rss_total
            .push((speaker.clone(), lab.memory(speaker)?));
    }

    // 3. Restarts.
    let expected = all_keys.len();
    for kind in [RestartKind::Abrupt, RestartKind::Graceful] {
        ensure!(!cancel.is_cancelled(), "interrupted");
        println!("restart ({}): {}", kind.label(), kind.how());
        let r = measure_restart(rt, cluster, &client, lab, &watch, kind, expected, cancel)?;
        report.restarts.push(r);
    }

    // A Service created after the restarts gets its IP from the new process.
    let probe_names = vec!["probe-after-restart".to_string()];
    let probe_keys = keys(&probe_names);
    let created = rt.block_on(service_load::create_all(
        &services,
        make_services(&probe_names, false),
        1,
        cancel,
    ))?;
    rt.block_on(watch.wait_all_ingress(&probe_keys, BURST_TIMEOUT, cancel))?;
    report.probe_after_restart = watch
        .timeline()
        .seen_to_ingress(&probe_keys)
        .first()
        .copied();
    report.probe_from_create = watch
        .timeline()
        .created_to_ingress(&created.returned)
        .first()
        .copied();
    Ok(())
}

fn make_services(names: &[String], node_ports: bool) -> Vec<Service> {
    names
        .iter()
        .map(|n| service_load::bench_service(BENCH_NAMESPACE, n, node_ports))
        .collect()
}

/// CPU time of the controller and of the API server so far.
fn usage_cpu(lab: &LabView) -> anyhow::Result<(Duration, Duration)> {
    Ok((lab.cpu("controller")?, lab.cpu("apiserver")?))
}

fn burst_figures(
    watch: &ServiceWatch,
    keys: &[String],
    created: &Created,
    all_ingress: Duration,
) -> BurstFigures {
    let timeline = watch.timeline();
    BurstFigures {
        from_added: Summary::of(&timeline.seen_to_ingress(keys)),
        from_create: Summary::of(&timeline.created_to_ingress(&created.returned)),
        create_call: Summary::of(&created.calls),
        create_seconds: created.elapsed.as_secs_f64(),
        all_ingress_seconds: all_ingress.as_secs_f64(),
    }
}

/// Waits until the controller's writes stop changing for [`QUIET_FOR`]; returns how long that
/// took from the call.
fn wait_quiet(
    rt: &Runtime,
    client: &kube::Client,
    lab: &LabView,
    cancel: &CancellationToken,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last = controller_writes(rt, client, lab)?.only(|r| r != "leases");
    let mut still_since = Instant::now();
    loop {
        ensure!(!cancel.is_cancelled(), "interrupted");
        std::thread::sleep(Duration::from_millis(250));
        let now = controller_writes(rt, client, lab)?.only(|r| r != "leases");
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= QUIET_FOR {
            return Ok(still_since - started);
        }
        ensure!(
            started.elapsed() < QUIET_TIMEOUT,
            "the controller kept writing for {QUIET_TIMEOUT:?}"
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RestartKind {
    Abrupt,
    Graceful,
}

impl RestartKind {
    fn label(self) -> &'static str {
        match self {
            RestartKind::Abrupt => "kill",
            RestartKind::Graceful => "graceful",
        }
    }

    fn how(self) -> &'static str {
        match self {
            RestartKind::Abrupt => {
                "SIGKILL, then start again (it waits for the dead leader's Lease to expire)"
            }
            RestartKind::Graceful => "SIGTERM (the Lease is released), then start again",
        }
    }
}

struct RestartFigures {
    kind: RestartKind,
    /// Start of the new process → its /metrics answers.
    up: Option<Duration>,
    /// → it holds the Lease.
    leader: Option<Duration>,
    /// → it leads and its allocator holds every Service's address again: ready.
    ready: Option<Duration>,
    /// Writes by the controller from the kill until [`AFTER_RESTART_WINDOW`] after ready,
    /// Leases excluded.
    writes: RequestCounts,
    lease_writes: u64,
    moved: usize,
}

#[allow(clippy::too_many_arguments)]
fn measure_restart(
    rt: &Runtime,
    cluster: &Cluster,
    client: &kube::Client,
    lab: &LabView,
    watch: &ServiceWatch,
    kind: RestartKind,
    expected: usize,
    cancel: &CancellationToken,
) -> anyhow::Result<RestartFigures> {
    let before_writes = controller_writes(rt, client, lab)?;
    let before_ips = watch.timeline().snapshot();
    match kind {
        RestartKind::Abrupt => cluster.fail("controller")?,
        RestartKind::Graceful => cluster.stop("controller")?,
    }
    let started = Instant::now();
    let (mut up, mut leader, mut ready) = (None, None, None);
    let restored = std::thread::scope(|s| {
        let restore = s.spawn(|| cluster.restore("controller"));
        while started.elapsed() < RESTART_TIMEOUT && !cancel.is_cancelled() {
            if let Some(samples) = lab.controller_metrics() {
                up.get_or_insert(started.elapsed());
                let leads =
                    prom_text::value_of(&samples, "ironlb_controller_is_leader", &[]) == Some(1.0);
                if leads {
                    leader.get_or_insert(started.elapsed());
                }
                let in_use = prom_text::value_of(
                    &samples,
                    "ironlb_allocator_addresses_in_use",
                    &[("pool", POOL), ("family", "ipv6")],
                );
                if leads && in_use == Some(expected as f64) {
                    ready = Some(started.elapsed());
                    break;
                }
            }
            std::thread::sleep(METRICS_POLL);
        }
        restore.join()
    });
    match restored {
        Ok(result) => result?,
        Err(_) => bail!("`lab restore controller` panicked"),
    }
    ensure!(!cancel.is_cancelled(), "interrupted");
    if ready.is_some() {
        std::thread::sleep(AFTER_RESTART_WINDOW);
    }
    let all = controller_writes(rt, client, lab)?.since(&before_writes);
    let lease_writes = all.only(|r| r == "leases").total();
    let writes = all.only(|r| r != "leases");
    // The API's view, not only the watcher's: every Service keeps the IP it had.
    let listed = rt.block_on(
        Api::<Service>::namespaced(client.clone(), BENCH_NAMESPACE).list(&ListParams::default()),
    )?;
    let after_ips: HashMap<String, Vec<String>> = listed
        .items
        .iter()
        .map(|svc| {
            let name = svc.metadata.name.clone().unwrap_or_default();
            let mut ips: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
                .unwrap_or_default();
            ips.sort();
            (service_load::key(BENCH_NAMESPACE, &name), ips)
        })
        .collect();
    let moved = timeline::moved(&before_ips, &after_ips).len();
    Ok(RestartFigures {
        kind,
        up,
        leader,
        ready,
        writes,
        lease_writes,
        moved,
    })
}

struct BurstFigures {
    from_added: Option<Summary>,
    from_create: Option<Summary>,
    create_call: Option<Summary>,
    create_seconds: f64,
    all_ingress_seconds: f64,
}

struct FillFigures {
    services: usize,
    latency: Option<Summary>,
    create_seconds: f64,
    all_ingress_seconds: f64,
    /// From all Services showing IPs until the controller stopped writing.
    drain_seconds: Option<f64>,
}

#[derive(Default)]
struct Report {
    load_start: String,
    load_end: String,
    burst_services: u32,
    total_services: u32,
    creators: u32,
    burst: Option<BurstFigures>,
    /// Controller and API-server CPU time over the burst.
    burst_cpu: Option<(Duration, Duration)>,
    fill: Option<FillFigures>,
    rss_idle: Option<Memory>,
    rss_1k: Option<Memory>,
    rss_total: Option<Memory>,
    speakers: Vec<String>,
    speaker_rss_total: Vec<(String, Memory)>,
    restarts: Vec<RestartFigures>,
    probe_after_restart: Option<Duration>,
    probe_from_create: Option<Duration>,
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("n/a".into(), |d| format!("{:.1} ms", ms(d)))
}

fn opt_mib(m: Option<Memory>) -> String {
    m.map_or("n/a".into(), |m| format!("{:.1} MiB", m.rss_mib()))
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "ok",
        Some(false) => "MISSED",
        None => "",
    }
}

fn row(what: &str, value: &str, goal: &str, ok: Option<bool>) {
    println!("{what:<46} {value:>14}   {goal:<12} {}", verdict(ok));
}

impl Report {
    fn print(&self) {
        println!();
        println!(
            "bench-controller: ironlb-controller, {} Services in a burst ({} creators), {} in total; IPv6 pool {POOL_RANGE}",
            self.burst_services, self.creators, self.total_services
        );
        println!(
            "load average at start {}, at end {} (2 cores; other work on the machine shows here)",
            self.load_start, self.load_end
        );
        println!();
        println!("{:<46} {:>14}   {:<12}", "measure", "value", "goal");
        if let Some(b) = &self.burst {
            let pct = |s: Option<Summary>, f: fn(&Summary) -> Duration| s.as_ref().map(f);
            let a = b.from_added;
            row(
                "burst: ADDED → ingress p50",
                &opt_ms(pct(a, |s| s.p50)),
                "< 20 ms",
                pct(a, |s| s.p50).map(|d| d < Duration::from_millis(20)),
            );
            row(
                "burst: ADDED → ingress p90",
                &opt_ms(pct(a, |s| s.p90)),
                "",
                None,
            );
            row(
                "burst: ADDED → ingress p99",
                &opt_ms(pct(a, |s| s.p99)),
                "< 100 ms",
                pct(a, |s| s.p99).map(|d| d < Duration::from_millis(100)),
            );
            row(
                "burst: ADDED → ingress max",
                &opt_ms(pct(a, |s| s.max)),
                "",
                None,
            );
            let c = b.from_create;
            row(
                "burst: create returned → ingress p50",
                &opt_ms(pct(c, |s| s.p50)),
                "",
                None,
            );
            row(
                "burst: create returned → ingress p90",
                &opt_ms(pct(c, |s| s.p90)),
                "",
                None,
            );
            row(
                "burst: create returned → ingress p99",
                &opt_ms(pct(c, |s| s.p99)),
                "",
                None,
            );
            row(
                "burst: create returned → ingress max",
                &opt_ms(pct(c, |s| s.max)),
                "",
                None,
            );
            row(
                "burst: create call p50",
                &opt_ms(pct(b.create_call, |s| s.p50)),
                "",
                None,
            );
            row(
                "burst: create call p99",
                &opt_ms(pct(b.create_call, |s| s.p99)),
                "",
                None,
            );
            row(
                "burst: all created",
                &format!("{:.2} s", b.create_seconds),
                "",
                None,
            );
            row(
                "burst: all showing an IP",
                &format!("{:.2} s", b.all_ingress_seconds),
                "",
                None,
            );
        }
        if let Some((controller, apiserver)) = self.burst_cpu {
            let per = |d: Duration| {
                format!(
                    "{:.0} µs/svc",
                    d.as_secs_f64() * 1e6 / f64::from(self.burst_services.max(1))
                )
            };
            row("burst: controller CPU", &per(controller), "", None);
            row("burst: API-server stand-in CPU", &per(apiserver), "", None);
        }
        if let Some(f) = &self.fill {
            row(
                &format!("fill (+{}): ADDED → ingress p50", f.services),
                &opt_ms(f.latency.map(|s| s.p50)),
                "",
                None,
            );
            row(
                &format!("fill (+{}): ADDED → ingress p99", f.services),
                &opt_ms(f.latency.map(|s| s.p99)),
                "",
                None,
            );
            row(
                "fill: all created",
                &format!("{:.1} s", f.create_seconds),
                "",
                None,
            );
            row(
                "fill: all showing an IP",
                &format!("{:.1} s", f.all_ingress_seconds),
                "",
                None,
            );
            row(
                "fill: then background writes drained",
                &f.drain_seconds
                    .map_or("n/a".into(), |s| format!("{s:.1} s")),
                "",
                None,
            );
        }
        row("controller RSS idle", &opt_mib(self.rss_idle), "", None);
        row(
            &format!("controller RSS at {}", self.burst_services),
            &opt_mib(self.rss_1k),
            "",
            None,
        );
        row(
            &format!("controller RSS at {}", self.total_services),
            &opt_mib(self.rss_total),
            "< 64 MiB",
            self.rss_total.map(|m| m.rss_mib() < 64.0),
        );
        row(
            "controller peak RSS (VmHWM)",
            &self
                .rss_total
                .map_or("n/a".into(), |m| format!("{:.1} MiB", m.peak_rss_mib())),
            "",
            None,
        );
        if self.speaker_rss_total.is_empty() {
            let why = if self.speakers.is_empty() {
                "off"
            } else {
                "n/a"
            };
            row(
                &format!("speaker RSS at {}", self.total_services),
                why,
                "< 48 MiB",
                None,
            );
        }
        for (name, m) in &self.speaker_rss_total {
            row(
                &format!("{name} RSS at {}", self.total_services),
                &opt_mib(Some(*m)),
                "< 48 MiB",
                Some(m.rss_mib() < 48.0),
            );
        }
        for r in &self.restarts {
            let l = r.kind.label();
            row(
                &format!("restart ({l}): process up"),
                &opt_ms(r.up),
                "",
                None,
            );
            row(
                &format!("restart ({l}): leading"),
                &opt_ms(r.leader),
                "",
                None,
            );
            row(
                &format!("restart ({l}): ready (state rebuilt)"),
                &opt_ms(r.ready),
                "",
                None,
            );
            row(
                &format!("restart ({l}): API writes (Leases apart)"),
                &r.writes.total().to_string(),
                "0",
                Some(r.writes.total() == 0 && r.ready.is_some()),
            );
            row(
                &format!("restart ({l}): Lease writes"),
                &r.lease_writes.to_string(),
                "",
                None,
            );
            row(
                &format!("restart ({l}): IPs moved"),
                &r.moved.to_string(),
                "0",
                Some(r.moved == 0),
            );
            if r.writes.total() > 0 {
                println!("    writes: {}", r.writes.describe());
            }
        }
        row(
            "first allocation after the restarts",
            &opt_ms(self.probe_after_restart),
            "",
            None,
        );
        println!();
        println!("{}", self.json());
    }

    fn json(&self) -> String {
        let f = |d: Option<Duration>| d.map(|d| (ms(d) * 1000.0).round() / 1000.0);
        let mib = |m: Option<Memory>| m.map(|m| (m.rss_mib() * 10.0).round() / 10.0);
        let burst = self.burst.as_ref();
        let added = burst.and_then(|b| b.from_added);
        let create = burst.and_then(|b| b.from_create);
        let mut j = json!({
            "bench": "bench-controller",
            "burst_services": self.burst_services,
            "total_services": self.total_services,
            "burst_creators": self.creators,
            "burst_p50_ms": f(added.map(|s| s.p50)),
            "burst_p90_ms": f(added.map(|s| s.p90)),
            "burst_p99_ms": f(added.map(|s| s.p99)),
            "burst_max_ms": f(added.map(|s| s.max)),
            "burst_from_create_p50_ms": f(create.map(|s| s.p50)),
            "burst_from_create_p90_ms": f(create.map(|s| s.p90)),
            "burst_from_create_p99_ms": f(create.map(|s| s.p99)),
            "burst_from_create_max_ms": f(create.map(|s| s.max)),
            "burst_create_call_p50_ms": f(burst.and_then(|b| b.create_call).map(|s| s.p50)),
            "burst_all_ingress_s": burst.map(|b| b.all_ingress_seconds),
            "burst_controller_cpu_ms": self.burst_cpu.map(|c| ms(c.0)),
            "burst_apiserver_cpu_ms": self.burst_cpu.map(|c| ms(c.1)),
            "fill_p50_ms": f(self.fill.as_ref().and_then(|x| x.latency).map(|s| s.p50)),
            "fill_p99_ms": f(self.fill.as_ref().and_then(|x| x.latency).map(|s| s.p99)),
            "fill_all_ingress_s": self.fill.as_ref().map(|x| x.all_ingress_seconds),
            "fill_drain_s": self.fill.as_ref().and_then(|x| x.drain_seconds),
            "controller_rss_mib_idle": mib(self.rss_idle),
            "controller_rss_mib_1k": mib(self.rss_1k),
            "controller_rss_mib_10k": mib(self.rss_total),
            "controller_peak_rss_mib": self.rss_total.map(|m| (m.peak_rss_mib() * 10.0).round() / 10.0),
            "speakers": if self.speakers.is_empty() { json!("off") } else { json!(self.speakers) },
            "speaker_rss_mib_10k": self.speaker_rss_total.iter().map(|(n, m)| (n.clone(), json!((m.rss_mib() * 10.0).round() / 10.0))).collect::<serde_json::Map<_, _>>(),
            "probe_after_restart_ms": f(self.probe_after_restart),
            "probe_after_restart_from_create_ms": f(self.probe_from_create),
            "load_avg_start": self.load_start,
            "load_avg_end": self.load_end,
        });
        for r in &self.restarts {
            let prefix = match r.kind {
                RestartKind::Abrupt => "restart",
                RestartKind::Graceful => "graceful_restart",
            };
            j[format!("{prefix}_up_ms")] = json!(f(r.up));
            j[format!("{prefix}_leader_ms")] = json!(f(r.leader));
            j[format!("{prefix}_ready_ms")] = json!(f(r.ready));
            j[format!("{prefix}_writes")] = json!(r.writes.total());
            j[format!("{prefix}_lease_writes")] = json!(r.lease_writes);
            j[format!("{prefix}_ips_moved")] = json!(r.moved);
        }
        j.to_string()
    }
}
