//! The kubelet's part for Pods: what a pod placed on a lab node reports, and where an
//! unplaced pod goes. Pure.
//!
//! A pod is Running at once, with one IP per family of the cluster. It is Ready unless the
//! annotation `lab.ironlb.io/ready` says `false` (Go `strconv.ParseBool` spellings), which is
//! how tests take an endpoint out of service without killing anything.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, HostIP, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::AgentError;
use super::nodes::{CONTROL_PLANE_LABEL, NodeSpec};

pub const POD_READY_ANNOTATION: &str = "lab.ironlb.io/ready";

/// Parses a boolean annotation the way Go's `strconv.ParseBool` does; `None` when absent.
pub fn parse_bool_annotation(key: &str, value: Option<&str>) -> Result<Option<bool>, AgentError> {
    match value {
        None => Ok(None),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
        Some(other) => Err(AgentError::BadAnnotation {
            key: key.to_string(),
            value: other.to_string(),
        }),
    }
}

/// Whether the pod should report Ready; a malformed annotation reads as not ready, since a
/// pod of unknown readiness should not get traffic.
pub fn wants_ready(pod: &Pod) -> (bool, Option<AgentError>) {
    let value = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_READY_ANNOTATION))
        .map(String::as_str);
    match parse_bool_annotation(POD_READY_ANNOTATION, value) {
        Ok(v) => (v.unwrap_or(true), None),
        Err(e) => (false, Some(e)),
    }
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's IPs as recorded in its status.
pub fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let status = pod.status.as_ref();
    let mut ips: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            status
                .and_then(|s| s.pod_ip.as_ref())
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips
}

/// Whether the pod's status reports Ready=True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn condition(type_: &str, status: bool, now: &Time) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        last_transition_time: Some(now.clone()),
        reason: (!status).then(|| "ContainersNotReady".to_string()),
        ..Default::default()
    }
}

/// The status a kubelet would post for a running pod on `node`.
pub fn desired_status(
    pod: &Pod,
    node: &NodeSpec,
    ips: &[IpAddr],
    ready: bool,
    now: &Time,
) -> PodStatus {
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| now.clone());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let container_statuses = containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: Some(format!("lab://{uid}/{}", c.name)),
            ready,
            started: Some(true),
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(started.clone()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let host_ip = node.ips.first().map(ToString::to_string);
    PodStatus {
        phase: Some("Running".into()),
        host_ip: host_ip.clone(),
        host_ips: Some(
            node.ips
                .iter()
                .map(|ip| HostIP { ip: ip.to_string() })
                .collect(),
        ),
        pod_ip: ips.first().map(ToString::to_string),
        pod_ips: Some(ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect()),
        start_time: Some(started),
        qos_class: Some("BestEffort".into()),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", true, now),
            condition("Initialized", true, now),
            condition("Ready", ready, now),
            condition("ContainersReady", ready, now),
            condition("PodScheduled", true, now),
        ]),
        container_statuses: Some(container_statuses),
        ..Default::default()
    }
}

/// Whether the live status already says what matters: phase, IPs, node IP and readiness.
pub fn status_matches(pod: &Pod, ips: &[IpAddr], node: &NodeSpec, ready: bool) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && pod_ips(pod) == ips
        && status.host_ip == node.ips.first().map(ToString::to_string)
        && is_ready(pod) == ready
}

/// Whether a pod may run on a node, by `nodeSelector` and the control-plane taint.
pub fn fits(pod: &Pod, node: &NodeSpec, node_labels: &BTreeMap<String, String>) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node_labels.get(k) == Some(v));
    let tolerated = !node.control_plane
        || spec.tolerations.iter().flatten().any(|t| {
            t.operator.as_deref() == Some("Exists") && t.key.is_none()
                || t.key.as_deref() == Some(CONTROL_PLANE_LABEL)
        });
    selected && tolerated
}

/// Round-robin placement over the nodes a pod fits, in name order.
#[derive(Debug, Default)]
pub struct Scheduler {
    next: usize,
}

