//! `lab down` leaves nothing behind: no namespaces, links, bridges, processes or nft tables,
//! after a normal run, after a `fail`, and after an `up` killed half-way.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::harness::cluster::lab_binary;
use e2e::harness::lock::LabLock;
use e2e::harness::{Cluster, LabOptions, wait_for};
use e2e::lab::topology::{self, Topology};

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: registry.k8s.io/e2e-test-images/agnhost:2.53}
"#;

/// What the root namespace and the process table look like, as far as a lab could touch them.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    root_links: BTreeSet<String>,
    root_nft: String,
}

fn footprint() -> Footprint {
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let root_links = String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect();
    let nft = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    Footprint {
        root_links,
        root_nft: String::from_utf8_lossy(&nft.stdout).into_owned(),
    }
}

/// The network-namespace inodes of a lab's namespaces, to find any process still in them.
fn namespace_inodes(id: &str) -> BTreeSet<u64> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{id}-"))
                })
                .filter_map(|e| std::fs::metadata(e.path()).ok().map(|m| m.ino()))
                .collect()
        })
        .unwrap_or_default()
}

fn processes_in(inodes: &BTreeSet<u64>) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            && inodes.contains(&meta.ino())
        {
            found.push(pid);
        }
    }
    found
}

/// Asserts that nothing of the lab `id` exists any more.
fn assert_gone(id: &str, recorded_pids: &[u32], inodes: &BTreeSet<u64>, before: &Footprint) {
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|e| {
            e.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let left: Vec<&String> = left
        .iter()
        .filter(|n| n.starts_with(&format!("{id}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(
        !Path::new(&format!("/sys/class/net/{id}-mgmt")).exists(),
        "management link left"
    );
    for pid in recorded_pids {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie_or_gone = state.is_empty()
            || state
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        assert!(zombie_or_gone, "process {pid} survived: {state}");
    }
    assert_eq!(
        processes_in(inodes),
        Vec::<u32>::new(),
        "processes left in the lab's namespaces"
    );
    let after = footprint();
    assert_eq!(after.root_nft, before.root_nft, "root nft tables changed");
    let added: Vec<&String> = after.root_links.difference(&before.root_links).collect();
    assert!(added.is_empty(), "root links added: {added:?}");
}

fn recorded(t: &Topology) -> Vec<u32> {
    t.processes.iter().filter_map(|p| p.pid).collect()
}

#[test]
fn down_after_a_scenario_leaves_nothing() {
    let lock = LabLock::acquire().unwrap();
    let before = footprint();
    let cluster = Cluster::lab_locked(LabOptions::default(), lock).expect("lab");
    let t = cluster
        .topology()
        .expect("this test is about the lab")
        .clone();
    let inodes = namespace_inodes(&t.plan.id);
    assert_eq!(
        inodes.len(),
        t.plan.hosts.len() + 1,
        "one namespace per host plus the segment"
    );
    assert!(Path::new(&format!("/sys/class/net/{}-mgmt", t.plan.id)).exists());
    // A small scenario, plus a stray process started through `lab exec`.
    cluster.apply(DEPLOYMENT).unwrap();
    wait_for("two web pods", Duration::from_secs(30), || {
        let pods = cluster
            .kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
            .map_err(|e| e.to_string())?;
        if pods.lines().count() == 2 {
            Ok(())
        } else {
            Err(pods)
        }
    })
    .unwrap();
    let lab = lab_binary().unwrap();
    let mut stray = Command::new(&lab);
    stray
        .args(["exec", "node2", "--dir"])
        .arg(&t.dir)
        .args(["--", "sleep", "300"]);
    let mut stray = stray.stdin(Stdio::null()).spawn().unwrap();
    wait_for("the stray sleep to start", Duration::from_secs(5), || {
        let n = processes_in(&inodes).len();
        if n > recorded(&t).len() {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .unwrap();

    cluster.down().unwrap();
    let _ = stray.wait();
    assert_gone(&t.plan.id, &recorded(&t), &inodes, &before);
}

#[test]
fn down_after_fail_leaves_nothing() {
    let lock = LabLock::acquire().unwrap();
    let before = footprint();
    let cluster = Cluster::lab_locked(
        LabOptions {
            nodes: 2,
            ..Default::default()
        },
        lock,
    )
    .expect("lab");
    let t = cluster.topology().unwrap().clone();
    let inodes = namespace_inodes(&t.plan.id);
    cluster.fail("node1").unwrap();
    let after_fail = topology::read(&t.dir).unwrap().unwrap();
    assert!(after_fail.failed_hosts.contains("node1"));
    let proxy = after_fail.process("kube-proxy-node1").unwrap().pid.unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{proxy}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "fail kills the host's processes: {stat}"
    );
    let link = Command::new("ip")
        .args(["-n", &t.plan.lan_netns, "-o", "link", "show", "node1"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains(",UP"),
        "fail takes the link down"
    );
    cluster.fail("apiserver").unwrap();
    cluster.down().unwrap();
    assert_gone(&t.plan.id, &recorded(&t), &inodes, &before);
}

#[test]
fn down_cleans_up_after_an_up_killed_half_way() {
    let _lock = LabLock::acquire().unwrap();
    let before = footprint();
    let lab = lab_binary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut up = Command::new(&lab)
        .args(["up", "--nodes", "2", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Half-way: namespaces exist and the API server has been started.
    let t = wait_for(
        "up to start the API server",
        Duration::from_secs(30),
        || {
            let t = topology::read(dir.path())
                .map_err(|e| e.to_string())?
                .ok_or("no topology yet")?;
            if t.process("apiserver").and_then(|p| p.pid).is_some() {
                Ok(t)
            } else {
                Err("no apiserver yet".into())
            }
        },
    )
    .unwrap();
    up.kill().unwrap();
    up.wait().unwrap();
    let inodes = namespace_inodes(&t.plan.id);
    assert!(!inodes.is_empty(), "the killed up left namespaces to clean");

    let out = Command::new(&lab)
        .args(["down", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_gone(&t.plan.id, &recorded(&t), &inodes, &before);
    // Running down again is harmless.
    let again = Command::new(&lab)
        .args(["down", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(again.status.success());
}
