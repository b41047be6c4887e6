//! The node agent: a stand-in for the kubelets of every lab node, the EndpointSlice
//! controller, and a minimal Deployment controller. It is an ordinary API client (kube-rs),
//! so it works against the `lab-apiserver` stand-in and a real kube-apiserver alike.
//!
//! Its decisions are pure ([`reconcile`] over [`nodes`], [`pods`], [`ipam`], [`endpoints`],
//! [`deployments`]); [`run`] keeps reflectors of the objects it reads, runs a pass after every
//! change (and every few seconds), and executes the resulting writes.

pub mod deployments;
pub mod endpoints;
pub mod ipam;
pub mod nodes;
pub mod pods;
pub mod reconcile;
mod run;

pub use run::{Config, run};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentError {
    #[error("invalid --node {0:?}: {1}")]
    BadNodeArg(String, String),
    #[error("invalid pod CIDR {0:?}: {1}")]
    BadPodCidr(String, String),
    #[error("annotation {key} must be true or false, not {value:?}")]
    BadAnnotation { key: String, value: String },
    #[error("--control-plane {0:?} is not one of the --node names")]
    UnknownControlPlane(String),
}
