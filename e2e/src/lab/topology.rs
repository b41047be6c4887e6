//! `DIR/topology.json`: the record of one lab, written by `lab up` before it creates anything
//! and updated as processes start and stop, so that `lab down` can undo a half-finished `up`.
//!
//! It holds the [`LabPlan`] (hosts, namespaces, IPs, MACs) plus how each process was started and
//! its current pid. Reads and writes go through [`TopologyFile`], which holds `DIR/lock` while it
//! rewrites the file so that concurrent `lab` commands do not lose each other's updates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::{HostPlan, LabPlan};
use super::{Error, Result};

pub const TOPOLOGY_FILE: &str = "topology.json";
const LOCK_FILE: &str = "lock";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `lab up` is running or died before the lab was ready.
    Starting,
    Ready,
}

/// How the API server of this lab is provided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ApiServer {
    /// `lab-apiserver`, the stand-in in `e2e/src/apiserver`.
    StandIn,
    /// A real etcd and kube-apiserver (`lab up --kube-apiserver PATH --etcd PATH`).
    Real {
        kube_apiserver: PathBuf,
        etcd: PathBuf,
    },
}

/// Whether a process should be running; `restore` brings back those that should.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Desired {
    Running,
    /// Stopped on purpose by `fail` or `stop`.
    Down,
}

/// One long-running process of the lab and how to start it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Unique in the lab: `apiserver`, `controller`, `speaker-node1`, ...
    pub name: String,
    /// The short name of the host whose namespace it runs in.
    pub host: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub log: PathBuf,
    pub pid: Option<u32>,
    pub desired: Desired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub dir: PathBuf,
    pub phase: Phase,
    #[serde(flatten)]
    pub plan: LabPlan,
    /// For the host's kubectl: the API server over the management link.
    pub kubeconfig: PathBuf,
    /// For in-cluster components: the API server at the control plane's segment address.
    pub kubeconfig_internal: PathBuf,
    pub api_server: ApiServer,
    pub processes: Vec<ProcessRecord>,
    /// Hosts whose segment link `lab fail` took down.
    #[serde(default)]
    pub failed_hosts: BTreeSet<String>,
}

impl Topology {
    pub fn new(dir: &Path, plan: LabPlan, api_server: ApiServer) -> Self {
        Topology {
            dir: dir.to_path_buf(),
            phase: Phase::Starting,
            plan,
            kubeconfig: dir.join("kubeconfig"),
            kubeconfig_internal: dir.join("kubeconfig.internal"),
            api_server,
            processes: Vec::new(),
            failed_hosts: BTreeSet::new(),
        }
    }

    pub fn host(&self, name: &str) -> Result<&HostPlan> {
        Ok(self.plan.host(name)?)
    }

    pub fn process(&self, name: &str) -> Option<&ProcessRecord> {
        self.processes.iter().find(|p| p.name == name)
    }

    pub fn process_mut(&mut self, name: &str) -> Option<&mut ProcessRecord> {
        self.processes.iter_mut().find(|p| p.name == name)
    }

    /// Adds or replaces the record with the same name.
    pub fn upsert_process(&mut self, record: ProcessRecord) {
        match self.process_mut(&record.name) {
            Some(existing) => *existing = record,
            None => self.processes.push(record),
        }
    }

    pub fn processes_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a ProcessRecord> {
        self.processes.iter().filter(move |p| p.host == host)
    }
}

/// Reads the topology of a lab directory, if one was ever written there.
pub fn read(dir: &Path) -> Result<Option<Topology>> {
    let path = dir.join(TOPOLOGY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| Error::BadTopology { path, source })
}

/// Writes atomically: a reader never sees half a file.
pub fn write(topology: &Topology) -> Result<()> {
    let path = topology.dir.join(TOPOLOGY_FILE);
    let tmp = topology.dir.join(format!(".{TOPOLOGY_FILE}.tmp"));
    let text = serde_json::to_string_pretty(topology).expect("a topology always serialises");
    fs::write(&tmp, text + "\n").map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Exclusive use of a lab directory's topology for one read-modify-write.
pub struct TopologyFile {
    _lock: File,
    pub topology: Topology,
}

impl TopologyFile {
    /// Locks `DIR/lock` (blocking) and reads the topology; fails if there is none.
    pub fn open(dir: &Path) -> Result<Self> {
        let lock = lock_dir(dir)?;
        let topology = read(dir)?.ok_or_else(|| Error::NoLab(dir.to_path_buf()))?;
        Ok(TopologyFile {
            _lock: lock,
            topology,
        })
    }

    pub fn save(&self) -> Result<()> {
        write(&self.topology)
    }
}

/// Takes the per-directory lock; it is released when the file is dropped.
pub fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(file)
}

/// Files `lab up` creates in a lab directory, removed by `lab down` unless asked to keep them.
pub fn owned_paths(dir: &Path) -> Vec<PathBuf> {
    [
        TOPOLOGY_FILE,
        "kubeconfig",
        "kubeconfig.internal",
        "memberlist.key",
        "apiserver",
        "etcd",
        "pki",
        "logs",
        LOCK_FILE,
    ]
    .iter()
    .map(|name| dir.join(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::LabPlan;

    fn mk_topology(dir: &Path) -> Topology {
        let mut t = Topology::new(dir, LabPlan::new(2, 2, true).unwrap(), ApiServer::StandIn);
        t.upsert_process(ProcessRecord {
            name: "apiserver".into(),
            host: "cp".into(),
            program: "/bin/lab-apiserver".into(),
            args: vec!["--listen".into(), "0.0.0.0:6443".into()],
            env: BTreeMap::new(),
            log: dir.join("logs/apiserver.log"),
            pid: Some(42),
            desired: Desired::Running,
        });
        t
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = mk_topology(dir.path());
        write(&t).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(t));
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join(TOPOLOGY_FILE)).unwrap())
                .unwrap();
        // The plan is flattened: hosts, namespaces and MACs are at the top level.
        assert_eq!(json["hosts"][1]["netns"], "ilb2-node1");
        assert_eq!(json["hosts"][1]["mac"], "02:1b:02:00:00:0b");
        assert_eq!(json["processes"][0]["pid"], 42);
    }

    #[test]
    fn missing_file_is_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        fs::write(dir.path().join(TOPOLOGY_FILE), "{not json").unwrap();
        assert!(matches!(read(dir.path()), Err(Error::BadTopology { .. })));
        assert!(matches!(
            TopologyFile::open(&dir.path().join("absent")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn upsert_replaces_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = mk_topology(dir.path());
        let mut again = t.processes[0].clone();
        again.pid = Some(43);
        t.upsert_process(again);
        assert_eq!(t.processes.len(), 1);
        assert_eq!(t.process("apiserver").unwrap().pid, Some(43));
        assert_eq!(t.processes_on("cp").count(), 1);
        assert_eq!(t.processes_on("node1").count(), 0);
    }
}
