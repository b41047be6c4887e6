//! [`Cluster`]: what a scenario test runs against. By default a fresh lab (`lab up` in a
//! temporary directory, `lab down` when dropped, even on panic); with `E2E_KUBECONFIG` set, a
//! real cluster such as kind, whose host operations are configured by environment variables:
//!
//! | variable | meaning | kind example |
//! |---|---|---|
//! | `E2E_KUBECONFIG` | the cluster's kubeconfig | `~/.kube/config` |
//! | `E2E_EXEC` | prefix that runs a command on host `{host}` | `docker exec {host}` |
//! | `E2E_CLIENT` | the host that plays the client | `client` (a container on the kind network) |
//! | `E2E_FAIL` / `E2E_STOP` / `E2E_RESTORE` | abrupt / graceful failure and recovery of `{host}` | `docker kill {host}` / `docker stop {host}` / `docker start {host}` |
//!
//! An operation whose variable is unset is unsupported: [`Cluster::require`] tells the test to
//! skip with a message saying which variable is missing. The lab supports everything.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::lab::kubectl::Kubectl;
use crate::lab::topology::{self, Topology};

use super::HarnessError;
use super::lock::LabLock;
use super::wait::wait_for;

/// What a lab-backed cluster looks like.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub nodes: u16,
    pub ipv6: bool,
    /// Extra `lab up` arguments (e.g. `--speaker no`).
    pub extra_args: Vec<String>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            nodes: 3,
            ipv6: false,
            extra_args: Vec::new(),
        }
    }
}

/// Host-level operations a test may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Run commands on hosts, including the client.
    Exec,
    /// `fail`, `stop` and `restore` of hosts.
    HostFailure,
    /// Things only the lab can do (kill the API server alone, inspect namespaces, ...).
    LabOnly,
}

enum Backend {
    Lab {
        dir: Option<tempfile::TempDir>,
        lab: PathBuf,
        topology: Box<Topology>,
        _lock: LabLock,
    },
    Real {
        env: BTreeMap<String, String>,
    },
}

pub struct Cluster {
    kubectl: Kubectl,
    backend: Backend,
}

/// The `lab` binary next to the running test binary (cargo builds it for integration tests),
/// or `$IRONLB_LAB_BIN`.
pub fn lab_binary() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("IRONLB_LAB_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| HarnessError::Io(e.to_string()))?;
    // target/<profile>/deps/<test> -> target/<profile>/lab; an e2e binary (a benchmark) sits
    // in target/<profile>/ itself, next to `lab`.
    let dir = exe.parent();
    let candidate = [dir.and_then(Path::parent), dir]
        .into_iter()
        .flatten()
        .map(|d| d.join("lab"))
        .find(|p| p.is_file());
    candidate.ok_or_else(|| {
        HarnessError::Setup("no `lab` binary next to the test binary; run through `cargo test -p e2e` or set IRONLB_LAB_BIN".into())
    })
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn checked(what: &str, out: Output) -> Result<String, HarnessError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HarnessError::Command {
            command: what.to_string(),
            status: out.status.to_string(),
            output: output_text(&out),
        })
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, HarnessError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Io(format!("running {what}: {e}")))
}

