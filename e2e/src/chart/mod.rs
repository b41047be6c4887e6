//! Tests' view of the Helm chart `charts/ironlb`: rendering it with the real `helm`
//! ([`helm`]), reading the manifests ([`manifest`]) and what their monitors scrape
//! ([`monitors`]), RBAC as the API server evaluates it
//! ([`rbac`], [`request_info`]), the recording API proxy that observes which calls the real
//! binaries make ([`audit`]), running a chart container as a lab process ([`launch`]), the
//! PrometheusRule and dashboard queries ([`rules`]), the README's commands, tables and the
//! binaries' `--help` ([`readme`]), a real Prometheus in a lab namespace
//! ([`prometheus`]), processes started in lab namespaces ([`running`]) and the Dockerfiles
//! ([`dockerfile`]).
//!
//! Pure modules: `manifest`, `monitors`, `rbac`, `readme`, `request_info`, `launch`, `rules`, `dockerfile`. The others
//! run processes or serve sockets.

pub mod audit;
pub mod dockerfile;
pub mod helm;
pub mod launch;
pub mod manifest;
pub mod monitors;
pub mod prometheus;
pub mod rbac;
pub mod readme;
pub mod request_info;
pub mod rules;
pub mod running;

use std::path::PathBuf;

pub use helm::Helm;
pub use manifest::{Manifests, Object};

/// Everything that can go wrong in this module area.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not valid YAML: {source}")]
    Yaml {
        what: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("rendered chart: {0}")]
    Manifest(String),
    #[error("RBAC: {0}")]
    Rbac(String),
    #[error("request path {path:?}: {why}")]
    BadRequestPath { path: String, why: String },
    #[error("cannot run the container as a process: {0}")]
    Launch(String),
    #[error("Dockerfile {file}: {why}")]
    Dockerfile { file: String, why: String },
    #[error("PromQL {expr:?}: {why}")]
    PromQl { expr: String, why: String },
    #[error("Prometheus: {0}")]
    Prometheus(String),
    #[error("kube client: {0}")]
    Kube(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// The repository root (this crate lives in `e2e/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `charts/ironlb`.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts").join("ironlb")
}

/// The all-features values file the tests render and lint with.
pub fn all_features_values() -> PathBuf {
    chart_dir().join("ci").join("all-features-values.yaml")
}

/// Where cargo puts the binaries of this build (`target/debug` in `cargo test`), found from the
/// running executable (`target/debug/deps/<test>`), or `$IRONLB_BIN_DIR`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IRONLB_BIN_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(|d| d.parent()).map(PathBuf::from))
        .unwrap_or_else(|| repo_root().join("target").join("debug"))
}
