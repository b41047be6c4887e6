//! The server's shared state: the registry (swapped when CRDs change), the store, the service
//! networks and the options. Also start-up: loading from disk, re-deriving allocations, and the
//! objects a fresh cluster has (system namespaces, the `kubernetes` Service).

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use super::kinds::service::ServiceNetworks;
use super::metrics::Metrics;
use super::persist::{self, Persister};
use super::registry::{Registry, RegistryOptions};
use super::store::{Expect, Store};
use super::time;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Emulated Kubernetes minor version (`/version` and version-dependent fields).
    pub minor_version: u32,
    pub service_cidrs: String,
    pub node_port_range: String,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Events kept per collection for watches to resume from.
    pub history_limit: usize,
    /// The address the `kubernetes` Service's endpoints point at.
    pub advertise_address: Option<IpAddr>,
    pub secure_port: u16,
    /// Events older than this are deleted (`--event-ttl`, 1h as in kube-apiserver).
    pub event_ttl: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            minor_version: 35,
            service_cidrs: "10.96.0.0/16".into(),
            node_port_range: "30000-32767".into(),
            bookmark_interval: Duration::from_secs(15),
            history_limit: 10_000,
            advertise_address: None,
            secure_port: 6443,
            event_ttl: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
    #[error("{0}")]
    Config(String),
}

pub struct ApiServer {
    base_registry: Registry,
    registry: RwLock<Arc<Registry>>,
    pub store: Store,
    pub services: Arc<ServiceNetworks>,
    pub opts: ServerOptions,
    pub metrics: Metrics,
    /// UIDs of deleted owners whose dependents the garbage collector still has to visit.
    pub(crate) gc_queue: std::sync::Mutex<std::collections::VecDeque<String>>,
    pub gc_wake: tokio::sync::Notify,
    /// Owners being deleted in the foreground: `(storage, namespace, name, uid)`.
    pub(crate) foreground: std::sync::Mutex<Vec<(String, String, String, String)>>,
    /// The CA certificate (PEM) published in every namespace's `kube-root-ca.crt`.
    pub root_ca: std::sync::OnceLock<String>,
}

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    /// A server without persistence (unit tests).
    pub fn in_memory(opts: ServerOptions) -> Result<Arc<Self>, StartError> {
        let store = Store::in_memory(opts.history_limit);
        Self::assemble(opts, store)
    }

    /// A server whose state lives in `dir`.
    pub fn open(dir: &Path, opts: ServerOptions) -> Result<Arc<Self>, StartError> {
        let loaded = persist::load(dir)?;
        for (path, why) in &loaded.skipped {
            tracing::warn!(path = %path.display(), why, "skipping unreadable object file");
        }
        let persister = Persister::start(dir, &loaded)?;
        let store = Store::from_loaded(loaded, persister, opts.history_limit);
        Self::assemble(opts, store)
    }

    fn assemble(opts: ServerOptions, store: Store) -> Result<Arc<Self>, StartError> {
        let services = Arc::new(
            ServiceNetworks::new(&opts.service_cidrs, &opts.node_port_range)
                .map_err(|e| StartError::Config(e.to_string()))?,
        );
        let base_registry = Registry::builtin(&RegistryOptions {
            minor_version: opts.minor_version,
        });
        let server = Arc::new(ApiServer {
            registry: RwLock::new(Arc::new(base_registry.clone())),
            base_registry,
            store,
            services,
            opts,
            metrics: Metrics::new(),
            gc_queue: Default::default(),
            gc_wake: tokio::sync::Notify::new(),
            foreground: Default::default(),
            root_ca: std::sync::OnceLock::new(),
        });
        let (svcs, _) = server.store.snapshot("core/services", None);
        for s in &svcs {
            server.services.restore(s);
        }
        server.rebuild_registry();
        server.bootstrap();
        Ok(server)
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-derives the served resources from the stored CRDs.
    pub fn rebuild_registry(&self) {
        let (crds, _) = self
            .store
            .snapshot("apiextensions.k8s.io/customresourcedefinitions", None);
        let next = Arc::new(Registry::with_crds(&self.base_registry, &crds));
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// Creates what every cluster starts with, if missing.
    fn bootstrap(&self) {
        let now = time::now_time();
        for ns in SYSTEM_NAMESPACES {
            if self.store.get("core/namespaces", "", ns).is_none() {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "uid": new_uid(), "creationTimestamp": now, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"}
                });
                let _ = self
                    .store
                    .commit("core/namespaces", "", ns, Expect::Absent, Some(obj));
            }
        }
        if self
            .store
            .get("core/services", "default", "kubernetes")
            .is_none()
        {
            let ip = self.services.first_ip();
            let family = ironlb_crds::address::Family::of(ip).k8s_name();
            let svc = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default", "uid": new_uid(), "creationTimestamp": now,
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                         "ipFamilies": [family], "ipFamilyPolicy": "SingleStack",
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.opts.secure_port}],
                         "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
                "status": {"loadBalancer": {}}
            });
            self.services.restore(&svc);
            let _ = self.store.commit(
                "core/services",
                "default",
                "kubernetes",
                Expect::Absent,
                Some(svc),
            );
            if let Some(addr) = self.opts.advertise_address {
                let addr_type = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                let slice = json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "kubernetes", "namespace": "default", "uid": new_uid(), "creationTimestamp": now,
                                 "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}},
                    "addressType": addr_type,
                    "endpoints": [{"addresses": [addr.to_string()], "conditions": {"ready": true}}],
                    "ports": [{"name": "https", "port": self.opts.secure_port, "protocol": "TCP"}]
                });
                let _ = self.store.commit(
                    "discovery.k8s.io/endpointslices",
                    "default",
                    "kubernetes",
                    Expect::Absent,
                    Some(slice),
                );
                let eps = json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": "kubernetes", "namespace": "default", "uid": new_uid(), "creationTimestamp": now,
                                 "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                    "subsets": [{"addresses": [{"ip": addr.to_string()}], "ports": [{"name": "https", "port": self.opts.secure_port, "protocol": "TCP"}]}]
                });
                let _ = self.store.commit(
                    "core/endpoints",
                    "default",
                    "kubernetes",
                    Expect::Absent,
                    Some(eps),
                );
            }
        }
    }
}

/// A random RFC 4122 version-4 UID.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The `/version` document.
pub fn version_info(minor: u32) -> Value {
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "emulationMajor": "1",
        "emulationMinor": minor.to_string(),
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": minor.saturating_sub(1).to_string(),
        "gitVersion": format!("v1.{minor}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_server_has_system_namespaces_and_the_kubernetes_service() {
        let opts = ServerOptions {
            service_cidrs: "203.0.113.0/25".into(),
            advertise_address: Some("192.0.2.2".parse().unwrap()),
            ..Default::default()
        };
        let s = ApiServer::in_memory(opts).unwrap();
        for ns in SYSTEM_NAMESPACES {
            assert!(s.store.get("core/namespaces", "", ns).is_some(), "{ns}");
        }
        let k = s
            .store
            .get("core/services", "default", "kubernetes")
            .unwrap();
        assert_eq!(k["spec"]["clusterIP"], "203.0.113.1");
        assert!(
            s.store
                .get("discovery.k8s.io/endpointslices", "default", "kubernetes")
                .is_some()
        );
        assert_eq!(s.services.usage().0, 1);
    }

    #[test]
    fn uids_are_version_4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uid(), u);
    }

    #[test]
    fn version_reports_the_emulated_minor() {
        let v = version_info(27);
        assert_eq!(v["minor"], "27");
        assert_eq!(v["gitVersion"], "v1.27.0");
    }
}
