//! `lab up`, `down`, `fail`, `stop`, `restore`, `exec` and `status`, driven from the plan and
//! the topology record.
//!
//! `up` writes `topology.json` before it creates anything and updates it after every step, so
//! `down` can always find what exists: it removes every namespace whose name carries the lab
//! id (whatever the record says), the root management link, and every process recorded or
//! found inside those namespaces.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::components::{self, Env, IRONLB_NAMESPACE, MEMBERLIST_KEY_FILE, MEMBERLIST_SECRET};
use super::plan::{HostPlan, LabPlan, lab_id};
use super::topology::{self, ApiServer, Desired, Phase, ProcessRecord, Topology, TopologyFile};
use super::{Error, Result, kube_setup, netns, process, real_apiserver, state};

/// Whether to run an ironlb component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Want {
    /// Run it if its binary exists and is real (its `--help` lists `--namespace`).
    Auto,
    /// Run it; fail if it cannot start.
    Yes,
    /// Do not run it.
    No,
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub nodes: u16,
    pub ipv6: bool,
    pub controller: Want,
    pub speaker: Want,
    /// `(kube-apiserver, etcd)` to run instead of the stand-in.
    pub real_api: Option<(PathBuf, PathBuf)>,
    /// Manifests applied once the API answers (the chart's CRDs).
    pub crds_dir: PathBuf,
    /// More arguments for the API-server stand-in (e.g. `--emulate-version=1.27`).
    pub apiserver_args: Vec<String>,
    /// Where `lab-apiserver`, the other stand-ins and the ironlb binaries are.
    pub bin_dir: PathBuf,
    pub timeout: Duration,
    /// Leave a failed `up` in place for inspection instead of cleaning it up.
    pub keep_on_failure: bool,
}

/// Grace given to SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
const DOWN_GRACE: Duration = Duration::from_secs(3);
/// How long a component must stay up after start to count as started.
const SETTLE: Duration = Duration::from_millis(700);

pub fn require_root() -> Result<()> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

fn lab_binary() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("locating the lab binary", e))
}

