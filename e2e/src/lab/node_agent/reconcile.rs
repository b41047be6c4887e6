//! One pass of the node agent: from a snapshot of the cluster to the list of writes that
//! bring it to what kubelets, the EndpointSlice controller and the Deployment controller
//! would make of it. Pure: the caller supplies the snapshot, the clock and randomness, and
//! executes the [`Action`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{Node, NodeStatus, Pod, PodStatus, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::ipam::PodIpam;
use super::nodes::{self, NodeSpec};
use super::pods::{self, Scheduler};
use super::{deployments, endpoints};

/// The objects one pass looks at.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub nodes: Vec<Arc<Node>>,
    pub pods: Vec<Arc<Pod>>,
    pub services: Vec<Arc<Service>>,
    /// Only the slices this agent manages.
    pub slices: Vec<Arc<EndpointSlice>>,
    pub deployments: Vec<Arc<Deployment>>,
}

// A pass yields a handful of short-lived actions; boxing the objects would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Server-side apply of the Node's labels and taints.
    ApplyNode(Node),
    ApplyNodeStatus {
        name: String,
        status: NodeStatus,
    },
    Bind {
        namespace: String,
        name: String,
        node: String,
    },
    SetPodStatus {
        namespace: String,
        name: String,
        status: PodStatus,
    },
    /// `force` deletes at once (grace period 0), as a kubelet confirms a pod has stopped.
    DeletePod {
        namespace: String,
        name: String,
        force: bool,
    },
    CreatePod(Pod),
    ApplySlice(EndpointSlice),
    DeleteSlice {
        namespace: String,
        name: String,
    },
    SetDeploymentStatus {
        namespace: String,
        name: String,
        status: DeploymentStatus,
    },
    /// Malformed input worth a log line (reported once per distinct message).
    Warn(String),
}

/// What the agent remembers between passes.
#[derive(Debug)]
pub struct AgentState {
    pub ipam: PodIpam,
    scheduler: Scheduler,
    /// Pods created per Deployment uid and not yet seen, with when they were created.
    pending_creates: HashMap<String, Vec<(String, Instant)>>,
    warned: BTreeSet<String>,
}

/// How long a created pod counts as pending before we stop expecting it.
const PENDING_TTL: Duration = Duration::from_secs(30);

impl AgentState {
    pub fn new(ipam: PodIpam) -> Self {
        AgentState {
            ipam,
            scheduler: Scheduler::default(),
            pending_creates: HashMap::new(),
            warned: BTreeSet::new(),
        }
    }

    fn warn(&mut self, out: &mut Vec<Action>, message: String) {
        if self.warned.insert(message.clone()) {
            out.push(Action::Warn(message));
        }
    }
}

fn key(ns: &Option<String>, name: &Option<String>) -> (String, String) {
    (
        ns.clone().unwrap_or_default(),
        name.clone().unwrap_or_default(),
    )
}

