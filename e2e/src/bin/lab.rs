//! `lab`: a Kubernetes cluster on one machine, from network namespaces. See `lab --help` and
//! e2e/README.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use e2e::lab::lifecycle::{self, UpOptions, Want};
use e2e::lab::{demo, netns, probe, state};

const DEFAULT_CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/ironlb/crds");

/// A Kubernetes cluster on one machine, built from Linux network namespaces, for ironlb's
/// scenario tests, benchmarks and demo. Needs root.
///
/// Hosts: `cp` (API server, node agent, ironlb-controller), `node1..nodeN` (kube-proxy
/// stand-in, ironlb-speaker) and `client`, on one bridged segment 192.0.2.0/24 (+ 2001:db8::/64
/// with --ipv6). Every command but `up` and `demo` finds its lab with --dir, else
/// $IRONLB_LAB_DIR, else the directory of the last `lab up`. See e2e/README.md.
#[derive(Parser, Debug)]
#[command(name = "lab", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Debug)]
struct DirArg {
    /// The lab directory (default: $IRONLB_LAB_DIR, else the last `lab up`).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct UpArgs {
    /// Worker nodes (node1..nodeN).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Make the segment dual-stack (2001:db8::/64) and the service range too.
    #[arg(long)]
    ipv6: bool,
    /// Run ironlb-controller: `auto` runs it if its binary accepts --namespace.
    #[arg(long, value_enum, default_value = "auto")]
    controller: Want,
    /// Run ironlb-speaker on every node: `auto` runs it if its binary accepts --namespace.
    #[arg(long, value_enum, default_value = "auto")]
    speaker: Want,
    /// Same as --speaker no.
    #[arg(long)]
    no_speaker: bool,
    /// Same as --controller no.
    #[arg(long)]
    no_controller: bool,
    /// Run this real kube-apiserver (with --etcd) instead of the stand-in. Untested here.
    #[arg(long, requires = "etcd")]
    kube_apiserver: Option<PathBuf>,
    /// The etcd binary for --kube-apiserver.
    #[arg(long, requires = "kube_apiserver")]
    etcd: Option<PathBuf>,
    /// Manifests applied once the API server answers.
    #[arg(long, default_value = DEFAULT_CRDS)]
    crds: PathBuf,
    /// One more argument for the API-server stand-in, repeatable; e.g.
    /// `--apiserver-arg=--emulate-version=1.27` serves an older Kubernetes API.
    #[arg(
        long = "apiserver-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        conflicts_with = "kube_apiserver"
    )]
    apiserver_args: Vec<String>,
    /// Where the component binaries are (default: next to this `lab` binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// How long to wait for each readiness step.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Leave a failed `up` in place for inspection (then `lab down` it).
    #[arg(long)]
    keep_on_failure: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the lab and return once everything is ready. Writes DIR/kubeconfig and
    /// DIR/topology.json.
    Up {
        /// The lab directory (created if needed).
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        up: UpArgs,
    },
    /// Remove every namespace, link and process of the lab (also after a crashed `up`).
    Down {
        #[command(flatten)]
        dir: DirArg,
        /// Every lab on this machine, found by name even without its directory.
        #[arg(long, conflicts_with = "dir")]
        all: bool,
        /// Also remove DIR/logs.
        #[arg(long)]
        purge: bool,
    },
    /// Run a command in a host's namespace (cp, client, node1..), with
    /// KUBECONFIG=DIR/kubeconfig.internal.
    Exec {
        host: String,
        #[command(flatten)]
        dir: DirArg,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Abrupt failure: a host's link goes down and its processes get SIGKILL. A process name
    /// (apiserver, node-agent, controller, kube-proxy-node1, speaker-node1) kills only it.
    Fail {
        target: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Graceful stop: SIGTERM to a host's processes (or to one process by name).
    Stop {
        target: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Undo `fail` or `stop`: link up, processes started again; returns once they are ready.
    Restore {
        target: String,
        #[command(flatten)]
        dir: DirArg,
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Hosts, addresses, MACs and processes of the lab.
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Up, a pool and a 3-replica service, `kubectl get svc`, a curl from the client, down.
    Demo {
        /// Keep the lab afterwards instead of taking it down.
        #[arg(long)]
        keep: bool,
        /// The lab directory (default: a fresh temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        up: UpArgs,
    },
    /// Helpers the lab runs inside namespaces.
    #[command(hide = true, subcommand)]
    Internal(Internal),
}

#[derive(Subcommand, Debug)]
enum Internal {
    /// Set sysctls (KEY=VALUE) in this namespace.
    Sysctl { settings: Vec<String> },
    /// Send one UDP datagram and print the reply.
    Udp {
        addr: std::net::SocketAddr,
        payload: String,
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// GET a plain-HTTP URL until it answers 200.
    Probe {
        url: String,
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("not a duration: {s:?} (use 500ms, 30s or 2m)")),
    }
}

fn up_options(dir: PathBuf, a: UpArgs) -> anyhow::Result<UpOptions> {
    let bin_dir = match a.bin_dir {
        Some(d) => d,
        None => lifecycle::default_bin_dir()?,
    };
    Ok(UpOptions {
        dir,
        nodes: a.nodes,
        ipv6: a.ipv6,
        controller: if a.no_controller {
            Want::No
        } else {
            a.controller
        },
        speaker: if a.no_speaker { Want::No } else { a.speaker },
        real_api: a.kube_apiserver.zip(a.etcd),
        crds_dir: a.crds,
        apiserver_args: a.apiserver_args,
        bin_dir,
        timeout: a.timeout,
        keep_on_failure: a.keep_on_failure,
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Up { dir, up } => {
            let t = lifecycle::up(&up_options(dir, up)?).await?;
            println!(
                "lab {} is up: {} nodes; export KUBECONFIG={}",
                t.plan.id,
                t.plan.node_count(),
                t.kubeconfig.display()
            );
        }
        Cmd::Down { dir, all, purge } => {
            if all {
                let slots = lifecycle::down_all()?;
                println!("removed {} lab(s)", slots.len());
            } else {
                let dir = state::resolve_dir(dir.dir.as_deref())?;
                let report = lifecycle::down(&dir, purge)?;
                println!(
                    "lab in {} is down: {} namespaces and {} processes removed",
                    dir.display(),
                    report.namespaces.len(),
                    report.processes
                );
            }
        }
        Cmd::Exec { host, dir, command } => {
            let dir = state::resolve_dir(dir.dir.as_deref())?;
            let status = lifecycle::exec(&dir, &host, &command)?;
            return Ok(ExitCode::from(
                status.code().unwrap_or(128).clamp(0, 255) as u8
            ));
        }
        Cmd::Fail { target, dir } => {
            lifecycle::fail(&state::resolve_dir(dir.dir.as_deref())?, &target)?;
        }
        Cmd::Stop { target, dir } => {
            lifecycle::stop(&state::resolve_dir(dir.dir.as_deref())?, &target)?;
        }
        Cmd::Restore {
            target,
            dir,
            timeout,
        } => {
            lifecycle::restore(&state::resolve_dir(dir.dir.as_deref())?, &target, timeout).await?;
        }
        Cmd::Status { dir } => {
            print!(
                "{}",
                lifecycle::status(&state::resolve_dir(dir.dir.as_deref())?)?
            );
        }
        Cmd::Demo { keep, dir, up } => {
            let mut temp = None;
            let dir = match dir {
                Some(d) => d,
                None => {
                    let t = tempfile::Builder::new().prefix("ironlb-demo-").tempdir()?;
                    let path = t.path().to_path_buf();
                    temp = Some(t);
                    path
                }
            };
            demo::run(&up_options(dir, up)?, keep).await?;
            if let (true, Some(t)) = (keep, temp) {
                // The kept lab lives in it.
                let _ = t.keep();
            }
        }
        Cmd::Internal(Internal::Sysctl { settings }) => {
            for s in settings {
                let Some((k, v)) = s.split_once('=') else {
                    bail!("expected KEY=VALUE, got {s:?}");
                };
                netns::write_sysctl(k, v)?;
            }
        }
        Cmd::Internal(Internal::Udp {
            addr,
            payload,
            timeout,
        }) => {
            let bind = if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let socket = std::net::UdpSocket::bind(bind)?;
            socket.set_read_timeout(Some(timeout))?;
            socket.send_to(payload.as_bytes(), addr)?;
            let mut buf = vec![0u8; 65536];
            let (len, _) = socket
                .recv_from(&mut buf)
                .with_context(|| format!("no UDP reply from {addr} within {timeout:?}"))?;
            println!("{}", String::from_utf8_lossy(&buf[..len]));
        }
        Cmd::Internal(Internal::Probe { url, timeout }) => {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                let last = match probe::get(&url, Duration::from_secs(2)) {
                    Ok((200, _)) => break,
                    Ok((code, body)) => format!("HTTP {code}: {}", body.trim()),
                    Err(e) => e.to_string(),
                };
                if std::time::Instant::now() >= deadline {
                    bail!("{url} not healthy after {timeout:?}: {last}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lab: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
