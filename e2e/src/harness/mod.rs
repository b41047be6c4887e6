//! The scenario-test library: a [`Cluster`] to run the user's path against (a fresh lab or a
//! real cluster), the real kubectl, YAML apply, host operations, and [`wait_for`] for every
//! wait. Lab tests hold a cross-process lock ([`lock`]) so they run one at a time.
//!
//! ```no_run
//! use std::time::Duration;
//! use e2e::harness::{Cluster, wait_for};
//!
//! let cluster = Cluster::start().unwrap();
//! cluster.kubectl(&["create", "deployment", "web", "--image=registry.k8s.io/e2e-test-images/agnhost:2.53",
//!                   "--replicas=3", "--", "/agnhost", "netexec", "--http-port=8080"]).unwrap();
//! cluster.kubectl(&["expose", "deployment", "web", "--type=LoadBalancer", "--port=80", "--target-port=8080"]).unwrap();
//! let ip = wait_for("an EXTERNAL-IP", Duration::from_secs(10), || {
//!     let ip = cluster.kubectl(&["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])
//!         .map_err(|e| e.to_string())?;
//!     if ip.is_empty() { Err("pending".into()) } else { Ok(ip) }
//! }).unwrap();
//! let body = cluster.curl_from_client(&format!("http://{ip}/hostname")).unwrap();
//! assert!(body.starts_with("web-"));
//! ```

pub mod cluster;
pub mod l2;
pub mod lock;
pub mod wait;

use std::time::Duration;

pub use cluster::{Capability, Cluster, LabOptions};
pub use wait::wait_for;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot set the cluster up: {0}")]
    Setup(String),
    #[error("{0}")]
    Io(String),
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("timed out after {after:?} waiting for {what}; last: {last}")]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    #[error("not supported on this cluster: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Lab(#[from] crate::lab::Error),
}
