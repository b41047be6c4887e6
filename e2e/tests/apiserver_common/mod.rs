//! Shared set-up for the `lab-apiserver` integration tests: a network namespace of the test's
//! own (removed on drop, with every process in it), the server process inside it, kubectl run
//! inside it, and a kube-rs client on a thread that has entered it. Nothing listens or connects
//! in the root namespace.

#![allow(dead_code)]

use std::future::Future;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const KUBECTL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin/kubectl");
const SERVER: &str = env!("CARGO_BIN_EXE_lab-apiserver");

/// The server binary: this build's, or `LAB_APISERVER_BIN` (to measure a release build).
pub fn server_binary() -> String {
    std::env::var("LAB_APISERVER_BIN").unwrap_or_else(|_| SERVER.to_string())
}
pub const SERVICE_RANGES: &str = "203.0.113.0/25,2001:db8:fffe::/108";

/// A network namespace with only `lo`, deleted (with its processes) on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> TestNetns {
        let name = format!("h3t-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add")
            .success();
        assert!(ok, "could not create network namespace {name}");
        let ns = TestNetns { name };
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])
            .status()
            .expect("ip link")
            .success();
        assert!(ok, "could not bring lo up in {}", ns.name);
        ns
    }

    /// Moves the calling thread into the namespace (sockets it opens live there).
    pub fn enter_current_thread(&self) {
        enter_netns(&self.name);
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread inside the namespace, with its own tokio runtime.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter_netns(&name);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f())
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{name}")).expect("netns handle");
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .expect("setns");
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// One `lab-apiserver` process inside a [`TestNetns`].
pub struct ApiServerProcess {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    netns: String,
    extra: Vec<String>,
    child: Option<Child>,
}

impl ApiServerProcess {
    pub fn start(ns: &TestNetns, dir: &Path, extra: &[&str]) -> ApiServerProcess {
        let mut p = ApiServerProcess {
            dir: dir.to_path_buf(),
            kubeconfig: dir.join("kubeconfig"),
            netns: ns.name.clone(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, &server_binary()])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen", "127.0.0.1:6443", "--tls-san", "127.0.0.1"])
            .args(
                if self.extra.iter().any(|a| a == "--service-cluster-ip-range") {
                    vec![]
                } else {
                    vec!["--service-cluster-ip-range", SERVICE_RANGES]
                },
            )
            .arg("--kubeconfig-out")
            .arg(format!(
                "{}=https://127.0.0.1:6443",
                self.kubeconfig.display()
            ))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lab-apiserver");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.kubeconfig.exists() {
            assert!(
                Instant::now() < deadline,
                "lab-apiserver did not write its kubeconfig; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// CPU time (user + system) the server has used so far, from `/proc`.
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.child.as_ref().expect("running").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().expect("wait")
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for ApiServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// kubectl inside the namespace.
pub fn kubectl(ns: &TestNetns, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = ns.command(KUBECTL);
    c.arg("--kubeconfig").arg(kubeconfig).args(args);
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("kubectl");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// kubectl that must succeed; returns stdout.
pub fn kubectl_ok(ns: &TestNetns, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(ns, kubeconfig, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kubectl that must fail; returns stderr.
pub fn kubectl_err(
    ns: &TestNetns,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    let out = kubectl(ns, kubeconfig, args, stdin);
    assert!(
        !out.status.success(),
        "kubectl {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A kube-rs client for the server's kubeconfig (call on a thread inside the namespace).
pub async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// A fresh scratch directory for one test.
pub fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("apiserver-{tag}-"))
        .tempdir()
        .expect("tempdir")
}
