//! The lab: a Kubernetes cluster on one machine, built from Linux network namespaces.
//!
//! A bridge in its own namespace is the L2 segment; the control plane (`cp`), the worker nodes
//! (`node1..nodeN`) and a `client` are namespaces with a veth into it. The real ironlb binaries
//! run in them against an API server (the `lab-apiserver` stand-in or a real kube-apiserver),
//! with two more stand-ins from this module: the node agent ([`node_agent`], the kubelet and
//! EndpointSlice-controller roles) and a kube-proxy per node ([`kube_proxy`]).
//!
//! Ownership: [`plan`] decides names and addresses (pure); [`netns`] and [`process`] create and
//! remove the kernel objects and processes; [`topology`] records them in `DIR/topology.json`;
//! [`lifecycle`] drives `up`, `down`, `fail`, `stop` and `restore` from that record.

pub mod components;
pub mod demo;
pub mod kube_proxy;
pub mod kube_setup;
pub mod kubectl;
pub mod lifecycle;
pub mod netns;
pub mod node_agent;
pub mod plan;
pub mod probe;
pub mod process;
pub mod real_apiserver;
pub mod state;
pub mod topology;

use std::path::PathBuf;
use std::time::Duration;

pub use plan::{LabPlan, PlanError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid lab topology: {source}", path.display())]
    BadTopology {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no lab in {dir}: run `lab up --dir {dir}` first", dir = .0.display())]
    NoLab(PathBuf),
    #[error("no lab directory given: pass --dir, set IRONLB_LAB_DIR, or run `lab up` first")]
    NoDir,
    #[error("a lab is already up in {dir}: run `lab down --dir {dir}` first", dir = .0.display())]
    AlreadyUp(PathBuf),
    #[error(
        "all {} lab slots are in use: run `lab down` on a lab you no longer need",
        plan::MAX_SLOTS
    )]
    NoFreeSlot,
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{} not found: build it first (`cargo build -p e2e --bins` and the ironlb packages)", .0.display())]
    MissingBinary(PathBuf),
    #[error("timed out after {after:?} waiting for {what}{}", if last.is_empty() { String::new() } else { format!(" (last: {last})") })]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    #[error("{name} exited while starting; see {}", log.display())]
    ProcessExited { name: String, log: PathBuf },
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig { path: PathBuf, message: String },
    #[error("invalid manifest {}: {message}", path.display())]
    BadManifest { path: PathBuf, message: String },
    #[error("unknown target {0:?}: expected a host (cp, client, node1..) or a process ({1})")]
    UnknownTarget(String, String),
    #[error("{0}")]
    BadArgument(String),
    #[error("the lab needs root (network namespaces); run it as root")]
    NotRoot,
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