/// The directory of the running `lab` binary: where cargo put the other binaries too.
pub fn default_bin_dir() -> Result<PathBuf> {
    let exe = lab_binary()?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Whether a component binary is the real thing rather than today's placeholder.
fn is_real_component(program: &Path) -> bool {
    let Ok(mut child) = Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    out.contains("--namespace")
}

fn decide(want: Want, program: &Path, what: &str) -> Result<bool> {
    match want {
        Want::No => Ok(false),
        Want::Yes if !program.is_file() => Err(Error::MissingBinary(program.to_path_buf())),
        Want::Yes => Ok(true),
        Want::Auto => {
            let real = program.is_file() && is_real_component(program);
            if !real {
                eprintln!(
                    "lab: not starting {what}: {} is missing or does not accept --namespace yet",
                    program.display()
                );
            }
            Ok(real)
        }
    }
}

/// Starts one recorded process and records its pid.
fn start(topology: &mut Topology, mut record: ProcessRecord) -> Result<u32> {
    let host = topology.host(&record.host)?.clone();
    let pid = process::spawn(&process::Launch {
        netns: &host.netns,
        program: &record.program,
        args: &record.args,
        env: &record.env,
        log: &record.log,
    })?;
    record.pid = Some(pid);
    record.desired = Desired::Running;
    topology.upsert_process(record);
    topology::write(topology)?;
    Ok(pid)
}

/// A closure for wait loops: fails as soon as the named process has died.
fn alive_check(topology: &Topology, name: &str) -> impl FnMut() -> Result<()> + use<> {
    let record = topology.process(name).cloned();
    move || match &record {
        Some(r) if r.pid.is_some_and(|p| process::is_running(p, &r.program)) => Ok(()),
        Some(r) => Err(Error::ProcessExited {
            name: r.name.clone(),
            log: r.log.clone(),
        }),
        None => Ok(()),
    }
}

/// Runs `lab internal probe URL` inside a namespace until it gets a 200.
fn wait_http_in(lab: &Path, netns: &str, url: &str, timeout: Duration) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(lab)
        .args([
            "internal",
            "probe",
            "--timeout",
            &format!("{}s", timeout.as_secs().max(1)),
            url,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running the health probe", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Timeout {
            what: format!("{url} in {netns}"),
            after: timeout,
            last: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Gives freshly started processes a moment, then fails if any of them exited.
fn settle(topology: &Topology, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    std::thread::sleep(SETTLE);
    for name in names {
        alive_check(topology, name)()?;
    }
    Ok(())
}

/// Brings a lab up and returns its topology once everything is ready.
pub async fn up(opts: &UpOptions) -> Result<Topology> {
    require_root()?;
    // Bad arguments are refused before anything is claimed or created.
    LabPlan::new(0, opts.nodes, opts.ipv6)?;
    let dir = state::absolute(&opts.dir)?;
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let _dir_lock = topology::lock_dir(&dir)?;
    if let Some(old) = topology::read(&dir)?
        && state::slot_in_use(old.plan.slot)?
    {
        return Err(Error::AlreadyUp(dir));
    }
    remove_lab_files(&dir, true)?;

    let mut topology = {
        let _machine = state::lock_machine()?;
        let slot = state::claim_free_slot(&dir)?;
        let plan = LabPlan::new(slot, opts.nodes, opts.ipv6)?;
        let api_server = match &opts.real_api {
            None => ApiServer::StandIn,
            Some((kube_apiserver, etcd)) => ApiServer::Real {
                kube_apiserver: kube_apiserver.clone(),
                etcd: etcd.clone(),
            },
        };
        let topology = Topology::new(&dir, plan, api_server);
        topology::write(&topology)?;
        state::remember_last_dir(&dir)?;
        // Namespaces exist before the machine lock is released, so the slot shows as taken.
        netns::run_batch(&netns::create_namespaces(&topology.plan))?;
        topology
    };

    let result = bring_up(&mut topology, opts).await;
    if let Err(e) = result {
        if !opts.keep_on_failure {
            eprintln!(
                "lab: up failed, cleaning up (logs stay in {}/logs)",
                dir.display()
            );
            drop(_dir_lock);
            if let Err(down_err) = down(&dir, false) {
                eprintln!("lab: cleaning up after the failed up also failed: {down_err}");
            }
        }
        return Err(e);
    }
    Ok(topology)
}

async fn bring_up(topology: &mut Topology, opts: &UpOptions) -> Result<()> {
    let lab = lab_binary()?;
    let plan = topology.plan.clone();
    let dir = topology.dir.clone();

    for s in netns::sysctls(&plan) {
        netns::apply_sysctls(&lab, &s)?;
    }
    netns::run_batch(&netns::lan(&plan))?;
    netns::run_batch(&netns::mgmt_root(&plan))?;
    for h in &plan.hosts {
        netns::run_batch(&netns::host(&plan, h))?;
    }

    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    write_private(&dir.join(MEMBERLIST_KEY_FILE), &key)?;

    let env = Env {
        plan: &plan,
        dir: &dir,
        bin_dir: &opts.bin_dir,
    };
    let client = match &opts.real_api {
        None => {
            let mut apiserver = env.apiserver();
            apiserver.args.extend(opts.apiserver_args.iter().cloned());
            start(topology, apiserver)?;
            kube_setup::wait_api_ready(
                &topology.kubeconfig,
                opts.timeout,
                alive_check(topology, "apiserver"),
            )
            .await?
        }
        Some((kube_apiserver, etcd)) => {
            let real = real_apiserver::prepare(&plan, &dir, kube_apiserver, etcd)?;
            start(topology, real.etcd)?;
            start(topology, real.apiserver)?;
            kube_setup::wait_api_ready(
                &topology.kubeconfig,
                opts.timeout,
                alive_check(topology, "apiserver"),
            )
            .await?
        }
    };

    kube_setup::ensure_namespace(&client, IRONLB_NAMESPACE).await?;
    kube_setup::ensure_secret(&client, IRONLB_NAMESPACE, MEMBERLIST_SECRET, "key", &key).await?;
    let manifests = kube_setup::manifests_in(&opts.crds_dir)?;
    if manifests.is_empty() {
        eprintln!(
            "lab: no CRDs in {}; the ironlb CRDs are not installed",
            opts.crds_dir.display()
        );
    }
    let crds = kube_setup::apply_files(&client, &manifests).await?;
    kube_setup::wait_crds_established(&client, &crds, opts.timeout).await?;

    start(topology, env.node_agent())?;
    let kube_nodes: Vec<String> = plan
        .hosts
        .iter()
        .filter(|h| h.is_kube_node())
        .map(|h| h.name.clone())
        .collect();
    kube_setup::wait_nodes_ready(
        &client,
        &kube_nodes,
        opts.timeout,
        alive_check(topology, "node-agent"),
    )
    .await?;

    for h in plan.hosts.iter().filter(|h| h.is_kube_node()) {
        start(topology, env.kube_proxy(h))?;
    }
    for h in plan.hosts.iter().filter(|h| h.is_kube_node()) {
        alive_check(topology, &format!("kube-proxy-{}", h.name))()?;
        wait_http_in(
            &lab,
            &h.netns,
            &components::kube_proxy_healthz(h),
            opts.timeout,
        )?;
    }

    let mut started = Vec::new();
    let controller = env.controller();
    if decide(opts.controller, &controller.program, "ironlb-controller")? {
        started.push(controller.name.clone());
        start(topology, controller)?;
        let cp = plan.control_plane();
        wait_http_in(
            &lab,
            &cp.netns,
            &components::controller_readyz(&plan),
            opts.timeout,
        )?;
    }
    let speakers: Vec<ProcessRecord> = plan.nodes().map(|h| env.speaker(h)).collect();
    if let Some(first) = speakers.first()
        && decide(opts.speaker, &first.program, "ironlb-speaker")?
    {
        for s in speakers {
            started.push(s.name.clone());
            start(topology, s)?;
        }
    }
    settle(topology, &started)?;

    topology.phase = Phase::Ready;
    topology::write(topology)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    std::io::Write::write_all(&mut file, bytes)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Removes the files `up` writes; the logs survive unless `with_logs`.
fn remove_lab_files(dir: &Path, with_logs: bool) -> Result<()> {
    for path in topology::owned_paths(dir) {
        let is_logs = path.file_name().is_some_and(|n| n == "logs");
        let is_lock = path.file_name().is_some_and(|n| n == "lock");
        if (is_logs && !with_logs) || is_lock {
            continue;
        }
        let result = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
        }
    }
    Ok(())
}

/// What `down` removed, for its report.
#[derive(Debug, Default)]
pub struct DownReport {
    pub processes: usize,
    pub namespaces: Vec<String>,
}

/// Removes everything of the lab in `dir`. With no lab there it does nothing.
pub fn down(dir: &Path, purge: bool) -> Result<DownReport> {
    require_root()?;
    let dir = state::absolute(dir)?;
    if !dir.is_dir() {
        return Ok(DownReport::default());
    }
    let _lock = topology::lock_dir(&dir)?;
    let Some(topology) = topology::read(&dir)? else {
        return Ok(DownReport::default());
    };
    let report = teardown(topology.plan.slot, Some(&topology))?;
    state::release_slot(topology.plan.slot, &dir)?;
    remove_lab_files(&dir, purge)?;
    Ok(report)
}

/// Removes everything of the lab in a slot, with or without its record.
pub fn teardown(slot: u8, topology: Option<&Topology>) -> Result<DownReport> {
    let id = lab_id(slot);
    let mut report = DownReport::default();

    // Recorded processes first, gently: the API server persists its state on SIGTERM.
    let mut pids = Vec::new();
    for r in topology.map(|t| t.processes.as_slice()).unwrap_or_default() {
        if let Some(pid) = r.pid.filter(|p| process::is_running(*p, &r.program)) {
            pids.push(pid);
        }
    }
    report.processes += pids.len();
    process::terminate(&pids, DOWN_GRACE);

    // Then anything else living in the lab's namespaces (`lab exec` leftovers, crashed-up
    // children whose pids were never recorded).
    let namespaces = netns::lab_namespaces(&id)?;
    for ns in &namespaces {
        let stray = netns::namespace_pids(ns).unwrap_or_default();
        report.processes += stray.len();
        process::kill(&stray);
    }

    // Host namespaces before the bridge's, then the root end of the management link.
    let lan = format!("{id}-lan");
    let mut ordered: Vec<&String> = namespaces.iter().filter(|n| **n != lan).collect();
    ordered.extend(namespaces.iter().filter(|n| **n == lan));
    let mut errors = Vec::new();
    for ns in ordered {
        match netns::delete_namespace(ns) {
            Ok(()) => report.namespaces.push(ns.clone()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Err(e) = netns::delete_root_link(&format!("{id}-mgmt")) {
        errors.push(e.to_string());
    }
    let left = netns::lab_namespaces(&id)?;
    if !left.is_empty() || netns::root_link_exists(&format!("{id}-mgmt")) {
        errors.push(format!("still present after down: {left:?}"));
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(Error::Command {
            command: format!("lab down ({id})"),
            status: "incomplete".into(),
            stderr: errors.join("; "),
        })
    }
}

/// `lab down --all`: every lab on this machine, recorded or not.
pub fn down_all() -> Result<Vec<u8>> {
    require_root()?;
    let _machine = state::lock_machine()?;
    let mut done = Vec::new();
    for (slot, dir) in state::labs_present()? {
        match &dir {
            Some(dir) => {
                let topology = topology::read(dir)?;
                teardown(slot, topology.as_ref())?;
                state::release_slot(slot, dir)?;
                remove_lab_files(dir, false)?;
            }
            None => {
                teardown(slot, None)?;
            }
        }
        done.push(slot);
    }
    Ok(done)
}

/// What a `fail`, `stop` or `restore` acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A whole host: its link and all its processes.
    Host(HostPlan),
    /// One process, by its record name (`apiserver`, `controller`, `speaker-node1`, ...).
    Process(String),
}

/// Resolves a command-line target: a host name first, then a process name.
pub fn resolve_target(topology: &Topology, name: &str) -> Result<Target> {
    if let Ok(host) = topology.plan.host(name) {
        return Ok(Target::Host(host.clone()));
    }
    if topology.process(name).is_some() {
        return Ok(Target::Process(name.to_string()));
    }
    let names: Vec<&str> = topology.processes.iter().map(|p| p.name.as_str()).collect();
    Err(Error::UnknownTarget(name.to_string(), names.join(", ")))
}

fn target_processes(topology: &Topology, target: &Target) -> Vec<String> {
    match target {
        Target::Host(h) => topology
            .processes_on(&h.name)
            .map(|p| p.name.clone())
            .collect(),
        Target::Process(name) => vec![name.clone()],
    }
}

fn live_pids(topology: &Topology, names: &[String]) -> Vec<u32> {
    names
        .iter()
        .filter_map(|n| topology.process(n))
        .filter_map(|r| r.pid.filter(|p| process::is_running(*p, &r.program)))
        .collect()
}

/// `lab fail`: the host's segment link goes down and its processes are SIGKILLed.
pub fn fail(dir: &Path, name: &str) -> Result<()> {
    require_root()?;
    let mut file = TopologyFile::open(dir)?;
    let t = &mut file.topology;
    let target = resolve_target(t, name)?;
    if let Target::Host(h) = &target {
        // The bridge side: the host sees its carrier vanish, like a pulled cable.
        netns::set_link(&t.plan.lan_netns, &h.bridge_port, false)?;
        t.failed_hosts.insert(h.name.clone());
    }
    let names = target_processes(t, &target);
    let mut pids = live_pids(t, &names);
    if let Target::Host(h) = &target {
        pids.extend(netns::namespace_pids(&h.netns)?);
    }
    process::kill(&pids);
    for n in &names {
        if let Some(r) = t.process_mut(n) {
            r.desired = Desired::Down;
        }
    }
    file.save()
}

/// `lab stop`: SIGTERM, as a node shutting down cleanly; SIGKILL after a grace period.
pub fn stop(dir: &Path, name: &str) -> Result<()> {
    require_root()?;
    let mut file = TopologyFile::open(dir)?;
    let t = &mut file.topology;
    let target = resolve_target(t, name)?;
    let names = target_processes(t, &target);
    process::terminate(&live_pids(t, &names), STOP_GRACE);
    for n in &names {
        if let Some(r) = t.process_mut(n) {
            r.desired = Desired::Down;
        }
    }
    file.save()
}

/// `lab restore`: the link comes back up and every process of the target that is not
/// running is started again with its recorded command line; returns once they are ready.
pub async fn restore(dir: &Path, name: &str, timeout: Duration) -> Result<()> {
    require_root()?;
    let lab = lab_binary()?;
    let (topology, restarted) = {
        let mut file = TopologyFile::open(dir)?;
        let t = &mut file.topology;
        let target = resolve_target(t, name)?;
        if let Target::Host(h) = &target {
            netns::set_link(&t.plan.lan_netns, &h.bridge_port, true)?;
            t.failed_hosts.remove(&h.name);
        }
        let mut restarted = Vec::new();
        for n in target_processes(t, &target) {
            let record = t.process(&n).cloned().expect("names come from the records");
            let running = record
                .pid
                .is_some_and(|p| process::is_running(p, &record.program));
            if !running {
                start(t, record)?;
                restarted.push(n);
            } else if let Some(r) = t.process_mut(&n) {
                r.desired = Desired::Running;
            }
        }
        file.save()?;
        (file.topology.clone(), restarted)
    };
    wait_ready(&lab, &topology, &restarted, timeout).await
}

/// Waits for the readiness signal of each restarted process.
async fn wait_ready(lab: &Path, t: &Topology, names: &[String], timeout: Duration) -> Result<()> {
    let mut others = Vec::new();
    for name in names {
        if name == "apiserver" {
            kube_setup::wait_api_ready(&t.kubeconfig, timeout, alive_check(t, name)).await?;
        } else if name == "controller" {
            let cp = t.plan.control_plane();
            wait_http_in(
                lab,
                &cp.netns,
                &components::controller_readyz(&t.plan),
                timeout,
            )?;
        } else if let Some(host) = name.strip_prefix("kube-proxy-") {
            let h = t.host(host)?;
            wait_http_in(lab, &h.netns, &components::kube_proxy_healthz(h), timeout)?;
        } else {
            others.push(name.clone());
        }
    }
    settle(t, &others)
}

/// `lab exec HOST -- CMD`: runs in the host's namespace with the in-cluster kubeconfig.
pub fn exec(dir: &Path, host: &str, command: &[String]) -> Result<ExitStatus> {
    require_root()?;
    let t = topology::read(dir)?.ok_or_else(|| Error::NoLab(dir.to_path_buf()))?;
    let h = t.host(host)?;
    let Some((program, args)) = command.split_first() else {
        return Err(Error::BadArgument(
            "lab exec needs a command after --".into(),
        ));
    };
    Command::new("ip")
        .args(["netns", "exec", &h.netns, program])
        .args(args)
        .env("KUBECONFIG", &t.kubeconfig_internal)
        .env(state::DIR_ENV, &t.dir)
        .status()
        .map_err(|e| Error::io(format!("running {program} in {}", h.netns), e))
}

/// One line per host and process, for `lab status`.
pub fn status(dir: &Path) -> Result<String> {
    let t = topology::read(dir)?.ok_or_else(|| Error::NoLab(dir.to_path_buf()))?;
    let mut out = format!(
        "lab {} in {} ({:?}), kubeconfig {}\n",
        t.plan.id,
        t.dir.display(),
        t.phase,
        t.kubeconfig.display()
    );
    let present = netns::list_namespaces()?;
    for h in &t.plan.hosts {
        let ips: Vec<String> = h.ips().iter().map(ToString::to_string).collect();
        let ns_state = if !present.contains(&h.netns) {
            "missing"
        } else if t.failed_hosts.contains(&h.name) {
            "failed"
        } else {
            "up"
        };
        out.push_str(&format!(
            "{:<8} {:<14} {:<34} {} {}\n",
            h.name,
            h.netns,
            ips.join(","),
            h.mac,
            ns_state
        ));
    }
    for r in &t.processes {
        let running = r.pid.is_some_and(|p| process::is_running(p, &r.program));
        let pid = r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let state = match (running, r.desired) {
            (true, _) => "running",
            (false, Desired::Down) => "stopped",
            (false, Desired::Running) => "not running",
        };
        out.push_str(&format!(
            "  {:<20} on {:<8} pid {:<8} {state}\n",
            r.name, r.host, pid
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_topology() -> Topology {
        let plan = LabPlan::new(0, 2, false).unwrap();
        let dir = Path::new("/lab");
        let mut t = Topology::new(dir, plan.clone(), ApiServer::StandIn);
        let env = Env {
            plan: &plan,
            dir,
            bin_dir: Path::new("/bin"),
        };
        t.upsert_process(env.apiserver());
        t.upsert_process(env.node_agent());
        t.upsert_process(env.controller());
        for h in plan.hosts.iter().filter(|h| h.is_kube_node()) {
            t.upsert_process(env.kube_proxy(h));
        }
        for h in plan.nodes() {
            t.upsert_process(env.speaker(h));
        }
        t
    }

    #[test]
    fn hosts_win_over_processes_and_unknown_targets_list_the_choices() {
        let t = mk_topology();
        assert!(matches!(resolve_target(&t, "node1"), Ok(Target::Host(h)) if h.name == "node1"));
        assert_eq!(
            resolve_target(&t, "speaker-node2").unwrap(),
            Target::Process("speaker-node2".into())
        );
        match resolve_target(&t, "node9") {
            Err(Error::UnknownTarget(name, choices)) => {
                assert_eq!(name, "node9");
                assert!(choices.contains("apiserver") && choices.contains("kube-proxy-node1"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_host_target_covers_exactly_its_processes() {
        let t = mk_topology();
        let on = |name: &str| {
            let mut names = target_processes(&t, &resolve_target(&t, name).unwrap());
            names.sort();
            names
        };
        assert_eq!(on("node1"), ["kube-proxy-node1", "speaker-node1"]);
        assert_eq!(
            on("cp"),
            ["apiserver", "controller", "kube-proxy-cp", "node-agent"]
        );
        assert!(on("client").is_empty());
        assert_eq!(on("controller"), ["controller"]);
    }
}