impl Scheduler {
    pub fn place<'a>(
        &mut self,
        pod: &Pod,
        nodes: &'a [NodeSpec],
        labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Option<&'a NodeSpec> {
        let empty = BTreeMap::new();
        let mut eligible: Vec<&NodeSpec> = nodes
            .iter()
            .filter(|n| fits(pod, n, labels.get(&n.name).unwrap_or(&empty)))
            .collect();
        eligible.sort_by(|a, b| a.name.cmp(&b.name));
        if eligible.is_empty() {
            return None;
        }
        let chosen = eligible[self.next % eligible.len()];
        self.next = self.next.wrapping_add(1);
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::node_agent::nodes::parse_node_arg;
    use k8s_openapi::api::core::v1::{Container, PodSpec, Toleration};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    pub fn mk_pod(name: &str, annotations: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some("agnhost".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    fn workers() -> Vec<NodeSpec> {
        let mut cp = parse_node_arg("cp=192.0.2.2").unwrap();
        cp.control_plane = true;
        vec![
            cp,
            parse_node_arg("node2=192.0.2.12").unwrap(),
            parse_node_arg("node1=192.0.2.11").unwrap(),
        ]
    }

    fn hostname_labels(nodes: &[NodeSpec]) -> BTreeMap<String, BTreeMap<String, String>> {
        nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    BTreeMap::from([("kubernetes.io/hostname".to_string(), n.name.clone())]),
                )
            })
            .collect()
    }

    #[test]
    fn bool_annotations_follow_go_parse_bool() {
        assert_eq!(parse_bool_annotation("k", None).unwrap(), None);
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool_annotation("k", Some(t)).unwrap(), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool_annotation("k", Some(f)).unwrap(), Some(false));
        }
        for bad in ["", "yes", "tRuE", " true", "2"] {
            assert!(matches!(
                parse_bool_annotation("k", Some(bad)),
                Err(AgentError::BadAnnotation { .. })
            ));
        }
    }

    #[test]
    fn readiness_follows_the_annotation() {
        assert!(wants_ready(&mk_pod("a", &[])).0);
        assert!(!wants_ready(&mk_pod("a", &[(POD_READY_ANNOTATION, "false")])).0);
        let (ready, err) = wants_ready(&mk_pod("a", &[(POD_READY_ANNOTATION, "maybe")]));
        assert!(!ready);
        assert!(err.unwrap().to_string().contains("maybe"));
    }

    #[test]
    fn running_status_carries_ips_and_readiness() {
        let node = parse_node_arg("node1=192.0.2.11,2001:db8::11").unwrap();
        let mut pod = mk_pod("web-1", &[]);
        let ips: Vec<IpAddr> = vec![
            "203.0.113.130".parse().unwrap(),
            "2001:db8:fffd::2".parse().unwrap(),
        ];
        assert!(!status_matches(&pod, &ips, &node, true));
        pod.status = Some(desired_status(&pod, &node, &ips, true, &now()));
        let s = pod.status.as_ref().unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("203.0.113.130"));
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.11"));
        assert!(s.container_statuses.as_ref().unwrap()[0].ready);
        assert_eq!(pod_ips(&pod), ips);
        assert!(is_ready(&pod));
        assert!(status_matches(&pod, &ips, &node, true));
        assert!(!status_matches(&pod, &ips, &node, false));
        assert!(!status_matches(&pod, &ips[..1], &node, true));
    }

    #[test]
    fn scheduler_round_robins_over_workers_only() {
        let nodes = workers();
        let labels = hostname_labels(&nodes);
        let mut s = Scheduler::default();
        let pod = mk_pod("p", &[]);
        let placed: Vec<String> = (0..4)
            .map(|_| s.place(&pod, &nodes, &labels).unwrap().name.clone())
            .collect();
        assert_eq!(placed, ["node1", "node2", "node1", "node2"]);
    }

    #[test]
    fn scheduler_honours_node_selector_and_tolerations() {
        let nodes = workers();
        let labels = hostname_labels(&nodes);
        let mut s = Scheduler::default();
        let mut pinned = mk_pod("p", &[]);
        pinned.spec.as_mut().unwrap().node_selector = Some(BTreeMap::from([(
            "kubernetes.io/hostname".into(),
            "node2".into(),
        )]));
        for _ in 0..3 {
            assert_eq!(s.place(&pinned, &nodes, &labels).unwrap().name, "node2");
        }
        let mut on_cp = pinned.clone();
        on_cp.spec.as_mut().unwrap().node_selector = Some(BTreeMap::from([(
            "kubernetes.io/hostname".into(),
            "cp".into(),
        )]));
        assert!(s.place(&on_cp, &nodes, &labels).is_none());
        on_cp.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some(CONTROL_PLANE_LABEL.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert_eq!(s.place(&on_cp, &nodes, &labels).unwrap().name, "cp");
        let mut nowhere = mk_pod("p", &[]);
        nowhere.spec.as_mut().unwrap().node_selector =
            Some(BTreeMap::from([("disk".into(), "ssd".into())]));
        assert!(s.place(&nowhere, &nodes, &labels).is_none());
    }
}
