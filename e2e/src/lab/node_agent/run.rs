//! The node agent's Kubernetes glue: reflectors in, [`Action`]s out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::AgentError;
use super::endpoints::{MANAGED_BY, MANAGED_BY_LABEL};
use super::ipam::PodIpam;
use super::nodes::NodeSpec;
use super::reconcile::{Action, AgentState, Snapshot, reconcile};

const MANAGER: &str = "lab-node-agent";
/// A pass also runs this often without any change, to retry failed writes.
const RESYNC: Duration = Duration::from_secs(5);
/// Changes arriving together are handled in one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: Vec<NodeSpec>,
    pub pod_cidrs: Vec<String>,
}

impl Config {
    pub fn new(
        nodes: Vec<NodeSpec>,
        control_planes: &[String],
        pod_cidrs: Vec<String>,
    ) -> Result<Self, AgentError> {
        let mut nodes = nodes;
        for cp in control_planes {
            let node = nodes
                .iter_mut()
                .find(|n| &n.name == cp)
                .ok_or_else(|| AgentError::UnknownControlPlane(cp.clone()))?;
            node.control_plane = true;
        }
        PodIpam::new(&pod_cidrs)?;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        for node in &mut nodes {
            node.kernel_version = kernel.trim().to_string();
        }
        Ok(Config { nodes, pod_cidrs })
    }
}

fn reflect<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config)).default_backoff();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                debug!(error = %e, "watch error; retrying");
            }
            changed.notify_one();
        }
    });
    reader
}

async fn ready<K>(store: &Store<K>, what: &str)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    if tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready())
        .await
        .is_err()
    {
        warn!("no initial list of {what} after 30s; going on without it");
    }
}

/// Runs until `cancel` fires.
pub async fn run(client: Client, config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let nodes = reflect(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
    );
    let pods = reflect(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
    );
    let services = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
    );
    let slices = reflect(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
        changed.clone(),
    );
    let deployments = reflect(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
    );
    ready(&nodes, "nodes").await;
    ready(&pods, "pods").await;
    ready(&services, "services").await;
    ready(&slices, "endpointslices").await;
    ready(&deployments, "deployments").await;
    info!(nodes = config.nodes.len(), "node agent running");

    let mut state = AgentState::new(PodIpam::new(&config.pod_cidrs)?);
    loop {
        let snapshot = Snapshot {
            nodes: nodes.state(),
            pods: pods.state(),
            services: services.state(),
            slices: slices.state(),
            deployments: deployments.state(),
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let actions = reconcile(
            &config.nodes,
            &snapshot,
            &mut state,
            &now,
            Instant::now(),
            || {
                let mut b = [0u8; 5];
                rand::rng().fill_bytes(&mut b);
                b
            },
        );
        for action in actions {
            if let Err(e) = execute(&client, &action).await {
                warn!(error = %e, action = describe(&action), "write failed; will retry");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::ApplyNode(n) => format!(
            "register node {}",
            n.metadata.name.as_deref().unwrap_or_default()
        ),
        Action::ApplyNodeStatus { name, .. } => format!("status of node {name}"),
        Action::Bind {
            namespace,
            name,
            node,
        } => format!("bind {namespace}/{name} to {node}"),
        Action::SetPodStatus {
            namespace, name, ..
        } => format!("status of pod {namespace}/{name}"),
        Action::DeletePod {
            namespace, name, ..
        } => format!("delete pod {namespace}/{name}"),
        Action::CreatePod(p) => format!(
            "create pod {}",
            p.metadata.name.as_deref().unwrap_or_default()
        ),
        Action::ApplySlice(s) => format!(
            "endpointslice {}",
            s.metadata.name.as_deref().unwrap_or_default()
        ),
        Action::DeleteSlice { namespace, name } => {
            format!("delete endpointslice {namespace}/{name}")
        }
        Action::SetDeploymentStatus {
            namespace, name, ..
        } => format!("status of deployment {namespace}/{name}"),
        Action::Warn(w) => w.clone(),
    }
}

/// 404 on delete and 409 AlreadyExists on create mean the work is done already.
fn tolerate(result: Result<(), kube::Error>, codes: &[u16]) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(e)) if codes.contains(&e.code) => Ok(()),
        other => other,
    }
}

async fn execute(client: &Client, action: &Action) -> Result<(), kube::Error> {
    let apply = PatchParams::apply(MANAGER).force();
    match action {
        Action::ApplyNode(node) => {
            let api: Api<Node> = Api::all(client.clone());
            let name = node.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &apply, &Patch::Apply(node))
                .await
                .map(drop)
        }
        Action::ApplyNodeStatus { name, status } => {
            // A merge patch, as kubelets do: server-side apply cannot express a dual-stack
            // node, whose addresses list holds two InternalIP entries under the map key `type`.
            let api: Api<Node> = Api::all(client.clone());
            let body = json!({ "status": status });
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map(drop)
        }
        Action::Bind {
            namespace,
            name,
            node,
        } => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    ..Default::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..Default::default()
                },
            };
            let body = serde_json::to_vec(&binding).map_err(kube::Error::SerdeError)?;
            match api
                .create_subresource::<serde_json::Value, serde_json::Value>(
                    "binding",
                    name,
                    &PostParams::default(),
                    &serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?,
                )
                .await
            {
                Ok(_) => Ok(()),
                // An API server without the binding subresource: set the field directly.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => {
                    let patch = json!({ "spec": { "nodeName": node } });
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(drop)
                }
                Err(e) => Err(e),
            }
        }
        Action::SetPodStatus {
            namespace,
            name,
            status,
        } => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let patch = json!({ "status": status });
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
        Action::DeletePod {
            namespace,
            name,
            force,
        } => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let params = if *force {
                DeleteParams::default().grace_period(0)
            } else {
                DeleteParams::default()
            };
            tolerate(api.delete(name, &params).await.map(drop), &[404])
        }
        Action::CreatePod(pod) => {
            let ns = pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            tolerate(
                api.create(&PostParams::default(), pod).await.map(drop),
                &[409],
            )
        }
        Action::ApplySlice(slice) => {
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            let name = slice.metadata.name.clone().unwrap_or_default();
            let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
            api.patch(&name, &apply, &Patch::Apply(slice))
                .await
                .map(drop)
        }
        Action::DeleteSlice { namespace, name } => {
            let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
            tolerate(
                api.delete(name, &DeleteParams::default()).await.map(drop),
                &[404],
            )
        }
        Action::SetDeploymentStatus {
            namespace,
            name,
            status,
        } => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            let patch = json!({ "status": status });
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
        Action::Warn(message) => {
            warn!("{message}");
            Ok(())
        }
    }
}