impl Cluster {
    /// A real cluster when `E2E_KUBECONFIG` is set, else a fresh lab with default options.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with(LabOptions::default())
    }

    pub fn start_with(options: LabOptions) -> Result<Self, HarnessError> {
        match std::env::var_os("E2E_KUBECONFIG") {
            Some(kubeconfig) => Self::real(Path::new(&kubeconfig)),
            None => Self::lab(options),
        }
    }

    fn real(kubeconfig: &Path) -> Result<Self, HarnessError> {
        let env = [
            "E2E_EXEC",
            "E2E_CLIENT",
            "E2E_FAIL",
            "E2E_STOP",
            "E2E_RESTORE",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
        Ok(Cluster {
            kubectl: Kubectl::new(kubeconfig)?,
            backend: Backend::Real { env },
        })
    }

    /// Brings a lab up in a temporary directory (needs root: a test fails, never skips,
    /// when it is not).
    pub fn lab(options: LabOptions) -> Result<Self, HarnessError> {
        if !rustix::process::geteuid().is_root() {
            return Err(HarnessError::Setup(
                "lab tests need root (network namespaces); run `cargo test` as root, or set E2E_KUBECONFIG".into(),
            ));
        }
        let lock = LabLock::acquire()?;
        Self::lab_locked(options, lock)
    }

    /// Like [`Cluster::lab`], for a test that already holds the lab lock (to look at the
    /// machine before the lab exists).
    pub fn lab_locked(options: LabOptions, lock: LabLock) -> Result<Self, HarnessError> {
        if !rustix::process::geteuid().is_root() {
            return Err(HarnessError::Setup(
                "lab tests need root (network namespaces)".into(),
            ));
        }
        let lab = lab_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("ironlb-lab-test-")
            .tempdir()
            .map_err(|e| HarnessError::Io(e.to_string()))?;
        let mut cmd = Command::new(&lab);
        cmd.args(["up", "--nodes", &options.nodes.to_string(), "--dir"])
            .arg(dir.path())
            .args(&options.extra_args);
        if options.ipv6 {
            cmd.arg("--ipv6");
        }
        let out = run(&mut cmd, "lab up")?;
        if !out.status.success() {
            let logs = dir.keep();
            return Err(HarnessError::Command {
                command: "lab up".into(),
                status: out.status.to_string(),
                output: format!(
                    "{}\n(logs kept in {}/logs)",
                    output_text(&out),
                    logs.display()
                ),
            });
        }
        let topology = topology::read(dir.path())
            .map_err(|e| HarnessError::Setup(e.to_string()))?
            .ok_or_else(|| HarnessError::Setup("lab up wrote no topology".into()))?;
        Ok(Cluster {
            kubectl: Kubectl::new(&topology.kubeconfig)?,
            backend: Backend::Lab {
                dir: Some(dir),
                lab,
                topology: Box::new(topology),
                _lock: lock,
            },
        })
    }

    pub fn is_lab(&self) -> bool {
        matches!(self.backend, Backend::Lab { .. })
    }

    /// The lab's topology (hosts, IPs, MACs, processes); `None` on a real cluster.
    pub fn topology(&self) -> Option<&Topology> {
        match &self.backend {
            Backend::Lab { topology, .. } => Some(topology),
            Backend::Real { .. } => None,
        }
    }

    /// The lab directory; `None` on a real cluster.
    pub fn lab_dir(&self) -> Option<&Path> {
        self.topology().map(|t| t.dir.as_path())
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubectl.kubeconfig
    }

    /// Whether the cluster can do `cap`; if not, prints why so the test can return early.
    pub fn require(&self, cap: Capability) -> bool {
        let missing = match (&self.backend, cap) {
            (Backend::Lab { .. }, _) => None,
            (Backend::Real { .. }, Capability::LabOnly) => {
                Some("it only works in the lab".to_string())
            }
            (Backend::Real { env }, Capability::Exec) => (!env.contains_key("E2E_EXEC")
                || !env.contains_key("E2E_CLIENT"))
            .then(|| "set E2E_EXEC and E2E_CLIENT to run commands on hosts".to_string()),
            (Backend::Real { env }, Capability::HostFailure) => {
                let unset: Vec<&str> = ["E2E_FAIL", "E2E_STOP", "E2E_RESTORE"]
                    .into_iter()
                    .filter(|k| !env.contains_key(*k))
                    .collect();
                (!unset.is_empty())
                    .then(|| format!("set {} to fail and restore hosts", unset.join(", ")))
            }
        };
        match missing {
            None => true,
            Some(why) => {
                eprintln!("skipping on this cluster: {why}");
                false
            }
        }
    }

    /// Runs kubectl and returns stdout; a non-zero exit is an error carrying stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, HarnessError> {
        Ok(self.kubectl.run(args, None)?)
    }

    /// Runs kubectl and returns its output whatever the exit status.
    pub fn kubectl_output(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, HarnessError> {
        Ok(self.kubectl.output(args, stdin)?)
    }

    /// A Service's `status.loadBalancer.ingress` IPs (namespace `default`), space-separated as
    /// `kubectl get svc` shows them; empty while pending or when it cannot be read.
    pub fn external_ip(&self, service: &str) -> String {
        self.kubectl(&[
            "get",
            "svc",
            service,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
        .unwrap_or_default()
        .trim()
        .to_string()
    }

    /// Waits (at most `timeout`) until the Service shows an external IP, and returns it.
    pub fn wait_external_ip(
        &self,
        service: &str,
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        wait_for(&format!("{service} to get an EXTERNAL-IP"), timeout, || {
            let ip = self.external_ip(service);
            if ip.is_empty() {
                Err("<pending>".into())
            } else {
                Ok(ip)
            }
        })
    }

    /// `kubectl apply -f -` with the YAML.
    pub fn apply(&self, yaml: &str) -> Result<String, HarnessError> {
        Ok(self.kubectl.run(&["apply", "-f", "-"], Some(yaml))?)
    }

    /// `kubectl delete --ignore-not-found -f -` with the YAML.
    pub fn delete(&self, yaml: &str) -> Result<String, HarnessError> {
        Ok(self
            .kubectl
            .run(&["delete", "--ignore-not-found", "-f", "-"], Some(yaml))?)
    }

    /// A kube-rs client for the cluster.
    pub async fn client(&self) -> Result<kube::Client, HarnessError> {
        crate::lab::kube_setup::client_for(self.kubeconfig())
            .await
            .map_err(|e| HarnessError::Setup(e.to_string()))
    }

    /// Runs a command on a host (`client`, `node1`, ... in the lab).
    pub fn exec(&self, host: &str, command: &[&str]) -> Result<Output, HarnessError> {
        match &self.backend {
            Backend::Lab { lab, topology, .. } => {
                let mut cmd = Command::new(lab);
                cmd.args(["exec", host, "--dir"])
                    .arg(&topology.dir)
                    .arg("--")
                    .args(command);
                run(&mut cmd, &format!("lab exec {host}"))
            }
            Backend::Real { env } => {
                let template = env
                    .get("E2E_EXEC")
                    .ok_or_else(|| HarnessError::Unsupported("E2E_EXEC is not set".into()))?;
                let mut words = template
                    .split_whitespace()
                    .map(|w| w.replace("{host}", host));
                let program = words
                    .next()
                    .ok_or_else(|| HarnessError::Unsupported("E2E_EXEC is empty".into()))?;
                let mut cmd = Command::new(program);
                cmd.args(words).args(command);
                run(&mut cmd, &format!("exec on {host}"))
            }
        }
    }

    fn client_host(&self) -> String {
        match &self.backend {
            Backend::Lab { .. } => "client".into(),
            Backend::Real { env } => env
                .get("E2E_CLIENT")
                .cloned()
                .unwrap_or_else(|| "client".into()),
        }
    }

    /// `curl` from the client host; the body on success (HTTP status < 400).
    pub fn curl_from_client(&self, url: &str) -> Result<String, HarnessError> {
        let out = self.exec(
            &self.client_host(),
            &["curl", "-sS", "--fail", "--max-time", "3", url],
        )?;
        checked(&format!("curl {url}"), out)
    }

    /// Sends one UDP datagram from the client and returns the reply (lab only: it uses
    /// `lab internal udp`).
    pub fn udp_from_client(&self, addr: &str, payload: &str) -> Result<String, HarnessError> {
        let Backend::Lab { lab, .. } = &self.backend else {
            return Err(HarnessError::Unsupported("UDP probes need the lab".into()));
        };
        let lab = lab.display().to_string();
        let out = self.exec(
            "client",
            &[&lab, "internal", "udp", addr, payload, "--timeout", "2s"],
        )?;
        checked(&format!("udp {addr}"), out)
    }

    fn lab_command(&self, verb: &str, target: &str) -> Result<(), HarnessError> {
        match &self.backend {
            Backend::Lab { lab, topology, .. } => {
                let mut cmd = Command::new(lab);
                cmd.args([verb, target, "--dir"]).arg(&topology.dir);
                checked(&format!("lab {verb} {target}"), run(&mut cmd, verb)?).map(drop)
            }
            Backend::Real { env } => {
                let key = format!("E2E_{}", verb.to_ascii_uppercase());
                let template = env
                    .get(&key)
                    .ok_or_else(|| HarnessError::Unsupported(format!("{key} is not set")))?;
                let mut words = template
                    .split_whitespace()
                    .map(|w| w.replace("{host}", target));
                let program = words
                    .next()
                    .ok_or_else(|| HarnessError::Unsupported(format!("{key} is empty")))?;
                let mut cmd = Command::new(program);
                cmd.args(words);
                checked(&key, run(&mut cmd, &key)?).map(drop)
            }
        }
    }

    /// Abrupt failure of a host (lab: link down and SIGKILL) or, in the lab, of one process
    /// (`apiserver`, `controller`, `speaker-node1`, ...).
    pub fn fail(&self, target: &str) -> Result<(), HarnessError> {
        self.lab_command("fail", target)
    }

    /// Graceful stop (SIGTERM).
    pub fn stop(&self, target: &str) -> Result<(), HarnessError> {
        self.lab_command("stop", target)
    }

    /// Undoes `fail` or `stop`; in the lab it returns once the restarted processes are ready.
    pub fn restore(&self, target: &str) -> Result<(), HarnessError> {
        self.lab_command("restore", target)
    }

    /// Worker node names and InternalIPs, from the API.
    pub fn node_ips(&self) -> Result<BTreeMap<String, Vec<IpAddr>>, HarnessError> {
        let out = self.kubectl(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{" "}{range .status.addresses[?(@.type=="InternalIP")]}{.address}{" "}{end}{"\n"}{end}"#,
        ])?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let name = words.next()?.to_string();
                Some((name, words.filter_map(|w| w.parse().ok()).collect()))
            })
            .collect())
    }

    /// Takes the lab down now and reports failures (Drop does the same, but quietly).
    pub fn down(mut self) -> Result<(), HarnessError> {
        self.take_down()
    }

    fn take_down(&mut self) -> Result<(), HarnessError> {
        let Backend::Lab {
            lab, topology, dir, ..
        } = &mut self.backend
        else {
            return Ok(());
        };
        let Some(tempdir) = dir.take() else {
            return Ok(());
        };
        let mut cmd = Command::new(&*lab);
        cmd.args(["down", "--dir"]).arg(&topology.dir);
        let result = checked("lab down", run(&mut cmd, "lab down")?).map(drop);
        if std::thread::panicking() || result.is_err() {
            let kept = tempdir.keep();
            eprintln!("lab logs kept in {}/logs", kept.display());
        }
        result
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.take_down() {
            eprintln!("lab down failed: {e}");
        }
    }
}