pub fn reconcile(
    specs: &[NodeSpec],
    snap: &Snapshot,
    state: &mut AgentState,
    now: &Time,
    clock: Instant,
    mut random: impl FnMut() -> [u8; 5],
) -> Vec<Action> {
    let mut out = Vec::new();
    let live_nodes: BTreeMap<&str, &Node> = snap
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.as_ref())))
        .collect();

    // Kubelet: register nodes and post their status.
    for spec in specs {
        let live = live_nodes.get(spec.name.as_str()).copied();
        let desired = nodes::desired_node(spec);
        let labels_ok = desired.metadata.labels.iter().flatten().all(|(k, v)| {
            live.and_then(|n| n.metadata.labels.as_ref())
                .and_then(|l| l.get(k))
                == Some(v)
        });
        if !labels_ok {
            out.push(Action::ApplyNode(desired));
        }
        let (health, errors) = nodes::node_health(live);
        for e in errors {
            state.warn(&mut out, format!("node {}: {e}", spec.name));
        }
        let status = nodes::desired_status(spec, health, now);
        if !nodes::status_matches(live, &status) {
            out.push(Action::ApplyNodeStatus {
                name: spec.name.clone(),
                status,
            });
        }
    }

    // Kubelet: pods. First learn which addresses are taken, then free those of gone pods.
    let ours: BTreeMap<&str, &NodeSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut live_uids = BTreeSet::new();
    for pod in &snap.pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        state.ipam.adopt(&uid, &pods::pod_ips(pod));
        live_uids.insert(uid);
    }
    state.ipam.retain(&live_uids);
    let node_labels: BTreeMap<String, BTreeMap<String, String>> = live_nodes
        .iter()
        .map(|(name, n)| {
            (
                name.to_string(),
                n.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect();

    for pod in &snap.pods {
        let (namespace, name) = key(&pod.metadata.namespace, &pod.metadata.name);
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if pods::is_terminating(pod) {
            if node_name.as_deref().is_none_or(|n| ours.contains_key(n)) {
                out.push(Action::DeletePod {
                    namespace,
                    name,
                    force: true,
                });
            }
            continue;
        }
        let Some(node_name) = node_name else {
            match state.scheduler.place(pod, specs, &node_labels) {
                Some(node) => out.push(Action::Bind {
                    namespace,
                    name,
                    node: node.name.clone(),
                }),
                None => state.warn(
                    &mut out,
                    format!("pod {namespace}/{name}: no lab node fits it"),
                ),
            }
            continue;
        };
        let Some(node) = ours.get(node_name.as_str()) else {
            continue;
        };
        if pods::is_terminal(pod) {
            continue;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(ips) = state.ipam.ips_for(&uid) else {
            state.warn(
                &mut out,
                format!("pod {namespace}/{name}: the pod CIDR is full"),
            );
            continue;
        };
        let (ready, err) = pods::wants_ready(pod);
        if let Some(e) = err {
            state.warn(&mut out, format!("pod {namespace}/{name}: {e}"));
        }
        if !pods::status_matches(pod, &ips, node, ready) {
            out.push(Action::SetPodStatus {
                namespace,
                name,
                status: pods::desired_status(pod, node, &ips, ready, now),
            });
        }
    }

    // EndpointSlice controller.
    let pod_refs: Vec<&Pod> = snap.pods.iter().map(|p| p.as_ref()).collect();
    let mut wanted = BTreeSet::new();
    let live_slices: BTreeMap<(String, String), &EndpointSlice> = snap
        .slices
        .iter()
        .map(|s| (key(&s.metadata.namespace, &s.metadata.name), s.as_ref()))
        .collect();
    for svc in &snap.services {
        for slice in endpoints::desired_slices(svc, &pod_refs) {
            let k = key(&slice.metadata.namespace, &slice.metadata.name);
            let same = live_slices
                .get(&k)
                .is_some_and(|live| endpoints::slice_matches(live, &slice));
            wanted.insert(k);
            if !same {
                out.push(Action::ApplySlice(slice));
            }
        }
    }
    for k in live_slices.keys() {
        if !wanted.contains(k) {
            out.push(Action::DeleteSlice {
                namespace: k.0.clone(),
                name: k.1.clone(),
            });
        }
    }

    // Deployment controller.
    let seen: BTreeSet<(String, String)> = snap
        .pods
        .iter()
        .map(|p| key(&p.metadata.namespace, &p.metadata.name))
        .collect();
    let mut deployment_uids = BTreeSet::new();
    for d in &snap.deployments {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        deployment_uids.insert(uid.clone());
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let pending = state.pending_creates.entry(uid.clone()).or_default();
        pending.retain(|(name, at)| {
            !seen.contains(&(ns.clone(), name.clone())) && clock.duration_since(*at) < PENDING_TTL
        });
        let plan = deployments::plan(d, &pod_refs, pending.len(), &mut random);
        for pod in plan.create {
            pending.push((pod.metadata.name.clone().unwrap_or_default(), clock));
            out.push(Action::CreatePod(pod));
        }
        for name in plan.delete {
            out.push(Action::DeletePod {
                namespace: ns.clone(),
                name,
                force: false,
            });
        }
        if let Some(status) = plan.status {
            out.push(Action::SetDeploymentStatus {
                namespace: ns,
                name: d.metadata.name.clone().unwrap_or_default(),
                status,
            });
        }
    }
    state
        .pending_creates
        .retain(|uid, _| deployment_uids.contains(uid));
    // Garbage collection of pods whose Deployment is gone (no controller-manager here).
    for pod in &snap.pods {
        let orphaned = pod.metadata.owner_references.iter().flatten().any(|o| {
            o.kind == "Deployment"
                && o.controller == Some(true)
                && !deployment_uids.contains(&o.uid)
        });
        if orphaned && !pods::is_terminating(pod) {
            let (namespace, name) = key(&pod.metadata.namespace, &pod.metadata.name);
            out.push(Action::DeletePod {
                namespace,
                name,
                force: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::node_agent::nodes::parse_node_arg;
    use k8s_openapi::api::core::v1::{Container, PodSpec, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    fn specs() -> Vec<NodeSpec> {
        vec![
            parse_node_arg("node1=192.0.2.11").unwrap(),
            parse_node_arg("node2=192.0.2.12").unwrap(),
        ]
    }

    fn state() -> AgentState {
        AgentState::new(PodIpam::new(&["203.0.113.128/26".to_string()]).unwrap())
    }

    fn mk_pod(name: &str, node: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                containers: vec![Container {
                    name: "c".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    fn mk_service() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("svc".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn run(snap: &Snapshot, st: &mut AgentState) -> Vec<Action> {
        reconcile(&specs(), snap, st, &now(), Instant::now(), || {
            [1, 2, 3, 4, 5]
        })
    }

    /// Applies the actions to the snapshot as an API server would, for convergence tests.
    fn apply(snap: &mut Snapshot, actions: &[Action]) {
        for a in actions {
            match a {
                Action::ApplyNode(n)
                    if !snap
                        .nodes
                        .iter()
                        .any(|x| x.metadata.name == n.metadata.name) =>
                {
                    snap.nodes.push(Arc::new(n.clone()));
                }
                Action::ApplyNodeStatus { name, status } => {
                    for n in snap.nodes.iter_mut() {
                        if n.metadata.name.as_deref() == Some(name) {
                            Arc::make_mut(n).status = Some(status.clone());
                        }
                    }
                }
                Action::Bind { name, node, .. } => {
                    for p in snap.pods.iter_mut() {
                        if p.metadata.name.as_deref() == Some(name) {
                            Arc::make_mut(p).spec.as_mut().unwrap().node_name = Some(node.clone());
                        }
                    }
                }
                Action::SetPodStatus { name, status, .. } => {
                    for p in snap.pods.iter_mut() {
                        if p.metadata.name.as_deref() == Some(name) {
                            Arc::make_mut(p).status = Some(status.clone());
                        }
                    }
                }
                Action::ApplySlice(s) => {
                    snap.slices.retain(|x| x.metadata.name != s.metadata.name);
                    snap.slices.push(Arc::new(s.clone()));
                }
                Action::DeleteSlice { name, .. } => snap
                    .slices
                    .retain(|x| x.metadata.name.as_deref() != Some(name)),
                Action::DeletePod { name, .. } => snap
                    .pods
                    .retain(|x| x.metadata.name.as_deref() != Some(name)),
                _ => {}
            }
        }
    }

    #[test]
    fn converges_to_registered_nodes_running_pods_and_slices_then_goes_quiet() {
        let mut snap = Snapshot {
            pods: vec![
                Arc::new(mk_pod("a", Some("node1"))),
                Arc::new(mk_pod("b", None)),
            ],
            services: vec![Arc::new(mk_service())],
            ..Default::default()
        };
        let mut st = state();
        for _ in 0..4 {
            let actions = run(&snap, &mut st);
            apply(&mut snap, &actions);
        }
        assert_eq!(
            run(&snap, &mut st),
            Vec::new(),
            "a converged cluster needs no writes"
        );
        assert_eq!(snap.nodes.len(), 2);
        let slice = &snap.slices[0];
        let mut endpoints: Vec<(String, String)> = slice
            .endpoints
            .iter()
            .flatten()
            .map(|e| (e.node_name.clone().unwrap(), e.addresses[0].clone()))
            .collect();
        endpoints.sort();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[0].0, "node1");
        let ips: BTreeSet<&String> = endpoints.iter().map(|e| &e.1).collect();
        assert_eq!(ips.len(), 2, "pod IPs are unique");
    }

    #[test]
    fn readiness_annotation_flows_into_the_slice() {
        let mut snap = Snapshot {
            pods: vec![Arc::new(mk_pod("a", Some("node1")))],
            services: vec![Arc::new(mk_service())],
            ..Default::default()
        };
        let mut st = state();
        for _ in 0..3 {
            let actions = run(&snap, &mut st);
            apply(&mut snap, &actions);
        }
        let ready = |snap: &Snapshot| {
            snap.slices[0].endpoints.as_ref().unwrap()[0]
                .conditions
                .clone()
                .unwrap()
                .ready
        };
        assert_eq!(ready(&snap), Some(true));
        Arc::make_mut(&mut snap.pods[0]).metadata.annotations = Some(BTreeMap::from([(
            pods::POD_READY_ANNOTATION.into(),
            "false".into(),
        )]));
        for _ in 0..3 {
            let actions = run(&snap, &mut st);
            apply(&mut snap, &actions);
        }
        assert_eq!(ready(&snap), Some(false));
    }

    #[test]
    fn terminating_pods_are_finished_and_slices_of_deleted_services_removed() {
        let mut pod = mk_pod("a", Some("node1"));
        pod.metadata.deletion_timestamp = Some(now());
        let mut foreign = mk_pod("f", Some("elsewhere"));
        foreign.metadata.deletion_timestamp = Some(now());
        let stale = endpoints::desired_slices(&mk_service(), &[]).remove(0);
        let snap = Snapshot {
            pods: vec![Arc::new(pod), Arc::new(foreign)],
            slices: vec![Arc::new(stale)],
            ..Default::default()
        };
        let actions = run(&snap, &mut state());
        assert!(actions.contains(&Action::DeletePod {
            namespace: "default".into(),
            name: "a".into(),
            force: true
        }));
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::DeletePod { name, .. } if name == "f"))
        );
        assert!(actions.contains(&Action::DeleteSlice {
            namespace: "default".into(),
            name: "web-ipv4".into()
        }));
    }

    #[test]
    fn pods_on_foreign_nodes_are_left_alone_and_warnings_are_not_repeated() {
        let mut bad = mk_pod("bad", Some("node1"));
        bad.metadata.annotations = Some(BTreeMap::from([(
            pods::POD_READY_ANNOTATION.into(),
            "perhaps".into(),
        )]));
        let snap = Snapshot {
            pods: vec![Arc::new(mk_pod("x", Some("elsewhere"))), Arc::new(bad)],
            ..Default::default()
        };
        let mut st = state();
        let actions = run(&snap, &mut st);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::SetPodStatus { name, .. } if name == "x"))
        );
        let warnings = actions
            .iter()
            .filter(|a| matches!(a, Action::Warn(w) if w.contains("perhaps")))
            .count();
        assert_eq!(warnings, 1);
        let again = run(&snap, &mut st);
        assert!(!again.iter().any(|a| matches!(a, Action::Warn(_))));
        // The malformed annotation reads as not ready.
        let status = actions.iter().find_map(|a| match a {
            Action::SetPodStatus { name, status, .. } if name == "bad" => Some(status.clone()),
            _ => None,
        });
        assert!(!status.unwrap().container_statuses.unwrap()[0].ready);
    }
}
